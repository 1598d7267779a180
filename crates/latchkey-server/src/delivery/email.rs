//! Email: SMTP through lettre (STARTTLS or TLS, with authentication), or the outbox.

use std::time::Duration;

use anyhow::{Context, bail};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use reqwest::Url;
use secrecy::ExposeSecret;

use super::{Outbox, OutgoingMessage, SendError};
use crate::config::Config;

/// Where email goes.
pub enum Mailer {
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox },
    Outbox { outbox: Outbox, from: Mailbox },
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// TLS from the first byte (`smtps://`, usually port 465).
    Tls,
    /// STARTTLS, refusing to continue without it (the default for `smtp://`).
    StartTlsRequired,
    /// STARTTLS when the server offers it (`?tls=opportunistic`).
    StartTlsOpportunistic,
    /// Plain text (`?tls=none`), for a relay on the same host.
    None,
}

impl Mailer {
    pub fn from_config(config: &Config, outbox: Outbox) -> anyhow::Result<Self> {
        let from: Mailbox = config.email.from.parse().context("email.from is not a valid mailbox")?;
        let Some(url) = &config.email.smtp_url else {
            return Ok(Self::Outbox { outbox, from });
        };
        let url = Url::parse(url).context("email.smtp_url is not a valid URL")?;
        let host = url.host_str().filter(|h| !h.is_empty()).context("email.smtp_url has no host")?.to_owned();
        let security = match (url.scheme(), url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v)) {
            ("smtps", None) => Security::Tls,
            ("smtp", None) => Security::StartTlsRequired,
            ("smtp", Some(mode)) => match mode.as_ref() {
                "required" => Security::StartTlsRequired,
                "opportunistic" => Security::StartTlsOpportunistic,
                "none" => Security::None,
                _ => bail!("email.smtp_url: tls must be required, opportunistic or none"),
            },
            _ => bail!(
                "email.smtp_url: use smtps:// for TLS, or smtp:// with ?tls=required|opportunistic|none"
            ),
        };
        let port = url.port().unwrap_or(if security == Security::Tls { 465 } else { 587 });
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(Duration::from_secs(config.email.smtp_timeout_secs)));
        if security != Security::None {
            let mut tls = TlsParameters::builder(host);
            if let Some(path) = &config.email.smtp_ca_file {
                let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                tls = tls.add_root_certificate(
                    Certificate::from_pem(&pem)
                        .with_context(|| format!("{} holds no PEM certificate", path.display()))?,
                );
            }
            let tls = tls.build_rustls().context("setting up TLS for SMTP")?;
            builder = builder.tls(match security {
                Security::Tls => Tls::Wrapper(tls),
                Security::StartTlsRequired => Tls::Required(tls),
                _ => Tls::Opportunistic(tls),
            });
        }
        let user = percent_decode(url.username());
        let password = match &config.email.smtp_password {
            Some(password) => Some(password.expose_secret().to_owned()),
            None => url.password().map(percent_decode),
        };
        if !user.is_empty() {
            if security == Security::None {
                bail!("email.smtp_url: credentials are never sent without TLS; drop ?tls=none");
            }
            builder = builder.credentials(Credentials::new(user, password.unwrap_or_default()));
        }
        Ok(Self::Smtp { transport: builder.build(), from })
    }

    /// Sends (or writes to the outbox) one message; `id` names its outbox file.
    /// Returns the outbox path when there is one.
    pub async fn send(
        &self,
        id: &str,
        message: &OutgoingMessage,
    ) -> Result<Option<std::path::PathBuf>, SendError> {
        match self {
            Self::Smtp { transport, from } => {
                let email = build(from, message)?;
                match transport.send(email).await {
                    Ok(_) => Ok(None),
                    Err(error) if error.is_permanent() => {
                        Err(SendError::permanent(format!("the SMTP server refused the message: {error}")))
                    }
                    Err(error) => Err(SendError::transient(format!("SMTP failed: {error}"))),
                }
            }
            Self::Outbox { outbox, from } => {
                let email = build(from, message)?;
                outbox.write(&format!("{id}.eml"), &email.formatted()).await.map(Some)
            }
        }
    }
}

/// A multipart (text + HTML) message.
fn build(from: &Mailbox, message: &OutgoingMessage) -> Result<lettre::Message, SendError> {
    let to: Mailbox =
        message.to.parse().map_err(|_| SendError::permanent("the recipient is not a valid address"))?;
    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(message.text.clone());
    let body = match &message.html {
        Some(html) => MultiPart::alternative()
            .singlepart(text)
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html.clone())),
        None => MultiPart::mixed().singlepart(text),
    };
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&message.subject)
        .multipart(body)
        .map_err(|e| SendError::permanent(format!("the message could not be built: {e}")))
}

/// Decodes `%xx` escapes in a URL's user or password.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_percent_decoded() {
        assert_eq!(percent_decode("user%40example.com"), "user@example.com");
        assert_eq!(percent_decode("p%2Fss%"), "p/ss%");
    }
}
