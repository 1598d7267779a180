//! Factor administration and sidecar verification with an API key:
//! `/v1/users/{id}/factors[/{fid}]` and `POST /v1/users/{id}/verify`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};
use crate::extract::{AdminKey, ClientMeta, JsonBody};
use crate::routes::factors::FactorView;
use crate::service::factors;
use crate::service::second_factor::{self, Proof};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users/{id}/factors", get(list).delete(reset))
        .route("/v1/users/{id}/factors/{fid}", delete(remove))
        .route("/v1/users/{id}/verify", post(verify))
}

async fn existing_user(state: &AppState, id: &str) -> Result<(), ApiError> {
    state.store.user_by_id(id).await?.map(|_| ()).ok_or_else(|| ErrorCode::UserNotFound.into())
}

async fn list(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require("users:read")?;
    existing_user(&state, &id).await?;
    let factors: Vec<FactorView> =
        state.store.factors(&id, state.now()).await?.into_iter().map(FactorView::from).collect();
    let remaining = state.store.recovery_codes_remaining(&id).await?;
    let guard = state.store.second_factor_guard(&id).await?;
    let failures = guard.map_or(0, |g| g.failures);
    Ok(Json(json!({
        "factors": factors,
        "recovery_codes_remaining": remaining,
        "consecutive_failures": failures,
        "locked": state.lockout.is_locked(u32::try_from(failures).unwrap_or(u32::MAX)),
    })))
}

/// Removes every factor and recovery code and clears the lockout.
async fn reset(
    State(state): State<AppState>,
    admin: AdminKey,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require("users:write")?;
    existing_user(&state, &id).await?;
    factors::reset_all(&state, &id, &meta, Some(admin.actor())).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(state): State<AppState>,
    admin: AdminKey,
    meta: ClientMeta,
    Path((id, fid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin.require("users:write")?;
    existing_user(&state, &id).await?;
    factors::remove(&state, &id, &fid, &meta, Some(admin.actor())).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SidecarVerify {
    code: Option<SecretString>,
    recovery_code: Option<SecretString>,
}

/// For apps that check passwords themselves: is this second factor right? A wrong
/// code answers `valid: false` (with the same counting, replay and lockout rules as
/// login); throttling and lockout answer with their errors.
async fn verify(
    State(state): State<AppState>,
    admin: AdminKey,
    meta: ClientMeta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SidecarVerify>,
) -> Result<Json<Value>, ApiError> {
    admin.require("users:write")?;
    existing_user(&state, &id).await?;
    let proof = match (&body.code, &body.recovery_code) {
        (Some(code), None) => Proof::AnyTotp { code: code.expose_secret() },
        (None, Some(code)) => Proof::RecoveryCode(code.expose_secret()),
        (None, None) => return Err(ApiError::field(ErrorCode::MissingField, "code")),
        (Some(_), Some(_)) => {
            return Err(ApiError::field(ErrorCode::InvalidField, "recovery_code")
                .with_message("Give `code` or `recovery_code`, not both."));
        }
    };
    let method = if body.code.is_some() { "totp" } else { "recovery_code" };
    match second_factor::verify(&state, &id, proof, &meta, Some(admin.actor())).await {
        Ok(verified) => Ok(Json(json!({
            "valid": true,
            "factor_id": verified.factor_id,
            "method": verified.method.as_str(),
        }))),
        Err(error) if error.code == ErrorCode::InvalidCode => {
            Ok(Json(json!({ "valid": false, "factor_id": null, "method": method })))
        }
        Err(error) => Err(error),
    }
}
