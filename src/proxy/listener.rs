//! Accepts DAP connections and runs a [`Session`] for each.
//!
//! Accepting never waits for anything: the kernel's backlog (`limits.listen_backlog`)
//! only holds connections for the moment between two accepts. Each accepted connection
//! is first checked against `auth.allow` (refused ones are told why in one `output`
//! event, written without waiting, and closed), then takes a place among the
//! unauthenticated connections, shedding the oldest one when they are all taken (see
//! [`super::admission`]). Authenticated sessions have their own budget, so no flood of
//! unauthenticated connections can lock a developer out.
//!
//! On shutdown the loop stops accepting, sessions end themselves (disconnecting upstream
//! so the app resumes) and [`Listener::run`] returns once they have, or after a grace
//! period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::dap::codec::DapCodec;
use crate::dap::message;
use crate::proxy::auth::Refusal;
use crate::proxy::session::Session;
use crate::state::Shared;
use crate::throttled;

/// How long sessions get to end cleanly after a shutdown signal.
const DRAIN_GRACE: Duration = Duration::from_secs(8);

/// How long the accept loop pauses after an accept error (EMFILE and friends), so it
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The accept loop lets other tasks run after this many accepts.
const YIELD_EVERY: u64 = 16;

/// How much of what a client already sent is looked at when it is accepted: the
/// `initialize` of VS Code or nvim-dap is well under this.
const PEEK_BYTES: usize = 4096;

/// Whether the client has already sent a complete DAP message, without waiting or
/// consuming anything (a look at the socket's receive queue, framed by the same codec
/// the session uses). An honest client sends its `initialize` right after connecting,
/// so under a flood of silent or half-sent connections it is marked as talking at
/// accept and is shed only after every one of those, however long its session task
/// waits for a CPU. `None` if the socket cannot be handed back to the runtime.
fn has_spoken(stream: TcpStream, codec: &DapCodec) -> Option<(TcpStream, bool)> {
    let stream = stream.into_std().ok()?;
    let mut buf = [0u8; PEEK_BYTES];
    // Non-blocking (tokio sets it): the answer is immediate.
    let talking = match stream.peek(&mut buf) {
        Ok(n) if n > 0 => {
            let mut peeked = bytes::BytesMut::from(&buf[..n]);
            matches!(codec.clone().decode(&mut peeked), Ok(Some(_)))
        }
        _ => false,
    };
    Some((TcpStream::from_std(stream).ok()?, talking))
}

/// The bound DAP listener.
pub struct Listener {
    /// The socket.
    listener: TcpListener,
    /// State shared with sessions.
    shared: Arc<Shared>,
}

/// Binds `addr` with the given listen backlog (and `SO_REUSEADDR`, as std does).
pub fn bind_with_backlog(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

impl Listener {
    /// Binds `config.host:config.port`.
    pub async fn bind(shared: Arc<Shared>) -> std::io::Result<Listener> {
        let addr = shared.config.dap_addr();
        let listener = bind_with_backlog(addr, shared.config.limits.listen_backlog)?;
        Ok(Listener { listener, shared })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` fires, then drains the sessions.
    pub async fn run(self, shutdown: CancellationToken) {
        let next_id = AtomicU64::new(1);
        let limits = &self.shared.config.limits;
        let handshake_codec = DapCodec::new(limits.max_header_bytes, limits.max_handshake_bytes);
        let mut sessions = JoinSet::new();
        self.shared.set_listener_running(true);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.cancelled() => break,
                // Reap finished sessions so the set does not grow.
                Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    throttled!(
                        self.shared.log_throttle,
                        "accept_failed",
                        warn!(error = %e, "accept failed")
                    );
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            if let Err(refusal) = self.shared.auth.check_address(peer.ip()) {
                self.refuse_address(&stream, peer, &refusal);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let Some((stream, talking)) = has_spoken(stream, &handshake_codec) else {
                continue;
            };
            let (place, shed) = self.shared.admission.unauthenticated.admit();
            if talking {
                place.progressed();
            }
            if shed {
                self.shared
                    .metrics
                    .connections_shed_total
                    .with_label_values(&["dap"])
                    .inc();
            }
            self.shared.update_unauthenticated();
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let shared = self.shared.clone();
            let token = shutdown.clone();
            debug!(%peer, id, "client connected");
            sessions.spawn(async move {
                shared.open(id, peer);
                let outcome = Session::new(id, peer, shared.clone(), stream)
                    .run(place, token)
                    .await;
                shared.close(id, outcome.label());
                shared.update_unauthenticated();
                if outcome.unauthenticated() {
                    throttled!(
                        shared.log_throttle,
                        "unauthenticated_closed",
                        info!(%peer, id, outcome = outcome.label(), "connection closed")
                    );
                } else {
                    info!(%peer, id, outcome = outcome.label(), "connection closed");
                }
            });
            // Now and then let the new sessions read what their clients sent: with a full
            // backlog, tokio would let this loop accept up to its budget of 128
            // connections in one go. Not after every accept: that slows accepting enough
            // for a flood to fill the backlog, and a client whose SYN is dropped waits a
            // second to retry.
            if id.is_multiple_of(YIELD_EVERY) {
                tokio::task::yield_now().await;
            }
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

    /// A client outside `auth.allow`: counted, logged within the throttle, told why in
    /// one `output` event if its socket takes it without waiting, and closed.
    fn refuse_address(&self, stream: &TcpStream, peer: SocketAddr, refusal: &Refusal) {
        self.shared.count_auth_failure(refusal.reason());
        self.shared
            .metrics
            .sessions_total
            .with_label_values(&["refused"])
            .inc();
        throttled!(
            self.shared.log_throttle,
            "not_allowed",
            warn!(%peer, reason = refusal.reason(), "connection refused")
        );
        let event = message::console(0, &refusal.to_string());
        let mut frame = bytes::BytesMut::new();
        let mut codec = DapCodec::new(0, 0);
        if tokio_util::codec::Encoder::encode(&mut codec, event.bytes().clone(), &mut frame).is_ok()
        {
            let _ = stream.try_write(&frame);
        }
    }
}
