//! Remembered devices: after passing a second factor a client may ask to skip it on
//! that device for `mfa.remember_device_days`. The device keeps a 256-bit token (a
//! cookie and a response field); the store keeps its keyed hash. Any change to the
//! user's factors forgets every device (the store does this with the change).

use latchkey_core::crypto::HashPurpose;
use latchkey_core::token::{TOKEN_BYTES, TokenKind};
use latchkey_store::RememberedDevice;
use uuid::Uuid;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::random;
use crate::service::audit::{self, Event};
use crate::state::AppState;

/// The cookie that carries a device token.
pub const COOKIE: &str = "latchkey_device";

/// A device just remembered: its token, shown once, and how long it lasts.
pub struct Remembered {
    pub token: String,
    pub max_age_secs: i64,
}

/// Remembers the device `meta` describes for `user_id`.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn remember(state: &AppState, user_id: &str, meta: &ClientMeta) -> Result<Remembered, ApiError> {
    let now = state.now();
    let max_age_secs = state.config.mfa.remember_device_days * 86_400;
    let token = TokenKind::Device.encode(&random::bytes::<TOKEN_BYTES>());
    let device = RememberedDevice {
        id: Uuid::now_v7().to_string(),
        user_id: user_id.to_owned(),
        created_at: now,
        expires_at: now + max_age_secs,
        last_used_at: None,
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
    };
    let hash = state.keys.hashing.hash(HashPurpose::DeviceToken, token.as_bytes());
    state.store.remember_device(&device, &hash).await?;
    audit::record(state, Event::new("device.remembered", user_id, meta)).await;
    Ok(Remembered { token, max_age_secs })
}

/// Whether `presented` is a live device token of `user_id`'s; a match records its use.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn recognise(
    state: &AppState,
    user_id: &str,
    presented: &str,
    meta: &ClientMeta,
) -> Result<bool, ApiError> {
    let presented = presented.trim();
    if !TokenKind::Device.is_well_formed(presented) {
        return Ok(false);
    }
    let hash = state.keys.hashing.hash(HashPurpose::DeviceToken, presented.as_bytes());
    let device = state.store.use_remembered_device(user_id, &hash, state.now()).await?;
    if device.is_some() {
        audit::record(state, Event::new("device.recognised", user_id, meta)).await;
    }
    Ok(device.is_some())
}

/// The user's live remembered devices, oldest first.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<RememberedDevice>, ApiError> {
    Ok(state.store.remembered_devices(user_id, state.now()).await?)
}

/// Forgets one of the user's devices (`Some(id)`; a device that is not theirs is
/// `not_found`) or all of them; returns how many.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn forget(
    state: &AppState,
    user_id: &str,
    device_id: Option<&str>,
    meta: &ClientMeta,
) -> Result<u64, ApiError> {
    let forgotten = state.store.forget_devices(user_id, device_id).await?;
    if device_id.is_some() && forgotten == 0 {
        return Err(ErrorCode::NotFound.into());
    }
    if forgotten > 0 {
        audit::record(state, Event::new("device.forgotten", user_id, meta)).await;
    }
    Ok(forgotten)
}
