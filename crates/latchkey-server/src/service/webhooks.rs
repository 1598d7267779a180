//! Webhooks, as the Standard Webhooks specification describes them: an administrator
//! registers endpoints with the event types they want; every audit event of those
//! types becomes one message per endpoint in the same database-backed queue as email
//! and SMS (`outgoing`), so delivery is at least once, retried with backoff, survives
//! restarts, and never holds up the request that caused it. Each delivery is signed:
//! `webhook-id` (the event's id, the same on every retry), `webhook-timestamp`, and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under each of
//! the endpoint's current secrets (`whsec_<base64>`): after a rotation the previous
//! secret keeps signing beside the new one for [`ROTATION_OVERLAP_SECS`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use latchkey_core::UnixTime;
use latchkey_store::{AuditEvent, Channel, QueuedMessage, WebhookAttempt, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::Mutex;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::clock::rfc3339;
use crate::delivery::SendError;
use crate::http::error::{ApiError, ErrorCode};
use crate::keys;
use crate::random;
use crate::service::outgoing;
use crate::state::AppState;

/// The audit event types an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 11] = [
    "user.created",
    "user.deleted",
    "factor.enrolled",
    "factor.confirmed",
    "factor.removed",
    "mfa.verified",
    "mfa.failed",
    "mfa.locked",
    "recovery_code.used",
    "login.failed",
    "login.throttled",
];

/// How long a replaced secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_SECS: i64 = 24 * 3600;

/// How long one delivery may take before it counts as failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an instance trusts its copy of the endpoint list: a change made on
/// another instance reaches this one within this time (on this one, at once).
const SUBSCRIPTIONS_TTL: Duration = Duration::from_secs(5);

/// One signing secret of an endpoint; `until` is set on secrets a rotation replaced.
#[derive(Serialize, Deserialize, Clone)]
struct Secret {
    secret: String,
    until: Option<UnixTime>,
}

/// What a queued webhook message holds (sealed, like every queued message).
#[derive(Serialize, Deserialize)]
struct Delivery {
    endpoint_id: String,
    event_id: String,
    event_type: String,
    body: String,
}

/// The event types each endpoint wants, cached per instance (see
/// [`SUBSCRIPTIONS_TTL`]) so that an audit event costs no query when nobody listens.
#[derive(Default)]
pub struct Subscriptions {
    cached: Mutex<Option<(Instant, Arc<EndpointTypes>)>>,
}

/// Each endpoint's id with the event types it wants.
type EndpointTypes = Vec<(String, Vec<String>)>;

impl Subscriptions {
    async fn current(&self, state: &AppState) -> Arc<EndpointTypes> {
        let mut cached = self.cached.lock().await;
        if let Some((at, list)) = cached.as_ref()
            && at.elapsed() < SUBSCRIPTIONS_TTL
        {
            return Arc::clone(list);
        }
        let list = match state.store.webhooks().await {
            Ok(endpoints) => Arc::new(endpoints.into_iter().map(|e| (e.id, e.event_types)).collect()),
            Err(error) => {
                tracing::warn!(error = %error, "webhook endpoints could not be read; events are not sent");
                return Arc::new(Vec::new());
            }
        };
        *cached = Some((Instant::now(), Arc::clone(&list)));
        list
    }

    async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}

/// An endpoint as the admin API shows it (never its secrets).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub created_at: UnixTime,
}

impl From<WebhookEndpoint> for Endpoint {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            created_at: e.created_at,
        }
    }
}

pub(crate) fn secrets_context(endpoint_id: &str) -> Vec<u8> {
    format!("webhook:{endpoint_id}").into_bytes()
}

fn new_secret() -> String {
    format!("whsec_{}", STANDARD.encode(random::bytes::<32>()))
}

fn seal_secrets(
    state: &AppState,
    endpoint_id: &str,
    secrets: &[Secret],
) -> Result<latchkey_store::StoredSecret, ApiError> {
    let plain = Zeroizing::new(serde_json::to_vec(secrets).map_err(ApiError::internal)?);
    keys::seal_secret(&state.keys, &plain, &secrets_context(endpoint_id)).map_err(ApiError::internal)
}

fn open_secrets(state: &AppState, endpoint: &WebhookEndpoint) -> anyhow::Result<Vec<Secret>> {
    let plain = keys::open_secret(&state.keys, &endpoint.secrets, &secrets_context(&endpoint.id))?;
    Ok(serde_json::from_slice(&plain)?)
}

/// Checks an endpoint's URL and event types.
fn validate(url: &str, event_types: &[String]) -> Result<(), ApiError> {
    let invalid =
        |field: &str, message: &str| ApiError::field(ErrorCode::InvalidField, field).with_message(message);
    let not_http = || invalid("url", "url must be an absolute http:// or https:// URL");
    let parsed = url::Url::parse(url).map_err(|_| not_http())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(not_http());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "url",
            "url must not carry credentials; the signature authenticates each delivery",
        ));
    }
    if event_types.is_empty() {
        return Err(invalid("event_types", "event_types must name at least one event type"));
    }
    if let Some(unknown) = event_types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        let shown: String = unknown.chars().take(60).collect();
        let message = format!("unknown event type {shown:?}; known: {}", EVENT_TYPES.join(", "));
        return Err(invalid("event_types", &message));
    }
    Ok(())
}

/// Registers an endpoint; returns it with its first secret, shown this once.
pub async fn create(
    state: &AppState,
    url: &str,
    event_types: Vec<String>,
    description: Option<String>,
) -> Result<(Endpoint, String), ApiError> {
    let mut event_types = event_types;
    event_types.sort();
    event_types.dedup();
    validate(url, &event_types)?;
    let id = Uuid::now_v7().to_string();
    let secret = new_secret();
    let secrets = seal_secrets(state, &id, &[Secret { secret: secret.clone(), until: None }])?;
    let endpoint = WebhookEndpoint {
        id,
        url: url.to_owned(),
        description: description.unwrap_or_default().chars().take(200).collect(),
        event_types,
        secrets,
        created_at: state.now(),
    };
    state.store.create_webhook(&endpoint).await?;
    state.webhooks.forget().await;
    Ok((endpoint.into(), secret))
}

pub async fn list(state: &AppState) -> Result<Vec<Endpoint>, ApiError> {
    Ok(state.store.webhooks().await?.into_iter().map(Endpoint::from).collect())
}

/// Removes an endpoint; its queued deliveries are dropped when their turn comes.
pub async fn remove(state: &AppState, id: &str) -> Result<(), ApiError> {
    if !state.store.delete_webhook(id).await? {
        return Err(ErrorCode::NotFound.into());
    }
    state.webhooks.forget().await;
    Ok(())
}

/// A new secret signs from now on; the ones it replaces keep signing beside it for
/// [`ROTATION_OVERLAP_SECS`], so receivers can switch without missing an event.
pub async fn rotate_secret(state: &AppState, id: &str) -> Result<String, ApiError> {
    let endpoint = state.store.webhook(id).await?.ok_or(ErrorCode::NotFound)?;
    let now = state.now();
    let mut secrets: Vec<Secret> = open_secrets(state, &endpoint)
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|s| s.until.is_none_or(|until| until > now))
        .map(|s| Secret { until: Some(s.until.unwrap_or(now + ROTATION_OVERLAP_SECS)), ..s })
        .collect();
    let secret = new_secret();
    secrets.insert(0, Secret { secret: secret.clone(), until: None });
    let sealed = seal_secrets(state, id, &secrets)?;
    if !state.store.set_webhook_secrets(id, &sealed).await? {
        return Err(ErrorCode::NotFound.into());
    }
    Ok(secret)
}

pub async fn attempts(state: &AppState, id: &str, limit: u32) -> Result<Vec<WebhookAttempt>, ApiError> {
    if state.store.webhook(id).await?.is_none() {
        return Err(ErrorCode::NotFound.into());
    }
    Ok(state.store.webhook_attempts(id, limit.clamp(1, 1000)).await?)
}

/// Queues `event` for every endpoint subscribed to its type. Called by the audit
/// trail for every event it records; a failure is logged, never the caller's.
pub async fn publish(state: &AppState, event: &AuditEvent) {
    if !EVENT_TYPES.contains(&event.event_type.as_str()) {
        return;
    }
    let subscriptions = state.webhooks.current(state).await;
    let wanted = subscriptions.iter().filter(|(_, types)| types.contains(&event.event_type));
    let mut body = None;
    for (endpoint_id, _) in wanted {
        let body = match &body {
            Some(body) => body,
            None => body.insert(event_body(event)),
        };
        let delivery = Delivery {
            endpoint_id: endpoint_id.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            body: body.clone(),
        };
        let queued = match serde_json::to_vec(&delivery) {
            Ok(payload) => {
                outgoing::enqueue_payload(state, Channel::Webhook, &event.event_type, None, &payload).await
            }
            Err(error) => Err(ApiError::internal(error)),
        };
        if let Err(error) = queued {
            tracing::error!(code = error.code.as_str(), endpoint_id = %endpoint_id, "a webhook event could not be queued");
        }
    }
}

/// The event as the receiver gets it: `type`, `timestamp`, and `data` (the audit
/// event without anything secret: it never holds codes or tokens).
fn event_body(event: &AuditEvent) -> String {
    serde_json::json!({
        "type": event.event_type,
        "timestamp": rfc3339(event.occurred_at),
        "data": {
            "event_id": event.id,
            "user_id": event.user_id,
            "outcome": event.outcome,
            "factor_id": event.factor_id,
            "factor_type": event.factor_type,
            "actor": event.actor,
            "ip": event.ip,
            "user_agent": event.user_agent,
        },
    })
    .to_string()
}

/// The `webhook-signature` header: one `v1,<signature>` per secret, space-separated.
fn signature_header(secrets: &[Secret], id: &str, timestamp: UnixTime, body: &str) -> anyhow::Result<String> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let encoded = secret.secret.strip_prefix("whsec_").unwrap_or(&secret.secret);
        let key = Zeroizing::new(STANDARD.decode(encoded)?);
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| anyhow::anyhow!("hmac: {e}"))?;
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        signatures.push(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())));
    }
    Ok(signatures.join(" "))
}

/// Sends one queued webhook message, recording the attempt.
pub async fn deliver(state: &AppState, message: &QueuedMessage, payload: &[u8]) -> Result<(), SendError> {
    let delivery: Delivery = serde_json::from_slice(payload)
        .map_err(|_| SendError::permanent("the webhook message cannot be read"))?;
    let Some(endpoint) = state.store.webhook(&delivery.endpoint_id).await.map_err(|e| {
        tracing::warn!(error = %e, "the webhook endpoint could not be read");
        SendError::transient("the database did not answer")
    })?
    else {
        return Err(SendError::permanent("the endpoint was removed"));
    };
    let now = state.now();
    let secrets: Vec<Secret> = open_secrets(state, &endpoint)
        .map_err(|_| SendError::permanent("the endpoint's secrets cannot be opened with this master key"))?
        .into_iter()
        .filter(|s| s.until.is_none_or(|until| until > now))
        .collect();
    let signature = signature_header(&secrets, &delivery.event_id, now, &delivery.body)
        .map_err(|_| SendError::permanent("the endpoint's secret is malformed"))?;
    let sent = state
        .delivery
        .http
        .post(&endpoint.url)
        .timeout(SEND_TIMEOUT)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.event_id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.clone())
        .send()
        .await;
    let (status, outcome) = match sent {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), Ok(())),
        Ok(response) => {
            let status = response.status().as_u16();
            (Some(status), Err(SendError::transient(format!("the endpoint answered HTTP {status}"))))
        }
        Err(error) if error.is_timeout() => {
            (None, Err(SendError::transient("the endpoint did not answer in time")))
        }
        Err(_) => (None, Err(SendError::transient("the endpoint could not be reached"))),
    };
    let attempt = WebhookAttempt {
        id: Uuid::now_v7().to_string(),
        endpoint_id: endpoint.id,
        message_id: message.id.clone(),
        event_id: delivery.event_id,
        event_type: delivery.event_type,
        attempt: message.attempts,
        attempted_at: now,
        status: status.map(i64::from),
        error: outcome.as_ref().err().map(|e| e.reason.clone()),
    };
    if let Err(error) = state.store.record_webhook_attempt(&attempt).await {
        tracing::warn!(error = %error, "a webhook attempt could not be recorded");
    }
    outcome
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_id_timestamp_and_body_under_each_secret() {
        // The Standard Webhooks specification's own example.
        let secret = Secret { secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(), until: None };
        let body = r#"{"test": 2432232314}"#;
        let header =
            signature_header(std::slice::from_ref(&secret), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
                .unwrap();
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let two = signature_header(&[secret.clone(), secret], "id", 1, "{}").unwrap();
        assert_eq!(two.split(' ').count(), 2);
    }

    #[test]
    fn endpoints_need_a_plain_http_url_and_known_event_types() {
        let types = |list: &[&str]| list.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        assert!(validate("https://hooks.example.com/latchkey", &types(&["mfa.verified"])).is_ok());
        assert!(validate("ftp://hooks.example.com", &types(&["mfa.verified"])).is_err());
        assert!(validate("https://user:pw@hooks.example.com", &types(&["mfa.verified"])).is_err());
        assert!(validate("https://hooks.example.com", &[]).is_err());
        assert!(validate("https://hooks.example.com", &types(&["mfa.everything"])).is_err());
    }
}
