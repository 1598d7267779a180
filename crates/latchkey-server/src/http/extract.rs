//! Request extractors whose failures answer in the native error format: JSON bodies,
//! query strings, client metadata, the user's access token and the admin API key.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use latchkey_core::token::TokenKind;
use latchkey_store::{ApiKey, Session};
use serde::de::DeserializeOwned;

use crate::http::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::tokens::AccessClaims;

/// A JSON request body. Requires `Content-Type: application/json`; syntax errors,
/// unknown fields, missing fields and wrong types each get their own error code, and
/// the message names the field but never echoes a value.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ErrorCode::UnsupportedMediaType.into());
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be left out entirely (an empty body gives `None`); when
/// present it is checked exactly like [`JsonBody`].
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = is_json(req.headers());
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !declared_json {
            return Err(ErrorCode::UnsupportedMediaType.into());
        }
        parse_json(&bytes).map(|value| Self(Some(value)))
    }
}

/// The whole body, within the size limit.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::PayloadTooLarge)
        } else {
            ApiError::new(ErrorCode::MalformedJson).with_message("The request body could not be read.")
        }
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| {
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// Parses a JSON document into `T`, turning serde's errors into field-level API errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so a document that is not JSON is always `malformed_json`.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|_| ApiError::new(ErrorCode::MalformedJson))?;
    // Every body is an object; serde would otherwise read a struct from an array.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::field(ErrorCode::InvalidField, "(body)")
            .with_message("The request body must be a JSON object."));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        json_error(error.inner(), &path)
    })?;
    deserializer.end().map_err(|_| ApiError::new(ErrorCode::MalformedJson))?;
    Ok(value)
}

fn json_error(error: &serde_json::Error, path: &str) -> ApiError {
    use serde_json::error::Category;
    if !matches!(error.classify(), Category::Data) {
        return ApiError::new(ErrorCode::MalformedJson);
    }
    // serde's messages name the field in backticks; other parts of them may quote the
    // value that was sent, so only the field name is kept.
    let message = error.to_string();
    let quoted = message.split('`').nth(1).unwrap_or_default();
    let join = |field: &str| {
        if path.is_empty() || path == "." { field.to_owned() } else { format!("{path}.{field}") }
    };
    if message.starts_with("unknown field") {
        // The path already ends with the unknown field's name.
        let field = if path.is_empty() || path == "." { quoted.to_owned() } else { path.to_owned() };
        ApiError::field(ErrorCode::UnknownField, &field).with_message(format!("Unknown field `{field}`."))
    } else if message.starts_with("missing field") {
        let field = join(quoted);
        ApiError::field(ErrorCode::MissingField, &field)
            .with_message(format!("Missing required field `{field}`."))
    } else {
        let field = if path.is_empty() || path == "." { "(body)".to_owned() } else { path.to_owned() };
        ApiError::field(ErrorCode::InvalidField, &field)
            .with_message(format!("Field `{field}` has the wrong type or an unacceptable value."))
    }
}

/// Path parameters, with the native error format on failure: a segment that does not
/// decode (not UTF-8, say) names nothing here, so the answer is `not_found`.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(_) => Err(ApiError::new(ErrorCode::NotFound)),
        }
    }
}

/// A query string, with the native error format on failure.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query).map(Query).map_err(|_| ApiError::new(ErrorCode::InvalidQuery))
    }
}

/// Who sent the request: the client's address and user agent, for throttles,
/// sessions and audit.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The surface the request came through (`native`, `pages`, `prisme`, ...; see
    /// `http::surface_of`), for metrics; empty for work no request started.
    pub surface: &'static str,
}

/// The load balancers in front of the server (`http.trusted_proxies`), as a request
/// extension.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<Vec<IpAddr>>);

/// The client's address: the peer's, or, when the peer is a trusted proxy, the
/// rightmost address in `X-Forwarded-For` that is not a trusted proxy itself.
fn client_ip(parts: &Parts) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())?;
    let Some(TrustedProxies(proxies)) = parts.extensions.get::<TrustedProxies>() else { return Some(peer) };
    if !proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    let hops: Vec<IpAddr> =
        forwarded.flat_map(|v| v.split(',')).filter_map(|hop| hop.trim().parse().ok()).collect();
    Some(hops.into_iter().rev().find(|hop| !proxies.contains(hop)).unwrap_or(peer))
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = client_ip(parts).map(|ip| ip.to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        // Nested surfaces see their path without its prefix; the original names it.
        let path = parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |uri| uri.0.path());
        Ok(Self { ip, user_agent, surface: crate::http::surface_of(path) })
    }
}

/// A valid access token whose session is still live, whether or not the session has
/// passed a pending second factor. Only surfaces whose clients expect a session before
/// MFA (Prisme.ai's `/v2/login/mfa`) use this directly; everything else uses
/// [`AuthUser`].
#[derive(Debug, Clone)]
pub struct SessionAuth {
    pub claims: AccessClaims,
    pub session: Session,
}

impl FromRequestParts<AppState> for SessionAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(ErrorCode::Unauthenticated)?;
        let now = state.now();
        let claims = state.tokens.verify(token, now).map_err(|_| ErrorCode::InvalidToken)?;
        let session = state.store.active_session(&claims.sid, now).await?.ok_or(ErrorCode::InvalidToken)?;
        if session.user_id != claims.sub {
            return Err(ErrorCode::InvalidToken.into());
        }
        Ok(Self { claims, session })
    }
}

/// An authenticated user: a valid access token whose session is live and has passed
/// every factor the account requires.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub claims: AccessClaims,
    pub session: Session,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let SessionAuth { claims, session } = SessionAuth::from_request_parts(parts, state).await?;
        if session.mfa_pending {
            return Err(ErrorCode::SecondFactorRequired.into());
        }
        Ok(Self { claims, session })
    }
}

/// The `; Secure` attribute for cookies Latchkey sets, when it is served over https.
pub fn secure_cookie_attribute(public_url: &str) -> &'static str {
    if public_url.starts_with("https://") { "; Secure" } else { "" }
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The token of an `Authorization: Bearer ...` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The scopes an API key can hold. `admin` grants all of them.
pub const SCOPES: [&str; 4] = ["admin", "users:read", "users:write", "audit:read"];

/// A valid, unrevoked API key from the `X-API-Key` header.
#[derive(Debug, Clone)]
pub struct AdminKey(pub ApiKey);

impl AdminKey {
    /// How audit events name this key as the actor.
    pub fn actor(&self) -> String {
        format!("api_key:{}", self.0.id)
    }

    /// Fails with `insufficient_scope` unless the key holds `scope` (or `admin`).
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.0.scopes.iter().any(|s| s == scope || s == "admin") {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::InsufficientScope)
                .with_details(serde_json::json!({ "required": scope })))
        }
    }
}

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|key| TokenKind::ApiKey.is_well_formed(key))
            .ok_or(ErrorCode::InvalidApiKey)?;
        let key =
            crate::service::api_keys::by_secret(state, presented).await?.ok_or(ErrorCode::InvalidApiKey)?;
        Ok(Self(key))
    }
}
