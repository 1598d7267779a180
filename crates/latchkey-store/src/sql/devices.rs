//! Remembered devices: keyed hashes of device tokens that skip the second factor at
//! password login.

use latchkey_core::UnixTime;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::{RememberedDevice, StoreResult};

macro_rules! device_columns {
    () => {
        "id, user_id, created_at, expires_at, last_used_at, ip, user_agent"
    };
}

fn device_from_row(row: &AnyRow) -> StoreResult<RememberedDevice> {
    Ok(RememberedDevice {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
    })
}

pub(super) async fn remember(
    pool: &AnyPool,
    device: &RememberedDevice,
    token_hash: &[u8],
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO remembered_devices (id, user_id, token_hash, created_at, expires_at, last_used_at, ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&device.id)
    .bind(&device.user_id)
    .bind(token_hash.to_vec())
    .bind(device.created_at)
    .bind(device.expires_at)
    .bind(device.last_used_at)
    .bind(&device.ip)
    .bind(&device.user_agent)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn use_token(
    pool: &AnyPool,
    user_id: &str,
    token_hash: &[u8],
    now: UnixTime,
) -> StoreResult<Option<RememberedDevice>> {
    let row = sqlx::query(concat!(
        "UPDATE remembered_devices SET last_used_at = $3
         WHERE user_id = $1 AND token_hash = $2 AND expires_at > $3
         RETURNING ",
        device_columns!()
    ))
    .bind(user_id)
    .bind(token_hash.to_vec())
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(device_from_row).transpose()
}

pub(super) async fn find(
    pool: &AnyPool,
    user_id: &str,
    token_hash: &[u8],
    now: UnixTime,
) -> StoreResult<Option<RememberedDevice>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        device_columns!(),
        " FROM remembered_devices WHERE user_id = $1 AND token_hash = $2 AND expires_at > $3"
    ))
    .bind(user_id)
    .bind(token_hash.to_vec())
    .bind(now)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(device_from_row).transpose()
}

pub(super) async fn list(pool: &AnyPool, user_id: &str, now: UnixTime) -> StoreResult<Vec<RememberedDevice>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        device_columns!(),
        " FROM remembered_devices WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at, id"
    ))
    .bind(user_id)
    .bind(now)
    .fetch_all(pool)
    .await?;
    rows.iter().map(device_from_row).collect()
}

pub(super) async fn forget(pool: &AnyPool, user_id: &str, device_id: Option<&str>) -> StoreResult<u64> {
    let result = match device_id {
        Some(id) => {
            sqlx::query("DELETE FROM remembered_devices WHERE user_id = $1 AND id = $2")
                .bind(user_id)
                .bind(id)
                .execute(pool)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM remembered_devices WHERE user_id = $1")
                .bind(user_id)
                .execute(pool)
                .await?
        }
    };
    Ok(result.rows_affected())
}

/// Forgets every device of `user_id`, inside a transaction that changes their factors.
pub(super) async fn forget_all_in(tx: &mut Transaction<'_, Any>, user_id: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM remembered_devices WHERE user_id = $1").bind(user_id).execute(&mut **tx).await?;
    Ok(())
}

pub(super) async fn purge(pool: &AnyPool, now: UnixTime) -> StoreResult<u64> {
    let result =
        sqlx::query("DELETE FROM remembered_devices WHERE expires_at <= $1").bind(now).execute(pool).await?;
    Ok(result.rows_affected())
}
