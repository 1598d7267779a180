//! Lerian's error catalogue: every code this surface answers with, its status, title
//! and message (Lerian's own texts where its documents give them, Latchkey's numbers
//! and texts elsewhere, all in docs/API.md), and the one mapping from native errors.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ErrorCode};

/// Every error this surface answers with.
// The variants are named after Lerian's titles ("Invalid Recovery Code").
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    MissingFields,
    UnexpectedFields,
    InternalError,
    BadRequest,
    MfaAlreadyEnabled,
    MfaSetupNotInitiated,
    MfaInvalidType,
    MfaOperationFailed,
    UserNotFound,
    InvalidPasscode,
    InvalidRecoveryCode,
    PasscodeNotVerified,
    SecretMismatch,
    TooManyAttempts,
    MfaLocked,
    MfaNotEnabled,
    PhoneNumberRequired,
    TooManyCodesSent,
    RecentLoginRequired,
    ChallengeNotApplicable,
    PhoneNumberNotAllowed,
    CountryCodeMismatch,
    RequestTooLarge,
    MethodNotAllowed,
    ServiceUnavailable,
    Overloaded,
    Unauthorized,
    Forbidden,
    InvalidCredentials,
    UnsupportedGrantType,
    InvalidToken,
}

impl Code {
    pub const ALL: [Code; 31] = [
        Self::MissingFields,
        Self::UnexpectedFields,
        Self::InternalError,
        Self::BadRequest,
        Self::MfaAlreadyEnabled,
        Self::MfaSetupNotInitiated,
        Self::MfaInvalidType,
        Self::MfaOperationFailed,
        Self::UserNotFound,
        Self::InvalidPasscode,
        Self::InvalidRecoveryCode,
        Self::PasscodeNotVerified,
        Self::SecretMismatch,
        Self::TooManyAttempts,
        Self::MfaLocked,
        Self::MfaNotEnabled,
        Self::PhoneNumberRequired,
        Self::TooManyCodesSent,
        Self::RecentLoginRequired,
        Self::ChallengeNotApplicable,
        Self::PhoneNumberNotAllowed,
        Self::CountryCodeMismatch,
        Self::RequestTooLarge,
        Self::MethodNotAllowed,
        Self::ServiceUnavailable,
        Self::Overloaded,
        Self::Unauthorized,
        Self::Forbidden,
        Self::InvalidCredentials,
        Self::UnsupportedGrantType,
        Self::InvalidToken,
    ];

    /// Status, code, title and message. The first nine are Lerian's, word for word.
    pub fn parts(self) -> (StatusCode, &'static str, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Self::MissingFields => (
                S::BAD_REQUEST,
                "IDE-0001",
                "Missing Fields in Request",
                "Your request is missing one or more required fields.",
            ),
            Self::UnexpectedFields => (
                S::BAD_REQUEST,
                "IDE-0004",
                "Unexpected Fields in the Request",
                "The request body contains more fields than expected. Please send only the allowed fields.",
            ),
            Self::InternalError => (
                S::INTERNAL_SERVER_ERROR,
                "IDE-0006",
                "Internal Server Error",
                "The server encountered an unexpected error. Please try again later.",
            ),
            Self::BadRequest => (
                S::BAD_REQUEST,
                "IDE-0007",
                "Bad Request",
                "The server could not understand the request due to malformed syntax.",
            ),
            Self::MfaAlreadyEnabled => {
                (S::BAD_REQUEST, "IDE-0040", "MFA Already Enabled", "MFA is already enabled for this user.")
            }
            Self::MfaSetupNotInitiated => (
                S::BAD_REQUEST,
                "IDE-0043",
                "MFA Setup Not Initiated",
                "MFA setup has not been initiated for this user. Please call the setup endpoint first.",
            ),
            Self::MfaInvalidType => (
                S::BAD_REQUEST,
                "IDE-0044",
                "MFA Invalid Type",
                "The provided MFA type is invalid. Accepted values are app, email, and sms.",
            ),
            Self::MfaOperationFailed => (
                S::INTERNAL_SERVER_ERROR,
                "IDE-0045",
                "MFA Operation Failed",
                "The MFA operation failed due to an unexpected error. Please try again later.",
            ),
            Self::UserNotFound => (
                S::NOT_FOUND,
                "IDE-1003",
                "User ID Not Found",
                "The provided user ID does not exist in our records.",
            ),
            Self::InvalidPasscode => (
                S::BAD_REQUEST,
                "IDE-0046",
                "Invalid MFA Passcode",
                "The passcode is incorrect, expired or already used.",
            ),
            Self::InvalidRecoveryCode => (
                S::BAD_REQUEST,
                "IDE-0047",
                "Invalid Recovery Code",
                "The recovery code is incorrect or already used.",
            ),
            Self::PasscodeNotVerified => (
                S::BAD_REQUEST,
                "IDE-0048",
                "MFA Passcode Not Verified",
                "Verify a passcode with the verify endpoint before enabling MFA.",
            ),
            Self::SecretMismatch => (
                S::BAD_REQUEST,
                "IDE-0049",
                "MFA Secret Mismatch",
                "The secret does not match the pending MFA setup. Use the secret from the latest setup.",
            ),
            Self::TooManyAttempts => (
                S::TOO_MANY_REQUESTS,
                "IDE-0050",
                "Too Many MFA Attempts",
                "Too many failed attempts. Wait for the time in the Retry-After header.",
            ),
            Self::MfaLocked => (
                S::FORBIDDEN,
                "IDE-0051",
                "MFA Locked",
                "Too many failed attempts: MFA is locked until an administrator resets it.",
            ),
            Self::MfaNotEnabled => (
                S::BAD_REQUEST,
                "IDE-0052",
                "MFA Not Enabled",
                "MFA of this type is not enabled for this user.",
            ),
            Self::PhoneNumberRequired => (
                S::BAD_REQUEST,
                "IDE-0053",
                "Phone Number Required",
                "The user has no phone number to send SMS passcodes to.",
            ),
            Self::TooManyCodesSent => (
                S::TOO_MANY_REQUESTS,
                "IDE-0054",
                "Too Many Passcodes Sent",
                "Too many passcodes were sent to this destination. Wait for the time in the Retry-After header.",
            ),
            Self::RecentLoginRequired => (
                S::FORBIDDEN,
                "IDE-0055",
                "Recent Login Required",
                "This change needs a recent login, with the second factor when MFA is enabled.",
            ),
            Self::ChallengeNotApplicable => (
                S::BAD_REQUEST,
                "IDE-0056",
                "MFA Challenge Not Applicable",
                "Authenticator apps need no challenge: send the passcode the app shows.",
            ),
            Self::PhoneNumberNotAllowed => (
                S::BAD_REQUEST,
                "IDE-0057",
                "Phone Number Not Allowed",
                "Phone numbers in this country cannot receive MFA passcodes on this server.",
            ),
            Self::CountryCodeMismatch => (
                S::BAD_REQUEST,
                "IDE-0058",
                "Country Code Mismatch",
                "The country code does not match the phone number the passcode was sent to.",
            ),
            Self::RequestTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "IDE-0059",
                "Request Too Large",
                "The request body is larger than 64 KiB.",
            ),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "IDE-0060",
                "Method Not Allowed",
                "This endpoint does not accept this HTTP method.",
            ),
            Self::ServiceUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "IDE-0061",
                "Service Unavailable",
                "The service cannot reach its database. Retry after the time in the Retry-After header.",
            ),
            Self::Overloaded => (
                S::SERVICE_UNAVAILABLE,
                "IDE-0062",
                "Service Overloaded",
                "The service is handling as many requests as it may. Retry after the time in the Retry-After header.",
            ),
            Self::Unauthorized => (
                S::UNAUTHORIZED,
                "AUT-0001",
                "Unauthorized",
                "A valid access token (Authorization: Bearer) or API key is required.",
            ),
            Self::Forbidden => (
                S::FORBIDDEN,
                "AUT-0002",
                "Forbidden",
                "You may only manage your own MFA, unless you use an API key with the required scope.",
            ),
            Self::InvalidCredentials => {
                (S::UNAUTHORIZED, "AUT-0003", "Invalid Credentials", "The username or password is incorrect.")
            }
            Self::UnsupportedGrantType => (
                S::BAD_REQUEST,
                "AUT-0004",
                "Unsupported Grant Type",
                "The grant type is not supported. Use password or refresh_token.",
            ),
            Self::InvalidToken => (
                S::UNAUTHORIZED,
                "AUT-0005",
                "Invalid Token",
                "The token is invalid, expired or already used. Log in again.",
            ),
        }
    }
}

/// Every code of the catalogue with its status, for the OpenAPI document.
pub fn catalogue() -> Vec<(u16, &'static str)> {
    Code::ALL.iter().map(|code| code.parts()).map(|(status, code, ..)| (status.as_u16(), code)).collect()
}

/// An error in Lerian's format.
#[derive(Debug)]
pub struct LerianError {
    code: Code,
    retry_after: Option<i64>,
}

impl From<Code> for LerianError {
    fn from(code: Code) -> Self {
        Self { code, retry_after: None }
    }
}

/// The one mapping from native errors to Lerian's codes.
impl From<ApiError> for LerianError {
    fn from(error: ApiError) -> Self {
        use ErrorCode as C;
        let field = error.details.as_ref().and_then(|d| d["field"].as_str()).unwrap_or_default();
        let code = match error.code {
            C::MissingField => Code::MissingFields,
            C::UnknownField => Code::UnexpectedFields,
            C::InvalidField if field == "mfaType" => Code::MfaInvalidType,
            C::PayloadTooLarge => Code::RequestTooLarge,
            C::MethodNotAllowed => Code::MethodNotAllowed,
            C::InvalidCredentials => Code::InvalidCredentials,
            C::Unauthenticated | C::InvalidToken | C::InvalidApiKey | C::SecondFactorRequired => {
                Code::Unauthorized
            }
            C::InvalidRefreshToken | C::InvalidMfaToken | C::InvalidExchangeCode => Code::InvalidToken,
            C::InsufficientScope | C::MfaSetupRequired => Code::Forbidden,
            C::UserNotFound => Code::UserNotFound,
            C::InvalidCode => Code::InvalidPasscode,
            C::TooManyAttempts => Code::TooManyAttempts,
            C::RateLimited => Code::TooManyCodesSent,
            C::SecondFactorLocked => Code::MfaLocked,
            C::ReauthenticationRequired => Code::RecentLoginRequired,
            C::FactorAlreadyActive => Code::MfaAlreadyEnabled,
            C::FactorNotVerified => Code::PasscodeNotVerified,
            C::FactorNotFound | C::MfaNotEnabled => Code::MfaNotEnabled,
            C::PhoneNotAllowed => Code::PhoneNumberNotAllowed,
            C::ChallengeNotApplicable => Code::ChallengeNotApplicable,
            C::InternalError => {
                error.log_cause();
                Code::InternalError
            }
            C::DatabaseUnavailable => {
                error.log_cause();
                Code::ServiceUnavailable
            }
            C::Overloaded => Code::Overloaded,
            _ => Code::BadRequest,
        };
        Self { code, retry_after: error.retry_after }
    }
}

/// The error body Lerian clients read.
#[derive(Serialize, ToSchema)]
#[schema(as = LerianError)]
pub struct LerianErrorBody {
    /// `IDE-…` or `AUT-…`; docs/API.md lists them all.
    #[schema(example = "IDE-0046")]
    code: &'static str,
    title: &'static str,
    message: &'static str,
}

impl IntoResponse for LerianError {
    fn into_response(self) -> Response {
        let (status, code, title, message) = self.code.parts();
        let mut response = (status, Json(LerianErrorBody { code, title, message })).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub type Result<T> = std::result::Result<T, LerianError>;

/// A failure inside an MFA operation: internal causes become IDE-0045, a factor that
/// lapsed or vanished meanwhile means setup must start again (IDE-0043).
pub fn mfa_operation(error: ApiError) -> LerianError {
    match error.code {
        ErrorCode::InternalError => {
            error.log_cause();
            Code::MfaOperationFailed.into()
        }
        ErrorCode::FactorNotFound => Code::MfaSetupNotInitiated.into(),
        _ => error.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_documented() {
        let doc = include_str!("../../../../docs/API.md");
        let codes: HashSet<&str> = Code::ALL.iter().map(|c| c.parts().1).collect();
        assert_eq!(codes.len(), Code::ALL.len());
        for code in Code::ALL {
            let (status, code, title, _) = code.parts();
            let row = format!("| `{code}` | {} | {title} |", status.as_u16());
            assert!(doc.contains(&row), "docs/API.md lacks the row {row}");
        }
    }
}
