//! Operations endpoints: liveness, readiness, the token verification keys, and the
//! API documents with their reference page.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::openapi::{Documents, Surface};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(jwks))
        .routes(routes!(native_document))
        .routes(routes!(prisme_document))
        .routes(routes!(mudbase_document))
        .routes(routes!(lerian_document))
        .routes(routes!(flashback_document))
        .routes(routes!(docs_page))
        .routes(routes!(docs_script))
        .routes(routes!(docs_style))
}

#[derive(Serialize, ToSchema)]
struct Status {
    #[schema(example = "ok")]
    status: &'static str,
}

/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Serving.", body = Status, example = json!({"status": "ok"}))))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// The database answers within two seconds.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = Status, example = json!({"status": "ready"})),
        (status = 503, description = "The database does not answer.", body = ErrorBody),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(Status { status: "ready" })),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check failed");
            Err(ErrorCode::DatabaseUnavailable.into())
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            Err(ErrorCode::DatabaseUnavailable.into())
        }
    }
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "The key set.", body = Object)))]
async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.tokens.jwks().as_ref().clone())
}

fn document(documents: &Documents, surface: Surface) -> Response {
    let mut response = documents.get(surface).to_owned().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// This document: the native API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "An OpenAPI 3.1 document.", body = Object)))]
async fn native_document(Extension(documents): Extension<Documents>) -> Response {
    document(&documents, Surface::Native)
}

/// The Prisme.ai-compatible API.
#[utoipa::path(get, path = "/openapi/prisme.json", tag = "operations",
    responses((status = 200, description = "An OpenAPI 3.1 document.", body = Object)))]
async fn prisme_document(Extension(documents): Extension<Documents>) -> Response {
    document(&documents, Surface::Prisme)
}

/// The Mudbase-compatible API.
#[utoipa::path(get, path = "/openapi/mudbase.json", tag = "operations",
    responses((status = 200, description = "An OpenAPI 3.1 document.", body = Object)))]
async fn mudbase_document(Extension(documents): Extension<Documents>) -> Response {
    document(&documents, Surface::Mudbase)
}

/// The Lerian Identity-compatible API.
#[utoipa::path(get, path = "/openapi/lerian.json", tag = "operations",
    responses((status = 200, description = "An OpenAPI 3.1 document.", body = Object)))]
async fn lerian_document(Extension(documents): Extension<Documents>) -> Response {
    document(&documents, Surface::Lerian)
}

/// The Flashback-compatible API.
#[utoipa::path(get, path = "/openapi/flashback.json", tag = "operations",
    responses((status = 200, description = "An OpenAPI 3.1 document.", body = Object)))]
async fn flashback_document(Extension(documents): Extension<Documents>) -> Response {
    document(&documents, Surface::Flashback)
}

/// The page's own script and style only; it talks to this server alone.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, text: &'static str) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The API reference: renders these documents and lets a reader try a call.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "An HTML page.", content_type = "text/html", body = String)))]
async fn docs_page() -> Response {
    asset("text/html; charset=utf-8", include_str!("../../assets/docs/index.html"))
}

/// The reference page's script.
#[utoipa::path(get, path = "/docs/app.js", tag = "operations",
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)))]
async fn docs_script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../assets/docs/app.js"))
}

/// The reference page's style sheet.
#[utoipa::path(get, path = "/docs/style.css", tag = "operations",
    responses((status = 200, description = "CSS.", content_type = "text/css", body = String)))]
async fn docs_style() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../assets/docs/style.css"))
}
