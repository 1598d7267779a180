//! Users, sessions and refresh tokens, API keys and signing keys.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, import, is_unique_violation, join_list, split_list};
use crate::{
    AccountStore, ApiKey, NewApiKey, NewFactor, NewSession, NewUser, PoolProbe, RefreshOutcome,
    RefreshRotation, Session, SigningKeyRecord, StoreError, StoreResult, User,
};
use latchkey_core::UnixTime;

// Column lists as literals, so that every query below is a `&'static str` put
// together at compile time with `concat!` (sqlx refuses SQL built at run time).
macro_rules! user_columns {
    () => {
        "id, email, email_normalized, phone, password_hash, created_at, updated_at, disabled_at"
    };
}
macro_rules! session_columns {
    () => {
        "id, user_id, aal, amr, auth_time, created_at, idle_expires_at, expires_at, mfa_pending"
    };
}
macro_rules! api_key_columns {
    () => {
        "id, name, scopes, created_at, revoked_at"
    };
}
macro_rules! signing_key_columns {
    () => {
        "kid, algorithm, public_key, sealed_private, nonce, master_key_id, active_slot, created_at, signs_from,
         retired_at"
    };
}

fn user_from_row(row: &AnyRow) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        email_normalized: row.try_get("email_normalized")?,
        phone: row.try_get("phone")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

fn session_from_row(row: &AnyRow) -> StoreResult<Session> {
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        aal: row.try_get("aal")?,
        amr: split_list(&row.try_get::<String, _>("amr")?),
        auth_time: row.try_get("auth_time")?,
        created_at: row.try_get("created_at")?,
        idle_expires_at: row.try_get("idle_expires_at")?,
        expires_at: row.try_get("expires_at")?,
        mfa_pending: row.try_get::<i64, _>("mfa_pending")? != 0,
    })
}

fn api_key_from_row(row: &AnyRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scopes: split_list(&row.try_get::<String, _>("scopes")?),
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn signing_key_from_row(row: &AnyRow) -> StoreResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid")?,
        algorithm: row.try_get("algorithm")?,
        public_key: row.try_get("public_key")?,
        sealed_private: row.try_get("sealed_private")?,
        nonce: row.try_get("nonce")?,
        master_key_id: row.try_get("master_key_id")?,
        active: row.try_get::<Option<i64>, _>("active_slot")?.is_some(),
        created_at: row.try_get("created_at")?,
        signs_from: row.try_get("signs_from")?,
        retired_at: row.try_get("retired_at")?,
    })
}

/// Inserts `key` as the active signing key, unless a key is active already (or has its
/// id): then nothing.
fn insert_active_signing_key(
    key: &SigningKeyRecord,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, public_key, sealed_private, nonce, master_key_id, active_slot,
             created_at, signs_from)
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(key.public_key.clone())
    .bind(key.sealed_private.clone())
    .bind(key.nonce.clone())
    .bind(&key.master_key_id)
    .bind(key.created_at)
    .bind(key.signs_from)
}

#[async_trait]
impl AccountStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.writes).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn pool_probe(&self) -> StoreResult<PoolProbe> {
        let (size, idle) = (self.pool.size(), u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX));
        let started = std::time::Instant::now();
        drop(self.pool.acquire().await?);
        Ok(PoolProbe {
            size,
            idle,
            max: self.pool.options().get_max_connections(),
            acquire: started.elapsed(),
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_user(&self, user: &NewUser) -> StoreResult<User> {
        let row = sqlx::query(concat!(
            "INSERT INTO users (id, email, email_normalized, phone, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
            user_columns!()
        ))
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.email_normalized)
        .bind(&user.phone)
        .bind(&user.password_hash)
        .bind(user.created_at)
        .fetch_one(&self.writes)
        .await
        .map_err(|e| if is_unique_violation(&e) { StoreError::EmailTaken } else { e.into() })?;
        user_from_row(&row)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(users = users.len()))]
    async fn import_users(&self, users: &[NewUser], factors: &[NewFactor]) -> StoreResult<()> {
        let mut tx = self.writes.begin().await?;
        import::users_in(&mut tx, users).await.map_err(|error| match error {
            StoreError::Database(ref e) if is_unique_violation(e) => StoreError::EmailTaken,
            other => other,
        })?;
        import::active_factors_in(&mut tx, factors).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>> {
        sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE email_normalized = $1"))
            .bind(email_normalized)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after.unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let result = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&self.writes).await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn set_user_disabled(
        &self,
        id: &str,
        disabled_at: Option<UnixTime>,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE users SET disabled_at = $1, updated_at = $2 WHERE id = $3")
            .bind(disabled_at)
            .bind(now)
            .bind(id)
            .execute(&self.writes)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_session(&self, session: &NewSession, refresh_token_hash: &[u8]) -> StoreResult<()> {
        let mut tx = self.writes.begin().await?;
        sqlx::query(
            "INSERT INTO sessions
             (id, user_id, aal, amr, auth_time, created_at, idle_expires_at, expires_at, ip, user_agent, mfa_pending)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.aal)
        .bind(join_list(&session.amr))
        .bind(session.auth_time)
        .bind(session.created_at)
        .bind(session.idle_expires_at)
        .bind(session.expires_at)
        .bind(&session.ip)
        .bind(&session.user_agent)
        .bind(i64::from(session.mfa_pending))
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
            .bind(refresh_token_hash.to_vec())
            .bind(&session.id)
            .bind(session.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn active_session(&self, id: &str, now: UnixTime) -> StoreResult<Option<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND idle_expires_at > $2"
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn rotate_refresh_token(&self, rotation: &RefreshRotation<'_>) -> StoreResult<RefreshOutcome> {
        let now = rotation.now;
        let mut tx = self.writes.begin().await?;
        // Spend the token: only one caller can flip used_at from NULL.
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL RETURNING session_id",
        )
        .bind(now)
        .bind(rotation.presented_hash.to_vec())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(spent) = spent else {
            // Unknown, or spent before: a spent token presented again means it leaked,
            // so the session it belongs to ends.
            let revoked = sqlx::query(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1)
                 WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $2) RETURNING id",
            )
            .bind(now)
            .bind(rotation.presented_hash.to_vec())
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(match revoked {
                Some(row) => RefreshOutcome::Reused { session_id: row.try_get("id")? },
                None => RefreshOutcome::Invalid,
            });
        };
        let session_id: String = spent.try_get("session_id")?;
        let extended = sqlx::query(concat!(
            "UPDATE sessions SET idle_expires_at = CASE WHEN $1 < expires_at THEN $1 ELSE expires_at END
             WHERE id = $2 AND revoked_at IS NULL AND expires_at > $3 AND idle_expires_at > $3
             RETURNING ",
            session_columns!()
        ))
        .bind(now.saturating_add(rotation.idle_timeout_secs))
        .bind(&session_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(extended) = extended else {
            // The session is over; the token stays spent.
            tx.commit().await?;
            return Ok(RefreshOutcome::Invalid);
        };
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
            .bind(rotation.successor_hash.to_vec())
            .bind(&session_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated(session_from_row(&extended)?))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn revoke_session(&self, id: &str, now: UnixTime) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.writes)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn user_sessions(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND idle_expires_at > $2
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(session_from_row)
        .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, id = %id))]
    async fn revoke_user_session(&self, user_id: &str, id: &str, now: UnixTime) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE sessions SET revoked_at = $1
             WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL AND expires_at > $1 AND idle_expires_at > $1",
        )
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(&self.writes)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn elevate_session(
        &self,
        id: &str,
        aal: &str,
        amr: &[String],
        auth_time: UnixTime,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE sessions SET aal = $1, amr = $2, auth_time = $3, mfa_pending = 0 WHERE id = $4 AND revoked_at IS NULL",
        )
        .bind(aal)
        .bind(join_list(amr))
        .bind(auth_time)
        .bind(id)
        .execute(&self.writes)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn revoke_other_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: UnixTime,
    ) -> StoreResult<u64> {
        // Session ids are UUIDs, so no session is kept when `keep` is `None`.
        let result = sqlx::query(
            "UPDATE sessions SET revoked_at = $1
             WHERE user_id = $2 AND id <> COALESCE($3, '') AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .execute(&self.writes)
        .await?;
        Ok(result.rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_sessions(&self, before: UnixTime) -> StoreResult<u64> {
        let result = sqlx::query(
            "DELETE FROM sessions WHERE expires_at < $1 OR idle_expires_at < $1 OR revoked_at < $1",
        )
        .bind(before)
        .execute(&self.writes)
        .await?;
        let codes = sqlx::query("DELETE FROM exchange_codes WHERE expires_at < $1")
            .bind(before)
            .execute(&self.writes)
            .await?;
        Ok(result.rows_affected() + codes.rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn touch_session(&self, id: &str, now: UnixTime, idle_timeout_secs: i64) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE sessions SET idle_expires_at = CASE WHEN $1 < expires_at THEN $1 ELSE expires_at END
             WHERE id = $2 AND revoked_at IS NULL AND expires_at > $3 AND idle_expires_at > $3",
        )
        .bind(now.saturating_add(idle_timeout_secs))
        .bind(id)
        .bind(now)
        .execute(&self.writes)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_exchange_code(
        &self,
        code_hash: &[u8],
        session_id: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO exchange_codes (code_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(code_hash.to_vec())
        .bind(session_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn spend_exchange_code(&self, code_hash: &[u8], now: UnixTime) -> StoreResult<Option<String>> {
        // Deleting is spending: of two concurrent spenders only one sees the row.
        let row =
            sqlx::query("DELETE FROM exchange_codes WHERE code_hash = $1 RETURNING session_id, expires_at")
                .bind(code_hash.to_vec())
                .fetch_optional(&self.writes)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: i64 = row.try_get("expires_at")?;
        Ok((expires_at > now).then(|| row.try_get("session_id")).transpose()?)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.key_hash.clone())
        .bind(join_list(&key.scopes))
        .bind(key.created_at)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKey>> {
        sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(key_hash.to_vec())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(api_key_from_row)
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE id = $1 AND revoked_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(api_key_from_row)
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        sqlx::query(concat!("SELECT ", api_key_columns!(), " FROM api_keys ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(api_key_from_row)
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn revoke_api_key(&self, id: &str, now: UnixTime) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.writes)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        Ok(insert_active_signing_key(key).execute(&self.writes).await?.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn rotate_signing_key(&self, key: &SigningKeyRecord, retire_at: UnixTime) -> StoreResult<()> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("UPDATE signing_keys SET active_slot = NULL, retired_at = $1 WHERE active_slot = 1")
            .bind(retire_at)
            .execute(&mut *tx)
            .await?;
        if insert_active_signing_key(key).execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(StoreError::Corrupt(format!("the signing key {} exists already", key.kid)));
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn signing_keys(&self, now: UnixTime) -> StoreResult<Vec<SigningKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            signing_key_columns!(),
            " FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1
             ORDER BY CASE WHEN active_slot = 1 THEN 0 ELSE 1 END, created_at DESC"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(signing_key_from_row)
        .collect()
    }
}
