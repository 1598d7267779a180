//! The HTTP shell every surface stands on: the router that mounts the surfaces side
//! by side (`native`, `prisme`, `lerian`, `mudbase`, `flashback`, `pages`), the JSON 404/405
//! answers, and the layers every response passes through (request id, tracing, panic
//! guard, load shedding, body limit, time limit, `Cache-Control: no-store`); with the
//! extractors (`extract`), the native error body (`error`), the OpenAPI documents
//! (`openapi`) and the accept loop with its connection limits (`serve`).

pub mod error;
pub mod extract;
pub mod openapi;
pub mod serve;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::BoxError;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use utoipa_axum::router::OpenApiRouter;

use self::error::{ApiError, ErrorCode};
use self::openapi::{Documents, Surface};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{flashback, lerian, mudbase, native, pages, prisme};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole service: every surface's routes, with its OpenAPI documents served
/// beside them.
pub fn router(state: AppState) -> Router {
    let (router, documents) = surfaces(&state);
    let metrics = Arc::clone(&state.metrics);
    let mut router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(documents))
        .layer(Extension(extract::TrustedProxies(Arc::new(state.config.trusted_proxies()))));
    if state.config.metrics.enabled {
        router = router.layer(middleware::from_fn_with_state(Arc::clone(&metrics), track));
    }
    let limits = RequestLimits {
        in_flight: state.config.http.max_in_flight_requests,
        timeout: Duration::from_secs(state.config.http.request_timeout_secs),
    };
    let cors = cors_layer(&state.config.cors.allowed_origins);
    let router = with_layers(router.with_state(state), limits, metrics);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The CORS layer for `origins` (none: no layer, so no cross-origin answer carries an
/// `Access-Control-Allow-Origin`). Outermost, so every answer to an allowed origin
/// carries its headers, a shed request's 503 too. No credentials: tokens travel in
/// `Authorization`, never in cookies, across origins.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([header::RETRY_AFTER, REQUEST_ID])
            .max_age(Duration::from_secs(600)),
    )
}

/// What the router's layers allow each request.
#[derive(Debug, Clone, Copy)]
struct RequestLimits {
    /// Requests handled at once; more are shed with `503 overloaded`.
    in_flight: usize,
    /// Longer is answered `408`.
    timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        let http = crate::config::HttpConfig::default();
        Self {
            in_flight: http.max_in_flight_requests,
            timeout: Duration::from_secs(http.request_timeout_secs),
        }
    }
}

/// The answer to a request shed because too many are in flight, in the error format
/// of the surface its path belongs to.
async fn shed(metrics: Arc<Metrics>, uri: Uri, _overloaded: BoxError) -> Response {
    tracing::warn!("a request was shed: too many in flight");
    metrics.http_shed();
    let error = ApiError::overloaded();
    let path = uri.path();
    match surface_of(path) {
        "prisme" => prisme::PrismeError::from(error).into_response(),
        "mudbase" => mudbase::MudbaseError::from(error).into_response(),
        "lerian" => lerian::LerianError::from(error).in_family(lerian::Family::of_path(path)).into_response(),
        "flashback" => flashback::FlashbackError::from(error).into_response(),
        _ => error.into_response(),
    }
}

/// The surface a request path belongs to: `prisme` (`/v2`), `mudbase` (`/api`),
/// `lerian`, `flashback`, `pages` (the HTML sign-in and account pages) or `native`
/// (everything else: `/v1`, the operations endpoints). The one answer to "whose path
/// is this" for errors made before routing, metrics labels and audit.
pub fn surface_of(path: &str) -> &'static str {
    if path == "/v2" || path.starts_with("/v2/") {
        "prisme"
    } else if path == "/api" || path.starts_with("/api/") {
        "mudbase"
    } else if lerian::owns(path) {
        "lerian"
    } else if flashback::owns(path) {
        "flashback"
    } else if pages::owns(path) {
        "pages"
    } else {
        "native"
    }
}

/// Counts each answered request under its route template (`unmatched` for paths no
/// route knows, so a scan of random paths cannot grow the label set).
async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or("unmatched");
    metrics.http_request(route, method.as_str(), response.status().as_u16(), started.elapsed());
    response
}

/// Each surface's routes, merged, and the documents that describe them.
fn surfaces(state: &AppState) -> (Router<AppState>, Documents) {
    let mut router = Router::new();
    let mut documents = Vec::new();
    for surface in Surface::ALL {
        let routes = match surface {
            Surface::Native => openapi::router(surface).merge(native::routes()).merge(pages::routes()),
            Surface::Prisme => openapi::router(surface).nest("/v2", prisme::routes()),
            Surface::Mudbase => openapi::router(surface).nest("/api", mudbase::routes(state.clone())),
            Surface::Lerian => openapi::router(surface).merge(lerian::routes()),
            Surface::Flashback => openapi::router(surface).merge(flashback::routes()),
        };
        let (routes, document) = routes.split_for_parts();
        router = router.merge(routes);
        let catalogue: Vec<(u16, &'static str)> = match surface {
            Surface::Native => {
                ErrorCode::ALL.iter().map(|code| (code.status().as_u16(), code.as_str())).collect()
            }
            Surface::Lerian => lerian::catalogue(),
            Surface::Prisme | Surface::Mudbase | Surface::Flashback => Vec::new(),
        };
        documents.push((surface, openapi::complete(surface, &catalogue, document)));
    }
    let router = router.merge(pages::site());
    (router, Documents::new(documents))
}

/// Adds the layers every response passes through, outermost first.
fn with_layers(router: Router, limits: RequestLimits, metrics: Arc<Metrics>) -> Router {
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
        .layer(HandleErrorLayer::new(move |uri: Uri, error: BoxError| shed(Arc::clone(&metrics), uri, error)))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(limits.in_flight))
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
            limits.timeout,
        ));
    router.layer(layers)
}

/// Gives a compatible surface its own 404 and 405 answers, in its own error format.
pub fn with_own_fallbacks<E>(
    routes: OpenApiRouter<AppState>,
    answer: fn(ApiError) -> E,
) -> OpenApiRouter<AppState>
where
    E: IntoResponse + 'static,
{
    let (router, document) = routes.split_for_parts();
    let router = router
        .fallback(move || async move { answer(ApiError::new(ErrorCode::NotFound)) })
        .method_not_allowed_fallback(
            move || async move { answer(ApiError::new(ErrorCode::MethodNotAllowed)) },
        );
    OpenApiRouter::with_openapi(document).merge(router.into())
}

/// An unknown path: the native error, or for a browser navigating to a page (a `GET`
/// that accepts HTML), the pages' own "not found" page.
async fn not_found(State(state): State<AppState>, browser: pages::Browser, request: Request) -> Response {
    if request.method() == Method::GET && pages::wants_html(request.headers()) {
        return pages::not_found(&state, &browser);
    }
    ApiError::new(ErrorCode::NotFound).into_response()
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
        let routes = Router::new().route("/explode", get(explode)).route("/fine", get(|| async { "ok" }));
        let router = with_layers(routes, RequestLimits::default(), Arc::new(Metrics::new()));
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
