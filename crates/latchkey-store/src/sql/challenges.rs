//! Challenges: one-time codes and links sent by email or SMS. Every change that
//! decides an outcome is one conditional statement, so concurrent requests (on one
//! instance or several) cannot both spend a challenge or exceed its attempts.

use latchkey_core::UnixTime;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::{
    Challenge, ChallengeKind, ChallengePurpose, CodeChallengeQuery, NewChallenge, StoreError, StoreResult,
};

macro_rules! challenge_columns {
    () => {
        "id, user_id, factor_id, purpose, kind, secret_hash, mfa_token_hash, attempts, created_at,
         expires_at, confirmed_at, used_at"
    };
}

fn challenge_from_row(row: &AnyRow) -> StoreResult<Challenge> {
    let purpose: String = row.try_get("purpose")?;
    let kind: String = row.try_get("kind")?;
    Ok(Challenge {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        factor_id: row.try_get("factor_id")?,
        purpose: ChallengePurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown challenge purpose {purpose:?}")))?,
        kind: match kind.as_str() {
            "code" => ChallengeKind::Code,
            "link" => ChallengeKind::Link,
            other => return Err(StoreError::Corrupt(format!("unknown challenge kind {other:?}"))),
        },
        secret_hash: row.try_get("secret_hash")?,
        mfa_token_hash: row.try_get("mfa_token_hash")?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        confirmed_at: row.try_get("confirmed_at")?,
        used_at: row.try_get("used_at")?,
    })
}

pub(super) async fn create(pool: &AnyPool, challenge: &NewChallenge) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    let superseded = match &challenge.factor_id {
        Some(factor_id) => sqlx::query(
            "UPDATE challenges SET used_at = $1 WHERE factor_id = $2 AND purpose = $3 AND used_at IS NULL",
        )
        .bind(challenge.created_at)
        .bind(factor_id),
        None => sqlx::query(
            "UPDATE challenges SET used_at = $1
             WHERE user_id = $2 AND factor_id IS NULL AND purpose = $3 AND used_at IS NULL",
        )
        .bind(challenge.created_at)
        .bind(&challenge.user_id),
    };
    superseded.bind(challenge.purpose.as_str()).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO challenges (id, user_id, factor_id, purpose, kind, secret_hash, mfa_token_hash,
             created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&challenge.id)
    .bind(&challenge.user_id)
    .bind(&challenge.factor_id)
    .bind(challenge.purpose.as_str())
    .bind(challenge.kind.as_str())
    .bind(challenge.secret_hash.clone())
    .bind(challenge.mfa_token_hash.clone())
    .bind(challenge.created_at)
    .bind(challenge.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn attempt_code(
    pool: &AnyPool,
    query: &CodeChallengeQuery<'_>,
    max_attempts: i64,
    now: UnixTime,
) -> StoreResult<Option<Challenge>> {
    // The sub-select finds the newest open challenge; the outer conditions are
    // checked again on the row itself, so a concurrent attempt that used up the
    // last try or spent the challenge is seen.
    sqlx::query(concat!(
        "UPDATE challenges SET attempts = attempts + 1
         WHERE id = (SELECT id FROM challenges
                     WHERE user_id = $1 AND factor_id = $2 AND purpose = $3 AND kind = 'code'
                       AND used_at IS NULL AND expires_at > $4
                       AND ($5 IS NULL OR mfa_token_hash = $5)
                     ORDER BY created_at DESC, id DESC LIMIT 1)
           AND used_at IS NULL AND expires_at > $4 AND attempts < $6
         RETURNING ",
        challenge_columns!()
    ))
    .bind(query.user_id)
    .bind(query.factor_id)
    .bind(query.purpose.as_str())
    .bind(now)
    .bind(query.mfa_token_hash.map(<[u8]>::to_vec))
    .bind(max_attempts)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(challenge_from_row)
    .transpose()
}

pub(super) async fn spend(pool: &AnyPool, id: &str, confirmed: bool, now: UnixTime) -> StoreResult<bool> {
    let result = sqlx::query(
        "UPDATE challenges SET used_at = $2
         WHERE id = $1 AND used_at IS NULL AND expires_at > $2 AND ($3 = 0 OR confirmed_at IS NOT NULL)",
    )
    .bind(id)
    .bind(now)
    .bind(i64::from(confirmed))
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub(super) async fn confirm_link(
    pool: &AnyPool,
    secret_hash: &[u8],
    now: UnixTime,
) -> StoreResult<Option<Challenge>> {
    sqlx::query(concat!(
        "UPDATE challenges SET confirmed_at = $2
         WHERE secret_hash = $1 AND kind = 'link' AND confirmed_at IS NULL AND used_at IS NULL
           AND expires_at > $2
         RETURNING ",
        challenge_columns!()
    ))
    .bind(secret_hash.to_vec())
    .bind(now)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(challenge_from_row)
    .transpose()
}

pub(super) async fn open_link(
    pool: &AnyPool,
    secret_hash: &[u8],
    now: UnixTime,
) -> StoreResult<Option<Challenge>> {
    sqlx::query(concat!(
        "SELECT ",
        challenge_columns!(),
        " FROM challenges WHERE secret_hash = $1 AND kind = 'link' AND confirmed_at IS NULL
            AND used_at IS NULL AND expires_at > $2"
    ))
    .bind(secret_hash.to_vec())
    .bind(now)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(challenge_from_row)
    .transpose()
}

pub(super) async fn by_id(pool: &AnyPool, user_id: &str, id: &str) -> StoreResult<Option<Challenge>> {
    sqlx::query(concat!("SELECT ", challenge_columns!(), " FROM challenges WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(challenge_from_row)
        .transpose()
}

pub(super) async fn purge(pool: &AnyPool, now: UnixTime) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM challenges WHERE expires_at <= $1 OR used_at IS NOT NULL")
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected())
}
