//! `POST /v1/auth/introspect` (RFC 7662) and the discovery document
//! `/.well-known/openid-configuration`, for apps that verify Latchkey's tokens
//! themselves (docs/INTEGRATION.md).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::AdminKey;
use crate::service::introspection::{self, Active};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(introspect)).routes(routes!(discovery))
}

/// What is asked about: the token (RFC 7662 section 2.1).
#[derive(Deserialize, ToSchema)]
struct IntrospectRequest {
    /// An access token (a user's, or a client token of Lerian's `client_credentials`).
    token: String,
    /// Ignored, as RFC 7662 allows: only access tokens are introspected.
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// RFC 7662's answer: `{"active": false}` alone, or what the live token says.
#[derive(Serialize, ToSchema, Default)]
struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    /// The user's id, or `client:<API key id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// A client token's scopes, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    /// The session, for a user's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    /// The session's level now: `aal1` or `aal2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    aal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    /// `true` while the session waits for its second factor (Prisme.ai's and Flashback's
    /// logins): it opens nothing but that step.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_pending: Option<bool>,
}

/// `POST /v1/auth/introspect` (scope `users:read`): whether an access token is live
/// now, with its session's level and methods (RFC 7662). The body is a form
/// (`token=...`), as the RFC has it, or the same as JSON.
#[utoipa::path(post, path = "/v1/auth/introspect", tag = "auth",
    request_body(content = IntrospectRequest, content_type = "application/x-www-form-urlencoded"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`active`, and for a live token what it says.", body = Introspection),
        (status = 403, description = "The key lacks `users:read`.", body = ErrorBody),
        (status = 413, description = "A body over 64 KiB."),
        (status = 415, description = "Neither a form nor JSON.", body = ErrorBody),
        (status = 422, description = "No `token` (`missing_field`).", body = ErrorBody),
    ))]
async fn introspect(
    State(state): State<AppState>,
    admin: AdminKey,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Introspection>, ApiError> {
    admin.require("users:read")?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let request: IntrospectRequest = if content_type.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(&body).map_err(|_| ApiError::field(ErrorCode::MissingField, "token"))?
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(&body).map_err(|_| ApiError::field(ErrorCode::MissingField, "token"))?
    } else {
        return Err(ErrorCode::UnsupportedMediaType.into());
    };
    let answer = match introspection::introspect(&state, &request.token).await? {
        None => Introspection::default(),
        Some(Active::User { claims, aal, amr, mfa_pending }) => Introspection {
            active: true,
            token_type: Some("access_token"),
            sub: Some(claims.sub),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            sid: Some(claims.sid),
            aal: Some(aal),
            amr: Some(amr),
            auth_time: Some(claims.auth_time),
            mfa_pending: Some(mfa_pending),
            ..Introspection::default()
        },
        Some(Active::Client { key, exp, iat }) => Introspection {
            active: true,
            token_type: Some("access_token"),
            sub: Some(format!("client:{}", key.id)),
            client_id: Some(key.id),
            scope: Some(key.scopes.join(" ")),
            iss: Some(state.config.public_base().to_owned()),
            aud: Some(state.config.tokens.audience.clone()),
            exp: Some(exp),
            iat: Some(iat),
            ..Introspection::default()
        },
    };
    Ok(Json(answer))
}

/// Where an app finds what it needs to verify tokens itself.
#[derive(Serialize, ToSchema)]
struct Discovery {
    /// The `iss` of every token.
    issuer: String,
    /// The key set that verifies tokens.
    jwks_uri: String,
    introspection_endpoint: String,
    /// How the introspection endpoint is called: with an API key (`X-API-Key`).
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The signing algorithm of access tokens: `EdDSA` (Ed25519).
    id_token_signing_alg_values_supported: Vec<&'static str>,
    /// The same, for access tokens (RFC 9068's name).
    access_token_signing_alg_values_supported: Vec<&'static str>,
    /// The session claims a token carries: `aal` and `amr` (RFC 8176) for step-up.
    claims_supported: Vec<&'static str>,
}

/// `GET /.well-known/openid-configuration`: the issuer, the key set, the algorithm and
/// the introspection endpoint (OpenID-style discovery; Latchkey issues no ID tokens).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "operations",
    responses((status = 200, description = "The discovery document.", body = Discovery)))]
async fn discovery(State(state): State<AppState>) -> Json<Discovery> {
    let base = state.config.public_base();
    Json(Discovery {
        issuer: base.to_owned(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        introspection_endpoint: format!("{base}/v1/auth/introspect"),
        introspection_endpoint_auth_methods_supported: vec!["api_key"],
        id_token_signing_alg_values_supported: vec!["EdDSA"],
        access_token_signing_alg_values_supported: vec!["EdDSA"],
        claims_supported: vec!["iss", "sub", "aud", "exp", "iat", "auth_time", "sid", "aal", "amr", "jti"],
    })
}
