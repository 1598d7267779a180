//! `/v1/auth/*`: sign-up, login, token refresh and logout.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use latchkey_store::Factor;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::{AuthUser, ClientMeta, JsonBody, OptionalJsonBody};
use crate::service::login::{self, Challenged, FactorChoice, LoginProof, LoginStep};
use crate::service::login_throttle::Client;
use crate::service::sessions::{self, IssuedTokens};
use crate::service::{accounts, exchange, magic_link, webauthn};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(mfa_challenge))
        .routes(routes!(mfa_verify))
        .routes(routes!(passkey_options))
        .routes(routes!(passkey_login))
        .routes(routes!(magic_link))
        .routes(routes!(exchange))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(value_type = String)]
    password: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    #[schema(value_type = String)]
    refresh_token: SecretString,
}

/// The token response of login and refresh.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until `access_token` expires.
    pub expires_in: i64,
    /// `aal1`, or `aal2` after a second factor.
    pub aal: String,
}

/// `202 Accepted`, the same for every address.
#[derive(Serialize, ToSchema)]
pub(super) struct Accepted {
    #[schema(example = "accepted")]
    pub status: &'static str,
    pub message: &'static str,
}

impl Accepted {
    /// The `202` answer with `message`.
    pub(super) fn answer(message: &'static str) -> (StatusCode, Json<Self>) {
        (StatusCode::ACCEPTED, Json(Self { status: "accepted", message }))
    }
}

impl From<IssuedTokens> for TokenResponse {
    fn from(tokens: IssuedTokens) -> Self {
        Self {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            aal: tokens.aal,
        }
    }
}

/// Creates an account with a password (when sign-up is enabled). The answer is the
/// same whether or not the address was free, so it reveals no accounts.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "auth",
    request_body = Credentials,
    responses(
        (status = 202, description = "Accepted.", body = Accepted),
        (status = 403, description = "Sign-up is disabled.", body = ErrorBody),
        (status = 429, description = "Too many attempts.", body = ErrorBody),
    ))]
async fn signup(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    accounts::signup(&state, &body.email, body.password).await?;
    Ok(Accepted::answer("If this address can be registered, the account now exists. Log in to continue."))
}

/// Password login: tokens, or for a user with a second factor an `mfa_token` and the
/// factors to choose from.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "Tokens, or what the second factor needs.", body = LoginAnswer),
        (status = 401, description = "Wrong email or password.", body = ErrorBody),
        (status = 429, description = "Too many attempts.", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let user =
        accounts::authenticate_password(&state, &body.email, body.password, Client::new(&meta)).await?;
    let step = login::after_password(&state, &user.id, None, &meta).await?;
    Ok(Json(step.into()))
}

/// The answer to a first factor: tokens, or what the second factor needs.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    Session(TokenResponse),
    MfaRequired(MfaRequired),
}

/// The login needs a second factor: send one to `/v1/auth/mfa/verify` with the token.
#[derive(Serialize, ToSchema)]
pub struct MfaRequired {
    /// Always `true`.
    pub mfa_required: bool,
    pub mfa_token: String,
    pub expires_in: i64,
    pub factors: Vec<FactorSummary>,
}

/// A factor the user may pass.
#[derive(Serialize, ToSchema)]
pub struct FactorSummary {
    pub id: String,
    /// `totp`, `email`, `sms`, `magic_link` or `webauthn`.
    #[serde(rename = "type")]
    pub factor_type: String,
    pub friendly_name: Option<String>,
}

impl From<Factor> for FactorSummary {
    fn from(factor: Factor) -> Self {
        Self {
            id: factor.id,
            factor_type: factor.factor_type.to_string(),
            friendly_name: factor.friendly_name,
        }
    }
}

impl From<LoginStep> for LoginAnswer {
    fn from(step: LoginStep) -> Self {
        match step {
            LoginStep::Session(tokens) => Self::Session(tokens.into()),
            LoginStep::MfaRequired(challenge) => Self::MfaRequired(MfaRequired {
                mfa_required: true,
                mfa_token: challenge.mfa_token,
                expires_in: challenge.expires_in,
                factors: challenge.factors.into_iter().map(FactorSummary::from).collect(),
            }),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MfaChallenge {
    #[schema(value_type = String)]
    mfa_token: SecretString,
    factor_id: String,
}

/// A code or link is on its way; or, for a WebAuthn factor, what the browser needs.
#[derive(Serialize, ToSchema)]
pub(super) struct ChallengeSent {
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge_id: Option<String>,
    factor_id: String,
    #[serde(rename = "type")]
    factor_type: String,
    /// The destination, masked (`a***@example.com`).
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_to: Option<String>,
    expires_in: i64,
    /// For a WebAuthn factor: the `PublicKeyCredentialRequestOptions` (JSON form) to
    /// pass to `navigator.credentials.get({publicKey})`; send its answer to
    /// `/v1/auth/mfa/verify` as `credential`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    request_options: Option<serde_json::Value>,
}

/// `POST /v1/auth/mfa/challenge`: sends the login's code or link.
#[utoipa::path(post, path = "/v1/auth/mfa/challenge", tag = "auth",
    request_body = MfaChallenge,
    responses(
        (status = 200, description = "Sent.", body = ChallengeSent),
        (status = 401, description = "The `mfa_token` is invalid, expired or used.", body = ErrorBody),
        (status = 403, description = "The second factor is locked.", body = ErrorBody),
        (status = 404, description = "No factor of the user has this id.", body = ErrorBody),
        (status = 429, description = "Too many codes sent to this destination.", body = ErrorBody),
    ))]
async fn mfa_challenge(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<MfaChallenge>,
) -> Result<Json<ChallengeSent>, ApiError> {
    use secrecy::ExposeSecret;
    let choice = FactorChoice::Id(&body.factor_id);
    let (factor, challenged) =
        login::challenge(&state, body.mfa_token.expose_secret(), choice, &meta).await?;
    Ok(Json(challenge_sent(factor, challenged)))
}

/// The answer to starting a second step (a login's, or a password reset's).
pub(super) fn challenge_sent(factor: Factor, challenged: Challenged) -> ChallengeSent {
    let (factor_id, factor_type) = (factor.id, factor.factor_type.to_string());
    match challenged {
        Challenged::Sent(sent) => ChallengeSent {
            challenge_id: Some(sent.challenge_id),
            factor_id,
            factor_type,
            sent_to: Some(sent.sent_to),
            expires_in: sent.expires_in,
            request_options: None,
        },
        Challenged::Webauthn(options) => ChallengeSent {
            challenge_id: None,
            factor_id,
            factor_type,
            sent_to: None,
            expires_in: webauthn::CEREMONY_TTL_SECS,
            request_options: Some(options),
        },
    }
}

/// One proof: `factor_id` with `code` (or, for a WebAuthn factor, `credential`), or
/// `recovery_code`, or `challenge_id` of a confirmed magic link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MfaVerify {
    #[schema(value_type = String)]
    mfa_token: SecretString,
    factor_id: Option<String>,
    #[schema(value_type = Option<String>)]
    code: Option<SecretString>,
    /// The browser's answer to `navigator.credentials.get`, as JSON
    /// (`PublicKeyCredential.toJSON()`).
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
    #[schema(value_type = Option<String>)]
    recovery_code: Option<SecretString>,
    challenge_id: Option<String>,
}

/// Finishes a login with the second factor.
#[utoipa::path(post, path = "/v1/auth/mfa/verify", tag = "auth",
    request_body = MfaVerify,
    responses(
        (status = 200, description = "An `aal2` session.", body = TokenResponse),
        (status = 401, description = "The `mfa_token` is invalid, expired or used.", body = ErrorBody),
        (status = 403, description = "The second factor is locked.", body = ErrorBody),
        (status = 404, description = "No factor of the user has this id.", body = ErrorBody),
        (status = 409, description = "The magic link is not confirmed yet.", body = ErrorBody),
        (status = 429, description = "Too many attempts.", body = ErrorBody),
    ))]
async fn mfa_verify(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<MfaVerify>,
) -> Result<Json<TokenResponse>, ApiError> {
    use secrecy::ExposeSecret;
    let one_of =
        "Give `factor_id` and `code`, or `recovery_code`, or `challenge_id` (a confirmed magic link).";
    if let Some(credential) = &body.credential {
        let Some(factor_id) = &body.factor_id else {
            return Err(ApiError::field(ErrorCode::MissingField, "factor_id"));
        };
        if body.code.is_some() || body.recovery_code.is_some() || body.challenge_id.is_some() {
            return Err(ApiError::field(ErrorCode::InvalidField, "credential")
                .with_message(format!("{one_of} Not several.")));
        }
        let proof = LoginProof::Credential { factor_id, credential };
        let tokens = login::complete(&state, body.mfa_token.expose_secret(), proof, &meta).await?;
        return Ok(Json(tokens.into()));
    }
    let proof = match (&body.factor_id, &body.code, &body.recovery_code, &body.challenge_id) {
        (Some(factor_id), Some(code), None, None) => {
            LoginProof::Code { factor: FactorChoice::Id(factor_id), code: code.expose_secret() }
        }
        (None, None, Some(code), None) => LoginProof::RecoveryCode(code.expose_secret()),
        (_, None, None, Some(challenge_id)) => LoginProof::Link { challenge_id },
        (Some(_), None, None, None) => return Err(ApiError::field(ErrorCode::MissingField, "code")),
        (None, Some(_), None, None) => return Err(ApiError::field(ErrorCode::MissingField, "factor_id")),
        (None, None, None, None) => {
            return Err(ApiError::field(ErrorCode::MissingField, "code").with_message(one_of));
        }
        _ => {
            return Err(ApiError::field(ErrorCode::InvalidField, "recovery_code")
                .with_message(format!("{one_of} Not several.")));
        }
    };
    let tokens = login::complete(&state, body.mfa_token.expose_secret(), proof, &meta).await?;
    Ok(Json(tokens.into()))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct PasskeyOptionsRequest {
    /// The account, when the user typed it; without it any passkey of this site the
    /// browser holds may answer (usernameless, conditional UI).
    #[schema(example = "ada@example.com")]
    email: Option<String>,
}

/// What the browser needs to sign in with a passkey.
#[derive(Serialize, ToSchema)]
struct PasskeyOptions {
    /// `PublicKeyCredentialRequestOptions` (JSON form) for
    /// `navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(request_options)})`.
    #[schema(value_type = Object)]
    request_options: serde_json::Value,
    /// `conditional` without an address: pass `mediation: "conditional"` so the browser
    /// offers passkeys in the address field's autofill.
    #[serde(skip_serializing_if = "Option::is_none")]
    mediation: Option<&'static str>,
    expires_in: i64,
}

/// `POST /v1/auth/passkey/options`: starts a sign-in with a passkey alone.
#[utoipa::path(post, path = "/v1/auth/passkey/options", tag = "auth",
    request_body(content = Option<PasskeyOptionsRequest>, description = "Optional: without a body, or without `email`, any discoverable passkey may answer."),
    responses((status = 200, description = "Options for the browser, valid 5 minutes.", body = PasskeyOptions)))]
async fn passkey_options(
    State(state): State<AppState>,
    OptionalJsonBody(body): OptionalJsonBody<PasskeyOptionsRequest>,
) -> Result<Json<PasskeyOptions>, ApiError> {
    let email = match body.unwrap_or_default().email {
        Some(email) => Some(
            latchkey_core::email::Email::parse(&email)
                .map_err(|_| ApiError::field(ErrorCode::InvalidEmail, "email"))?
                .normalized,
        ),
        None => None,
    };
    let started = webauthn::start_sign_in(&state, email.as_deref()).await?;
    Ok(Json(PasskeyOptions {
        request_options: started.options,
        mediation: started.mediation,
        expires_in: webauthn::CEREMONY_TTL_SECS,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasskeyLogin {
    /// The browser's answer to `navigator.credentials.get`, as JSON
    /// (`PublicKeyCredential.toJSON()`).
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// The account a passkey signed in.
#[derive(Serialize, ToSchema)]
struct SignedInUser {
    id: String,
    email: String,
}

#[derive(Serialize, ToSchema)]
struct PasskeySession {
    #[serde(flatten)]
    tokens: TokenResponse,
    user: SignedInUser,
}

/// `POST /v1/auth/passkey/login`: signs in with a passkey alone, which is both factors
/// (the authenticator verified the user): an `aal2` session whose `amr` is `hwk` or
/// `swk`.
#[utoipa::path(post, path = "/v1/auth/passkey/login", tag = "auth",
    request_body = PasskeyLogin,
    responses(
        (status = 200, description = "An `aal2` session and its account.", body = PasskeySession),
        (status = 401, description = "The account is disabled.", body = ErrorBody),
        (status = 403, description = "The second factor is locked.", body = ErrorBody),
        (status = 422, description = "The answer was refused (`invalid_credential`, `details.reason`).", body = ErrorBody),
        (status = 429, description = "Too many failed attempts.", body = ErrorBody),
    ))]
async fn passkey_login(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<PasskeyLogin>,
) -> Result<Json<PasskeySession>, ApiError> {
    let (tokens, user) = login::with_passkey(&state, &body.credential, &meta).await?;
    Ok(Json(PasskeySession { tokens: tokens.into(), user: SignedInUser { id: user.id, email: user.email } }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MagicLinkRequest {
    email: String,
}

/// `POST /v1/auth/magic-link`: emails a sign-in link; the same answer for every address.
#[utoipa::path(post, path = "/v1/auth/magic-link", tag = "auth",
    request_body = MagicLinkRequest,
    responses(
        (status = 202, description = "Accepted.", body = Accepted),
        (status = 403, description = "Sign-in links are disabled.", body = ErrorBody),
        (status = 429, description = "Too many links sent to this address.", body = ErrorBody),
    ))]
async fn magic_link(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<MagicLinkRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    magic_link::request(&state, &body.email, &meta).await?;
    Ok(Accepted::answer(
        "If an account uses this address, a sign-in link is on its way. It expires in 15 minutes.",
    ))
}

/// New tokens for a refresh token, which is spent (reuse revokes the session).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens.", body = TokenResponse),
        (status = 401, description = "The refresh token is invalid, expired or spent.", body = ErrorBody),
    ))]
async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    use secrecy::ExposeSecret;
    let tokens = sessions::refresh(&state, body.refresh_token.expose_secret()).await?;
    Ok(Json(tokens.into()))
}

/// Ends the session of the access token.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Logged out.")))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    sessions::logout(&state, &user.session.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ExchangeRequest {
    /// The `code` the hosted pages added to the app's `return_to` after sign-in.
    #[schema(value_type = String)]
    code: SecretString,
}

/// `POST /v1/auth/exchange`: the app's server trades the one-time code from the hosted
/// sign-in for tokens of a new session with the same level, methods and time of
/// authentication. A code works once, within 60 seconds.
#[utoipa::path(post, path = "/v1/auth/exchange", tag = "auth",
    request_body = ExchangeRequest,
    responses(
        (status = 200, description = "Tokens of a new session.", body = TokenResponse),
        (status = 401, description = "The code is invalid, expired or already exchanged.", body = ErrorBody),
    ))]
async fn exchange(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<ExchangeRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    use secrecy::ExposeSecret;
    let tokens = exchange::redeem(&state, body.code.expose_secret(), &meta).await?;
    Ok(Json(tokens.into()))
}
