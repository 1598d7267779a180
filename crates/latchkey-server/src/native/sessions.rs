//! Sessions: `/v1/me/sessions` lets the signed-in user see where they are signed in and
//! end those sessions; `DELETE /v1/users/{id}/sessions` lets an administrator end all of
//! a user's. Ending sessions only takes access away, so it needs no re-authentication.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use latchkey_store::Session;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{AdminKey, AuthUser, ClientMeta, Path};
use crate::service::{accounts, sessions};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, end_others))
        .routes(routes!(end))
        .routes(routes!(end_all_of_user))
}

#[derive(Serialize, ToSchema)]
struct SessionList {
    sessions: Vec<SessionView>,
}

#[derive(Serialize, ToSchema)]
struct Ended {
    /// How many sessions ended.
    ended: u64,
}

/// A live session as the API shows it; its tokens never appear.
#[derive(Serialize, ToSchema)]
struct SessionView {
    id: String,
    /// `aal1` or `aal2`.
    aal: String,
    /// How the session authenticated (RFC 8176: `pwd`, `otp`, `sms`, `mail`, ...).
    amr: Vec<String>,
    created_at: String,
    auth_time: String,
    expires_at: String,
    /// The session this request comes from.
    current: bool,
}

fn view(session: Session, current: &str) -> SessionView {
    SessionView {
        current: session.id == current,
        id: session.id,
        aal: session.aal,
        amr: session.amr,
        created_at: rfc3339(session.created_at),
        auth_time: rfc3339(session.auth_time),
        expires_at: rfc3339(session.expires_at.min(session.idle_expires_at)),
    }
}

/// The signed-in user's live sessions, newest first.
#[utoipa::path(get, path = "/v1/me/sessions", operation_id = "list_sessions", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "The sessions.", body = SessionList)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<SessionList>, ApiError> {
    let current = user.session.id.as_str();
    let sessions =
        sessions::list(&state, &user.session.user_id).await?.into_iter().map(|s| view(s, current)).collect();
    Ok(Json(SessionList { sessions }))
}

/// Ends one of the signed-in user's sessions (this one too, like a logout).
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", operation_id = "end_session", tag = "me",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The session's id.")),
    responses(
        (status = 204, description = "Ended."),
        (status = 404, description = "No live session of yours has this id.", body = ErrorBody),
    ))]
async fn end(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    sessions::end(&state, &user.session.user_id, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the signed-in user but this one.
#[utoipa::path(delete, path = "/v1/me/sessions", operation_id = "end_other_sessions", tag = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "How many ended.", body = Ended)))]
async fn end_others(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
) -> Result<Json<Ended>, ApiError> {
    let keep = Some(user.session.id.as_str());
    let ended = sessions::end_all(&state, &user.session.user_id, keep, &meta, None).await?;
    Ok(Json(Ended { ended }))
}

/// Ends every session of a user (scope `users:write`).
#[utoipa::path(delete, path = "/v1/users/{id}/sessions", operation_id = "end_user_sessions", tag = "users",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "How many ended.", body = Ended),
        (status = 404, description = "No user has this id.", body = ErrorBody),
    ))]
async fn end_all_of_user(
    State(state): State<AppState>,
    admin: AdminKey,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Result<Json<Ended>, ApiError> {
    admin.require("users:write")?;
    accounts::by_id(&state, &id).await?;
    let ended = sessions::end_all(&state, &id, None, &meta, Some(admin.actor())).await?;
    Ok(Json(Ended { ended }))
}
