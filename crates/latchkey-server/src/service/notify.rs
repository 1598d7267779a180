//! Security notifications by email (DESIGN rule 11): the user hears about every change
//! to how they sign in, and about a correct password followed by a failed second
//! factor. Like auditing, a notification never fails the request that caused it.

use latchkey_core::factor::FactorType;
use latchkey_store::Channel;

use crate::delivery::templates;
use crate::http::extract::ClientMeta;
use crate::service::{challenges, outgoing};
use crate::state::AppState;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    FactorAdded { factor_type: FactorType },
    FactorRemoved { factor_type: FactorType },
    RecoveryCodesRegenerated,
    RecoveryCodeUsed { remaining: i64 },
    MfaDisabled,
    SecondFactorFailed,
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
        }
    }
}

/// Queues the notice for the user's account email.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn send(state: &AppState, user_id: &str, notice: Notice, meta: &ClientMeta) {
    if let Err(error) = try_send(state, user_id, notice, meta).await {
        tracing::warn!(%user_id, kind = notice.kind(), code = error.code.as_str(), "a notification could not be queued");
        error.log_cause();
    }
}

async fn try_send(
    state: &AppState,
    user_id: &str,
    notice: Notice,
    meta: &ClientMeta,
) -> Result<(), crate::http::error::ApiError> {
    let Some(user) = state.store.user_by_id(user_id).await? else {
        return Ok(());
    };
    let (title, body) = notice.title_and_body();
    let message =
        templates::notification_email(&challenges::context(state, meta), &user.email, &title, &body)
            .map_err(crate::http::error::ApiError::internal)?;
    outgoing::enqueue(state, Channel::Email, notice.kind(), Some(user_id), &message).await
}
