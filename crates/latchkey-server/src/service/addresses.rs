//! Changing the account's email address or phone number. The new address gets a code
//! and replaces the old one only when the code comes back; starting needs a recent
//! authentication, and the old address is told. The email and magic-link factors that
//! sent to the old email address (the SMS factors that texted the old number) move to
//! the new one with it, in the same transaction: the code just proved the new address.
//! Factors with other destinations stay as they are.

use latchkey_core::challenge::{self, CODE_TTL_SECS};
use latchkey_core::email::Email;
use latchkey_core::phone;
use latchkey_store::{AccountTokenPurpose, AddressChanged, Channel, NewAddress, StoreError};

use crate::delivery::templates;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::audit::{self, Event};
use crate::service::challenges::{self, Send};
use crate::service::notify::{self, Notice, To};
use crate::service::reauth::Authorized;
use crate::service::{account_tokens, accounts, outgoing};
use crate::state::AppState;

/// Sends a code to `new_email`, which becomes the account's address when the code is
/// confirmed. An address another account has is `email_taken` (which account is not
/// said); the account's own address is refused too.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn start_email_change(
    state: &AppState,
    by: &Authorized,
    new_email: &str,
    meta: &ClientMeta,
) -> Result<CodeSent, ApiError> {
    let email = accounts::parse_email(new_email)?;
    let user = accounts::session_user(state, by.user_id()).await?;
    if email.normalized == user.email_normalized {
        return Err(ApiError::field(ErrorCode::InvalidField, "email")
            .with_message("This is already the account's email address."));
    }
    if state.store.user_by_email(&email.normalized).await?.is_some() {
        return Err(ErrorCode::EmailTaken.into());
    }
    let send =
        Send { destination: &email.normalized, channel: Channel::Email, user_id: Some(&user.id), meta };
    challenges::claim_send(state, send).await?;
    let code =
        account_tokens::issue_code(state, &user.id, AccountTokenPurpose::EmailChange, &email.address).await?;
    let issuer = state.config.totp.issuer.as_str();
    let purpose = "confirm this new address for your account";
    let message = templates::code_email(issuer, &email.address, &code, purpose, CODE_TTL_SECS / 60)
        .map_err(ApiError::internal)?;
    outgoing::enqueue(state, Channel::Email, "email_change_code", Some(&user.id), &message).await?;
    audit::record(state, Event::new("email.change_requested", &user.id, meta)).await;
    Ok(sent(challenge::mask_email(&email.address)))
}

/// Sends a code to `new_phone` (E.164, in an allowed country), which becomes the
/// account's number when the code is confirmed.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn start_phone_change(
    state: &AppState,
    by: &Authorized,
    new_phone: &str,
    meta: &ClientMeta,
) -> Result<CodeSent, ApiError> {
    let number =
        phone::normalize_e164(new_phone).map_err(|_| ApiError::field(ErrorCode::InvalidPhone, "phone"))?;
    if !challenge::phone_country_allowed(&number, &state.config.sms.allowed_country_codes) {
        return Err(ApiError::field(ErrorCode::PhoneNotAllowed, "phone"));
    }
    let user = accounts::session_user(state, by.user_id()).await?;
    if user.phone.as_deref() == Some(number.as_str()) {
        return Err(ApiError::field(ErrorCode::InvalidField, "phone")
            .with_message("This is already the account's phone number."));
    }
    let send = Send { destination: &number, channel: Channel::Sms, user_id: Some(&user.id), meta };
    challenges::claim_send(state, send).await?;
    let code = account_tokens::issue_code(state, &user.id, AccountTokenPurpose::PhoneChange, &number).await?;
    let host = challenges::public_host(state);
    let message =
        templates::code_sms(&state.config.totp.issuer, &number, &code, CODE_TTL_SECS / 60, host.as_deref())
            .map_err(ApiError::internal)?;
    outgoing::enqueue(state, Channel::Sms, "phone_change_code", Some(&user.id), &message).await?;
    audit::record(state, Event::new("phone.change_requested", &user.id, meta)).await;
    Ok(sent(challenge::mask_phone(&number)))
}

/// A code on its way to the new address.
#[derive(Debug, Clone)]
pub struct CodeSent {
    /// The new address, masked.
    pub sent_to: String,
    pub expires_in: i64,
}

fn sent(sent_to: String) -> CodeSent {
    CodeSent { sent_to, expires_in: CODE_TTL_SECS }
}

/// Which address a confirmation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    Email,
    Phone,
}

/// Confirms the signed-in user's pending change of `address` with the code sent to the
/// new address: the account takes it, factors that sent to the old address move, and
/// the old address is told. A wrong, expired or used code is `invalid_code` and changes
/// nothing; an email address another account took meanwhile is `email_taken`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn confirm(
    state: &AppState,
    user_id: &str,
    address: Address,
    code: &str,
    meta: &ClientMeta,
) -> Result<AddressChanged, ApiError> {
    let purpose = match address {
        Address::Email => AccountTokenPurpose::EmailChange,
        Address::Phone => AccountTokenPurpose::PhoneChange,
    };
    let Some(token) = account_tokens::check_code(state, user_id, purpose, code).await? else {
        audit::record(state, Event::new(confirm_event(address), user_id, meta).failed()).await;
        return Err(ErrorCode::InvalidCode.into());
    };
    let stored = token
        .new_address
        .as_deref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an address change without its address")))?;
    let email;
    let new = match address {
        Address::Email => {
            email = Email::parse(stored).map_err(ApiError::internal)?;
            NewAddress::Email { address: &email.address, normalized: &email.normalized }
        }
        Address::Phone => NewAddress::Phone { number: stored },
    };
    let changed = match state.store.change_address(&token.id, new, state.now()).await {
        Ok(Some(changed)) => changed,
        Ok(None) => return Err(ErrorCode::InvalidCode.into()),
        Err(StoreError::EmailTaken) => return Err(ErrorCode::EmailTaken.into()),
        Err(other) => return Err(other.into()),
    };
    audit::record(state, Event::new(confirm_event(address), user_id, meta)).await;
    match (address, changed.old.as_deref()) {
        (Address::Email, Some(old)) => {
            notify::send_to(state, user_id, Notice::EmailChanged, To::Email(old), meta).await
        }
        (Address::Phone, old) => {
            notify::send(state, user_id, Notice::PhoneChanged, meta).await;
            if let Some(old) = old {
                notify::send_to(state, user_id, Notice::PhoneChanged, To::Phone(old), meta).await;
            }
        }
        (Address::Email, None) => {}
    }
    Ok(changed)
}

fn confirm_event(address: Address) -> &'static str {
    match address {
        Address::Email => "email.changed",
        Address::Phone => "phone.changed",
    }
}
