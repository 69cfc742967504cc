//! Starts the sidecar: logging, the DAP listener, the HTTP server, the memory monitor,
//! the upstream watcher, and the shutdown signals.
//!
//! SIGTERM or SIGINT cancels one [`CancellationToken`] that every loop watches: the
//! listener stops accepting, each session disconnects from debugpy (the app resumes) and
//! tells its client, the HTTP server closes its connections within a second, and the
//! process exits 0.

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
        source: std::io::Error,
    },
    /// Metrics could not be registered (a bug).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(std::io::Error),
}

/// Installs the global `tracing` subscriber for `config.log`.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs until SIGTERM/SIGINT, then shuts down cleanly.
pub async fn run(config: Config) -> Result<(), StartError> {
    let shutdown = CancellationToken::new();
    let signals = watch_signals(shutdown.clone())?;
    let shared = Arc::new(Shared::new(config)?);
    let listener = Listener::bind(shared.clone())
        .await
        .map_err(|source| StartError::Bind {
            addr: format!("{}:{}", shared.config.host, shared.config.port),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: format!("{}:{}", shared.config.host, shared.config.port),
        source,
    })?;
    info!(addr = %addr, upstream = %shared.config.upstream, "DAP listener bound");
    shared.set_dap_bound(Some(addr));

    let upstream = {
        let shared = shared.clone();
        let token = shutdown.clone();
        tokio::spawn(async move {
            shared
                .upstream
                .run(&shared.config, &shared.metrics, &shared.monitor, token)
                .await
        })
    };
    // Probes find a checked upstream from the first request on.
    shared.upstream.first_check(FIRST_CHECK_WAIT).await;

    let http_addr = format!("{}:{}", shared.config.http.host, shared.config.http.port);
    let (bound, http) = crate::http::bind(shared.clone(), shutdown.clone())
        .await
        .map_err(|source| StartError::Bind {
            addr: http_addr,
            source,
        })?;
    info!(addr = %bound, "HTTP listener bound");
    let http = tokio::spawn(http);
    let monitor = {
        let shared = shared.clone();
        let token = shutdown.clone();
        tokio::spawn(async move {
            shared
                .monitor
                .run(&shared.config, &shared.metrics, token)
                .await
        })
    };

    listener.run(shutdown.clone()).await;
    shared.set_dap_bound(None);
    shutdown.cancel();
    let _ = monitor.await;
    let _ = upstream.await;
    match http.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server failed"),
        Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
        Ok(Ok(())) => {}
    }
    signals.abort();
    info!("stopped");
    Ok(())
}

fn watch_signals(shutdown: CancellationToken) -> Result<tokio::task::JoinHandle<()>, StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
        shutdown.cancel();
    }))
}
