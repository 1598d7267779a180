//! Start-up and shutdown: [`Application::build`] binds the listener (port 0 in tests)
//! and prepares the state; [`Application::run_until_stopped`] serves until the given
//! shutdown signal, then stops the background tasks and waits for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http;
use crate::service::{self, sessions};
use crate::state::AppState;

pub struct Application {
    listener: TcpListener,
    /// `metrics.listen`'s, when `/metrics` has its own address.
    metrics_listener: Option<TcpListener>,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        install_crypto_provider();
        let listen = config.listen;
        // The port first: a server that cannot listen must not touch the database.
        let listener = TcpListener::bind(listen).await.with_context(|| {
            format!(
                "cannot listen on {listen}; if another program holds the port, choose another with --listen"
            )
        })?;
        let metrics_listener = match config.metrics.listen.filter(|_| config.metrics.enabled) {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} for metrics (metrics.listen)"))?,
            ),
            None => None,
        };
        let state = AppState::build(config, clock).await?;
        Ok(Self { listener, metrics_listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served when it has its own listener.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let purge = tokio::spawn(purge_expired_periodically(self.state.clone(), stop_rx.clone()));
        let delivery = tokio::spawn(service::outgoing::run(self.state.clone(), stop_rx.clone()));
        let upkeep = tokio::spawn(metrics_upkeep(self.state.clone(), stop_rx.clone()));
        let key_refresh = tokio::spawn(refresh_signing_keys(self.state.clone(), stop_rx.clone()));
        let metrics = match self.metrics_listener {
            Some(listener) => {
                tracing::info!(address = %listener.local_addr()?, "metrics are served on their own listener");
                let app = crate::native::metrics::own_listener().with_state(self.state.clone());
                let mut stop = stop_rx;
                Some(tokio::spawn(async move {
                    let stopped = async move {
                        let _ = stop.changed().await;
                    };
                    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
                        tracing::error!(error = %error, "the metrics listener failed");
                    }
                }))
            }
            None => None,
        };
        let limits = http::serve::Limits::from_config(
            &self.state.config.http,
            self.state.config.database.max_connections,
        );
        let app = http::router(self.state);
        tracing::info!(address = %self.listener.local_addr()?, "latchkey is listening");
        http::serve::serve(self.listener, app, limits, async move {
            shutdown.await;
            tracing::info!("shutting down");
        })
        .await;
        let _ = stop_tx.send(true);
        purge.await.context("the session purge task failed")?;
        upkeep.await.context("the metrics upkeep task failed")?;
        key_refresh.await.context("the key refresh task failed")?;
        if let Some(metrics) = metrics {
            metrics.await.context("the metrics listener failed")?;
        }
        delivery.await.context("the delivery task failed")?;
        Ok(())
    }
}

/// TLS clients (PostgreSQL connections) use aws-lc-rs; choose it explicitly.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The background task "purge-expired": deletes dead sessions, lapsed pending factors,
/// used or expired MFA tokens and challenges, and finished messages every `sessions.purge_interval_secs` until told to
/// stop.
async fn purge_expired_periodically(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_secs(state.config.sessions.purge_interval_secs));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => match sessions::purge(&state).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "purged expired sessions, factors and tokens"),
                Err(error) => tracing::warn!(code = error.code.as_str(), "purging expired records failed"),
            },
            _ = stop.changed() => break,
        }
    }
}

/// The background task "metrics-upkeep": keeps the metrics registry from growing
/// between scrapes.
async fn metrics_upkeep(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = interval.tick() => state.metrics.upkeep(),
            _ = stop.changed() => break,
        }
    }
}

/// The background task "key-refresh": reloads the signing keys every
/// `tokens.key_refresh_secs`, so a rotation (`latchkey keys rotate-signing`) reaches
/// this instance without a restart: the new key verifies at once and signs from its
/// `signs_from`; a retired key leaves the key set.
async fn refresh_signing_keys(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_secs(state.config.tokens.key_refresh_secs));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let loaded = crate::keys::load_signing_keys(state.store.as_ref(), &state.keys, state.now()).await;
                match loaded.and_then(|(signing, public)| state.tokens.replace_keys(&signing, &public)) {
                    Ok(true) => tracing::info!(kid = %state.tokens.signing_kid(), "signing keys reloaded"),
                    Ok(false) => {}
                    Err(error) => tracing::warn!(error = %error, "the signing keys could not be reloaded"),
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
