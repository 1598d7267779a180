//! Test support: a fresh, migrated database per test on either backend.
//!
//! SQLite databases are files in a temporary directory removed on drop. PostgreSQL
//! databases are created on the server named by `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) as `latchkey_t_<pid>_<n>`; databases
//! left by test processes that have exited are dropped the first time a test process
//! asks for one. A PostgreSQL test never passes without PostgreSQL: it fails when the
//! server is unreachable. To leave the PostgreSQL variants out on purpose, filter
//! them out by name (`scripts/test` does so for `TEST_SKIP_POSTGRES=1`, outside CI),
//! so the runner counts them as filtered out, never as passed.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Row;
use sqlx::any::AnyPoolOptions;
use tokio::sync::OnceCell;

use crate::{Backend, ConnectOptions, SqlStore};

/// A database that exists for the life of this value.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
static CLEANED: OnceCell<()> = OnceCell::const_new();

/// The PostgreSQL server tests use, as an admin URL.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDatabase {
    /// Creates an empty database.
    #[allow(clippy::expect_used, clippy::panic)]
    pub async fn create(backend: Backend) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}/test-{n}.db", dir.path().display());
                Self { url, backend, _dir: Some(dir) }
            }
            Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let admin_url = postgres_admin_url();
                let admin = AnyPoolOptions::new().max_connections(1).connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL for tests is unreachable at TEST_POSTGRES_URL ({e}); start it (scripts/ensure-postgres), or leave the PostgreSQL variants out with TEST_SKIP_POSTGRES=1 scripts/test")
                });
                CLEANED.get_or_init(|| drop_stale_databases(&admin)).await;
                let name = format!("latchkey_t_{}_{n}", std::process::id());
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .expect("create test database");
                admin.close().await;
                let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin_url);
                Self { url: format!("{base}/{name}"), backend, _dir: None }
            }
        }
    }

    /// Connects and migrates.
    #[allow(clippy::expect_used)]
    pub async fn store(&self) -> SqlStore {
        let store =
            SqlStore::connect(&self.url, &ConnectOptions::default()).await.expect("connect to test database");
        store.migrate(0).await.expect("migrate test database");
        store
    }
}

/// Drops test databases whose creating process has exited.
async fn drop_stale_databases(admin: &sqlx::AnyPool) {
    let Ok(rows) = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'latchkey_t_%'")
        .fetch_all(admin)
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String, _>(0) else {
            continue;
        };
        let pid = name.trim_start_matches("latchkey_t_").split('_').next().unwrap_or_default();
        let alive = !pid.is_empty() && std::path::Path::new(&format!("/proc/{pid}")).exists();
        let ours = pid == std::process::id().to_string();
        if !alive || ours {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(admin).await;
        }
    }
}
