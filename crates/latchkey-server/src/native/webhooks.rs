//! `/v1/webhooks`: the endpoints events are delivered to, their secrets and their
//! delivery attempts (scope `admin`). The deliveries themselves: `service::webhooks`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use latchkey_store::WebhookAttempt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::{AdminKey, JsonBody, Path, Query};
use crate::service::webhooks::{self, Endpoint};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(remove_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(webhook_attempts))
}

#[derive(Serialize, ToSchema)]
struct EndpointView {
    id: String,
    url: String,
    description: String,
    /// The audit event types delivered here.
    event_types: Vec<String>,
    created_at: String,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateEndpoint {
    /// An `http://` or `https://` URL, without credentials.
    #[schema(example = "https://app.example.com/hooks/latchkey")]
    url: String,
    /// Any of `user.created`, `user.deleted`, `factor.enrolled`, `factor.confirmed`,
    /// `factor.removed`, `mfa.verified`, `mfa.failed`, `mfa.locked`,
    /// `recovery_code.used`, `login.failed`, `login.throttled`.
    #[schema(example = json!(["mfa.verified", "mfa.failed"]))]
    event_types: Vec<String>,
    description: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct CreatedEndpoint {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// The signing secret (`whsec_...`), shown this once.
    secret: String,
}

/// Registers an endpoint; the answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateEndpoint,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Registered.", body = CreatedEndpoint),
        (status = 403, description = "The key lacks `admin`.", body = ErrorBody),
    ))]
async fn create_webhook(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<CreateEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    admin.require("admin")?;
    let (endpoint, secret) = webhooks::create(&state, &body.url, body.event_types, body.description).await?;
    Ok((StatusCode::CREATED, Json(CreatedEndpoint { endpoint: endpoint.into(), secret })))
}

#[derive(Serialize, ToSchema)]
struct EndpointList {
    webhooks: Vec<EndpointView>,
}

/// Every endpoint, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The endpoints.", body = EndpointList),
        (status = 403, description = "The key lacks `admin`.", body = ErrorBody),
    ))]
async fn list_webhooks(
    State(state): State<AppState>,
    admin: AdminKey,
) -> Result<Json<EndpointList>, ApiError> {
    admin.require("admin")?;
    let webhooks = webhooks::list(&state).await?.into_iter().map(EndpointView::from).collect();
    Ok(Json(EndpointList { webhooks }))
}

/// Removes an endpoint; events queued for it are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id.")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "The key lacks `admin`.", body = ErrorBody),
        (status = 404, description = "No endpoint has this id.", body = ErrorBody),
    ))]
async fn remove_webhook(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require("admin")?;
    webhooks::remove(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct NewSecret {
    /// The new signing secret, shown this once. The previous one keeps signing beside
    /// it for 24 hours.
    secret: String,
}

/// Rotates the endpoint's signing secret: deliveries carry a signature under each
/// secret (`v1,<new> v1,<old>`) until the old one lapses 24 hours later.
#[utoipa::path(post, path = "/v1/webhooks/{id}/secret", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id.")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The new secret.", body = NewSecret),
        (status = 403, description = "The key lacks `admin`.", body = ErrorBody),
        (status = 404, description = "No endpoint has this id.", body = ErrorBody),
    ))]
async fn rotate_webhook_secret(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<NewSecret>, ApiError> {
    admin.require("admin")?;
    Ok(Json(NewSecret { secret: webhooks::rotate_secret(&state, &id).await? }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AttemptsQuery {
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct AttemptView {
    id: String,
    /// The delivered event's id, sent as `webhook-id` (the same on every retry).
    event_id: String,
    event_type: String,
    /// 1 for the first attempt.
    attempt: i64,
    attempted_at: String,
    /// The endpoint's HTTP status; absent when it could not be reached.
    status: Option<i64>,
    succeeded: bool,
    /// Why the attempt failed.
    error: Option<String>,
}

impl From<WebhookAttempt> for AttemptView {
    fn from(a: WebhookAttempt) -> Self {
        Self {
            succeeded: a.status.is_some_and(|s| (200..300).contains(&s)),
            id: a.id,
            event_id: a.event_id,
            event_type: a.event_type,
            attempt: a.attempt,
            attempted_at: rfc3339(a.attempted_at),
            status: a.status,
            error: a.error,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct AttemptList {
    attempts: Vec<AttemptView>,
}

/// The endpoint's delivery attempts, newest first (kept 30 days).
#[utoipa::path(get, path = "/v1/webhooks/{id}/attempts", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id."), AttemptsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The attempts.", body = AttemptList),
        (status = 400, description = "An invalid query.", body = ErrorBody),
        (status = 403, description = "The key lacks `admin`.", body = ErrorBody),
        (status = 404, description = "No endpoint has this id.", body = ErrorBody),
    ))]
async fn webhook_attempts(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
    Query(query): Query<AttemptsQuery>,
) -> Result<Json<AttemptList>, ApiError> {
    admin.require("admin")?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidQuery).with_message("limit must be between 1 and 1000."));
    }
    let attempts = webhooks::attempts(&state, &id, limit).await?;
    Ok(Json(AttemptList { attempts: attempts.into_iter().map(AttemptView::from).collect() }))
}
