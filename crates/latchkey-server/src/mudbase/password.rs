//! Mudbase's password routes, as its SDK calls them: `POST /api/auth/password-reset`
//! (the emailed link), `POST /api/auth/password-reset/validate`,
//! `POST /api/auth/password-reset/{token}` and `PATCH /api/users/password`. A user with
//! 2FA resets with `totpToken` (a TOTP or backup code, as Mudbase's login takes it):
//! without it the answer is 403 `TWO_FACTOR_REQUIRED`, as at login.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Message, MudbaseError, MudbaseErrorBody, Result, required, user};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{AuthUser, ClientMeta, JsonBody};
use crate::service::password_changes::{self, ResetProof};
use crate::service::reauth;
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_reset))
        .routes(routes!(validate))
        .routes(routes!(reset))
        .routes(routes!(change))
}

#[derive(Deserialize, ToSchema)]
struct RequestReset {
    email: Option<String>,
}

/// `POST /api/auth/password-reset`: emails a reset link (30 minutes, once) if the
/// address has an account; the same answer for every address.
#[utoipa::path(post, path = "/auth/password-reset", tag = "mudbase",
    request_body = RequestReset,
    responses(
        (status = 200, description = "Accepted.", body = Message),
        (status = 400, description = "Not an email address.", body = MudbaseErrorBody),
        (status = 429, description = "Too many messages to this address (`RATE_LIMITED`).", body = MudbaseErrorBody),
    ))]
async fn request_reset(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<RequestReset>, ApiError>,
) -> Result<Json<Message>> {
    let JsonBody(body) = body?;
    let email = required(body.email, "email")?;
    password_changes::forgot(&state, &email, &meta).await?;
    Ok(Json(Message { message: "If an account exists for this email, a password reset link has been sent" }))
}

#[derive(Deserialize, ToSchema)]
struct ValidateToken {
    /// The token from the reset link's query.
    #[schema(value_type = Option<String>)]
    token: Option<SecretString>,
}

/// Whether a reset link's token can still be used.
#[derive(Serialize, ToSchema)]
struct Validity {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `{"valid": false, "error"}` with 400, the one shape this route's 400 has.
fn invalid(error: impl Into<String>) -> (StatusCode, Json<Validity>) {
    (StatusCode::BAD_REQUEST, Json(Validity { valid: false, error: Some(error.into()) }))
}

/// `POST /api/auth/password-reset/validate`: `{"valid": true}`, or 400
/// `{"valid": false, "error"}` for an unknown, expired or used token (and for a body
/// without one).
#[utoipa::path(post, path = "/auth/password-reset/validate", tag = "mudbase",
    request_body = ValidateToken,
    responses(
        (status = 200, description = "The token can be used.", body = Validity),
        (status = 400, description = "It cannot.", body = Validity),
    ))]
async fn validate(
    State(state): State<AppState>,
    body: std::result::Result<JsonBody<ValidateToken>, ApiError>,
) -> std::result::Result<(StatusCode, Json<Validity>), MudbaseError> {
    let token =
        match body.map_err(MudbaseError::from).and_then(|JsonBody(body)| required(body.token, "token")) {
            Ok(token) => token,
            Err(refused) if refused.status == StatusCode::BAD_REQUEST => return Ok(invalid(refused.message)),
            Err(refused) => return Err(refused),
        };
    match password_changes::terms(&state, token.expose_secret()).await {
        Ok(_) => Ok((StatusCode::OK, Json(Validity { valid: true, error: None }))),
        Err(error) if error.code == ErrorCode::InvalidLink => Ok(invalid("Invalid or expired reset token")),
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ResetPassword {
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    /// For a user with 2FA: a TOTP code or a backup code.
    #[schema(value_type = Option<String>)]
    totp_token: Option<SecretString>,
}

/// `POST /api/auth/password-reset/{token}`: sets the password; every session ends.
#[utoipa::path(post, path = "/auth/password-reset/{token}", tag = "mudbase",
    params(("token" = String, Path, description = "The token from the reset link.")),
    request_body = ResetPassword,
    responses(
        (status = 200, description = "The password is set.", body = Message),
        (status = 400, description = "An invalid or expired token (`INVALID_TOKEN`), a weak password, or a wrong code.", body = MudbaseErrorBody),
        (status = 403, description = "The user has 2FA: `totpToken` is needed (`TWO_FACTOR_REQUIRED`), or it is locked.", body = MudbaseErrorBody),
        (status = 429, description = "Too many attempts.", body = MudbaseErrorBody),
    ))]
async fn reset(
    State(state): State<AppState>,
    meta: ClientMeta,
    Path(token): Path<String>,
    body: std::result::Result<JsonBody<ResetPassword>, ApiError>,
) -> Result<Json<Message>> {
    let JsonBody(body) = body?;
    let password = required(body.password, "password")?;
    let proof = body.totp_token.as_ref().map(|code| ResetProof::Typed(code.expose_secret()));
    password_changes::reset(&state, &token, password, proof, &meta).await.map_err(|error| {
        match error.code {
            ErrorCode::SecondFactorRequired => MudbaseError::new(
                StatusCode::FORBIDDEN,
                "TWO_FACTOR_REQUIRED",
                "Two-factor authentication required: send totpToken with the new password",
            ),
            _ => error.into(),
        }
    })?;
    Ok(Json(Message { message: "Password has been reset successfully" }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ChangePassword {
    #[schema(value_type = Option<String>)]
    current_password: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    new_password: Option<SecretString>,
}

/// `PATCH /api/users/password`: the signed-in user's new password (JWT only); their
/// other sessions end.
#[utoipa::path(patch, path = "/users/password", tag = "mudbase",
    request_body = ChangePassword,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed.", body = Message),
        (status = 400, description = "A weak password, or a bad body.", body = MudbaseErrorBody),
        (status = 401, description = "No valid token.", body = MudbaseErrorBody),
        (status = 403, description = "A wrong current password (`REAUTHENTICATION_REQUIRED`), or an API key.", body = MudbaseErrorBody),
        (status = 429, description = "Too many wrong passwords.", body = MudbaseErrorBody),
    ))]
async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    auth: std::result::Result<AuthUser, ApiError>,
    body: std::result::Result<JsonBody<ChangePassword>, ApiError>,
) -> Result<Json<Message>> {
    let auth = user(&headers, auth)?;
    let JsonBody(body) = body?;
    let current = required(body.current_password, "currentPassword")?;
    let new = required(body.new_password, "newPassword")?;
    let by = reauth::for_password_change(&state, &auth.session, Some(current), &meta).await?;
    password_changes::change(&state, &by, new, &meta).await?;
    Ok(Json(Message { message: "Password changed successfully" }))
}
