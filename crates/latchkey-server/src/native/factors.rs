//! `/v1/me/factors` and `/v1/me/recovery-codes`: the signed-in user's second factors.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use latchkey_store::Factor;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::{AuthUser, ClientMeta, JsonBody, OptionalJsonBody, Path};
use crate::service::factors::{Enrolment, RecoveryCodes};
use crate::service::{accounts, challenges, enrolment, factors, reauth, recovery_codes, webauthn};
use crate::state::AppState;
use latchkey_core::challenge;
use latchkey_core::factor::FactorType;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(rename, remove))
        .routes(routes!(verify))
        .routes(routes!(regenerate_recovery_codes))
}

/// A factor as the API shows it; secrets never appear here.
#[derive(Serialize, ToSchema)]
pub struct FactorView {
    pub id: String,
    /// `totp`, `email`, `sms`, `magic_link` or `webauthn`.
    #[serde(rename = "type")]
    pub factor_type: String,
    /// `pending` until confirmed with a code, then `active`.
    pub status: String,
    pub friendly_name: Option<String>,
    /// Where codes or links go, masked (`a***@example.com`, `+*********23`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// NIST SP 800-63B restricted authenticator (email, SMS): apps may steer people
    /// to TOTP or passkeys.
    pub restricted: bool,
    /// A WebAuthn factor's authenticator model, when the authenticator names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<AuthenticatorView>,
    pub created_at: String,
    pub confirmed_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// The model of a passkey's or security key's authenticator.
#[derive(Serialize, ToSchema)]
pub struct AuthenticatorView {
    /// The model's AAGUID, as the authenticator reported it.
    pub aaguid: String,
    /// The model's name, for the common passkey providers and security keys.
    pub name: Option<&'static str>,
}

impl From<Factor> for FactorView {
    fn from(factor: Factor) -> Self {
        let authenticator =
            factor.aaguid.map(|aaguid| AuthenticatorView { name: webauthn::model_name(&aaguid), aaguid });
        let destination =
            factor.destination.as_deref().map(|d| challenge::mask_destination(factor.factor_type, d));
        Self {
            id: factor.id,
            restricted: factor.factor_type.is_restricted(),
            authenticator,
            destination,
            factor_type: factor.factor_type.to_string(),
            status: factor.status.to_string(),
            friendly_name: factor.friendly_name,
            created_at: rfc3339(factor.created_at),
            confirmed_at: factor.confirmed_at.map(rfc3339),
            last_used_at: factor.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct FactorList {
    factors: Vec<FactorView>,
}

/// The user's factors, pending and active.
#[utoipa::path(get, path = "/v1/me/factors", operation_id = "list_factors", tag = "factors", security(("bearer" = [])),
    responses((status = 200, description = "The factors.", body = FactorList)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<FactorList>, ApiError> {
    let factors = state
        .store
        .factors(&user.session.user_id, state.now())
        .await?
        .into_iter()
        .map(FactorView::from)
        .collect();
    Ok(Json(FactorList { factors }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateFactor {
    /// `totp`, `email`, `sms`, `magic_link` or `webauthn`.
    #[serde(rename = "type")]
    #[schema(example = "totp")]
    factor_type: String,
    friendly_name: Option<String>,
    /// For `email` and `magic_link`; the account's address when absent.
    email: Option<String>,
    /// For `sms`, in E.164; the account's number when absent.
    phone: Option<String>,
    /// Re-authentication, when the login is older than ten minutes.
    #[schema(value_type = Option<String>)]
    current_password: Option<SecretString>,
}

/// A new, pending factor: for TOTP its secret, URI and QR codes (shown once); for
/// WebAuthn the options for the browser; for the others the code or link just sent.
#[derive(Serialize, ToSchema)]
struct CreatedFactor {
    #[serde(flatten)]
    factor: FactorView,
    #[serde(skip_serializing_if = "Option::is_none")]
    totp: Option<TotpSetup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge: Option<SentChallenge>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webauthn: Option<WebauthnSetup>,
}

#[derive(Serialize, ToSchema)]
struct WebauthnSetup {
    /// The `PublicKeyCredentialCreationOptions` (its JSON form, binary values in
    /// base64url) to pass to `navigator.credentials.create({publicKey})`, through
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` in browsers that have it.
    /// Valid for 5 minutes.
    #[schema(value_type = Object)]
    creation_options: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
struct TotpSetup {
    /// Base32.
    secret: String,
    otpauth_uri: String,
    /// A PNG data URL.
    qr_png: String,
    /// An SVG document.
    qr_svg: String,
}

#[derive(Serialize, ToSchema)]
struct SentChallenge {
    id: String,
    /// The destination, masked.
    sent_to: String,
    expires_in: i64,
}

/// Adds a factor; confirm it with `/verify` and a code from it.
#[utoipa::path(post, path = "/v1/me/factors", tag = "factors", security(("bearer" = [])),
    request_body = CreateFactor,
    responses(
        (status = 201, description = "A pending factor.", body = CreatedFactor),
        (status = 403, description = "A recent login (with the second factor, when there is one) or `current_password` is needed.",
            body = ErrorBody),
        (status = 409, description = "The account has `mfa.max_factors_per_user` factors (`too_many_factors`).",
            body = ErrorBody),
        (status = 429, description = "Too many codes sent: to this destination, for this user, from this client, or texts by the whole service.",
            body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    JsonBody(body): JsonBody<CreateFactor>,
) -> Result<(StatusCode, Json<CreatedFactor>), ApiError> {
    let Some(factor_type) = FactorType::parse(&body.factor_type) else {
        let names: Vec<&str> = FactorType::ALL.iter().map(|kind| kind.as_str()).collect();
        return Err(ApiError::field(ErrorCode::InvalidField, "type")
            .with_message(format!("type must be one of: {}.", names.join(", "))));
    };
    let stray = match factor_type {
        FactorType::Totp => [("email", body.email.is_some()), ("phone", body.phone.is_some())]
            .into_iter()
            .find(|(_, given)| *given),
        FactorType::Sms => body.email.is_some().then_some(("email", true)),
        FactorType::Email | FactorType::MagicLink | FactorType::Webauthn => {
            body.phone.is_some().then_some(("phone", true))
        }
    };
    if let Some((field, _)) = stray {
        return Err(ApiError::field(ErrorCode::InvalidField, field)
            .with_message(format!("`{field}` does not apply to {factor_type} factors.")));
    }
    let account = accounts::session_user(&state, &user.session.user_id).await?;
    if factor_type == FactorType::Webauthn {
        let by = reauth::require_recent_authentication(&state, &user.session, body.current_password).await?;
        let (factor, creation_options) =
            enrolment::enroll_webauthn(&state, &by, &account, body.friendly_name, &meta).await?;
        let webauthn = Some(WebauthnSetup { creation_options });
        let created = CreatedFactor { factor: factor.into(), totp: None, challenge: None, webauthn };
        return Ok((StatusCode::CREATED, Json(created)));
    }
    if factor_type != FactorType::Totp {
        // The destination is checked before re-authentication so a typo is reported
        // even when the login is old.
        let destination = challenges::contact_destination(
            &state,
            &account,
            factor_type,
            body.email.as_deref(),
            body.phone.as_deref(),
        )?;
        let by = reauth::require_recent_authentication(&state, &user.session, body.current_password).await?;
        let (factor, sent) = enrolment::enroll_contact(
            &state,
            &by,
            &account,
            factor_type,
            destination,
            body.friendly_name,
            &meta,
        )
        .await?;
        let challenge =
            SentChallenge { id: sent.challenge_id, sent_to: sent.sent_to, expires_in: sent.expires_in };
        let created =
            CreatedFactor { factor: factor.into(), totp: None, challenge: Some(challenge), webauthn: None };
        return Ok((StatusCode::CREATED, Json(created)));
    }
    let by = reauth::require_recent_authentication(&state, &user.session, body.current_password).await?;
    let enrollment = enrolment::enroll_totp(&state, &by, &account, body.friendly_name, &meta).await?;
    let totp = TotpSetup {
        secret: enrollment.secret.to_string(),
        otpauth_uri: enrollment.otpauth_uri.to_string(),
        qr_png: enrollment.qr_png.to_string(),
        qr_svg: enrollment.qr_svg.to_string(),
    };
    let created =
        CreatedFactor { factor: enrollment.factor.into(), totp: Some(totp), challenge: None, webauthn: None };
    Ok((StatusCode::CREATED, Json(created)))
}

/// `code` for a TOTP, email, SMS or magic-link factor; `credential` for a WebAuthn one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct VerifyFactor {
    #[schema(value_type = Option<String>, example = "123456")]
    code: Option<SecretString>,
    /// The browser's answer to `navigator.credentials.create`, as JSON
    /// (`PublicKeyCredential.toJSON()`).
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
struct Confirmed {
    factor: FactorView,
    /// With the first factor only: one-time recovery codes, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
struct RecoveryCodeList {
    /// One-time codes, shown once; the old ones stop working.
    recovery_codes: Vec<String>,
}

/// Confirms a pending factor with a code from it.
#[utoipa::path(post, path = "/v1/me/factors/{id}/verify", tag = "factors", security(("bearer" = [])),
    params(("id" = String, Path, description = "The factor's id.")),
    request_body = VerifyFactor,
    responses(
        (status = 200, description = "The factor is active.", body = Confirmed),
        (status = 403, description = "The second factor is locked.", body = ErrorBody),
        (status = 404, description = "No factor of yours has this id.", body = ErrorBody),
        (status = 409, description = "The factor is already active.", body = ErrorBody),
        (status = 429, description = "Too many attempts.", body = ErrorBody),
    ))]
async fn verify(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<VerifyFactor>,
) -> Result<Json<Confirmed>, ApiError> {
    use secrecy::ExposeSecret;
    let proof = match (&body.code, &body.credential) {
        (Some(code), None) => Enrolment::Code(code.expose_secret()),
        (None, Some(credential)) => Enrolment::Credential(credential),
        (None, None) => return Err(ApiError::field(ErrorCode::MissingField, "code")),
        (Some(_), Some(_)) => {
            return Err(ApiError::field(ErrorCode::InvalidField, "credential")
                .with_message("Give `code` or `credential`, not both."));
        }
    };
    let (factor, recovery_codes) =
        factors::confirm(&state, &user.session, &id, proof, RecoveryCodes::IssueWithFirstFactor, &meta)
            .await?;
    Ok(Json(Confirmed { factor: factor.into(), recovery_codes }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Rename {
    friendly_name: String,
}

/// Renames a factor.
#[utoipa::path(patch, path = "/v1/me/factors/{id}", tag = "factors", security(("bearer" = [])),
    params(("id" = String, Path, description = "The factor's id.")),
    request_body = Rename,
    responses(
        (status = 200, description = "The renamed factor.", body = FactorView),
        (status = 404, description = "No factor of yours has this id.", body = ErrorBody),
    ))]
async fn rename(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Rename>,
) -> Result<Json<FactorView>, ApiError> {
    let factor = factors::rename(&state, &user.session.user_id, &id, &body.friendly_name).await?;
    Ok(Json(factor.into()))
}

/// An optional body: the password, when the login is older than ten minutes.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct Reauth {
    #[schema(value_type = Option<String>)]
    current_password: Option<SecretString>,
}

/// Removes a factor.
#[utoipa::path(delete, path = "/v1/me/factors/{id}", tag = "factors", security(("bearer" = [])),
    params(("id" = String, Path, description = "The factor's id.")),
    request_body(content = Option<Reauth>),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "A recent login (with the second factor, when there is one) or `current_password` is needed.",
            body = ErrorBody),
        (status = 404, description = "No factor of yours has this id.", body = ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<Reauth>,
) -> Result<StatusCode, ApiError> {
    let user_id = user.session.user_id.clone();
    state.store.factor(&user_id, &id, state.now()).await?.ok_or(ErrorCode::FactorNotFound)?;
    let by = reauth::require_recent_authentication(
        &state,
        &user.session,
        body.unwrap_or_default().current_password,
    )
    .await?;
    factors::remove(&state, &by, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new set of recovery codes; the old set stops working.
#[utoipa::path(post, path = "/v1/me/recovery-codes", tag = "factors", security(("bearer" = [])),
    request_body(content = Option<Reauth>),
    responses(
        (status = 200, description = "The new codes.", body = RecoveryCodeList),
        (status = 403, description = "A recent login (with the second factor, when there is one) or `current_password` is needed.",
            body = ErrorBody),
        (status = 409, description = "The user has no active second factor.", body = ErrorBody),
    ))]
async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    OptionalJsonBody(body): OptionalJsonBody<Reauth>,
) -> Result<Json<RecoveryCodeList>, ApiError> {
    let by = reauth::require_recent_authentication(
        &state,
        &user.session,
        body.unwrap_or_default().current_password,
    )
    .await?;
    let recovery_codes = recovery_codes::regenerate(&state, &by, &meta).await?;
    Ok(Json(RecoveryCodeList { recovery_codes }))
}
