//! Flashback's `/mfa/...` routes: status, methods, setup and its verification, enable,
//! disable, primary, reset, organisation enforcement and the passkey steps.

use axum::Json;
use axum::extract::State;
use latchkey_core::factor::FactorStatus;
use latchkey_core::factor::FactorType;
use latchkey_store::Factor;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{
    DeviceInfo, Envelope, FlashbackError, FlashbackErrorBody, Result, data, factor_type, message, mfa_type,
    mfa_type_schema, required,
};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{AuthUser, ClientMeta, JsonBody, SessionAuth};
use crate::service::factors::{self, Enrolment, RecoveryCodes};
use crate::service::reauth::{self, Authorized};
use crate::service::{accounts, enrolment, login, magic_link, organizations, recovery_codes, webauthn};
use crate::state::AppState;
use latchkey_core::email::Email;

/// The session, when it may set factors up: a full one, or one whose only use is
/// setting up the first factor (an enforcing organisation's member without one).
async fn setting_up(
    state: &AppState,
    auth: std::result::Result<SessionAuth, ApiError>,
) -> Result<SessionAuth> {
    let auth = auth?;
    if auth.session.mfa_pending && factors::has_active(state, &auth.session.user_id, None).await? {
        return Err(ApiError::from(ErrorCode::SecondFactorRequired).into());
    }
    Ok(auth)
}

/// The session of a login still waiting for its second factor.
fn waiting(auth: std::result::Result<SessionAuth, ApiError>) -> Result<SessionAuth> {
    let auth = auth?;
    if !auth.session.mfa_pending {
        return Err(FlashbackError::bad_request("MFA already verified for this session"));
    }
    Ok(auth)
}

/// Flashback's names of the types of `factors`, each once, oldest first.
fn mfa_types(factors: &[Factor]) -> Vec<&'static str> {
    let mut types = Vec::new();
    for name in factors.iter().filter_map(|f| mfa_type(f.factor_type)) {
        if !types.contains(&name) {
            types.push(name);
        }
    }
    types
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Status {
    /// The user has an active second factor (of any kind).
    is_enabled: bool,
    /// A login needs a second factor: the user has one, or their organisation enforces
    /// MFA (then a member without one must set one up first).
    is_required: bool,
    /// The user's organisation enforces MFA for every member.
    is_enforced: bool,
    enabled_methods: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_method: Option<&'static str>,
    /// The token is a full one: its login passed the second factor.
    session_verified: bool,
}

/// `GET /mfa/status`: also from a limited token.
#[utoipa::path(get, path = "/status", tag = "flashback",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's MFA status.", body = Envelope<Status>),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
    ))]
pub(super) async fn status(
    State(state): State<AppState>,
    auth: std::result::Result<SessionAuth, ApiError>,
) -> Result<Json<Envelope<Status>>> {
    let auth = auth?;
    let user_id = auth.session.user_id.as_str();
    let active = factors::active_factors(&state, user_id).await?;
    let enabled_methods = mfa_types(&active);
    let is_enforced = organizations::enforced(&state, user_id).await?;
    let primary_method = factors::preferred_type(&state, user_id)
        .await?
        .and_then(mfa_type)
        .filter(|name| enabled_methods.contains(name))
        .or_else(|| enabled_methods.first().copied());
    Ok(data(Status {
        is_enabled: !active.is_empty(),
        is_required: !active.is_empty() || is_enforced,
        is_enforced,
        primary_method,
        session_verified: auth.session.aal == "aal2" && !auth.session.mfa_pending,
        enabled_methods,
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Method {
    #[serde(rename = "type")]
    #[schema(schema_with = mfa_type_schema)]
    method_type: &'static str,
    name: &'static str,
    description: &'static str,
    /// This server offers the method.
    is_available: bool,
    /// The user has set it up (confirmed or not).
    is_configured: bool,
    /// The user has it confirmed: logins may use it.
    is_enabled: bool,
}

/// `GET /mfa/methods`: the three methods and where the user stands with each.
#[utoipa::path(get, path = "/methods", tag = "flashback",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The methods.", body = Envelope<Vec<Method>>),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
    ))]
pub(super) async fn methods(
    State(state): State<AppState>,
    auth: std::result::Result<SessionAuth, ApiError>,
) -> Result<Json<Envelope<Vec<Method>>>> {
    let auth = auth?;
    let all = factors::all_factors(&state, &auth.session.user_id).await?;
    let of = |t: FactorType| all.iter().filter(move |f| f.factor_type == t);
    let method = |t: FactorType, name, description, is_available| Method {
        method_type: mfa_type(t).unwrap_or_default(),
        name,
        description,
        is_available,
        is_configured: of(t).next().is_some(),
        is_enabled: of(t).any(|f| f.status == FactorStatus::Active),
    };
    Ok(data(vec![
        method(FactorType::Totp, "Google Authenticator", "Codes from an authenticator app (TOTP).", true),
        method(FactorType::Webauthn, "Passkey", "A passkey or security key (WebAuthn).", true),
        method(
            FactorType::MagicLink,
            "Magic link",
            "A link sent by email (not offered by this server).",
            false,
        ),
    ]))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SetupRequest {
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: Option<String>,
    /// For MAGIC_LINK: where links go (the account's address when absent).
    email: Option<String>,
    /// For PASSKEY: `name` becomes the factor's name.
    #[schema(value_type = Option<Object>)]
    device_info: Option<DeviceInfo>,
}

/// The user of `auth`, authorised to change their factors (re-authentication as on
/// every surface: a second factor proven within `mfa.reauth_window_secs`, or for a user
/// without one, a login within it).
async fn authorised(state: &AppState, auth: &SessionAuth) -> Result<(Authorized, latchkey_store::User)> {
    let by = reauth::require_recent_authentication(state, &auth.session, None).await?;
    let user = accounts::session_user(state, &auth.session.user_id).await?;
    Ok((by, user))
}

/// `POST /mfa/setup`: GOOGLE_AUTH gives `{secret, qrCode, backupCodes}` (the codes
/// pass nothing until `/mfa/verify-setup` confirms the factor); PASSKEY gives the
/// creation options, also under `publicKey`.
#[utoipa::path(post, path = "/setup", tag = "flashback",
    request_body = SetupRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What the client needs to finish the setup.", body = Envelope<Object>),
        (status = 400, description = "A bad body or type, a method not offered, or one enabled already.", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
        (status = 403, description = "The login has not passed its second factor, or it did so too long ago.", body = FlashbackErrorBody),
        (status = 429, description = "Too many links sent (MAGIC_LINK).", body = FlashbackErrorBody),
    ))]
pub(super) async fn setup(
    State(state): State<AppState>,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
    body: std::result::Result<JsonBody<SetupRequest>, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = setting_up(&state, auth).await?;
    let JsonBody(body) = body?;
    let factor_type = factor_type(&required(body.mfa_type, "mfaType")?)?;
    let (by, user) = authorised(&state, &auth).await?;
    if factor_type == FactorType::MagicLink {
        factors::ensure_not_enabled(&state, &user.id, Some(FactorType::MagicLink)).await?;
        let email = match body.email.as_deref() {
            Some(email) => Email::parse(email)
                .map_err(|_| FlashbackError::bad_request("email is not a valid address"))?,
            None => Email::parse(&user.email).map_err(ApiError::internal)?,
        };
        enrolment::enroll_magic_link_by_link(&state, &by, &user, email.normalized.clone(), &meta).await?;
        return Ok(data(json!({ "email": email.normalized, "verificationRequired": true })));
    }
    if factor_type == FactorType::Totp {
        factors::ensure_not_enabled(&state, &user.id, Some(FactorType::Totp)).await?;
        let enrollment = enrolment::enroll_totp(&state, &by, &user, None, &meta).await?;
        return Ok(data(json!({
            "secret": enrollment.secret.as_str(),
            "qrCode": enrollment.qr_png.as_str(),
            "backupCodes": recovery_codes::setup_codes(&state, &enrollment.factor),
        })));
    }
    let name = body.device_info.as_ref().and_then(|info| info.get("name")).and_then(Value::as_str);
    let name = name.filter(|name| !name.trim().is_empty()).map(str::to_owned);
    let (_, options) = enrolment::enroll_webauthn(&state, &by, &user, name, &meta).await?;
    let origin = state
        .config
        .relying_party()
        .map_err(ApiError::internal)?
        .1
        .first()
        .map(|o| o.origin().ascii_serialization());
    Ok(data(json!({
        "challenge": options["challenge"],
        "rpName": options["rp"]["name"],
        "rpID": options["rp"]["id"],
        "userName": options["user"]["name"],
        "userId": options["user"]["id"],
        "origin": origin,
        "publicKey": options,
    })))
}

/// Confirms the user's pending factor of `factor_type` with `proof`; a wrong proof is
/// `failure` (400).
async fn confirm(
    state: &AppState,
    auth: SessionAuth,
    factor_type: FactorType,
    proof: Enrolment<'_>,
    failure: &str,
    meta: &ClientMeta,
) -> Result<()> {
    let user_id = auth.session.user_id.clone();
    let factor = factors::pending_setup(state, &user_id, factor_type).await?;
    match factors::confirm(state, &auth.session, &factor.id, proof, RecoveryCodes::IssuedAtSetup, meta).await
    {
        Ok(_) => {}
        Err(error) if matches!(error.code, ErrorCode::InvalidCode | ErrorCode::InvalidCredential) => {
            return Err(FlashbackError::bad_request(failure));
        }
        Err(error) => return Err(error.into()),
    }
    if factor_type == FactorType::Totp {
        recovery_codes::keep_setup_codes(state, &factor, meta).await?;
    }
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct VerifySetup {
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: Option<String>,
    /// GOOGLE_AUTH: a code from the app.
    code: Option<String>,
    /// PASSKEY: the browser's answer to the setup's options.
    #[schema(value_type = Option<Object>)]
    credential: Option<Value>,
}

/// `POST /mfa/verify-setup`: confirms the setup; the factor is then enabled (and the
/// setup's backup codes become valid).
#[utoipa::path(post, path = "/verify-setup", tag = "flashback",
    request_body = VerifySetup,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`MFA setup verified and enabled`.", body = Envelope<Object>),
        (status = 400, description = "A bad body, no setup started, or a wrong code (`MFA setup verification failed`).", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
        (status = 429, description = "Too many attempts.", body = FlashbackErrorBody),
    ))]
pub(super) async fn verify_setup(
    State(state): State<AppState>,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
    body: std::result::Result<JsonBody<VerifySetup>, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = setting_up(&state, auth).await?;
    let JsonBody(body) = body?;
    let factor_type = factor_type(&required(body.mfa_type, "mfaType")?)?;
    let proof = match factor_type {
        FactorType::Totp => Enrolment::Code(required(body.code.as_deref(), "code")?),
        FactorType::Webauthn => Enrolment::Credential(required(body.credential.as_ref(), "credential")?),
        _ => return Err(FlashbackError::bad_request("MFA method not available")),
    };
    confirm(&state, auth, factor_type, proof, "MFA setup verification failed", &meta).await?;
    Ok(message("MFA setup verified and enabled"))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct CompleteRegistration {
    /// The browser's answer to `navigator.credentials.create`.
    #[schema(value_type = Option<Object>)]
    credential: Option<Value>,
    /// The setup's challenge; the answer carries it too, which is what is checked.
    #[allow(dead_code)]
    challenge: Option<String>,
}

/// `POST /mfa/passkey/complete-registration`: finishes a PASSKEY setup.
#[utoipa::path(post, path = "/passkey/complete-registration", tag = "flashback",
    request_body = CompleteRegistration,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`Passkey registration completed`.", body = Envelope<Object>),
        (status = 400, description = "A bad body, no setup started, or a refused answer (`Passkey registration failed`).", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
    ))]
pub(super) async fn complete_registration(
    State(state): State<AppState>,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
    body: std::result::Result<JsonBody<CompleteRegistration>, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = setting_up(&state, auth).await?;
    let JsonBody(body) = body?;
    let credential = required(body.credential, "credential")?;
    let proof = Enrolment::Credential(&credential);
    confirm(&state, auth, FactorType::Webauthn, proof, "Passkey registration failed", &meta).await?;
    Ok(message("Passkey registration completed"))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct MfaTypeRequest {
    #[schema(schema_with = mfa_type_schema)]
    mfa_type: Option<String>,
}

/// The user's active factors of the type `body` names.
async fn active_of(
    state: &AppState,
    user_id: &str,
    body: MfaTypeRequest,
) -> Result<(FactorType, Vec<Factor>)> {
    let factor_type = factor_type(&required(body.mfa_type, "mfaType")?)?;
    let active: Vec<Factor> = factors::active_factors(state, user_id)
        .await?
        .into_iter()
        .filter(|f| f.factor_type == factor_type)
        .collect();
    if active.is_empty() {
        return Err(FlashbackError::bad_request("MFA method not configured"));
    }
    Ok((factor_type, active))
}

/// `POST /mfa/enable`: a method is enabled when its setup is verified; this answers
/// whether it is.
#[utoipa::path(post, path = "/enable", tag = "flashback",
    request_body = MfaTypeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`MFA method enabled`.", body = Envelope<Object>),
        (status = 400, description = "A bad body, or the method is not set up.", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
        (status = 403, description = "The login has not passed its second factor.", body = FlashbackErrorBody),
    ))]
pub(super) async fn enable(
    State(state): State<AppState>,
    auth: std::result::Result<AuthUser, ApiError>,
    body: std::result::Result<JsonBody<MfaTypeRequest>, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = auth?;
    let JsonBody(body) = body?;
    active_of(&state, &auth.session.user_id, body).await?;
    Ok(message("MFA method enabled"))
}

/// `POST /mfa/disable`: removes the user's factors of the type (re-authentication
/// needed); refused while their organisation enforces MFA and no other factor is left.
#[utoipa::path(post, path = "/disable", tag = "flashback",
    request_body = MfaTypeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`MFA method disabled`.", body = Envelope<Object>),
        (status = 400, description = "A bad body, or the method is not set up.", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
        (status = 403, description = "Enforced by the organisation, or the second factor was proven too long ago.", body = FlashbackErrorBody),
    ))]
pub(super) async fn disable(
    State(state): State<AppState>,
    meta: ClientMeta,
    auth: std::result::Result<AuthUser, ApiError>,
    body: std::result::Result<JsonBody<MfaTypeRequest>, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = auth?;
    let JsonBody(body) = body?;
    let user_id = auth.session.user_id.as_str();
    let (_, removing) = active_of(&state, user_id, body).await?;
    let remaining = factors::active_factors(&state, user_id).await?.len() - removing.len();
    if remaining == 0 && organizations::enforced(&state, user_id).await? {
        return Err(FlashbackError::new(
            axum::http::StatusCode::FORBIDDEN,
            "Cannot disable MFA when enforced by organization",
        ));
    }
    let by = reauth::require_recent_authentication(&state, &auth.session, None).await?;
    for factor in removing {
        factors::remove(&state, &by, &factor.id, &meta).await?;
    }
    Ok(message("MFA method disabled"))
}

/// `POST /mfa/primary`: the method logins ask for first.
#[utoipa::path(post, path = "/primary", tag = "flashback",
    request_body = MfaTypeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`Primary MFA method updated`.", body = Envelope<Object>),
        (status = 400, description = "A bad body, or the method is not enabled.", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
    ))]
pub(super) async fn primary(
    State(state): State<AppState>,
    auth: std::result::Result<AuthUser, ApiError>,
    body: std::result::Result<JsonBody<MfaTypeRequest>, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = auth?;
    let JsonBody(body) = body?;
    let (factor_type, _) = active_of(&state, &auth.session.user_id, body).await?;
    factors::set_preferred_type(&state, &auth.session.user_id, factor_type).await?;
    Ok(message("Primary MFA method updated"))
}

/// `POST /mfa/passkey/auth-options`: the options for `navigator.credentials.get` that
/// `/mfa/verify-login` takes the answer to, for this login only.
#[utoipa::path(post, path = "/passkey/auth-options", tag = "flashback",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{challenge, rpId, userVerification, timeout, allowCredentials}`.", body = Envelope<Object>),
        (status = 400, description = "No passkey, or the login passed MFA already.", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
    ))]
pub(super) async fn passkey_auth_options(
    State(state): State<AppState>,
    auth: std::result::Result<SessionAuth, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = waiting(auth)?;
    let binding = webauthn::session_binding(&state, &auth.session.id);
    let options = webauthn::start_any_authentication(&state, &auth.session.user_id, Some(&binding)).await?;
    Ok(data(options))
}

/// `POST /mfa/magic-link/send`: emails the link that finishes this login (the link's
/// token goes to `/mfa/verify-login`).
#[utoipa::path(post, path = "/magic-link/send", tag = "flashback",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`Magic link sent successfully`.", body = Envelope<Object>),
        (status = 400, description = "No magic-link method, or the login passed MFA already.", body = FlashbackErrorBody),
        (status = 401, description = "No valid token.", body = FlashbackErrorBody),
        (status = 429, description = "Too many links sent.", body = FlashbackErrorBody),
    ))]
pub(super) async fn magic_link_send(
    State(state): State<AppState>,
    meta: ClientMeta,
    auth: std::result::Result<SessionAuth, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let auth = waiting(auth)?;
    let choice = login::FactorChoice::Type(FactorType::MagicLink);
    login::challenge_waiting(&state, &auth.session, choice, &meta).await?;
    Ok(message("Magic link sent successfully"))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct ActivateRequest {
    /// The token of the activation link the setup emailed.
    token: Option<String>,
}

/// `POST /mfa/magic-link/activate`: turns the magic-link method on with the setup
/// email's token (no Bearer needed: the token is the proof). Opening the link in a
/// browser does the same.
#[utoipa::path(post, path = "/magic-link/activate", tag = "flashback",
    request_body = ActivateRequest,
    responses(
        (status = 200, description = "`Magic link MFA activated successfully`.", body = Envelope<Object>),
        (status = 400, description = "A bad body, or `Invalid or expired token`.", body = FlashbackErrorBody),
    ))]
pub(super) async fn magic_link_activate(
    State(state): State<AppState>,
    meta: ClientMeta,
    body: std::result::Result<JsonBody<ActivateRequest>, ApiError>,
) -> Result<Json<Envelope<Value>>> {
    let JsonBody(body) = body?;
    let token = required(body.token, "token")?;
    match magic_link::confirm(&state, &token, &meta).await? {
        Some(magic_link::Confirmed::Enrolled) => Ok(message("Magic link MFA activated successfully")),
        _ => Err(FlashbackError::bad_request("Invalid or expired token")),
    }
}
