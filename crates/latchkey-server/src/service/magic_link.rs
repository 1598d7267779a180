//! Magic links: signing in by email (a first factor), and the confirm step a person
//! takes on the link's page, shared with the magic-link second factor.

use latchkey_core::email::Email;
use latchkey_core::factor::FactorType;
use latchkey_core::session::Amr;
use latchkey_store::{ChallengePurpose, Channel};

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::audit::{self, Event};
use crate::service::challenges::{self, Send};
use crate::service::factors;
use crate::service::login::{self, LoginStep};
use crate::state::AppState;

/// What confirming a link did.
pub enum Confirmed {
    /// A second factor: the login that asked for it can now finish.
    SecondFactor,
    /// A sign-in: a session, or the second factor the account requires.
    SignedIn(LoginStep),
    /// A magic-link factor's activation link (Flashback's setup): the factor is on.
    Enrolled,
}

/// Emails a sign-in link to `email` if it belongs to an active account. The answer
/// is the same either way, and comes before the look-up, so neither its content nor
/// its timing tells whether the account exists. Sends count against the address's
/// throttle whether or not it has an account.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn request(state: &AppState, email: &str, meta: &ClientMeta) -> Result<(), ApiError> {
    if state.config.magic_link.redirect_url.is_none() {
        return Err(ErrorCode::MagicLinkDisabled.into());
    }
    let email = Email::parse(email).map_err(|_| ApiError::field(ErrorCode::InvalidEmail, "email"))?;
    // No per-user count here: it would have to look the account up first, and then
    // its refusals would tell who has one.
    let send = Send { destination: &email.normalized, channel: Channel::Email, user_id: None, meta };
    challenges::claim_send(state, send).await?;
    let (state, meta) = (state.clone(), meta.clone());
    tokio::spawn(async move {
        if let Err(error) = send_sign_in_link(&state, &email, &meta).await {
            tracing::warn!(code = error.code.as_str(), "a sign-in link could not be sent");
            error.log_cause();
        }
    });
    Ok(())
}

async fn send_sign_in_link(state: &AppState, email: &Email, meta: &ClientMeta) -> Result<(), ApiError> {
    let Some(user) = state.store.user_by_email(&email.normalized).await? else {
        return Ok(());
    };
    if user.disabled_at.is_some() {
        return Ok(());
    }
    challenges::send_link(state, &user.id, &user.email, None, ChallengePurpose::SignIn, None, meta).await?;
    Ok(())
}

/// Confirms the link with `token`: `None` when it is unknown, expired or used.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn confirm(
    state: &AppState,
    token: &str,
    meta: &ClientMeta,
) -> Result<Option<Confirmed>, ApiError> {
    let Some(challenge) = challenges::confirm_link(state, token).await? else {
        return Ok(None);
    };
    let user_id = challenge.user_id.as_str();
    match challenge.purpose {
        ChallengePurpose::Login => {
            let factor_id = challenge.factor_id.as_deref().unwrap_or_default();
            audit::record(
                state,
                Event::new("magic_link.confirmed", user_id, meta).factor(factor_id, FactorType::MagicLink),
            )
            .await;
            Ok(Some(Confirmed::SecondFactor))
        }
        ChallengePurpose::SignIn => {
            if !state.store.spend_challenge(&challenge.id, true, state.now()).await? {
                return Ok(None);
            }
            audit::record(state, Event::new("magic_link.signed_in", user_id, meta)).await;
            Ok(Some(Confirmed::SignedIn(login::after_first(state, user_id, &[Amr::Mail], None, meta).await?)))
        }
        ChallengePurpose::Enroll => {
            let Some(factor_id) = challenge.factor_id.as_deref() else { return Ok(None) };
            if !state.store.spend_challenge(&challenge.id, true, state.now()).await? {
                return Ok(None);
            }
            Ok(factors::activate_by_link(state, user_id, factor_id, meta).await?.map(|_| Confirmed::Enrolled))
        }
    }
}
