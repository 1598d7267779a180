//! Flashback's login, refresh and the MFA step that finishes a login.

use axum::Json;
use axum::extract::State;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{DeviceInfo, FlashbackError, FlashbackErrorBody, Result, factor_type, mfa_type_schema, required};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{ClientMeta, JsonBody, SessionAuth};
use crate::service::login_throttle::Client;
use crate::service::second_factor::{self, Proof};
use crate::service::sessions::{IssuedTokens, Lifetime};
use crate::service::{accounts, login, organizations, sessions, webauthn};
use crate::state::AppState;
use latchkey_core::factor::FactorType;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct LoginRequest {
    email: Option<String>,
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    /// Accepted and not used.
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)]
    device_info: Option<DeviceInfo>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct LoginUser {
    id: String,
    email: String,
    /// Latchkey keeps no display name: the address's local part.
    name: String,
    /// The user's organisation, when they belong to one.
    org_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct LoginAnswer {
    success: bool,
    /// Limited to `/mfa/...` while `mfaRequired`.
    access_token: String,
    refresh_token: String,
    /// The session's id.
    token_id: String,
    /// When the access token expires, in Unix seconds.
    expires_at: i64,
    user: LoginUser,
    /// A Latchkey extension: the token is limited until `/mfa/verify-login` (or, for
    /// a member whose organisation enforces MFA and who has no factor, until one is set
    /// up).
    mfa_required: bool,
}

/// `POST /user/login`.
#[utoipa::path(post, path = "/user/login", tag = "flashback",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; with MFA on, the access token is limited to `/mfa/...`.", body = LoginAnswer),
        (status = 400, description = "A bad body.", body = FlashbackErrorBody),
        (status = 401, description = "Wrong email or password (`INVALID_PASSWORD`, for both).", body = FlashbackErrorBody),
        (status = 429, description = "Too many attempts.", body = FlashbackErrorBody),
    ))]
pub(super) async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<LoginRequest>, ApiError>,
) -> Result<Json<LoginAnswer>> {
    let JsonBody(body) = body?;
    let email = required(body.email, "email")?;
    let password = required(body.password, "password")?;
    let user = accounts::authenticate_password(&state, &email, password, Client::new(&meta)).await?;
    let (tokens, waiting) = login::with_waiting_session(&state, &user.id, Lifetime::Standard, &meta).await?;
    let org_id = organizations::membership(&state, &user.id).await?.map(|m| m.org_id);
    Ok(Json(LoginAnswer {
        success: true,
        expires_at: state.now() + tokens.expires_in,
        token_id: tokens.session_id,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        user: LoginUser {
            name: user.email.split('@').next().unwrap_or_default().to_owned(),
            id: user.id,
            email: user.email,
            org_id,
        },
        mfa_required: waiting,
    }))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct RefreshRequest {
    #[serde(rename = "refreshToken")]
    #[schema(value_type = Option<String>)]
    refresh_token: Option<SecretString>,
    /// What the official client sends.
    #[serde(rename = "refresh_token")]
    #[schema(value_type = Option<String>)]
    refresh_token_snake: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefreshAnswer {
    success: bool,
    /// The same as `accessToken`, as the official client reads it.
    token: String,
    access_token: String,
    refresh_token: String,
    /// Unix seconds.
    expires_at: i64,
}

/// `POST /user/refresh`: `refreshToken` (or `refresh_token`) for new tokens; the old
/// refresh token is spent.
#[utoipa::path(post, path = "/user/refresh", tag = "flashback",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens.", body = RefreshAnswer),
        (status = 400, description = "A bad body.", body = FlashbackErrorBody),
        (status = 401, description = "An unknown, spent or expired refresh token (`INVALID_REFRESH_TOKEN`).", body = FlashbackErrorBody),
    ))]
pub(super) async fn refresh(
    State(state): State<AppState>,
    body: std::result::Result<JsonBody<RefreshRequest>, ApiError>,
) -> Result<Json<RefreshAnswer>> {
    let JsonBody(body) = body?;
    let presented = required(body.refresh_token.or(body.refresh_token_snake), "refreshToken")?;
    let tokens = sessions::refresh(&state, presented.expose_secret()).await?;
    Ok(Json(refresh_answer(&state, tokens)))
}

fn refresh_answer(state: &AppState, tokens: IssuedTokens) -> RefreshAnswer {
    RefreshAnswer {
        success: true,
        token: tokens.access_token.clone(),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at: state.now() + tokens.expires_in,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct VerifyLogin {
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: Option<String>,
    /// GOOGLE_AUTH: the app's code, or a backup code.
    code: Option<String>,
    /// MAGIC_LINK: the token of the link `/mfa/magic-link/send` emailed.
    token: Option<String>,
    /// PASSKEY: the browser's answer to `/mfa/passkey/auth-options`.
    #[schema(value_type = Option<Object>)]
    credential: Option<Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct VerifiedLogin {
    success: bool,
    message: &'static str,
    /// A new session's access token; the limited one stops working.
    full_access_token: String,
    refresh_token: String,
}

/// `POST /mfa/verify-login`: the second factor of a login whose token is limited. Other
/// fields a client sends (`sessionId`, `ipAddress`, `userAgent`) are ignored.
#[utoipa::path(post, path = "/verify-login", tag = "flashback",
    request_body = VerifyLogin,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The login is finished: a full token.", body = VerifiedLogin),
        (status = 400, description = "A bad body, or no second factor to verify.", body = FlashbackErrorBody),
        (status = 401, description = "No valid token, or a wrong or replayed code or passkey answer.", body = FlashbackErrorBody),
        (status = 403, description = "The second factor is locked.", body = FlashbackErrorBody),
        (status = 429, description = "Too many attempts.", body = FlashbackErrorBody),
    ))]
pub(super) async fn verify_login(
    State(state): State<AppState>,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
    body: std::result::Result<JsonBody<VerifyLogin>, ApiError>,
) -> Result<Json<VerifiedLogin>> {
    let auth = auth?;
    let JsonBody(body) = body?;
    let factor_type = factor_type(&required(body.mfa_type, "mfaType")?)?;
    let session = &auth.session;
    if !session.mfa_pending {
        return Err(FlashbackError::bad_request("MFA already verified for this session"));
    }
    let binding = webauthn::session_binding(&state, &session.id);
    let proof = match factor_type {
        FactorType::Totp => Proof::typed(required(body.code.as_deref(), "code")?),
        FactorType::Webauthn => Proof::Credential {
            factor_id: None,
            credential: required(body.credential.as_ref(), "credential")?,
            login: Some(&binding),
        },
        _ => {
            let token = required(body.token.as_deref(), "token")?;
            return finish(
                &state,
                session,
                login::verify_waiting_link(&state, session, token, &meta).await,
                &meta,
            )
            .await;
        }
    };
    if organizations::setup_required(&state, &session.user_id).await? {
        return Err(ApiError::from(ErrorCode::MfaSetupRequired).into());
    }
    let verified = second_factor::verify(&state, &session.user_id, proof, &meta, None).await;
    finish(&state, session, verified, &meta).await
}

/// The full session after a second factor passed.
async fn finish(
    state: &AppState,
    session: &latchkey_store::Session,
    verified: std::result::Result<second_factor::Verified, ApiError>,
    meta: &ClientMeta,
) -> Result<Json<VerifiedLogin>> {
    let verified = verified?;
    let tokens = login::replace_waiting_session(state, session, &verified, meta).await?;
    Ok(Json(VerifiedLogin {
        success: true,
        message: "MFA verification successful",
        full_access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    }))
}
