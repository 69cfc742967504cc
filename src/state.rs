//! The state the listener, every session, the upstream watch and the HTTP server share:
//! the configuration, authentication, budgets, metrics, the monitor, readiness and
//! liveness flags, and the registry of open connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::debuggee::monitor::Monitor;
use crate::metrics::Metrics;
use crate::proxy::admission::Admission;
use crate::proxy::auth::Auth;
use crate::proxy::throttle::LogThrottle;

/// What the registry knows about one open connection.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// When the connection was accepted.
    pub connected: SystemTime,
    /// When it authenticated, if it has.
    pub authenticated: Option<SystemTime>,
    /// Whether it has the debuggee stopped.
    pub stopped: bool,
}

/// State shared by the listener, every session and the HTTP server.
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// The authentication policy.
    pub auth: Auth,
    /// Metrics.
    pub metrics: Metrics,
    /// The budgets for unauthenticated connections and sessions.
    pub admission: Admission,
    /// Bounds the log lines unauthenticated clients can cause.
    pub log_throttle: LogThrottle,
    /// The app's memory, sampled.
    pub monitor: Monitor,
    /// debugpy's sockets, watched: upstream listening, exposure, bypass connections.
    pub upstream: crate::upstream_watch::UpstreamWatch,
    /// Attach on demand: injections made, one at a time.
    pub injector: crate::inject::Injector,
    /// `TCP_NODELAY` on pydevd's connection to debugpy's adapter: where it stands.
    pub nodelay: crate::nodelay::Nodelay,
    /// Readiness, part 1: the DAP listener is bound (part 2, the upstream listening and
    /// not exposed, is kept by [`Shared::upstream`]).
    dap_bound: AtomicBool,
    /// The address the DAP listener bound (the config may say port 0).
    dap_addr: std::sync::OnceLock<SocketAddr>,
    /// Liveness: the DAP accept loop is running.
    listener_running: AtomicBool,
    /// Open connections by id. A std mutex: held only for map updates, never across await.
    sessions: Mutex<HashMap<u64, SessionInfo>>,
    /// Held (read) by sessions whose debugpy session is being finalized; a new upstream
    /// connection takes it (write) first, because debugpy refuses a new client with
    /// "already being debugged" until the previous session is finalized.
    finalizing: Arc<tokio::sync::RwLock<()>>,
    /// When a session last closed its connection to debugpy (see
    /// [`Shared::wait_settled`]).
    upstream_closed: Mutex<Option<tokio::time::Instant>>,
}

impl Shared {
    /// Shared state for `config`.
    pub fn new(config: Config) -> Result<Shared, prometheus::Error> {
        let metrics = Metrics::new()?;
        let nodelay = crate::nodelay::Nodelay::new(&metrics.registry)?;
        Ok(Shared {
            auth: Auth::new(&config.auth),
            admission: Admission::new(
                config.limits.max_unauthenticated,
                config.limits.max_connections,
            ),
            log_throttle: LogThrottle::default(),
            config,
            metrics,
            nodelay,
            monitor: Monitor::default(),
            upstream: crate::upstream_watch::UpstreamWatch::default(),
            injector: crate::inject::Injector::default(),
            dap_bound: AtomicBool::new(false),
            dap_addr: std::sync::OnceLock::new(),
            listener_running: AtomicBool::new(false),
            sessions: Mutex::new(HashMap::new()),
            finalizing: Arc::new(tokio::sync::RwLock::new(())),
            upstream_closed: Mutex::new(None),
        })
    }

    fn with_sessions<T>(&self, f: impl FnOnce(&mut HashMap<u64, SessionInfo>) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        let mut guard = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Registers a new connection.
    pub fn open(&self, id: u64, peer: SocketAddr) {
        self.with_sessions(|s| {
            s.insert(
                id,
                SessionInfo {
                    peer,
                    connected: SystemTime::now(),
                    authenticated: None,
                    stopped: false,
                },
            )
        });
    }

    /// Marks a connection as authenticated.
    pub fn mark_authenticated(&self, id: u64) {
        let newly = self.with_sessions(|s| match s.get_mut(&id) {
            Some(info) if info.authenticated.is_none() => {
                info.authenticated = Some(SystemTime::now());
                Some(info.peer)
            }
            _ => None,
        });
        if let Some(peer) = newly {
            self.metrics.sessions_active.inc();
            self.monitor.on_attach(&peer.to_string());
        }
    }

    /// Records that the DAP listener is bound at `addr` (readiness) or gone (`None`).
    pub fn set_dap_bound(&self, addr: Option<SocketAddr>) {
        if let Some(addr) = addr {
            let _ = self.dap_addr.set(addr);
        }
        self.dap_bound.store(addr.is_some(), Ordering::Relaxed);
    }

    /// Whether the DAP listener is bound (readiness).
    pub fn dap_bound(&self) -> bool {
        self.dap_bound.load(Ordering::Relaxed)
    }

    /// Records that the DAP accept loop runs (liveness).
    pub fn set_listener_running(&self, running: bool) {
        self.listener_running.store(running, Ordering::Relaxed);
    }

    /// Whether the DAP accept loop runs (liveness).
    pub fn listener_running(&self) -> bool {
        self.listener_running.load(Ordering::Relaxed)
    }

    /// A share of the finalizing lock, held while this session's debugpy session is being
    /// finalized (a new upstream connection waits for every share to be released).
    pub async fn finalizing(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.finalizing.clone().read_owned().await
    }

    /// Waits (up to `wait`) until no debugpy session is being finalized; `false` if one
    /// still is after `wait`.
    pub async fn wait_finalized(&self, wait: std::time::Duration) -> bool {
        tokio::time::timeout(wait, self.finalizing.write())
            .await
            .is_ok()
    }

    /// Notes that a session has just closed its connection to debugpy.
    pub fn note_upstream_closed(&self) {
        let mut closed = self
            .upstream_closed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *closed = Some(tokio::time::Instant::now());
    }

    /// Waits until `settle` has passed since a session last closed its connection to
    /// debugpy. debugpy 1.8's adapter forgets a finished session only a moment after it
    /// closed that session's connection; a client connecting in that moment makes the
    /// adapter write to the closed connection from its accept thread, which dies, and
    /// the adapter never accepts again (see `docs/DEBUGPY.md`). Nothing outside the
    /// adapter shows when that moment is over, hence a wait.
    pub async fn wait_settled(&self, settle: std::time::Duration) {
        let closed = *self
            .upstream_closed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(closed) = closed {
            tokio::time::sleep_until(closed + settle).await;
        }
    }

    /// The DAP address: as bound, or as configured before binding.
    pub fn dap_address(&self) -> String {
        match self.dap_addr.get() {
            Some(addr) => addr.to_string(),
            None => self.config.dap_addr().to_string(),
        }
    }

    /// Records whether the session has the debuggee stopped.
    pub fn set_stopped(&self, id: u64, stopped: bool) {
        let any = self.with_sessions(|s| {
            if let Some(info) = s.get_mut(&id) {
                info.stopped = stopped;
            }
            s.values().any(|i| i.stopped)
        });
        self.metrics.debuggee_stopped.set(i64::from(any));
    }

    /// Removes a connection and counts how it ended.
    pub fn close(&self, id: u64, outcome: &str) {
        let removed = self.with_sessions(|s| {
            let removed = s.remove(&id);
            (removed, s.values().any(|i| i.stopped))
        });
        if let (Some(info), any_stopped) = removed {
            if info.authenticated.is_some() {
                self.metrics.sessions_active.dec();
                self.monitor.on_detach(&info.peer.to_string());
            }
            self.metrics.debuggee_stopped.set(i64::from(any_stopped));
        }
        self.metrics
            .sessions_total
            .with_label_values(&[outcome])
            .inc();
    }

    /// The earliest other authenticated session: who holds the debuggee.
    pub fn holder(&self, not: u64) -> Option<(SocketAddr, SystemTime)> {
        self.with_sessions(|s| {
            s.iter()
                .filter(|(id, _)| **id != not)
                .filter_map(|(_, i)| Some((i.peer, i.authenticated?)))
                .min_by_key(|(_, since)| *since)
        })
    }

    /// A snapshot of the open connections.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.with_sessions(|s| s.values().cloned().collect())
    }

    /// Publishes how many connections have not authenticated yet.
    pub fn update_unauthenticated(&self) {
        let open = self.admission.unauthenticated.len();
        self.metrics
            .connections_unauthenticated
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Counts a refused client.
    pub fn count_auth_failure(&self, reason: &str) {
        self.metrics
            .auth_failures_total
            .with_label_values(&[reason])
            .inc();
    }
}
