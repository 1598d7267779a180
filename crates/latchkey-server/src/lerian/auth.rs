//! Lerian's Auth routes, `/v1/login/...`: the OAuth-style access token (password and refresh
//! grants, remembered devices), and the MFA challenge and verify that finish a login.

use super::*;
use latchkey_core::factor::FactorType;

use super::codes::Family;
use crate::service::api_keys;
use crate::service::login_throttle::Client;

/// An error of a login route: answered from Lerian's Auth catalogue (`AUT-…`).
#[derive(Debug)]
pub(super) struct AuthError(LerianError);

impl<E: Into<LerianError>> From<E> for AuthError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        self.0.in_family(Family::Auth).into_response()
    }
}

type AuthResult<T> = std::result::Result<T, AuthError>;

/// A grant's field, present and not empty: else `AUT-0014`.
fn grant_field<T>(value: Option<T>) -> AuthResult<T> {
    value.ok_or_else(|| Code::GrantTypeMissingFields.into())
}

/// Tokens, with `deviceToken` after a verify that asked to remember the device.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenAnswer {
    access_token: String,
    /// `Bearer`.
    token_type: &'static str,
    expires_in: i64,
    /// Absent for the `client_credentials` grant, which a client repeats instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
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
            refresh_token: Some(tokens.refresh_token),
            device_token: None,
        }
    }
}

/// A password grant for a user with MFA: finish at `/v1/login/mfa/verify`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct MfaRequired {
    mfa_token: String,
    /// `app`, `email`, `sms`.
    mfa_types: Vec<&'static str>,
    expires_in: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum AccessTokenAnswer {
    Tokens(TokenAnswer),
    MfaRequired(MfaRequired),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct AccessTokenRequest {
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
    /// For `client_credentials`: an API key's id.
    client_id: Option<String>,
    /// For `client_credentials`: that API key's secret.
    #[schema(value_type = Option<String>)]
    client_secret: Option<SecretString>,
}

/// `POST /v1/login/oauth/access_token`: the `password` grant (tokens, or for a user
/// with MFA `{mfaToken, mfaTypes, expiresIn}`; a user whose one factor is email or SMS
/// is sent its code at once), the `refresh_token` grant, and the `client_credentials`
/// grant (an API key's id and secret: a short-lived token that acts as the key on
/// `/v1/users/{id}/mfa/...`, with its scopes, and no refresh token).
#[utoipa::path(post, path = "/v1/login/oauth/access_token", tag = "lerian",
    request_body = AccessTokenRequest,
    responses(
        (status = 200, description = "Tokens, or what the second factor needs.", body = AccessTokenAnswer),
        (status = 400, description = "A bad body (AUT-0001), no or a malformed grant type (AUT-0013), a grant's missing fields (AUT-0014), an unsupported grant type (AUT-1001), or a wrong code.", body = LerianErrorBody),
        (status = 401, description = "Wrong credentials (AUT-9103), an invalid refresh token (AUT-1005) or MFA token (AUT-9105).", body = LerianErrorBody),
        (status = 403, description = "The second factor is locked (AUT-9051).", body = LerianErrorBody),
        (status = 429, description = "Too many attempts or codes sent.", body = LerianErrorBody),
    ))]
pub(super) async fn access_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<AccessTokenRequest>, ApiError>,
) -> AuthResult<Json<AccessTokenAnswer>> {
    let JsonBody(body) = body.map_err(|error| {
        let field = error.details.as_ref().and_then(|d| d["field"].as_str()).unwrap_or_default();
        if field == "grantType" { AuthError::from(Code::InvalidGrantType) } else { AuthError::from(error) }
    })?;
    match body.grant_type.as_str() {
        "password" => {
            let username = grant_field(body.username.filter(|u| !u.trim().is_empty()))?;
            let password = grant_field(body.password)?;
            let device = body
                .device_token
                .as_ref()
                .map(|token| token.expose_secret())
                .or_else(|| cookie(&headers, devices::COOKIE));
            let user = accounts::authenticate_password(
                &state,
                &username,
                password,
                Client::with_device(&meta, device),
            )
            .await?;
            match login::after_password(&state, &user.id, device, &meta).await? {
                LoginStep::Session(tokens) => Ok(Json(AccessTokenAnswer::Tokens(tokens.into()))),
                LoginStep::MfaRequired(challenge) => {
                    login::send_first_code(&state, &challenge, &meta).await?;
                    Ok(Json(AccessTokenAnswer::MfaRequired(MfaRequired {
                        mfa_types: mfa_types(&challenge.factors),
                        mfa_token: challenge.mfa_token,
                        expires_in: challenge.expires_in,
                    })))
                }
            }
        }
        "refresh_token" => {
            let token = grant_field(body.refresh_token.filter(|t| !t.expose_secret().trim().is_empty()))?;
            let tokens = sessions::refresh(&state, token.expose_secret()).await?;
            Ok(Json(AccessTokenAnswer::Tokens(tokens.into())))
        }
        "client_credentials" => {
            let client_id = grant_field(body.client_id.filter(|id| !id.trim().is_empty()))?;
            let secret = grant_field(body.client_secret)?;
            let (token, expires_in) =
                api_keys::client_token(&state, &client_id, secret.expose_secret()).await?;
            Ok(Json(AccessTokenAnswer::Tokens(TokenAnswer {
                access_token: token,
                token_type: "Bearer",
                expires_in,
                refresh_token: None,
                device_token: None,
            })))
        }
        "" => Err(Code::InvalidGrantType.into()),
        _ => Err(Code::UnsupportedGrantType.into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ChallengeRequest {
    #[schema(value_type = String)]
    mfa_token: SecretString,
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Initiated {
    message: &'static str,
}

/// `POST /v1/login/mfa/challenge`: sends the login's email or SMS passcode.
#[utoipa::path(post, path = "/v1/login/mfa/challenge", tag = "lerian",
    request_body = ChallengeRequest,
    responses(
        (status = 200, description = "The passcode is on its way.", body = Initiated),
        (status = 400, description = "A bad body (AUT-0001), no or a malformed grant type (AUT-0013), a grant's missing fields (AUT-0014), an unsupported grant type (AUT-1001), or a wrong code.", body = LerianErrorBody),
        (status = 401, description = "Wrong credentials (AUT-9103), an invalid refresh token (AUT-1005) or MFA token (AUT-9105).", body = LerianErrorBody),
        (status = 403, description = "The second factor is locked (AUT-9051).", body = LerianErrorBody),
        (status = 429, description = "Too many attempts or codes sent.", body = LerianErrorBody),
    ))]
pub(super) async fn challenge(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<ChallengeRequest>, ApiError>,
) -> AuthResult<Json<Initiated>> {
    let JsonBody(body) = body?;
    let factor_type = factor_type(&body.mfa_type)?;
    if factor_type == FactorType::Totp {
        return Err(Code::ChallengeNotApplicable.into());
    }
    login::challenge(&state, body.mfa_token.expose_secret(), FactorChoice::Type(factor_type), &meta).await?;
    Ok(Json(Initiated { message: "MFA challenge initiated" }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MfaVerifyRequest {
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
        (status = 400, description = "A bad body (AUT-0001), no or a malformed grant type (AUT-0013), a grant's missing fields (AUT-0014), an unsupported grant type (AUT-1001), or a wrong code.", body = LerianErrorBody),
        (status = 401, description = "Wrong credentials (AUT-9103), an invalid refresh token (AUT-1005) or MFA token (AUT-9105).", body = LerianErrorBody),
        (status = 403, description = "The second factor is locked (AUT-9051).", body = LerianErrorBody),
        (status = 429, description = "Too many attempts or codes sent.", body = LerianErrorBody),
    ))]
pub(super) async fn mfa_verify(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<MfaVerifyRequest>, ApiError>,
) -> AuthResult<Response> {
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
                ErrorCode::InvalidCode if recovery => AuthError::from(Code::InvalidRecoveryCode),
                _ => AuthError::from(error),
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
