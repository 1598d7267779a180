//! Re-authentication for sensitive changes (adding or removing a factor, regenerating
//! recovery codes, disabling MFA). A user with an active factor needs a session at
//! `aal2` whose last authentication is recent; a user without one needs a recent
//! login or their current password.

use secrecy::SecretString;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};
use crate::extract::AuthUser;
use crate::service::{accounts, factors};
use crate::state::AppState;

fn required(reason: &str) -> ApiError {
    ApiError::new(ErrorCode::ReauthenticationRequired).with_details(json!({ "reason": reason }))
}

pub async fn require_recent_authentication(
    state: &AppState,
    user: &AuthUser,
    current_password: Option<SecretString>,
) -> Result<(), ApiError> {
    let session = &user.session;
    let recent = state.now() - session.auth_time < state.config.mfa.reauth_window_secs;
    if factors::has_active(state, &session.user_id, None).await? {
        // An `aal2` session lists its second factor in `amr`; one opened by a
        // remembered device lists only the first, and does not count.
        let second_factor_proven = session.aal == "aal2" && session.amr.len() >= 2;
        return if second_factor_proven && recent {
            Ok(())
        } else {
            Err(required("recent_mfa_login_needed"))
        };
    }
    if recent {
        return Ok(());
    }
    let Some(password) = current_password else { return Err(required("current_password_needed")) };
    let account = accounts::session_user(state, &session.user_id).await?;
    match accounts::authenticate_password(state, &account.email, password).await {
        Ok(_) => Ok(()),
        Err(error) if error.code == ErrorCode::InvalidCredentials => Err(required("wrong_password")),
        Err(error) => Err(error),
    }
}
