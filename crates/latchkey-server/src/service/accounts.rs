//! Accounts: sign-up, password login, and users created by an operator.

use latchkey_core::email::Email;
use latchkey_core::login::{AccountState, FirstFactorOutcome, decide_first_factor};
use latchkey_core::password::{PasswordRejection, check_new_password, within_login_limits};
use latchkey_core::phone::normalize_e164;
use latchkey_store::{NewUser, StoreError, User};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::audit::{self, Event};
use crate::service::login_throttle::{self, Client};
use crate::state::AppState;

pub fn parse_email(email: &str) -> Result<Email, ApiError> {
    Email::parse(email).map_err(|_| ApiError::field(ErrorCode::InvalidEmail, "email"))
}

/// Checks a new password against the policy (length, breach-like guessability,
/// likeness to the address): `weak_password` with the reason and suggestions.
pub fn check_password(password: &SecretString, email: &Email) -> Result<(), ApiError> {
    check_new_password(password.expose_secret(), &email.address).map_err(|rejection| {
        let mut details = json!({ "field": "password", "reason": rejection.reason() });
        if let PasswordRejection::Guessable { score, warning, suggestions } = &rejection {
            details["score"] = json!(score);
            details["warning"] = json!(warning);
            details["suggestions"] = json!(suggestions);
        }
        ApiError::new(ErrorCode::WeakPassword)
            .with_message(format!("The password was refused: {rejection}."))
            .with_details(details)
    })
}

/// Self-service sign-up. The outcome is the same whether or not the address already
/// has an account (the password is hashed either way), so sign-up cannot be used to
/// find out who is registered.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn signup(state: &AppState, email: &str, password: SecretString) -> Result<(), ApiError> {
    if !state.config.signup_enabled {
        return Err(ErrorCode::SignupDisabled.into());
    }
    let email = parse_email(email)?;
    check_password(&password, &email)?;
    let password_hash = state.hasher.hash(password).await.map_err(ApiError::internal)?;
    let user = NewUser {
        id: Uuid::now_v7().to_string(),
        email: email.address,
        email_normalized: email.normalized,
        phone: None,
        password_hash: Some(password_hash),
        created_at: state.now(),
    };
    match state.store.create_user(&user).await {
        Ok(created) => {
            tracing::info!(user_id = %created.id, "account created by sign-up");
            audit::record(state, Event::new("user.created", &created.id, &ClientMeta::default())).await;
            Ok(())
        }
        Err(StoreError::EmailTaken) => {
            tracing::info!("sign-up for an address that already has an account");
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}

/// Checks an email and password, under the first-factor throttle
/// ([`login_throttle`]): a client that failed too often is answered
/// `too_many_attempts` before its password is looked at, right or wrong. Every other
/// failure is `invalid_credentials`, after a real password-hash check, whatever the
/// reason. Successes and failures are audited (`login.succeeded`, `login.failed`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn authenticate_password(
    state: &AppState,
    email: &str,
    password: SecretString,
    client: Client<'_>,
) -> Result<User, ApiError> {
    let denied = || ApiError::new(ErrorCode::InvalidCredentials);
    if !within_login_limits(password.expose_secret()) {
        return Err(denied());
    }
    let (address, user) = match Email::parse(email) {
        Ok(email) => {
            let user = state.store.user_by_email(&email.normalized).await?;
            (email.normalized, user)
        }
        Err(_) => (email.trim().to_lowercase(), None),
    };
    let claimed = login_throttle::claim(state, &address, user.as_ref(), client).await?;
    let account = match &user {
        None => AccountState::Unknown,
        Some(u) if u.disabled_at.is_some() => AccountState::Disabled,
        Some(u) if u.password_hash.is_none() => AccountState::NoPassword,
        Some(_) => AccountState::Active,
    };
    let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let matches = state.hasher.verify(password, stored_hash).await.map_err(ApiError::internal)?;
    match (decide_first_factor(account, matches), user) {
        (FirstFactorOutcome::Authenticated, Some(user)) => {
            claimed.succeeded(state).await?;
            audit::record(state, Event::new("login.succeeded", &user.id, client.meta)).await;
            Ok(user)
        }
        (_, user) => {
            let event = Event::about("login.failed", user.as_ref().map(|u| u.id.as_str()), client.meta);
            audit::record(state, event.failed()).await;
            Err(denied())
        }
    }
}

/// The account behind an authenticated session; a session whose user is gone is an
/// invalid token.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn session_user(state: &AppState, user_id: &str) -> Result<User, ApiError> {
    state.store.user_by_id(user_id).await?.ok_or_else(|| ErrorCode::InvalidToken.into())
}

/// The user with `id`, for an administrator or a surface that names users by id;
/// `user_not_found` when there is none.
#[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
pub async fn by_id(state: &AppState, id: &str) -> Result<User, ApiError> {
    state.store.user_by_id(id).await?.ok_or_else(|| ErrorCode::UserNotFound.into())
}

/// What an operator gives to create a user.
pub struct NewAccount {
    pub email: String,
    pub password: Option<SecretString>,
    pub phone: Option<String>,
}

/// Creates a user on an operator's behalf; unlike sign-up, a taken address is an
/// explicit `email_taken` conflict.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_user(state: &AppState, account: NewAccount) -> Result<User, ApiError> {
    let email = parse_email(&account.email)?;
    let phone = account
        .phone
        .as_deref()
        .map(normalize_e164)
        .transpose()
        .map_err(|_| ApiError::field(ErrorCode::InvalidPhone, "phone"))?;
    let password_hash = match account.password {
        Some(password) => {
            check_password(&password, &email)?;
            Some(state.hasher.hash(password).await.map_err(ApiError::internal)?)
        }
        None => None,
    };
    let user = state
        .store
        .create_user(&NewUser {
            id: Uuid::now_v7().to_string(),
            email: email.address,
            email_normalized: email.normalized,
            phone,
            password_hash,
            created_at: state.now(),
        })
        .await?;
    tracing::info!(user_id = %user.id, "user created by an operator");
    audit::record(
        state,
        Event::new("user.created", &user.id, &ClientMeta::default()).actor(Some("operator".into())),
    )
    .await;
    Ok(user)
}

/// Deletes a user and everything of theirs; audited as `user.deleted` with `actor`.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn delete(state: &AppState, user_id: &str, actor: String) -> Result<(), ApiError> {
    if !state.store.delete_user(user_id).await? {
        return Err(ErrorCode::UserNotFound.into());
    }
    tracing::info!(%user_id, %actor, "user deleted by an operator");
    audit::record(state, Event::new("user.deleted", user_id, &ClientMeta::default()).actor(Some(actor)))
        .await;
    Ok(())
}

/// An operator disables a user (no login on any surface; every session ends) or
/// enables them again; audited as `user.disabled` / `user.enabled` with the actor.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn set_disabled(
    state: &AppState,
    user_id: &str,
    disabled: bool,
    actor: String,
    meta: &crate::http::extract::ClientMeta,
) -> Result<(), ApiError> {
    let now = state.now();
    if !state.store.set_user_disabled(user_id, disabled.then_some(now), now).await? {
        return Err(ErrorCode::UserNotFound.into());
    }
    if disabled {
        state.store.revoke_other_sessions(user_id, None, now).await?;
    }
    let kind = if disabled { "user.disabled" } else { "user.enabled" };
    audit::record(state, Event::new(kind, user_id, meta).actor(Some(actor))).await;
    Ok(())
}
