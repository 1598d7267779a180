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
use crate::service::accounts;
use crate::service::login::{self, LoginStep};
use crate::service::second_factor::Proof;
use crate::service::sessions::{self, IssuedTokens};
use crate::state::AppState;
use latchkey_core::session::Amr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/signup", post(signup))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/mfa/verify", post(mfa_verify))
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
    match login::after_first(&state, &user.id, &[Amr::Pwd], &meta).await? {
        LoginStep::Session(tokens) => Ok(Json(json!(TokenResponse::from(tokens)))),
        LoginStep::MfaRequired(challenge) => {
            let factors: Vec<Value> = challenge
                .factors
                .into_iter()
                .map(|f| json!({ "id": f.id, "type": f.factor_type, "friendly_name": f.friendly_name }))
                .collect();
            Ok(Json(json!({
                "mfa_required": true,
                "mfa_token": challenge.mfa_token,
                "expires_in": challenge.expires_in,
                "factors": factors,
            })))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaVerify {
    mfa_token: SecretString,
    factor_id: Option<String>,
    code: Option<SecretString>,
    recovery_code: Option<SecretString>,
}

async fn mfa_verify(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<MfaVerify>,
) -> Result<Json<TokenResponse>, ApiError> {
    use secrecy::ExposeSecret;
    let proof = match (&body.factor_id, &body.code, &body.recovery_code) {
        (Some(factor_id), Some(code), None) => Proof::Totp { factor_id, code: code.expose_secret() },
        (None, None, Some(code)) => Proof::RecoveryCode(code.expose_secret()),
        (Some(_), None, None) => return Err(ApiError::field(ErrorCode::MissingField, "code")),
        (None, Some(_), None) => return Err(ApiError::field(ErrorCode::MissingField, "factor_id")),
        (None, None, None) => {
            return Err(ApiError::field(ErrorCode::MissingField, "code")
                .with_message("Give `factor_id` and `code`, or `recovery_code`."));
        }
        _ => {
            return Err(ApiError::field(ErrorCode::InvalidField, "recovery_code")
                .with_message("Give `factor_id` and `code`, or `recovery_code`, not both."));
        }
    };
    let tokens = login::complete(&state, body.mfa_token.expose_secret(), proof, &meta).await?;
    Ok(Json(tokens.into()))
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
