//! The configuration's sections, each with its defaults, and how their values are read
//! from text (lists) and shown back (secrets redacted).

use std::path::PathBuf;

use latchkey_core::lockout::LockoutPolicy;
use latchkey_core::login::ThrottlePolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// What one client may hold of the server (DESIGN rule 18).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A client must send a request's whole head within this many seconds of the
    /// connection opening or of its previous response; an idle kept-alive connection
    /// is closed after the same time.
    pub header_read_timeout_secs: u64,
    /// A request taking longer is answered `408`.
    pub request_timeout_secs: u64,
    /// Connections held open at once; further ones wait in the kernel's backlog until
    /// one closes. Unset: what the file-descriptor limit allows (the server raises its
    /// soft limit to the hard one at start), less a reserve for the database and files.
    pub max_connections: Option<usize>,
    /// Requests handled at once; more are answered at once with `503` and
    /// `Retry-After: 1` (in the surface's own error format) instead of queueing.
    pub max_in_flight_requests: usize,
    /// Addresses of the load balancers or proxies in front of this server. A request
    /// from one of them is taken to come from the address it appends to
    /// `X-Forwarded-For` (the rightmost address that is not itself a trusted proxy);
    /// from anyone else, the header is ignored, since clients can write it.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: None,
            max_in_flight_requests: 512,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://user:pass@host/db`; SQLite in `data_dir` if unset.
    #[serde(serialize_with = "redact_url")]
    pub url: Option<String>,
    pub max_connections: u32,
    /// How long a request waits for a connection before it answers 503.
    pub acquire_timeout_secs: u64,
    /// Whether concurrent second-factor attempts share one transaction; unset chooses
    /// by database: on for SQLite, off for PostgreSQL (docs/PERFORMANCE.md).
    pub group_commit: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// The 32-byte master key (64 hex digits or base64). Generated into
    /// `data_dir/master.key` when neither this nor `master_key_file` is set.
    #[serde(serialize_with = "redact_secret")]
    pub master_key: Option<SecretString>,
    pub master_key_file: Option<PathBuf>,
    /// Another master key whose sealed values are opened but never made: set on every
    /// instance during a master-key rotation (docs/OPERATIONS.md).
    #[serde(serialize_with = "redact_secret")]
    pub accepted_master_key: Option<SecretString>,
    pub accepted_master_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// The `aud` claim of access tokens.
    pub audience: String,
    /// Lifetime of access tokens in seconds.
    pub access_ttl_secs: i64,
    /// How often each instance reloads the signing keys from the database, so a
    /// rotation reaches it without a restart.
    pub key_refresh_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// A session ends after this long without a token refresh.
    pub idle_timeout_secs: i64,
    /// A session ends this long after login, whatever happens.
    pub absolute_timeout_secs: i64,
    /// How often expired sessions, lapsed pending factors and MFA tokens are deleted.
    pub purge_interval_secs: u64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordsConfig {
    /// Password hashes computed at once, each on its own long-lived thread with 19 MiB
    /// of working memory; 0 means half the CPU cores, at least one.
    pub max_concurrent_hashes: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, max_connections: 10, acquire_timeout_secs: 3, group_commit: None }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self { audience: "latchkey".into(), access_ttl_secs: 15 * 60, key_refresh_secs: 5 }
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self { idle_timeout_secs: 30 * 60, absolute_timeout_secs: 12 * 3600, purge_interval_secs: 10 * 60 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TotpConfig {
    /// The issuer shown in authenticator apps (and in the `otpauth://` label).
    pub issuer: String,
    /// `SHA1` (what every app supports), `SHA256` or `SHA512`.
    pub algorithm: String,
    /// Code length, 6 to 8.
    pub digits: u32,
    /// Seconds per code, 15 to 300.
    pub period: u32,
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self { issuer: "Latchkey".into(), algorithm: "SHA1".into(), digits: 6, period: 30 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaConfig {
    /// Lifetime of the `mfa_token` handed out after the first factor.
    pub mfa_token_ttl_secs: i64,
    /// How long a factor may stay unconfirmed.
    pub pending_factor_ttl_secs: i64,
    /// How recent a login must be to add or remove factors or regenerate codes.
    pub reauth_window_secs: i64,
    /// How long a remembered device skips the second factor.
    pub remember_device_days: i64,
    /// Factors one user may have, active or being set up (a pending factor of a type
    /// replaces the previous pending one of that type).
    pub max_factors_per_user: usize,
    /// How long an administrator's recovery link stays usable.
    pub recovery_link_ttl_secs: i64,
    /// Self-service recovery for a user who lost every factor: the wait between asking
    /// (with the password) and the emailed link opening, during which every known
    /// address is told and any sign-in with a second factor cancels it. `0` (the
    /// default) turns self-service recovery off.
    pub self_recovery_wait_secs: i64,
}

impl Default for MfaConfig {
    fn default() -> Self {
        Self {
            mfa_token_ttl_secs: 300,
            pending_factor_ttl_secs: 600,
            reauth_window_secs: 600,
            remember_device_days: 30,
            max_factors_per_user: 10,
            recovery_link_ttl_secs: 72 * 3600,
            self_recovery_wait_secs: 0,
        }
    }
}

/// Brute-force protection of second factors, counted per user in the database.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Consecutive failures allowed without delay.
    pub free_failures: u32,
    /// Delay after the first failure past the free ones; doubles with each further one.
    pub base_delay_secs: i64,
    pub max_delay_secs: i64,
    /// Consecutive failures that lock the second factor until an administrator resets it.
    pub lock_after: u32,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        let policy = LockoutPolicy::default();
        Self {
            free_failures: policy.free_failures,
            base_delay_secs: policy.base_delay_secs,
            max_delay_secs: policy.max_delay_secs,
            lock_after: policy.lock_after,
        }
    }
}

/// Throttling of passwords (DESIGN rule 16), counted in the database per account (or
/// per remembered device the account trusts) and per client IP. Past the free
/// failures each attempt waits a delay that doubles from `base_delay_secs` up to
/// `max_delay_secs`, answered with 429 and `Retry-After`; nothing locks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginThrottleConfig {
    /// Consecutive failures an account (or a trusted device) may have without delay.
    pub account_free_failures: u32,
    /// Failures a client IP may have without delay; higher, since many people can
    /// share one address.
    pub ip_free_failures: u32,
    pub base_delay_secs: i64,
    pub max_delay_secs: i64,
    /// A count whose last attempt is older than this starts again.
    pub forget_after_secs: i64,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        let (account, ip) = (ThrottlePolicy::ACCOUNT, ThrottlePolicy::CLIENT_IP);
        Self {
            account_free_failures: account.free_failures,
            ip_free_failures: ip.free_failures,
            base_delay_secs: account.base_delay_secs,
            max_delay_secs: account.max_delay_secs,
            forget_after_secs: account.forget_after_secs,
        }
    }
}

impl LoginThrottleConfig {
    fn policy(&self, free_failures: u32) -> ThrottlePolicy {
        ThrottlePolicy {
            free_failures,
            base_delay_secs: self.base_delay_secs,
            max_delay_secs: self.max_delay_secs,
            forget_after_secs: self.forget_after_secs,
        }
    }

    /// The policy for an account's count, or a trusted device's.
    pub fn account(&self) -> ThrottlePolicy {
        self.policy(self.account_free_failures)
    }

    /// The policy for a client IP's count.
    pub fn client_ip(&self) -> ThrottlePolicy {
        self.policy(self.ip_free_failures)
    }
}

/// Outgoing email. Without `smtp_url`, messages are written to the outbox directory
/// (`data_dir/outbox`) instead, with a log line that never holds the code.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// The `From` of every message, as `Name <address>` or a bare address.
    pub from: String,
    /// `smtp://[user[:password]@]host[:port]` (STARTTLS, required unless `?tls=none`
    /// or `?tls=opportunistic`) or `smtps://...` (TLS from the first byte).
    #[serde(serialize_with = "redact_url")]
    pub smtp_url: Option<String>,
    /// The SMTP password, when it should not sit in the URL.
    #[serde(serialize_with = "redact_secret")]
    pub smtp_password: Option<SecretString>,
    pub smtp_password_file: Option<PathBuf>,
    /// A PEM file of extra certificate authorities to trust for the SMTP server (for
    /// relays with a private CA); the public web roots are always trusted.
    pub smtp_ca_file: Option<PathBuf>,
    /// Give up on one SMTP conversation after this many seconds.
    pub smtp_timeout_secs: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            from: "Latchkey <latchkey@localhost>".into(),
            smtp_url: None,
            smtp_password: None,
            smtp_password_file: None,
            smtp_ca_file: None,
            smtp_timeout_secs: 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    /// Write texts to the outbox directory (development).
    Outbox,
    /// `POST {to, body}` as JSON to `webhook_url`, signed with `webhook_secret`.
    Webhook,
    /// Twilio's Messages API, or any service that speaks it.
    Twilio,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub provider: SmsProvider,
    pub webhook_url: Option<String>,
    /// Key of the `X-Latchkey-Signature` HMAC; required for the webhook provider.
    #[serde(serialize_with = "redact_secret")]
    pub webhook_secret: Option<SecretString>,
    pub webhook_secret_file: Option<PathBuf>,
    pub twilio_account_sid: Option<String>,
    #[serde(serialize_with = "redact_secret")]
    pub twilio_auth_token: Option<SecretString>,
    pub twilio_auth_token_file: Option<PathBuf>,
    /// The sending number (E.164) or messaging service.
    pub twilio_from: Option<String>,
    pub twilio_base_url: String,
    /// Country calling codes phone factors may use (`["1", "44"]`, or `"1,44"` from
    /// the environment); empty allows all, which a server with a real SMS provider
    /// warns about at start: the allow-list is the defence against SMS pumping to
    /// premium-rate numbers.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub allowed_country_codes: Vec<String>,
    /// Texts the whole service may send per minute, whoever asks: a ceiling on what
    /// pumping can cost.
    pub max_per_minute: i64,
    /// Give up on one provider request after this many seconds.
    pub timeout_secs: u64,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            provider: SmsProvider::Outbox,
            webhook_url: None,
            webhook_secret: None,
            webhook_secret_file: None,
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_auth_token_file: None,
            twilio_from: None,
            twilio_base_url: "https://api.twilio.com".into(),
            allowed_country_codes: Vec::new(),
            max_per_minute: 60,
            timeout_secs: 20,
        }
    }
}

/// The delivery queue: every email and text goes through it, so a request never
/// waits on a mail server and a restart loses nothing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Attempts before a message is given up (and audited as `message.abandoned`).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with each further one.
    pub retry_base_secs: i64,
    pub retry_max_secs: i64,
    /// How often the queue is checked when nothing wakes it.
    pub poll_interval_ms: u64,
    /// How long a worker holds a message; if it dies, another takes the message after.
    pub lease_secs: i64,
    /// Codes and links one user may be sent per hour, over all their addresses and
    /// numbers (each destination also has its own limit: one a minute, ten an hour).
    pub sends_per_user_per_hour: i64,
    /// Codes and links sent per hour at the request of one client IP.
    pub sends_per_ip_per_hour: i64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base_secs: 10,
            retry_max_secs: 3600,
            poll_interval_ms: 1000,
            lease_secs: 60,
            sends_per_user_per_hour: 20,
            sends_per_ip_per_hour: 60,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Where the hosted pages may send a browser after sign-in (`/login?return_to=`):
    /// an origin (`https://app.example.com`: any path on it) or an origin with a path
    /// prefix (`https://app.example.com/auth/`). Anything else is refused and logged;
    /// Latchkey's own pages (`/account/security`) are always allowed.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub allowed_return_urls: Vec<String>,
}

/// Cross-origin requests from browser apps (CORS).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins (`https://app.example.com`, no path) whose pages may call the API from
    /// the browser. Empty (the default): no cross-origin calls. Credentials (cookies)
    /// are never allowed across origins; tokens travel in `Authorization`.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub allowed_origins: Vec<String>,
}

/// Prometheus metrics at `/metrics`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Whether `/metrics` is served at all.
    pub enabled: bool,
    /// Serve `/metrics` on this address (a private interface, say) instead of on the
    /// main listener, where it then answers 404.
    pub listen: Option<std::net::SocketAddr>,
    /// When set, a scrape must send `Authorization: Bearer <token>` (Prometheus's
    /// `authorization` or `bearer_token_file`); without it, 401.
    #[serde(serialize_with = "redact_secret")]
    pub bearer_token: Option<SecretString>,
    /// A file holding `bearer_token`.
    pub bearer_token_file: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, listen: None, bearer_token: None, bearer_token_file: None }
    }
}

/// The Prisme.ai surface (`/v2`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrismeConfig {
    /// How long a `/v2/login` session and its token last. Prisme.ai has no refresh
    /// endpoint and its tokens last 30 days, so its clients expect to stay signed in;
    /// every request still checks the session, so a revoked one ends at once.
    pub session_ttl_secs: i64,
}

impl Default for PrismeConfig {
    fn default() -> Self {
        Self { session_ttl_secs: 30 * 86_400 }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MagicLinkConfig {
    /// Where a browser is sent after confirming a sign-in link, with the outcome in
    /// the URL fragment (never sent to any server). Unset: sign-in links are off;
    /// magic links as a second factor work regardless.
    pub redirect_url: Option<String>,
}

/// A list given as a TOML array or as one comma-separated string (environment values).
pub(super) fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Items(Vec<String>),
        Text(String),
    }
    Ok(match List::deserialize(deserializer)? {
        List::Items(items) => items,
        List::Text(text) => {
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        }
    })
}

fn redact_secret<S: Serializer>(value: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(secret) if !secret.expose_secret().is_empty() => serializer.serialize_str("[redacted]"),
        _ => serializer.serialize_none(),
    }
}

/// Shows a database URL with any password replaced.
fn redact_url<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(url) => serializer.serialize_str(&redacted_url(url)),
        None => serializer.serialize_none(),
    }
}

pub(crate) fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:[redacted]@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let path = path.map(|p| p.split_once('?').map_or(p, |(before, _)| before)).map(|p| format!("/{p}"));
    format!("{scheme}://{authority}{}", path.unwrap_or_default())
}
