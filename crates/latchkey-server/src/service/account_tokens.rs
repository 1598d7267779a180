//! Tokens and codes that change an account (password resets, recovery links, address
//! changes): made here, emailed or texted by the flows that use them, and only ever
//! stored as keyed hashes. A link's token is 256 random bits; an address change's code
//! has six digits and, like every sent code, five tries.

use latchkey_core::UnixTime;
use latchkey_core::challenge::{self, CODE_TTL_SECS, MAX_ATTEMPTS};
use latchkey_core::crypto::{HashPurpose, constant_time_eq};
use latchkey_core::token::{TOKEN_BYTES, TokenKind};
use latchkey_store::{AccountToken, AccountTokenPurpose, NewAccountToken};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::http::error::ApiError;
use crate::random;
use crate::state::AppState;

/// A new link's token, and when it stops working.
pub struct Link {
    pub token: Zeroizing<String>,
    pub expires_at: UnixTime,
}

/// When a new token may be spent, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub opens_in: i64,
    pub lasts: i64,
}

/// Makes a link token of `purpose` for the user, replacing any open one.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn issue_link(
    state: &AppState,
    user_id: &str,
    purpose: AccountTokenPurpose,
    window: Window,
) -> Result<Link, ApiError> {
    let token = Zeroizing::new(TokenKind::Account.encode(&random::bytes::<TOKEN_BYTES>()));
    let now = state.now();
    let usable_at = now + window.opens_in;
    let expires_at = usable_at + window.lasts;
    state
        .store
        .create_account_token(&NewAccountToken {
            id: Uuid::now_v7().to_string(),
            user_id: user_id.to_owned(),
            purpose,
            secret_hash: state.keys.hashing.hash(HashPurpose::AccountToken, token.as_bytes()).to_vec(),
            new_address: None,
            created_at: now,
            usable_at,
            expires_at,
        })
        .await?;
    Ok(Link { token, expires_at })
}

/// The open token of `purpose` a presented link token belongs to (nothing changes);
/// `None` for anything else, including values not shaped like a token, which are never
/// looked up.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn open_link(
    state: &AppState,
    token: &str,
    purpose: AccountTokenPurpose,
) -> Result<Option<AccountToken>, ApiError> {
    let token = token.trim();
    if !TokenKind::Account.is_well_formed(token) {
        return Ok(None);
    }
    let hash = state.keys.hashing.hash(HashPurpose::AccountToken, token.as_bytes());
    Ok(state.store.account_token(&hash, purpose, state.now()).await?)
}

fn code_hash(state: &AppState, id: &str, code: &str) -> [u8; 32] {
    state.keys.hashing.hash(HashPurpose::AccountToken, format!("{id}:{code}").as_bytes())
}

/// Makes a code of `purpose` that, once typed back, gives the user `new_address`;
/// any open code of the same purpose stops working.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn issue_code(
    state: &AppState,
    user_id: &str,
    purpose: AccountTokenPurpose,
    new_address: &str,
) -> Result<Zeroizing<String>, ApiError> {
    let id = Uuid::now_v7().to_string();
    let code = Zeroizing::new(challenge::format_code(u64::from_le_bytes(random::bytes::<8>())));
    let now = state.now();
    state
        .store
        .create_account_token(&NewAccountToken {
            id: id.clone(),
            user_id: user_id.to_owned(),
            purpose,
            secret_hash: code_hash(state, &id, &code).to_vec(),
            new_address: Some(new_address.to_owned()),
            created_at: now,
            usable_at: now,
            expires_at: now + CODE_TTL_SECS,
        })
        .await?;
    Ok(code)
}

/// The user's open code of `purpose` if `code` is right for it. Every call counts
/// against the code's tries; the caller spends it with the change it makes.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn check_code(
    state: &AppState,
    user_id: &str,
    purpose: AccountTokenPurpose,
    code: &str,
) -> Result<Option<AccountToken>, ApiError> {
    let Some(token) = state.store.attempt_account_code(user_id, purpose, MAX_ATTEMPTS, state.now()).await?
    else {
        return Ok(None);
    };
    let Some(code) = challenge::normalize_code(code) else { return Ok(None) };
    Ok(constant_time_eq(&code_hash(state, &token.id, &code), &token.secret_hash).then_some(token))
}
