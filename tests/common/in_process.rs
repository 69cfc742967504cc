//! The sidecar started in the test's own runtime through its library API
//! (`server::Server::bind`, then `serve` with a shutdown token), on loopback with free
//! ports: no binary, no signals, and tokio's clock is the test's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dap_sidecar::config::{Config, MappingConfig};
use dap_sidecar::server::Server;
use dap_sidecar::state::Shared;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::TOKEN;

/// A config for an in-process sidecar in front of `upstream`: DAP and HTTP on loopback
/// free ports, the test token required, failures answered after 50 ms instead of 1 s.
pub fn config(upstream: SocketAddr) -> Config {
    let mut config = Config::default();
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    config.host = loopback;
    config.port = 0;
    config.http.host = loopback;
    config.http.port = 0;
    config.upstream = upstream.to_string();
    config.upstream_timeout = Duration::from_secs(5);
    config.auth.token = Some(TOKEN.to_owned());
    config.limits.auth_failure_delay = Duration::from_millis(50);
    config
}

/// `config` mapping `local_root` to `remote_root`.
pub fn mapped(mut config: Config, local_root: &str, remote_root: &str) -> Config {
    config.path_mappings = vec![MappingConfig {
        local_root: Some(local_root.to_owned()),
        remote_root: remote_root.to_owned(),
    }];
    config
}

/// A sidecar serving in a task of the current runtime; shut down on drop.
pub struct InProcess {
    /// The DAP address it bound.
    pub dap: SocketAddr,
    /// The HTTP address it bound.
    pub http: SocketAddr,
    /// Its shared state (metrics, sessions).
    pub shared: Arc<Shared>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Binds, starts serving, and returns once the DAP accept loop runs. With
    /// `DAP_SIDECAR_TEST_ECHO` set, the sidecar's log goes to the test's output.
    pub async fn start(config: Config) -> InProcess {
        if std::env::var_os("DAP_SIDECAR_TEST_ECHO").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("dap_sidecar=debug"))
                .with_test_writer()
                .try_init();
        }
        let server = Server::bind(config).await.expect("bind the sidecar");
        let (dap, http, shared) = (
            server.dap_addr(),
            server.http_addr(),
            server.shared().clone(),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.serve(shutdown.clone()));
        // `serve` first waits (briefly) for the upstream watch's first look.
        while !shared.listener_running() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        InProcess {
            dap,
            http,
            shared,
            shutdown,
            task: Some(task),
        }
    }

    /// Cancels the shutdown token (what SIGTERM does in the binary) and waits until
    /// `serve` has returned.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("serve panicked");
        }
    }

    /// The sidecar's `/metrics` text, rendered in-process.
    pub fn metrics(&self) -> String {
        self.shared.metrics.render()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
