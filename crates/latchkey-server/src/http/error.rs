//! The native API's error type: one stable snake_case code per kind of failure, the
//! body `{"error": {"code", "message", "details"?}}`, and internal causes that are
//! logged (with the request id) but never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// Every error code the native API can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    UnknownField,
    MissingField,
    InvalidField,
    InvalidQuery,
    InvalidEmail,
    InvalidPhone,
    WeakPassword,
    InvalidCredentials,
    Unauthenticated,
    InvalidToken,
    InvalidRefreshToken,
    InvalidApiKey,
    InsufficientScope,
    SignupDisabled,
    EmailTaken,
    UserNotFound,
    NotFound,
    MethodNotAllowed,
    InvalidCode,
    InvalidMfaToken,
    InvalidExchangeCode,
    InvalidLink,
    RecoveryWaiting,
    RecoveryDisabled,
    TooManyAttempts,
    SecondFactorLocked,
    ReauthenticationRequired,
    FactorNotFound,
    FactorAlreadyActive,
    FactorNotVerified,
    TooManyFactors,
    InvalidCredential,
    CredentialAlreadyRegistered,
    InvalidFriendlyName,
    MfaNotEnabled,
    SecondFactorRequired,
    MfaSetupRequired,
    InsufficientRole,
    RateLimited,
    PhoneNotAllowed,
    ChallengeNotApplicable,
    ChallengePending,
    InvalidChallenge,
    MagicLinkDisabled,
    DatabaseUnavailable,
    Overloaded,
    InternalError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 50] = [
        Self::MalformedJson,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::UnknownField,
        Self::MissingField,
        Self::InvalidField,
        Self::InvalidQuery,
        Self::InvalidEmail,
        Self::InvalidPhone,
        Self::WeakPassword,
        Self::InvalidCredentials,
        Self::Unauthenticated,
        Self::InvalidToken,
        Self::InvalidRefreshToken,
        Self::InvalidApiKey,
        Self::InsufficientScope,
        Self::SignupDisabled,
        Self::EmailTaken,
        Self::UserNotFound,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::InvalidCode,
        Self::InvalidMfaToken,
        Self::InvalidExchangeCode,
        Self::InvalidLink,
        Self::RecoveryWaiting,
        Self::RecoveryDisabled,
        Self::TooManyAttempts,
        Self::SecondFactorLocked,
        Self::ReauthenticationRequired,
        Self::FactorNotFound,
        Self::FactorAlreadyActive,
        Self::FactorNotVerified,
        Self::TooManyFactors,
        Self::InvalidCredential,
        Self::CredentialAlreadyRegistered,
        Self::InvalidFriendlyName,
        Self::MfaNotEnabled,
        Self::SecondFactorRequired,
        Self::MfaSetupRequired,
        Self::InsufficientRole,
        Self::RateLimited,
        Self::PhoneNotAllowed,
        Self::ChallengeNotApplicable,
        Self::ChallengePending,
        Self::InvalidChallenge,
        Self::MagicLinkDisabled,
        Self::DatabaseUnavailable,
        Self::Overloaded,
        Self::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnknownField => "unknown_field",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidEmail => "invalid_email",
            Self::InvalidPhone => "invalid_phone",
            Self::WeakPassword => "weak_password",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidToken => "invalid_token",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::InvalidApiKey => "invalid_api_key",
            Self::InsufficientScope => "insufficient_scope",
            Self::SignupDisabled => "signup_disabled",
            Self::EmailTaken => "email_taken",
            Self::UserNotFound => "user_not_found",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidCode => "invalid_code",
            Self::InvalidMfaToken => "invalid_mfa_token",
            Self::InvalidExchangeCode => "invalid_exchange_code",
            Self::InvalidLink => "invalid_link",
            Self::RecoveryWaiting => "recovery_waiting",
            Self::RecoveryDisabled => "recovery_disabled",
            Self::TooManyAttempts => "too_many_attempts",
            Self::SecondFactorLocked => "second_factor_locked",
            Self::ReauthenticationRequired => "reauthentication_required",
            Self::FactorNotFound => "factor_not_found",
            Self::FactorAlreadyActive => "factor_already_active",
            Self::FactorNotVerified => "factor_not_verified",
            Self::TooManyFactors => "too_many_factors",
            Self::InvalidCredential => "invalid_credential",
            Self::CredentialAlreadyRegistered => "credential_already_registered",
            Self::InvalidFriendlyName => "invalid_friendly_name",
            Self::MfaNotEnabled => "mfa_not_enabled",
            Self::SecondFactorRequired => "second_factor_required",
            Self::MfaSetupRequired => "mfa_setup_required",
            Self::InsufficientRole => "insufficient_role",
            Self::RateLimited => "rate_limited",
            Self::PhoneNotAllowed => "phone_not_allowed",
            Self::ChallengeNotApplicable => "challenge_not_applicable",
            Self::ChallengePending => "challenge_pending",
            Self::InvalidChallenge => "invalid_challenge",
            Self::MagicLinkDisabled => "magic_link_disabled",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::Overloaded => "overloaded",
            Self::InternalError => "internal_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedJson | Self::InvalidQuery => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnknownField
            | Self::MissingField
            | Self::InvalidField
            | Self::InvalidEmail
            | Self::InvalidPhone
            | Self::WeakPassword => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidCredentials
            | Self::Unauthenticated
            | Self::InvalidToken
            | Self::InvalidRefreshToken
            | Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope | Self::SignupDisabled => StatusCode::FORBIDDEN,
            Self::EmailTaken => StatusCode::CONFLICT,
            Self::UserNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidCode => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidMfaToken => StatusCode::UNAUTHORIZED,
            Self::InvalidExchangeCode => StatusCode::UNAUTHORIZED,
            Self::InvalidLink => StatusCode::BAD_REQUEST,
            Self::RecoveryWaiting | Self::RecoveryDisabled => StatusCode::FORBIDDEN,
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::SecondFactorLocked => StatusCode::FORBIDDEN,
            Self::ReauthenticationRequired => StatusCode::FORBIDDEN,
            Self::FactorNotFound => StatusCode::NOT_FOUND,
            Self::FactorAlreadyActive
            | Self::FactorNotVerified
            | Self::TooManyFactors
            | Self::CredentialAlreadyRegistered => StatusCode::CONFLICT,
            Self::InvalidCredential => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidFriendlyName => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MfaNotEnabled => StatusCode::CONFLICT,
            Self::SecondFactorRequired => StatusCode::UNAUTHORIZED,
            Self::MfaSetupRequired | Self::InsufficientRole => StatusCode::FORBIDDEN,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::PhoneNotAllowed | Self::ChallengeNotApplicable | Self::InvalidChallenge => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::ChallengePending => StatusCode::CONFLICT,
            Self::MagicLinkDisabled => StatusCode::FORBIDDEN,
            Self::DatabaseUnavailable | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message sent when the caller has nothing more specific to say.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::MalformedJson => "The request body is not valid JSON.",
            Self::UnsupportedMediaType => "The request body must be JSON (Content-Type: application/json).",
            Self::PayloadTooLarge => "The request body is larger than 64 KiB.",
            Self::UnknownField => "The request body has a field this endpoint does not accept.",
            Self::MissingField => "The request body lacks a required field.",
            Self::InvalidField => "A field in the request body has the wrong type or value.",
            Self::InvalidQuery => "The query string is invalid.",
            Self::InvalidEmail => "The email address is not valid.",
            Self::InvalidPhone => "The phone number must be in E.164 form, like +14155550123.",
            Self::WeakPassword => "The password does not meet the password policy.",
            Self::InvalidCredentials => "The email address or password is incorrect.",
            Self::Unauthenticated => "This endpoint needs an access token (Authorization: Bearer ...).",
            Self::InvalidToken => "The access token is invalid, expired or revoked.",
            Self::InvalidRefreshToken => "The refresh token is invalid, expired or already used.",
            Self::InvalidApiKey => "This endpoint needs a valid API key (X-API-Key).",
            Self::InsufficientScope => "The API key lacks the scope this endpoint needs.",
            Self::SignupDisabled => "Sign-up is disabled on this server.",
            Self::EmailTaken => "An account with this email address already exists.",
            Self::UserNotFound => "No user has this id.",
            Self::NotFound => "There is nothing at this path.",
            Self::MethodNotAllowed => "This path does not accept this method.",
            Self::InvalidCode => "The code is incorrect, expired or already used.",
            Self::InvalidMfaToken => "The mfa_token is invalid, expired or already used; log in again.",
            Self::InvalidExchangeCode => "The code is invalid, expired or already exchanged; sign in again.",
            Self::InvalidLink => "The link is invalid, expired or already used; ask for a new one.",
            Self::RecoveryWaiting => "This recovery link opens after its waiting period.",
            Self::RecoveryDisabled => "Self-service recovery is turned off on this server.",
            Self::TooManyAttempts => "Too many failed attempts; wait for the time in Retry-After.",
            Self::SecondFactorLocked => {
                "Too many failed attempts: the second factor is locked until an administrator resets it."
            }
            Self::ReauthenticationRequired => {
                "This action needs a recent login (with your second factor when you have one) or current_password."
            }
            Self::FactorNotFound => "No factor of yours has this id.",
            Self::FactorAlreadyActive => "This factor is already confirmed.",
            Self::FactorNotVerified => "This factor's code has not been verified yet.",
            Self::TooManyFactors => "This account has as many factors as it may; remove one to add another.",
            Self::InvalidCredential => "The WebAuthn credential was refused; details.reason says why.",
            Self::CredentialAlreadyRegistered => "This passkey or security key is already registered.",
            Self::InvalidFriendlyName => {
                "friendly_name must be 1 to 100 characters without control characters."
            }
            Self::MfaNotEnabled => "This needs an active second factor first.",
            Self::SecondFactorRequired => "This session has not passed its second factor yet.",
            Self::InsufficientRole => {
                "Only an owner or administrator of the user's organization may do this."
            }
            Self::MfaSetupRequired => {
                "Your organization requires a second factor: set one up from a client of the Flashback API first."
            }
            Self::RateLimited => {
                "Too many codes or links were sent to this destination; wait for the time in Retry-After."
            }
            Self::PhoneNotAllowed => "Phone numbers in this country cannot be used on this server.",
            Self::ChallengeNotApplicable => {
                "This factor needs no challenge: enter the code your authenticator app shows."
            }
            Self::ChallengePending => {
                "The link has not been confirmed yet: open it from the email and confirm, then try again."
            }
            Self::InvalidChallenge => "The challenge is invalid, expired or already used.",
            Self::MagicLinkDisabled => "Sign-in links are disabled on this server.",
            Self::DatabaseUnavailable => "The database is unavailable.",
            Self::Overloaded => {
                "The server is handling as many requests as it may; retry after the time in Retry-After."
            }
            Self::InternalError => {
                "Something went wrong on our side; the request id identifies it in the logs."
            }
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// In the documents, the code is a string from [`ErrorCode::ALL`].
impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Self::ALL.iter().map(|code| code.as_str())))
            .description(Some("A stable snake_case code; docs/API.md lists what each means."))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// The native error body: `{"error": {"code", "message", "details"?}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; may change between versions.
    pub message: String,
    /// Which field, how long to wait, which scope is missing: depends on the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

/// A failed request, ready to be rendered in the native format.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds to wait, sent as `Retry-After` (with `too_many_attempts`).
    pub retry_after: Option<i64>,
    /// The internal cause, logged and never sent.
    source: Option<anyhow::Error>,
}

/// How long a client is asked to wait when the database is out of reach.
pub const DATABASE_RETRY_AFTER_SECS: i64 = 5;

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: code.default_message().to_owned(),
            details: None,
            retry_after: None,
            source: None,
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// An internal failure: the cause goes to the log, the client gets a generic body.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self { source: Some(cause.into()), ..Self::new(ErrorCode::InternalError) }
    }

    /// `overloaded` (503, retry after a second): too many requests in flight.
    pub fn overloaded() -> Self {
        Self { retry_after: Some(1), ..Self::new(ErrorCode::Overloaded) }
    }

    /// `database_unavailable` (503, retry after a few seconds): the cause goes to the log.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(cause.into()),
            retry_after: Some(DATABASE_RETRY_AFTER_SECS),
            ..Self::new(ErrorCode::DatabaseUnavailable)
        }
    }

    /// `too_many_attempts`, to be retried after `seconds`.
    pub fn retry_after(seconds: i64) -> Self {
        let seconds = seconds.max(1);
        Self { retry_after: Some(seconds), ..Self::new(ErrorCode::TooManyAttempts) }
            .with_details(json!({ "retry_after": seconds }))
    }

    /// `rate_limited`: nothing more may be sent to a destination for `seconds`.
    pub fn rate_limited(seconds: i64) -> Self {
        let seconds = seconds.max(1);
        Self { retry_after: Some(seconds), ..Self::new(ErrorCode::RateLimited) }
            .with_details(json!({ "retry_after": seconds }))
    }

    /// A field-level error naming the offending field.
    pub fn field(code: ErrorCode, field: &str) -> Self {
        Self::new(code).with_details(json!({ "field": field }))
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<latchkey_store::StoreError> for ApiError {
    fn from(error: latchkey_store::StoreError) -> Self {
        match error {
            latchkey_store::StoreError::EmailTaken => Self::new(ErrorCode::EmailTaken),
            latchkey_store::StoreError::Unavailable(cause) => Self::unavailable(cause),
            other => Self::internal(other),
        }
    }
}

impl ApiError {
    /// Logs the internal cause, if any; every surface calls this before answering.
    pub fn log_cause(&self) {
        if let Some(source) = &self.source {
            tracing::error!(error = %format!("{source:#}"), code = self.code.as_str(), "request failed");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_cause();
        let body = ErrorBody {
            error: ErrorDetail { code: self.code, message: self.message, details: self.details },
        };
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.code.status() == StatusCode::UNAUTHORIZED && self.code != ErrorCode::InvalidApiKey {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let codes: HashSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        for code in codes {
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../../../docs/API.md");
        for code in ErrorCode::ALL {
            assert!(doc.contains(&format!("`{}`", code.as_str())), "docs/API.md lacks {}", code.as_str());
        }
    }
}
