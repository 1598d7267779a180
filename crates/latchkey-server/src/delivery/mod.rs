//! Outgoing email and SMS: the message shapes, the configured senders
//! ([`email::Mailer`], [`sms::SmsSender`], the file [`Outbox`]), the templates, and the
//! queue's wake-up signal. The queue itself — sealing messages into the database and the
//! worker that sends them with retries — is `service::outgoing`, which uses these; this
//! module depends on the configuration alone.

pub mod email;
mod outbox;
pub mod sms;
pub mod templates;

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::Config;

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
    /// The client webhooks are posted with (no redirects: a delivery goes where the
    /// administrator said, or fails).
    pub http: reqwest::Client,
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
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the webhook HTTP client")?,
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

    /// Wakes the worker: a message was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until [`wake`](Self::wake) is called.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Counts one send's outcome.
    pub fn count(&self, outcome: &Result<(), SendError>) {
        let counter = if outcome.is_ok() { &self.sent } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
