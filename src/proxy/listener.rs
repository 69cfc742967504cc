//! Accepts DAP connections and runs a [`Session`] for each.
//!
//! A semaphore caps concurrent connections (`limits.max_connections`): when it is
//! exhausted the loop stops accepting and further clients wait in the kernel's backlog.
//! On shutdown the loop stops accepting, sessions end themselves (disconnecting upstream
//! so the app resumes) and [`Listener::run`] returns once they have, or after a grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::proxy::Shared;
use crate::proxy::session::Session;

/// How long sessions get to end cleanly after a shutdown signal.
const DRAIN_GRACE: Duration = Duration::from_secs(8);

/// The bound DAP listener.
pub struct Listener {
    /// The socket.
    listener: TcpListener,
    /// State shared with sessions.
    shared: Arc<Shared>,
    /// One permit per open connection.
    limit: Arc<Semaphore>,
}

impl Listener {
    /// Binds `config.host:config.port`.
    pub async fn bind(shared: Arc<Shared>) -> std::io::Result<Listener> {
        let addr = SocketAddr::new(shared.config.host, shared.config.port);
        let listener = TcpListener::bind(addr).await?;
        let limit = Arc::new(Semaphore::new(shared.config.limits.max_connections));
        Ok(Listener {
            listener,
            shared,
            limit,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` fires, then drains the sessions.
    pub async fn run(self, shutdown: CancellationToken) {
        let next_id = AtomicU64::new(1);
        let mut sessions = JoinSet::new();
        self.shared.listener_running.store(true, Ordering::Relaxed);
        loop {
            let permit = tokio::select! {
                permit = self.limit.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break, // the semaphore is never closed
                },
                _ = shutdown.cancelled() => break,
            };
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.cancelled() => break,
                // Reap finished sessions so the set does not grow.
                Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: keep serving the sessions we have.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let shared = self.shared.clone();
            let token = shutdown.clone();
            info!(%peer, id, "client connected");
            sessions.spawn(async move {
                shared.open(id, peer);
                let outcome = Session::new(id, peer, shared.clone(), stream)
                    .run(token)
                    .await;
                shared.close(id, outcome.label());
                info!(%peer, id, outcome = outcome.label(), "connection closed");
                drop(permit);
            });
        }
        info!(
            open = sessions.len(),
            "DAP listener stopped; ending sessions"
        );
        let drained = tokio::time::timeout(DRAIN_GRACE, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("some sessions did not end in time; aborting them");
            sessions.abort_all();
        }
    }
}
