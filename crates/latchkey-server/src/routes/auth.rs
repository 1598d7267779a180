//! `/v1/auth/*`: sign-up, login, token refresh and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};
use crate::extract::{AuthUser, ClientMeta, JsonBody};
use crate::service::login::{self, FactorChoice, LoginProof, LoginStep};
use crate::service::sessions::{self, IssuedTokens};
use crate::service::{accounts, magic_link};
use crate::state::AppState;
use latchkey_core::session::Amr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/signup", post(signup))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/mfa/challenge", post(mfa_challenge))
        .route("/v1/auth/mfa/verify", post(mfa_verify))
        .route("/v1/auth/magic-link", post(magic_link))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: SecretString,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: SecretString,
}

/// The token response of login and refresh.
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub aal: String,
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

async fn signup(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    accounts::signup(&state, &body.email, body.password).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "accepted",
            "message": "If this address can be registered, the account now exists. Log in to continue."
        })),
    ))
}

async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Json<Value>, ApiError> {
    let user = accounts::authenticate_password(&state, &body.email, body.password).await?;
    let step = login::after_first(&state, &user.id, &[Amr::Pwd], None, &meta).await?;
    Ok(Json(login_step_body(step)))
}

/// The answer to a first factor: tokens, or what the second factor needs.
pub fn login_step_body(step: LoginStep) -> Value {
    match step {
        LoginStep::Session(tokens) => json!(TokenResponse::from(tokens)),
        LoginStep::MfaRequired(challenge) => {
            let factors: Vec<Value> = challenge
                .factors
                .into_iter()
                .map(|f| json!({ "id": f.id, "type": f.factor_type, "friendly_name": f.friendly_name }))
                .collect();
            json!({
                "mfa_required": true,
                "mfa_token": challenge.mfa_token,
                "expires_in": challenge.expires_in,
                "factors": factors,
            })
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaChallenge {
    mfa_token: SecretString,
    factor_id: String,
}

/// `POST /v1/auth/mfa/challenge`: sends the login's code or link.
async fn mfa_challenge(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<MfaChallenge>,
) -> Result<Json<Value>, ApiError> {
    use secrecy::ExposeSecret;
    let (factor, sent) =
        login::challenge(&state, body.mfa_token.expose_secret(), FactorChoice::Id(&body.factor_id), &meta)
            .await?;
    Ok(Json(json!({
        "challenge_id": sent.challenge_id,
        "factor_id": factor.id,
        "type": factor.factor_type,
        "sent_to": sent.sent_to,
        "expires_in": sent.expires_in,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaVerify {
    mfa_token: SecretString,
    factor_id: Option<String>,
    code: Option<SecretString>,
    recovery_code: Option<SecretString>,
    challenge_id: Option<String>,
}

async fn mfa_verify(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<MfaVerify>,
) -> Result<Json<TokenResponse>, ApiError> {
    use secrecy::ExposeSecret;
    let one_of =
        "Give `factor_id` and `code`, or `recovery_code`, or `challenge_id` (a confirmed magic link).";
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MagicLinkRequest {
    email: String,
}

/// `POST /v1/auth/magic-link`: emails a sign-in link; the same answer for every address.
async fn magic_link(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<MagicLinkRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    magic_link::request(&state, &body.email, &meta).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "accepted",
            "message": "If an account uses this address, a sign-in link is on its way. It expires in 15 minutes."
        })),
    ))
}

async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    use secrecy::ExposeSecret;
    let tokens = sessions::refresh(&state, body.refresh_token.expose_secret()).await?;
    Ok(Json(tokens.into()))
}

async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    sessions::logout(&state, &user.session.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
