//! `GET /metrics`: the Prometheus exposition of `crate::metrics`, with the gauges read
//! at the scrape (queue depth and age, database pool, Argon2 queue). Plain text, not
//! part of the JSON API's documents. Optionally behind a bearer token
//! (`metrics.bearer_token`); served on the main listener, or alone on `metrics.listen`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use latchkey_core::crypto::constant_time_eq;
use secrecy::ExposeSecret;

use crate::metrics::Gauges;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
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
