//! Prisme.ai-compatible API under `/v2`: password login with a session that must then
//! pass `/v2/login/mfa`, `/v2/me`, and `/v2/user/mfa` to turn TOTP on or off. Errors are
//! `{"error": "<ClassName>", "message", "details"?}`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use latchkey_core::session::{Aal, Amr};
use latchkey_store::User;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ClientMeta, JsonBody, SessionAuth, bearer_token};
use crate::service::second_factor::{self, Proof};
use crate::service::{accounts, factors, sessions};
use crate::state::AppState;

/// Mounted at `/v2`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/login/mfa", post(login_mfa))
        .route("/me", get(me))
        .route("/user/mfa", post(setup_mfa))
        .fallback(|| async { PrismeError::from(ApiError::new(ErrorCode::NotFound)) })
        .method_not_allowed_fallback(|| async {
            PrismeError::from(ApiError::new(ErrorCode::MethodNotAllowed))
        })
}

/// An error in Prisme.ai's format.
#[derive(Debug)]
pub struct PrismeError {
    status: StatusCode,
    class: &'static str,
    message: String,
    details: Option<Value>,
    retry_after: Option<i64>,
}

impl PrismeError {
    fn new(status: StatusCode, class: &'static str, message: &str) -> Self {
        Self { status, class, message: message.to_owned(), details: None, retry_after: None }
    }

    fn missing_mfa() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "MissingMFA", "Please complete multi-factor authentication")
    }

    fn validation(field: &str, message: &str) -> Self {
        Self {
            details: Some(json!([{ "field": field, "message": message }])),
            ..Self::new(StatusCode::BAD_REQUEST, "RequestValidationError", message)
        }
    }
}

/// The one mapping from native errors to Prisme.ai's classes and messages.
impl From<ApiError> for PrismeError {
    fn from(error: ApiError) -> Self {
        use ErrorCode as C;
        let field = error.details.as_ref().and_then(|d| d["field"].as_str()).unwrap_or("body").to_owned();
        match error.code {
            C::MalformedJson
            | C::UnsupportedMediaType
            | C::UnknownField
            | C::MissingField
            | C::InvalidField
            | C::InvalidQuery
            | C::InvalidEmail => Self::validation(&field, &error.message),
            C::PayloadTooLarge => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", &error.message),
            C::InvalidCredentials => {
                Self::new(StatusCode::UNAUTHORIZED, "AuthenticationError", "Incorrect email or password.")
            }
            C::SecondFactorRequired => Self::missing_mfa(),
            C::InvalidCode => Self::new(StatusCode::UNAUTHORIZED, "AuthenticationError", "Bad TOTP"),
            C::TooManyAttempts => {
                let seconds = error.retry_after.unwrap_or(1);
                Self {
                    details: Some(json!({ "retryAfter": seconds })),
                    retry_after: Some(seconds),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "TooManyRequests",
                        "Too many attempts, retry later",
                    )
                }
            }
            C::SecondFactorLocked => Self::new(StatusCode::FORBIDDEN, "ForbiddenError", &error.message),
            C::NotFound | C::UserNotFound | C::FactorNotFound => {
                Self::new(StatusCode::NOT_FOUND, "NotFoundError", "Not found")
            }
            C::MethodNotAllowed => {
                Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowedError", &error.message)
            }
            C::DatabaseUnavailable => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableError", &error.message)
            }
            C::InternalError => {
                error.log_cause();
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "Internal error")
            }
            C::Unauthenticated
            | C::InvalidToken
            | C::InvalidRefreshToken
            | C::InvalidApiKey
            | C::InvalidMfaToken
            | C::ReauthenticationRequired => {
                Self::new(StatusCode::UNAUTHORIZED, "AuthenticationError", "Unauthenticated")
            }
            _ => Self::new(StatusCode::BAD_REQUEST, "BadParameters", &error.message),
        }
    }
}

impl IntoResponse for PrismeError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.class, "message": self.message });
        if let Some(details) = self.details {
            body["details"] = details;
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

type Result<T> = std::result::Result<T, PrismeError>;

/// The session behind the Bearer token. A Prisme API key (`x-prismeai-api-key`) is
/// recognised but cannot act as a user.
fn session(headers: &HeaderMap, auth: std::result::Result<SessionAuth, ApiError>) -> Result<SessionAuth> {
    if bearer_token(headers).is_none() && headers.contains_key("x-prismeai-api-key") {
        return Err(PrismeError::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            "An API key cannot act as a user: send the user's Bearer token",
        ));
    }
    Ok(auth?)
}

async fn has_totp(state: &AppState, user_id: &str) -> std::result::Result<bool, ApiError> {
    factors::has_active(state, user_id, Some("totp")).await
}

/// The user object Prisme.ai clients read.
async fn user_json(state: &AppState, user: &User) -> Result<Value> {
    let mfa = if has_totp(state, &user.id).await? { "totp" } else { "none" };
    Ok(json!({ "id": user.id, "email": user.email, "mfa": mfa }))
}

#[derive(Deserialize)]
struct Login {
    email: Option<String>,
    password: Option<String>,
}

fn required(value: Option<String>, field: &str) -> Result<String> {
    value.ok_or_else(|| PrismeError::validation(field, &format!("{field} is required")))
}

/// `POST /v2/login`: for a user with MFA, the session must pass `/v2/login/mfa`
/// before it opens anything else.
async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<Login>, ApiError>,
) -> Result<Json<Value>> {
    let JsonBody(body) = body?;
    let email = required(body.email, "email")?;
    let password = required(body.password, "password")?;
    let user = accounts::authenticate_password(&state, &email, password.into()).await?;
    let pending = factors::has_active(&state, &user.id, None).await?;
    let tokens =
        sessions::start(&state, &user.id, Aal::Aal1, &[Amr::Pwd], state.now(), pending, &meta).await?;
    let mut response = user_json(&state, &user).await?;
    response["token"] = json!(tokens.access_token);
    response["sessionId"] = json!(tokens.session_id);
    response["expires"] = json!(rfc3339(state.now() + tokens.expires_in));
    Ok(Json(response))
}

/// `GET /v2/me`: the user, the MFA method and the session.
async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: std::result::Result<SessionAuth, ApiError>,
) -> Result<Json<Value>> {
    let auth = session(&headers, auth)?;
    let user = accounts::session_user(&state, &auth.session.user_id).await?;
    let mut response = user_json(&state, &user).await?;
    response["sessionId"] = json!(auth.session.id);
    response["expires"] = json!(rfc3339(auth.claims.exp));
    Ok(Json(response))
}

#[derive(Deserialize)]
struct Totp {
    totp: Option<String>,
}

/// `POST /v2/login/mfa`: passes the session's second factor.
async fn login_mfa(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
    body: std::result::Result<JsonBody<Totp>, ApiError>,
) -> Result<Json<Value>> {
    let auth = session(&headers, auth)?;
    let JsonBody(body) = body?;
    let user_id = auth.session.user_id.as_str();
    if !has_totp(&state, user_id).await? {
        return Err(PrismeError::new(StatusCode::NOT_FOUND, "NotFoundError", "No MFA configured"));
    }
    let code = required(body.totp, "totp")?;
    second_factor::verify(&state, user_id, Proof::AnyTotp { code: &code }, &meta, None).await?;
    let mut amr = auth.session.amr.clone();
    if !amr.iter().any(|m| m == Amr::Otp.as_str()) {
        amr.push(Amr::Otp.as_str().to_owned());
    }
    state
        .store
        .elevate_session(&auth.session.id, Aal::Aal2.as_str(), &amr, state.now())
        .await
        .map_err(ApiError::from)?;
    Ok(Json(json!({ "success": true })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetupMfa {
    method: Option<Value>,
    current_password: Option<String>,
}

/// `POST /v2/user/mfa`: `totp` (or `*`) makes TOTP the user's method at once; `none`
/// turns MFA off. The current password is the re-authentication.
async fn setup_mfa(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
    body: std::result::Result<JsonBody<SetupMfa>, ApiError>,
) -> Result<Json<Value>> {
    let auth = session(&headers, auth)?;
    let JsonBody(body) = body?;
    let method = body.method.ok_or_else(|| PrismeError::validation("method", "method is required"))?;
    let password = required(body.current_password, "currentPassword")?;
    let method = method
        .as_str()
        .filter(|m| ["totp", "none", "*"].contains(m))
        .ok_or_else(|| PrismeError::validation("method", "method must be one of totp, none, *"))?
        .to_owned();
    let user = accounts::session_user(&state, &auth.session.user_id).await?;
    accounts::authenticate_password(&state, &user.email, password.into()).await?;
    if auth.session.mfa_pending {
        return Err(PrismeError::missing_mfa());
    }
    if method == "none" {
        factors::reset_all(&state, &user.id, &meta, None).await?;
        return Ok(Json(json!({ "method": "none" })));
    }
    let enrollment = factors::replace_totp_unconfirmed(&state, &user, &auth.session.id, &meta).await?;
    Ok(Json(json!({ "secret": enrollment.secret.as_str(), "qrImage": enrollment.qr_png.as_str() })))
}
