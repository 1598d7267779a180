//! First-factor throttling: failure counts per account, trusted device and client IP.

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::SqlStore;
use crate::{LoginClaim, LoginThrottleStore, StoreResult, ThrottleKey};
use latchkey_core::UnixTime;

/// Counts one attempt on `key` unless it is delayed; the new count, or `None` when
/// delayed. The counting statement holds the row (PostgreSQL) or the database
/// (SQLite) until the transaction ends, as the second-factor guard's does.
async fn count(
    tx: &mut Transaction<'_, Any>,
    key: &ThrottleKey<'_>,
    now: UnixTime,
) -> StoreResult<Option<i64>> {
    let counted = sqlx::query(
        "INSERT INTO login_throttle (key_hash, failures, last_attempt_at, blocked_until) VALUES ($1, 1, $2, 0)
         ON CONFLICT (key_hash) DO UPDATE SET
             failures = CASE WHEN login_throttle.last_attempt_at <= $2 - $3 THEN 1
                             ELSE login_throttle.failures + 1 END,
             last_attempt_at = $2
         WHERE login_throttle.blocked_until <= $2
         RETURNING failures",
    )
    .bind(key.hash.to_vec())
    .bind(now)
    .bind(key.policy.forget_after_secs)
    .fetch_optional(&mut **tx)
    .await?;
    counted.map(|row| row.try_get("failures")).transpose().map_err(Into::into)
}

async fn set_blocked_until(tx: &mut Transaction<'_, Any>, hash: &[u8], until: UnixTime) -> StoreResult<()> {
    sqlx::query("UPDATE login_throttle SET blocked_until = $1 WHERE key_hash = $2")
        .bind(until)
        .bind(hash.to_vec())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn delay(key: &ThrottleKey<'_>, failures: i64) -> i64 {
    key.policy.delay_after(u32::try_from(failures).unwrap_or(u32::MAX))
}

#[async_trait]
impl LoginThrottleStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn claim_login_attempt(&self, keys: &[ThrottleKey<'_>], now: UnixTime) -> StoreResult<LoginClaim> {
        let mut tx = self.writes.begin().await?;
        for key in keys {
            match count(&mut tx, key, now).await? {
                Some(failures) => {
                    let delay = delay(key, failures);
                    if delay > 0 {
                        set_blocked_until(&mut tx, key.hash, now.saturating_add(delay)).await?;
                    }
                }
                None => {
                    let until: i64 =
                        sqlx::query("SELECT blocked_until FROM login_throttle WHERE key_hash = $1")
                            .bind(key.hash.to_vec())
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("blocked_until")?;
                    // Dropping the transaction takes back what the keys before counted.
                    tx.rollback().await?;
                    return Ok(LoginClaim::Throttled { until });
                }
            }
        }
        tx.commit().await?;
        Ok(LoginClaim::Granted)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn login_succeeded(&self, reset: &[u8], forgive: &[&[u8]]) -> StoreResult<()> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("UPDATE login_throttle SET failures = 0, blocked_until = 0 WHERE key_hash = $1")
            .bind(reset.to_vec())
            .execute(&mut *tx)
            .await?;
        for key in forgive {
            // The claim was granted, so no delay was running before it; the delay its
            // count may have started goes with it.
            sqlx::query(
                "UPDATE login_throttle SET failures = failures - 1, blocked_until = 0
                 WHERE key_hash = $1 AND failures > 0",
            )
            .bind(key.to_vec())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_login_throttle(&self, before: UnixTime, now: UnixTime) -> StoreResult<u64> {
        let result =
            sqlx::query("DELETE FROM login_throttle WHERE last_attempt_at < $1 AND blocked_until <= $2")
                .bind(before)
                .bind(now)
                .execute(&self.writes)
                .await?;
        Ok(result.rows_affected())
    }
}
