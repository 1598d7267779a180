//! The send throttle (per destination, user, client IP and channel) and the outgoing
//! message queue.

use async_trait::async_trait;
use latchkey_core::UnixTime;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::SqlStore;
use crate::{
    Channel, DeliveryStore, NewMessage, OutboxCounts, QueuedMessage, SendClaim, SendKey, StoreError,
    StoreResult, StoredSecret,
};

fn message_from_row(row: &AnyRow) -> StoreResult<QueuedMessage> {
    let channel: String = row.try_get("channel")?;
    Ok(QueuedMessage {
        id: row.try_get("id")?,
        channel: Channel::parse(&channel)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown message channel {channel:?}")))?,
        kind: row.try_get("kind")?,
        user_id: row.try_get("user_id")?,
        payload: StoredSecret {
            sealed: row.try_get("payload_sealed")?,
            nonce: row.try_get("payload_nonce")?,
            key_id: row.try_get("payload_key_id")?,
        },
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Counts a send on `key` if its limits allow one now; otherwise when they will.
async fn count_send(
    tx: &mut Transaction<'_, Any>,
    key: &SendKey<'_>,
    now: UnixTime,
) -> StoreResult<Option<UnixTime>> {
    let limits = &key.limits;
    let counted = sqlx::query(
        "INSERT INTO send_throttle (destination_hash, last_sent_at, window_start, window_count)
         VALUES ($1, $2, $2, 1)
         ON CONFLICT (destination_hash) DO UPDATE SET
             last_sent_at = $2,
             window_start = CASE WHEN send_throttle.window_start <= $2 - $4 THEN $2
                                 ELSE send_throttle.window_start END,
             window_count = CASE WHEN send_throttle.window_start <= $2 - $4 THEN 1
                                 ELSE send_throttle.window_count + 1 END
         WHERE send_throttle.last_sent_at <= $2 - $3
           AND (send_throttle.window_start <= $2 - $4 OR send_throttle.window_count < $5)
         RETURNING window_count",
    )
    .bind(key.hash.to_vec())
    .bind(now)
    .bind(limits.min_interval_secs)
    .bind(limits.window_secs)
    .bind(limits.per_window)
    .fetch_optional(&mut **tx)
    .await?;
    if counted.is_some() {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT last_sent_at, window_start, window_count FROM send_throttle WHERE destination_hash = $1",
    )
    .bind(key.hash.to_vec())
    .fetch_one(&mut **tx)
    .await?;
    let last_sent_at: i64 = row.try_get("last_sent_at")?;
    let window_start: i64 = row.try_get("window_start")?;
    let window_count: i64 = row.try_get("window_count")?;
    let mut until = last_sent_at + limits.min_interval_secs;
    if window_count >= limits.per_window {
        until = until.max(window_start + limits.window_secs);
    }
    Ok(Some(until))
}

#[async_trait]
impl DeliveryStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn claim_send(&self, keys: &[SendKey<'_>], now: UnixTime) -> StoreResult<SendClaim> {
        // As with the second-factor guard: each counting statement holds its row until
        // the transaction ends, so concurrent sends see each other; a key that refuses
        // rolls back what the keys before it counted.
        let mut tx = self.writes.begin().await?;
        for key in keys {
            if let Some(until) = count_send(&mut tx, key, now).await? {
                tx.rollback().await?;
                return Ok(SendClaim::Throttled { until });
            }
        }
        tx.commit().await?;
        Ok(SendClaim::Granted)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn enqueue_message(&self, message: &NewMessage, now: UnixTime) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO outbox (id, channel, kind, user_id, payload_sealed, payload_nonce, payload_key_id,
                 next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&message.id)
        .bind(message.channel.as_str())
        .bind(&message.kind)
        .bind(&message.user_id)
        .bind(message.payload.sealed.clone())
        .bind(message.payload.nonce.clone())
        .bind(&message.payload.key_id)
        .bind(now)
        .bind(message.created_at)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn lease_message(&self, now: UnixTime, lease_secs: i64) -> StoreResult<Option<QueuedMessage>> {
        // The outer conditions are checked again on the row, so when two workers pick
        // the same message only one lease is taken.
        sqlx::query(
            "UPDATE outbox SET lease_until = $1 + $2, attempts = attempts + 1
             WHERE id = (SELECT id FROM outbox
                         WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1
                           AND lease_until <= $1
                         ORDER BY next_attempt_at, id LIMIT 1)
               AND sent_at IS NULL AND failed_at IS NULL AND lease_until <= $1
             RETURNING id, channel, kind, user_id, payload_sealed, payload_nonce, payload_key_id, attempts,
                 created_at",
        )
        .bind(now)
        .bind(lease_secs)
        .fetch_optional(&self.writes)
        .await?
        .as_ref()
        .map(message_from_row)
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn message_sent(&self, id: &str, now: UnixTime) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET sent_at = $2, lease_until = 0, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    async fn message_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<UnixTime>,
        now: UnixTime,
    ) -> StoreResult<()> {
        let query = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE outbox SET last_error = $2, lease_until = 0, next_attempt_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(at),
            None => sqlx::query(
                "UPDATE outbox SET last_error = $2, lease_until = 0, failed_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(now),
        };
        query.execute(&self.writes).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn outbox_counts(&self) -> StoreResult<OutboxCounts> {
        // One statement, so the three counts are of one moment: separate queries
        // could count a message that fails between them as both queued and failed.
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN sent_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0),
                    MIN(CASE WHEN sent_at IS NULL AND failed_at IS NULL THEN created_at END)
             FROM outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxCounts {
            queued: row.try_get(0)?,
            sent: row.try_get(1)?,
            failed: row.try_get(2)?,
            oldest_queued_at: row.try_get(3)?,
        })
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn purge_delivery(&self, messages_before: UnixTime, throttle_before: UnixTime) -> StoreResult<u64> {
        let messages = sqlx::query(
            "DELETE FROM outbox WHERE (sent_at IS NOT NULL AND sent_at <= $1)
                                   OR (failed_at IS NOT NULL AND failed_at <= $1)",
        )
        .bind(messages_before)
        .execute(&self.writes)
        .await?
        .rows_affected();
        let throttles = sqlx::query("DELETE FROM send_throttle WHERE last_sent_at <= $1")
            .bind(throttle_before)
            .execute(&self.writes)
            .await?
            .rows_affected();
        Ok(messages + throttles)
    }
}
