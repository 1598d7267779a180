//! The HTTP router: every surface's routes, the JSON 404/405 answers, and the layers
//! every response passes through (request id, tracing, panic guard, body limit,
//! `Cache-Control: no-store`).

mod admin_factors;
mod audit;
mod auth;
mod devices;
pub mod factors;
mod magic_link_page;
mod me;
mod ops;
mod users;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::compat;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ops::routes())
        .merge(auth::routes())
        .merge(me::routes())
        .merge(users::routes())
        .merge(factors::routes())
        .merge(devices::routes())
        .merge(admin_factors::routes())
        .merge(audit::routes())
        .merge(magic_link_page::routes())
        .nest("/v2", compat::prisme::routes())
        .nest("/api", compat::mudbase::routes(state.clone()))
        .merge(compat::lerian::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            let request_id =
                                request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                            // The path only: query strings may carry tokens.
                            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
                        })
                        .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Micros)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                )),
        )
}

async fn not_found() -> ApiError {
    ErrorCode::NotFound.into()
}

async fn method_not_allowed() -> ApiError {
    ErrorCode::MethodNotAllowed.into()
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(ErrorCode::InternalError).into_response()
}
