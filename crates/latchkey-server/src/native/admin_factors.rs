//! Factor administration and sidecar verification with an API key:
//! `/v1/users/{id}/factors[/{fid}]`, `POST /v1/users/{id}/verify` and
//! `POST /v1/users/{id}/webauthn/options`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::{AdminKey, ClientMeta, JsonBody, Path};
use crate::native::factors::FactorView;
use crate::service::second_factor::{self, Proof};
use crate::service::{accounts, factors, reauth, webauthn};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, reset))
        .routes(routes!(remove))
        .routes(routes!(verify))
        .routes(routes!(webauthn_options))
}

#[derive(Serialize, ToSchema)]
struct FactorsAdminView {
    factors: Vec<FactorView>,
    recovery_codes_remaining: i64,
    /// Wrong second-factor attempts in a row.
    consecutive_failures: i64,
    /// Locked until an administrator resets the factors.
    locked: bool,
}

/// The sidecar check's answer.
#[derive(Serialize, ToSchema)]
struct Verdict {
    valid: bool,
    /// The factor that matched; `null` when not valid or for a recovery code.
    factor_id: Option<String>,
    /// `totp` or `recovery_code`.
    method: &'static str,
}

async fn existing_user(state: &AppState, id: &str) -> Result<(), ApiError> {
    accounts::by_id(state, id).await.map(|_| ())
}

/// A user's factors and lockout state (scope `users:read`).
#[utoipa::path(get, path = "/v1/users/{id}/factors", operation_id = "list_user_factors", tag = "users",
    params(("id" = String, Path, description = "The user's id.")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The factors.", body = FactorsAdminView),
        (status = 403, description = "The key lacks `users:read`.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<FactorsAdminView>, ApiError> {
    admin.require("users:read")?;
    existing_user(&state, &id).await?;
    let factors: Vec<FactorView> =
        state.store.factors(&id, state.now()).await?.into_iter().map(FactorView::from).collect();
    let remaining = state.store.recovery_codes_remaining(&id).await?;
    let guard = state.store.second_factor_guard(&id).await?;
    let failures = guard.map_or(0, |g| g.failures);
    Ok(Json(FactorsAdminView {
        factors,
        recovery_codes_remaining: remaining,
        consecutive_failures: failures,
        locked: state.lockout.is_locked(u32::try_from(failures).unwrap_or(u32::MAX)),
    }))
}

/// Removes every factor and recovery code and clears the lockout (scope `users:write`).
#[utoipa::path(delete, path = "/v1/users/{id}/factors", tag = "users",
    params(("id" = String, Path, description = "The user's id.")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Reset."),
        (status = 403, description = "The key lacks `users:write`.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
    ))]
async fn reset(
    State(state): State<AppState>,
    admin: AdminKey,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require("users:write")?;
    existing_user(&state, &id).await?;
    factors::reset_all(&state, &reauth::operator(&id, admin.actor()), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes one factor (scope `users:write`).
#[utoipa::path(delete, path = "/v1/users/{id}/factors/{fid}", operation_id = "reset_user_factor", tag = "users",
    params(
        ("id" = String, Path, description = "The user's id."),
        ("fid" = String, Path, description = "The factor's id."),
    ),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "The key lacks `users:write`.", body = ErrorBody),
        (status = 404, description = "No such user or factor.", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    admin: AdminKey,
    meta: ClientMeta,
    Path((id, fid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin.require("users:write")?;
    existing_user(&state, &id).await?;
    factors::remove(&state, &reauth::operator(&id, admin.actor()), &fid, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Options for the browser, valid 5 minutes.
#[derive(Serialize, ToSchema)]
struct SidecarWebauthnOptions {
    /// `PublicKeyCredentialRequestOptions` (JSON form), allowing any of the user's
    /// passkeys and security keys; send the browser's answer to
    /// `POST /v1/users/{id}/verify` as `credential`.
    #[schema(value_type = Object)]
    request_options: serde_json::Value,
    expires_in: i64,
}

/// For apps that check passwords themselves and use passkeys as the second factor:
/// starts a WebAuthn authentication of the user.
#[utoipa::path(post, path = "/v1/users/{id}/webauthn/options", tag = "users",
    params(("id" = String, Path, description = "The user's id.")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Options for the browser.", body = SidecarWebauthnOptions),
        (status = 403, description = "The key lacks `users:write`.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
        (status = 409, description = "The user has no active WebAuthn factor.", body = ErrorBody),
    ))]
async fn webauthn_options(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<SidecarWebauthnOptions>, ApiError> {
    admin.require("users:write")?;
    existing_user(&state, &id).await?;
    let request_options = webauthn::start_any_authentication(&state, &id, None).await?;
    Ok(Json(SidecarWebauthnOptions { request_options, expires_in: webauthn::CEREMONY_TTL_SECS }))
}

/// `code` (TOTP), `recovery_code`, or `credential` (WebAuthn): one of them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SidecarVerify {
    #[schema(value_type = Option<String>)]
    code: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    recovery_code: Option<SecretString>,
    /// The browser's answer to the options of `POST /v1/users/{id}/webauthn/options`.
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

/// For apps that check passwords themselves: is this second factor right? A wrong
/// code answers `valid: false` (with the same counting, replay and lockout rules as
/// login); throttling and lockout answer with their errors.
#[utoipa::path(post, path = "/v1/users/{id}/verify", operation_id = "verify_for_user", tag = "users",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = SidecarVerify,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Whether the code is right.", body = Verdict),
        (status = 403, description = "The key lacks `users:write`, or the second factor is locked.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
        (status = 409, description = "The user has no active second factor.", body = ErrorBody),
        (status = 429, description = "Too many attempts.", body = ErrorBody),
    ))]
async fn verify(
    State(state): State<AppState>,
    admin: AdminKey,
    meta: ClientMeta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SidecarVerify>,
) -> Result<Json<Verdict>, ApiError> {
    admin.require("users:write")?;
    let (proof, method) = match (&body.code, &body.recovery_code, &body.credential) {
        (Some(code), None, None) => (Proof::AnyTotp { code: code.expose_secret() }, "totp"),
        (None, Some(code), None) => (Proof::RecoveryCode(code.expose_secret()), "recovery_code"),
        (None, None, Some(credential)) => {
            (Proof::Credential { factor_id: None, credential, login: None }, "webauthn")
        }
        (None, None, None) => return Err(ApiError::field(ErrorCode::MissingField, "code")),
        _ => {
            return Err(ApiError::field(ErrorCode::InvalidField, "recovery_code")
                .with_message("Give one of `code`, `recovery_code` and `credential`."));
        }
    };
    if !matches!(proof, Proof::AnyTotp { .. }) {
        // A TOTP code's verification finds the user itself (`second_factor::verify`).
        existing_user(&state, &id).await?;
    }
    match second_factor::verify(&state, &id, proof, &meta, Some(admin.actor())).await {
        Ok(verified) => {
            Ok(Json(Verdict { valid: true, factor_id: verified.factor_id, method: verified.method.as_str() }))
        }
        Err(error) if matches!(error.code, ErrorCode::InvalidCode | ErrorCode::InvalidCredential) => {
            Ok(Json(Verdict { valid: false, factor_id: None, method }))
        }
        Err(error) => Err(error),
    }
}
