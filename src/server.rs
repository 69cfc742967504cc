//! Starts the sidecar in two steps: [`Server::bind`] binds the DAP and HTTP listeners
//! (and reports their addresses), [`Server::serve`] runs the listener, the HTTP server,
//! the memory monitor and the upstream watcher until a shutdown token is cancelled.
//!
//! The binary cancels that token on SIGTERM or SIGINT (`src/main.rs`); the in-process
//! tests cancel it themselves. Once it is cancelled every loop stops: the listener stops
//! accepting, each session disconnects from debugpy (the app resumes) and tells its
//! client, the HTTP server closes its connections within a second, and
//! [`Server::serve`] returns.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{Config, LogFormat};
use crate::proxy::listener::Listener;
use crate::state::Shared;

/// How long startup waits for the upstream watcher's first look before serving HTTP.
const FIRST_CHECK_WAIT: Duration = Duration::from_secs(2);

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// host:port from the config.
        addr: String,
        /// The OS error.
        source: io::Error,
    },
    /// Metrics could not be registered (a bug).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Installs the global `tracing` subscriber for `config.log`.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a terminal: `kubectl logs`, files and log shippers get
    // plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// The HTTP server's future, bound but not yet polled.
type HttpServer = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A sidecar whose DAP and HTTP ports are bound, not yet serving. Connections that
/// arrive before [`Server::serve`] wait in the listen backlog.
pub struct Server {
    /// State shared by everything the server runs.
    shared: Arc<Shared>,
    /// The bound DAP listener.
    listener: Listener,
    /// Its address.
    dap_addr: SocketAddr,
    /// The bound HTTP listener's address.
    http_addr: SocketAddr,
    /// The HTTP server, stopped by `stop`.
    http: HttpServer,
    /// Cancelled when the token given to [`Server::serve`] is (the HTTP server had to be
    /// given a token when it was bound).
    stop: CancellationToken,
}

impl Server {
    /// Binds `config.host:config.port` (DAP) and `http.host:http.port` (HTTP) and logs
    /// "DAP listener bound" and "HTTP listener bound" with the bound `addr` (port 0 in the
    /// config binds a free port).
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let shared = Arc::new(Shared::new(config)?);
        let dap_config = shared.config.dap_addr().to_string();
        let listener = Listener::bind(shared.clone())
            .await
            .map_err(|source| StartError::Bind {
                addr: dap_config.clone(),
                source,
            })?;
        let dap_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: dap_config,
            source,
        })?;
        info!(addr = %dap_addr, upstream = %shared.config.upstream, "DAP listener bound");
        shared.set_dap_bound(Some(dap_addr));
        // Live from here: connections wait in the backlog until the accept loop runs, and
        // a probe right after the "bound" line must not see a sidecar that is starting.
        shared.set_listener_running(true);

        let stop = CancellationToken::new();
        let http_config = shared.config.http.addr().to_string();
        let (http_addr, http) = crate::http::bind(shared.clone(), stop.clone())
            .await
            .map_err(|source| StartError::Bind {
                addr: http_config,
                source,
            })?;
        info!(addr = %http_addr, "HTTP listener bound");
        Ok(Server {
            shared,
            listener,
            dap_addr,
            http_addr,
            http: Box::pin(http),
            stop,
        })
    }

    /// The address the DAP listener bound.
    pub fn dap_addr(&self) -> SocketAddr {
        self.dap_addr
    }

    /// The address the HTTP listener bound.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The state the server shares with its sessions (metrics, sessions, readiness).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves until `shutdown` is cancelled, then ends every session cleanly (within the
    /// listener's drain grace) and returns once everything has stopped.
    pub async fn serve(self, shutdown: CancellationToken) {
        let Server {
            shared,
            listener,
            http,
            stop,
            ..
        } = self;
        let forward = {
            let stop = stop.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                stop.cancel();
            })
        };
        let upstream = {
            let shared = shared.clone();
            let token = stop.clone();
            tokio::spawn(async move {
                shared
                    .upstream
                    .run(&shared.config, &shared.metrics, &shared.monitor, token)
                    .await
            })
        };
        // Probes find a checked upstream from the first request on.
        shared.upstream.first_check(FIRST_CHECK_WAIT).await;
        let http = tokio::spawn(http);
        let monitor = {
            let shared = shared.clone();
            let token = stop.clone();
            tokio::spawn(async move {
                shared
                    .monitor
                    .run(&shared.config, &shared.metrics, token)
                    .await
            })
        };

        let nodelay = {
            let shared = shared.clone();
            let token = stop.clone();
            tokio::spawn(async move { shared.nodelay.run(&shared.config, token).await })
        };

        listener.run(stop.clone()).await;
        shared.set_dap_bound(None);
        stop.cancel();
        let _ = monitor.await;
        let _ = nodelay.await;
        let _ = upstream.await;
        match http.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server failed"),
            Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
            Ok(Ok(())) => {}
        }
        forward.abort();
        info!("stopped");
    }
}
