//! Codes and links sent by email or SMS (DESIGN rules 5 and 6): sending them under the
//! per-destination throttle, and checking them with limited attempts. Only keyed hashes
//! are stored; a code's hash covers its challenge id, so equal codes never share one.

use latchkey_core::challenge::{
    self, CODE_TTL_SECS, LINK_TTL_SECS, MAX_ATTEMPTS, SEND_MIN_INTERVAL_SECS, SENDS_PER_HOUR,
};
use latchkey_core::crypto::{HashPurpose, constant_time_eq};
use latchkey_core::email::Email;
use latchkey_core::factor::FactorType;
use latchkey_core::phone;
use latchkey_core::token::{TOKEN_BYTES, TokenKind};
use latchkey_store::{
    Challenge, ChallengeKind, ChallengePurpose, Channel, CodeChallengeQuery, Factor, NewChallenge, SendClaim,
    SendKey, SendLimits, User,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::delivery::templates;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::random;
use crate::service::audit::{self, Event};
use crate::service::outgoing;
use crate::state::AppState;

const LIMITS: SendLimits =
    SendLimits { min_interval_secs: SEND_MIN_INTERVAL_SECS, per_window: SENDS_PER_HOUR, window_secs: 3600 };

/// A challenge on its way to the user.
#[derive(Debug, Clone)]
pub struct Sent {
    pub challenge_id: String,
    pub expires_in: i64,
    /// The destination, masked (`a***@example.com`).
    pub sent_to: String,
}

/// A message about to be sent: where to, by which channel, for whom (when known) and
/// at whose request.
#[derive(Clone, Copy)]
pub struct Send<'a> {
    pub destination: &'a str,
    pub channel: Channel,
    pub user_id: Option<&'a str>,
    pub meta: &'a ClientMeta,
}

fn hourly(per_window: i64) -> SendLimits {
    SendLimits { min_interval_secs: 0, per_window, window_secs: 3600 }
}

/// Counts a send (DESIGN rules 5 and 17) against the destination (one a minute, ten
/// an hour), the user, the client IP and, for texts, the service's per-minute ceiling
/// — all of them or none — or answers `rate_limited` with the wait, audited as
/// `send.throttled`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn claim_send(state: &AppState, send: Send<'_>) -> Result<(), ApiError> {
    let hash = |kind: &str, value: &str| {
        state.keys.hashing.hash(HashPurpose::Destination, format!("{kind}{value}").as_bytes())
    };
    // Destinations keep the key they always had: the bare lower-cased address.
    let destination = hash("", &send.destination.to_lowercase());
    let user = send.user_id.map(|id| hash("user:", id));
    let ip = send.meta.ip.as_deref().map(|ip| hash("ip:", ip));
    let sms = hash("channel:", Channel::Sms.as_str());
    let delivery = &state.config.delivery;
    let mut keys = vec![SendKey { hash: &destination, limits: LIMITS }];
    if let Some(user) = &user {
        keys.push(SendKey { hash: user, limits: hourly(delivery.sends_per_user_per_hour) });
    }
    if let Some(ip) = &ip {
        keys.push(SendKey { hash: ip, limits: hourly(delivery.sends_per_ip_per_hour) });
    }
    if send.channel == Channel::Sms {
        let ceiling =
            SendLimits { min_interval_secs: 0, per_window: state.config.sms.max_per_minute, window_secs: 60 };
        keys.push(SendKey { hash: &sms, limits: ceiling });
    }
    let now = state.now();
    match state.store.claim_send(&keys, now).await? {
        SendClaim::Granted => Ok(()),
        SendClaim::Throttled { until } => {
            audit::record(state, Event::about("send.throttled", send.user_id, send.meta).failed()).await;
            Err(ApiError::rate_limited((until - now).max(1)))
        }
    }
}

pub fn channel(factor: &Factor) -> Channel {
    if factor.factor_type == FactorType::Sms { Channel::Sms } else { Channel::Email }
}

fn code_hash(state: &AppState, challenge_id: &str, code: &str) -> [u8; 32] {
    state.keys.hashing.hash(HashPurpose::ChallengeCode, format!("{challenge_id}:{code}").as_bytes())
}

/// Where a new email, SMS or magic-link factor sends its codes, checked: an email
/// address (the account's unless `email` is given) or an E.164 number in an allowed
/// country.
pub fn contact_destination(
    state: &AppState,
    user: &User,
    factor_type: FactorType,
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<String, ApiError> {
    match factor_type {
        FactorType::Sms => {
            let number = phone.ok_or_else(|| ApiError::field(ErrorCode::MissingField, "phone"))?;
            let number = phone::normalize_e164(number)
                .map_err(|_| ApiError::field(ErrorCode::InvalidPhone, "phone"))?;
            if !challenge::phone_country_allowed(&number, &state.config.sms.allowed_country_codes) {
                return Err(ApiError::field(ErrorCode::PhoneNotAllowed, "phone"));
            }
            Ok(number)
        }
        _ => match email {
            Some(address) => Ok(Email::parse(address)
                .map_err(|_| ApiError::field(ErrorCode::InvalidEmail, "email"))?
                .address),
            None => Ok(user.email.clone()),
        },
    }
}

/// Where an email, SMS or magic-link factor sends its codes and links.
pub fn destination(factor: &Factor) -> Result<&str, ApiError> {
    factor
        .destination
        .as_deref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a code factor without a destination")))
}

/// Sends a fresh code to an email or SMS factor (or a magic-link factor being set up),
/// replacing any code still open for the same purpose. A login code is bound to the
/// MFA token of that login. The caller counts the send first with [`claim_send`], so a
/// refused send leaves nothing behind.
#[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor.id, factor_type = %factor.factor_type))]
pub async fn send_code(
    state: &AppState,
    factor: &Factor,
    purpose: ChallengePurpose,
    mfa_token_hash: Option<Vec<u8>>,
    meta: &ClientMeta,
) -> Result<Sent, ApiError> {
    let destination = destination(factor)?;
    let now = state.now();
    let id = Uuid::now_v7().to_string();
    let code = Zeroizing::new(challenge::format_code(u64::from_le_bytes(random::bytes::<8>())));
    state
        .store
        .create_challenge(&NewChallenge {
            id: id.clone(),
            user_id: factor.user_id.clone(),
            factor_id: Some(factor.id.clone()),
            purpose,
            kind: ChallengeKind::Code,
            secret_hash: code_hash(state, &id, &code).to_vec(),
            mfa_token_hash,
            created_at: now,
            expires_at: now + CODE_TTL_SECS,
        })
        .await?;
    let issuer = state.config.totp.issuer.as_str();
    let minutes = CODE_TTL_SECS / 60;
    let (kind, message) = if channel(factor) == Channel::Sms {
        ("sms_code", templates::code_sms(issuer, destination, &code, minutes, public_host(state).as_deref()))
    } else {
        let purpose = match purpose {
            ChallengePurpose::Enroll => "confirm this address for two-step sign-in",
            ChallengePurpose::Login | ChallengePurpose::SignIn => "finish signing in",
        };
        ("email_code", templates::code_email(issuer, destination, &code, purpose, minutes))
    };
    let message = message.map_err(ApiError::internal)?;
    outgoing::enqueue(state, channel(factor), kind, Some(&factor.user_id), &message).await?;
    audit::record(
        state,
        Event::new("challenge.sent", &factor.user_id, meta).factor(&factor.id, factor.factor_type),
    )
    .await;
    Ok(Sent {
        challenge_id: id,
        expires_in: CODE_TTL_SECS,
        sent_to: challenge::mask_destination(factor.factor_type, destination),
    })
}

/// Whether `code` is right for the factor's open challenge for `purpose`; a right code
/// is spent. Every call counts against the challenge's attempts.
#[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor.id, factor_type = %factor.factor_type))]
pub async fn check_code(
    state: &AppState,
    factor: &Factor,
    purpose: ChallengePurpose,
    mfa_token_hash: Option<&[u8]>,
    code: &str,
) -> Result<bool, ApiError> {
    let now = state.now();
    let query =
        CodeChallengeQuery { user_id: &factor.user_id, factor_id: &factor.id, purpose, mfa_token_hash };
    let Some(challenge) = state.store.attempt_code_challenge(&query, MAX_ATTEMPTS, now).await? else {
        return Ok(false);
    };
    let Some(code) = challenge::normalize_code(code) else {
        return Ok(false);
    };
    if !constant_time_eq(&code_hash(state, &challenge.id, &code), &challenge.secret_hash) {
        return Ok(false);
    }
    Ok(state.store.spend_challenge(&challenge.id, false, now).await?)
}

/// Who asked for a link, for the email that carries it.
pub fn context<'a>(state: &'a AppState, meta: &'a ClientMeta) -> templates::Context<'a> {
    templates::Context {
        issuer: &state.config.totp.issuer,
        when: crate::clock::rfc3339(state.now()),
        ip: meta.ip.as_deref(),
        device: meta.user_agent.as_deref(),
    }
}

/// Emails a magic link to `to` for the user, as their second factor (`factor` set,
/// `Login`, bound to the MFA token) or their first (`SignIn`). The link's base is the
/// configured public URL, never the request's Host.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn send_link(
    state: &AppState,
    user_id: &str,
    to: &str,
    factor: Option<&Factor>,
    purpose: ChallengePurpose,
    mfa_token_hash: Option<Vec<u8>>,
    meta: &ClientMeta,
) -> Result<Sent, ApiError> {
    let now = state.now();
    let id = Uuid::now_v7().to_string();
    let token = Zeroizing::new(TokenKind::MagicLink.encode(&random::bytes::<TOKEN_BYTES>()));
    state
        .store
        .create_challenge(&NewChallenge {
            id: id.clone(),
            user_id: user_id.to_owned(),
            factor_id: factor.map(|f| f.id.clone()),
            purpose,
            kind: ChallengeKind::Link,
            secret_hash: state.keys.hashing.hash(HashPurpose::LinkToken, token.as_bytes()).to_vec(),
            mfa_token_hash,
            created_at: now,
            expires_at: now + LINK_TTL_SECS,
        })
        .await?;
    let url = Zeroizing::new(format!("{}/magic-link?token={}", state.config.public_base(), token.as_str()));
    let reason = match purpose {
        ChallengePurpose::SignIn => "sign in",
        ChallengePurpose::Login | ChallengePurpose::Enroll => "finish signing in",
    };
    let message = templates::link_email(&context(state, meta), to, &url, reason, LINK_TTL_SECS / 60)
        .map_err(ApiError::internal)?;
    outgoing::enqueue(state, Channel::Email, "magic_link", Some(user_id), &message).await?;
    let event = Event::new("challenge.sent", user_id, meta);
    audit::record(
        state,
        match factor {
            Some(factor) => event.factor(&factor.id, FactorType::MagicLink),
            None => event,
        },
    )
    .await;
    Ok(Sent { challenge_id: id, expires_in: LINK_TTL_SECS, sent_to: challenge::mask_email(to) })
}

/// The keyed hash a presented link token is stored under; `None` for anything not
/// shaped like a link token, which is never looked up.
fn link_hash(state: &AppState, token: &str) -> Option<[u8; 32]> {
    TokenKind::MagicLink
        .is_well_formed(token)
        .then(|| state.keys.hashing.hash(HashPurpose::LinkToken, token.as_bytes()))
}

/// The open link challenge a presented token belongs to (nothing changes).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn open_link(state: &AppState, token: &str) -> Result<Option<Challenge>, ApiError> {
    let Some(hash) = link_hash(state, token) else {
        return Ok(None);
    };
    Ok(state.store.link_challenge(&hash, state.now()).await?)
}

/// Confirms the link with this token; `Some` for exactly one caller.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn confirm_link(state: &AppState, token: &str) -> Result<Option<Challenge>, ApiError> {
    let Some(hash) = link_hash(state, token) else {
        return Ok(None);
    };
    Ok(state.store.confirm_link_challenge(&hash, state.now()).await?)
}

/// Spends a confirmed login link for the login holding `mfa_token_hash`: the waiting
/// client's side of a magic-link second factor.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, challenge_id = %challenge_id))]
pub async fn spend_confirmed_link(
    state: &AppState,
    user_id: &str,
    challenge_id: &str,
    mfa_token_hash: &[u8],
) -> Result<Challenge, ApiError> {
    let challenge = state
        .store
        .challenge(user_id, challenge_id)
        .await?
        .filter(|c| {
            c.kind == ChallengeKind::Link
                && c.purpose == ChallengePurpose::Login
                && c.mfa_token_hash.as_deref().is_some_and(|h| constant_time_eq(h, mfa_token_hash))
        })
        .ok_or(ErrorCode::InvalidChallenge)?;
    if challenge.used_at.is_some() || challenge.expires_at <= state.now() {
        return Err(ErrorCode::InvalidChallenge.into());
    }
    if challenge.confirmed_at.is_none() {
        return Err(ErrorCode::ChallengePending.into());
    }
    if !state.store.spend_challenge(&challenge.id, true, state.now()).await? {
        return Err(ErrorCode::InvalidChallenge.into());
    }
    Ok(challenge)
}

/// The host of the public URL, for origin-bound SMS codes.
pub fn public_host(state: &AppState) -> Option<String> {
    reqwest::Url::parse(&state.config.public_url).ok()?.host_str().map(str::to_owned)
}
