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

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::compat;
use crate::error::{ApiError, ErrorCode};
use crate::openapi::{self, Documents, Surface};
use crate::state::AppState;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole service: every surface's routes, with its OpenAPI documents served
/// beside them.
pub fn router(state: AppState) -> Router {
    let (router, documents) = surfaces(&state);
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(documents))
        .with_state(state);
    with_layers(router)
}

/// Each surface's routes, merged, and the documents that describe them.
fn surfaces(state: &AppState) -> (Router<AppState>, Documents) {
    let mut router = Router::new();
    let mut documents = Vec::new();
    for surface in Surface::ALL {
        let routes = match surface {
            Surface::Native => openapi::router(surface)
                .merge(ops::routes())
                .merge(auth::routes())
                .merge(me::routes())
                .merge(users::routes())
                .merge(factors::routes())
                .merge(devices::routes())
                .merge(admin_factors::routes())
                .merge(audit::routes())
                .merge(magic_link_page::routes()),
            Surface::Prisme => openapi::router(surface).nest("/v2", compat::prisme::routes()),
            Surface::Mudbase => openapi::router(surface).nest("/api", compat::mudbase::routes(state.clone())),
            Surface::Lerian => openapi::router(surface).merge(compat::lerian::routes()),
        };
        let (routes, document) = routes.split_for_parts();
        router = router.merge(routes);
        let catalogue: Vec<(u16, &'static str)> = match surface {
            Surface::Native => {
                ErrorCode::ALL.iter().map(|code| (code.status().as_u16(), code.as_str())).collect()
            }
            Surface::Lerian => compat::lerian::catalogue(),
            Surface::Prisme | Surface::Mudbase => Vec::new(),
        };
        documents.push((surface, openapi::complete(surface, &catalogue, document)));
    }
    (router, Documents::new(documents))
}

/// Adds the layers every response passes through, outermost first.
fn with_layers(router: Router) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let request_id =
                request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            // The path only: query strings may carry tokens.
            let (method, path) = (request.method(), request.uri().path());
            tracing::info_span!("request", %method, %path, request_id)
        })
        .on_response(
            DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Micros),
        );
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ));
    router.layer(layers)
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

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[allow(clippy::panic)]
    async fn explode() -> &'static str {
        panic!("a handler bug")
    }

    async fn call(router: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::get(path).body(Body::empty()).unwrap_or_default();
        let Ok(response) = router.clone().oneshot(request).await;
        let status = response.status();
        let bytes = to_bytes(response.into_body(), BODY_LIMIT).await.unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_panic_becomes_a_generic_500_and_the_router_keeps_serving() {
        let router =
            with_layers(Router::new().route("/explode", get(explode)).route("/fine", get(|| async { "ok" })));
        let (status, body) = call(&router, "/explode").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(
            !body.to_string().contains("a handler bug"),
            "the panic message stays in the process: {body}"
        );
        for _ in 0..3 {
            assert_eq!(call(&router, "/explode").await.0, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(call(&router, "/fine").await.0, StatusCode::OK);
        }
    }
}
