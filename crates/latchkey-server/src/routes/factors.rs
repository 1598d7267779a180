//! `/v1/me/factors` and `/v1/me/recovery-codes`: the signed-in user's second factors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use latchkey_store::Factor;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{AuthUser, ClientMeta, JsonBody, OptionalJsonBody};
use crate::service::factors::RecoveryCodes;
use crate::service::{accounts, factors, reauth};
use crate::state::AppState;
use latchkey_core::challenge;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/factors", get(list).post(create))
        .route("/v1/me/factors/{id}", patch(rename).delete(remove))
        .route("/v1/me/factors/{id}/verify", post(verify))
        .route("/v1/me/recovery-codes", post(regenerate_recovery_codes))
}

/// A factor as the API shows it; secrets never appear here.
#[derive(Serialize)]
pub struct FactorView {
    pub id: String,
    #[serde(rename = "type")]
    pub factor_type: String,
    pub status: String,
    pub friendly_name: Option<String>,
    /// Where codes or links go, masked (`a***@example.com`, `+*********23`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// NIST SP 800-63B restricted authenticator (email, SMS): apps may steer people
    /// to TOTP or passkeys.
    pub restricted: bool,
    pub created_at: String,
    pub confirmed_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<Factor> for FactorView {
    fn from(factor: Factor) -> Self {
        let destination =
            factor.destination.as_deref().map(|d| challenge::mask_destination(&factor.factor_type, d));
        Self {
            id: factor.id,
            restricted: challenge::is_restricted(&factor.factor_type),
            destination,
            factor_type: factor.factor_type,
            status: factor.status,
            friendly_name: factor.friendly_name,
            created_at: rfc3339(factor.created_at),
            confirmed_at: factor.confirmed_at.map(rfc3339),
            last_used_at: factor.last_used_at.map(rfc3339),
        }
    }
}

async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let factors: Vec<FactorView> = state
        .store
        .factors(&user.session.user_id, state.now())
        .await?
        .into_iter()
        .map(FactorView::from)
        .collect();
    Ok(Json(json!({ "factors": factors })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFactor {
    #[serde(rename = "type")]
    factor_type: String,
    friendly_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    current_password: Option<SecretString>,
}

async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    JsonBody(body): JsonBody<CreateFactor>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !factors::TYPES.contains(&body.factor_type.as_str()) {
        return Err(ApiError::field(ErrorCode::InvalidField, "type")
            .with_message(format!("type must be one of: {}.", factors::TYPES.join(", "))));
    }
    let factor_type = body.factor_type.as_str();
    if factor_type == "webauthn" {
        return Err(ApiError::new(ErrorCode::UnsupportedFactorType)
            .with_message("Passkeys (webauthn) are not available on this server yet."));
    }
    let stray = match factor_type {
        "totp" => [("email", body.email.is_some()), ("phone", body.phone.is_some())]
            .into_iter()
            .find(|(_, given)| *given),
        "sms" => body.email.is_some().then_some(("email", true)),
        _ => body.phone.is_some().then_some(("phone", true)),
    };
    if let Some((field, _)) = stray {
        return Err(ApiError::field(ErrorCode::InvalidField, field)
            .with_message(format!("`{field}` does not apply to {factor_type} factors.")));
    }
    let account = accounts::session_user(&state, &user.session.user_id).await?;
    if factor_type != "totp" {
        // The destination is checked before re-authentication so a typo is reported
        // even when the login is old.
        let destination = factors::contact_destination(
            &state,
            &account,
            factor_type,
            body.email.as_deref(),
            body.phone.as_deref(),
        )?;
        reauth::require_recent_authentication(&state, &user, body.current_password).await?;
        let (factor, sent) =
            factors::enroll_contact(&state, &account, factor_type, destination, body.friendly_name, &meta)
                .await?;
        let mut view = serde_json::to_value(FactorView::from(factor)).map_err(ApiError::internal)?;
        view["challenge"] =
            json!({ "id": sent.challenge_id, "sent_to": sent.sent_to, "expires_in": sent.expires_in });
        return Ok((StatusCode::CREATED, Json(view)));
    }
    reauth::require_recent_authentication(&state, &user, body.current_password).await?;
    let enrollment = factors::enroll_totp(&state, &account, body.friendly_name, &meta).await?;
    let mut view = serde_json::to_value(FactorView::from(enrollment.factor)).map_err(ApiError::internal)?;
    view["totp"] = json!({
        "secret": enrollment.secret.as_str(),
        "otpauth_uri": enrollment.otpauth_uri.as_str(),
        "qr_png": enrollment.qr_png.as_str(),
        "qr_svg": enrollment.qr_svg.as_str(),
    });
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyFactor {
    code: SecretString,
}

async fn verify(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<VerifyFactor>,
) -> Result<Json<Value>, ApiError> {
    use secrecy::ExposeSecret;
    let (factor, recovery_codes) = factors::confirm(
        &state,
        &user,
        &id,
        body.code.expose_secret(),
        RecoveryCodes::IssueWithFirstFactor,
        &meta,
    )
    .await?;
    let mut response = json!({ "factor": FactorView::from(factor) });
    if let Some(codes) = recovery_codes {
        response["recovery_codes"] = json!(codes);
    }
    Ok(Json(response))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    friendly_name: String,
}

async fn rename(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Rename>,
) -> Result<Json<FactorView>, ApiError> {
    let name = factors::check_friendly_name(&body.friendly_name)?;
    let user_id = &user.session.user_id;
    if !state.store.rename_factor(user_id, &id, &name).await? {
        return Err(ErrorCode::FactorNotFound.into());
    }
    let factor = state.store.factor(user_id, &id, state.now()).await?.ok_or(ErrorCode::FactorNotFound)?;
    Ok(Json(factor.into()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Reauth {
    current_password: Option<SecretString>,
}

async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<Reauth>,
) -> Result<StatusCode, ApiError> {
    let user_id = user.session.user_id.clone();
    state.store.factor(&user_id, &id, state.now()).await?.ok_or(ErrorCode::FactorNotFound)?;
    reauth::require_recent_authentication(&state, &user, body.unwrap_or_default().current_password).await?;
    factors::remove(&state, &user_id, &id, &meta, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    OptionalJsonBody(body): OptionalJsonBody<Reauth>,
) -> Result<Json<Value>, ApiError> {
    reauth::require_recent_authentication(&state, &user, body.unwrap_or_default().current_password).await?;
    let codes = factors::regenerate_recovery_codes(&state, &user.session.user_id, &meta).await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}
