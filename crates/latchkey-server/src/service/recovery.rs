//! The way back for a user who lost every second factor and every recovery code.
//!
//! An administrator sends a recovery link ([`issue`], a reason required and audited):
//! every session ends at once, and the link, opened within `mfa.recovery_link_ttl_secs`,
//! removes the old factors and signs the user in to set up a new one ([`redeem`]).
//!
//! Self-service recovery ([`request`]) is off unless `mfa.self_recovery_wait_secs` is
//! set: the user gives their password, every address the account knows is told, and the
//! emailed link opens only after the wait. Any proof of a second factor meanwhile
//! (a sign-in, a step-up) cancels it, so a thief who has only the password loses the
//! race to an owner who still has a factor.

use std::collections::BTreeSet;

use latchkey_core::UnixTime;
use latchkey_core::challenge;
use latchkey_core::factor::FactorType;
use latchkey_core::session::Amr;
use latchkey_store::{AccountToken, AccountTokenPurpose, Channel};
use secrecy::SecretString;
use serde_json::json;
use zeroize::Zeroizing;

use crate::delivery::templates;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::account_tokens::{self, Window};
use crate::service::audit::{self, Event};
use crate::service::challenges::{self, Send};
use crate::service::login::{self, LoginStep};
use crate::service::login_throttle::Client;
use crate::service::notify::{self, Notice, To};
use crate::service::reauth::Authorized;
use crate::service::{accounts, factors, outgoing};
use crate::state::AppState;

/// Longest reason an administrator may give.
pub const MAX_REASON_CHARS: usize = 500;

/// How the recovery link reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Emailed to the account's address.
    Email,
    /// Handed to the administrator, who passes it on another way (the user lost the
    /// mailbox too); the user is emailed a notice instead.
    ToAdministrator,
}

/// A recovery link that went out.
pub struct Issued {
    pub expires_at: UnixTime,
    /// The account's address, masked, when the link was emailed.
    pub sent_to: Option<String>,
    /// The link itself, when the administrator passes it on.
    pub link: Option<Zeroizing<String>>,
}

fn recovery_url(state: &AppState, token: &str) -> Zeroizing<String> {
    Zeroizing::new(format!("{}/recover?token={token}", state.config.public_base()))
}

/// An administrator's recovery link for the user `by` names: every session ends and
/// every remembered device is forgotten now; the link replaces any earlier one.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn issue(
    state: &AppState,
    by: &Authorized,
    reason: &str,
    delivery: Delivery,
    meta: &ClientMeta,
) -> Result<Issued, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control)
    {
        return Err(ApiError::field(ErrorCode::InvalidField, "reason").with_message(format!(
            "Give the reason in 1 to {MAX_REASON_CHARS} characters on one line; the audit log keeps it."
        )));
    }
    let user = accounts::by_id(state, by.user_id()).await?;
    let window = Window { opens_in: 0, lasts: state.config.mfa.recovery_link_ttl_secs };
    let link = account_tokens::issue_link(state, &user.id, AccountTokenPurpose::Recovery, window).await?;
    let now = state.now();
    state.store.revoke_other_sessions(&user.id, None, now).await?;
    state.store.forget_devices(&user.id, None).await?;
    let url = recovery_url(state, &link.token);
    let event = Event::new("recovery.issued", &user.id, meta).actor(by.actor()).reason(reason);
    audit::record(state, event).await;
    match delivery {
        Delivery::Email => {
            email_link(
                state,
                &user.email,
                &user.id,
                &url,
                "set up two-step sign-in again",
                link.expires_at,
                meta,
            )
            .await?;
            Ok(Issued {
                expires_at: link.expires_at,
                sent_to: Some(challenge::mask_email(&user.email)),
                link: None,
            })
        }
        Delivery::ToAdministrator => {
            notify::send(state, &user.id, Notice::RecoveryLinkSent, meta).await;
            Ok(Issued { expires_at: link.expires_at, sent_to: None, link: Some(url) })
        }
    }
}

async fn email_link(
    state: &AppState,
    to: &str,
    user_id: &str,
    url: &str,
    purpose: &str,
    expires_at: UnixTime,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    let subject = format!("Recover your {} account", state.config.totp.issuer);
    let minutes = (expires_at - state.now()) / 60;
    let message =
        templates::account_link_email(&challenges::context(state, meta), to, &subject, url, purpose, minutes)
            .map_err(ApiError::internal)?;
    outgoing::enqueue(state, Channel::Email, "recovery_link", Some(user_id), &message).await
}

/// The open recovery link (an administrator's or the user's own) `token` belongs to.
async fn open(state: &AppState, token: &str) -> Result<AccountToken, ApiError> {
    for purpose in [AccountTokenPurpose::Recovery, AccountTokenPurpose::SelfRecovery] {
        if let Some(open) = account_tokens::open_link(state, token, purpose).await? {
            return Ok(open);
        }
    }
    Err(ErrorCode::InvalidLink.into())
}

/// Whether `token` is a recovery link that can be used now (what a page shows before
/// the user confirms): `invalid_link`, `recovery_waiting` or `recovery_disabled` if not.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn check(state: &AppState, token: &str) -> Result<(), ApiError> {
    usable(state, &open(state, token).await?)
}

fn usable(state: &AppState, open: &AccountToken) -> Result<(), ApiError> {
    if open.purpose == AccountTokenPurpose::SelfRecovery {
        if state.config.mfa.self_recovery_wait_secs == 0 {
            return Err(ErrorCode::RecoveryDisabled.into());
        }
        let wait = open.usable_at - state.now();
        if wait > 0 {
            return Err(
                ApiError::new(ErrorCode::RecoveryWaiting).with_details(json!({ "retry_after": wait }))
            );
        }
    }
    Ok(())
}

/// Uses a recovery link: the user's factors, recovery codes and remembered devices
/// are removed, every session ends, and the user is signed in (without a second factor,
/// which they then set up) — all only if the link is spent by this call.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn redeem(state: &AppState, token: &str, meta: &ClientMeta) -> Result<LoginStep, ApiError> {
    let open = open(state, token).await?;
    usable(state, &open)?;
    let user = state.store.user_by_id(&open.user_id).await?.ok_or(ErrorCode::InvalidLink)?;
    if user.disabled_at.is_some() || !state.store.spend_account_token(&open.id, state.now()).await? {
        return Err(ErrorCode::InvalidLink.into());
    }
    let now = state.now();
    let removed = state.store.delete_all_factors(&user.id).await?;
    state.store.revoke_other_sessions(&user.id, None, now).await?;
    for purpose in [AccountTokenPurpose::Recovery, AccountTokenPurpose::SelfRecovery] {
        state.store.cancel_account_tokens(&user.id, purpose, now).await?;
    }
    tracing::info!(user_id = %user.id, removed, "account recovered");
    audit::record(state, Event::new("recovery.used", &user.id, meta)).await;
    notify::send(state, &user.id, Notice::AccountRecovered, meta).await;
    login::after_first(state, &user.id, &[Amr::Mail], None, meta).await
}

/// Self-service recovery: with the right password, a user who has a factor (and lost
/// it) is emailed a link that opens after `mfa.self_recovery_wait_secs`, and every
/// address the account knows is told. The answer for a user without a factor is the
/// same, with nothing sent. A wrong password is `invalid_credentials`, under the
/// first-factor throttle.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn request(
    state: &AppState,
    email: &str,
    password: SecretString,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    let wait = state.config.mfa.self_recovery_wait_secs;
    if wait == 0 {
        return Err(ErrorCode::RecoveryDisabled.into());
    }
    let user = accounts::authenticate_password(state, email, password, Client::new(meta)).await?;
    let active = factors::active_factors(state, &user.id).await?;
    if active.is_empty() {
        return Ok(());
    }
    let send =
        Send { destination: &user.email_normalized, channel: Channel::Email, user_id: Some(&user.id), meta };
    challenges::claim_send(state, send).await?;
    let window = Window { opens_in: wait, lasts: state.config.mfa.recovery_link_ttl_secs };
    let link = account_tokens::issue_link(state, &user.id, AccountTokenPurpose::SelfRecovery, window).await?;
    let url = recovery_url(state, &link.token);
    let hours = (wait + 3599) / 3600;
    let purpose = format!(
        "remove the second factors you lost; it opens in {hours} hours, and any sign-in with a second factor \
         before then cancels it"
    );
    email_link(state, &user.email, &user.id, &url, &purpose, link.expires_at, meta).await?;
    audit::record(state, Event::new("recovery.requested", &user.id, meta)).await;
    let notice = Notice::SelfRecoveryRequested { opens_in_hours: hours };
    let mut emails = BTreeSet::new();
    let mut phones: BTreeSet<String> = user.phone.iter().cloned().collect();
    for factor in &active {
        match (factor.factor_type, factor.destination.as_deref()) {
            (FactorType::Sms, Some(number)) => {
                phones.insert(number.to_owned());
            }
            (FactorType::Email | FactorType::MagicLink, Some(address))
                if !address.eq_ignore_ascii_case(&user.email) =>
            {
                emails.insert(address.to_lowercase());
            }
            _ => {}
        }
    }
    for address in &emails {
        notify::send_to(state, &user.id, notice, To::Email(address), meta).await;
    }
    for number in &phones {
        notify::send_to(state, &user.id, notice, To::Phone(number), meta).await;
    }
    Ok(())
}

/// A second factor was just proven for the user: any self-service recovery they (or
/// someone with their password) asked for is cancelled.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn cancel_on_proof(state: &AppState, user_id: &str, meta: &ClientMeta) -> Result<(), ApiError> {
    if state.config.mfa.self_recovery_wait_secs == 0 {
        return Ok(());
    }
    let cancelled =
        state.store.cancel_account_tokens(user_id, AccountTokenPurpose::SelfRecovery, state.now()).await?;
    if cancelled > 0 {
        audit::record(state, Event::new("recovery.cancelled", user_id, meta)).await;
    }
    Ok(())
}
