//! API keys for the admin API: made from 256 random bits, shown once, stored as a
//! keyed hash.

use latchkey_core::crypto::HashPurpose;
use latchkey_core::token::{TOKEN_BYTES, TokenKind};
use latchkey_store::NewApiKey;
use uuid::Uuid;

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
