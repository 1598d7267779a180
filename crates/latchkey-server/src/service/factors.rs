//! The factor lifecycle after set-up (`enrolment`): confirmation (active, with the
//! first factor's recovery codes), the user's factors and preferred type, removal and
//! reset.

use latchkey_core::crypto::HashPurpose;
use latchkey_core::factor::{FactorStatus, FactorType};
use latchkey_core::recovery;
use latchkey_core::totp;
use latchkey_core::{UnixTime, base32};
use latchkey_store::{ChallengePurpose, Factor, Session};
use zeroize::Zeroizing;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::audit::{self, Event};
use crate::service::challenges;
use crate::service::notify::{self, Notice};
use crate::service::reauth::Authorized;
use crate::service::second_factor::{self, Attempt, Method, factor_params, open_totp_secret};
use crate::service::{enrolment, recovery_codes, sessions, webauthn};
use crate::state::AppState;

/// The user's confirmed factors, oldest first.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn active_factors(state: &AppState, user_id: &str) -> Result<Vec<Factor>, ApiError> {
    Ok(state
        .store
        .factors(user_id, state.now())
        .await?
        .into_iter()
        .filter(|f| f.status == FactorStatus::Active)
        .collect())
}

/// The user's factors, pending (unexpired) and active, oldest first.
pub async fn all_factors(state: &AppState, user_id: &str) -> Result<Vec<Factor>, ApiError> {
    Ok(state.store.factors(user_id, state.now()).await?)
}

/// The factor type the user prefers to be asked for first, when they still have an
/// active factor of it.
pub async fn preferred_type(state: &AppState, user_id: &str) -> Result<Option<FactorType>, ApiError> {
    let preferred = state.store.preferred_factor_type(user_id).await?.as_deref().and_then(FactorType::parse);
    Ok(match preferred {
        Some(factor_type) if has_active(state, user_id, Some(factor_type)).await? => Some(factor_type),
        _ => None,
    })
}

/// Makes `factor_type`, of which the user has an active factor, the one they prefer.
pub async fn set_preferred_type(
    state: &AppState,
    user_id: &str,
    factor_type: FactorType,
) -> Result<(), ApiError> {
    if !has_active(state, user_id, Some(factor_type)).await? {
        return Err(ErrorCode::FactorNotFound.into());
    }
    Ok(state.store.set_preferred_factor_type(user_id, Some(factor_type.as_str())).await?)
}

/// Whether the user has a confirmed factor of `factor_type` (any type when `None`).
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn has_active(
    state: &AppState,
    user_id: &str,
    factor_type: Option<FactorType>,
) -> Result<bool, ApiError> {
    Ok(active_factors(state, user_id).await?.iter().any(|f| factor_type.is_none_or(|t| f.factor_type == t)))
}

/// The user's newest pending, unexpired factor of `factor_type`.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn pending_of_type(
    state: &AppState,
    user_id: &str,
    factor_type: FactorType,
) -> Result<Option<Factor>, ApiError> {
    Ok(state
        .store
        .factors(user_id, state.now())
        .await?
        .into_iter()
        .rev()
        .find(|f| f.status == FactorStatus::Pending && f.factor_type == factor_type))
}

/// Before a setup, on surfaces that allow one factor of a kind: `factor_already_active`
/// when the user has an active factor of `factor_type` (of any type when `None`).
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn ensure_not_enabled(
    state: &AppState,
    user_id: &str,
    factor_type: Option<FactorType>,
) -> Result<(), ApiError> {
    if has_active(state, user_id, factor_type).await? {
        return Err(ErrorCode::FactorAlreadyActive.into());
    }
    Ok(())
}

/// The pending factor a two-step setup continues: `factor_already_active` when a factor
/// of `factor_type` is on already, `factor_not_found` when no setup was started (or it
/// lapsed).
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn pending_setup(
    state: &AppState,
    user_id: &str,
    factor_type: FactorType,
) -> Result<Factor, ApiError> {
    ensure_not_enabled(state, user_id, Some(factor_type)).await?;
    pending_of_type(state, user_id, factor_type).await?.ok_or_else(|| ErrorCode::FactorNotFound.into())
}

/// Turns on the pending factor whose activation link was just opened (and spent): the
/// link proves the address. With no session at hand, when it is the user's first
/// factor every session ends — they never passed a second factor the account now
/// requires. `None` when the factor is gone or active already.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
pub async fn activate_by_link(
    state: &AppState,
    user_id: &str,
    factor_id: &str,
    meta: &ClientMeta,
) -> Result<Option<Factor>, ApiError> {
    let now = state.now();
    let Some(factor) = state.store.factor(user_id, factor_id, now).await? else { return Ok(None) };
    if factor.status != FactorStatus::Pending
        || !state.store.activate_factor(user_id, factor_id, None, now).await?
    {
        return Ok(None);
    }
    activated(state, user_id, &factor, None, meta).await?;
    Ok(state.store.factor(user_id, factor_id, now).await?)
}

/// What confirming the first factor does about recovery codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryCodes {
    /// Issue a new set and return it (the native API).
    IssueWithFirstFactor,
    /// A set was already issued at setup (Mudbase returns them with the secret).
    IssuedAtSetup,
}

/// What confirms a pending factor: a code from it, or (WebAuthn) the browser's answer
/// to its registration.
#[derive(Clone, Copy)]
pub enum Enrolment<'a> {
    Code(&'a str),
    Credential(&'a serde_json::Value),
}

/// Whether `proof` is right for the pending `factor`: `Some(step)` with the TOTP step
/// to record (`None` for a sent code, which this spends, or a credential, which this
/// stores), or `None` when it is not (with why, for a credential).
async fn check_enrolment(
    state: &AppState,
    factor: &Factor,
    proof: Enrolment<'_>,
    now: UnixTime,
) -> Result<Result<Option<i64>, Option<webauthn::Refusal>>, ApiError> {
    let code = match (factor.factor_type, proof) {
        (FactorType::Webauthn, Enrolment::Credential(credential)) => {
            return Ok(webauthn::finish_registration(state, factor, credential)
                .await?
                .map(|()| None)
                .map_err(Some));
        }
        (FactorType::Webauthn, Enrolment::Code(_)) => {
            return Err(ApiError::field(ErrorCode::MissingField, "credential")
                .with_message("A WebAuthn factor is confirmed with `credential`, the browser's answer."));
        }
        (_, Enrolment::Credential(_)) => {
            return Err(ApiError::field(ErrorCode::MissingField, "code")
                .with_message("This factor is confirmed with `code`."));
        }
        (_, Enrolment::Code(code)) => code,
    };
    Ok(check_enrolment_code(state, factor, code, now).await?.ok_or(None))
}

/// Whether `code` is right for the pending `factor`: `Some(step)` with the TOTP step
/// to record (`None` for a sent code, which this spends), or `None` when it is not.
async fn check_enrolment_code(
    state: &AppState,
    factor: &Factor,
    code: &str,
    now: UnixTime,
) -> Result<Option<Option<i64>>, ApiError> {
    match factor.factor_type {
        FactorType::Totp => {
            let key = open_totp_secret(state, factor)?;
            Ok(match totp::verify(&key, factor_params(factor)?, code, now, None) {
                totp::Check::Accepted { step } => Some(Some(step)),
                totp::Check::Replayed | totp::Check::Invalid => None,
            })
        }
        FactorType::Email | FactorType::Sms | FactorType::MagicLink => {
            let right = challenges::check_code(state, factor, ChallengePurpose::Enroll, None, code).await?;
            Ok(right.then_some(None))
        }
        FactorType::Webauthn => Ok(None),
    }
}

/// The user's pending, unexpired factor `factor_id`.
async fn pending_factor(state: &AppState, user_id: &str, factor_id: &str) -> Result<Factor, ApiError> {
    let factor =
        state.store.factor(user_id, factor_id, state.now()).await?.ok_or(ErrorCode::FactorNotFound)?;
    if factor.status == FactorStatus::Active {
        return Err(ErrorCode::FactorAlreadyActive.into());
    }
    Ok(factor)
}

/// Confirms a pending factor with a code from it. The confirming code's time step is
/// recorded, so it cannot be used again. When this is the user's first active factor,
/// recovery codes are issued (per `codes`), the confirming session is raised to
/// `aal2`, and the user's other sessions end.
#[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor_id))]
pub async fn confirm(
    state: &AppState,
    session: &Session,
    factor_id: &str,
    proof: Enrolment<'_>,
    codes: RecoveryCodes,
    meta: &ClientMeta,
) -> Result<(Factor, Option<Vec<String>>), ApiError> {
    let user_id = session.user_id.as_str();
    let now = state.now();
    let factor = pending_factor(state, user_id, factor_id).await?;
    let failures = second_factor::claim_attempt(state, user_id, meta).await?;
    let (confirmed, refusal) = match check_enrolment(state, &factor, proof, now).await? {
        Ok(step) => (state.store.activate_factor(user_id, factor_id, step, now).await?, None),
        Err(refusal) => (false, refusal),
    };
    if !confirmed {
        let event = Event::new("factor.confirmed", user_id, meta).factor(factor_id, factor.factor_type);
        let error = second_factor::failed(state, user_id, failures, Attempt::Setup, event).await;
        return Err(refusal.map_or(error, webauthn::Refusal::error));
    }
    second_factor::succeeded(state, user_id, meta).await?;
    let first = activated(state, user_id, &factor, Some(session), meta).await?;
    let recovery_codes = match codes {
        RecoveryCodes::IssueWithFirstFactor if first => {
            Some(recovery_codes::issue(state, user_id, now).await?)
        }
        _ => None,
    };
    let factor = state.store.factor(user_id, factor_id, now).await?.ok_or(ErrorCode::FactorNotFound)?;
    Ok((factor, recovery_codes))
}

/// The first step of a two-step confirmation (the Lerian surface): checks a code from
/// the pending factor and marks it verified, recording a TOTP code's step so it
/// cannot be used again. [`enable_verified`] then activates it.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
pub async fn verify_pending(
    state: &AppState,
    user_id: &str,
    factor_id: &str,
    code: &str,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    let now = state.now();
    let factor = pending_factor(state, user_id, factor_id).await?;
    let failures = second_factor::claim_attempt(state, user_id, meta).await?;
    let verified = match check_enrolment_code(state, &factor, code, now).await? {
        Some(step) => state.store.verify_pending_factor(user_id, factor_id, step, now).await?,
        None => false,
    };
    let event = Event::new("factor.verified", user_id, meta).factor(factor_id, factor.factor_type);
    if !verified {
        return Err(second_factor::failed(state, user_id, failures, Attempt::Setup, event).await);
    }
    second_factor::succeeded(state, user_id, meta).await?;
    audit::record(state, event).await;
    Ok(())
}

/// The second step: activates a verified pending factor once the user shows one of
/// their recovery codes (issued at setup), which is spent. `session` is the caller's
/// own session, raised to `aal2` when this is the user's first factor; an
/// administrator's call (`None`) ends all the user's sessions instead.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, factor_id = %factor_id))]
pub async fn enable_verified(
    state: &AppState,
    user_id: &str,
    factor_id: &str,
    recovery_code: &str,
    session: Option<&Session>,
    meta: &ClientMeta,
) -> Result<Factor, ApiError> {
    let now = state.now();
    let factor = pending_factor(state, user_id, factor_id).await?;
    if factor.verified_at.is_none() {
        return Err(ErrorCode::FactorNotVerified.into());
    }
    let failures = second_factor::claim_attempt(state, user_id, meta).await?;
    let spent = match recovery::normalize(recovery_code) {
        Some(canonical) => {
            let hash = state.keys.hashing.hash(HashPurpose::RecoveryCode, canonical.as_bytes());
            state.store.consume_recovery_code(user_id, &hash, now).await?
        }
        None => false,
    };
    if !spent {
        let event = Event::new("factor.confirmed", user_id, meta).factor(factor_id, factor.factor_type);
        return Err(second_factor::failed(state, user_id, failures, Attempt::Setup, event).await);
    }
    second_factor::succeeded(state, user_id, meta).await?;
    if !state.store.activate_verified_factor(user_id, factor_id, now).await? {
        return Err(ErrorCode::FactorNotFound.into());
    }
    activated(state, user_id, &factor, session, meta).await?;
    Ok(state.store.factor(user_id, factor_id, now).await?.ok_or(ErrorCode::FactorNotFound)?)
}

/// Whether `presented` is the secret of the pending TOTP `factor` (any case, spaces
/// and padding ignored), compared in constant time. Other factor types have no
/// secret to show, so only an empty one matches them.
pub fn pending_secret_matches(state: &AppState, factor: &Factor, presented: &str) -> Result<bool, ApiError> {
    let presented: String = presented
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if factor.factor_type != FactorType::Totp {
        return Ok(presented.is_empty());
    }
    let secret = Zeroizing::new(base32::encode(open_totp_secret(state, factor)?.as_slice()));
    Ok(latchkey_core::crypto::constant_time_eq(secret.as_bytes(), presented.as_bytes()))
}

/// What follows a factor's activation: the audit event and notice, and when it is the
/// user's first factor, `session` raised to `aal2` and every other session ended.
/// Returns whether it was the first.
async fn activated(
    state: &AppState,
    user_id: &str,
    factor: &Factor,
    session: Option<&Session>,
    meta: &ClientMeta,
) -> Result<bool, ApiError> {
    let factor_type = factor.factor_type;
    audit::record(state, Event::new("factor.confirmed", user_id, meta).factor(&factor.id, factor_type)).await;
    notify::send(state, user_id, Notice::FactorAdded { factor_type }, meta).await;
    let first = active_factors(state, user_id).await?.len() == 1;
    if first {
        let method = Method::of_factor(factor_type);
        match session {
            Some(session) => raise_session(state, session, method, state.now()).await?,
            None => {
                state.store.revoke_other_sessions(user_id, None, state.now()).await?;
            }
        }
    }
    Ok(first)
}

/// The session that just proved a second factor is raised to `aal2`; sessions that
/// never did end, since the account now requires one.
async fn raise_session(
    state: &AppState,
    session: &Session,
    method: Method,
    now: UnixTime,
) -> Result<(), ApiError> {
    sessions::raise(state, session, method.amr()).await?;
    let ended = state.store.revoke_other_sessions(&session.user_id, Some(&session.id), now).await?;
    if ended > 0 {
        tracing::info!(user_id = %session.user_id, ended, "ended sessions that predate the first second factor");
    }
    Ok(())
}

/// Gives one of the user's factors a new name (checked as at setup).
#[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor_id))]
pub async fn rename(
    state: &AppState,
    user_id: &str,
    factor_id: &str,
    name: &str,
) -> Result<Factor, ApiError> {
    let name = enrolment::check_friendly_name(name)?;
    if !state.store.rename_factor(user_id, factor_id, &name).await? {
        return Err(ErrorCode::FactorNotFound.into());
    }
    Ok(state.store.factor(user_id, factor_id, state.now()).await?.ok_or(ErrorCode::FactorNotFound)?)
}

/// Removes one of the user's factors (the last active one takes the recovery codes
/// with it).
#[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor_id))]
pub async fn remove(
    state: &AppState,
    by: &Authorized,
    factor_id: &str,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    let (user_id, actor) = (by.user_id(), by.actor());
    let factor =
        state.store.factor(user_id, factor_id, state.now()).await?.ok_or(ErrorCode::FactorNotFound)?;
    let removal = state.store.delete_factor(user_id, factor_id).await?;
    if !removal.removed {
        return Err(ErrorCode::FactorNotFound.into());
    }
    let event =
        Event::new("factor.removed", user_id, meta).factor(factor_id, factor.factor_type).actor(actor);
    audit::record(state, event).await;
    if factor.status == FactorStatus::Active {
        notify::send(state, user_id, Notice::FactorRemoved { factor_type: factor.factor_type }, meta).await;
        sessions::end_others(state, by, meta).await?;
    }
    Ok(())
}

/// Removes every factor and recovery code and clears the lockout: an administrator's
/// reset (`actor` set), or the user turning MFA off after re-authenticating.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn reset_all(state: &AppState, by: &Authorized, meta: &ClientMeta) -> Result<u64, ApiError> {
    let (user_id, actor) = (by.user_id(), by.actor());
    let removed = state.store.delete_all_factors(user_id).await?;
    let event_type = if actor.is_some() { "factors.reset" } else { "mfa.disabled" };
    audit::record(state, Event::new(event_type, user_id, meta).actor(actor)).await;
    if removed > 0 {
        notify::send(state, user_id, Notice::MfaDisabled, meta).await;
        sessions::end_others(state, by, meta).await?;
    }
    Ok(removed)
}
