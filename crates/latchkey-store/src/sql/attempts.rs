//! Second-factor attempts: the guard's claim (the attempt counted before its code is
//! checked) and a whole attempt decided in one transaction, or, for a right code on
//! PostgreSQL, in one statement.

use latchkey_core::UnixTime;
use latchkey_core::lockout::LockoutPolicy;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

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

/// The conditional write that spends a TOTP step: only a step later than the factor's
/// last is recorded (`$1` step, `$2` now, `$3` factor).
macro_rules! step_statement {
    () => {
        "UPDATE factors SET last_step = $1, last_used_at = $2
         WHERE id = $3 AND status = 'active' AND (last_step IS NULL OR last_step < $1)"
    };
}

/// Records an accepted TOTP step if it is later than the factor's last: true for
/// exactly one of any number of concurrent callers.
pub(super) async fn record_step<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    spend: &TotpSpend,
    now: UnixTime,
) -> StoreResult<bool> {
    let result = sqlx::query(step_statement!())
        .bind(spend.step)
        .bind(now)
        .bind(&spend.factor_id)
        .execute(executor)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Decides `attempt` inside the caller's transaction and makes its audit rows, which
/// the caller writes in the same transaction (with [`audit::insert_all`], so a group
/// of attempts writes its rows in one statement).
///
/// A code that proved a step is spent first, by one statement that also checks the
/// guard: it spends nothing while the guard blocks or locks, and it returns the
/// failures counted so far, so the count is cleared only when there is one. (Counting
/// a right code's attempt and clearing the count again in the same transaction leaves
/// the same rows behind in three statements instead of one.) When the spend is refused
/// — the step already used, or the guard in the way — the attempt takes a wrong code's
/// path: the claim decides whether it is counted, or blocked or locked.
pub(super) async fn decide_in(
    conn: &mut AnyConnection,
    attempt: &SecondFactorAttempt,
) -> StoreResult<(AttemptOutcome, Vec<AuditEvent>)> {
    let SecondFactorAttempt { user_id, now, policy, spend, audit: audit_for } = attempt;
    let spent = match spend {
        Some(spend) => spend_unless_guarded(&mut *conn, user_id, spend, *now, policy).await?,
        None => None,
    };
    let outcome = match spent {
        Some(counted) => {
            if counted > 0 {
                clear_unless_locked(&mut *conn, user_id, policy).await?;
            }
            AttemptOutcome::Accepted
        }
        None => match claim_in(conn, user_id, *now, policy).await? {
            AttemptClaim::Blocked { until } => AttemptOutcome::Blocked { until },
            AttemptClaim::Locked => AttemptOutcome::Locked,
            AttemptClaim::Granted { failures } => {
                AttemptOutcome::Refused { failures, replayed: spend.is_some() }
            }
        },
    };
    let events = audit_for(&outcome);
    Ok((outcome, events))
}

/// [`step_statement`] unless the guard blocks or locks attempts (`$4` user, `$5` the
/// lock's failure count).
macro_rules! spend_statement {
    () => {
        concat!(
            step_statement!(),
            " AND NOT EXISTS (SELECT 1 FROM mfa_guards
                              WHERE user_id = $4 AND (blocked_until > $2 OR failures >= $5))"
        )
    };
}

/// Records `spend`'s step if it is later than the factor's last and the user's guard
/// neither blocks nor locks attempts: the failures counted so far (0 without a guard
/// row), or `None` when nothing was spent. Like [`record_step`], true for exactly one
/// of any number of concurrent callers.
async fn spend_unless_guarded(
    conn: &mut AnyConnection,
    user_id: &str,
    spend: &TotpSpend,
    now: UnixTime,
    policy: &LockoutPolicy,
) -> StoreResult<Option<i64>> {
    let row = sqlx::query(concat!(
        spend_statement!(),
        " RETURNING (SELECT failures FROM mfa_guards WHERE user_id = $4) AS counted"
    ))
    .bind(spend.step)
    .bind(now)
    .bind(&spend.factor_id)
    .bind(user_id)
    .bind(i64::from(policy.lock_after))
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| Ok(row.try_get::<Option<i64>, _>("counted")?.unwrap_or(0))).transpose()
}

/// PostgreSQL: a right code decided in one statement and one round trip (no `BEGIN`
/// or `COMMIT`): the step spent unless the guard is in the way, the count cleared if
/// there is one, and the audit rows of an accepted attempt written, all or nothing.
/// `None` when the spend was refused — the step already used, or the guard blocking —
/// and nothing was written: the caller decides the attempt in a transaction
/// ([`decide_alone`]), where it is refused, blocked or locked.
pub(super) async fn accept_at_once(
    pool: &AnyPool,
    attempt: &SecondFactorAttempt,
) -> StoreResult<Option<(AttemptOutcome, Vec<AuditEvent>)>> {
    let Some(spend) = &attempt.spend else { return Ok(None) };
    let events = (attempt.audit)(&AttemptOutcome::Accepted);
    // The rows are selected from `spent`, so they are written only if the step was.
    let rows = (0..events.len())
        .map(|row| {
            let first = 6 + row * 11;
            let params: Vec<String> = (first..first + 11).map(|n| format!("${n}")).collect();
            format!("SELECT {} FROM spent", params.join(", "))
        })
        .collect::<Vec<_>>();
    let written = if rows.is_empty() {
        String::new()
    } else {
        format!(
            ", written AS (INSERT INTO audit_events (id, occurred_at, user_id, event_type, outcome, factor_id,
                                                    factor_type, actor, ip, user_agent, reason)
                           {})",
            rows.join(" UNION ALL ")
        )
    };
    let sql = format!(
        concat!(
            "WITH spent AS (",
            spend_statement!(),
            " RETURNING id),
             cleared AS (UPDATE mfa_guards SET failures = 0, blocked_until = 0
                         WHERE user_id = $4 AND failures > 0 AND failures < $5
                           AND EXISTS (SELECT 1 FROM spent))
             {}
             SELECT id FROM spent"
        ),
        written
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(spend.step)
        .bind(attempt.now)
        .bind(&spend.factor_id)
        .bind(&attempt.user_id)
        .bind(i64::from(attempt.policy.lock_after));
    for event in &events {
        query = audit::bind_row(query, event);
    }
    let spent = query.fetch_optional(pool).await?;
    Ok(spent.map(|_| (AttemptOutcome::Accepted, events)))
}

/// The failure count starts again after a right code, unless attempts made meanwhile
/// (another transaction, on PostgreSQL) have locked the second factor: then the lock
/// stands.
async fn clear_unless_locked(
    conn: &mut AnyConnection,
    user_id: &str,
    policy: &LockoutPolicy,
) -> StoreResult<()> {
    sqlx::query("UPDATE mfa_guards SET failures = 0, blocked_until = 0 WHERE user_id = $1 AND failures < $2")
        .bind(user_id)
        .bind(i64::from(policy.lock_after))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Decides `attempt` in a transaction of its own.
pub(super) async fn decide_alone(
    pool: &AnyPool,
    attempt: &SecondFactorAttempt,
) -> StoreResult<(AttemptOutcome, Vec<AuditEvent>)> {
    let mut tx = pool.begin().await?;
    let decided = decide_in(&mut tx, attempt).await?;
    audit::insert_all(&mut tx, &decided.1).await?;
    tx.commit().await?;
    Ok(decided)
}
