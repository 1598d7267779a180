//! Account tokens: password resets, recovery links and address-change codes. Spending a
//! token and making its change happen in one transaction whose first statement is the
//! conditional spend, so of concurrent spenders exactly one changes the account.

use async_trait::async_trait;
use latchkey_core::UnixTime;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, devices, is_unique_violation, parse_stored};
use crate::{
    AccountToken, AccountTokenPurpose, AccountTokenStore, AddressChanged, NewAccountToken, NewAddress,
    StoreError, StoreResult,
};

macro_rules! token_columns {
    () => {
        "id, user_id, purpose, secret_hash, new_address, attempts, created_at, usable_at, expires_at, used_at"
    };
}

fn token_from_row(row: &AnyRow) -> StoreResult<AccountToken> {
    Ok(AccountToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        purpose: parse_stored(row.try_get("purpose")?, AccountTokenPurpose::parse)?,
        secret_hash: row.try_get("secret_hash")?,
        new_address: row.try_get("new_address")?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        usable_at: row.try_get("usable_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
    })
}

/// The conditional spend every redemption starts with.
const SPEND: &str = "UPDATE account_tokens SET used_at = $2
     WHERE id = $1 AND used_at IS NULL AND expires_at > $2 AND usable_at <= $2
     RETURNING user_id";

#[async_trait]
impl AccountTokenStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_account_token(&self, token: &NewAccountToken) -> StoreResult<()> {
        let mut tx = self.writes.begin().await?;
        sqlx::query(
            "UPDATE account_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
        )
        .bind(token.created_at)
        .bind(&token.user_id)
        .bind(token.purpose.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO account_tokens (id, user_id, purpose, secret_hash, new_address, created_at,
                 usable_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(&token.user_id)
        .bind(token.purpose.as_str())
        .bind(token.secret_hash.clone())
        .bind(&token.new_address)
        .bind(token.created_at)
        .bind(token.usable_at)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn account_token(
        &self,
        secret_hash: &[u8],
        purpose: AccountTokenPurpose,
        now: UnixTime,
    ) -> StoreResult<Option<AccountToken>> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM account_tokens
             WHERE secret_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3"
        ))
        .bind(secret_hash.to_vec())
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(token_from_row)
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn attempt_account_code(
        &self,
        user_id: &str,
        purpose: AccountTokenPurpose,
        max_attempts: i64,
        now: UnixTime,
    ) -> StoreResult<Option<AccountToken>> {
        // As for sent codes: the sub-select finds the newest open token and the outer
        // conditions are checked again on the row itself.
        sqlx::query(concat!(
            "UPDATE account_tokens SET attempts = attempts + 1
             WHERE id = (SELECT id FROM account_tokens
                         WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
                         ORDER BY created_at DESC, id DESC LIMIT 1)
               AND used_at IS NULL AND expires_at > $3 AND attempts < $4
             RETURNING ",
            token_columns!()
        ))
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(now)
        .bind(max_attempts)
        .fetch_optional(&self.writes)
        .await?
        .as_ref()
        .map(token_from_row)
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn spend_account_token(&self, id: &str, now: UnixTime) -> StoreResult<bool> {
        Ok(sqlx::query(SPEND).bind(id).bind(now).fetch_optional(&self.pool).await?.is_some())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn cancel_account_tokens(
        &self,
        user_id: &str,
        purpose: AccountTokenPurpose,
        now: UnixTime,
    ) -> StoreResult<u64> {
        let result = sqlx::query(
            "UPDATE account_tokens SET used_at = $1
             WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&self.writes)
        .await?;
        Ok(result.rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn reset_password(&self, token_id: &str, password_hash: &str, now: UnixTime) -> StoreResult<bool> {
        let mut tx = self.writes.begin().await?;
        let Some(row) = sqlx::query(SPEND).bind(token_id).bind(now).fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        let user_id: String = row.try_get("user_id")?;
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        devices::forget_all_in(&mut tx, &user_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep: Option<&str>,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let mut tx = self.writes.begin().await?;
        let changed = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        // Session ids are UUIDs, so no session is kept when `keep` is `None`.
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1
             WHERE user_id = $2 AND id <> COALESCE($3, '') AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn change_address(
        &self,
        token_id: &str,
        address: NewAddress<'_>,
        now: UnixTime,
    ) -> StoreResult<Option<AddressChanged>> {
        let mut tx = self.writes.begin().await?;
        let Some(row) = sqlx::query(SPEND).bind(token_id).bind(now).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let user_id: String = row.try_get("user_id")?;
        let (old, moved) = match address {
            NewAddress::Email { address, normalized } => {
                let old: String = sqlx::query("SELECT email FROM users WHERE id = $1")
                    .bind(&user_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("email")?;
                sqlx::query(
                    "UPDATE users SET email = $1, email_normalized = $2, updated_at = $3 WHERE id = $4",
                )
                .bind(address)
                .bind(normalized)
                .bind(now)
                .bind(&user_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| if is_unique_violation(&e) { StoreError::EmailTaken } else { e.into() })?;
                let moved = sqlx::query(
                    "UPDATE factors SET destination = $1
                     WHERE user_id = $2 AND factor_type IN ('email', 'magic_link') AND LOWER(destination) = LOWER($3)",
                )
                .bind(address)
                .bind(&user_id)
                .bind(&old)
                .execute(&mut *tx)
                .await?;
                (Some(old), moved.rows_affected())
            }
            NewAddress::Phone { number } => {
                let old: Option<String> = sqlx::query("SELECT phone FROM users WHERE id = $1")
                    .bind(&user_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("phone")?;
                sqlx::query("UPDATE users SET phone = $1, updated_at = $2 WHERE id = $3")
                    .bind(number)
                    .bind(now)
                    .bind(&user_id)
                    .execute(&mut *tx)
                    .await?;
                let moved = match &old {
                    Some(old) => sqlx::query(
                        "UPDATE factors SET destination = $1
                         WHERE user_id = $2 AND factor_type = 'sms' AND destination = $3",
                    )
                    .bind(number)
                    .bind(&user_id)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    None => 0,
                };
                (old, moved)
            }
        };
        tx.commit().await?;
        Ok(Some(AddressChanged { old, moved_factors: moved }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_account_tokens(&self, before: UnixTime) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM account_tokens WHERE expires_at < $1 OR used_at < $1")
            .bind(before)
            .execute(&self.writes)
            .await?;
        Ok(result.rows_affected())
    }
}
