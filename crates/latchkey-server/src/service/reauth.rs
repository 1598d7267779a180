//! Re-authentication for sensitive changes (adding or removing a factor, regenerating
//! recovery codes, disabling MFA). A user with an active factor needs a session at
//! `aal2` whose last authentication is recent; a user without one needs a recent
//! login or their current password.

use secrecy::SecretString;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};
use crate::extract::AuthUser;
use crate::service::accounts;
use crate::state::AppState;

fn required(reason: &str) -> ApiError {
    ApiError::new(ErrorCode::ReauthenticationRequired).with_details(json!({ "reason": reason }))
}

/// Whether the user has at least one active factor.
pub async fn has_active_factor(state: &AppState, user_id: &str) -> Result<bool, ApiError> {
    Ok(state.store.factors(user_id, state.now()).await?.iter().any(|f| f.status == "active"))
}

pub async fn require_recent_authentication(
    state: &AppState,
    user: &AuthUser,
    current_password: Option<SecretString>,
) -> Result<(), ApiError> {
    let session = &user.session;
    let recent = state.now() - session.auth_time < state.config.mfa.reauth_window_secs;
    if has_active_factor(state, &session.user_id).await? {
        return if session.aal == "aal2" && recent {
            Ok(())
        } else {
            Err(required("recent_mfa_login_needed"))
        };
    }
    if recent {
        return Ok(());
    }
    let Some(password) = current_password else { return Err(required("current_password_needed")) };
    let account = state.store.user_by_id(&session.user_id).await?.ok_or(ErrorCode::InvalidToken)?;
    match accounts::authenticate_password(state, &account.email, password).await {
        Ok(_) => Ok(()),
        Err(error) if error.code == ErrorCode::InvalidCredentials => Err(required("wrong_password")),
        Err(error) => Err(error),
    }
}
