//! SMS: a signed JSON webhook, a Twilio-compatible API, or the outbox.

use std::time::Duration;

use anyhow::Context;
use latchkey_core::UnixTime;
use latchkey_core::crypto::webhook_signature;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{Outbox, OutgoingMessage, SendError};
use crate::config::{Config, SmsProvider};

/// The header carrying the webhook's signature: `t=<unix time>,v1=<hex HMAC-SHA256>`
/// over `"<unix time>.<body>"`.
pub const SIGNATURE_HEADER: &str = "x-latchkey-signature";

/// Where texts go.
pub enum SmsSender {
    Outbox(Outbox),
    Webhook {
        client: reqwest::Client,
        url: String,
        secret: SecretString,
    },
    Twilio {
        client: reqwest::Client,
        messages_url: String,
        account_sid: String,
        auth_token: SecretString,
        from: String,
    },
}

impl SmsSender {
    pub fn from_config(config: &Config, outbox: Outbox) -> anyhow::Result<Self> {
        let sms = &config.sms;
        let client = || {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(sms.timeout_secs))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the HTTP client")
        };
        Ok(match sms.provider {
            SmsProvider::Outbox => Self::Outbox(outbox),
            SmsProvider::Webhook => Self::Webhook {
                client: client()?,
                url: sms.webhook_url.clone().context("sms.webhook_url is required")?,
                secret: sms.webhook_secret.clone().context("sms.webhook_secret is required")?,
            },
            SmsProvider::Twilio => {
                let account_sid =
                    sms.twilio_account_sid.clone().context("sms.twilio_account_sid is required")?;
                Self::Twilio {
                    client: client()?,
                    messages_url: format!(
                        "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
                        sms.twilio_base_url.trim_end_matches('/')
                    ),
                    account_sid,
                    auth_token: sms.twilio_auth_token.clone().context("sms.twilio_auth_token is required")?,
                    from: sms.twilio_from.clone().context("sms.twilio_from is required")?,
                }
            }
        })
    }

    /// Sends one text; `id` is the message's queue id (the webhook's idempotency key
    /// and the outbox file name). Returns the outbox path when there is one.
    pub async fn send(
        &self,
        id: &str,
        message: &OutgoingMessage,
        now: UnixTime,
    ) -> Result<Option<std::path::PathBuf>, SendError> {
        match self {
            Self::Outbox(outbox) => {
                let text = format!("To: {}\n\n{}\n", message.to, message.text);
                outbox.write(&format!("{id}.sms.txt"), text.as_bytes()).await.map(Some)
            }
            Self::Webhook { client, url, secret } => {
                let body = json!({ "to": message.to, "body": message.text }).to_string();
                let signature = webhook_signature(secret.expose_secret().as_bytes(), now, body.as_bytes());
                let response = client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, format!("t={now},v1={signature}"))
                    .header("idempotency-key", id)
                    .body(body)
                    .send()
                    .await;
                check(response).map(|()| None)
            }
            Self::Twilio { client, messages_url, account_sid, auth_token, from } => {
                let response = client
                    .post(messages_url)
                    .basic_auth(account_sid, Some(auth_token.expose_secret()))
                    .form(&[
                        ("To", message.to.as_str()),
                        ("From", from.as_str()),
                        ("Body", message.text.as_str()),
                    ])
                    .send()
                    .await;
                check(response).map(|()| None)
            }
        }
    }
}

/// Judges a provider's answer: 2xx is sent; 408, 429 and 5xx are worth retrying;
/// other statuses will not change.
fn check(response: Result<reqwest::Response, reqwest::Error>) -> Result<(), SendError> {
    let response = response.map_err(|e| {
        SendError::transient(format!("the SMS provider could not be reached: {}", e.without_url()))
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Err(SendError::transient(format!("the SMS provider answered {status}")))
    } else {
        Err(SendError::permanent(format!("the SMS provider refused the message with {status}")))
    }
}
