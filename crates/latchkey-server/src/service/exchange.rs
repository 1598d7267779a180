//! One-time exchange codes: how an app gets a session after a person signed in on the
//! hosted pages. The pages redirect to the app's allowed `return_to` with `?code=`;
//! the app's server posts the code to `/v1/auth/exchange` within a minute and gets
//! tokens of a new session with the signed-in session's level, methods and time of
//! authentication. A code is spent by its first use, and only its keyed hash is kept.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::crypto::HashPurpose;
use latchkey_core::session::{Aal, Amr};
use latchkey_core::token::TOKEN_BYTES;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::random;
use crate::service::audit::{self, Event};
use crate::service::sessions::{self, IssuedTokens};
use crate::state::AppState;

/// How long a code may wait to be exchanged.
pub const CODE_TTL_SECS: i64 = 60;

/// A new code for the signed-in session `session_id`.
#[tracing::instrument(level = "debug", skip_all, fields(session_id = %session_id))]
pub async fn issue(state: &AppState, session_id: &str) -> Result<String, ApiError> {
    let code = URL_SAFE_NO_PAD.encode(random::bytes::<TOKEN_BYTES>());
    let hash = state.keys.hashing.hash(HashPurpose::ExchangeCode, code.as_bytes());
    let now = state.now();
    state.store.create_exchange_code(&hash, session_id, now, now + CODE_TTL_SECS).await?;
    Ok(code)
}

/// Spends `code` for tokens of a new session like the one it was issued for, which
/// must still be live and past its second factor.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn redeem(state: &AppState, code: &str, meta: &ClientMeta) -> Result<IssuedTokens, ApiError> {
    let code = code.trim();
    if code.is_empty() || code.len() > 64 {
        return Err(ErrorCode::InvalidExchangeCode.into());
    }
    let now = state.now();
    let hash = state.keys.hashing.hash(HashPurpose::ExchangeCode, code.as_bytes());
    let session_id =
        state.store.spend_exchange_code(&hash, now).await?.ok_or(ErrorCode::InvalidExchangeCode)?;
    let session = state
        .store
        .active_session(&session_id, now)
        .await?
        .filter(|s| !s.mfa_pending)
        .ok_or(ErrorCode::InvalidExchangeCode)?;
    let aal = if session.aal == Aal::Aal2.as_str() { Aal::Aal2 } else { Aal::Aal1 };
    let amr: Vec<Amr> = session.amr.iter().filter_map(|m| Amr::parse(m)).collect();
    let tokens = sessions::start(state, &session.user_id, aal, &amr, session.auth_time, false, meta).await?;
    audit::record(state, Event::new("session.exchanged", &session.user_id, meta)).await;
    Ok(tokens)
}
