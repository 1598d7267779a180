//! Lerian's error catalogue: every code this surface answers with, its status, title
//! and message (Lerian's own texts where its documents give them, Latchkey's numbers
//! and texts elsewhere, all in docs/API.md), and the one mapping from native errors.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ErrorCode};

/// Which of Lerian's catalogues an answer draws from: Identity's (`IDE-…`) on
/// `/v1/users/{id}/mfa`, Auth's (`AUT-…`) on `/v1/login/...`. Token errors are Auth's
/// on both, as Lerian's own are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Identity,
    Auth,
}

impl Family {
    /// The family of the route at `path`.
    pub fn of_path(path: &str) -> Self {
        if path == "/v1/login" || path.starts_with("/v1/login/") { Self::Auth } else { Self::Identity }
    }
}

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
    TokenMissing,
    Unauthorized,
    Forbidden,
    InvalidCredentials,
    InvalidGrantType,
    GrantTypeMissingFields,
    UnsupportedGrantType,
    InvalidRefreshToken,
    InvalidMfaToken,
}

/// One code's entry: its status, its number in each family that answers it, its title
/// and message.
pub struct Entry {
    pub status: StatusCode,
    pub identity: Option<&'static str>,
    pub auth: Option<&'static str>,
    pub title: &'static str,
    pub message: &'static str,
}

impl Code {
    pub const ALL: [Code; 35] = [
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
        Self::TokenMissing,
        Self::Unauthorized,
        Self::Forbidden,
        Self::InvalidCredentials,
        Self::InvalidGrantType,
        Self::GrantTypeMissingFields,
        Self::UnsupportedGrantType,
        Self::InvalidRefreshToken,
        Self::InvalidMfaToken,
    ];

    /// The entry. Lerian's own codes (Identity's `IDE-0001`…`IDE-1003`, Auth's
    /// `AUT-0001`, `AUT-0006`, `AUT-0013`, `AUT-0014`, `AUT-1001`, `AUT-1005`) keep its
    /// titles and messages word for word; Latchkey's are numbered where Lerian's
    /// published catalogues have nothing (`IDE-0046`…, `AUT-9xxx`).
    pub fn entry(self) -> Entry {
        use StatusCode as S;
        let both = |status, identity, auth, title, message| Entry {
            status,
            identity: Some(identity),
            auth: Some(auth),
            title,
            message,
        };
        let identity =
            |status, code, title, message| Entry { status, identity: Some(code), auth: None, title, message };
        let auth =
            |status, code, title, message| Entry { status, identity: None, auth: Some(code), title, message };
        match self {
            Self::MissingFields => both(
                S::BAD_REQUEST,
                "IDE-0001",
                "AUT-0001",
                "Missing Fields in Request",
                "Your request is missing one or more required fields.",
            ),
            Self::UnexpectedFields => both(
                S::BAD_REQUEST,
                "IDE-0004",
                "AUT-9004",
                "Unexpected Fields in the Request",
                "The request body contains more fields than expected. Please send only the allowed fields.",
            ),
            Self::InternalError => both(
                S::INTERNAL_SERVER_ERROR,
                "IDE-0006",
                "AUT-9006",
                "Internal Server Error",
                "The server encountered an unexpected error. Please try again later.",
            ),
            Self::BadRequest => both(
                S::BAD_REQUEST,
                "IDE-0007",
                "AUT-9007",
                "Bad Request",
                "The server could not understand the request due to malformed syntax.",
            ),
            Self::MfaAlreadyEnabled => identity(
                S::BAD_REQUEST,
                "IDE-0040",
                "MFA Already Enabled",
                "MFA is already enabled for this user.",
            ),
            Self::MfaSetupNotInitiated => identity(
                S::BAD_REQUEST,
                "IDE-0043",
                "MFA Setup Not Initiated",
                "MFA setup has not been initiated for this user. Please call the setup endpoint first.",
            ),
            Self::MfaInvalidType => both(
                S::BAD_REQUEST,
                "IDE-0044",
                "AUT-9044",
                "MFA Invalid Type",
                "The provided MFA type is invalid. Accepted values are app, email, and sms.",
            ),
            Self::MfaOperationFailed => identity(
                S::INTERNAL_SERVER_ERROR,
                "IDE-0045",
                "MFA Operation Failed",
                "The MFA operation failed due to an unexpected error. Please try again later.",
            ),
            Self::UserNotFound => identity(
                S::NOT_FOUND,
                "IDE-1003",
                "User ID Not Found",
                "The provided user ID does not exist in our records.",
            ),
            Self::InvalidPasscode => both(
                S::BAD_REQUEST,
                "IDE-0046",
                "AUT-9046",
                "Invalid MFA Passcode",
                "The passcode is incorrect, expired or already used.",
            ),
            Self::InvalidRecoveryCode => both(
                S::BAD_REQUEST,
                "IDE-0047",
                "AUT-9047",
                "Invalid Recovery Code",
                "The recovery code is incorrect or already used.",
            ),
            Self::PasscodeNotVerified => identity(
                S::BAD_REQUEST,
                "IDE-0048",
                "MFA Passcode Not Verified",
                "Verify a passcode with the verify endpoint before enabling MFA.",
            ),
            Self::SecretMismatch => identity(
                S::BAD_REQUEST,
                "IDE-0049",
                "MFA Secret Mismatch",
                "The secret does not match the pending MFA setup. Use the secret from the latest setup.",
            ),
            Self::TooManyAttempts => both(
                S::TOO_MANY_REQUESTS,
                "IDE-0050",
                "AUT-9050",
                "Too Many MFA Attempts",
                "Too many failed attempts. Wait for the time in the Retry-After header.",
            ),
            Self::MfaLocked => both(
                S::FORBIDDEN,
                "IDE-0051",
                "AUT-9051",
                "MFA Locked",
                "Too many failed attempts: MFA is locked until an administrator resets it.",
            ),
            Self::MfaNotEnabled => both(
                S::BAD_REQUEST,
                "IDE-0052",
                "AUT-9052",
                "MFA Not Enabled",
                "MFA of this type is not enabled for this user.",
            ),
            Self::PhoneNumberRequired => identity(
                S::BAD_REQUEST,
                "IDE-0053",
                "Phone Number Required",
                "The user has no phone number to send SMS passcodes to.",
            ),
            Self::TooManyCodesSent => both(
                S::TOO_MANY_REQUESTS,
                "IDE-0054",
                "AUT-9054",
                "Too Many Passcodes Sent",
                "Too many passcodes were sent to this destination. Wait for the time in the Retry-After header.",
            ),
            Self::RecentLoginRequired => identity(
                S::FORBIDDEN,
                "IDE-0055",
                "Recent Login Required",
                "This change needs a recent login, with the second factor when MFA is enabled.",
            ),
            Self::ChallengeNotApplicable => both(
                S::BAD_REQUEST,
                "IDE-0056",
                "AUT-9056",
                "MFA Challenge Not Applicable",
                "Authenticator apps need no challenge: send the passcode the app shows.",
            ),
            Self::PhoneNumberNotAllowed => identity(
                S::BAD_REQUEST,
                "IDE-0057",
                "Phone Number Not Allowed",
                "Phone numbers in this country cannot receive MFA passcodes on this server.",
            ),
            Self::CountryCodeMismatch => identity(
                S::BAD_REQUEST,
                "IDE-0058",
                "Country Code Mismatch",
                "The country code does not match the phone number the passcode was sent to.",
            ),
            Self::RequestTooLarge => both(
                S::PAYLOAD_TOO_LARGE,
                "IDE-0059",
                "AUT-9059",
                "Request Too Large",
                "The request body is larger than 64 KiB.",
            ),
            Self::MethodNotAllowed => both(
                S::METHOD_NOT_ALLOWED,
                "IDE-0060",
                "AUT-9060",
                "Method Not Allowed",
                "This endpoint does not accept this HTTP method.",
            ),
            Self::ServiceUnavailable => both(
                S::SERVICE_UNAVAILABLE,
                "IDE-0061",
                "AUT-9061",
                "Service Unavailable",
                "The service cannot reach its database. Retry after the time in the Retry-After header.",
            ),
            Self::Overloaded => both(
                S::SERVICE_UNAVAILABLE,
                "IDE-0062",
                "AUT-9062",
                "Service Overloaded",
                "The service is handling as many requests as it may. Retry after the time in the Retry-After header.",
            ),
            Self::TokenMissing => both(
                S::UNAUTHORIZED,
                "AUT-0006",
                "AUT-0006",
                "Token Missing",
                "A token is required: send Authorization: Bearer with an access token, or an API key.",
            ),
            Self::Unauthorized => both(
                S::UNAUTHORIZED,
                "AUT-9101",
                "AUT-9101",
                "Invalid Access Token",
                "The access token or API key is invalid, expired or revoked.",
            ),
            Self::Forbidden => both(
                S::FORBIDDEN,
                "AUT-9102",
                "AUT-9102",
                "Forbidden",
                "You may only manage your own MFA, unless you use an API key with the required scope.",
            ),
            Self::InvalidCredentials => auth(
                S::UNAUTHORIZED,
                "AUT-9103",
                "Invalid Credentials",
                "The username or password is incorrect.",
            ),
            Self::InvalidGrantType => auth(
                S::BAD_REQUEST,
                "AUT-0013",
                "Invalid Grant Type",
                "grantType is missing or is not a string.",
            ),
            Self::GrantTypeMissingFields => auth(
                S::BAD_REQUEST,
                "AUT-0014",
                "Grant Type Missing Fields",
                "The grant type needs fields the request lacks: username and password, refreshToken, or clientId and clientSecret.",
            ),
            Self::UnsupportedGrantType => auth(
                S::BAD_REQUEST,
                "AUT-1001",
                "Unsupported Grant Type",
                "The grant type is not supported. Use password, refresh_token or client_credentials.",
            ),
            Self::InvalidRefreshToken => auth(
                S::UNAUTHORIZED,
                "AUT-1005",
                "Invalid Refresh Token",
                "The refresh token is invalid, expired or already used. Log in again.",
            ),
            Self::InvalidMfaToken => auth(
                S::UNAUTHORIZED,
                "AUT-9105",
                "Invalid MFA Token",
                "The mfaToken is invalid, expired or already used. Log in again.",
            ),
        }
    }

    /// Status, code, title and message as `family` answers it. A code only the other
    /// family has (no route should reach one) answers as a bad request of this family.
    pub fn parts(self, family: Family) -> (StatusCode, &'static str, &'static str, &'static str) {
        let entry = self.entry();
        let number = match family {
            Family::Identity => entry.identity,
            Family::Auth => entry.auth,
        };
        match number {
            Some(number) => (entry.status, number, entry.title, entry.message),
            None => Self::BadRequest.parts(family),
        }
    }
}

/// Every code of both catalogues with its status, for the OpenAPI document.
pub fn catalogue() -> Vec<(u16, &'static str)> {
    let mut codes: Vec<(u16, &'static str)> = Vec::new();
    for entry in Code::ALL.iter().map(|code| code.entry()) {
        for number in [entry.identity, entry.auth].into_iter().flatten() {
            if !codes.iter().any(|(_, known)| *known == number) {
                codes.push((entry.status.as_u16(), number));
            }
        }
    }
    codes
}

/// An error in Lerian's format, answered from the Identity catalogue unless
/// [`LerianError::in_family`] says otherwise.
#[derive(Debug)]
pub struct LerianError {
    code: Code,
    retry_after: Option<i64>,
    family: Family,
}

impl LerianError {
    /// The same error, answered from `family`'s catalogue.
    pub fn in_family(self, family: Family) -> Self {
        Self { family, ..self }
    }
}

impl From<Code> for LerianError {
    fn from(code: Code) -> Self {
        Self { code, retry_after: None, family: Family::Identity }
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
            C::Unauthenticated => Code::TokenMissing,
            C::InvalidToken | C::InvalidApiKey | C::SecondFactorRequired => Code::Unauthorized,
            C::InvalidRefreshToken => Code::InvalidRefreshToken,
            C::InvalidMfaToken | C::InvalidExchangeCode => Code::InvalidMfaToken,
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
        Self { code, retry_after: error.retry_after, family: Family::Identity }
    }
}

/// The error body Lerian clients read.
#[derive(Serialize, ToSchema)]
#[schema(as = LerianError)]
pub struct LerianErrorBody {
    /// `IDE-…` (the MFA routes) or `AUT-…` (the login routes, and token errors
    /// everywhere); docs/API.md lists them all.
    #[schema(example = "IDE-0046")]
    code: &'static str,
    title: &'static str,
    message: &'static str,
}

impl IntoResponse for LerianError {
    fn into_response(self) -> Response {
        let (status, code, title, message) = self.code.parts(self.family);
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
    fn codes_are_unique_in_each_family_and_documented() {
        let doc = include_str!("../../../../docs/API.md");
        for family in [Family::Identity, Family::Auth] {
            let numbers: Vec<&str> = Code::ALL
                .iter()
                .filter_map(|c| match family {
                    Family::Identity => c.entry().identity,
                    Family::Auth => c.entry().auth,
                })
                .collect();
            let distinct: HashSet<&str> = numbers.iter().copied().collect();
            assert_eq!(distinct.len(), numbers.len(), "{family:?}");
        }
        for code in Code::ALL {
            let entry = code.entry();
            let mut numbers: Vec<String> = Vec::new();
            for number in [entry.identity, entry.auth].into_iter().flatten() {
                let shown = format!("`{number}`");
                if !numbers.contains(&shown) {
                    numbers.push(shown);
                }
            }
            let row = format!("| {} | {} | {} |", numbers.join(", "), entry.status.as_u16(), entry.title);
            assert!(doc.contains(&row), "docs/API.md lacks the row {row}");
        }
    }

    #[test]
    fn the_login_routes_answer_from_the_auth_catalogue() {
        assert_eq!(Family::of_path("/v1/login/mfa/verify"), Family::Auth);
        assert_eq!(Family::of_path("/v1/users/u1/mfa"), Family::Identity);
        assert_eq!(Code::MissingFields.parts(Family::Auth).1, "AUT-0001");
        assert_eq!(Code::InvalidPasscode.parts(Family::Auth).1, "AUT-9046");
        assert_eq!(Code::InvalidPasscode.parts(Family::Identity).1, "IDE-0046");
        // A code only Identity has answers as Auth's bad request on a login route.
        assert_eq!(Code::SecretMismatch.parts(Family::Auth).1, "AUT-9007");
    }
}
