//! `GET /metrics`: the Prometheus exposition of `crate::metrics`, with the gauges read
//! at the scrape (queue depth and age, database pool, Argon2 queue). Plain text, not
//! part of the JSON API's documents. Optionally behind a bearer token
//! (`metrics.bearer_token`); served on the main listener, or alone on `metrics.listen`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use latchkey_core::crypto::constant_time_eq;
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::metrics::Gauges;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Marks requests that came through `metrics.listen`'s own listener.
#[derive(Clone, Copy)]
struct OwnListener;

/// The router of `metrics.listen`'s listener: `/metrics` alone.
pub fn own_listener() -> Router<AppState> {
    let (router, _) = routes().split_for_parts();
    router.layer(Extension(OwnListener))
}

/// Prometheus metrics in the text exposition format (see docs/OPERATIONS.md). On the
/// main listener unless `metrics.listen` moves it (then 404 here); `401` without the
/// bearer token when `metrics.bearer_token` is set.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The metrics.", content_type = "text/plain", body = String),
        (status = 401, description = "`metrics.bearer_token` is set and was not sent."),
        (status = 404, description = "Metrics are off, or served on `metrics.listen`.", body = ErrorBody),
    ))]
async fn metrics(
    State(state): State<AppState>,
    own: Option<Extension<OwnListener>>,
    headers: HeaderMap,
) -> Response {
    let config = &state.config.metrics;
    if own.is_none() && (!config.enabled || config.listen.is_some()) {
        return ApiError::new(ErrorCode::NotFound).into_response();
    }
    if let Some(token) = &state.config.metrics.bearer_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), token.expose_secret().as_bytes()) {
            let mut response = (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let text = state.metrics.render(&gauges(&state).await);
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// The gauges now. A store that does not answer leaves its gauges at zero (and is
/// logged): the counters are still worth a scrape, and `/readyz` reports the store.
async fn gauges(state: &AppState) -> Gauges {
    let mut gauges = Gauges { hash_queue: state.hasher.queued(), ..Gauges::default() };
    match state.store.outbox_counts().await {
        Ok(counts) => {
            gauges.queued_messages = counts.queued;
            gauges.oldest_message_age_secs =
                counts.oldest_queued_at.map_or(0, |at| (state.now() - at).max(0));
        }
        Err(error) => tracing::warn!(error = %error, "metrics: the queue could not be counted"),
    }
    match state.store.pool_probe().await {
        Ok(pool) => {
            gauges.pool_in_use = pool.size.saturating_sub(pool.idle);
            gauges.pool_idle = pool.idle;
            gauges.pool_max = pool.max;
            gauges.pool_acquire = pool.acquire;
        }
        Err(error) => tracing::warn!(error = %error, "metrics: the database pool could not be probed"),
    }
    gauges
}
