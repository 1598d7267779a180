//! Prisme.ai-compatible API under `/v2`: password login with a session that must then
//! pass `/v2/login/mfa`, `/v2/me`, and `/v2/user/mfa` to turn TOTP on or off. Errors are
//! `{"error": "<ClassName>", "message", "details"?}`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::factor::FactorType;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{ClientMeta, JsonBody, SessionAuth, bearer_token};
use crate::service::login_throttle::Client;
use crate::service::second_factor::Proof;
use crate::service::sessions::Lifetime;
use crate::service::{accounts, enrolment, factors, login, reauth};
use crate::state::AppState;

/// Mounted at `/v2`.
pub fn routes() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(login_mfa))
        .routes(routes!(me))
        .routes(routes!(setup_mfa));
    crate::http::with_own_fallbacks(routes, PrismeError::from)
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
            C::SecondFactorRequired | C::ReauthenticationRequired => Self::missing_mfa(),
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
            C::DatabaseUnavailable | C::Overloaded => {
                error.log_cause();
                Self {
                    retry_after: error.retry_after,
                    ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableError", &error.message)
                }
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
            | C::InvalidExchangeCode => {
                Self::new(StatusCode::UNAUTHORIZED, "AuthenticationError", "Unauthenticated")
            }
            _ => Self::new(StatusCode::BAD_REQUEST, "BadParameters", &error.message),
        }
    }
}

/// The error body Prisme.ai clients read.
#[derive(Serialize, ToSchema)]
#[schema(as = PrismeError)]
struct PrismeErrorBody {
    /// The error class: `RequestValidationError`, `AuthenticationError`, `MissingMFA`,
    /// `ForbiddenError`, `NotFoundError`, `TooManyRequests`, `PayloadTooLarge`,
    /// `BadParameters`, `MethodNotAllowedError`, `ServiceUnavailableError` or `InternalError`.
    #[schema(example = "AuthenticationError")]
    error: &'static str,
    message: String,
    /// The failing fields (`[{field, message}]`) or `{retryAfter}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
}

impl IntoResponse for PrismeError {
    fn into_response(self) -> Response {
        let body = PrismeErrorBody { error: self.class, message: self.message, details: self.details };
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

/// What the session waits for: `totp` when the user has an active TOTP factor; `*`
/// when their second factors are of kinds Prisme has no name for (a passkey, email or
/// SMS codes, set up on the native API), which a recovery code can also pass here;
/// `none` without any.
async fn mfa_method(state: &AppState, user_id: &str) -> Result<&'static str> {
    let active = factors::active_factors(state, user_id).await?;
    Ok(if active.iter().any(|f| f.factor_type == FactorType::Totp) {
        "totp"
    } else if active.is_empty() {
        "none"
    } else {
        "*"
    })
}

#[derive(Deserialize, ToSchema)]
struct Login {
    email: Option<String>,
    password: Option<String>,
}

fn required(value: Option<String>, field: &str) -> Result<String> {
    value.ok_or_else(|| PrismeError::validation(field, &format!("{field} is required")))
}

/// The user and session after login; for a user with MFA the session must pass
/// `/v2/login/mfa` first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LoginAnswer {
    id: String,
    email: String,
    /// `totp`, `*` (second factors of other kinds) or `none`.
    mfa: &'static str,
    token: String,
    session_id: String,
    expires: String,
}

/// `POST /v2/login`: for a user with MFA, the session must pass `/v2/login/mfa`
/// before it opens anything else.
#[utoipa::path(post, path = "/login", tag = "prisme",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in.", body = LoginAnswer),
        (status = 401, description = "Wrong email or password.", body = PrismeErrorBody),
        (status = 429, description = "Too many attempts.", body = PrismeErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<Login>, ApiError>,
) -> Result<Json<LoginAnswer>> {
    let JsonBody(body) = body?;
    let email = required(body.email, "email")?;
    let password = required(body.password, "password")?;
    let user = accounts::authenticate_password(&state, &email, password.into(), Client::new(&meta)).await?;
    let (tokens, _) = login::with_waiting_session(
        &state,
        &user.id,
        Lifetime::Fixed(state.config.prisme.session_ttl_secs),
        &meta,
    )
    .await?;
    Ok(Json(LoginAnswer {
        mfa: mfa_method(&state, &user.id).await?,
        id: user.id,
        email: user.email,
        token: tokens.access_token,
        session_id: tokens.session_id,
        expires: rfc3339(state.now() + tokens.expires_in),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MeAnswer {
    id: String,
    email: String,
    /// `totp`, `*` (second factors of other kinds) or `none`.
    mfa: &'static str,
    session_id: String,
    expires: String,
}

/// `GET /v2/me`: the user, the MFA method and the session.
#[utoipa::path(get, path = "/me", tag = "prisme",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user, also from a session still waiting for its second factor (`mfa` says which method it waits for).", body = MeAnswer),
        (status = 401, description = "No valid token.", body = PrismeErrorBody),
        (status = 404, description = "The user no longer exists.", body = PrismeErrorBody),
    ))]
async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: std::result::Result<SessionAuth, ApiError>,
) -> Result<Json<MeAnswer>> {
    let auth = session(&headers, auth)?;
    let user = accounts::session_user(&state, &auth.session.user_id).await?;
    Ok(Json(MeAnswer {
        mfa: mfa_method(&state, &user.id).await?,
        id: user.id,
        email: user.email,
        session_id: auth.session.id,
        expires: rfc3339(auth.claims.exp),
    }))
}

#[derive(Deserialize, ToSchema)]
struct Totp {
    /// The code from the authenticator app, or a recovery code.
    totp: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Success {
    success: bool,
}

/// `POST /v2/login/mfa`: passes the session's second factor.
#[utoipa::path(post, path = "/login/mfa", tag = "prisme",
    request_body = Totp,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session passed MFA.", body = Success),
        (status = 401, description = "No valid token, or a wrong code (`Bad TOTP`).", body = PrismeErrorBody),
        (status = 403, description = "The second factor is locked.", body = PrismeErrorBody),
        (status = 404, description = "The user has no MFA configured.", body = PrismeErrorBody),
        (status = 429, description = "Too many attempts.", body = PrismeErrorBody),
    ))]
async fn login_mfa(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
    body: std::result::Result<JsonBody<Totp>, ApiError>,
) -> Result<Json<Success>> {
    let auth = session(&headers, auth)?;
    let JsonBody(body) = body?;
    let user_id = auth.session.user_id.as_str();
    let code = required(body.totp, "totp")?;
    if mfa_method(&state, user_id).await? == "none" {
        return Err(PrismeError::new(StatusCode::NOT_FOUND, "NotFoundError", "No MFA configured"));
    }
    reauth::step_up(&state, &auth.session, Proof::typed(&code), &meta).await?;
    Ok(Json(Success { success: true }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SetupMfa {
    /// `totp` (or `*`) turns TOTP on; `none` turns MFA off.
    #[schema(value_type = Option<String>, example = "totp")]
    method: Option<Value>,
    current_password: Option<String>,
}

/// The answer to `POST /v2/user/mfa`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum SetupAnswer {
    /// TOTP is on: the secret and its QR code (a PNG data URL).
    Totp {
        secret: String,
        #[serde(rename = "qrImage")]
        qr_image: String,
    },
    /// MFA is off: `{"method": "none"}`.
    Off { method: &'static str },
}

/// `POST /v2/user/mfa`: `totp` (or `*`) makes TOTP the user's method at once; `none`
/// turns MFA off. The current password is the re-authentication.
#[utoipa::path(post, path = "/user/mfa", tag = "prisme",
    request_body = SetupMfa,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "TOTP is on (secret and QR code), or MFA is off.", body = SetupAnswer),
        (status = 401, description = "No valid token, a wrong current password, or (for a user with MFA) a session whose second factor was not proven within the re-authentication window (`MissingMFA`).",
            body = PrismeErrorBody),
        (status = 404, description = "The user no longer exists.", body = PrismeErrorBody),
        (status = 429, description = "Too many attempts.", body = PrismeErrorBody),
    ))]
async fn setup_mfa(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
    body: std::result::Result<JsonBody<SetupMfa>, ApiError>,
) -> Result<Json<SetupAnswer>> {
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
    accounts::authenticate_password(&state, &user.email, password.clone().into(), Client::new(&meta)).await?;
    // Prisme.ai asks for the password; the rule every surface applies asks, for a user
    // with MFA, a second factor proven recently in this session (MissingMFA if not).
    let by = reauth::require_recent_authentication(&state, &auth.session, Some(password.into())).await?;
    if method == "none" {
        factors::reset_all(&state, &by, &meta).await?;
        return Ok(Json(SetupAnswer::Off { method: "none" }));
    }
    let enrollment = enrolment::replace_totp_unconfirmed(&state, &by, &user, &auth.session.id, &meta).await?;
    Ok(Json(SetupAnswer::Totp {
        secret: enrollment.secret.as_str().to_owned(),
        qr_image: enrollment.qr_png.as_str().to_owned(),
    }))
}
