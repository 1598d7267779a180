//! [`SqlStore`]: the [`crate::Store`] implementation for SQLite and PostgreSQL, one
//! file per part of the interface.
//!
//! The queries are written once, in the SQL both databases share (`$n` parameters,
//! `ON CONFLICT`, `RETURNING`, integers for times), and run through sqlx's `Any`
//! driver. What differs per backend is confined to [`SqlStore::connect`] (connection
//! settings) and the migration files.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

use crate::{StoreError, StoreResult, migrate};
use latchkey_core::UnixTime;

mod account_tokens;
mod accounts;
mod attempts;
mod audit;
mod ceremonies;
mod challenges;
mod delivery;
mod devices;
mod factors;
mod group_commit;
mod import;
mod keys;
mod organizations;
mod throttle;
mod webhooks;

/// The database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend for `url`, judged by its scheme alone (the URL may hold a password
    /// and is never echoed).
    pub fn from_url(url: &str) -> StoreResult<Self> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            other => Err(StoreError::UnsupportedScheme(other.chars().take(32).collect())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// Whether second-factor attempts share transactions (`group_commit.rs`); `None`
    /// chooses by backend: on for SQLite (one writer), off for PostgreSQL (which has
    /// its own group commit; see docs/PERFORMANCE.md).
    pub group_commit: Option<bool>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5), group_commit: None }
    }
}

/// SQLite connection settings: write-ahead log so readers never wait for the writer,
/// enforced foreign keys, and a busy timeout so concurrent writers queue instead of
/// failing.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
PRAGMA busy_timeout = 5000;";

/// The SQLite writer's settings: the others, and no automatic checkpoints.
const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
PRAGMA busy_timeout = 5000;
PRAGMA wal_autocheckpoint = 0;";

/// How often the write-ahead log is copied back into the SQLite database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Copies the write-ahead log back into the database now and then, without waiting
/// for readers or the writer (a passive checkpoint), until the pool closes.
async fn checkpoint_wal(pool: AnyPool) {
    while !pool.is_closed() {
        tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        if let Err(error) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await
            && !pool.is_closed()
        {
            tracing::warn!(%error, "a write-ahead log checkpoint failed");
        }
    }
}

#[derive(Clone)]
pub struct SqlStore {
    /// Reads (and, on PostgreSQL, everything).
    pub(crate) pool: AnyPool,
    /// Writes: on SQLite a pool of one connection, on PostgreSQL `pool` itself.
    pub(crate) writes: AnyPool,
    backend: Backend,
    group_commit: Option<group_commit::GroupCommit>,
}

impl SqlStore {
    /// Opens a pool on `url` (`sqlite://path` or `postgres://...`). A SQLite file is
    /// created if it does not exist. Does not run migrations.
    pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let connect_options: AnyConnectOptions = url.parse()?;
        let open = |max_connections: u32, pragmas: &'static str| {
            AnyPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(options.acquire_timeout)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            sqlx::raw_sql(pragmas).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(connect_options.clone())
        };
        let pool = open(options.max_connections, SQLITE_PRAGMAS).await?;
        // SQLite has one writer: writes queue, in order, for one connection of their
        // own instead of polling for the lock from several (a busy writer would starve
        // the others), while reads go on beside them. That connection never
        // checkpoints (a checkpoint's copy and sync would stop every write while it
        // ran); a task does, on a reading connection, beside the writes.
        let writes = match backend {
            Backend::Sqlite => {
                let writes = open(1, SQLITE_WRITER_PRAGMAS).await?;
                tokio::spawn(checkpoint_wal(pool.clone()));
                writes
            }
            Backend::Postgres => pool.clone(),
        };
        let group_commit = options
            .group_commit
            .unwrap_or(backend == Backend::Sqlite)
            .then(|| group_commit::GroupCommit::start(writes.clone()));
        Ok(Self { pool, writes, backend, group_commit })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(&self, now: UnixTime) -> StoreResult<Vec<i64>> {
        migrate::run(&self.pool, self.backend, now).await
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writes.close().await;
    }
}

/// Lists (authentication methods, scopes) are stored as space-separated words.
pub(crate) fn join_list(items: &[String]) -> String {
    items.join(" ")
}

pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// A kind stored as text, read back; text no version of Latchkey writes means the row
/// is corrupt.
pub(crate) fn parse_stored<T>(text: String, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    parse(&text).ok_or_else(|| StoreError::Corrupt(format!("unknown stored value {text:?}")))
}
