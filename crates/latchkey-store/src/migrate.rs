//! Schema migrations, one list per backend, embedded in the binary and applied in
//! order. Each is recorded in `latchkey_migrations`; when several instances start at
//! once, the primary key on the version lets exactly one of them apply it.

use sqlx::{AnyPool, Row};

use crate::{Backend, StoreResult};
use latchkey_core::UnixTime;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration { version: 2, name: "factors", sql: include_str!("../migrations/sqlite/0002_factors.sql") },
    Migration {
        version: 3,
        name: "mfa_pending_sessions",
        sql: include_str!("../migrations/sqlite/0003_mfa_pending_sessions.sql"),
    },
    Migration { version: 4, name: "delivery", sql: include_str!("../migrations/sqlite/0004_delivery.sql") },
    Migration { version: 5, name: "devices", sql: include_str!("../migrations/sqlite/0005_devices.sql") },
    Migration {
        version: 6,
        name: "login_throttle",
        sql: include_str!("../migrations/sqlite/0006_login_throttle.sql"),
    },
    Migration { version: 7, name: "webauthn", sql: include_str!("../migrations/sqlite/0007_webauthn.sql") },
    Migration {
        version: 8,
        name: "webauthn_aaguid",
        sql: include_str!("../migrations/sqlite/0008_webauthn_aaguid.sql"),
    },
    Migration {
        version: 9,
        name: "organizations",
        sql: include_str!("../migrations/sqlite/0009_organizations.sql"),
    },
    Migration {
        version: 10,
        name: "exchange_codes",
        sql: include_str!("../migrations/sqlite/0010_exchange_codes.sql"),
    },
    Migration {
        version: 11,
        name: "account_tokens",
        sql: include_str!("../migrations/sqlite/0011_account_tokens.sql"),
    },
    Migration { version: 12, name: "webhooks", sql: include_str!("../migrations/sqlite/0012_webhooks.sql") },
    Migration {
        version: 13,
        name: "signing_key_rotation",
        sql: include_str!("../migrations/sqlite/0013_signing_key_rotation.sql"),
    },
    Migration {
        version: 14,
        name: "server_secrets",
        sql: include_str!("../migrations/sqlite/0014_server_secrets.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration { version: 2, name: "factors", sql: include_str!("../migrations/postgres/0002_factors.sql") },
    Migration {
        version: 3,
        name: "mfa_pending_sessions",
        sql: include_str!("../migrations/postgres/0003_mfa_pending_sessions.sql"),
    },
    Migration { version: 4, name: "delivery", sql: include_str!("../migrations/postgres/0004_delivery.sql") },
    Migration { version: 5, name: "devices", sql: include_str!("../migrations/postgres/0005_devices.sql") },
    Migration {
        version: 6,
        name: "login_throttle",
        sql: include_str!("../migrations/postgres/0006_login_throttle.sql"),
    },
    Migration { version: 7, name: "webauthn", sql: include_str!("../migrations/postgres/0007_webauthn.sql") },
    Migration {
        version: 8,
        name: "webauthn_aaguid",
        sql: include_str!("../migrations/postgres/0008_webauthn_aaguid.sql"),
    },
    Migration {
        version: 9,
        name: "organizations",
        sql: include_str!("../migrations/postgres/0009_organizations.sql"),
    },
    Migration {
        version: 10,
        name: "exchange_codes",
        sql: include_str!("../migrations/postgres/0010_exchange_codes.sql"),
    },
    Migration {
        version: 11,
        name: "account_tokens",
        sql: include_str!("../migrations/postgres/0011_account_tokens.sql"),
    },
    Migration {
        version: 12,
        name: "webhooks",
        sql: include_str!("../migrations/postgres/0012_webhooks.sql"),
    },
    Migration {
        version: 13,
        name: "signing_key_rotation",
        sql: include_str!("../migrations/postgres/0013_signing_key_rotation.sql"),
    },
    Migration {
        version: 14,
        name: "server_secrets",
        sql: include_str!("../migrations/postgres/0014_server_secrets.sql"),
    },
];

fn migrations(backend: Backend) -> &'static [Migration] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

/// Applies every migration not yet recorded; returns the versions applied.
pub(crate) async fn run(pool: &AnyPool, backend: Backend, now: UnixTime) -> StoreResult<Vec<i64>> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS latchkey_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(pool)
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM latchkey_migrations")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;

    let mut newly_applied = Vec::new();
    for migration in migrations(backend).iter().filter(|m| !applied.contains(&m.version)) {
        let mut tx = pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO latchkey_migrations (version, name, applied_at) VALUES ($1, $2, $3)
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            // Another instance applied it meanwhile.
            tx.rollback().await?;
            continue;
        }
        sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
        tx.commit().await?;
        tracing::info!(version = migration.version, name = migration.name, "applied database migration");
        newly_applied.push(migration.version);
    }
    Ok(newly_applied)
}
