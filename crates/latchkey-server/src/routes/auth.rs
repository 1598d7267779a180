//! `/v1/auth/*`: sign-up, login, token refresh and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{AuthUser, ClientMeta, JsonBody};
use crate::service::accounts;
use crate::service::sessions::{self, IssuedTokens};
use crate::state::AppState;
use latchkey_core::session::{Aal, Amr};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/signup", post(signup))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
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
) -> Result<Json<TokenResponse>, ApiError> {
    let user = accounts::authenticate_password(&state, &body.email, body.password).await?;
    let tokens = sessions::start(&state, &user.id, Aal::Aal1, &[Amr::Pwd], state.now(), &meta).await?;
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
