//! Lerian-compatible API: Lerian Identity's MFA endpoints under `/v1/users/{id}/mfa`
//! (setup, verify, enable, status, disable) and its login under `/v1/login` (OAuth-style
//! access token, MFA challenge and verify, remembered devices). Bodies are strict and
//! errors are `{code, title, message}` with Lerian's codes and texts where its
//! documents list them and Latchkey's own (`docs/API.md`) elsewhere.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::challenge;
use latchkey_core::factor::FactorType;
use latchkey_store::{Factor, Session, User};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi as oas;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{
    AdminKey, AuthUser, ClientMeta, JsonBody, bearer_token, cookie, secure_cookie_attribute,
};
use crate::http::openapi;
use crate::service::login::{self, FactorChoice, LoginProof, LoginStep};
use crate::service::sessions::{self, IssuedTokens};
use crate::service::{accounts, api_keys, challenges, devices, enrolment, factors, reauth, recovery_codes};
use crate::state::AppState;

mod auth;
mod codes;

use codes::{Code, LerianErrorBody, Result, mfa_operation};
pub use codes::{Family, LerianError, catalogue};

/// Whether `path` is one of this surface's: its MFA under `/v1/users/{id}/mfa` or its
/// login under `/v1/login`.
pub fn owns(path: &str) -> bool {
    if path == "/v1/login" || path.starts_with("/v1/login/") {
        return true;
    }
    let mut parts = path.trim_start_matches('/').split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("v1"), Some("users"), Some(_), Some("mfa"))
    )
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(own_405(routes!(status, disable)))
        .routes(own_405(routes!(setup)))
        .routes(own_405(routes!(verify)))
        .routes(own_405(routes!(enable)))
        .routes(own_405_in(routes!(auth::access_token), Family::Auth))
        .routes(own_405_in(routes!(auth::challenge), Family::Auth))
        .routes(own_405_in(routes!(auth::mfa_verify), Family::Auth))
}

/// Lerian's paths sit beside the native ones, under no prefix of their own, so each
/// route answers a method it does not serve itself, in Lerian's format (IDE-0060).
fn own_405(route: UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    own_405_in(route, Family::Identity)
}

/// [`own_405`] for a route of `family` (AUT-9060 on the login routes).
fn own_405_in(route: UtoipaMethodRouter<AppState>, family: Family) -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, methods) = route;
    (
        schemas,
        paths,
        methods.fallback(move || async move { LerianError::from(Code::MethodNotAllowed).in_family(family) }),
    )
}

/// Lerian's `mfaType` as a factor type.
fn factor_type(mfa_type: &str) -> Result<FactorType> {
    match mfa_type {
        "app" => Ok(FactorType::Totp),
        "email" => Ok(FactorType::Email),
        "sms" => Ok(FactorType::Sms),
        _ => Err(Code::MfaInvalidType.into()),
    }
}

/// `mfaType` in the documents: Lerian's three names.
fn mfa_type_schema() -> utoipa::openapi::schema::Object {
    openapi::one_of(&["app", "email", "sms"])
}

/// `grantType` in the documents: the grants served.
fn grant_type_schema() -> utoipa::openapi::schema::Object {
    openapi::one_of(&["password", "refresh_token", "client_credentials"])
}

/// A factor type as Lerian's `mfaType`; types Lerian has no name for are left out.
fn mfa_type(factor_type: FactorType) -> Option<&'static str> {
    match factor_type {
        FactorType::Totp => Some("app"),
        FactorType::Email => Some("email"),
        FactorType::Sms => Some("sms"),
        FactorType::Webauthn | FactorType::MagicLink => None,
    }
}

/// Lerian's names for the types of `factors`, each once, in order.
fn mfa_types(factors: &[Factor]) -> Vec<&'static str> {
    let mut types = Vec::new();
    for name in factors.iter().filter_map(|f| mfa_type(f.factor_type)) {
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
/// token may only name its own user; an API key (in `X-API-Key`, or as the Bearer
/// client token of the `client_credentials` grant) needs `users:write` (`users:read`
/// for `GET`) and may name anyone.
struct Target {
    caller: Caller,
    user: User,
}

impl FromRequestParts<AppState> for Target {
    type Rejection = LerianError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let Path(id) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| Code::BadRequest)?;
        let scope = if parts.method == Method::GET { "users:read" } else { "users:write" };
        let client = bearer_token(&parts.headers)
            .filter(|token| state.tokens.verify_client(token, state.now()).is_ok());
        let caller = if parts.headers.contains_key("x-api-key") {
            let admin = AdminKey::from_request_parts(parts, state).await?;
            admin.require(scope)?;
            Caller::Admin(admin)
        } else if let Some(token) = client {
            let admin = AdminKey(api_keys::by_client_token(state, token).await?);
            admin.require(scope)?;
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

    fn session(&self) -> Option<&Session> {
        match self {
            Self::User(user) => Some(&user.session),
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
    factor_type: FactorType,
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
                error("Another user's token (AUT-9102), a key without the scope, a locked factor or a login too old."),
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
    let (secret, url) = if factor_type == FactorType::Totp {
        let enrollment =
            enrolment::enroll_totp(&state, &by, &account, None, &meta).await.map_err(mfa_operation)?;
        (enrollment.secret.to_string(), enrollment.otpauth_uri.to_string())
    } else {
        let phone = match factor_type {
            FactorType::Sms => Some(account.phone.as_deref().ok_or(Code::PhoneNumberRequired)?),
            _ => None,
        };
        let destination = challenges::contact_destination(&state, &account, factor_type, None, phone)?;
        enrolment::enroll_contact(&state, &by, &account, factor_type, destination, None, &meta)
            .await
            .map_err(mfa_operation)?;
        (String::new(), String::new())
    };
    let recovery_codes = recovery_codes::issue_at_setup(&state, &by, &meta).await.map_err(mfa_operation)?;
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
        if factor_type == FactorType::Sms && !challenge::in_country(number, code) {
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
/// the active ones, oldest first, and `preferredType` is the first of them (absent when
/// there is none: `""` is not one of Lerian's types).
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
        preferred_type: methods.first().copied(),
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
    /// `app`, `email` or `sms`; absent when the user has none of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = mfa_type_schema)]
    preferred_type: Option<&'static str>,
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
        (status = 403, description = "Another user's token (AUT-9102), a key without the scope, a locked factor or a login too old.",
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
