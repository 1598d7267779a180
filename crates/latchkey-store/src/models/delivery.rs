//! The records of sending: the send throttle, the outgoing queue, webhook endpoints and
//! their delivery attempts.

use latchkey_core::UnixTime;

use super::StoredSecret;

/// One count a send is judged by: the keyed hash it is kept under and its limits.
#[derive(Debug, Clone, Copy)]
pub struct SendKey<'a> {
    pub hash: &'a [u8],
    pub limits: SendLimits,
}

/// Limits on sends counted under one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// Seconds that must pass between two sends.
    pub min_interval_secs: i64,
    /// Sends allowed per window.
    pub per_window: i64,
    pub window_secs: i64,
}

/// The answer to "may we send this now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendClaim {
    /// Counted; go ahead.
    Granted,
    /// Too soon or too many: try again at `until`.
    Throttled { until: UnixTime },
}

/// Email or SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
    /// An event for one webhook endpoint.
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Email, Self::Sms, Self::Webhook].into_iter().find(|c| c.as_str() == text)
    }
}

/// A webhook endpoint; `secrets` is the sealed JSON list of its signing secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub secrets: StoredSecret,
    pub created_at: UnixTime,
}

/// One attempt to deliver an event to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub id: String,
    pub endpoint_id: String,
    pub message_id: String,
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub attempted_at: UnixTime,
    /// The endpoint's HTTP status; none when it could not be reached.
    pub status: Option<i64>,
    pub error: Option<String>,
}

/// A message for the delivery queue; its content is sealed.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub channel: Channel,
    /// What the message is (`email_code`, `notification`, ...), for logs and audit.
    pub kind: String,
    pub user_id: Option<String>,
    pub payload: StoredSecret,
    pub created_at: UnixTime,
}

/// A message leased to one worker until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: String,
    pub channel: Channel,
    pub kind: String,
    pub user_id: Option<String>,
    pub payload: StoredSecret,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub created_at: UnixTime,
}

/// Counts of the queue's messages by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    /// When the oldest message still waiting to be sent was queued.
    pub oldest_queued_at: Option<UnixTime>,
}
