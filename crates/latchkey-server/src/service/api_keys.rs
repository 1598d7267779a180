//! API keys for the admin API: made from 256 random bits, shown once, stored as a
//! keyed hash. A key's id and secret are also OAuth client credentials, traded for a
//! short-lived client token that acts as the key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use latchkey_core::crypto::HashPurpose;
use latchkey_core::token::{TOKEN_BYTES, TokenKind};
use latchkey_store::{ApiKey, NewApiKey};
use uuid::Uuid;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::SCOPES;
use crate::random;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the name must be 1 to 100 characters")]
    BadName,
    #[error("unknown scope {0:?}; known scopes: {scopes}", scopes = SCOPES.join(", "))]
    UnknownScope(String),
    #[error(transparent)]
    Store(#[from] latchkey_store::StoreError),
}

/// How long an instance keeps using an API key it has looked up without looking again:
/// a key revoked elsewhere (the CLI, another instance) stops working everywhere within
/// this long; on the instance that revokes it ([`revoke`]), at once.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// The most keys one instance keeps; when full it starts afresh.
const CACHE_CAPACITY: usize = 1024;

/// The API keys this instance has recently looked up, by the keyed hash of their
/// secret. Only keys that exist are kept, so wrong keys cannot fill it.
#[derive(Default)]
pub struct Cache {
    keys: Mutex<HashMap<[u8; 32], (Instant, ApiKey)>>,
}

impl Cache {
    fn get(&self, hash: &[u8; 32]) -> Option<ApiKey> {
        let keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.get(hash).filter(|(at, _)| at.elapsed() < CACHE_TTL).map(|(_, key)| key.clone())
    }

    fn put(&self, hash: [u8; 32], key: ApiKey) {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.len() >= CACHE_CAPACITY {
            keys.clear();
        }
        keys.insert(hash, (Instant::now(), key));
    }

    fn forget(&self, id: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.retain(|_, (_, key)| key.id != id);
    }
}

/// The active API key whose secret is `presented` (checked for shape by the caller),
/// from this instance's cache when it looked the key up less than [`CACHE_TTL`] ago.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn by_secret(state: &AppState, presented: &str) -> Result<Option<ApiKey>, ApiError> {
    let hash = state.keys.hashing.hash(HashPurpose::ApiKey, presented.as_bytes());
    if let Some(key) = state.api_keys.get(&hash) {
        return Ok(Some(key));
    }
    let key = state.store.api_key_by_hash(&hash).await?;
    if let Some(key) = &key {
        state.api_keys.put(hash, key.clone());
    }
    Ok(key)
}

/// Revokes the key `id`; false when no active key has it. This instance stops
/// accepting it at once, others within [`CACHE_TTL`].
#[tracing::instrument(level = "debug", skip_all, fields(api_key = %id))]
pub async fn revoke(state: &AppState, id: &str) -> Result<bool, latchkey_store::StoreError> {
    let revoked = state.store.revoke_api_key(id, state.now()).await?;
    state.api_keys.forget(id);
    if revoked {
        tracing::info!(api_key = %id, "API key revoked");
    }
    Ok(revoked)
}

/// A newly created key: its id and the secret, which is never available again.
pub struct CreatedApiKey {
    pub id: String,
    pub secret: String,
}

/// Creates a key named `name` with `scopes` (`admin` when empty).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(state: &AppState, name: &str, scopes: &[String]) -> Result<CreatedApiKey, ApiKeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiKeyError::BadName);
    }
    let scopes = if scopes.is_empty() { vec!["admin".to_owned()] } else { scopes.to_vec() };
    if let Some(unknown) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(ApiKeyError::UnknownScope(unknown.clone()));
    }
    let secret = TokenKind::ApiKey.encode(&random::bytes::<TOKEN_BYTES>());
    let key = NewApiKey {
        id: Uuid::now_v7().to_string(),
        name: name.to_owned(),
        key_hash: state.keys.hashing.hash(HashPurpose::ApiKey, secret.as_bytes()).to_vec(),
        scopes,
        created_at: state.now(),
    };
    state.store.create_api_key(&key).await?;
    tracing::info!(api_key = %key.id, name = %key.name, "API key created");
    Ok(CreatedApiKey { id: key.id, secret })
}

/// A client's access token, from the API key's id and secret as OAuth client
/// credentials (Lerian's `client_credentials` grant): it acts as the key, with its
/// scopes, for `tokens.access_ttl_secs`. Anything wrong is `invalid_credentials`.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn client_token(
    state: &AppState,
    client_id: &str,
    client_secret: &str,
) -> Result<(String, i64), ApiError> {
    let secret = client_secret.trim();
    if !TokenKind::ApiKey.is_well_formed(secret) {
        return Err(ErrorCode::InvalidCredentials.into());
    }
    let key = by_secret(state, secret)
        .await?
        .filter(|key| key.id == client_id.trim())
        .ok_or(ErrorCode::InvalidCredentials)?;
    let token = state.tokens.issue_client(&key.id, state.now()).map_err(ApiError::internal)?;
    tracing::info!(api_key = %key.id, "a client token was issued");
    Ok((token, state.tokens.ttl_secs()))
}

/// The API key a client's access token acts as: `invalid_token` when the token is
/// not one, has expired, or its key was revoked since.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn by_client_token(state: &AppState, token: &str) -> Result<ApiKey, ApiError> {
    let claims = state.tokens.verify_client(token, state.now()).map_err(|_| ErrorCode::InvalidToken)?;
    Ok(state.store.api_key(&claims.client_id).await?.ok_or(ErrorCode::InvalidToken)?)
}
