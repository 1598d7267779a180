//! WebAuthn: ceremonies in progress (stored sealed, found by their challenge's hash,
//! spent once) and the credentials factors hold.

use latchkey_core::UnixTime;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{is_unique_violation, parse_stored};
use crate::{Ceremony, CeremonyPurpose, StoreError, StoreResult, StoredSecret};

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

/// Gives a pending WebAuthn factor its credential; a credential id any factor holds
/// already is `CredentialTaken`.
pub(super) async fn set_credential(
    pool: &AnyPool,
    user_id: &str,
    factor_id: &str,
    credential_id: &[u8],
    aaguid: Option<&str>,
    credential: &StoredSecret,
    now: UnixTime,
) -> StoreResult<bool> {
    let result = sqlx::query(
        "UPDATE factors SET credential_id = $3, secret_sealed = $4, secret_nonce = $5, secret_key_id = $6,
                aaguid = $8
         WHERE id = $1 AND user_id = $2 AND status = 'pending' AND expires_at > $7
           AND factor_type = 'webauthn'",
    )
    .bind(factor_id)
    .bind(user_id)
    .bind(credential_id.to_vec())
    .bind(credential.sealed.clone())
    .bind(credential.nonce.clone())
    .bind(&credential.key_id)
    .bind(now)
    .bind(aaguid)
    .execute(pool)
    .await;
    match result {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(error) if is_unique_violation(&error) => Err(StoreError::CredentialTaken),
        Err(error) => Err(error.into()),
    }
}

/// Replaces an active WebAuthn factor's sealed credential and records its use.
pub(super) async fn update_credential(
    pool: &AnyPool,
    factor_id: &str,
    credential: &StoredSecret,
    now: UnixTime,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE factors SET secret_sealed = $2, secret_nonce = $3, secret_key_id = $4, last_used_at = $5
         WHERE id = $1 AND status = 'active'",
    )
    .bind(factor_id)
    .bind(credential.sealed.clone())
    .bind(credential.nonce.clone())
    .bind(&credential.key_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}
