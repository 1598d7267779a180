//! Flashback-compatible API: `/user/login` and `/user/refresh`, and the MFA routes under
//! `/mfa`. Answers are `{"success": true, "data"?, "message"?}`; errors
//! `{"success": false, "error": "<text>"}`. A login of a user with MFA (or of a member of
//! an organisation that enforces it, who has none yet) gives a limited token that opens
//! only `/mfa/...` until `/mfa/verify-login` (or the first factor's setup) passes.
//! This module translates; every decision is the service layer's.

mod auth;
mod mfa;
mod organization;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::factor::FactorType;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::http::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    let mfa = OpenApiRouter::new()
        .routes(routes!(mfa::status))
        .routes(routes!(mfa::methods))
        .routes(routes!(mfa::setup))
        .routes(routes!(mfa::verify_setup))
        .routes(routes!(mfa::enable))
        .routes(routes!(mfa::disable))
        .routes(routes!(mfa::primary))
        .routes(routes!(organization::reset))
        .routes(routes!(organization::enforce))
        .routes(routes!(mfa::passkey_auth_options))
        .routes(routes!(mfa::complete_registration))
        .routes(routes!(mfa::magic_link_send))
        .routes(routes!(mfa::magic_link_activate))
        .routes(routes!(auth::verify_login));
    OpenApiRouter::new()
        .nest("/mfa", crate::http::with_own_fallbacks(mfa, FlashbackError::from))
        .routes(own_405(routes!(auth::login)))
        .routes(own_405(routes!(auth::refresh)))
}

/// Whether `path` is one of this surface's (for answers made before routing).
pub fn owns(path: &str) -> bool {
    path == "/mfa" || path.starts_with("/mfa/") || path == "/user/login" || path == "/user/refresh"
}

fn own_405(route: UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, methods) = route;
    (
        schemas,
        paths,
        methods.fallback(|| async { FlashbackError::from(ApiError::new(ErrorCode::MethodNotAllowed)) }),
    )
}

/// A required field of a request: `400 "<field> is required"` when absent.
fn required<T>(value: Option<T>, field: &str) -> Result<T> {
    value.ok_or_else(|| FlashbackError::bad_request(&format!("{field} is required")))
}

/// Flashback's names for factor types.
fn factor_type(mfa_type: &str) -> Result<FactorType> {
    match mfa_type {
        "GOOGLE_AUTH" => Ok(FactorType::Totp),
        "MAGIC_LINK" => Ok(FactorType::MagicLink),
        "PASSKEY" => Ok(FactorType::Webauthn),
        _ => Err(FlashbackError::bad_request("Invalid MFA type specified")),
    }
}

/// A factor type's Flashback name, for the types Flashback has.
fn mfa_type(factor_type: FactorType) -> Option<&'static str> {
    match factor_type {
        FactorType::Totp => Some("GOOGLE_AUTH"),
        FactorType::MagicLink => Some("MAGIC_LINK"),
        FactorType::Webauthn => Some("PASSKEY"),
        FactorType::Email | FactorType::Sms => None,
    }
}

/// `mfaType` in the documents.
fn mfa_type_schema() -> utoipa::openapi::schema::Object {
    crate::http::openapi::one_of(&["GOOGLE_AUTH", "MAGIC_LINK", "PASSKEY"])
}

/// What a client says of its device (`deviceInfo`): an object; its `name` names a
/// passkey.
type DeviceInfo = serde_json::Map<String, Value>;

/// A success answer: `{"success": true, "data"?, "message"?}`.
#[derive(Serialize, ToSchema)]
struct Envelope<T: Serialize> {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

fn data<T: Serialize>(data: T) -> Json<Envelope<T>> {
    Json(Envelope { success: true, data: Some(data), message: None })
}

fn message(text: &'static str) -> Json<Envelope<Value>> {
    Json(Envelope { success: true, data: None, message: Some(text) })
}

/// An error in Flashback's envelope.
#[derive(Debug)]
pub struct FlashbackError {
    status: StatusCode,
    error: String,
    /// The login's `{error_code, message}` shape instead of `error`.
    error_code: Option<&'static str>,
    retry_after: Option<i64>,
}

impl FlashbackError {
    fn new(status: StatusCode, error: &str) -> Self {
        Self { status, error: error.to_owned(), error_code: None, retry_after: None }
    }

    fn bad_request(error: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }
}

type Result<T> = std::result::Result<T, FlashbackError>;

/// The one mapping from native errors to Flashback's statuses and texts.
impl From<ApiError> for FlashbackError {
    fn from(error: ApiError) -> Self {
        use ErrorCode as C;
        match error.code {
            C::MalformedJson
            | C::UnsupportedMediaType
            | C::UnknownField
            | C::MissingField
            | C::InvalidField
            | C::InvalidQuery
            | C::InvalidEmail => Self::bad_request(&error.message),
            C::PayloadTooLarge => Self::new(StatusCode::PAYLOAD_TOO_LARGE, &error.message),
            C::InvalidCredentials => Self {
                error_code: Some("INVALID_PASSWORD"),
                ..Self::new(StatusCode::UNAUTHORIZED, "Invalid email or password")
            },
            C::Unauthenticated
            | C::InvalidToken
            | C::InvalidApiKey
            | C::InvalidMfaToken
            | C::InvalidExchangeCode => Self::new(StatusCode::UNAUTHORIZED, "Invalid or expired token"),
            C::InvalidRefreshToken => Self {
                error_code: Some("INVALID_REFRESH_TOKEN"),
                ..Self::new(StatusCode::UNAUTHORIZED, "Invalid or expired refresh token")
            },
            C::SecondFactorRequired => Self::new(StatusCode::FORBIDDEN, "MFA verification required"),
            C::MfaSetupRequired => {
                Self::new(StatusCode::FORBIDDEN, "MFA setup required by your organization")
            }
            C::ReauthenticationRequired => Self::new(
                StatusCode::FORBIDDEN,
                "Recent MFA verification required: verify with /mfa/verify-login first",
            ),
            C::InsufficientRole => Self::new(
                StatusCode::FORBIDDEN,
                "Insufficient permissions. OWNER or ADMINISTRATOR role required to reset another user's MFA.",
            ),
            C::InvalidCode | C::InvalidCredential | C::InvalidChallenge | C::ChallengePending => {
                Self::new(StatusCode::UNAUTHORIZED, "MFA verification failed")
            }
            C::TooManyAttempts | C::RateLimited => {
                let seconds = error.retry_after.unwrap_or(1);
                let text = if error.code == C::TooManyAttempts {
                    "Too many attempts, try again later"
                } else {
                    "Too many codes or links sent, try again later"
                };
                Self { retry_after: Some(seconds), ..Self::new(StatusCode::TOO_MANY_REQUESTS, text) }
            }
            C::SecondFactorLocked => Self::new(StatusCode::FORBIDDEN, &error.message),
            C::UserNotFound => Self::new(StatusCode::NOT_FOUND, "User not found"),
            C::NotFound => Self::new(StatusCode::NOT_FOUND, "Not found"),
            C::FactorNotFound | C::MfaNotEnabled => Self::bad_request("MFA method not configured"),
            C::FactorAlreadyActive => Self::bad_request("MFA method already enabled"),
            C::MethodNotAllowed => Self::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
            C::DatabaseUnavailable | C::Overloaded => {
                error.log_cause();
                Self {
                    retry_after: error.retry_after,
                    ..Self::new(StatusCode::SERVICE_UNAVAILABLE, &error.message)
                }
            }
            C::InternalError => {
                error.log_cause();
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
            _ => Self::bad_request(&error.message),
        }
    }
}

/// The error body Flashback clients read.
#[derive(Serialize, ToSchema)]
#[schema(as = FlashbackError)]
struct FlashbackErrorBody {
    /// Always `false`.
    success: bool,
    /// What went wrong, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// On `/user/login` and `/user/refresh`: `INVALID_PASSWORD` (a wrong password and
    /// an unknown address alike) or `INVALID_REFRESH_TOKEN`, with `message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl IntoResponse for FlashbackError {
    fn into_response(self) -> Response {
        let body = match self.error_code {
            Some(code) => FlashbackErrorBody {
                success: false,
                error: None,
                error_code: Some(code),
                message: Some(self.error),
            },
            None => FlashbackErrorBody {
                success: false,
                error: Some(self.error),
                error_code: None,
                message: None,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
