//! Second-factor attempts: the guard's claim (the attempt counted before its code is
//! checked) and a whole attempt decided in one transaction.

use latchkey_core::UnixTime;
use latchkey_core::lockout::LockoutPolicy;
use sqlx::{AnyConnection, AnyPool};
use sqlx::Row;

use super::audit;
use crate::{AttemptClaim, AttemptOutcome, AuditEvent, SecondFactorAttempt, StoreResult, TotpSpend};

/// Counts an attempt for `user_id` unless the guard blocks it, inside the caller's
/// transaction: the counting statement locks the user's row (PostgreSQL) or the
/// database (SQLite) until the new deadline is written, so concurrent attempts see it
/// and none slips through.
pub(super) async fn claim_in(
    conn: &mut AnyConnection,
    user_id: &str,
    now: UnixTime,
    policy: &LockoutPolicy,
) -> StoreResult<AttemptClaim> {
    let counted = sqlx::query(
        "INSERT INTO mfa_guards (user_id, failures, blocked_until) VALUES ($1, 1, 0)
         ON CONFLICT (user_id) DO UPDATE SET failures = mfa_guards.failures + 1
         WHERE mfa_guards.blocked_until <= $2 AND mfa_guards.failures < $3
         RETURNING failures",
    )
    .bind(user_id)
    .bind(now)
    .bind(i64::from(policy.lock_after))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = counted else {
        let row = sqlx::query("SELECT failures, blocked_until FROM mfa_guards WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *conn)
            .await?;
        let failures: i64 = row.try_get("failures")?;
        return Ok(if failures >= i64::from(policy.lock_after) {
            AttemptClaim::Locked
        } else {
            AttemptClaim::Blocked { until: row.try_get("blocked_until")? }
        });
    };
    let failures: i64 = row.try_get("failures")?;
    let delay = policy.delay_after(u32::try_from(failures).unwrap_or(u32::MAX));
    if delay > 0 {
        sqlx::query("UPDATE mfa_guards SET blocked_until = $1 WHERE user_id = $2")
            .bind(now.saturating_add(delay))
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(AttemptClaim::Granted { failures })
}

/// The failure count starts again.
pub(super) async fn reset<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    user_id: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE mfa_guards SET failures = 0, blocked_until = 0 WHERE user_id = $1")
        .bind(user_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Records an accepted TOTP step if it is later than the factor's last: true for
/// exactly one of any number of concurrent callers.
pub(super) async fn record_step<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    spend: &TotpSpend,
    now: UnixTime,
) -> StoreResult<bool> {
    let result = sqlx::query(
        "UPDATE factors SET last_step = $1, last_used_at = $2
         WHERE id = $3 AND status = 'active' AND (last_step IS NULL OR last_step < $1)",
    )
    .bind(spend.step)
    .bind(now)
    .bind(&spend.factor_id)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Decides `attempt` inside the caller's transaction.
pub(super) async fn decide_in(
    conn: &mut AnyConnection,
    attempt: &SecondFactorAttempt,
) -> StoreResult<(AttemptOutcome, Vec<AuditEvent>)> {
    let SecondFactorAttempt { user_id, now, policy, spend, audit: audit_for } = attempt;
    let outcome = match claim_in(conn, user_id, *now, policy).await? {
        AttemptClaim::Blocked { until } => AttemptOutcome::Blocked { until },
        AttemptClaim::Locked => AttemptOutcome::Locked,
        AttemptClaim::Granted { failures } => match spend {
            Some(spend) if record_step(&mut *conn, spend, *now).await? => {
                reset(&mut *conn, user_id).await?;
                AttemptOutcome::Accepted
            }
            Some(_) => AttemptOutcome::Refused { failures, replayed: true },
            None => AttemptOutcome::Refused { failures, replayed: false },
        },
    };
    let events = audit_for(&outcome);
    for event in &events {
        audit::insert(&mut *conn, event).await?;
    }
    Ok((outcome, events))
}

/// Decides `attempt` in a transaction of its own.
pub(super) async fn decide_alone(
    pool: &AnyPool,
    attempt: &SecondFactorAttempt,
) -> StoreResult<(AttemptOutcome, Vec<AuditEvent>)> {
    let mut tx = pool.begin().await?;
    let decided = decide_in(&mut tx, attempt).await?;
    tx.commit().await?;
    Ok(decided)
}
