//! Token introspection (RFC 7662) for apps that verify tokens themselves: whether an
//! access token is live right now (its signature and expiry, and its session not ended
//! or its API key not revoked), with what it says. A token that is not live is only
//! `inactive`, never why.

use latchkey_core::UnixTime;
use latchkey_store::ApiKey;

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::tokens::AccessClaims;

/// What a live token is.
pub enum Active {
    /// A user's access token, with its session's level and methods as they are now (a
    /// session raised since the token was issued reports the raised level).
    User { claims: AccessClaims, aal: String, amr: Vec<String>, mfa_pending: bool },
    /// A client token of the `client_credentials` grant, acting as an API key.
    Client { key: ApiKey, exp: UnixTime, iat: UnixTime },
}

/// Whether `token` is live, and what it is.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn introspect(state: &AppState, token: &str) -> Result<Option<Active>, ApiError> {
    let token = token.trim();
    let now = state.now();
    if let Ok(claims) = state.tokens.verify(token, now) {
        return Ok(state.store.active_session(&claims.sid, now).await?.map(|session| Active::User {
            aal: session.aal,
            amr: session.amr,
            mfa_pending: session.mfa_pending,
            claims,
        }));
    }
    if let Ok(claims) = state.tokens.verify_client(token, now) {
        let key = state.store.api_key(&claims.client_id).await?;
        return Ok(key.map(|key| Active::Client { key, exp: claims.exp, iat: claims.iat }));
    }
    Ok(None)
}
