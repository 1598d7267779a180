//! Security notifications by email (DESIGN rule 11): the user hears about every change
//! to how they sign in, and about a correct password followed by a failed second
//! factor. Like auditing, a notification never fails the request that caused it.

use latchkey_core::factor::FactorType;
use latchkey_store::Channel;

use crate::delivery::templates;
use crate::http::error::ApiError;
use crate::http::extract::ClientMeta;
use crate::service::{challenges, outgoing};
use crate::state::AppState;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    FactorAdded {
        factor_type: FactorType,
    },
    FactorRemoved {
        factor_type: FactorType,
    },
    RecoveryCodesRegenerated,
    RecoveryCodeUsed {
        remaining: i64,
    },
    MfaDisabled,
    SecondFactorFailed,
    PasswordChanged,
    PasswordReset,
    /// Sent to the address being replaced.
    EmailChanged,
    /// Sent to the account's email and, by text, to the number being replaced.
    PhoneChanged,
    RecoveryLinkSent,
    AccountRecovered,
    /// Sent to every address the account knows.
    SelfRecoveryRequested {
        opens_in_hours: i64,
    },
}

fn factor_name(factor_type: FactorType) -> &'static str {
    match factor_type {
        FactorType::Totp => "an authenticator app",
        FactorType::Email => "email codes",
        FactorType::Sms => "text message codes",
        FactorType::MagicLink => "email sign-in links",
        FactorType::Webauthn => "a passkey",
    }
}

impl Notice {
    fn kind(self) -> &'static str {
        match self {
            Self::FactorAdded { .. } => "notice.factor_added",
            Self::FactorRemoved { .. } => "notice.factor_removed",
            Self::RecoveryCodesRegenerated => "notice.recovery_codes_regenerated",
            Self::RecoveryCodeUsed { .. } => "notice.recovery_code_used",
            Self::MfaDisabled => "notice.mfa_disabled",
            Self::SecondFactorFailed => "notice.second_factor_failed",
            Self::PasswordChanged => "notice.password_changed",
            Self::PasswordReset => "notice.password_reset",
            Self::EmailChanged => "notice.email_changed",
            Self::PhoneChanged => "notice.phone_changed",
            Self::RecoveryLinkSent => "notice.recovery_link_sent",
            Self::AccountRecovered => "notice.account_recovered",
            Self::SelfRecoveryRequested { .. } => "notice.self_recovery_requested",
        }
    }

    fn title_and_body(self) -> (String, String) {
        match self {
            Self::FactorAdded { factor_type } => (
                "A sign-in method was added".into(),
                format!("Two-step sign-in with {} was added to your account.", factor_name(factor_type)),
            ),
            Self::FactorRemoved { factor_type } => (
                "A sign-in method was removed".into(),
                format!("Two-step sign-in with {} was removed from your account.", factor_name(factor_type)),
            ),
            Self::RecoveryCodesRegenerated => (
                "New recovery codes were made".into(),
                "A new set of recovery codes was made for your account; the old codes no longer work.".into(),
            ),
            Self::RecoveryCodeUsed { remaining } => (
                "A recovery code was used".into(),
                format!(
                    "A recovery code was used to sign in to your account. {remaining} unused codes remain."
                ),
            ),
            Self::MfaDisabled => (
                "Two-step sign-in was turned off".into(),
                "All second factors and recovery codes were removed from your account.".into(),
            ),
            Self::SecondFactorFailed => (
                "Someone entered your password".into(),
                "Your password was entered correctly, but the second step failed. If this was not you, \
                 someone knows your password."
                    .into(),
            ),
            Self::PasswordChanged => (
                "Your password was changed".into(),
                "The password of your account was changed, and your other sessions were signed out. If this \
                 was not you, reset your password now."
                    .into(),
            ),
            Self::PasswordReset => (
                "Your password was reset".into(),
                "The password of your account was reset with an emailed link, and every session was signed \
                 out. If this was not you, reset your password now and check your sign-in methods."
                    .into(),
            ),
            Self::EmailChanged => (
                "Your email address was changed".into(),
                "Your account no longer uses this email address: a new one was confirmed. If this was not \
                 you, contact your administrator at once."
                    .into(),
            ),
            Self::PhoneChanged => (
                "Your phone number was changed".into(),
                "Your account uses a new phone number, and text message codes go to it. If this was not you, \
                 contact your administrator at once."
                    .into(),
            ),
            Self::RecoveryLinkSent => (
                "An administrator sent you a recovery link".into(),
                "An administrator sent you a link to set up two-step sign-in again, and every session was \
                 signed out. Opening the link removes your current sign-in methods."
                    .into(),
            ),
            Self::AccountRecovered => (
                "Your account was recovered".into(),
                "A recovery link was used: all second factors and recovery codes were removed, and every \
                 other session was signed out. Set up a new sign-in method now."
                    .into(),
            ),
            Self::SelfRecoveryRequested { opens_in_hours } => (
                "Someone asked to recover your account".into(),
                format!(
                    "Someone with your password said they lost every second factor. In {opens_in_hours} hours \
                     a link emailed to your account can remove them. If this was not you, sign in with your \
                     second factor: that cancels it, and change your password."
                ),
            ),
        }
    }
}

/// Where a notice goes besides the account's email.
#[derive(Debug, Clone, Copy)]
pub enum To<'a> {
    /// The account's email address, as it is now.
    Account,
    Email(&'a str),
    /// A phone number, by text message.
    Phone(&'a str),
}

/// Queues the notice for the user's account email.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn send(state: &AppState, user_id: &str, notice: Notice, meta: &ClientMeta) {
    send_to(state, user_id, notice, To::Account, meta).await;
}

/// Queues the notice for one of the user's addresses.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn send_to(state: &AppState, user_id: &str, notice: Notice, to: To<'_>, meta: &ClientMeta) {
    if let Err(error) = try_send(state, user_id, notice, to, meta).await {
        tracing::warn!(%user_id, kind = notice.kind(), code = error.code.as_str(), "a notification could not be queued");
        error.log_cause();
    }
}

async fn try_send(
    state: &AppState,
    user_id: &str,
    notice: Notice,
    to: To<'_>,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    let (title, body) = notice.title_and_body();
    let (channel, message) = match to {
        To::Account => {
            let Some(user) = state.store.user_by_id(user_id).await? else {
                return Ok(());
            };
            (
                Channel::Email,
                templates::notification_email(&challenges::context(state, meta), &user.email, &title, &body),
            )
        }
        To::Email(address) => (
            Channel::Email,
            templates::notification_email(&challenges::context(state, meta), address, &title, &body),
        ),
        To::Phone(number) => {
            (Channel::Sms, templates::notification_sms(&state.config.totp.issuer, number, &title, &body))
        }
    };
    let message = message.map_err(ApiError::internal)?;
    outgoing::enqueue(state, channel, notice.kind(), Some(user_id), &message).await
}
