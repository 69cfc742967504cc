//! Watches debugpy's sockets in the background, so that the HTTP endpoints answer from
//! memory and never read `/proc` per request.
//!
//! Every second (and, coalesced, when `/readyz` asks for a fresh look) one blocking
//! thread reads `/proc/net/tcp` and `/proc/net/tcp6` once, a line at a time, keeping only
//! listening sockets and connections to the upstream port (so a flood of connections
//! elsewhere costs no memory), plus the fd table of debugpy's adapter (its pid comes
//! from the monitor's latest discovery), and the watcher publishes:
//!
//! - whether the upstream port is listening (`upstream_up`);
//! - the **side door**: listening sockets through which debugpy can be reached without
//!   the sidecar. These are the upstream port's listening sockets on a non-loopback
//!   address (`0.0.0.0`, `::`, an interface address: `debugpy --listen 0.0.0.0:5679`,
//!   Home Assistant's debugpy integration with its default host), and any other listening
//!   socket of the adapter process on a non-loopback address (`upstream_exposed`). Anyone
//!   who reaches one runs code in the app without the token: it is logged as a warning
//!   when first seen and every 5 minutes while it lasts, shown on `/status` and the page,
//!   and `/readyz` fails with it unless `auth.allow_exposed_upstream`;
//! - **bypass connections**: established connections to the upstream port (the
//!   adapter's side) whose peer is not one of the sidecar's own upstream connections
//!   (sessions report theirs with [`UpstreamWatch::register_own`]). So that a connection
//!   the sidecar has just opened and not yet registered is not mistaken for one, a
//!   connection counts as foreign only when two consecutive checks see it unregistered
//!   (`upstream_bypass_connections` now, `upstream_bypass_connections_total` by socket,
//!   and a throttled warning when new ones appear).
//!
//! Without permission to read the adapter's fds (another user's process, no
//! `CAP_SYS_PTRACE`) only the upstream port's own sockets are checked.
//!
//! The sidecar awaits the first check ([`UpstreamWatch::first_check`]) before it serves
//! HTTP or accepts IDEs, so neither ever sees an unchecked upstream.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::debuggee::discover::{self, TcpSocket, TcpSocketState as RowState};
use crate::debuggee::monitor::Monitor;
use crate::metrics::Metrics;

/// How often the watcher looks.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// A check older than this is stale: readiness fails on it (the watcher is stuck). Ten
/// checks' worth: on a CPU-starved node with tens of thousands of sockets (reading
/// `/proc/net/tcp` then costs about 100 ms of kernel time), a check was seen to take over
/// 5 s, and readiness must not flap for that.
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// The shortest time between two checks asked for by [`UpstreamWatch::fresh`], so that a
/// flood of probes costs at most a few `/proc` reads a second.
const MIN_GAP: Duration = Duration::from_millis(200);
/// How often the side-door warning is repeated while it lasts.
const EXPOSED_REPEAT: Duration = Duration::from_secs(300);
/// The shortest time between two warnings about new bypass connections.
const BYPASS_LOG_EVERY: Duration = Duration::from_secs(60);

/// What the latest check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamState {
    /// When the check began; `None` before the first one.
    pub checked: Option<Instant>,
    /// Something listens on the upstream port.
    pub listening: bool,
    /// Where debugpy listens on a non-loopback address (sorted).
    pub exposed: Vec<SocketAddr>,
    /// Connections to the upstream port now that did not come through the sidecar.
    pub bypass_connections: usize,
}

impl UpstreamState {
    /// How long ago the check began; `None` before the first one.
    pub fn age(&self) -> Option<Duration> {
        self.checked.map(|t| t.elapsed())
    }

    /// Whether there is a check younger than [`STALE_AFTER`].
    pub fn is_recent(&self) -> bool {
        self.age().is_some_and(|age| age < STALE_AFTER)
    }
}

/// The watcher: the published state, and the sidecar's own upstream connections.
pub struct UpstreamWatch {
    /// The latest check, for readers that must not wait.
    latest: watch::Sender<UpstreamState>,
    /// Local addresses of the sidecar's own open upstream connections (canonical form).
    /// A std mutex: held only to insert, remove or copy.
    own: Mutex<HashSet<SocketAddr>>,
    /// Asks the loop for a check now; several asks before it runs make one check.
    kick: Notify,
}

impl Default for UpstreamWatch {
    fn default() -> Self {
        UpstreamWatch {
            latest: watch::Sender::new(UpstreamState::default()),
            own: Mutex::new(HashSet::new()),
            kick: Notify::new(),
        }
    }
}

/// An address with an IPv4-mapped IPv6 address turned into IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

impl UpstreamWatch {
    fn with_own<T>(&self, f: impl FnOnce(&mut HashSet<SocketAddr>) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        let mut guard = self.own.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// The latest check, without waiting.
    pub fn latest(&self) -> UpstreamState {
        self.latest.borrow().clone()
    }

    /// Where debugpy listens on a non-loopback address, as of the latest check (empty
    /// when it does not, or before the first check).
    pub fn exposed(&self) -> Vec<SocketAddr> {
        self.latest.borrow().exposed.clone()
    }

    /// Records one of the sidecar's own upstream connections by its local address
    /// (`TcpStream::local_addr` of the connection to debugpy).
    pub fn register_own(&self, local: SocketAddr) {
        self.with_own(|own| own.insert(canonical(local)));
    }

    /// Forgets an upstream connection the sidecar has closed.
    pub fn unregister_own(&self, local: SocketAddr) {
        self.with_own(|own| own.remove(&canonical(local)));
    }

    /// A check begun after this call, waiting at most `wait` for it (then the latest
    /// one). Concurrent callers share checks, and checks asked for this way are at
    /// least 200 ms apart.
    pub async fn fresh(&self, wait: Duration) -> UpstreamState {
        let asked = Instant::now();
        let mut rx = self.latest.subscribe();
        self.kick.notify_one();
        let newer = rx.wait_for(|s| s.checked.is_some_and(|at| at >= asked));
        let _ = tokio::time::timeout(wait, newer).await;
        self.latest()
    }

    /// The first check, waiting at most `wait` for it (then the latest state, unchecked).
    /// The sidecar awaits it before serving HTTP, so that no probe is ever told "not
    /// checked yet" by a running sidecar.
    pub async fn first_check(&self, wait: Duration) -> UpstreamState {
        let mut rx = self.latest.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.checked.is_some())).await;
        self.latest()
    }

    #[cfg(test)]
    pub(crate) fn publish(&self, state: UpstreamState) {
        self.latest.send_replace(state);
    }

    /// Checks every [`INTERVAL`] (and when asked) until `shutdown`.
    pub async fn run(
        &self,
        config: &Config,
        metrics: &Metrics,
        monitor: &Monitor,
        shutdown: CancellationToken,
    ) {
        let port = config.upstream_port();
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bypass = Bypass::default();
        let mut report = Report::default();
        let mut last_start: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.kick.notified() => {
                    if let Some(next) = last_start.map(|t| t + MIN_GAP) {
                        tokio::select! {
                            _ = tokio::time::sleep_until(next.into()) => {}
                            _ = shutdown.cancelled() => return,
                        }
                    }
                }
                _ = shutdown.cancelled() => return,
            }
            let started = Instant::now();
            last_start = Some(started);
            let adapter = monitor.adapter_pid();
            let read = tokio::task::spawn_blocking(move || read_proc(port, adapter)).await;
            let Ok((rows, adapter_sockets)) = read else {
                warn!("the upstream watcher's /proc reading thread failed");
                continue;
            };
            debug!(
                sockets = rows.len(),
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                "upstream checked"
            );
            // Copied after the read, so a connection registered before it was opened
            // (the usual order) is never a candidate.
            let own = self.with_own(|own| own.clone());
            let seen = analyse(&rows, port, adapter_sockets.as_ref(), &own);
            let (foreign, new) = bypass.observe(seen.candidates);
            metrics.upstream_up.set(i64::from(seen.listening));
            metrics
                .upstream_exposed
                .set(i64::from(!seen.exposed.is_empty()));
            metrics
                .upstream_bypass_connections
                .set(i64::try_from(foreign.len()).unwrap_or(i64::MAX));
            metrics
                .upstream_bypass_connections_total
                .inc_by(new.len() as u64);
            report.exposed(config, &seen.exposed);
            report.bypass(port, &new);
            self.latest.send_replace(UpstreamState {
                checked: Some(started),
                listening: seen.listening,
                exposed: seen.exposed,
                bypass_connections: foreign.len(),
            });
        }
    }
}

/// A row of the TCP table.
type Row = TcpSocket;

/// One blocking read: the TCP table and the adapter's socket inodes.
/// Only listening sockets and connections to the upstream port are kept.
fn read_proc(port: u16, adapter: Option<i32>) -> (Vec<Row>, Option<HashSet<u64>>) {
    let rows = discover::tcp_sockets(|s| s.state == RowState::Listen || s.local.port() == port);
    (rows, adapter.and_then(discover::socket_inodes))
}

/// What one table says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    /// Something listens on the upstream port.
    listening: bool,
    /// debugpy's non-loopback listening addresses, sorted, without duplicates.
    exposed: Vec<SocketAddr>,
    /// Established connections to the upstream port whose peer is not the sidecar.
    candidates: HashSet<Row>,
}

/// Reads `rows` for the upstream `port`, given the adapter's socket inodes (if known)
/// and the sidecar's own upstream connections' local addresses.
fn analyse(
    rows: &[Row],
    port: u16,
    adapter_sockets: Option<&HashSet<u64>>,
    own: &HashSet<SocketAddr>,
) -> Seen {
    let listening = rows
        .iter()
        .any(|r| r.state == RowState::Listen && r.local.port() == port);
    let mut exposed: Vec<SocketAddr> = rows
        .iter()
        .filter(|r| r.state == RowState::Listen && !is_loopback(r.local.ip()))
        .filter(|r| r.local.port() == port || adapter_sockets.is_some_and(|s| s.contains(&r.inode)))
        .map(|r| r.local)
        .collect();
    exposed.sort();
    exposed.dedup();
    let candidates = rows
        .iter()
        .filter(|r| r.state == RowState::Established && r.local.port() == port)
        .filter(|r| !own.contains(&r.remote))
        .copied()
        .collect();
    Seen {
        listening,
        exposed,
        candidates,
    }
}

/// Tells bypass connections from the sidecar's own across checks.
#[derive(Debug, Default)]
struct Bypass {
    /// The previous check's unregistered connections.
    previous: HashSet<Row>,
    /// Foreign connections already counted (those still open).
    counted: HashSet<Row>,
}

impl Bypass {
    /// Takes one check's unregistered connections; returns the foreign ones (seen
    /// unregistered in this check and the one before) and those of them new since the
    /// last call.
    fn observe(&mut self, candidates: HashSet<Row>) -> (Vec<Row>, Vec<Row>) {
        let foreign: Vec<Row> = candidates
            .iter()
            .filter(|r| self.previous.contains(r))
            .copied()
            .collect();
        let new: Vec<Row> = foreign
            .iter()
            .filter(|r| !self.counted.contains(r))
            .copied()
            .collect();
        self.counted = foreign.iter().copied().collect();
        self.previous = candidates;
        (foreign, new)
    }
}

/// What the watcher has logged, so that it logs changes and repeats at a bounded rate.
#[derive(Debug, Default)]
struct Report {
    /// The exposed addresses last warned about, and when.
    exposed: Option<(Vec<SocketAddr>, Instant)>,
    /// When bypass connections were last warned about.
    bypass_logged: Option<Instant>,
    /// New bypass connections seen since that warning and not logged.
    bypass_unlogged: usize,
}

impl Report {
    /// Warns about a side door when it appears or changes and every
    /// [`EXPOSED_REPEAT`] while it lasts; tells when it is gone.
    fn exposed(&mut self, config: &Config, now: &[SocketAddr]) {
        if now.is_empty() {
            if let Some((was, _)) = self.exposed.take() {
                info!(
                    was = %list(&was),
                    "debugpy no longer listens on a non-loopback address: it is reachable only through the sidecar"
                );
            }
            return;
        }
        let due = match &self.exposed {
            Some((was, at)) => was.as_slice() != now || at.elapsed() >= EXPOSED_REPEAT,
            None => true,
        };
        if !due {
            return;
        }
        let port = config.upstream_port();
        if config.auth.allow_exposed_upstream {
            warn!(
                exposed = %list(now),
                "debugpy listens on {} (not loopback): anyone who can reach it runs code in the app \
                 without the sidecar's token. Start debugpy with --listen 127.0.0.1:{port} \
                 (auth.allow_exposed_upstream is set, so the sidecar keeps relaying)",
                list(now)
            );
        } else {
            warn!(
                exposed = %list(now),
                "debugpy listens on {} (not loopback): anyone who can reach it runs code in the app \
                 without the sidecar's token. Start debugpy with --listen 127.0.0.1:{port}; until \
                 then /readyz reports not ready (auth.allow_exposed_upstream: true accepts the risk)",
                list(now)
            );
        }
        self.exposed = Some((now.to_vec(), Instant::now()));
    }

    /// Warns about new bypass connections, at most every [`BYPASS_LOG_EVERY`].
    fn bypass(&mut self, port: u16, new: &[Row]) {
        self.bypass_unlogged += new.len();
        if self.bypass_unlogged == 0
            || self
                .bypass_logged
                .is_some_and(|t| t.elapsed() < BYPASS_LOG_EVERY)
        {
            return;
        }
        let peers: Vec<SocketAddr> = new.iter().map(|r| r.remote).take(5).collect();
        warn!(
            new = self.bypass_unlogged,
            peers = %list(&peers),
            "a connection to debugpy's port {port} did not come through the sidecar: a client \
             that reaches debugpy directly runs code in the app without the token"
        );
        self.bypass_logged = Some(Instant::now());
        self.bypass_unlogged = 0;
    }
}

/// `a, b, c` for log lines.
fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(local: &str, remote: &str, state: RowState, inode: u64) -> Row {
        let parse = |s: &str| s.parse::<SocketAddr>().map(canonical);
        Row {
            local: parse(local).unwrap_or_else(|e| panic!("{local}: {e}")),
            remote: parse(remote).unwrap_or_else(|e| panic!("{remote}: {e}")),
            state,
            inode,
        }
    }

    fn listen(local: &str, inode: u64) -> Row {
        row(local, "0.0.0.0:0", RowState::Listen, inode)
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().filter_map(|a| a.parse().ok()).collect()
    }

    #[test]
    fn loopback_listeners_are_not_exposed() {
        let rows = [
            listen("127.0.0.1:5679", 1),
            listen("[::1]:5679", 2),
            listen("[::ffff:127.0.0.1]:5679", 3),
            listen("127.0.0.1:40000", 4),
        ];
        let adapter = HashSet::from([1, 4]);
        let seen = analyse(&rows, 5679, Some(&adapter), &HashSet::new());
        assert!(seen.listening);
        assert!(seen.exposed.is_empty(), "{seen:?}");
        assert!(!analyse(&rows, 5680, None, &HashSet::new()).listening);
    }

    #[test]
    fn the_upstream_port_or_any_adapter_socket_on_a_wildcard_or_interface_is_exposed() {
        let rows = [
            listen("0.0.0.0:5679", 1),
            listen("[::]:5679", 2),
            listen("10.1.2.3:41000", 3),
            listen("0.0.0.0:8123", 4), // the app's own web port: not debugpy's
            listen("[::]:42000", 5),
        ];
        let adapter = HashSet::from([1, 3, 5]);
        let seen = analyse(&rows, 5679, Some(&adapter), &HashSet::new());
        assert_eq!(
            seen.exposed,
            addrs(&["0.0.0.0:5679", "10.1.2.3:41000", "[::]:5679", "[::]:42000"])
        );
        let without_fds = analyse(&rows, 5679, None, &HashSet::new());
        assert_eq!(without_fds.exposed, addrs(&["0.0.0.0:5679", "[::]:5679"]));
    }

    #[test]
    fn connections_are_foreign_only_when_unregistered_in_two_checks() {
        let sidecar = row(
            "127.0.0.1:5679",
            "127.0.0.1:50000",
            RowState::Established,
            10,
        );
        let stranger = row("10.0.0.5:5679", "10.0.0.9:60000", RowState::Established, 11);
        let other_side = row(
            "127.0.0.1:50000",
            "127.0.0.1:5679",
            RowState::Established,
            12,
        );
        let rows = [listen("0.0.0.0:5679", 1), sidecar, stranger, other_side];
        let mut bypass = Bypass::default();

        // First check: the sidecar's connection is not registered yet.
        let first = analyse(&rows, 5679, None, &HashSet::new());
        assert_eq!(first.candidates, HashSet::from([sidecar, stranger]));
        let (foreign, new) = bypass.observe(first.candidates);
        assert!(
            foreign.is_empty() && new.is_empty(),
            "one sighting is not enough"
        );

        // Second: registered now (an IPv4-mapped form is the same address).
        let own = HashSet::from([canonical(addrs(&["[::ffff:127.0.0.1]:50000"])[0])]);
        let second = analyse(&rows, 5679, None, &own);
        let (foreign, new) = bypass.observe(second.candidates);
        assert_eq!((foreign, new), (vec![stranger], vec![stranger]));

        // Third: the stranger is still there, but counted once.
        let third = analyse(&rows, 5679, None, &own);
        let (foreign, new) = bypass.observe(third.candidates);
        assert_eq!((foreign.len(), new.len()), (1, 0));

        // Gone, then a new connection from the same peer (another socket) counts again.
        let (foreign, _) = bypass.observe(HashSet::new());
        assert!(foreign.is_empty());
        let again = Row {
            inode: 14,
            ..stranger
        };
        bypass.observe(HashSet::from([again]));
        let (_, new) = bypass.observe(HashSet::from([again]));
        assert_eq!(new, vec![again]);
    }

    #[tokio::test]
    async fn fresh_waits_for_a_check_begun_after_the_ask() {
        let watch = std::sync::Arc::new(UpstreamWatch::default());
        let before = UpstreamState {
            checked: Some(Instant::now()),
            listening: false,
            ..UpstreamState::default()
        };
        watch.publish(before.clone());
        let asker = {
            let watch = watch.clone();
            tokio::spawn(async move { watch.fresh(Duration::from_secs(10)).await })
        };
        // Play the loop: wait for the kick, then publish a newer check.
        watch.kick.notified().await;
        let after = UpstreamState {
            checked: Some(Instant::now()),
            listening: true,
            ..UpstreamState::default()
        };
        watch.publish(after.clone());
        let got = asker.await.unwrap_or_default();
        assert_eq!(got, after);
        // Without a loop, it gives up after `wait` and returns the latest.
        let alone = UpstreamWatch::default();
        assert_eq!(alone.fresh(Duration::from_millis(10)).await.checked, None);
    }

    #[test]
    fn own_connections_register_and_unregister() {
        let watch = UpstreamWatch::default();
        let a = addrs(&["127.0.0.1:50000"])[0];
        watch.register_own(a);
        assert!(watch.with_own(|own| own.contains(&a)));
        watch.unregister_own(a);
        assert!(watch.with_own(|own| own.is_empty()));
    }
}
