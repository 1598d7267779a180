//! The service's own sealed secrets, and re-sealing values under a new master key.

use async_trait::async_trait;
use latchkey_core::UnixTime;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use crate::{KeyStore, SealedTable, SealedValue, StoreResult, StoredSecret};

/// The statements that read and rewrite one table's sealed values (with what their
/// context is made of), and whether the table's key is text.
struct Columns {
    text_key: bool,
    select: &'static str,
    update: &'static str,
}

fn columns(table: SealedTable) -> Columns {
    macro_rules! columns {
        ($table:literal, $key:literal, $text:expr, $prefix:literal, $extra:literal) => {
            Columns {
                text_key: $text,
                select: concat!(
                    "SELECT ",
                    $key,
                    " AS row_key, ",
                    $extra,
                    ", ",
                    $prefix,
                    "sealed AS sealed, ",
                    $prefix,
                    "nonce AS nonce, ",
                    $prefix,
                    "key_id AS key_id FROM ",
                    $table,
                    " WHERE ",
                    $prefix,
                    "key_id IS NOT NULL AND ",
                    $prefix,
                    "key_id <> $1 LIMIT $2"
                ),
                update: concat!(
                    "UPDATE ",
                    $table,
                    " SET ",
                    $prefix,
                    "sealed = $2, ",
                    $prefix,
                    "nonce = $3, ",
                    $prefix,
                    "key_id = $4 WHERE ",
                    $key,
                    " = $1 AND ",
                    $prefix,
                    "key_id = $5 AND ",
                    $prefix,
                    "nonce = $6"
                ),
            }
        };
    }
    match table {
        SealedTable::Factors => {
            columns!("factors", "id", true, "secret_", "user_id AS owner, factor_type AS kind")
        }
        SealedTable::Outbox => columns!("outbox", "id", true, "payload_", "NULL AS owner, NULL AS kind"),
        SealedTable::Ceremonies => {
            columns!(
                "webauthn_ceremonies",
                "challenge_hash",
                false,
                "state_",
                "user_id AS owner, purpose AS kind"
            )
        }
        SealedTable::Webhooks => {
            columns!("webhook_endpoints", "id", true, "secrets_", "NULL AS owner, NULL AS kind")
        }
        SealedTable::ServerSecrets => {
            columns!("server_secrets", "name", true, "", "NULL AS owner, NULL AS kind")
        }
        SealedTable::SigningKeys => Columns {
            text_key: true,
            select: "SELECT kid AS row_key, NULL AS owner, NULL AS kind, sealed_private AS sealed, nonce,
                         master_key_id AS key_id
                     FROM signing_keys WHERE master_key_id <> $1 LIMIT $2",
            update: "UPDATE signing_keys SET sealed_private = $2, nonce = $3, master_key_id = $4
                     WHERE kid = $1 AND master_key_id = $5 AND nonce = $6",
        },
    }
}

fn value_from_row(table: SealedTable, text_key: bool, row: &AnyRow) -> StoreResult<SealedValue> {
    let id =
        if text_key { row.try_get::<String, _>("row_key")?.into_bytes() } else { row.try_get("row_key")? };
    Ok(SealedValue {
        table,
        id,
        user_id: row.try_get("owner")?,
        kind: row.try_get("kind")?,
        secret: StoredSecret {
            sealed: row.try_get("sealed")?,
            nonce: row.try_get("nonce")?,
            key_id: row.try_get("key_id")?,
        },
    })
}

#[async_trait]
impl KeyStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn server_secret(&self, name: &str) -> StoreResult<Option<StoredSecret>> {
        let row = sqlx::query("SELECT sealed, nonce, key_id FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(StoredSecret {
                sealed: row.try_get("sealed")?,
                nonce: row.try_get("nonce")?,
                key_id: row.try_get("key_id")?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn insert_server_secret(
        &self,
        name: &str,
        secret: &StoredSecret,
        now: UnixTime,
    ) -> StoreResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO server_secrets (name, sealed, nonce, key_id, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(secret.sealed.clone())
        .bind(secret.nonce.clone())
        .bind(&secret.key_id)
        .bind(now)
        .execute(&self.writes)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(table = table.as_str()))]
    async fn sealed_values(
        &self,
        table: SealedTable,
        key_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>> {
        let columns = columns(table);
        sqlx::query(columns.select)
            .bind(key_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| value_from_row(table, columns.text_key, row))
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(table = value.table.as_str()))]
    async fn reseal(&self, value: &SealedValue, resealed: &StoredSecret) -> StoreResult<bool> {
        let columns = columns(value.table);
        let query = sqlx::query(columns.update);
        let query = if columns.text_key {
            query.bind(String::from_utf8_lossy(&value.id).into_owned())
        } else {
            query.bind(value.id.clone())
        };
        let updated = query
            .bind(resealed.sealed.clone())
            .bind(resealed.nonce.clone())
            .bind(&resealed.key_id)
            .bind(&value.secret.key_id)
            .bind(value.secret.nonce.clone())
            .execute(&self.writes)
            .await?;
        Ok(updated.rows_affected() == 1)
    }
}
