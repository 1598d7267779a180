//! `GET /v1/audit`: the audit log, newest first (scope `audit:read`).

use axum::Json;
use axum::extract::State;
use latchkey_store::{AuditEvent, AuditFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::{AdminKey, Query};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    user_id: Option<String>,
    /// An event type, like `factor.added`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// RFC 3339 or Unix seconds.
    since: Option<String>,
    /// RFC 3339 or Unix seconds.
    until: Option<String>,
    /// 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct EventList {
    events: Vec<EventView>,
}

/// One audit event; it never holds a secret, code or token.
#[derive(Serialize, ToSchema)]
struct EventView {
    id: String,
    occurred_at: String,
    #[serde(rename = "type")]
    event_type: String,
    /// `success` or `failure`.
    outcome: String,
    user_id: Option<String>,
    factor_id: Option<String>,
    factor_type: Option<String>,
    /// Who acted when it was not the user: `api_key:<id>`, `cli`, `system`.
    actor: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    /// Why an administrator acted (a recovery link's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn parse_time(field: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    if let Ok(seconds) = value.parse::<i64>() {
        return Ok(Some(seconds));
    }
    time::OffsetDateTime::parse(&value, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|_| {
            ApiError::new(ErrorCode::InvalidQuery)
                .with_message(format!("{field} must be RFC 3339 or Unix seconds."))
        })
}

impl From<AuditEvent> for EventView {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: event.id,
            occurred_at: rfc3339(event.occurred_at),
            event_type: event.event_type,
            outcome: event.outcome,
            user_id: event.user_id,
            factor_id: event.factor_id,
            factor_type: event.factor_type,
            actor: event.actor,
            ip: event.ip,
            user_agent: event.user_agent,
            reason: event.reason,
        }
    }
}

/// The audit log, newest first (scope `audit:read`).
#[utoipa::path(get, path = "/v1/audit", operation_id = "list_audit_events", tag = "audit",
    params(AuditQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Events.", body = EventList),
        (status = 400, description = "An invalid query.", body = ErrorBody),
        (status = 403, description = "The key lacks `audit:read`.", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    admin: AdminKey,
    Query(query): Query<AuditQuery>,
) -> Result<Json<EventList>, ApiError> {
    admin.require("audit:read")?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidQuery).with_message("limit must be between 1 and 1000."));
    }
    let filter = AuditFilter {
        user_id: query.user_id,
        event_type: query.event_type,
        since: parse_time("since", query.since)?,
        until: parse_time("until", query.until)?,
        limit,
    };
    let events = state.store.audit_events(&filter).await?.into_iter().map(EventView::from).collect();
    Ok(Json(EventList { events }))
}
