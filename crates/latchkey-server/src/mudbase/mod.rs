//! Mudbase-compatible API under `/api`: login (with `totpToken` for users with 2FA),
//! refresh, `/api/users/2fa/{setup,verify,disable}` for JWT users only, and the
//! password routes (`password.rs`). Errors are
//! `{error, code, details, timestamp, path, requestId}`; the `envelope` middleware adds
//! the request's path and id to every error a handler returns.

use axum::Json;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{AuthUser, ClientMeta, JsonBody, OptionalJsonBody, SessionAuth};
use crate::service::factors::{self, Enrolment, RecoveryCodes};
use crate::service::login_throttle::Client;
use crate::service::second_factor::Proof;
use crate::service::sessions::{self, IssuedTokens, Lifetime};
use crate::service::{accounts, enrolment, login, reauth, recovery_codes, second_factor};
use crate::state::AppState;
use latchkey_core::factor::FactorType;

mod password;

/// Mounted at `/api`.
pub fn routes(state: AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(setup))
        .routes(routes!(verify))
        .routes(routes!(disable))
        .routes(routes!(me))
        .merge(password::routes());
    crate::http::with_own_fallbacks(routes, MudbaseError::from)
        .layer(middleware::from_fn_with_state(state, envelope))
}

/// An error in Mudbase's format, before the envelope adds path, time and request id.
#[derive(Debug, Clone)]
pub struct MudbaseError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
    retry_after: Option<i64>,
}

impl MudbaseError {
    fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        Self { status, code, message: message.to_owned(), details: json!({}), retry_after: None }
    }
}

/// The one mapping from native errors to Mudbase's codes.
impl From<ApiError> for MudbaseError {
    fn from(error: ApiError) -> Self {
        use ErrorCode as C;
        let details = error.details.clone().unwrap_or_else(|| json!({}));
        let mut mapped = match error.code {
            C::MalformedJson
            | C::UnsupportedMediaType
            | C::UnknownField
            | C::MissingField
            | C::InvalidField
            | C::InvalidQuery
            | C::InvalidEmail
            | C::WeakPassword => Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &error.message),
            C::PayloadTooLarge => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", &error.message)
            }
            C::InvalidCredentials => {
                Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Invalid email or password")
            }
            C::Unauthenticated | C::InvalidToken | C::InvalidRefreshToken | C::SecondFactorRequired => {
                Self::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "Authentication required or invalid token",
                )
            }
            C::InvalidCode => Self::new(
                StatusCode::BAD_REQUEST,
                "INVALID_2FA_TOKEN",
                "Invalid two-factor authentication code",
            ),
            C::InvalidLink => {
                Self::new(StatusCode::BAD_REQUEST, "INVALID_TOKEN", "Invalid or expired reset token")
            }
            C::TooManyAttempts | C::RateLimited => {
                let seconds = error.retry_after.unwrap_or(1);
                Self {
                    retry_after: Some(seconds),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "RATE_LIMITED",
                        "Too many attempts, retry later",
                    )
                }
            }
            C::SecondFactorLocked => Self::new(StatusCode::FORBIDDEN, "TWO_FACTOR_LOCKED", &error.message),
            C::MfaSetupRequired => Self::new(StatusCode::FORBIDDEN, "MFA_SETUP_REQUIRED", &error.message),
            C::ReauthenticationRequired => Self::new(
                StatusCode::FORBIDDEN,
                "REAUTHENTICATION_REQUIRED",
                "Log in again to change 2FA settings",
            ),
            // Mudbase documents 400, 401 and 403 only: a conflict is a bad request here.
            C::FactorAlreadyActive => {
                Self::new(StatusCode::BAD_REQUEST, "CONFLICT", "2FA is already enabled")
            }
            C::FactorNotFound => Self::new(
                StatusCode::BAD_REQUEST,
                "NO_PENDING_2FA_SETUP",
                "No pending 2FA setup: call /api/users/2fa/setup first",
            ),
            C::NotFound | C::UserNotFound => Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found"),
            C::MethodNotAllowed => {
                Self::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", &error.message)
            }
            C::DatabaseUnavailable | C::Overloaded => {
                error.log_cause();
                Self {
                    retry_after: error.retry_after,
                    ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", &error.message)
                }
            }
            C::InternalError => {
                error.log_cause();
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "Internal server error")
            }
            _ => Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", &error.message),
        };
        if mapped.details == json!({}) {
            mapped.details = details;
        }
        mapped
    }
}

impl IntoResponse for MudbaseError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The error body Mudbase clients read.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MudbaseError)]
struct MudbaseErrorBody {
    /// For people.
    error: String,
    /// `VALIDATION_ERROR`, `UNAUTHORIZED`, `FORBIDDEN`, `TWO_FACTOR_REQUIRED`,
    /// `INVALID_2FA_TOKEN`, `NO_PENDING_2FA_SETUP`, `TWO_FACTOR_NOT_ENABLED`,
    /// `TWO_FACTOR_LOCKED`, `REAUTHENTICATION_REQUIRED`, `CONFLICT`, `RATE_LIMITED`,
    /// `INVALID_TOKEN` (a password reset's),
    /// `NOT_FOUND`, `METHOD_NOT_ALLOWED`, `PAYLOAD_TOO_LARGE`, `BAD_REQUEST`,
    /// `SERVICE_UNAVAILABLE` or `INTERNAL_ERROR`.
    #[schema(example = "UNAUTHORIZED")]
    code: &'static str,
    #[schema(value_type = Object)]
    details: Value,
    timestamp: String,
    path: String,
    request_id: String,
    /// Seconds to wait, with `RATE_LIMITED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<i64>,
}

/// Turns a [`MudbaseError`] left by a handler into the full error body.
async fn envelope(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Inside the `/api` nest the URI has lost its prefix; the original has it.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path().to_owned(), |OriginalUri(uri)| uri.path().to_owned());
    let request_id =
        request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut response = next.run(request).await;
    let Some(error) = response.extensions_mut().remove::<MudbaseError>() else { return response };
    let mut details = error.details;
    if let Some(seconds) = error.retry_after {
        details["retryAfter"] = json!(seconds);
    }
    let body = MudbaseErrorBody {
        error: error.message,
        code: error.code,
        details,
        timestamp: rfc3339(state.now()),
        path,
        request_id,
        retry_after: error.retry_after,
    };
    let mut out = (error.status, Json(body)).into_response();
    if let Some(seconds) = error.retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    out
}

type Result<T> = std::result::Result<T, MudbaseError>;

fn required<T>(value: Option<T>, field: &str) -> Result<T> {
    value.ok_or_else(|| MudbaseError {
        details: json!({ "field": field }),
        ..MudbaseError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &format!("{field} is required"))
    })
}

/// The 2FA routes take a user's JWT only.
fn user(headers: &HeaderMap, auth: std::result::Result<AuthUser, ApiError>) -> Result<AuthUser> {
    refuse_api_keys(headers)?;
    Ok(auth?)
}

/// `/api/users/2fa/verify` takes a login's limited token too.
fn any_session(headers: &HeaderMap, auth: std::result::Result<SessionAuth, ApiError>) -> Result<SessionAuth> {
    refuse_api_keys(headers)?;
    Ok(auth?)
}

fn refuse_api_keys(headers: &HeaderMap) -> Result<()> {
    if headers.contains_key("x-api-key") {
        return Err(MudbaseError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "API keys are not supported for this endpoint",
        ));
    }
    Ok(())
}

/// Tokens, as login and refresh give them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    message: &'static str,
    token: String,
    refresh_token: String,
    /// Seconds until `token` expires.
    expires_in: i64,
    /// With login only.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<MudbaseUser>,
    /// `true` when the login waits for its second factor: `token` opens only
    /// `/api/users/2fa/verify`, which takes a code and makes it a full token.
    #[serde(skip_serializing_if = "Option::is_none")]
    two_factor_required: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MudbaseUser {
    #[serde(rename = "_id")]
    id: String,
    email: String,
    email_verified: bool,
    two_factor_enabled: bool,
}

impl TokenAnswer {
    fn new(tokens: IssuedTokens, message: &'static str) -> Self {
        Self {
            message,
            token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_in: tokens.expires_in,
            user: None,
            two_factor_required: None,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Login {
    email: Option<String>,
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    /// A TOTP code or a backup code; required for users with 2FA.
    #[schema(value_type = Option<String>)]
    totp_token: Option<SecretString>,
}

/// `POST /api/auth/login`. A user with 2FA sends `totpToken` (a TOTP or backup code)
/// and gets a full token; without it (Mudbase's SDK cannot send one) the answer is a
/// limited token with `"twoFactorRequired": true`, which `/api/users/2fa/verify`
/// completes with a code.
#[utoipa::path(post, path = "/auth/login", tag = "mudbase",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in; or, with `twoFactorRequired`, a token limited to `/api/users/2fa/verify`.", body = TokenAnswer),
        (status = 401, description = "Wrong email, password or code (`UNAUTHORIZED`).", body = MudbaseErrorBody),
        (status = 403, description = "`TWO_FACTOR_LOCKED`, or `MFA_SETUP_REQUIRED`.", body = MudbaseErrorBody),
        (status = 429, description = "Too many attempts (`RATE_LIMITED`).", body = MudbaseErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<Login>, ApiError>,
) -> Result<Json<TokenAnswer>> {
    use secrecy::ExposeSecret;
    let JsonBody(body) = body?;
    let email = required(body.email, "email")?;
    let password = required(body.password, "password")?;
    let user = accounts::authenticate_password(&state, &email, password, Client::new(&meta)).await?;
    let proof = body.totp_token.as_ref().map(|code| Proof::typed(code.expose_secret()));
    let outcome = login::in_one_step(&state, &user.id, proof, &meta).await;
    let account = |two_factor_enabled| MudbaseUser {
        id: user.id.clone(),
        email: user.email.clone(),
        email_verified: false,
        two_factor_enabled,
    };
    match outcome {
        Ok((tokens, two_factor)) => Ok(Json(TokenAnswer {
            user: Some(account(two_factor)),
            ..TokenAnswer::new(tokens, "Login successful")
        })),
        Err(error) if error.code == ErrorCode::SecondFactorRequired => {
            let (tokens, _) =
                login::with_waiting_session(&state, &user.id, Lifetime::Standard, &meta).await?;
            Ok(Json(TokenAnswer {
                user: Some(account(true)),
                two_factor_required: Some(true),
                ..TokenAnswer::new(tokens, "Two-factor authentication required")
            }))
        }
        Err(error) if error.code == ErrorCode::InvalidCode => Err(MudbaseError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Invalid two-factor authentication code",
        )),
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Refresh {
    #[schema(value_type = Option<String>)]
    refresh_token: Option<SecretString>,
}

/// `POST /api/auth/refresh`: new tokens for a refresh token, which is spent.
#[utoipa::path(post, path = "/auth/refresh", tag = "mudbase",
    request_body = Refresh,
    responses(
        (status = 200, description = "New tokens.", body = TokenAnswer),
        (status = 401, description = "The refresh token is invalid, expired or spent.", body = MudbaseErrorBody),
    ))]
async fn refresh(
    State(state): State<AppState>,
    body: std::result::Result<JsonBody<Refresh>, ApiError>,
) -> Result<Json<TokenAnswer>> {
    use secrecy::ExposeSecret;
    let JsonBody(body) = body?;
    let token = required(body.refresh_token, "refreshToken")?;
    let tokens = sessions::refresh(&state, token.expose_secret()).await?;
    Ok(Json(TokenAnswer::new(tokens, "Token refreshed")))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SetupAnswer {
    secret: String,
    /// The QR code as a PNG data URL.
    qr_code: String,
    /// The secret in groups of four.
    manual_entry_key: String,
    /// One-time backup codes; they work once `/verify` confirms the factor.
    backup_codes: Vec<String>,
}

/// `POST /api/users/2fa/setup`: a pending TOTP factor and, at once, its backup codes
/// (they work only after `/verify` confirms the factor). Needs a login under 10
/// minutes old.
#[utoipa::path(post, path = "/users/2fa/setup", tag = "mudbase",
    request_body(content = Option<Value>, description = "Ignored: any body, or none."),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The secret and backup codes.", body = SetupAnswer),
        (status = 403, description = "An API key (`FORBIDDEN`), or a login too old (`REAUTHENTICATION_REQUIRED`).",
            body = MudbaseErrorBody),
        (status = 400, description = "2FA is already enabled (`CONFLICT`).", body = MudbaseErrorBody),
        (status = 404, description = "The user no longer exists.", body = MudbaseErrorBody),
    ))]
async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    auth: std::result::Result<AuthUser, ApiError>,
    _body: std::result::Result<OptionalJsonBody<Value>, ApiError>,
) -> Result<Json<SetupAnswer>> {
    let auth = user(&headers, auth)?;
    let user_id = auth.session.user_id.clone();
    factors::ensure_not_enabled(&state, &user_id, None).await?;
    let by = reauth::require_recent_authentication(&state, &auth.session, None).await?;
    let account = accounts::session_user(&state, &user_id).await?;
    let enrollment = enrolment::enroll_totp(&state, &by, &account, None, &meta).await?;
    let backup_codes = recovery_codes::issue_at_setup(&state, &by, &meta).await?;
    let manual_entry_key: Vec<String> = enrollment
        .secret
        .as_bytes()
        .chunks(4)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect();
    Ok(Json(SetupAnswer {
        secret: enrollment.secret.as_str().to_owned(),
        qr_code: enrollment.qr_png.as_str().to_owned(),
        manual_entry_key: manual_entry_key.join(" "),
        backup_codes,
    }))
}

#[derive(Deserialize, ToSchema)]
struct Verify {
    /// A code from the pending factor.
    #[schema(value_type = Option<String>)]
    token: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
struct Message {
    message: &'static str,
}

/// `POST /api/users/2fa/verify`: with a login's limited token, a code (TOTP or backup)
/// completes the login and the same token becomes a full one; with a full token, a
/// code from the pending factor confirms it.
#[utoipa::path(post, path = "/users/2fa/verify", tag = "mudbase",
    request_body = Verify,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "2FA is on.", body = Message),
        (status = 400, description = "A wrong code (`INVALID_2FA_TOKEN`), no pending setup, 2FA already enabled (`CONFLICT`), or a bad body.",
            body = MudbaseErrorBody),
        (status = 403, description = "An API key, or a locked second factor.", body = MudbaseErrorBody),
        (status = 429, description = "Too many attempts.", body = MudbaseErrorBody),
    ))]
async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
    body: std::result::Result<JsonBody<Verify>, ApiError>,
) -> Result<Json<Message>> {
    use secrecy::ExposeSecret;
    let auth = any_session(&headers, auth)?;
    let JsonBody(body) = body?;
    let code = required(body.token, "token")?;
    let user_id = auth.session.user_id.clone();
    if auth.session.mfa_pending {
        if !factors::has_active(&state, &user_id, None).await? {
            return Err(ApiError::from(ErrorCode::SecondFactorRequired).into());
        }
        reauth::step_up(&state, &auth.session, Proof::typed(code.expose_secret()), &meta).await?;
        return Ok(Json(Message { message: "Two-factor authentication verified" }));
    }
    let pending = factors::pending_setup(&state, &user_id, FactorType::Totp).await?;
    factors::confirm(
        &state,
        &auth.session,
        &pending.id,
        Enrolment::Code(code.expose_secret()),
        RecoveryCodes::IssuedAtSetup,
        &meta,
    )
    .await?;
    Ok(Json(Message { message: "2FA enabled successfully" }))
}

#[derive(Deserialize, ToSchema)]
struct Disable {
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    /// A current TOTP code or a backup code.
    #[schema(value_type = Option<String>)]
    token: Option<SecretString>,
}

/// `POST /api/users/2fa/disable`: needs the password and a current code (or backup code).
#[utoipa::path(post, path = "/users/2fa/disable", tag = "mudbase",
    request_body = Disable,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "2FA is off.", body = Message),
        (status = 400, description = "A wrong code, 2FA not enabled (`TWO_FACTOR_NOT_ENABLED`), or a bad body.",
            body = MudbaseErrorBody),
        (status = 401, description = "No valid token, or a wrong password.", body = MudbaseErrorBody),
        (status = 403, description = "An API key, or a locked second factor.", body = MudbaseErrorBody),
        (status = 404, description = "The user no longer exists.", body = MudbaseErrorBody),
        (status = 429, description = "Too many attempts.", body = MudbaseErrorBody),
    ))]
async fn disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    auth: std::result::Result<AuthUser, ApiError>,
    body: std::result::Result<JsonBody<Disable>, ApiError>,
) -> Result<Json<Message>> {
    use secrecy::ExposeSecret;
    let auth = user(&headers, auth)?;
    let JsonBody(body) = body?;
    let password = required(body.password, "password")?;
    let code = required(body.token, "token")?;
    let user_id = auth.session.user_id.clone();
    let account = accounts::session_user(&state, &user_id).await?;
    accounts::authenticate_password(&state, &account.email, password, Client::new(&meta)).await.map_err(
        |error| match error.code {
            ErrorCode::InvalidCredentials => {
                MudbaseError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Invalid password")
            }
            _ => error.into(),
        },
    )?;
    if !factors::has_active(&state, &user_id, None).await? {
        return Err(MudbaseError::new(
            StatusCode::BAD_REQUEST,
            "TWO_FACTOR_NOT_ENABLED",
            "2FA is not enabled",
        ));
    }
    let proof = Proof::typed(code.expose_secret());
    let verified = second_factor::verify(&state, &user_id, proof, &meta, None).await?;
    factors::reset_all(&state, &reauth::by_second_factor(&auth.session, &verified)?, &meta).await?;
    Ok(Json(Message { message: "2FA disabled successfully" }))
}

/// The signed-in user, as `GET /api/users/me` gives it.
#[derive(Serialize, ToSchema)]
struct CurrentUser {
    user: MudbaseUser,
}

/// `GET /api/users/me`: the signed-in user (a full token; a login's limited token is
/// 401 until `/api/users/2fa/verify`).
#[utoipa::path(get, path = "/users/me", tag = "mudbase",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user.", body = CurrentUser),
        (status = 401, description = "No valid token, or a login still waiting for its second factor.", body = MudbaseErrorBody),
        (status = 403, description = "An API key.", body = MudbaseErrorBody),
    ))]
async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: std::result::Result<AuthUser, ApiError>,
) -> Result<Json<CurrentUser>> {
    let auth = user(&headers, auth)?;
    let account = accounts::session_user(&state, &auth.session.user_id).await?;
    let two_factor_enabled = factors::has_active(&state, &account.id, None).await?;
    Ok(Json(CurrentUser {
        user: MudbaseUser { id: account.id, email: account.email, email_verified: false, two_factor_enabled },
    }))
}
