//! `/v1/me/devices`: the devices on which the signed-in user skips the second factor,
//! and forgetting them. Forgetting makes logins stricter, so it needs no
//! re-authentication.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use latchkey_store::RememberedDevice;
use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::{AuthUser, ClientMeta};
use crate::service::devices;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/devices", get(list).delete(forget_all))
        .route("/v1/me/devices/{id}", delete(forget))
}

/// A remembered device as the API shows it; its token never appears.
#[derive(Serialize)]
struct DeviceView {
    id: String,
    created_at: String,
    expires_at: String,
    last_used_at: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl From<RememberedDevice> for DeviceView {
    fn from(device: RememberedDevice) -> Self {
        Self {
            id: device.id,
            created_at: rfc3339(device.created_at),
            expires_at: rfc3339(device.expires_at),
            last_used_at: device.last_used_at.map(rfc3339),
            ip: device.ip,
            user_agent: device.user_agent,
        }
    }
}

async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let devices: Vec<DeviceView> =
        devices::list(&state, &user.session.user_id).await?.into_iter().map(DeviceView::from).collect();
    Ok(Json(json!({ "devices": devices })))
}

async fn forget(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    devices::forget(&state, &user.session.user_id, Some(&id), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn forget_all(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
) -> Result<Json<Value>, ApiError> {
    let forgotten = devices::forget(&state, &user.session.user_id, None, &meta).await?;
    Ok(Json(json!({ "forgotten": forgotten })))
}
