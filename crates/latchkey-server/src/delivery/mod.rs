//! Outgoing email and SMS. Services put messages on a database-backed queue
//! ([`enqueue`]); the worker ([`worker`]) sends them through the configured
//! [`email::Mailer`] and [`sms::SmsSender`], retrying with backoff. A request never waits
//! on a mail server, and a restart loses nothing. Message contents are sealed in the
//! queue, since they hold codes and links.

pub mod email;
mod outbox;
pub mod sms;
pub mod templates;
pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use latchkey_store::{Channel, NewMessage, QueuedMessage};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::ApiError;
use crate::keys;
use crate::state::AppState;

pub use outbox::Outbox;

/// One message: for email, `subject`, `text` and `html`; for SMS, `text` alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutgoingMessage {
    pub to: String,
    #[serde(default)]
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
}

/// Why a send failed, in words safe to log and store (never the message itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Retrying cannot help (a refused recipient, a rejected request).
    pub permanent: bool,
    pub reason: String,
}

impl SendError {
    pub fn transient(reason: impl Into<String>) -> Self {
        Self { permanent: false, reason: reason.into() }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self { permanent: true, reason: reason.into() }
    }
}

/// The senders and the queue's wake-up signal, built once from the configuration.
pub struct Delivery {
    pub mailer: email::Mailer,
    pub sms: sms::SmsSender,
    wake: Notify,
    sent: AtomicU64,
    failed: AtomicU64,
}

/// Sends and failed attempts since start, by this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub sent: u64,
    pub failed: u64,
}

impl Delivery {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let outbox = Outbox::new(config.data_dir.join("outbox"));
        Ok(Self {
            mailer: email::Mailer::from_config(config, outbox.clone()).context("configuring email")?,
            sms: sms::SmsSender::from_config(config, outbox).context("configuring SMS")?,
            wake: Notify::new(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    pub fn counts(&self) -> DeliveryCounts {
        DeliveryCounts {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    fn count(&self, outcome: &Result<(), SendError>) {
        let counter = if outcome.is_ok() { &self.sent } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The associated data binding a sealed message to its queue row.
fn payload_context(id: &str) -> Vec<u8> {
    format!("outbox:{id}").into_bytes()
}

/// Seals `message` into the queue and wakes the worker. `kind` names the message for
/// logs and the audit trail (`email_code`, `notification`, ...).
pub async fn enqueue(
    state: &AppState,
    channel: Channel,
    kind: &str,
    user_id: Option<&str>,
    message: &OutgoingMessage,
) -> Result<(), ApiError> {
    let id = Uuid::now_v7().to_string();
    let payload = Zeroizing::new(serde_json::to_vec(message).map_err(ApiError::internal)?);
    let payload =
        keys::seal_secret(&state.keys, &payload, &payload_context(&id)).map_err(ApiError::internal)?;
    let now = state.now();
    state
        .store
        .enqueue_message(
            &NewMessage {
                id,
                channel,
                kind: kind.to_owned(),
                user_id: user_id.map(str::to_owned),
                payload,
                created_at: now,
            },
            now,
        )
        .await?;
    state.delivery.wake.notify_one();
    Ok(())
}

/// Opens a queued message's sealed content.
fn open(state: &AppState, message: &QueuedMessage) -> anyhow::Result<OutgoingMessage> {
    let plain = keys::open_secret(&state.keys, &message.payload, &payload_context(&message.id))?;
    Ok(serde_json::from_slice(&plain)?)
}
