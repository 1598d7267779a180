//! The audit log.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::SqlStore;
use super::import::parameter_rows;
use crate::{AuditEvent, AuditFilter, AuditStore, StoreResult};

fn event_from_row(row: &AnyRow) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        occurred_at: row.try_get("occurred_at")?,
        user_id: row.try_get("user_id")?,
        event_type: row.try_get("event_type")?,
        outcome: row.try_get("outcome")?,
        factor_id: row.try_get("factor_id")?,
        factor_type: row.try_get("factor_type")?,
        actor: row.try_get("actor")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        reason: row.try_get("reason")?,
    })
}

/// The most audit rows one statement inserts (eleven parameters each).
const ROWS_PER_STATEMENT: usize = 64;

/// Inserts `events` inside the caller's transaction, up to [`ROWS_PER_STATEMENT`] rows
/// a statement.
pub(super) async fn insert_all<'e>(
    conn: &mut AnyConnection,
    events: impl IntoIterator<Item = &'e AuditEvent>,
) -> StoreResult<()> {
    let events: Vec<&AuditEvent> = events.into_iter().collect();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO audit_events
             (id, occurred_at, user_id, event_type, outcome, factor_id, factor_type, actor, ip, user_agent,
              reason)
             VALUES {}",
            parameter_rows(chunk.len(), 11)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for event in chunk {
            query = bind_row(query, event);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Binds an audit row's eleven columns, in the order of the `INSERT`s here.
pub(super) fn bind_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    event: &'q AuditEvent,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(&event.id)
        .bind(event.occurred_at)
        .bind(&event.user_id)
        .bind(&event.event_type)
        .bind(&event.outcome)
        .bind(&event.factor_id)
        .bind(&event.factor_type)
        .bind(&event.actor)
        .bind(&event.ip)
        .bind(&event.user_agent)
        .bind(&event.reason)
}

#[async_trait]
impl AuditStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()> {
        insert_all(&mut *self.writes.acquire().await?, [event]).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        sqlx::query(
            "SELECT id, occurred_at, user_id, event_type, outcome, factor_id, factor_type, actor, ip, user_agent,
                    reason
             FROM audit_events
             WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR event_type = $2)
               AND ($3 IS NULL OR occurred_at >= $3) AND ($4 IS NULL OR occurred_at < $4)
             ORDER BY occurred_at DESC, id DESC LIMIT $5",
        )
        .bind(&filter.user_id)
        .bind(&filter.event_type)
        .bind(filter.since)
        .bind(filter.until)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }
}
