//! Lerian-compatible API: Lerian Identity's MFA endpoints under `/v1/users/{id}/mfa`
//! (setup, verify, enable, status, disable) and its login under `/v1/login` (OAuth-style
//! access token, MFA challenge and verify, remembered devices). Bodies are strict and
//! errors are `{code, title, message}` with Lerian's codes and texts where its
//! documents list them and Latchkey's own (`docs/API.md`) elsewhere.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::challenge;
use latchkey_core::session::Amr;
use latchkey_store::{Factor, User};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi as oas;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorCode};
use crate::extract::{AdminKey, AuthUser, ClientMeta, JsonBody, cookie, secure_cookie_attribute};
use crate::openapi;
use crate::service::login::{self, FactorChoice, LoginProof, LoginStep};
use crate::service::sessions::{self, IssuedTokens};
use crate::service::{accounts, devices, factors, reauth};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(own_405(routes!(status, disable)))
        .routes(own_405(routes!(setup)))
        .routes(own_405(routes!(verify)))
        .routes(own_405(routes!(enable)))
        .routes(own_405(routes!(access_token)))
        .routes(own_405(routes!(challenge)))
        .routes(own_405(routes!(mfa_verify)))
}

/// Lerian's paths sit beside the native ones, under no prefix of their own, so each
/// route answers a method it does not serve itself, in Lerian's format (IDE-0060).
fn own_405(route: UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, methods) = route;
    (schemas, paths, methods.fallback(|| async { LerianError::from(Code::MethodNotAllowed) }))
}

/// Every error this surface answers with.
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
    Unauthorized,
    Forbidden,
    InvalidCredentials,
    UnsupportedGrantType,
    InvalidToken,
}

impl Code {
    pub const ALL: [Code; 30] = [
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
            C::InvalidRefreshToken | C::InvalidMfaToken => Code::InvalidToken,
            C::InsufficientScope => Code::Forbidden,
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
            _ => Code::BadRequest,
        };
        Self { code, retry_after: error.retry_after }
    }
}

/// The error body Lerian clients read.
#[derive(Serialize, ToSchema)]
#[schema(as = LerianError)]
struct LerianErrorBody {
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

type Result<T> = std::result::Result<T, LerianError>;

/// A failure inside an MFA operation: internal causes become IDE-0045, a factor that
/// lapsed or vanished meanwhile means setup must start again (IDE-0043).
fn mfa_operation(error: ApiError) -> LerianError {
    match error.code {
        ErrorCode::InternalError => {
            error.log_cause();
            Code::MfaOperationFailed.into()
        }
        ErrorCode::FactorNotFound => Code::MfaSetupNotInitiated.into(),
        _ => error.into(),
    }
}

/// Lerian's `mfaType` as a factor type.
fn factor_type(mfa_type: &str) -> Result<&'static str> {
    match mfa_type {
        "app" => Ok("totp"),
        "email" => Ok("email"),
        "sms" => Ok("sms"),
        _ => Err(Code::MfaInvalidType.into()),
    }
}

/// `mfaType` in the documents: Lerian's three names.
fn mfa_type_schema() -> utoipa::openapi::schema::Object {
    openapi::one_of(&["app", "email", "sms"])
}

/// `grantType` in the documents: the grants served.
fn grant_type_schema() -> utoipa::openapi::schema::Object {
    openapi::one_of(&["password", "refresh_token"])
}

/// A factor type as Lerian's `mfaType`; types Lerian has no name for are left out.
fn mfa_type(factor_type: &str) -> Option<&'static str> {
    match factor_type {
        "totp" => Some("app"),
        "email" => Some("email"),
        "sms" => Some("sms"),
        _ => None,
    }
}

/// Lerian's names for the types of `factors`, each once, in order.
fn mfa_types(factors: &[Factor]) -> Vec<&'static str> {
    let mut types = Vec::new();
    for name in factors.iter().filter_map(|f| mfa_type(&f.factor_type)) {
        if !types.contains(&name) {
            types.push(name);
        }
    }
    types
}

/// A required string that was sent empty counts as missing.
fn present(value: &str) -> Result<&str> {
    if value.trim().is_empty() { Err(Code::MissingFields.into()) } else { Ok(value) }
}

/// Who acts on `/v1/users/{id}/…`: that user in their own session, or an API key.
enum Caller {
    User(Box<AuthUser>),
    Admin(AdminKey),
}

/// The caller of `/v1/users/{id}/…` and the user `id` names, authorised: a user's
/// token may only name its own user; an API key needs `users:write` (`users:read` for
/// `GET`) and may name anyone.
struct Target {
    caller: Caller,
    user: User,
}

impl FromRequestParts<AppState> for Target {
    type Rejection = LerianError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let Path(id) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| Code::BadRequest)?;
        let caller = if parts.headers.contains_key("x-api-key") {
            let admin = AdminKey::from_request_parts(parts, state).await?;
            admin.require(if parts.method == Method::GET { "users:read" } else { "users:write" })?;
            Caller::Admin(admin)
        } else {
            let user = AuthUser::from_request_parts(parts, state).await?;
            if user.session.user_id != id {
                return Err(Code::Forbidden.into());
            }
            Caller::User(Box::new(user))
        };
        let user = accounts::by_id(state, &id).await?;
        Ok(Self { caller, user })
    }
}

impl Caller {
    /// Leave to change `user_id`'s MFA: a user changing their own needs a recent
    /// login (the shared rule); an API key is an administrator's authority.
    async fn authorize(&self, state: &AppState, user_id: &str) -> Result<reauth::Authorized> {
        Ok(match self {
            Self::User(user) => reauth::require_recent_authentication(state, &user.session, None).await?,
            Self::Admin(key) => reauth::operator(user_id, key.actor()),
        })
    }

    fn session(&self) -> Option<&AuthUser> {
        match self {
            Self::User(user) => Some(user.as_ref()),
            Self::Admin(_) => None,
        }
    }
}

/// The pending factor of `factor_type` after checks common to verify and enable: MFA
/// of that type is not enabled yet, setup was called, and `secret` (when sent) is the
/// pending one's.
async fn pending_factor(
    state: &AppState,
    user_id: &str,
    factor_type: &str,
    secret: Option<&SecretString>,
) -> Result<Factor> {
    let pending = factors::pending_setup(state, user_id, factor_type).await.map_err(mfa_operation)?;
    if let Some(secret) = secret
        && !factors::pending_secret_matches(state, &pending, secret.expose_secret()).map_err(mfa_operation)?
    {
        return Err(Code::SecretMismatch.into());
    }
    Ok(pending)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SetupRequest {
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SetupAnswer {
    /// The TOTP secret (base32) for `app`; empty for `email` and `sms`.
    secret: String,
    /// The `otpauth://` URL for `app`; empty otherwise.
    url: String,
    recovery_codes: Vec<String>,
    mfa_type: String,
    enabled: bool,
}

/// What each step of `/v1/users/{id}/mfa/{setup,verify,enable}` may answer besides
/// its success.
struct StepErrors;

impl utoipa::IntoResponses for StepErrors {
    fn responses() -> std::collections::BTreeMap<String, oas::RefOr<oas::Response>> {
        let error = |description: &str| {
            oas::ResponseBuilder::new().description(description).content(
                "application/json",
                oas::ContentBuilder::new().schema(Some(oas::Ref::from_schema_name("LerianError"))).build(),
            )
        };
        oas::ResponsesBuilder::new()
            .response("400", error("A bad body or a failed check."))
            .response(
                "403",
                error("Another user's token (AUT-0002), a key without the scope, a locked factor or a login too old."),
            )
            .response("404", error("No user has this id (IDE-1003)."))
            .response("429", error("Too many attempts or codes sent."))
            .build()
            .into()
    }
}

/// `POST /v1/users/{id}/mfa/setup`: a pending factor and the recovery codes. `app`
/// returns the TOTP secret and its `otpauth://` URL; `email` and `sms` send a passcode
/// to the user's address or phone number (secret and url are empty).
#[utoipa::path(post, path = "/v1/users/{id}/mfa/setup", tag = "lerian",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = SetupRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A pending factor.", body = SetupAnswer),
        StepErrors,
    ))]
async fn setup(
    State(state): State<AppState>,
    meta: ClientMeta,
    Target { caller, user: account }: Target,
    body: std::result::Result<JsonBody<SetupRequest>, ApiError>,
) -> Result<Json<SetupAnswer>> {
    let JsonBody(body) = body?;
    let factor_type = factor_type(&body.mfa_type)?;
    factors::ensure_not_enabled(&state, &account.id, Some(factor_type)).await?;
    let by = caller.authorize(&state, &account.id).await?;
    let (secret, url) = if factor_type == "totp" {
        let enrollment =
            factors::enroll_totp(&state, &by, &account, None, &meta).await.map_err(mfa_operation)?;
        (enrollment.secret.to_string(), enrollment.otpauth_uri.to_string())
    } else {
        let phone = match factor_type {
            "sms" => Some(account.phone.as_deref().ok_or(Code::PhoneNumberRequired)?),
            _ => None,
        };
        let destination = factors::contact_destination(&state, &account, factor_type, None, phone)?;
        factors::enroll_contact(&state, &by, &account, factor_type, destination, None, &meta)
            .await
            .map_err(mfa_operation)?;
        (String::new(), String::new())
    };
    let recovery_codes =
        factors::issue_recovery_codes_at_setup(&state, &by, &meta).await.map_err(mfa_operation)?;
    Ok(Json(SetupAnswer { secret, url, recovery_codes, mfa_type: body.mfa_type, enabled: false }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VerifyRequest {
    #[schema(value_type = String)]
    passcode: SecretString,
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: String,
    #[schema(value_type = Option<String>)]
    secret: Option<SecretString>,
    country_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Verified {
    verified: bool,
}

#[derive(Serialize, ToSchema)]
struct Enabled {
    enabled: bool,
}

/// `POST /v1/users/{id}/mfa/verify`: checks a passcode from the pending factor. For
/// `sms`, a `countryCode` must be the calling code the factor's number starts with.
#[utoipa::path(post, path = "/v1/users/{id}/mfa/verify", tag = "lerian",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = VerifyRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The passcode is right.", body = Verified),
        StepErrors,
    ))]
async fn verify(
    State(state): State<AppState>,
    meta: ClientMeta,
    Target { user: account, .. }: Target,
    body: std::result::Result<JsonBody<VerifyRequest>, ApiError>,
) -> Result<Json<Verified>> {
    let JsonBody(body) = body?;
    let factor_type = factor_type(&body.mfa_type)?;
    let passcode = present(body.passcode.expose_secret())?;
    let pending = pending_factor(&state, &account.id, factor_type, body.secret.as_ref()).await?;
    if let Some(country_code) = &body.country_code {
        let code = challenge::parse_calling_code(country_code).ok_or(Code::BadRequest)?;
        let number = pending.destination.as_deref().unwrap_or_default();
        if factor_type == "sms" && !challenge::in_country(number, code) {
            return Err(Code::CountryCodeMismatch.into());
        }
    }
    factors::verify_pending(&state, &account.id, &pending.id, passcode, &meta)
        .await
        .map_err(mfa_operation)?;
    Ok(Json(Verified { verified: true }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnableRequest {
    #[schema(value_type = String)]
    recovery_code: SecretString,
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: String,
    #[schema(value_type = Option<String>)]
    secret: Option<SecretString>,
}

/// `POST /v1/users/{id}/mfa/enable`: activates the verified factor with one of the
/// recovery codes from setup, which is spent.
#[utoipa::path(post, path = "/v1/users/{id}/mfa/enable", tag = "lerian",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = EnableRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "MFA is on.", body = Enabled),
        StepErrors,
    ))]
async fn enable(
    State(state): State<AppState>,
    meta: ClientMeta,
    Target { caller, user: account }: Target,
    body: std::result::Result<JsonBody<EnableRequest>, ApiError>,
) -> Result<Json<Enabled>> {
    let JsonBody(body) = body?;
    let factor_type = factor_type(&body.mfa_type)?;
    let recovery_code = present(body.recovery_code.expose_secret())?;
    let pending = pending_factor(&state, &account.id, factor_type, body.secret.as_ref()).await?;
    factors::enable_verified(&state, &account.id, &pending.id, recovery_code, caller.session(), &meta)
        .await
        .map_err(|error| match error.code {
            ErrorCode::InvalidCode => Code::InvalidRecoveryCode.into(),
            _ => mfa_operation(error),
        })?;
    Ok(Json(Enabled { enabled: true }))
}

/// `GET /v1/users/{id}/mfa`: which methods are enabled. `enabled` is true when the user
/// has any active factor (login then needs one); `methods` lists Lerian's names for
/// the active ones, oldest first, and `preferredType` is the first of them (`""` when
/// there is none).
#[utoipa::path(get, path = "/v1/users/{id}/mfa", tag = "lerian",
    params(("id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The user's MFA status.", body = MfaStatus),
        (status = 400, description = "A bad request.", body = LerianErrorBody),
        (status = 403, description = "Another user's token, or a key without `users:read`.", body = LerianErrorBody),
        (status = 404, description = "No user has this id (IDE-1003).", body = LerianErrorBody),
    ))]
async fn status(
    State(state): State<AppState>,
    Target { user: account, .. }: Target,
) -> Result<Json<MfaStatus>> {
    let active = factors::active_factors(&state, &account.id).await?;
    let methods = mfa_types(&active);
    Ok(Json(MfaStatus {
        enabled: !active.is_empty(),
        preferred_type: methods.first().copied().unwrap_or_default(),
        totp_enabled: methods.contains(&"app"),
        email_enabled: methods.contains(&"email"),
        sms_enabled: methods.contains(&"sms"),
        methods,
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MfaStatus {
    enabled: bool,
    /// `app`, `email`, `sms`, or `""`.
    preferred_type: &'static str,
    totp_enabled: bool,
    email_enabled: bool,
    sms_enabled: bool,
    methods: Vec<&'static str>,
}

/// `DELETE /v1/users/{id}/mfa` (a Latchkey extension): removes every factor and
/// recovery code.
#[utoipa::path(delete, path = "/v1/users/{id}/mfa", tag = "lerian",
    params(("id" = String, Path, description = "The user's id.")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "MFA is off.", body = Enabled),
        (status = 400, description = "A bad body or a failed check.", body = LerianErrorBody),
        (status = 403, description = "Another user's token (AUT-0002), a key without the scope, a locked factor or a login too old.",
            body = LerianErrorBody),
        (status = 404, description = "No user has this id (IDE-1003).", body = LerianErrorBody),
    ))]
async fn disable(
    State(state): State<AppState>,
    meta: ClientMeta,
    Target { caller, user: account }: Target,
) -> Result<Json<Enabled>> {
    if !factors::has_active(&state, &account.id, None).await? {
        return Err(Code::MfaNotEnabled.into());
    }
    let by = caller.authorize(&state, &account.id).await?;
    factors::reset_all(&state, &by, &meta).await.map_err(mfa_operation)?;
    Ok(Json(Enabled { enabled: false }))
}

/// Tokens, with `deviceToken` after a verify that asked to remember the device.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    access_token: String,
    /// `Bearer`.
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
    /// A Latchkey extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    device_token: Option<String>,
}

impl From<IssuedTokens> for TokenAnswer {
    fn from(tokens: IssuedTokens) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token,
            device_token: None,
        }
    }
}

/// A password grant for a user with MFA: finish at `/v1/login/mfa/verify`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MfaRequired {
    mfa_token: String,
    /// `app`, `email`, `sms`.
    mfa_types: Vec<&'static str>,
    expires_in: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum AccessTokenAnswer {
    Tokens(TokenAnswer),
    MfaRequired(MfaRequired),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AccessTokenRequest {
    #[schema(schema_with = grant_type_schema)]
    grant_type: String,
    username: Option<String>,
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    refresh_token: Option<SecretString>,
    /// A Latchkey extension: the remembered-device token, for clients that cannot
    /// keep the cookie.
    #[schema(value_type = Option<String>)]
    device_token: Option<SecretString>,
}

/// `POST /v1/login/oauth/access_token`: the `password` grant (tokens, or for a user
/// with MFA `{mfaToken, mfaTypes, expiresIn}`) and the `refresh_token` grant.
#[utoipa::path(post, path = "/v1/login/oauth/access_token", tag = "lerian",
    request_body = AccessTokenRequest,
    responses(
        (status = 200, description = "Tokens, or what the second factor needs.", body = AccessTokenAnswer),
        (status = 400, description = "A bad body, unsupported grant (AUT-0004) or wrong code.", body = LerianErrorBody),
        (status = 401, description = "Wrong credentials (AUT-0003) or an invalid token (AUT-0005).", body = LerianErrorBody),
        (status = 403, description = "The second factor is locked (IDE-0051).", body = LerianErrorBody),
        (status = 429, description = "Too many attempts or codes sent.", body = LerianErrorBody),
    ))]
async fn access_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<AccessTokenRequest>, ApiError>,
) -> Result<Json<AccessTokenAnswer>> {
    let JsonBody(body) = body?;
    match body.grant_type.as_str() {
        "password" => {
            let username = present(body.username.as_deref().unwrap_or_default())?;
            let password = body.password.ok_or(Code::MissingFields)?;
            let user = accounts::authenticate_password(&state, username, password).await?;
            let device = body
                .device_token
                .as_ref()
                .map(|token| token.expose_secret())
                .or_else(|| cookie(&headers, devices::COOKIE));
            match login::after_first(&state, &user.id, &[Amr::Pwd], device, &meta).await? {
                LoginStep::Session(tokens) => Ok(Json(AccessTokenAnswer::Tokens(tokens.into()))),
                LoginStep::MfaRequired(challenge) => Ok(Json(AccessTokenAnswer::MfaRequired(MfaRequired {
                    mfa_types: mfa_types(&challenge.factors),
                    mfa_token: challenge.mfa_token,
                    expires_in: challenge.expires_in,
                }))),
            }
        }
        "refresh_token" => {
            let token = body.refresh_token.ok_or(Code::MissingFields)?;
            let tokens = sessions::refresh(&state, present(token.expose_secret())?).await?;
            Ok(Json(AccessTokenAnswer::Tokens(tokens.into())))
        }
        _ => Err(Code::UnsupportedGrantType.into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChallengeRequest {
    #[schema(value_type = String)]
    mfa_token: SecretString,
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: String,
}

#[derive(Serialize, ToSchema)]
struct Initiated {
    message: &'static str,
}

/// `POST /v1/login/mfa/challenge`: sends the login's email or SMS passcode.
#[utoipa::path(post, path = "/v1/login/mfa/challenge", tag = "lerian",
    request_body = ChallengeRequest,
    responses(
        (status = 200, description = "The passcode is on its way.", body = Initiated),
        (status = 400, description = "A bad body, unsupported grant (AUT-0004) or wrong code.", body = LerianErrorBody),
        (status = 401, description = "Wrong credentials (AUT-0003) or an invalid token (AUT-0005).", body = LerianErrorBody),
        (status = 403, description = "The second factor is locked (IDE-0051).", body = LerianErrorBody),
        (status = 429, description = "Too many attempts or codes sent.", body = LerianErrorBody),
    ))]
async fn challenge(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<ChallengeRequest>, ApiError>,
) -> Result<Json<Initiated>> {
    let JsonBody(body) = body?;
    let factor_type = factor_type(&body.mfa_type)?;
    if factor_type == "totp" {
        return Err(Code::ChallengeNotApplicable.into());
    }
    login::challenge(&state, body.mfa_token.expose_secret(), FactorChoice::Type(factor_type), &meta).await?;
    Ok(Json(Initiated { message: "MFA challenge initiated" }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MfaVerifyRequest {
    #[schema(value_type = String)]
    mfa_token: SecretString,
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: String,
    #[schema(value_type = Option<String>)]
    passcode: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    recovery_code: Option<SecretString>,
    remember_device: Option<bool>,
}

/// `POST /v1/login/mfa/verify`: finishes the login with a passcode or a recovery code
/// (exactly one). With `rememberDevice`, the answer also carries a device token (and
/// sets it as an HttpOnly cookie) that skips the second factor on this device.
#[utoipa::path(post, path = "/v1/login/mfa/verify", tag = "lerian",
    request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Tokens; with `rememberDevice`, also `deviceToken` and its cookie.",
            body = TokenAnswer,
            headers(("Set-Cookie" = String, description = "`latchkey_device`, with `rememberDevice` only."))),
        (status = 400, description = "A bad body, unsupported grant (AUT-0004) or wrong code.", body = LerianErrorBody),
        (status = 401, description = "Wrong credentials (AUT-0003) or an invalid token (AUT-0005).", body = LerianErrorBody),
        (status = 403, description = "The second factor is locked (IDE-0051).", body = LerianErrorBody),
        (status = 429, description = "Too many attempts or codes sent.", body = LerianErrorBody),
    ))]
async fn mfa_verify(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<MfaVerifyRequest>, ApiError>,
) -> Result<Response> {
    let JsonBody(body) = body?;
    let factor_type = factor_type(&body.mfa_type)?;
    let proof = match (&body.passcode, &body.recovery_code) {
        (Some(passcode), None) => LoginProof::Code {
            factor: FactorChoice::Type(factor_type),
            code: present(passcode.expose_secret())?,
        },
        (None, Some(code)) => LoginProof::RecoveryCode(present(code.expose_secret())?),
        (None, None) => return Err(Code::MissingFields.into()),
        (Some(_), Some(_)) => return Err(Code::UnexpectedFields.into()),
    };
    let recovery = matches!(proof, LoginProof::RecoveryCode(_));
    let tokens =
        login::complete(&state, body.mfa_token.expose_secret(), proof, &meta).await.map_err(|error| {
            match error.code {
                ErrorCode::InvalidCode if recovery => Code::InvalidRecoveryCode.into(),
                _ => LerianError::from(error),
            }
        })?;
    let user_id = tokens.user_id.clone();
    let mut answer = TokenAnswer::from(tokens);
    if body.remember_device != Some(true) {
        return Ok(Json(answer).into_response());
    }
    let remembered = devices::remember(&state, &user_id, &meta).await?;
    answer.device_token = Some(remembered.token.to_string());
    let secure = secure_cookie_attribute(&state.config.public_url);
    let cookie = format!(
        "{}={}; Path=/v1/login; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        devices::COOKIE,
        remembered.token,
        remembered.max_age_secs
    );
    let mut response = Json(answer).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
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
