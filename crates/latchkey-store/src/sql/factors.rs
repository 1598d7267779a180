//! Second factors (and WebAuthn credentials), recovery codes, the brute-force guard and
//! MFA tokens.

use async_trait::async_trait;
use latchkey_core::UnixTime;
use latchkey_core::factor::{FactorStatus, FactorType};
use latchkey_core::lockout::LockoutPolicy;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{
    Backend, SqlStore, attempts, ceremonies, challenges, devices, join_list, parse_stored, split_list,
};
use crate::{
    AttemptClaim, AttemptOutcome, AuditEvent, Ceremony, Challenge, CodeChallengeQuery, Factor, FactorRemoval,
    FactorStore, GuardState, MfaToken, NewChallenge, NewFactor, NewMfaToken, RememberedDevice,
    SecondFactorAttempt, StoreResult, StoredSecret, TotpSettings, TotpSpend,
};

macro_rules! factor_columns {
    () => {
        "id, user_id, factor_type, status, friendly_name, secret_sealed, secret_nonce, secret_key_id,
         algorithm, digits, period, last_step, destination, created_at, confirmed_at, last_used_at, expires_at,
         verified_at, credential_id, aaguid"
    };
}

fn factor_from_row(row: &AnyRow) -> StoreResult<Factor> {
    let sealed: Option<Vec<u8>> = row.try_get("secret_sealed")?;
    let nonce: Option<Vec<u8>> = row.try_get("secret_nonce")?;
    let key_id: Option<String> = row.try_get("secret_key_id")?;
    let secret = match (sealed, nonce, key_id) {
        (Some(sealed), Some(nonce), Some(key_id)) => Some(StoredSecret { sealed, nonce, key_id }),
        _ => None,
    };
    let algorithm: Option<String> = row.try_get("algorithm")?;
    let digits: Option<i64> = row.try_get("digits")?;
    let period: Option<i64> = row.try_get("period")?;
    let totp = match (algorithm, digits, period) {
        (Some(algorithm), Some(digits), Some(period)) => Some(TotpSettings { algorithm, digits, period }),
        _ => None,
    };
    Ok(Factor {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        factor_type: parse_stored(row.try_get("factor_type")?, FactorType::parse)?,
        status: parse_stored(row.try_get("status")?, FactorStatus::parse)?,
        friendly_name: row.try_get("friendly_name")?,
        secret,
        totp,
        last_step: row.try_get("last_step")?,
        destination: row.try_get("destination")?,
        created_at: row.try_get("created_at")?,
        confirmed_at: row.try_get("confirmed_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        verified_at: row.try_get("verified_at")?,
        credential_id: row.try_get("credential_id")?,
        aaguid: row.try_get("aaguid")?,
    })
}

impl SqlStore {
    /// Runs `activation`, an `UPDATE` that activates one of `user_id`'s factors, and
    /// when it did, forgets the user's remembered devices in the same transaction.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn activate(
        &self,
        user_id: &str,
        activation: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> StoreResult<bool> {
        let mut tx = self.writes.begin().await?;
        let activated = activation.execute(&mut *tx).await?.rows_affected() == 1;
        if activated {
            devices::forget_all_in(&mut tx, user_id).await?;
        }
        tx.commit().await?;
        Ok(activated)
    }
}

#[async_trait]
impl FactorStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_pending_factor(&self, factor: &NewFactor) -> StoreResult<Factor> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("DELETE FROM factors WHERE user_id = $1 AND factor_type = $2 AND status = 'pending'")
            .bind(&factor.user_id)
            .bind(factor.factor_type.as_str())
            .execute(&mut *tx)
            .await?;
        let secret = factor.secret.as_ref();
        let totp = factor.totp.as_ref();
        let row = sqlx::query(concat!(
            "INSERT INTO factors (id, user_id, factor_type, status, friendly_name, secret_sealed, secret_nonce,
             secret_key_id, algorithm, digits, period, destination, created_at, expires_at)
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ",
            factor_columns!()
        ))
        .bind(&factor.id)
        .bind(&factor.user_id)
        .bind(factor.factor_type.as_str())
        .bind(&factor.friendly_name)
        .bind(secret.map(|s| s.sealed.clone()))
        .bind(secret.map(|s| s.nonce.clone()))
        .bind(secret.map(|s| s.key_id.clone()))
        .bind(totp.map(|t| t.algorithm.clone()))
        .bind(totp.map(|t| t.digits))
        .bind(totp.map(|t| t.period))
        .bind(&factor.destination)
        .bind(factor.created_at)
        .bind(factor.expires_at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        factor_from_row(&row)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
    async fn factor(&self, user_id: &str, factor_id: &str, now: UnixTime) -> StoreResult<Option<Factor>> {
        sqlx::query(concat!(
            "SELECT ",
            factor_columns!(),
            " FROM factors WHERE id = $1 AND user_id = $2 AND (status = 'active' OR expires_at > $3)"
        ))
        .bind(factor_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(factor_from_row)
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn factors(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<Factor>> {
        sqlx::query(concat!(
            "SELECT ",
            factor_columns!(),
            " FROM factors WHERE user_id = $1 AND (status = 'active' OR expires_at > $2) ORDER BY created_at, id"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(factor_from_row)
        .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn active_totp_factors(&self, user_id: &str) -> StoreResult<Vec<Factor>> {
        sqlx::query(concat!(
            "SELECT ",
            factor_columns!(),
            " FROM factors WHERE user_id = $1 AND factor_type = 'totp' AND status = 'active'
              ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(factor_from_row)
        .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
    async fn activate_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        step: Option<i64>,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let query = sqlx::query(
            "UPDATE factors SET status = 'active', confirmed_at = $3, last_used_at = $3,
                 last_step = COALESCE($4, last_step), expires_at = NULL
             WHERE id = $1 AND user_id = $2 AND status = 'pending' AND expires_at > $3
               AND ($4 IS NULL OR last_step IS NULL OR last_step < $4)",
        )
        .bind(factor_id)
        .bind(user_id)
        .bind(now)
        .bind(step);
        self.activate(user_id, query).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
    async fn verify_pending_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        step: Option<i64>,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE factors SET verified_at = $3, last_step = COALESCE($4, last_step)
             WHERE id = $1 AND user_id = $2 AND status = 'pending' AND expires_at > $3
               AND ($4 IS NULL OR last_step IS NULL OR last_step < $4)",
        )
        .bind(factor_id)
        .bind(user_id)
        .bind(now)
        .bind(step)
        .execute(&self.writes)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
    async fn activate_verified_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let query = sqlx::query(
            "UPDATE factors SET status = 'active', confirmed_at = $3, last_used_at = $3, expires_at = NULL
             WHERE id = $1 AND user_id = $2 AND status = 'pending' AND expires_at > $3
               AND verified_at IS NOT NULL",
        )
        .bind(factor_id)
        .bind(user_id)
        .bind(now);
        self.activate(user_id, query).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor_id))]
    async fn record_totp_step(&self, factor_id: &str, step: i64, now: UnixTime) -> StoreResult<bool> {
        attempts::record_step(&self.writes, &TotpSpend { factor_id: factor_id.to_owned(), step }, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
    async fn rename_factor(&self, user_id: &str, factor_id: &str, friendly_name: &str) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE factors SET friendly_name = $1 WHERE id = $2 AND user_id = $3")
            .bind(friendly_name)
            .bind(factor_id)
            .bind(user_id)
            .execute(&self.writes)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
    async fn delete_factor(&self, user_id: &str, factor_id: &str) -> StoreResult<FactorRemoval> {
        let mut tx = self.writes.begin().await?;
        let removed = sqlx::query("DELETE FROM factors WHERE id = $1 AND user_id = $2")
            .bind(factor_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        let active_remaining: i64 =
            sqlx::query("SELECT COUNT(*) FROM factors WHERE user_id = $1 AND status = 'active'")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if active_remaining == 0 {
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        if removed {
            devices::forget_all_in(&mut tx, user_id).await?;
        }
        tx.commit().await?;
        Ok(FactorRemoval { removed, active_remaining })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn delete_all_factors(&self, user_id: &str) -> StoreResult<u64> {
        let mut tx = self.writes.begin().await?;
        let removed = sqlx::query("DELETE FROM factors WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM mfa_guards WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        devices::forget_all_in(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(removed)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        code_hashes: &[Vec<u8>],
        now: UnixTime,
    ) -> StoreResult<()> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for hash in code_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(hash.clone())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
        now: UnixTime,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash.to_vec())
        .execute(&self.writes)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn recovery_codes_remaining(&self, user_id: &str) -> StoreResult<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn claim_second_factor_attempt(
        &self,
        user_id: &str,
        now: UnixTime,
        policy: &LockoutPolicy,
    ) -> StoreResult<AttemptClaim> {
        let mut tx = self.writes.begin().await?;
        let claim = attempts::claim_in(&mut tx, user_id, now, policy).await?;
        tx.commit().await?;
        Ok(claim)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %attempt.user_id))]
    async fn decide_second_factor_attempt(
        &self,
        attempt: SecondFactorAttempt,
    ) -> StoreResult<(AttemptOutcome, Vec<AuditEvent>)> {
        if let Some(group) = &self.group_commit {
            return group.decide(attempt).await;
        }
        if self.backend == Backend::Postgres
            && let Some(accepted) = attempts::accept_at_once(&self.writes, &attempt).await?
        {
            return Ok(accepted);
        }
        attempts::decide_alone(&self.writes, &attempt).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn reset_second_factor_failures(&self, user_id: &str) -> StoreResult<()> {
        attempts::reset(&self.writes, user_id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn second_factor_guard(&self, user_id: &str) -> StoreResult<Option<GuardState>> {
        let row = sqlx::query("SELECT failures, blocked_until FROM mfa_guards WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(GuardState {
                failures: row.try_get("failures")?,
                blocked_until: row.try_get("blocked_until")?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_mfa_token(&self, token: &NewMfaToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO mfa_tokens (token_hash, user_id, amr, auth_time, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.token_hash.clone())
        .bind(&token.user_id)
        .bind(join_list(&token.amr))
        .bind(token.auth_time)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn mfa_token(&self, token_hash: &[u8], now: UnixTime) -> StoreResult<Option<MfaToken>> {
        let row = sqlx::query(
            "SELECT user_id, amr, auth_time, expires_at FROM mfa_tokens
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash.to_vec())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(MfaToken {
                user_id: row.try_get("user_id")?,
                amr: split_list(&row.try_get::<String, _>("amr")?),
                auth_time: row.try_get("auth_time")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn consume_mfa_token(&self, token_hash: &[u8], now: UnixTime) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE mfa_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash.to_vec())
        .execute(&self.writes)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_challenge(&self, challenge: &NewChallenge) -> StoreResult<()> {
        challenges::create(&self.writes, challenge).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn attempt_code_challenge(
        &self,
        query: &CodeChallengeQuery<'_>,
        max_attempts: i64,
        now: UnixTime,
    ) -> StoreResult<Option<Challenge>> {
        challenges::attempt_code(&self.writes, query, max_attempts, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn spend_challenge(&self, id: &str, confirmed: bool, now: UnixTime) -> StoreResult<bool> {
        challenges::spend(&self.writes, id, confirmed, now).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn confirm_link_challenge(
        &self,
        secret_hash: &[u8],
        now: UnixTime,
    ) -> StoreResult<Option<Challenge>> {
        challenges::confirm_link(&self.writes, secret_hash, now).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn link_challenge(&self, secret_hash: &[u8], now: UnixTime) -> StoreResult<Option<Challenge>> {
        challenges::open_link(&self.writes, secret_hash, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, id = %id))]
    async fn challenge(&self, user_id: &str, id: &str) -> StoreResult<Option<Challenge>> {
        challenges::by_id(&self.pool, user_id, id).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_expired_factors(&self, now: UnixTime) -> StoreResult<u64> {
        let factors = sqlx::query("DELETE FROM factors WHERE status = 'pending' AND expires_at <= $1")
            .bind(now)
            .execute(&self.writes)
            .await?
            .rows_affected();
        let tokens = sqlx::query("DELETE FROM mfa_tokens WHERE expires_at <= $1 OR used_at IS NOT NULL")
            .bind(now)
            .execute(&self.writes)
            .await?
            .rows_affected();
        let challenges = challenges::purge(&self.writes, now).await?;
        let devices = devices::purge(&self.writes, now).await?;
        let ceremonies = ceremonies::purge(&self.writes, now).await?;
        Ok(factors + tokens + challenges + devices + ceremonies)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn remember_device(&self, device: &RememberedDevice, token_hash: &[u8]) -> StoreResult<()> {
        devices::remember(&self.writes, device, token_hash).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn use_remembered_device(
        &self,
        user_id: &str,
        token_hash: &[u8],
        now: UnixTime,
    ) -> StoreResult<Option<RememberedDevice>> {
        devices::use_token(&self.writes, user_id, token_hash, now).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()> {
        ceremonies::create(&self.writes, ceremony).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn take_ceremony(&self, challenge_hash: &[u8], now: UnixTime) -> StoreResult<Option<Ceremony>> {
        ceremonies::take(&self.writes, challenge_hash, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
    async fn set_factor_credential(
        &self,
        user_id: &str,
        factor_id: &str,
        credential_id: &[u8],
        aaguid: Option<&str>,
        credential: &StoredSecret,
        now: UnixTime,
    ) -> StoreResult<bool> {
        ceremonies::set_credential(&self.writes, user_id, factor_id, credential_id, aaguid, credential, now)
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor_id))]
    async fn update_factor_credential(
        &self,
        factor_id: &str,
        credential: &StoredSecret,
        now: UnixTime,
    ) -> StoreResult<()> {
        ceremonies::update_credential(&self.writes, factor_id, credential, now).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn factor_by_credential(&self, credential_id: &[u8], now: UnixTime) -> StoreResult<Option<Factor>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            factor_columns!(),
            " FROM factors WHERE credential_id = $1 AND (status = 'active' OR expires_at > $2)"
        ))
        .bind(credential_id.to_vec())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(factor_from_row).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn remembered_device(
        &self,
        user_id: &str,
        token_hash: &[u8],
        now: UnixTime,
    ) -> StoreResult<Option<RememberedDevice>> {
        devices::find(&self.pool, user_id, token_hash, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn remembered_devices(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<RememberedDevice>> {
        devices::list(&self.pool, user_id, now).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn forget_devices(&self, user_id: &str, device_id: Option<&str>) -> StoreResult<u64> {
        devices::forget(&self.writes, user_id, device_id).await
    }
}
