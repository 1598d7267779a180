//! The one typed configuration. Layers, each overriding the one before: built-in
//! defaults → `latchkey.toml` (or the file given with `--config`) → `LATCHKEY_*`
//! environment variables (`__` separates sections: `LATCHKEY_DATABASE__URL`) →
//! command-line flags. Unknown keys are an error at every layer. A secret can be given
//! directly or as a path in its `*_file` twin. `DATABASE_URL` is used when
//! `database.url` is set nowhere else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use latchkey_core::lockout::LockoutPolicy;
use latchkey_core::totp;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

mod sections;
mod webauthn;

pub use sections::*;
pub use webauthn::*;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database, generated keys and the outbox.
    pub data_dir: PathBuf,
    /// The URL people and clients reach this service at; used as the token issuer
    /// and as the base of every link Latchkey sends.
    pub public_url: String,
    /// Whether `POST /v1/auth/signup` is open.
    pub signup_enabled: bool,
    pub log_format: LogFormat,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub keys: KeysConfig,
    pub tokens: TokensConfig,
    pub sessions: SessionsConfig,
    pub passwords: PasswordsConfig,
    pub totp: TotpConfig,
    pub mfa: MfaConfig,
    pub lockout: LockoutConfig,
    pub login_throttle: LoginThrottleConfig,
    pub email: EmailConfig,
    pub sms: SmsConfig,
    pub delivery: DeliveryConfig,
    pub magic_link: MagicLinkConfig,
    pub webauthn: WebauthnConfig,
    pub web: WebConfig,
    pub prisme: PrismeConfig,
    pub cors: CorsConfig,
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./latchkey-data"),
            public_url: "http://127.0.0.1:8080".into(),
            signup_enabled: true,
            log_format: LogFormat::Text,
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            keys: KeysConfig::default(),
            tokens: TokensConfig::default(),
            sessions: SessionsConfig::default(),
            passwords: PasswordsConfig::default(),
            totp: TotpConfig::default(),
            mfa: MfaConfig::default(),
            lockout: LockoutConfig::default(),
            login_throttle: LoginThrottleConfig::default(),
            email: EmailConfig::default(),
            sms: SmsConfig::default(),
            delivery: DeliveryConfig::default(),
            magic_link: MagicLinkConfig::default(),
            webauthn: WebauthnConfig::default(),
            web: WebConfig::default(),
            prisme: PrismeConfig::default(),
            cors: CorsConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Values given on the command line; they override every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub log_format: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration crate's error, whose text already says everything: it is not
    /// also given as a source, so it is printed once.
    #[error("{0}")]
    Load(config::ConfigError),
    #[error("cannot read {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// An unknown key that came from the environment is reported by the variable's name,
/// which is what the operator has to find and fix.
fn name_the_variable(error: config::ConfigError, env: &HashMap<String, String>) -> ConfigError {
    let text = error.to_string();
    let unknown = text.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next());
    let variable = unknown.and_then(|field| {
        let mut names: Vec<&String> = env
            .keys()
            .filter(|name| {
                let path = name.trim_start_matches("LATCHKEY_").to_ascii_lowercase();
                path.split("__").any(|segment| segment == field)
            })
            .collect();
        names.sort();
        names.first().map(|name| name.to_string())
    });
    match variable {
        Some(name) => {
            ConfigError::Invalid(format!("the environment variable {name} names no setting ({text})"))
        }
        None => ConfigError::Load(error),
    }
}

impl From<config::ConfigError> for ConfigError {
    fn from(error: config::ConfigError) -> Self {
        Self::Load(error)
    }
}

const DEFAULT_FILE: &str = "latchkey.toml";

impl Config {
    /// Loads the layers. `file` is the `--config` path (required to exist when
    /// given); otherwise `latchkey.toml` in the working directory is read if present.
    /// `env` is the process environment (passed in so tests can supply their own).
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        match file {
            Some(path) => builder = builder.add_source(config::File::from(path).required(true)),
            None => builder = builder.add_source(config::File::with_name(DEFAULT_FILE).required(false)),
        }
        let ours: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("LATCHKEY_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("LATCHKEY")
                .prefix_separator("_")
                .separator("__")
                // Values stay strings until deserialized into their field's type, so a
                // secret made only of digits is never turned into a number.
                .try_parsing(false)
                .source(Some(ours.clone())),
        );
        if let Some(listen) = &overrides.listen {
            builder = builder.set_override("listen", listen.as_str())?;
        }
        if let Some(dir) = &overrides.data_dir {
            builder = builder.set_override("data_dir", dir.to_string_lossy().as_ref())?;
        }
        if let Some(url) = &overrides.database_url {
            builder = builder.set_override("database.url", url.as_str())?;
        }
        if let Some(format) = &overrides.log_format {
            builder = builder.set_override("log_format", format.as_str())?;
        }
        let mut config: Config =
            builder.build()?.try_deserialize().map_err(|error| name_the_variable(error, &ours))?;
        if config.database.url.is_none() {
            config.database.url = env.get("DATABASE_URL").filter(|v| !v.is_empty()).cloned();
        }
        config.resolve_secret_files()?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        read_secret_file("keys.master_key", &mut self.keys.master_key, &self.keys.master_key_file)?;
        read_secret_file(
            "keys.accepted_master_key",
            &mut self.keys.accepted_master_key,
            &self.keys.accepted_master_key_file,
        )?;
        read_secret_file(
            "email.smtp_password",
            &mut self.email.smtp_password,
            &self.email.smtp_password_file,
        )?;
        read_secret_file("sms.webhook_secret", &mut self.sms.webhook_secret, &self.sms.webhook_secret_file)?;
        read_secret_file(
            "metrics.bearer_token",
            &mut self.metrics.bearer_token,
            &self.metrics.bearer_token_file,
        )?;
        read_secret_file(
            "sms.twilio_auth_token",
            &mut self.sms.twilio_auth_token,
            &self.sms.twilio_auth_token_file,
        )?;
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: &str| Err(ConfigError::Invalid(message.into()));
        // The same parse `serve` makes, so `config check` refuses what `serve` would.
        if let Some(key) = &self.keys.master_key
            && latchkey_core::crypto::MasterKey::parse(key.expose_secret()).is_err()
        {
            return invalid("keys.master_key must be 32 bytes, as 64 hex digits or base64");
        }
        if let Some(key) = &self.keys.accepted_master_key
            && latchkey_core::crypto::MasterKey::parse(key.expose_secret()).is_err()
        {
            return invalid("keys.accepted_master_key must be 32 bytes, as 64 hex digits or base64");
        }
        if !is_http_url(&self.public_url) {
            return invalid("public_url must start with http:// or https://");
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections must be at least 1");
        }
        if !(1..=60).contains(&self.database.acquire_timeout_secs) {
            return invalid("database.acquire_timeout_secs must be between 1 and 60");
        }
        if !(60..=86_400).contains(&self.tokens.access_ttl_secs) {
            return invalid("tokens.access_ttl_secs must be between 60 and 86400");
        }
        if !(1..=60).contains(&self.tokens.key_refresh_secs) {
            return invalid("tokens.key_refresh_secs must be between 1 and 60");
        }
        if self.tokens.audience.is_empty() {
            return invalid("tokens.audience must not be empty");
        }
        if self.sessions.idle_timeout_secs < 60
            || self.sessions.absolute_timeout_secs < self.sessions.idle_timeout_secs
        {
            return invalid(
                "sessions.idle_timeout_secs must be at least 60 and at most sessions.absolute_timeout_secs",
            );
        }
        if self.sessions.purge_interval_secs == 0 {
            return invalid("sessions.purge_interval_secs must be at least 1");
        }
        self.totp_params().map_err(ConfigError::Invalid)?;
        if !(60..=3600).contains(&self.mfa.mfa_token_ttl_secs)
            || !(60..=86_400).contains(&self.mfa.pending_factor_ttl_secs)
        {
            return invalid(
                "mfa.mfa_token_ttl_secs must be 60 to 3600 and mfa.pending_factor_ttl_secs 60 to 86400",
            );
        }
        if let Some(bad) = self.cors.allowed_origins.iter().find(|o| !is_origin(o)) {
            let shown: String = bad.chars().take(100).collect();
            return invalid(&format!(
                "cors.allowed_origins holds origins like \"https://app.example.com\" (no path): {shown:?}"
            ));
        }
        if self.metrics.listen == Some(self.listen) && self.listen.port() != 0 {
            return invalid("metrics.listen must differ from listen (leave it out to serve /metrics there)");
        }
        if self.metrics.bearer_token.as_ref().is_some_and(|t| t.expose_secret().len() < 16) {
            return invalid("metrics.bearer_token must be at least 16 characters");
        }
        if !(900..=90 * 86_400).contains(&self.prisme.session_ttl_secs) {
            return invalid("prisme.session_ttl_secs must be 900 to 7776000");
        }
        if self.mfa.reauth_window_secs < 0 {
            return invalid("mfa.reauth_window_secs must not be negative");
        }
        if !(600..=30 * 86_400).contains(&self.mfa.recovery_link_ttl_secs)
            || !(0..=30 * 86_400).contains(&self.mfa.self_recovery_wait_secs)
        {
            return invalid(
                "mfa.recovery_link_ttl_secs must be 600 to 2592000 and mfa.self_recovery_wait_secs 0 to 2592000",
            );
        }
        let http = &self.http;
        if http.header_read_timeout_secs == 0
            || http.request_timeout_secs == 0
            || http.max_in_flight_requests == 0
            || http.max_connections == Some(0)
        {
            return invalid(
                "http: header_read_timeout_secs, request_timeout_secs, max_in_flight_requests and \
                 max_connections must be at least 1",
            );
        }
        self.relying_party()?;
        self.webauthn.attestation_policy().map_err(ConfigError::Invalid)?;
        if http.trusted_proxies.iter().any(|ip| ip.parse::<std::net::IpAddr>().is_err()) {
            return invalid("http.trusted_proxies holds IP addresses, like \"10.0.0.2\"");
        }
        if !(1..=365).contains(&self.mfa.remember_device_days) {
            return invalid("mfa.remember_device_days must be 1 to 365");
        }
        if !(1..=100).contains(&self.mfa.max_factors_per_user) {
            return invalid("mfa.max_factors_per_user must be 1 to 100");
        }
        if self.lockout.lock_after == 0 || self.lockout.base_delay_secs < 0 || self.lockout.max_delay_secs < 0
        {
            return invalid("lockout.lock_after must be at least 1 and delays must not be negative");
        }
        let throttle = &self.login_throttle;
        if throttle.base_delay_secs < 1
            || throttle.max_delay_secs < throttle.base_delay_secs
            || throttle.forget_after_secs < 1
        {
            return invalid(
                "login_throttle delays must be at least 1 second, max_delay_secs at least base_delay_secs, \
                 and forget_after_secs at least 1",
            );
        }
        if let Some(url) = &self.database.url {
            latchkey_store::Backend::from_url(url).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        self.validate_delivery()
    }

    fn validate_delivery(&self) -> Result<(), ConfigError> {
        let invalid = |message: &str| Err(ConfigError::Invalid(message.into()));
        if let Some(url) = &self.email.smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            return invalid("email.smtp_url must start with smtp:// or smtps://");
        }
        if !self.email.from.contains('@') {
            return invalid("email.from must hold an email address");
        }
        match self.sms.provider {
            SmsProvider::Outbox => {}
            SmsProvider::Webhook => {
                if !self.sms.webhook_url.as_deref().is_some_and(is_http_url)
                    || self.sms.webhook_secret.is_none()
                {
                    return invalid(
                        "the webhook SMS provider needs sms.webhook_url (http/https) and sms.webhook_secret",
                    );
                }
            }
            SmsProvider::Twilio => {
                if self.sms.twilio_account_sid.is_none()
                    || self.sms.twilio_auth_token.is_none()
                    || self.sms.twilio_from.is_none()
                    || !is_http_url(&self.sms.twilio_base_url)
                {
                    return invalid(
                        "the twilio SMS provider needs sms.twilio_account_sid, sms.twilio_auth_token, \
                         sms.twilio_from and an http(s) sms.twilio_base_url",
                    );
                }
            }
        }
        if self.sms.allowed_country_codes.iter().any(|code| {
            let digits = code.trim_start_matches('+');
            digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
        }) {
            return invalid(
                "sms.allowed_country_codes holds calling codes of 1 to 3 digits, like \"1\" or \"44\"",
            );
        }
        if self.delivery.max_attempts == 0
            || self.delivery.retry_base_secs < 1
            || self.delivery.retry_max_secs < self.delivery.retry_base_secs
            || self.delivery.poll_interval_ms == 0
            || self.delivery.lease_secs < 1
        {
            return invalid(
                "delivery: max_attempts, retry_base_secs, poll_interval_ms and lease_secs must be at least 1, \
                 and retry_max_secs at least retry_base_secs",
            );
        }
        if self.delivery.sends_per_user_per_hour < 1
            || self.delivery.sends_per_ip_per_hour < 1
            || self.sms.max_per_minute < 1
        {
            return invalid(
                "delivery.sends_per_user_per_hour, delivery.sends_per_ip_per_hour and sms.max_per_minute must be at least 1",
            );
        }
        if let Some(url) = &self.magic_link.redirect_url
            && !is_http_url(url)
        {
            return invalid("magic_link.redirect_url must start with http:// or https://");
        }
        if let Err(message) = crate::pages::return_to::Allowed::parse(&self.web.allowed_return_urls) {
            return invalid(&message);
        }
        Ok(())
    }

    /// The database URL in effect: the configured one or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("latchkey.db").display()))
    }

    /// The TOTP parameters new factors get.
    pub fn totp_params(&self) -> Result<totp::Params, String> {
        let algorithm = totp::Algorithm::parse(&self.totp.algorithm)
            .ok_or_else(|| "totp.algorithm must be SHA1, SHA256 or SHA512".to_owned())?;
        if self.totp.issuer.trim().is_empty() {
            return Err("totp.issuer must not be empty".into());
        }
        totp::Params { algorithm, digits: self.totp.digits, period: self.totp.period }
            .validate()
            .map_err(|e| format!("totp: {e}"))
    }

    /// The WebAuthn relying party: its id and the origins allowed to use it.
    pub fn relying_party(&self) -> Result<(String, Vec<webauthn_rs::prelude::Url>), ConfigError> {
        self.webauthn.relying_party(&self.public_url).map_err(|why| ConfigError::Invalid(why.to_owned()))
    }

    /// The trusted proxies' addresses (validated at load).
    pub fn trusted_proxies(&self) -> Vec<std::net::IpAddr> {
        self.http.trusted_proxies.iter().filter_map(|ip| ip.parse().ok()).collect()
    }

    /// Settings that are valid but risky in production, as sentences for the operator.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut warnings = Vec::new();
        if self.sms.provider != SmsProvider::Outbox && self.sms.allowed_country_codes.is_empty() {
            warnings.push(
                "sms.allowed_country_codes is empty, so texts may go to any country, premium-rate numbers \
                 included (SMS pumping): list the calling codes of the countries your users are in",
            );
        }
        warnings
    }

    pub fn lockout_policy(&self) -> LockoutPolicy {
        LockoutPolicy {
            free_failures: self.lockout.free_failures,
            base_delay_secs: self.lockout.base_delay_secs,
            max_delay_secs: self.lockout.max_delay_secs,
            lock_after: self.lockout.lock_after,
        }
    }

    /// The public URL without a trailing slash.
    pub fn public_base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// How many password hashes may run at once.
    pub fn hash_concurrency(&self) -> usize {
        match self.passwords.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        }
    }

    /// The effective configuration as TOML with every secret redacted.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.database.url.is_none() {
            shown.database.url = Some(self.database_url());
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Fills `secret` from the file `path` names, if any; setting both is an error.
fn read_secret_file(
    name: &str,
    secret: &mut Option<SecretString>,
    path: &Option<PathBuf>,
) -> Result<(), ConfigError> {
    let Some(path) = path else {
        return Ok(());
    };
    if secret.is_some() {
        return Err(ConfigError::Invalid(format!("set {name} or {name}_file, not both")));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::ReadFile { path: path.clone(), source })?;
    *secret = Some(SecretString::from(text.trim().to_owned()));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

/// Whether `text` is a web origin: `http(s)://host[:port]`, nothing after.
fn is_origin(text: &str) -> bool {
    reqwest::Url::parse(text).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.path() == "/"
            && !text.ends_with('/')
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
    })
}
