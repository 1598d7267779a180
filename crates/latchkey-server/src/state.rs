//! The state every handler shares, built once at start-up from the configuration.

use std::sync::Arc;

use anyhow::Context;
use latchkey_core::crypto::ServerKeys;
use latchkey_core::lockout::LockoutPolicy;
use latchkey_core::session::SessionPolicy;
use latchkey_core::totp;
use latchkey_store::{Backend, ConnectOptions, SqlStore, Store};
use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::keys::{self, MasterKeySource};
use crate::metrics::Metrics;
use crate::passwords::PasswordHasher;
use crate::service::api_keys;
use crate::service::webauthn::RelyingParty;
use crate::service::webhooks::Subscriptions;
use crate::tokens::AccessTokens;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<ServerKeys>,
    pub tokens: Arc<AccessTokens>,
    pub hasher: Arc<PasswordHasher>,
    pub delivery: Arc<Delivery>,
    pub sessions: SessionPolicy,
    pub totp: totp::Params,
    pub lockout: LockoutPolicy,
    /// The WebAuthn relying party (`webauthn.*`).
    pub webauthn: Arc<RelyingParty>,
    /// This service's Prometheus registry (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Which webhook endpoints want which events (cached).
    pub webhooks: Arc<Subscriptions>,
    /// API keys recently looked up (`service::api_keys::Cache`).
    pub api_keys: Arc<api_keys::Cache>,
}

impl AppState {
    /// Opens the database (creating the SQLite file's directory if needed), applies
    /// migrations, loads the master key and the signing key.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let url = config.database_url();
        if Backend::from_url(&url)? == Backend::Sqlite {
            ensure_sqlite_directory(&url)?;
        }
        let (master, source) = keys::load_master_key(&config)?;
        match source {
            MasterKeySource::Configured => {}
            MasterKeySource::GeneratedFile | MasterKeySource::ExistingFile => tracing::warn!(
                path = %config.data_dir.join("master.key").display(),
                "using a master key generated into the data directory: fine for development; in production set \
                 keys.master_key or keys.master_key_file (the same on every instance) and keep it safe"
            ),
        }
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        let store = SqlStore::connect(
            &url,
            &ConnectOptions {
                max_connections: config.database.max_connections,
                acquire_timeout: std::time::Duration::from_secs(config.database.acquire_timeout_secs),
                group_commit: config.database.group_commit,
            },
        )
        .await
        .with_context(|| format!("opening the database {}", crate::config::redacted_url(&url)))?;
        if Backend::from_url(&url)? == Backend::Sqlite {
            restrict_sqlite_files(&url)?;
        }
        store.migrate(clock.now()).await.context("migrating the database")?;
        let mut keys = master.derive();
        if let Some(other) = &config.keys.accepted_master_key {
            let other = latchkey_core::crypto::MasterKey::parse(other.expose_secret())
                .context("keys.accepted_master_key")?;
            keys = keys.accepting(&other);
        }
        if let Some(hashing) = crate::service::rotation::stored_hashing_key(&store, &keys).await? {
            keys.hashing = hashing;
        }
        let (signing, public) = keys::load_signing_keys(&store, &keys, clock.now()).await?;
        let tokens = AccessTokens::new(
            config.public_base(),
            &config.tokens.audience,
            config.tokens.access_ttl_secs,
            &signing,
            &public,
        )?;
        let hasher = PasswordHasher::new(config.hash_concurrency())?;
        let delivery = Delivery::from_config(&config)?;
        let sessions = SessionPolicy {
            idle_timeout_secs: config.sessions.idle_timeout_secs,
            absolute_timeout_secs: config.sessions.absolute_timeout_secs,
        };
        let totp = config.totp_params().map_err(anyhow::Error::msg)?;
        let lockout = config.lockout_policy();
        let webauthn = RelyingParty::from_config(&config)?;
        Ok(Self {
            metrics: Arc::new(Metrics::new()),
            webhooks: Arc::new(Subscriptions::default()),
            api_keys: Arc::new(api_keys::Cache::default()),
            webauthn: Arc::new(webauthn),
            totp,
            lockout,
            config: Arc::new(config),
            store: Arc::new(store),
            clock,
            keys: Arc::new(keys),
            tokens: Arc::new(tokens),
            hasher: Arc::new(hasher),
            delivery: Arc::new(delivery),
            sessions,
        })
    }

    pub fn now(&self) -> latchkey_core::UnixTime {
        self.clock.now()
    }
}

/// Creates the directory of a `sqlite://path` URL so the database file can be made.
fn ensure_sqlite_directory(url: &str) -> anyhow::Result<()> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        keys::create_private_dir(dir)?;
    }
    Ok(())
}

/// Makes a SQLite database and its WAL and shared-memory files readable by this user
/// only: they hold password hashes. SQLite gives files it creates later the database
/// file's permissions.
fn restrict_sqlite_files(url: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path.starts_with(':') {
            return Ok(());
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{path}{suffix}");
            if std::path::Path::new(&file).exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("restricting {file}"))?;
            }
        }
    }
    Ok(())
}
