//! Passwords after sign-up: the forgotten password's reset by an emailed link, and the
//! signed-in user's change. A reset never gets past the second factor: a user with an
//! active factor proves one in the same call, and a factor that sends to the mailbox
//! the link went to proves nothing more than the link did, so it does not count.

use latchkey_core::email::Email;
use latchkey_core::factor::FactorType;
use latchkey_store::{AccountTokenPurpose, Channel, Factor, User};
use secrecy::SecretString;
use serde_json::json;

use crate::delivery::templates;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::account_tokens::{self, Window};
use crate::service::audit::{self, Event};
use crate::service::challenges::{self, Send};
use crate::service::login::{self, Challenged, FactorChoice};
use crate::service::notify::{self, Notice};
use crate::service::reauth::Authorized;
use crate::service::second_factor::{self, Proof};
use crate::service::{accounts, factors, outgoing};
use crate::state::AppState;

/// A reset link works for 30 minutes.
pub const RESET_TTL_SECS: i64 = 1800;

/// Emails a reset link to `email` if it belongs to an active account with a password
/// or without one (a reset sets the first). The answer is the same either way and comes
/// before the look-up, so neither its content nor its timing tells who has an account;
/// sends count against the address's throttle whether or not it has one.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn forgot(state: &AppState, email: &str, meta: &ClientMeta) -> Result<(), ApiError> {
    let email = accounts::parse_email(email)?;
    let send = Send { destination: &email.normalized, channel: Channel::Email, user_id: None, meta };
    challenges::claim_send(state, send).await?;
    let (state, meta) = (state.clone(), meta.clone());
    tokio::spawn(async move {
        if let Err(error) = send_reset_link(&state, &email, &meta).await {
            tracing::warn!(code = error.code.as_str(), "a password reset link could not be sent");
            error.log_cause();
        }
    });
    Ok(())
}

async fn send_reset_link(state: &AppState, email: &Email, meta: &ClientMeta) -> Result<(), ApiError> {
    let Some(user) = state.store.user_by_email(&email.normalized).await? else {
        audit::record(state, Event::about("password.reset_requested", None, meta).failed()).await;
        return Ok(());
    };
    if user.disabled_at.is_some() {
        return Ok(());
    }
    let window = Window { opens_in: 0, lasts: RESET_TTL_SECS };
    let link =
        account_tokens::issue_link(state, &user.id, AccountTokenPurpose::PasswordReset, window).await?;
    let url = zeroize::Zeroizing::new(format!(
        "{}/reset-password?token={}",
        state.config.public_base(),
        link.token.as_str()
    ));
    let subject = format!("Reset your {} password", state.config.totp.issuer);
    let message = templates::account_link_email(
        &challenges::context(state, meta),
        &user.email,
        &subject,
        &url,
        "choose a new password",
        RESET_TTL_SECS / 60,
    )
    .map_err(ApiError::internal)?;
    outgoing::enqueue(state, Channel::Email, "password_reset", Some(&user.id), &message).await?;
    audit::record(state, Event::new("password.reset_requested", &user.id, meta)).await;
    Ok(())
}

/// The second factor a reset is proven with.
pub enum ResetProof<'a> {
    /// A TOTP code, or the code [`reset_challenge`] sent.
    Code {
        factor_id: &'a str,
        code: &'a str,
    },
    /// A code typed where a TOTP code or a recovery code may appear (surfaces with one
    /// field for both), read as every surface reads one: `Proof::typed`.
    Typed(&'a str),
    RecoveryCode(&'a str),
    /// A passkey's answer to the options [`reset_challenge`] returned.
    Credential {
        factor_id: Option<&'a str>,
        credential: &'a serde_json::Value,
    },
}

/// What the holder of a reset link learns before choosing a password: whether a second
/// factor is needed and which of the user's factors can give it.
pub struct ResetTerms {
    pub user: User,
    /// Whether the user has an active factor (then the reset needs a proof).
    pub second_factor_required: bool,
    /// The active factors that can prove a reset; a recovery code always can.
    pub factors: Vec<Factor>,
    /// What a sent code or passkey ceremony for this reset is bound to: the link's hash.
    binding: Vec<u8>,
    token_id: String,
}

/// Whether `factor` can prove a reset of `user`'s password: any factor but one that
/// sends to the account's own mailbox (where the link went) or a magic link.
fn proves_reset(user: &User, factor: &Factor) -> bool {
    match factor.factor_type {
        FactorType::Totp | FactorType::Sms | FactorType::Webauthn => true,
        FactorType::MagicLink => false,
        FactorType::Email => factor
            .destination
            .as_deref()
            .and_then(|d| Email::parse(d).ok())
            .is_some_and(|d| d.normalized != user.email_normalized),
    }
}

/// The reset link `token`'s terms; `invalid_link` when it is unknown, expired or used.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn terms(state: &AppState, token: &str) -> Result<ResetTerms, ApiError> {
    let Some(open) = account_tokens::open_link(state, token, AccountTokenPurpose::PasswordReset).await?
    else {
        return Err(ErrorCode::InvalidLink.into());
    };
    let user = state.store.user_by_id(&open.user_id).await?.ok_or(ErrorCode::InvalidLink)?;
    if user.disabled_at.is_some() {
        return Err(ErrorCode::InvalidLink.into());
    }
    let active = factors::active_factors(state, &user.id).await?;
    let second_factor_required = !active.is_empty();
    let factors = active.into_iter().filter(|f| proves_reset(&user, f)).collect();
    Ok(ResetTerms { user, second_factor_required, factors, binding: open.secret_hash, token_id: open.id })
}

/// Sends the code of one of the factors that can prove the reset of link `token` (a
/// text, or an email to another address), or starts a passkey's ceremony; the code or
/// ceremony is bound to this link.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn reset_challenge(
    state: &AppState,
    token: &str,
    factor_id: &str,
    meta: &ClientMeta,
) -> Result<(Factor, Challenged), ApiError> {
    let terms = terms(state, token).await?;
    if !terms.factors.iter().any(|f| f.id == factor_id) {
        return Err(not_for_reset());
    }
    login::challenge_for(state, &terms.user.id, FactorChoice::Id(factor_id), &terms.binding, meta).await
}

fn not_for_reset() -> ApiError {
    ApiError::field(ErrorCode::ChallengeNotApplicable, "factor_id").with_message(
        "This factor cannot prove a password reset: use another factor of the account or a recovery code.",
    )
}

/// Sets a new password with the reset link `token` (and, for a user with an active
/// factor, a second factor): every session ends and every remembered device is
/// forgotten, atomically with spending the link, which works once.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn reset(
    state: &AppState,
    token: &str,
    new_password: SecretString,
    proof: Option<ResetProof<'_>>,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    let terms = terms(state, token).await?;
    let (user, binding) = (&terms.user, terms.binding.as_slice());
    accounts::check_password(&new_password, &Email::parse(&user.email).map_err(ApiError::internal)?)?;
    if terms.second_factor_required {
        let usable = |id: &str| terms.factors.iter().any(|f| f.id == id);
        let proof = match proof {
            None => {
                return Err(ApiError::new(ErrorCode::SecondFactorRequired)
                    .with_message(
                        "This account has two-step sign-in: give a code of one of `factors`, a passkey, or a \
                         recovery code with the new password.",
                    )
                    .with_details(json!({
                        "factors": terms.factors.iter()
                            .map(|f| json!({ "id": f.id, "type": f.factor_type.as_str() }))
                            .collect::<Vec<_>>(),
                        "recovery_code": true,
                    })));
            }
            Some(
                ResetProof::Code { factor_id, .. }
                | ResetProof::Credential { factor_id: Some(factor_id), .. },
            ) if !usable(factor_id) => {
                return Err(not_for_reset());
            }
            Some(ResetProof::Code { factor_id, code }) => {
                Proof::Code { factor_id, code, login: Some(binding) }
            }
            Some(ResetProof::Typed(code)) => Proof::typed(code),
            Some(ResetProof::RecoveryCode(code)) => Proof::RecoveryCode(code),
            Some(ResetProof::Credential { factor_id, credential }) => {
                Proof::Credential { factor_id, credential, login: Some(binding) }
            }
        };
        second_factor::verify(state, &user.id, proof, meta, None).await?;
    }
    let hash = state.hasher.hash(new_password).await.map_err(ApiError::internal)?;
    if !state.store.reset_password(&terms.token_id, &hash, state.now()).await? {
        return Err(ErrorCode::InvalidLink.into());
    }
    tracing::info!(user_id = %user.id, "password reset");
    audit::record(state, Event::new("password.reset", &user.id, meta)).await;
    notify::send(state, &user.id, Notice::PasswordReset, meta).await;
    Ok(())
}

/// The signed-in user sets a new password; their other sessions end. `by` comes from
/// [`crate::service::reauth::for_password_change`].
#[tracing::instrument(level = "debug", skip_all)]
pub async fn change(
    state: &AppState,
    by: &Authorized,
    new_password: SecretString,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    let user = accounts::session_user(state, by.user_id()).await?;
    accounts::check_password(&new_password, &Email::parse(&user.email).map_err(ApiError::internal)?)?;
    let hash = state.hasher.hash(new_password).await.map_err(ApiError::internal)?;
    if !state.store.change_password(&user.id, &hash, by.session_id(), state.now()).await? {
        return Err(ErrorCode::InvalidToken.into());
    }
    audit::record(state, Event::new("password.changed", &user.id, meta)).await;
    notify::send(state, &user.id, Notice::PasswordChanged, meta).await;
    Ok(())
}
