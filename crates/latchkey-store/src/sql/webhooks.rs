//! Webhook endpoints and their delivery attempts.

use async_trait::async_trait;
use latchkey_core::UnixTime;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use crate::{StoreResult, StoredSecret, WebhookAttempt, WebhookEndpoint, WebhookStore};

// The column list as a literal, so that every query is a `&'static str`.
macro_rules! endpoint_columns {
    () => {
        "id, url, description, event_types, secrets_sealed, secrets_nonce, secrets_key_id, created_at"
    };
}

fn endpoint_from_row(row: &AnyRow) -> StoreResult<WebhookEndpoint> {
    let event_types: String = row.try_get("event_types")?;
    Ok(WebhookEndpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: event_types.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        secrets: StoredSecret {
            sealed: row.try_get("secrets_sealed")?,
            nonce: row.try_get("secrets_nonce")?,
            key_id: row.try_get("secrets_key_id")?,
        },
        created_at: row.try_get("created_at")?,
    })
}

fn attempt_from_row(row: &AnyRow) -> StoreResult<WebhookAttempt> {
    Ok(WebhookAttempt {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        message_id: row.try_get("message_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        attempt: row.try_get("attempt")?,
        attempted_at: row.try_get("attempted_at")?,
        status: row.try_get("status")?,
        error: row.try_get("error")?,
    })
}

#[async_trait]
impl WebhookStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn create_webhook(&self, endpoint: &WebhookEndpoint) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhook_endpoints
             (id, url, description, event_types, secrets_sealed, secrets_nonce, secrets_key_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&endpoint.id)
        .bind(&endpoint.url)
        .bind(&endpoint.description)
        .bind(endpoint.event_types.join(","))
        .bind(endpoint.secrets.sealed.clone())
        .bind(endpoint.secrets.nonce.clone())
        .bind(&endpoint.secrets.key_id)
        .bind(endpoint.created_at)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn webhooks(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        let query =
            concat!("SELECT ", endpoint_columns!(), " FROM webhook_endpoints ORDER BY created_at, id");
        sqlx::query(query).fetch_all(&self.pool).await?.iter().map(endpoint_from_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
        let query = concat!("SELECT ", endpoint_columns!(), " FROM webhook_endpoints WHERE id = $1");
        sqlx::query(query)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(endpoint_from_row)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("DELETE FROM webhook_attempts WHERE endpoint_id = $1").bind(id).execute(&mut *tx).await?;
        let deleted =
            sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn set_webhook_secrets(&self, id: &str, secrets: &StoredSecret) -> StoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE webhook_endpoints SET secrets_sealed = $2, secrets_nonce = $3, secrets_key_id = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(secrets.sealed.clone())
        .bind(secrets.nonce.clone())
        .bind(&secrets.key_id)
        .execute(&self.writes)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_webhook_attempt(&self, attempt: &WebhookAttempt) -> StoreResult<()> {
        // An attempt for an endpoint deleted meanwhile is not recorded (nothing to
        // list it under), rather than failing on the foreign key.
        sqlx::query(
            "INSERT INTO webhook_attempts
             (id, endpoint_id, message_id, event_id, event_type, attempt, attempted_at, status, error)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
             WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $2)",
        )
        .bind(&attempt.id)
        .bind(&attempt.endpoint_id)
        .bind(&attempt.message_id)
        .bind(&attempt.event_id)
        .bind(&attempt.event_type)
        .bind(attempt.attempt)
        .bind(attempt.attempted_at)
        .bind(attempt.status)
        .bind(&attempt.error)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn webhook_attempts(&self, endpoint_id: &str, limit: u32) -> StoreResult<Vec<WebhookAttempt>> {
        sqlx::query(
            "SELECT id, endpoint_id, message_id, event_id, event_type, attempt, attempted_at, status, error
             FROM webhook_attempts WHERE endpoint_id = $1
             ORDER BY attempted_at DESC, id DESC LIMIT $2",
        )
        .bind(endpoint_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(attempt_from_row)
        .collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_webhook_attempts(&self, before: UnixTime) -> StoreResult<u64> {
        let purged = sqlx::query("DELETE FROM webhook_attempts WHERE attempted_at < $1")
            .bind(before)
            .execute(&self.writes)
            .await?;
        Ok(purged.rows_affected())
    }
}
