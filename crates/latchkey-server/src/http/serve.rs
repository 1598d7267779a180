//! The accept loop (DESIGN rule 18): what one client may hold of the server. Built
//! from hyper's own HTTP/1.1 connection and hyper-util's graceful shutdown; this
//! module only decides the limits:
//!
//! - **a cap on open connections**, within the file-descriptor limit (raised to the
//!   hard limit at start): past it, new connections wait in the kernel's backlog;
//! - **a header-read timeout**: a request's head must arrive within
//!   `http.header_read_timeout_secs`, counted from the connection's opening or its
//!   previous response, so a client trickling headers (slowloris) or sitting idle on a
//!   kept-alive connection is closed;
//! - the peer address, given to handlers as axum's `ConnectInfo`.
//!
//! Shedding requests when too many are in flight is a layer of the router
//! (`http::with_layers`), since its answer is in each surface's error format.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::HttpConfig;

/// File descriptors kept back from connections: the database pool, SQLite's files,
/// the outbox, logs and the listener.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The connection limits in force.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl Limits {
    /// The limits `config` asks for, within the file-descriptor limit, which is raised
    /// to its hard limit first. `database_connections` are kept back too.
    pub fn from_config(config: &HttpConfig, database_connections: u32) -> Self {
        let descriptors = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(error) => {
                tracing::warn!(%error, "could not read or raise the file-descriptor limit; assuming 1024");
                1024
            }
        };
        let reserve = RESERVED_DESCRIPTORS + u64::from(database_connections);
        let fits = usize::try_from(descriptors.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX);
        let max_connections = match config.max_connections {
            Some(wanted) if wanted > fits => {
                tracing::warn!(
                    wanted,
                    allowed = fits,
                    descriptors,
                    "http.max_connections is more than the file-descriptor limit allows; using what fits"
                );
                fits
            }
            Some(wanted) => wanted,
            None => fits,
        };
        tracing::info!(descriptors, max_connections, "file-descriptor limit and connection cap");
        Self { max_connections, header_read_timeout: Duration::from_secs(config.header_read_timeout_secs) }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting,
/// lets in-flight requests finish and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before it was taken:
                    // wait a moment rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tracing::trace!(%peer, "connection accepted");
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
