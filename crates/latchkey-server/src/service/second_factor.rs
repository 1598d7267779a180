//! Checking a second factor: the one path every surface (login challenge, sidecar
//! verify, compatibility APIs) goes through, so replay refusal, the brute-force guard
//! and auditing are the same everywhere.

use latchkey_core::crypto::HashPurpose;
use latchkey_core::factor::{FactorStatus, FactorType};
use latchkey_core::session::Amr;
use latchkey_core::{recovery, totp};
use latchkey_store::{
    AttemptClaim, AttemptOutcome, AuditEvent, ChallengePurpose, Factor, SecondFactorAttempt, TotpSpend,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::keys;
use crate::service::audit::{self, Event};
use crate::service::notify::{self, Notice};
use crate::service::{accounts, challenges, factors, webauthn};
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
/// lock threshold, a lockout event is recorded too.
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
    if failures == i64::from(state.lockout.lock_after) {
        audit::record(state, Event::new("mfa.locked", user_id, meta).failed()).await;
    }
    after_failure(state, user_id, failures, attempt, meta).await
}

/// What follows a recorded failure: the first one after a first factor (not every one,
/// so a guesser cannot flood the inbox) is emailed to the user, and reaching the lock
/// threshold is logged.
async fn after_failure(
    state: &AppState,
    user_id: &str,
    failures: i64,
    attempt: Attempt,
    meta: &ClientMeta,
) -> ApiError {
    if attempt == Attempt::AfterFirstFactor && failures == 1 {
        notify::send(state, user_id, Notice::SecondFactorFailed, meta).await;
    }
    if failures == i64::from(state.lockout.lock_after) {
        tracing::warn!(%user_id, "second factor locked after too many failures");
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
    // A TOTP code is decided in one transaction of its own ([`verify_totp`]); the
    // factor a code names is read first to know whether it is one.
    let named = match &proof {
        Proof::Code { factor_id, .. } => state
            .store
            .factor(user_id, factor_id, state.now())
            .await?
            .filter(|f| f.status == FactorStatus::Active),
        _ => None,
    };
    match (&proof, named) {
        (Proof::AnyTotp { code }, _) => {
            let factors = state.store.active_totp_factors(user_id).await?;
            if factors.is_empty() {
                // A user with a TOTP factor exists; only without one is it looked up
                // (`user_not_found`), so the usual verification reads once.
                accounts::by_id(state, user_id).await?;
            }
            verify_totp(state, user_id, &factors, code, meta, actor).await
        }
        (Proof::Code { code, .. }, Some(factor)) if factor.factor_type == FactorType::Totp => {
            verify_totp(state, user_id, std::slice::from_ref(&factor), code, meta, actor).await
        }
        (_, named) => verify_guarded(state, user_id, proof, named, meta, actor).await,
    }
}

/// Every other proof: the guard's claim first, then the check, each step its own
/// write. `named` is the active factor a `Proof::Code` names.
async fn verify_guarded(
    state: &AppState,
    user_id: &str,
    proof: Proof<'_>,
    named: Option<Factor>,
    meta: &ClientMeta,
    actor: Option<String>,
) -> Result<Verified, ApiError> {
    let failures = claim_attempt(state, user_id, meta).await?;
    let now = state.now();
    // For the audit trail of a failure: the factor the code was checked against.
    let mut tried: Option<(String, FactorType)> = None;
    // What a WebAuthn answer proved, or why it was refused.
    let mut asserted: Option<webauthn::Asserted> = None;
    let mut refusal: Option<webauthn::Refusal> = None;
    // `Some(Some(factor))`: a code for `factor`; `Some(None)`: a recovery code;
    // `None`: nothing matched.
    let outcome = match proof {
        Proof::Code { code, login, .. } => {
            tried = named.as_ref().map(|f| (f.id.clone(), f.factor_type));
            match named {
                Some(factor) if factor.factor_type.sends_codes() => {
                    challenges::check_code(state, &factor, ChallengePurpose::Login, login, code)
                        .await?
                        .then_some(Some(factor))
                }
                _ => None,
            }
        }
        Proof::AnyTotp { .. } => None,
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
            let kind = match refusal {
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

/// A TOTP code against `factors` (the user's active TOTP factors, or the one the code
/// names): the code is checked against each factor's secret first, then the guard's
/// claim, the step's conditional write, the guard's reset and the audit rows commit in
/// one transaction (shared with concurrent attempts on SQLite). The claim still
/// decides whether the check counts: a blocked or locked attempt spends nothing, and
/// the answer waits for the commit.
async fn verify_totp(
    state: &AppState,
    user_id: &str,
    factors: &[Factor],
    code: &str,
    meta: &ClientMeta,
    actor: Option<String>,
) -> Result<Verified, ApiError> {
    let now = state.now();
    let mut tried = None;
    let mut replayed = false;
    let mut spend = None;
    // Every factor is checked, matched or not: the check runs before the guard's
    // claim, so its duration must not tell a blocked guesser that a code matched.
    for factor in factors {
        if spend.is_none() {
            tried = Some(factor);
        }
        let key = open_totp_secret(state, factor)?;
        match totp::verify(&key, factor_params(factor)?, code, now, factor.last_step) {
            totp::Check::Accepted { step } if spend.is_none() => {
                spend = Some(TotpSpend { factor_id: factor.id.clone(), step });
            }
            totp::Check::Accepted { .. } | totp::Check::Invalid => {}
            totp::Check::Replayed => replayed = true,
        }
    }
    let tried = tried.map(|f| (f.id.clone(), f.factor_type));
    let rows = AttemptRows {
        template: audit::row(state, Event::new("mfa.failed", user_id, meta).failed()),
        tried: tried.clone(),
        actor,
        replayed,
        lock_after: i64::from(state.lockout.lock_after),
    };
    let attempt = SecondFactorAttempt {
        user_id: user_id.to_owned(),
        now,
        policy: state.lockout,
        spend,
        audit: Box::new(move |outcome| rows.for_outcome(outcome)),
    };
    let (outcome, events) = state.store.decide_second_factor_attempt(attempt).await?;
    for event in &events {
        audit::recorded(state, event, meta.surface).await;
    }
    match outcome {
        AttemptOutcome::Accepted => {
            crate::service::recovery::cancel_on_proof(state, user_id, meta).await?;
            let factor_id = tried.map(|(id, _)| id);
            Ok(Verified { factor_id, method: Method::Totp, user_id: user_id.to_owned() })
        }
        AttemptOutcome::Refused { failures, .. } => {
            Err(after_failure(state, user_id, failures, Attempt::AfterFirstFactor, meta).await)
        }
        AttemptOutcome::Blocked { until } => Err(ApiError::retry_after(until - now)),
        AttemptOutcome::Locked => Err(ErrorCode::SecondFactorLocked.into()),
    }
}

/// The audit rows of a TOTP attempt, made inside its transaction once the outcome is
/// known: the same events the guarded path records one by one.
struct AttemptRows {
    /// The request's row (user, address, agent), copied for each event.
    template: AuditEvent,
    tried: Option<(String, FactorType)>,
    actor: Option<String>,
    /// The check found the code already used.
    replayed: bool,
    lock_after: i64,
}

impl AttemptRows {
    fn for_outcome(&self, outcome: &AttemptOutcome) -> Vec<AuditEvent> {
        let event = |event_type: &str, success: bool| AuditEvent {
            id: Uuid::now_v7().to_string(),
            event_type: event_type.to_owned(),
            outcome: if success { "success" } else { "failure" }.to_owned(),
            ..self.template.clone()
        };
        let about_factor = |mut row: AuditEvent| {
            if let Some((id, factor_type)) = &self.tried {
                row.factor_id = Some(id.clone());
                row.factor_type = Some(factor_type.as_str().to_owned());
            }
            row.actor = self.actor.clone();
            row
        };
        match *outcome {
            AttemptOutcome::Blocked { .. } => vec![event("mfa.throttled", false)],
            AttemptOutcome::Locked => vec![event("mfa.refused_locked", false)],
            AttemptOutcome::Accepted => vec![about_factor(event("mfa.verified", true))],
            AttemptOutcome::Refused { failures, replayed } => {
                // A refused replay is its own event: a code seen twice may mean it was
                // read over the user's shoulder or phished.
                let kind = if replayed || self.replayed { "mfa.replay_refused" } else { "mfa.failed" };
                let mut rows = vec![about_factor(event(kind, false))];
                if failures == self.lock_after {
                    rows.push(event("mfa.locked", false));
                }
                rows
            }
        }
    }
}
