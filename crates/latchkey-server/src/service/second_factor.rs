//! Checking a second factor: the one path every surface (login challenge, sidecar
//! verify, compatibility APIs) goes through, so replay refusal, the brute-force guard
//! and auditing are the same everywhere.

use latchkey_core::crypto::HashPurpose;
use latchkey_core::factor::{FactorStatus, FactorType};
use latchkey_core::session::Amr;
use latchkey_core::{recovery, totp};
use latchkey_store::{AttemptClaim, ChallengePurpose, Factor};
use zeroize::Zeroizing;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::keys;
use crate::service::audit::{self, Event};
use crate::service::notify::{self, Notice};
use crate::service::{challenges, factors, webauthn};
use crate::state::AppState;

/// What the user presents.
pub enum Proof<'a> {
    /// A code for one factor: what its authenticator app shows (TOTP), or the code
    /// sent to it (email, SMS). `login` is the hash of the MFA token the sent code
    /// belongs to, when the code finishes a login.
    Code {
        factor_id: &'a str,
        code: &'a str,
        login: Option<&'a [u8]>,
    },
    /// A TOTP code for whichever of the user's TOTP factors it fits.
    AnyTotp {
        code: &'a str,
    },
    RecoveryCode(&'a str),
    /// A WebAuthn factor's answer to the ceremony started for the login `login` (or,
    /// without one, for the sidecar). Without `factor_id`, the factor is the one
    /// holding the answer's credential.
    Credential {
        factor_id: Option<&'a str>,
        credential: &'a serde_json::Value,
        login: Option<&'a [u8]>,
    },
}

impl<'a> Proof<'a> {
    /// A code typed where either a TOTP code or a recovery code may appear (surfaces
    /// with one field for both): recovery codes have their own unmistakable shape.
    pub fn typed(code: &'a str) -> Self {
        if recovery::normalize(code).is_some() { Self::RecoveryCode(code) } else { Self::AnyTotp { code } }
    }
}

/// How the second factor was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    Email,
    Sms,
    MagicLink,
    RecoveryCode,
    /// A passkey or security key; `synced` when the credential may live on several
    /// devices (backup-eligible), a software-protected key rather than a hardware one.
    Webauthn {
        synced: bool,
    },
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::MagicLink => "magic_link",
            Self::RecoveryCode => "recovery_code",
            Self::Webauthn { .. } => "webauthn",
        }
    }

    pub fn of_factor(factor_type: FactorType) -> Self {
        match factor_type {
            FactorType::Totp => Self::Totp,
            FactorType::Email => Self::Email,
            FactorType::Sms => Self::Sms,
            FactorType::MagicLink => Self::MagicLink,
            FactorType::Webauthn => Self::Webauthn { synced: false },
        }
    }

    /// The RFC 8176 method a session records for it.
    pub fn amr(self) -> Amr {
        match self {
            Self::Totp | Self::RecoveryCode => Amr::Otp,
            Self::Email | Self::MagicLink => Amr::Mail,
            Self::Sms => Amr::Sms,
            Self::Webauthn { synced: false } => Amr::Hwk,
            Self::Webauthn { synced: true } => Amr::Swk,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Verified {
    pub factor_id: Option<String>,
    pub method: Method,
    /// Whose factor passed. Private, so only [`verify`] and [`verify_link`] make one:
    /// holding it proves the check passed.
    user_id: String,
}

impl Verified {
    /// The user whose second factor passed.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

/// The associated data binding a sealed TOTP secret to its owner and factor.
pub fn secret_context(user_id: &str, factor_id: &str) -> Vec<u8> {
    format!("totp:{user_id}:{factor_id}").into_bytes()
}

/// Decrypts a factor's TOTP secret.
pub fn open_totp_secret(state: &AppState, factor: &Factor) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let stored = factor
        .secret
        .as_ref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("TOTP factor without a secret")))?;
    keys::open_secret(&state.keys, stored, &secret_context(&factor.user_id, &factor.id))
        .map_err(ApiError::internal)
}

/// The TOTP parameters a stored factor was made with.
pub fn factor_params(factor: &Factor) -> Result<totp::Params, ApiError> {
    let settings = factor
        .totp
        .as_ref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("TOTP factor without settings")))?;
    let algorithm = totp::Algorithm::parse(&settings.algorithm)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown TOTP algorithm in storage")))?;
    Ok(totp::Params {
        algorithm,
        digits: u32::try_from(settings.digits).unwrap_or(6),
        period: u32::try_from(settings.period).unwrap_or(30),
    })
}

/// Asks the guard whether `user_id` may try a second factor now; the attempt counts
/// as a failure until [`succeeded`] resets the count.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn claim_attempt(state: &AppState, user_id: &str, meta: &ClientMeta) -> Result<i64, ApiError> {
    let now = state.now();
    match state.store.claim_second_factor_attempt(user_id, now, &state.lockout).await? {
        AttemptClaim::Granted { failures } => Ok(failures),
        AttemptClaim::Blocked { until } => {
            audit::record(state, Event::new("mfa.throttled", user_id, meta).failed()).await;
            Err(ApiError::retry_after(until - now))
        }
        AttemptClaim::Locked => {
            audit::record(state, Event::new("mfa.refused_locked", user_id, meta).failed()).await;
            Err(ErrorCode::SecondFactorLocked.into())
        }
    }
}

/// After a success: the failure count starts again, and a self-service recovery the
/// user asked for is cancelled (they still have a factor).
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn succeeded(state: &AppState, user_id: &str, meta: &ClientMeta) -> Result<(), ApiError> {
    state.store.reset_second_factor_failures(user_id).await?;
    crate::service::recovery::cancel_on_proof(state, user_id, meta).await
}

/// Who is trying a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Someone who passed the first factor (a login, or an app's sidecar check after
    /// its own password check): a failure is worth telling the user about.
    AfterFirstFactor,
    /// The signed-in user confirming a factor they are setting up.
    Setup,
}

/// Records a failed attempt and answers `invalid_code`; when this failure reaches the
/// lock threshold, a lockout event is recorded too. The first failure after a first
/// factor (not every one, so a guesser cannot flood the inbox) is emailed to the user.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn failed(
    state: &AppState,
    user_id: &str,
    failures: i64,
    attempt: Attempt,
    event: Event<'_>,
) -> ApiError {
    let meta = event.meta;
    audit::record(state, event.failed()).await;
    if attempt == Attempt::AfterFirstFactor && failures == 1 {
        notify::send(state, user_id, Notice::SecondFactorFailed, meta).await;
    }
    if failures == i64::from(state.lockout.lock_after) {
        tracing::warn!(%user_id, "second factor locked after too many failures");
        audit::record(state, Event::new("mfa.locked", user_id, meta).failed()).await;
    }
    ErrorCode::InvalidCode.into()
}

/// Checks `proof` for `user_id` under the guard. On success the code is spent (its
/// TOTP step recorded, the sent code or recovery code consumed) and the failure count
/// reset.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn verify(
    state: &AppState,
    user_id: &str,
    proof: Proof<'_>,
    meta: &ClientMeta,
    actor: Option<String>,
) -> Result<Verified, ApiError> {
    let failures = claim_attempt(state, user_id, meta).await?;
    let now = state.now();
    // For the audit trail of a failure: the factor the code was checked against, and
    // whether it was a TOTP code already used.
    let mut tried: Option<(String, FactorType)> = None;
    let mut replayed = false;
    // What a WebAuthn answer proved, or why it was refused.
    let mut asserted: Option<webauthn::Asserted> = None;
    let mut refusal: Option<webauthn::Refusal> = None;
    // `Some(Some(factor))`: a code for `factor`; `Some(None)`: a recovery code;
    // `None`: nothing matched.
    let outcome = match proof {
        Proof::Code { factor_id, code, login } => {
            let factor = state
                .store
                .factor(user_id, factor_id, now)
                .await?
                .filter(|f| f.status == FactorStatus::Active);
            tried = factor.as_ref().map(|f| (f.id.clone(), f.factor_type));
            match factor {
                Some(factor) if factor.factor_type == FactorType::Totp => {
                    match check_totp(state, &factor, code, now).await? {
                        TotpCheck::Accepted => Some(Some(factor)),
                        TotpCheck::Replayed => {
                            replayed = true;
                            None
                        }
                        TotpCheck::Invalid => None,
                    }
                }
                Some(factor) if factor.factor_type.sends_codes() => {
                    challenges::check_code(state, &factor, ChallengePurpose::Login, login, code)
                        .await?
                        .then_some(Some(factor))
                }
                _ => None,
            }
        }
        Proof::AnyTotp { code } => {
            let mut matched = None;
            for factor in state.store.factors(user_id, now).await? {
                if factor.status != FactorStatus::Active || factor.factor_type != FactorType::Totp {
                    continue;
                }
                tried = Some((factor.id.clone(), factor.factor_type));
                match check_totp(state, &factor, code, now).await? {
                    TotpCheck::Accepted => {
                        matched = Some(Some(factor));
                        break;
                    }
                    TotpCheck::Replayed => replayed = true,
                    TotpCheck::Invalid => {}
                }
            }
            matched
        }
        Proof::Credential { factor_id, credential, login } => {
            let factor = match factor_id {
                Some(factor_id) => state.store.factor(user_id, factor_id, now).await?,
                None => state
                    .store
                    .factor_by_credential(&webauthn::credential_id(credential)?, now)
                    .await?
                    .filter(|f| f.user_id == user_id),
            };
            let factor =
                factor.filter(|f| f.status == FactorStatus::Active && f.factor_type == FactorType::Webauthn);
            tried = factor.as_ref().map(|f| (f.id.clone(), f.factor_type));
            match factor {
                Some(factor) => {
                    match webauthn::finish_authentication(state, &factor, credential, login).await? {
                        Ok(passed) => {
                            asserted = Some(passed);
                            Some(Some(factor))
                        }
                        Err(why) => {
                            refusal = Some(why);
                            None
                        }
                    }
                }
                None => None,
            }
        }
        Proof::RecoveryCode(code) => {
            // Recovery codes stand in for an active factor; without one they open nothing
            // (a setup that issued them early may never have been confirmed).
            let has_factor = factors::has_active(state, user_id, None).await?;
            let spent = match recovery::normalize(code).filter(|_| has_factor) {
                Some(canonical) => {
                    let hash = state.keys.hashing.hash(HashPurpose::RecoveryCode, canonical.as_bytes());
                    state.store.consume_recovery_code(user_id, &hash, now).await?
                }
                None => false,
            };
            spent.then_some(None)
        }
    };
    match outcome {
        Some(Some(factor)) => {
            succeeded(state, user_id, meta).await?;
            let method = match asserted {
                Some(passed) => Method::Webauthn { synced: passed.synced },
                None => Method::of_factor(factor.factor_type),
            };
            audit::record(
                state,
                Event::new("mfa.verified", user_id, meta).factor(&factor.id, factor.factor_type).actor(actor),
            )
            .await;
            Ok(Verified { factor_id: Some(factor.id), method, user_id: user_id.to_owned() })
        }
        Some(None) => {
            succeeded(state, user_id, meta).await?;
            audit::record(state, Event::new("recovery_code.used", user_id, meta).actor(actor)).await;
            let remaining = state.store.recovery_codes_remaining(user_id).await?;
            notify::send(state, user_id, Notice::RecoveryCodeUsed { remaining }, meta).await;
            Ok(Verified { factor_id: None, method: Method::RecoveryCode, user_id: user_id.to_owned() })
        }
        None => {
            // A refused replay is its own event: a code seen twice may mean it was read
            // over the user's shoulder or phished.
            let kind = match refusal {
                _ if replayed => "mfa.replay_refused",
                Some(webauthn::Refusal::CounterRegressed) => "webauthn.counter_regressed",
                _ => "mfa.failed",
            };
            let event = Event::new(kind, user_id, meta).actor(actor);
            let event = match &tried {
                Some((id, factor_type)) => event.factor(id, *factor_type),
                None => event,
            };
            let error = failed(state, user_id, failures, Attempt::AfterFirstFactor, event).await;
            Err(refusal.map_or(error, webauthn::Refusal::error))
        }
    }
}

/// Claims a confirmed magic link for the login (MFA token hash `login`) that asked for
/// it. A confirmed link is not a guess, so this passes by the guard, and a success
/// resets its count like any other.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, challenge_id = %challenge_id))]
pub async fn verify_link(
    state: &AppState,
    user_id: &str,
    challenge_id: &str,
    login: &[u8],
    meta: &ClientMeta,
) -> Result<Verified, ApiError> {
    let challenge = challenges::spend_confirmed_link(state, user_id, challenge_id, login).await?;
    succeeded(state, user_id, meta).await?;
    let factor_id = challenge.factor_id.unwrap_or_default();
    audit::record(state, Event::new("mfa.verified", user_id, meta).factor(&factor_id, FactorType::MagicLink))
        .await;
    Ok(Verified { factor_id: Some(factor_id), method: Method::MagicLink, user_id: user_id.to_owned() })
}

/// What checking a TOTP code found.
enum TotpCheck {
    /// Right, and its step is now recorded, so no one else can use it.
    Accepted,
    /// Right for a step already used (seen by the check, or by the conditional write
    /// when a concurrent request recorded it first).
    Replayed,
    Invalid,
}

async fn check_totp(state: &AppState, factor: &Factor, code: &str, now: i64) -> Result<TotpCheck, ApiError> {
    let key = open_totp_secret(state, factor)?;
    Ok(match totp::verify(&key, factor_params(factor)?, code, now, factor.last_step) {
        totp::Check::Accepted { step } if state.store.record_totp_step(&factor.id, step, now).await? => {
            TotpCheck::Accepted
        }
        totp::Check::Accepted { .. } | totp::Check::Replayed => TotpCheck::Replayed,
        totp::Check::Invalid => TotpCheck::Invalid,
    })
}
