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
mod traits;

pub use models::*;
pub use sql::{Backend, ConnectOptions, SqlStore};
pub use traits::*;

/// A storage failure. Constraint violations that mean something to the domain have
/// their own variants; everything else is `Database`, whose text stays in the logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this email address already exists")]
    EmailTaken,
    #[error("this WebAuthn credential is already registered")]
    CredentialTaken,
    #[error("unsupported database URL scheme {0:?}: use sqlite:// or postgres://")]
    UnsupportedScheme(String),
    /// The database cannot be reached right now (no free connection in time, the
    /// server down or restarting, the database gone): worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_outage(&error) { Self::Unavailable(error) } else { Self::Database(error) }
    }
}

/// Whether `error` means the database is out of reach rather than that a statement
/// failed: pool timeouts, broken connections, and PostgreSQL's connection-exception
/// (08), shutdown (57P01–57P03), too-many-connections (53300) and missing-database
/// (3D000) states.
fn is_outage(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            true
        }
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300" | "3D000")
        }),
        _ => false,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
