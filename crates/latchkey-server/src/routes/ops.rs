//! Operations endpoints: liveness, readiness and the token verification keys.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/jwks.json", get(jwks))
}

/// The process is up and serving.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers within two seconds.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ready" }))),
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

async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.tokens.jwks().clone())
}
