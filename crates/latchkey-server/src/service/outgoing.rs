//! The outgoing message queue: [`enqueue`] seals a message into the database and wakes
//! the background task "delivery" ([`run`]), which leases due messages and sends them
//! through `crate::delivery`'s senders, retrying failures with doubling delays until
//! `delivery.max_attempts`. Every instance runs one; leases keep them from sending a
//! message twice at once. A request never waits on a mail server, and a restart loses
//! nothing. Message contents are sealed in the queue, since they hold codes and links.

use std::time::Duration;

use latchkey_store::{Channel, NewMessage, QueuedMessage, StoreError};
use tokio::sync::watch;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::delivery::{OutgoingMessage, SendError};
use crate::http::error::ApiError;
use crate::http::extract::ClientMeta;
use crate::keys;
use crate::service::audit::{self, Event};
use crate::service::webhooks;
use crate::state::AppState;

/// The associated data binding a sealed message to its queue row.
pub(crate) fn payload_context(id: &str) -> Vec<u8> {
    format!("outbox:{id}").into_bytes()
}

/// Seals `message` into the queue and wakes the worker. `kind` names the message for
/// logs and the audit trail (`email_code`, `notification`, ...).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn enqueue(
    state: &AppState,
    channel: Channel,
    kind: &str,
    user_id: Option<&str>,
    message: &OutgoingMessage,
) -> Result<(), ApiError> {
    let payload = Zeroizing::new(serde_json::to_vec(message).map_err(ApiError::internal)?);
    enqueue_payload(state, channel, kind, user_id, &payload).await
}

/// Seals `payload` (what the channel's sender reads back) into the queue and wakes the
/// worker.
pub async fn enqueue_payload(
    state: &AppState,
    channel: Channel,
    kind: &str,
    user_id: Option<&str>,
    payload: &[u8],
) -> Result<(), ApiError> {
    let id = Uuid::now_v7().to_string();
    let payload =
        keys::seal_secret(&state.keys, payload, &payload_context(&id)).map_err(ApiError::internal)?;
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
    state.delivery.wake();
    Ok(())
}

/// Opens a queued message's sealed content.
fn open(state: &AppState, message: &QueuedMessage) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    Ok(Zeroizing::new(
        keys::open_secret(&state.keys, &message.payload, &payload_context(&message.id))?.to_vec(),
    ))
}

/// Runs until `stop` changes. A message being sent when the signal comes is finished.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let poll = Duration::from_millis(state.config.delivery.poll_interval_ms);
    loop {
        loop {
            match deliver_next(&state).await {
                Ok(true) if !*stop.borrow() => {}
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(error = %error, "the delivery queue could not be read");
                    break;
                }
            }
        }
        tokio::select! {
            () = state.delivery.woken() => {}
            () = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Leases and sends the next due message; false when none is due.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn deliver_next(state: &AppState) -> Result<bool, StoreError> {
    let config = &state.config.delivery;
    let Some(message) = state.store.lease_message(state.now(), config.lease_secs).await? else {
        return Ok(false);
    };
    let outcome = send(state, &message).await;
    state.delivery.count(&outcome);
    state.metrics.message(message.channel.as_str(), &message.kind, outcome.is_ok());
    let now = state.now();
    match outcome {
        Ok(()) => state.store.message_sent(&message.id, now).await?,
        Err(error) => {
            let give_up = error.permanent || message.attempts >= i64::from(config.max_attempts);
            let retry_at = (!give_up)
                .then(|| now + backoff(config.retry_base_secs, config.retry_max_secs, message.attempts));
            tracing::warn!(
                message_id = %message.id,
                kind = %message.kind,
                attempts = message.attempts,
                reason = %error.reason,
                retry_at,
                "sending a message failed"
            );
            state.store.message_failed(&message.id, &error.reason, retry_at, now).await?;
            if let Some(user_id) = &message.user_id {
                let event_type = if give_up { "message.abandoned" } else { "message.failed" };
                audit::record(
                    state,
                    Event::new(event_type, user_id, &ClientMeta::default())
                        .failed()
                        .actor(Some("system".into())),
                )
                .await;
            }
        }
    }
    Ok(true)
}

async fn send(state: &AppState, message: &QueuedMessage) -> Result<(), SendError> {
    let payload = open(state, message).map_err(|e| {
        tracing::error!(message_id = %message.id, error = %e, "a queued message cannot be opened");
        SendError::permanent("the message cannot be opened with this master key")
    })?;
    let content = || -> Result<OutgoingMessage, SendError> {
        serde_json::from_slice(&payload).map_err(|_| SendError::permanent("the message cannot be read"))
    };
    let written = match message.channel {
        Channel::Email => state.delivery.mailer.send(&message.id, &content()?).await?,
        Channel::Sms => state.delivery.sms.send(&message.id, &content()?, state.now()).await?,
        Channel::Webhook => {
            webhooks::deliver(state, message, &payload).await?;
            None
        }
    };
    match written {
        Some(path) => tracing::info!(
            message_id = %message.id,
            kind = %message.kind,
            path = %path.display(),
            "message written to the outbox (no mail server or SMS provider is configured)"
        ),
        None => {
            tracing::info!(message_id = %message.id, kind = %message.kind, channel = message.channel.as_str(), "message sent")
        }
    }
    Ok(())
}

/// The delay before retry number `attempts`: `base`, doubling each time, at most `max`.
fn backoff(base: i64, max: i64, attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let delays: Vec<i64> = (1..=6).map(|n| backoff(10, 300, n)).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300]);
        assert_eq!(backoff(10, 3600, 100), 3600);
    }
}
