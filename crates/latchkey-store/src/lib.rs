//! Latchkey's storage: the [`Store`] trait, named after the use cases the service has,
//! and [`SqlStore`], its implementation for SQLite and PostgreSQL.
//!
//! Every method takes the current time as a parameter; the store never reads the clock.
//! Security-critical changes are single conditional statements whose row count decides
//! the outcome, so concurrent requests (on one instance or many) cannot both win.

mod migrate;
mod models;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;

pub use models::*;
pub use sql::{Backend, ConnectOptions, SqlStore};

use async_trait::async_trait;
use latchkey_core::UnixTime;

/// A storage failure. Constraint violations that mean something to the domain have
/// their own variants; everything else is `Database`, whose text stays in the logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this email address already exists")]
    EmailTaken,
    #[error("unsupported database URL scheme {0:?}: use sqlite:// or postgres://")]
    UnsupportedScheme(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    async fn create_user(&self, user: &NewUser) -> StoreResult<User>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>>;
    /// Users in id (creation) order, starting after `after`.
    async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>>;
    /// Deletes the user and, by cascade, everything that belongs to them.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;

    /// Creates a session together with its first refresh token.
    async fn create_session(&self, session: &NewSession, refresh_token_hash: &[u8]) -> StoreResult<()>;
    /// The session if it exists, is not revoked and has not expired at `now`.
    async fn active_session(&self, id: &str, now: UnixTime) -> StoreResult<Option<Session>>;
    /// Spends a refresh token and issues its successor. A token that was already
    /// spent revokes its whole session.
    async fn rotate_refresh_token(&self, rotation: &RefreshRotation<'_>) -> StoreResult<RefreshOutcome>;
    async fn revoke_session(&self, id: &str, now: UnixTime) -> StoreResult<bool>;
    /// Deletes sessions that expired or were revoked before `before`.
    async fn purge_sessions(&self, before: UnixTime) -> StoreResult<u64>;

    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<()>;
    /// The key with this hash, unless it has been revoked.
    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    async fn revoke_api_key(&self, id: &str, now: UnixTime) -> StoreResult<bool>;

    /// Stores `key` as the active signing key unless another key is already active;
    /// returns whether it was stored.
    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool>;
    /// All signing keys that are not retired, the active one first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
}
