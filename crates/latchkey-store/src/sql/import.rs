//! Bulk loading: many users and their confirmed TOTP factors, many rows per statement.

use sqlx::{AnyConnection, AssertSqlSafe};

use crate::{NewFactor, NewUser, StoreResult};

/// Rows per `INSERT`: 13 parameters a factor keeps a statement under both databases'
/// parameter limits (SQLite 32 766, PostgreSQL 65 535).
const ROWS_PER_STATEMENT: usize = 500;

/// `($1, $2, ...), ($k, ...)` for `rows` rows of `columns` parameters each.
pub(super) fn parameter_rows(rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("${}", row * columns + column + 1));
        }
        text.push(')');
    }
    text
}

pub(super) async fn users_in(conn: &mut AnyConnection, users: &[NewUser]) -> StoreResult<()> {
    for chunk in users.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO users (id, email, email_normalized, phone, password_hash, created_at, updated_at) VALUES {}",
            parameter_rows(chunk.len(), 7)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for user in chunk {
            query = query
                .bind(&user.id)
                .bind(&user.email)
                .bind(&user.email_normalized)
                .bind(&user.phone)
                .bind(&user.password_hash)
                .bind(user.created_at)
                .bind(user.created_at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts `factors` as active (confirmed when they were created).
pub(super) async fn active_factors_in(conn: &mut AnyConnection, factors: &[NewFactor]) -> StoreResult<()> {
    for chunk in factors.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO factors (id, user_id, factor_type, status, friendly_name, secret_sealed, secret_nonce,
             secret_key_id, algorithm, digits, period, created_at, confirmed_at) VALUES {}",
            parameter_rows(chunk.len(), 13)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for factor in chunk {
            let (secret, totp) = (factor.secret.as_ref(), factor.totp.as_ref());
            query = query
                .bind(&factor.id)
                .bind(&factor.user_id)
                .bind(factor.factor_type.as_str())
                .bind("active")
                .bind(&factor.friendly_name)
                .bind(secret.map(|s| s.sealed.clone()))
                .bind(secret.map(|s| s.nonce.clone()))
                .bind(secret.map(|s| s.key_id.clone()))
                .bind(totp.map(|t| t.algorithm.clone()))
                .bind(totp.map(|t| t.digits))
                .bind(totp.map(|t| t.period))
                .bind(factor.created_at)
                .bind(factor.created_at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
