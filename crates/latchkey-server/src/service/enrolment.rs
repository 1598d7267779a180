//! Setting a factor up: a new pending factor of each kind, with what the user needs to
//! confirm it (a TOTP secret and its QR code, WebAuthn creation options, a code or
//! link sent to an address or phone). `factors` confirms, removes and resets them.

use latchkey_core::base32;
use latchkey_core::factor::FactorStatus;
use latchkey_core::factor::FactorType;
use latchkey_core::totp::{self, SECRET_BYTES};
use latchkey_store::{ChallengePurpose, Channel, Factor, NewFactor, TotpSettings, User};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::audit::{self, Event};
use crate::service::challenges::{self, Send, Sent};
use crate::service::notify::{self, Notice};
use crate::service::reauth::Authorized;
use crate::service::second_factor::secret_context;
use crate::service::{factors, webauthn};
use crate::state::AppState;
use crate::{keys, qr, random};

/// A new TOTP factor with everything the user needs to add it to an app. The secret is
/// shown only in this response.
pub struct TotpEnrollment {
    pub factor: Factor,
    pub secret: Zeroizing<String>,
    pub otpauth_uri: Zeroizing<String>,
    pub qr_png: Zeroizing<String>,
    pub qr_svg: Zeroizing<String>,
}

/// Checks a friendly name: 1–100 characters, no control characters.
pub fn check_friendly_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ErrorCode::InvalidFriendlyName.into());
    }
    Ok(name.to_owned())
}

/// Refuses a leave given for another user than the one being changed (a programming
/// error, never a client's).
pub(crate) fn authorized_for(by: &Authorized, user: &User) -> Result<(), ApiError> {
    if by.user_id() == user.id {
        Ok(())
    } else {
        Err(ApiError::internal(anyhow::anyhow!("a factor change authorised for another user")))
    }
}

/// Refuses a new factor of `factor_type` to a user who has as many factors as
/// `mfa.max_factors_per_user` allows; a pending one of the type does not count, since
/// the new one replaces it.
async fn ensure_room(state: &AppState, user_id: &str, factor_type: FactorType) -> Result<(), ApiError> {
    let kept = state
        .store
        .factors(user_id, state.now())
        .await?
        .iter()
        .filter(|f| f.status == FactorStatus::Active || f.factor_type != factor_type)
        .count();
    if kept >= state.config.mfa.max_factors_per_user {
        return Err(ErrorCode::TooManyFactors.into());
    }
    Ok(())
}

/// Creates a pending TOTP factor (replacing any pending one) with a fresh 160-bit
/// secret, sealed at rest.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id))]
pub async fn enroll_totp(
    state: &AppState,
    by: &Authorized,
    user: &User,
    friendly_name: Option<String>,
    meta: &ClientMeta,
) -> Result<TotpEnrollment, ApiError> {
    authorized_for(by, user)?;
    let friendly_name = friendly_name.map(|n| check_friendly_name(&n)).transpose()?;
    ensure_room(state, &user.id, FactorType::Totp).await?;
    let now = state.now();
    let id = Uuid::now_v7().to_string();
    let key = Zeroizing::new(random::bytes::<SECRET_BYTES>());
    let secret = keys::seal_secret(&state.keys, key.as_slice(), &secret_context(&user.id, &id))
        .map_err(ApiError::internal)?;
    let params = state.totp;
    let factor = state
        .store
        .create_pending_factor(&NewFactor {
            id,
            user_id: user.id.clone(),
            factor_type: FactorType::Totp,
            friendly_name,
            secret: Some(secret),
            totp: Some(TotpSettings {
                algorithm: params.algorithm.as_str().into(),
                digits: i64::from(params.digits),
                period: i64::from(params.period),
            }),
            destination: None,
            created_at: now,
            expires_at: now + state.config.mfa.pending_factor_ttl_secs,
        })
        .await?;
    let otpauth_uri = totp::otpauth_uri(&state.config.totp.issuer, &user.email, key.as_slice(), params);
    let (qr_png, qr_svg) = qr::render(&otpauth_uri).map_err(ApiError::internal)?;
    audit::record(state, Event::new("factor.enrolled", &user.id, meta).factor(&factor.id, FactorType::Totp))
        .await;
    Ok(TotpEnrollment {
        factor,
        secret: Zeroizing::new(base32::encode(key.as_slice())),
        otpauth_uri,
        qr_png,
        qr_svg,
    })
}

/// A new pending factor of `factor_type` for `user`, lapsing after
/// `mfa.pending_factor_ttl_secs`, with nothing type-specific set.
fn pending(
    state: &AppState,
    user: &User,
    factor_type: FactorType,
    friendly_name: Option<String>,
) -> NewFactor {
    let now = state.now();
    NewFactor {
        id: Uuid::now_v7().to_string(),
        user_id: user.id.clone(),
        factor_type,
        friendly_name,
        secret: None,
        totp: None,
        destination: None,
        created_at: now,
        expires_at: now + state.config.mfa.pending_factor_ttl_secs,
    }
}

/// Creates a pending WebAuthn factor (replacing any pending one) and starts its
/// registration; returns it with the `PublicKeyCredentialCreationOptions` the browser
/// needs. `factors::confirm` finishes it with the browser's answer.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id))]
pub async fn enroll_webauthn(
    state: &AppState,
    by: &Authorized,
    user: &User,
    friendly_name: Option<String>,
    meta: &ClientMeta,
) -> Result<(Factor, serde_json::Value), ApiError> {
    authorized_for(by, user)?;
    let friendly_name = friendly_name.map(|n| check_friendly_name(&n)).transpose()?;
    ensure_room(state, &user.id, FactorType::Webauthn).await?;
    let factor =
        state.store.create_pending_factor(&pending(state, user, FactorType::Webauthn, friendly_name)).await?;
    let options = webauthn::start_registration(state, user, &factor).await?;
    audit::record(
        state,
        Event::new("factor.enrolled", &user.id, meta).factor(&factor.id, FactorType::Webauthn),
    )
    .await;
    Ok((factor, options))
}

/// Creates a pending email, SMS or magic-link factor (replacing a pending one of the
/// type) and sends it a code; the code confirms the factor. Sends are throttled per
/// destination.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id))]
pub async fn enroll_contact(
    state: &AppState,
    by: &Authorized,
    user: &User,
    factor_type: FactorType,
    destination: String,
    friendly_name: Option<String>,
    meta: &ClientMeta,
) -> Result<(Factor, Sent), ApiError> {
    authorized_for(by, user)?;
    let friendly_name = friendly_name.map(|n| check_friendly_name(&n)).transpose()?;
    ensure_room(state, &user.id, factor_type).await?;
    // The throttle is checked first, so a refused send leaves no factor behind.
    let channel = if factor_type == FactorType::Sms { Channel::Sms } else { Channel::Email };
    let send = Send { destination: &destination, channel, user_id: Some(&user.id), meta };
    challenges::claim_send(state, send).await?;
    let factor =
        NewFactor { destination: Some(destination), ..pending(state, user, factor_type, friendly_name) };
    let factor = state.store.create_pending_factor(&factor).await?;
    let sent = challenges::send_code(state, &factor, ChallengePurpose::Enroll, None, meta).await?;
    audit::record(state, Event::new("factor.enrolled", &user.id, meta).factor(&factor.id, factor_type)).await;
    Ok((factor, sent))
}

/// Creates a pending magic-link factor for `destination` (replacing a pending one) and
/// emails it an activation link instead of a code (Flashback's setup): opening the link
/// turns the factor on (`factors::activate_by_link`). Sends are throttled as codes are.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id))]
pub async fn enroll_magic_link_by_link(
    state: &AppState,
    by: &Authorized,
    user: &User,
    destination: String,
    meta: &ClientMeta,
) -> Result<Factor, ApiError> {
    authorized_for(by, user)?;
    ensure_room(state, &user.id, FactorType::MagicLink).await?;
    let send = Send { destination: &destination, channel: Channel::Email, user_id: Some(&user.id), meta };
    challenges::claim_send(state, send).await?;
    let factor = NewFactor {
        destination: Some(destination.clone()),
        ..pending(state, user, FactorType::MagicLink, None)
    };
    let factor = state.store.create_pending_factor(&factor).await?;
    challenges::send_link(state, &user.id, &destination, Some(&factor), ChallengePurpose::Enroll, None, meta)
        .await?;
    audit::record(
        state,
        Event::new("factor.enrolled", &user.id, meta).factor(&factor.id, FactorType::MagicLink),
    )
    .await;
    Ok(factor)
}

/// Replaces the user's TOTP factors with a new one that is active at once, for
/// surfaces with no confirmation step (Prisme.ai). Sessions that never passed a second
/// factor, other than `keep_session`, end.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id))]
pub async fn replace_totp_unconfirmed(
    state: &AppState,
    by: &Authorized,
    user: &User,
    keep_session: &str,
    meta: &ClientMeta,
) -> Result<TotpEnrollment, ApiError> {
    authorized_for(by, user)?;
    let now = state.now();
    for factor in factors::active_factors(state, &user.id)
        .await?
        .into_iter()
        .filter(|f| f.factor_type == FactorType::Totp)
    {
        state.store.delete_factor(&user.id, &factor.id).await?;
    }
    let enrollment = enroll_totp(state, by, user, None, meta).await?;
    if !state.store.activate_factor(&user.id, &enrollment.factor.id, None, now).await? {
        return Err(ApiError::internal(anyhow::anyhow!("a new TOTP factor could not be activated")));
    }
    audit::record(
        state,
        Event::new("factor.confirmed", &user.id, meta).factor(&enrollment.factor.id, FactorType::Totp),
    )
    .await;
    notify::send(state, &user.id, Notice::FactorAdded { factor_type: FactorType::Totp }, meta).await;
    state.store.revoke_other_sessions(&user.id, Some(keep_session), now).await?;
    Ok(enrollment)
}
