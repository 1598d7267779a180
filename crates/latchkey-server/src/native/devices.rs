//! `/v1/me/devices`: the devices on which the signed-in user skips the second factor,
//! and forgetting them. Forgetting makes logins stricter, so it needs no
//! re-authentication.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use latchkey_store::RememberedDevice;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{AuthUser, ClientMeta, Path};
use crate::service::devices;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, forget_all)).routes(routes!(forget))
}

#[derive(Serialize, ToSchema)]
struct DeviceList {
    devices: Vec<DeviceView>,
}

#[derive(Serialize, ToSchema)]
struct Forgotten {
    /// How many devices were forgotten.
    forgotten: u64,
}

/// A remembered device as the API shows it; its token never appears.
#[derive(Serialize, ToSchema)]
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

/// The devices that skip the second factor at login.
#[utoipa::path(get, path = "/v1/me/devices", operation_id = "list_devices", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "The devices.", body = DeviceList)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<DeviceList>, ApiError> {
    let devices: Vec<DeviceView> =
        devices::list(&state, &user.session.user_id).await?.into_iter().map(DeviceView::from).collect();
    Ok(Json(DeviceList { devices }))
}

/// Forgets one device: its next login asks for the second factor again.
#[utoipa::path(delete, path = "/v1/me/devices/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path, description = "The device's id.")),
    responses(
        (status = 204, description = "Forgotten."),
        (status = 404, description = "No device of yours has this id.", body = ErrorBody),
    ))]
async fn forget(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    devices::forget(&state, &user.session.user_id, Some(&id), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forgets every device.
#[utoipa::path(delete, path = "/v1/me/devices", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "How many were forgotten.", body = Forgotten)))]
async fn forget_all(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
) -> Result<Json<Forgotten>, ApiError> {
    let forgotten = devices::forget(&state, &user.session.user_id, None, &meta).await?;
    Ok(Json(Forgotten { forgotten }))
}
