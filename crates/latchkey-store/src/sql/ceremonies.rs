//! WebAuthn ceremonies in progress: stored sealed, found by their challenge's hash,
//! spent once.

use latchkey_core::UnixTime;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::parse_stored;
use crate::{Ceremony, CeremonyPurpose, StoreResult, StoredSecret};

macro_rules! ceremony_columns {
    () => {
        "challenge_hash, purpose, user_id, factor_id, mfa_token_hash, state_sealed, state_nonce, state_key_id,
         created_at, expires_at"
    };
}

fn ceremony_from_row(row: &AnyRow) -> StoreResult<Ceremony> {
    Ok(Ceremony {
        challenge_hash: row.try_get("challenge_hash")?,
        purpose: parse_stored(row.try_get("purpose")?, CeremonyPurpose::parse)?,
        user_id: row.try_get("user_id")?,
        factor_id: row.try_get("factor_id")?,
        mfa_token_hash: row.try_get("mfa_token_hash")?,
        state: StoredSecret {
            sealed: row.try_get("state_sealed")?,
            nonce: row.try_get("state_nonce")?,
            key_id: row.try_get("state_key_id")?,
        },
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

pub(super) async fn create(pool: &AnyPool, ceremony: &Ceremony) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO webauthn_ceremonies (",
        ceremony_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(ceremony.challenge_hash.clone())
    .bind(ceremony.purpose.as_str())
    .bind(&ceremony.user_id)
    .bind(&ceremony.factor_id)
    .bind(ceremony.mfa_token_hash.clone())
    .bind(ceremony.state.sealed.clone())
    .bind(ceremony.state.nonce.clone())
    .bind(&ceremony.state.key_id)
    .bind(ceremony.created_at)
    .bind(ceremony.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn take(
    pool: &AnyPool,
    challenge_hash: &[u8],
    now: UnixTime,
) -> StoreResult<Option<Ceremony>> {
    let row = sqlx::query(concat!(
        "UPDATE webauthn_ceremonies SET used_at = $2
         WHERE challenge_hash = $1 AND used_at IS NULL AND expires_at > $2
         RETURNING ",
        ceremony_columns!()
    ))
    .bind(challenge_hash.to_vec())
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(ceremony_from_row).transpose()
}

/// Deletes spent and expired ceremonies.
pub(super) async fn purge(pool: &AnyPool, now: UnixTime) -> StoreResult<u64> {
    let result = sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1 OR used_at IS NOT NULL")
        .bind(now)
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}
