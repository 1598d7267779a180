//! Re-authentication for sensitive changes (adding or removing a factor, regenerating
//! recovery codes, turning MFA off). A user with an active factor needs a session at
//! `aal2` whose second factor was proven recently; a user without one needs a recent
//! login or their current password.
//!
//! The rule holds by construction: the service functions that make those changes take
//! an [`Authorized`], and only this module makes one — [`require_recent_authentication`]
//! for the user, [`by_second_factor`] for a user who proved their second factor in the
//! same request, [`operator`] for an administrator's key or the operator's tools. A
//! surface cannot reach a sensitive change without going through the rule.

use latchkey_core::session::proved_second_factor;
use latchkey_store::Session;
use secrecy::SecretString;
use serde_json::json;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::login_throttle::Client;
use crate::service::second_factor::{self, Proof, Verified};
use crate::service::{accounts, factors, sessions};
use crate::state::AppState;

/// Why re-authentication was refused (the `reason` in the error's details).
pub const RECENT_MFA_LOGIN_NEEDED: &str = "recent_mfa_login_needed";

/// Leave to change one user's factors.
#[derive(Debug)]
pub struct Authorized {
    user_id: String,
    actor: Option<String>,
    /// The session the user acts from, which their changes leave signed in.
    session_id: Option<String>,
}

impl Authorized {
    /// The user whose factors may change.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Who acts for the user: `None` for the user themselves, else the administrator's
    /// key (as audit events record it).
    pub fn actor(&self) -> Option<String> {
        self.actor.clone()
    }

    /// The session the user acts from (`None` for an administrator): a change that ends
    /// the user's other sessions keeps this one.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
}

/// An administrator (`actor`: their API key, or the operator's tool) acting on
/// `user_id`: their authority is the key itself, not a recent login.
pub fn operator(user_id: &str, actor: String) -> Authorized {
    Authorized { user_id: user_id.to_owned(), actor: Some(actor), session_id: None }
}

/// The user of `session` proved their second factor in this very request
/// (the [`Verified`] only `second_factor::verify` makes), with their password: as
/// recent as re-authentication gets, for surfaces that take both in one call.
pub fn by_second_factor(session: &Session, proof: &Verified) -> Result<Authorized, ApiError> {
    if proof.user_id() != session.user_id {
        return Err(ApiError::internal(anyhow::anyhow!("a second factor proven for another user")));
    }
    Ok(Authorized { user_id: session.user_id.clone(), actor: None, session_id: Some(session.id.clone()) })
}

fn required(reason: &str) -> ApiError {
    ApiError::new(ErrorCode::ReauthenticationRequired).with_details(json!({ "reason": reason }))
}

/// The rule itself, for the user of `session` changing their own factors. A session
/// still waiting for its second factor (Prisme.ai's and Flashback's logins) never
/// qualifies.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub async fn require_recent_authentication(
    state: &AppState,
    session: &Session,
    current_password: Option<SecretString>,
) -> Result<Authorized, ApiError> {
    let has_factor = factors::has_active(state, &session.user_id, None).await?;
    // A session waiting for a second factor the user has does not qualify; one waiting
    // for the user to set up their first (their organisation enforces MFA) is judged
    // as any session of a user without a factor is.
    if session.mfa_pending && has_factor {
        return Err(required(RECENT_MFA_LOGIN_NEEDED));
    }
    let authorized =
        || Authorized { user_id: session.user_id.clone(), actor: None, session_id: Some(session.id.clone()) };
    let recent = state.now() - session.auth_time < state.config.mfa.reauth_window_secs;
    if has_factor {
        // An `aal2` session lists its second factor in `amr` (or signed in with a
        // passkey alone); one opened by a remembered device lists only the first,
        // and does not count.
        let second_factor_proven = proved_second_factor(&session.aal, &session.amr);
        return if second_factor_proven && recent {
            Ok(authorized())
        } else {
            Err(required(RECENT_MFA_LOGIN_NEEDED))
        };
    }
    if recent {
        return Ok(authorized());
    }
    let Some(password) = current_password else { return Err(required("current_password_needed")) };
    let account = accounts::session_user(state, &session.user_id).await?;
    match accounts::authenticate_password(
        state,
        &account.email,
        password,
        Client::new(&ClientMeta::default()),
    )
    .await
    {
        Ok(_) => Ok(authorized()),
        Err(error) if error.code == ErrorCode::InvalidCredentials => Err(required("wrong_password")),
        Err(error) => Err(error),
    }
}

/// The user of `session` proves their second factor again (a code, a recovery code or
/// a passkey; a sent code or ceremony bound to this session): the session's
/// `auth_time` becomes now, which [`require_recent_authentication`] then accepts.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub async fn step_up(
    state: &AppState,
    session: &Session,
    proof: Proof<'_>,
    meta: &ClientMeta,
) -> Result<Verified, ApiError> {
    let verified = second_factor::verify(state, &session.user_id, proof, meta, None).await?;
    sessions::raise(state, session, verified.method.amr()).await?;
    Ok(verified)
}

/// The user of `session`, who has no second factor, confirms their password: the
/// session's `auth_time` becomes now. A user with a factor must [`step_up`] instead.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub async fn confirm_password(
    state: &AppState,
    session: &Session,
    password: SecretString,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    if factors::has_active(state, &session.user_id, None).await? {
        return Err(required(RECENT_MFA_LOGIN_NEEDED));
    }
    let account = accounts::session_user(state, &session.user_id).await?;
    match accounts::authenticate_password(state, &account.email, password, Client::new(meta)).await {
        Ok(_) => {}
        Err(error) if error.code == ErrorCode::InvalidCredentials => return Err(required("wrong_password")),
        Err(error) => return Err(error),
    }
    if !state.store.elevate_session(&session.id, &session.aal, &session.amr, state.now()).await? {
        return Err(ErrorCode::InvalidToken.into());
    }
    Ok(())
}

/// The rule for changing the password: the current password (checked under the
/// first-factor throttle, like a login), or without it a recent authentication as
/// [`require_recent_authentication`] judges it. A session still waiting for its second
/// factor never qualifies.
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub async fn for_password_change(
    state: &AppState,
    session: &Session,
    current_password: Option<SecretString>,
    meta: &ClientMeta,
) -> Result<Authorized, ApiError> {
    let Some(password) = current_password else {
        return require_recent_authentication(state, session, None).await;
    };
    if session.mfa_pending && factors::has_active(state, &session.user_id, None).await? {
        return Err(required(RECENT_MFA_LOGIN_NEEDED));
    }
    let account = accounts::session_user(state, &session.user_id).await?;
    match accounts::authenticate_password(state, &account.email, password, Client::new(meta)).await {
        Ok(_) => Ok(Authorized {
            user_id: session.user_id.clone(),
            actor: None,
            session_id: Some(session.id.clone()),
        }),
        Err(error) if error.code == ErrorCode::InvalidCredentials => Err(required("wrong_password")),
        Err(error) => Err(error),
    }
}
