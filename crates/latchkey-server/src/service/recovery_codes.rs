//! Recovery codes: a set of one-time codes that stand in for a lost second factor,
//! stored as keyed hashes, issued with the first factor and regenerated on request.

use latchkey_core::UnixTime;
use latchkey_core::crypto::HashPurpose;
use latchkey_core::recovery::{self, CODE_BYTES, CODES_PER_SET};
use latchkey_store::Factor;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::random;
use crate::service::audit::{self, Event};
use crate::service::factors;
use crate::service::notify::{self, Notice};
use crate::service::reauth::Authorized;
use crate::state::AppState;

/// The set of codes `codes` stands for, as stored: keyed hashes.
fn hashes(state: &AppState, codes: &[String]) -> Vec<Vec<u8>> {
    codes
        .iter()
        .filter_map(|code| recovery::normalize(code))
        .map(|canonical| state.keys.hashing.hash(HashPurpose::RecoveryCode, canonical.as_bytes()).to_vec())
        .collect()
}

/// Makes a new set of recovery codes (the old set dies) and returns them, once.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn issue(state: &AppState, user_id: &str, now: UnixTime) -> Result<Vec<String>, ApiError> {
    let codes: Vec<String> =
        (0..CODES_PER_SET).map(|_| recovery::format_code(&random::bytes::<CODE_BYTES>())).collect();
    state.store.replace_recovery_codes(user_id, &hashes(state, &codes), now).await?;
    Ok(codes)
}

/// Recovery codes handed out with a new factor's setup, before it is confirmed (for
/// surfaces that show them with the secret). A user who already has an active factor
/// gets a regenerated set, audited and notified like any regeneration.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn issue_at_setup(
    state: &AppState,
    by: &Authorized,
    meta: &ClientMeta,
) -> Result<Vec<String>, ApiError> {
    if factors::has_active(state, by.user_id(), None).await? {
        regenerate(state, by, meta).await
    } else {
        issue(state, by.user_id(), state.now()).await
    }
}

/// Regenerates recovery codes for a user who has an active factor.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn regenerate(
    state: &AppState,
    by: &Authorized,
    meta: &ClientMeta,
) -> Result<Vec<String>, ApiError> {
    let user_id = by.user_id();
    let now = state.now();
    if !factors::has_active(state, user_id, None).await? {
        return Err(ErrorCode::MfaNotEnabled.into());
    }
    let codes = issue(state, user_id, now).await?;
    audit::record(state, Event::new("recovery_codes.regenerated", user_id, meta)).await;
    notify::send(state, user_id, Notice::RecoveryCodesRegenerated, meta).await;
    Ok(codes)
}

/// The recovery codes shown with the setup of the pending factor `factor` (Flashback's
/// `backupCodes`): derived from its id under the server's hashing key, so nothing is
/// stored and they pass nothing until [`keep_setup_codes`] makes them the user's set
/// when the factor is confirmed. The same factor always gives the same codes.
pub fn setup_codes(state: &AppState, factor: &Factor) -> Vec<String> {
    (0..CODES_PER_SET)
        .map(|index| {
            let source = state
                .keys
                .hashing
                .hash(HashPurpose::SetupRecoveryCode, format!("{}:{index}", factor.id).as_bytes());
            let mut bytes = [0u8; CODE_BYTES];
            bytes.copy_from_slice(&source[..CODE_BYTES]);
            recovery::format_code(&bytes)
        })
        .collect()
}

/// After `factor` (set up with [`setup_codes`]) was confirmed: its codes become the
/// user's set, replacing any earlier one (audited and notified as a regeneration when
/// the user had other factors).
#[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor.id))]
pub async fn keep_setup_codes(state: &AppState, factor: &Factor, meta: &ClientMeta) -> Result<(), ApiError> {
    let user_id = factor.user_id.as_str();
    let codes = setup_codes(state, factor);
    state.store.replace_recovery_codes(user_id, &hashes(state, &codes), state.now()).await?;
    if factors::active_factors(state, user_id).await?.len() > 1 {
        audit::record(state, Event::new("recovery_codes.regenerated", user_id, meta)).await;
        notify::send(state, user_id, Notice::RecoveryCodesRegenerated, meta).await;
    }
    Ok(())
}

/// How many of the user's recovery codes are unspent.
pub async fn remaining(state: &AppState, user_id: &str) -> Result<i64, ApiError> {
    Ok(state.store.recovery_codes_remaining(user_id).await?)
}
