//! `GET /v1/audit`: the audit log, newest first (scope `audit:read`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use latchkey_store::{AuditEvent, AuditFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{AdminKey, Query};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    user_id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// RFC 3339 or Unix seconds.
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
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

fn view(event: AuditEvent) -> Value {
    json!({
        "id": event.id,
        "occurred_at": rfc3339(event.occurred_at),
        "type": event.event_type,
        "outcome": event.outcome,
        "user_id": event.user_id,
        "factor_id": event.factor_id,
        "factor_type": event.factor_type,
        "actor": event.actor,
        "ip": event.ip,
        "user_agent": event.user_agent,
    })
}

async fn list(
    State(state): State<AppState>,
    admin: AdminKey,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
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
    let events: Vec<Value> = state.store.audit_events(&filter).await?.into_iter().map(view).collect();
    Ok(Json(json!({ "events": events })))
}
