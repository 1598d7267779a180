//! Sessions: starting one after a successful login, rotating refresh tokens, logout,
//! and the periodic purge of what has expired.

use latchkey_core::UnixTime;
use latchkey_core::crypto::HashPurpose;
use latchkey_core::session::{Aal, Amr, after_second_factor};
use latchkey_core::token::TokenKind;
use latchkey_store::{NewSession, RefreshOutcome, RefreshRotation, Session};
use uuid::Uuid;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::audit::{self, Event};
use crate::service::reauth::Authorized;
use crate::state::AppState;
use crate::tokens::new_refresh_token;

/// The tokens handed to a client when a session starts or is refreshed.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub aal: String,
    pub session_id: String,
    pub user_id: String,
}

/// How long a new session lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The configured idle and absolute timeouts, with short access tokens that the
    /// refresh token renews.
    Standard,
    /// This many seconds, with no idle timeout, and an access token that lasts as long:
    /// for a surface without refresh (Prisme.ai's). Every request still checks the
    /// session, so revoking it ends it at once.
    Fixed(i64),
}

/// Starts a session for `user_id` at assurance level `aal` after the methods in `amr`.
/// With `mfa_pending`, the session waits for a second factor before it opens anything
/// but the MFA step of the surface that asked for it.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn start(
    state: &AppState,
    user_id: &str,
    aal: Aal,
    amr: &[Amr],
    auth_time: UnixTime,
    mfa_pending: bool,
    meta: &ClientMeta,
) -> Result<IssuedTokens, ApiError> {
    start_for(state, user_id, aal, amr, auth_time, mfa_pending, Lifetime::Standard, meta).await
}

/// [`start`], for a session of `lifetime`.
#[allow(clippy::too_many_arguments, reason = "each is one fact about the new session")]
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn start_for(
    state: &AppState,
    user_id: &str,
    aal: Aal,
    amr: &[Amr],
    auth_time: UnixTime,
    mfa_pending: bool,
    lifetime: Lifetime,
    meta: &ClientMeta,
) -> Result<IssuedTokens, ApiError> {
    let now = state.now();
    let expiry = match lifetime {
        Lifetime::Standard => state.sessions.new_session(now),
        Lifetime::Fixed(secs) => {
            latchkey_core::session::SessionExpiry { idle_expires_at: now + secs, expires_at: now + secs }
        }
    };
    let session = NewSession {
        id: Uuid::now_v7().to_string(),
        user_id: user_id.to_owned(),
        aal: aal.as_str().to_owned(),
        amr: amr.iter().map(|m| m.as_str().to_owned()).collect(),
        auth_time,
        created_at: now,
        idle_expires_at: expiry.idle_expires_at,
        expires_at: expiry.expires_at,
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
        mfa_pending,
    };
    let (refresh_token, refresh_hash) = new_refresh_token(&state.keys.hashing);
    state.store.create_session(&session, &refresh_hash).await?;
    let stored = Session {
        id: session.id,
        user_id: session.user_id,
        aal: session.aal,
        amr: session.amr,
        auth_time,
        created_at: now,
        idle_expires_at: expiry.idle_expires_at,
        expires_at: expiry.expires_at,
        mfa_pending,
    };
    tracing::info!(user_id = %stored.user_id, session_id = %stored.id, aal = %stored.aal, "session started");
    match lifetime {
        Lifetime::Standard => issue(state, &stored, refresh_token, now),
        Lifetime::Fixed(_) => issue_until(state, &stored, refresh_token, now, stored.expires_at),
    }
}

fn issue(
    state: &AppState,
    session: &Session,
    refresh_token: String,
    now: UnixTime,
) -> Result<IssuedTokens, ApiError> {
    issue_until(state, session, refresh_token, now, now + state.tokens.ttl_secs())
}

/// Tokens for `session` whose access token expires at `exp`.
fn issue_until(
    state: &AppState,
    session: &Session,
    refresh_token: String,
    now: UnixTime,
    exp: UnixTime,
) -> Result<IssuedTokens, ApiError> {
    let access_token = state.tokens.issue_until(session, now, exp).map_err(ApiError::internal)?;
    Ok(IssuedTokens {
        access_token,
        refresh_token,
        expires_in: exp - now,
        aal: session.aal.clone(),
        session_id: session.id.clone(),
        user_id: session.user_id.clone(),
    })
}

/// Spends a refresh token and returns fresh tokens for the same session. A token
/// presented a second time ends its session.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn refresh(state: &AppState, presented: &str) -> Result<IssuedTokens, ApiError> {
    let presented = presented.trim();
    if !TokenKind::Refresh.is_well_formed(presented) {
        return Err(ErrorCode::InvalidRefreshToken.into());
    }
    let now = state.now();
    let presented_hash = state.keys.hashing.hash(HashPurpose::RefreshToken, presented.as_bytes());
    let (successor, successor_hash) = new_refresh_token(&state.keys.hashing);
    let rotation = RefreshRotation {
        presented_hash: &presented_hash,
        successor_hash: &successor_hash,
        now,
        idle_timeout_secs: state.sessions.idle_timeout_secs,
    };
    match state.store.rotate_refresh_token(&rotation).await? {
        RefreshOutcome::Rotated(session) => issue(state, &session, successor, now),
        RefreshOutcome::Reused { session_id } => {
            tracing::warn!(%session_id, "a spent refresh token was presented again; the session is revoked");
            Err(ErrorCode::InvalidRefreshToken.into())
        }
        RefreshOutcome::Invalid => Err(ErrorCode::InvalidRefreshToken.into()),
    }
}

/// Ends a session at once: its access tokens stop working and its refresh token dies.
/// Raises a live session to `aal2` after it proved a second factor just now (`method`):
/// the one place a session's level and methods change after login, for every surface.
/// Its `auth_time` becomes now, which re-authentication for sensitive changes reads.
#[tracing::instrument(level = "debug", skip_all, fields(session_id = %session.id, user_id = %session.user_id))]
pub async fn raise(state: &AppState, session: &Session, method: Amr) -> Result<(), ApiError> {
    let amr: Vec<String> =
        after_second_factor(&session.amr, method).iter().map(|m| m.as_str().to_owned()).collect();
    if !state.store.elevate_session(&session.id, Aal::Aal2.as_str(), &amr, state.now()).await? {
        return Err(ErrorCode::InvalidToken.into());
    }
    Ok(())
}

/// After a change to the user's factors (DESIGN rule 19): every session of the user
/// but the one `by` acts from ends, so a session opened before the change, perhaps by
/// whoever the change shuts out, does not live on. An administrator keeps none.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %by.user_id()))]
pub async fn end_others(state: &AppState, by: &Authorized, meta: &ClientMeta) -> Result<u64, ApiError> {
    end_all(state, by.user_id(), by.session_id(), meta, by.actor()).await
}

/// The user's live sessions, newest first.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<Session>, ApiError> {
    Ok(state.store.user_sessions(user_id, state.now()).await?)
}

/// Ends one of the user's sessions; `not_found` unless it is theirs and live.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, session_id = %session_id))]
pub async fn end(
    state: &AppState,
    user_id: &str,
    session_id: &str,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    if !state.store.revoke_user_session(user_id, session_id, state.now()).await? {
        return Err(ErrorCode::NotFound.into());
    }
    audit::record(state, Event::new("session.revoked", user_id, meta)).await;
    Ok(())
}

/// Ends every session of the user but `keep` (all of them with `None`, as an
/// administrator does); returns how many ended.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn end_all(
    state: &AppState,
    user_id: &str,
    keep: Option<&str>,
    meta: &ClientMeta,
    actor: Option<String>,
) -> Result<u64, ApiError> {
    let ended = state.store.revoke_other_sessions(user_id, keep, state.now()).await?;
    audit::record(state, Event::new("sessions.revoked", user_id, meta).actor(actor)).await;
    Ok(ended)
}

#[tracing::instrument(level = "debug", skip_all, fields(session_id = %session_id))]
pub async fn logout(state: &AppState, session_id: &str) -> Result<(), ApiError> {
    if state.store.revoke_session(session_id, state.now()).await? {
        tracing::info!(%session_id, "session ended by logout");
    }
    Ok(())
}

/// Deletes what is over: sessions, unconfirmed factors past their time, spent or
/// expired MFA tokens, spent or expired account tokens (reset and recovery links,
/// address-change codes), finished messages and forgotten throttle counts. Run
/// periodically by the `purge-expired` task.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn purge(state: &AppState) -> Result<u64, ApiError> {
    let now = state.now();
    // Finished messages are kept a week for inspection; throttle records outlive
    // their hour-long window by a day.
    let delivery = state.store.purge_delivery(now - 7 * 86_400, now - 86_400).await?;
    // First-factor counts are forgotten after their window anyway.
    let forget_before = now - state.config.login_throttle.forget_after_secs;
    let logins = state.store.purge_login_throttle(forget_before, now).await?;
    // Webhook attempts are listed for a month.
    let attempts = state.store.purge_webhook_attempts(now - 30 * 86_400).await?;
    Ok(state.store.purge_sessions(now).await?
        + state.store.purge_expired_factors(now).await?
        + state.store.purge_account_tokens(now).await?
        + delivery
        + logins
        + attempts)
}
