//! The records the store reads and writes.

use latchkey_core::UnixTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub email_normalized: String,
    pub phone: Option<String>,
    /// PHC string of the Argon2id hash; `None` for accounts without a password.
    pub password_hash: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub disabled_at: Option<UnixTime>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub email_normalized: String,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub aal: String,
    /// RFC 8176 method names, in the order they were used.
    pub amr: Vec<String>,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub idle_expires_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub aal: String,
    pub amr: Vec<String>,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub idle_expires_at: UnixTime,
    pub expires_at: UnixTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One use of a refresh token.
#[derive(Debug, Clone)]
pub struct RefreshRotation<'a> {
    pub presented_hash: &'a [u8],
    pub successor_hash: &'a [u8],
    pub now: UnixTime,
    /// The idle timeout in seconds; the session's idle deadline restarts from `now`.
    pub idle_timeout_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was spent and its successor stored; the session is live.
    Rotated(Session),
    /// The token had already been spent: its session is now revoked.
    Reused { session_id: String },
    /// No such token, or its session is revoked or expired.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub key_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: UnixTime,
}

/// A token-signing key pair with its private half sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub public_key: Vec<u8>,
    pub sealed_private: Vec<u8>,
    pub nonce: Vec<u8>,
    pub master_key_id: String,
    pub active: bool,
    pub created_at: UnixTime,
}
