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
    #[error("unsupported database URL scheme {0:?}: use sqlite:// or postgres://")]
    UnsupportedScheme(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
