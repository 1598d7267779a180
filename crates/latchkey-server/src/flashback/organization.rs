//! Flashback's organisation routes: resetting a user's MFA (another member's needs an
//! owner or administrator) and enforcing MFA for the whole organisation.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{Envelope, FlashbackError, FlashbackErrorBody, Result, message, required};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{AuthUser, ClientMeta, JsonBody};
use crate::service::{accounts, factors, organizations, reauth};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResetRequest {
    /// Another member of the caller's organisation (the caller must be an owner or
    /// administrator); the caller when absent.
    reset_user_id: Option<String>,
    /// Accepted; a reset user sets a method up again (their organisation's enforcement,
    /// if any, makes them).
    #[allow(dead_code)]
    enable: Option<bool>,
}

/// `POST /mfa/reset`: removes every factor and backup code of the user.
#[utoipa::path(post, path = "/reset", tag = "flashback",
    request_body = ResetRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`MFA reset successfully`.", body = Envelope<Object>),
        (status = 400, description = "A bad body.", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
        (status = 403, description = "Another user without the role, or the second factor was proven too long ago.", body = FlashbackErrorBody),
        (status = 404, description = "`User not found`.", body = FlashbackErrorBody),
    ))]
pub(super) async fn reset(
    State(state): State<AppState>,
    meta: ClientMeta,
    auth: std::result::Result<AuthUser, ApiError>,
    body: std::result::Result<JsonBody<ResetRequest>, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = auth?;
    let JsonBody(body) = body?;
    let actor = auth.session.user_id.as_str();
    let by = match body.reset_user_id.as_deref().filter(|id| *id != actor) {
        Some(target) => {
            accounts::by_id(&state, target).await?;
            organizations::authorise_reset(&state, actor, target).await?;
            // The administrator re-authenticates as for a change of their own.
            reauth::require_recent_authentication(&state, &auth.session, None).await?;
            reauth::operator(target, format!("user:{actor}"))
        }
        None => reauth::require_recent_authentication(&state, &auth.session, None).await?,
    };
    factors::reset_all(&state, &by, &meta).await?;
    Ok(message("MFA reset successfully"))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct EnforceRequest {
    enforced: Option<bool>,
}

/// `POST /mfa/organization/enforce`: MFA for every member of the caller's organisation
/// (owners and administrators only).
#[utoipa::path(post, path = "/organization/enforce", tag = "flashback",
    request_body = EnforceRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`MFA enforcement enabled for organization` (or disabled).", body = Envelope<Object>),
        (status = 400, description = "A bad body.", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
        (status = 403, description = "Not an owner or administrator of an organisation.", body = FlashbackErrorBody),
    ))]
pub(super) async fn enforce(
    State(state): State<AppState>,
    meta: ClientMeta,
    auth: std::result::Result<AuthUser, ApiError>,
    body: std::result::Result<JsonBody<EnforceRequest>, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = auth?;
    let JsonBody(body) = body?;
    let enforced = required(body.enforced, "enforced")?;
    match organizations::enforce(&state, &auth.session.user_id, enforced, &meta).await {
        Ok(()) => {}
        Err(error) if error.code == ErrorCode::InsufficientRole => {
            return Err(FlashbackError::new(
                axum::http::StatusCode::FORBIDDEN,
                "Insufficient permissions. OWNER or ADMINISTRATOR role required.",
            ));
        }
        Err(error) => return Err(error.into()),
    }
    Ok(message(if enforced {
        "MFA enforcement enabled for organization"
    } else {
        "MFA enforcement disabled for organization"
    }))
}
