//! One client connection, from accept to close: the [`Session`], how it ended
//! ([`Outcome`]), and [`Session::run`], which goes through the phases in order. Each
//! phase is an `impl Session` block in its own file:
//!
//! 1. **Handshake** ([`super::handshake`], nothing reaches debugpy): the sidecar answers
//!    `initialize` itself and waits for `attach`, which it authenticates, within small
//!    budgets of bytes, messages and time; the client's settings are then taken out of
//!    the `attach` ([`super::attach`]). Then the client needs one of the
//!    `limits.max_connections` session slots (here, in [`Session::run`]).
//! 2. **Connect** ([`super::upstream`]): only then it checks that debugpy is not exposed
//!    and connects to the upstream, retrying with backoff for `upstream_timeout` and
//!    telling the client through `output` events.
//! 3. **Upstream handshake** ([`super::capabilities`]): the client's own `initialize` is
//!    forwarded; if debugpy's capabilities differ from those the sidecar announced, a
//!    `capabilities` event reconciles them. Then the `attach` goes up, without `token`
//!    and `pathMappings`.
//! 4. **Relay** ([`super::relay`]) both ways, rewriting paths; reverse requests pass
//!    through.
//! 5. **End** ([`super::ending`]): a client that vanishes gets a `disconnect`
//!    (terminateDebuggee false) sent upstream on its behalf, so an app paused at a
//!    breakpoint resumes; an upstream that vanishes gets the client a `terminated` event.
//!
//! This file also holds the helpers every phase uses to write to the client.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::SinkExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::dap::codec::{CodecError, DapCodec};
use crate::dap::message::{self, Message};
use crate::paths::PathMapper;
use crate::proxy::admission::Place;
use crate::proxy::attach::Attach;
use crate::proxy::auth::Refusal;
use crate::proxy::client::ClientInfo;
use crate::proxy::relay::Relay;
use crate::proxy::upstream::OwnConnection;
use crate::state::Shared;

/// How a session ended; the label of `sessions_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The client sent `disconnect`.
    Disconnected,
    /// The client went away without `disconnect` (or broke the protocol) after attaching.
    ClientLost,
    /// The upstream closed the connection.
    UpstreamLost,
    /// The sidecar shut down.
    Shutdown,
    /// Authentication failed.
    Refused,
    /// The upstream never accepted within `upstream_timeout`.
    UpstreamUnavailable,
    /// The client left, timed out or broke the protocol before attaching.
    Abandoned,
    /// The app grew past `memory.max_growth_while_attached` with `on_limit: detach`.
    MemoryLimit,
    /// Closed before authenticating, to make room for a newer connection.
    Shed,
    /// Refused because debugpy listens on a non-loopback address.
    UpstreamExposed,
    /// Attach on demand was refused or failed (`injections_total` says why).
    NotInjected,
}

impl Outcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Disconnected => "disconnected",
            Outcome::ClientLost => "client_lost",
            Outcome::UpstreamLost => "upstream_lost",
            Outcome::Shutdown => "shutdown",
            Outcome::Refused => "refused",
            Outcome::UpstreamUnavailable => "upstream_unavailable",
            Outcome::Abandoned => "abandoned",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::Shed => "shed",
            Outcome::UpstreamExposed => "upstream_exposed",
            Outcome::NotInjected => "not_injected",
        }
    }

    /// Whether the connection ended before it authenticated (these are what an
    /// unauthenticated client can cause at will, so their log lines are throttled).
    pub fn unauthenticated(self) -> bool {
        matches!(self, Outcome::Refused | Outcome::Abandoned | Outcome::Shed)
    }
}

/// The client side.
type Conn = Framed<TcpStream, DapCodec>;

/// One client connection.
pub struct Session {
    /// Registry key of this session.
    pub(super) id: u64,
    /// The client's address.
    pub(super) peer: SocketAddr,
    /// When the connection was accepted (the handshake's deadline counts from here).
    pub(super) accepted: Instant,
    /// State shared by all sessions.
    pub(super) shared: Arc<Shared>,
    /// The client's connection.
    pub(super) client: Conn,
    /// `seq` of the next message the sidecar writes itself.
    own_seq: i64,
    /// Highest `seq` the client has used, so a `disconnect` on its behalf does not clash.
    pub(super) max_client_seq: i64,
    /// The path mapper of this session.
    pub(super) mapper: PathMapper,
    /// Who the client is, from its `initialize`.
    pub(super) client_info: ClientInfo,
}

impl Session {
    /// A session for an accepted connection.
    pub fn new(id: u64, peer: SocketAddr, shared: Arc<Shared>, stream: TcpStream) -> Session {
        let limits = &shared.config.limits;
        // Until the client authenticates, only handshake-sized messages are accepted.
        let codec = DapCodec::new(limits.max_header_bytes, limits.max_handshake_bytes);
        Session {
            id,
            peer,
            accepted: Instant::now(),
            client: Framed::new(stream, codec),
            shared,
            own_seq: 1,
            max_client_seq: 0,
            mapper: PathMapper::default(),
            client_info: ClientInfo::default(),
        }
    }

    /// Runs the session to its end; `place` is its place among the unauthenticated
    /// connections, given up once it authenticates.
    pub async fn run(mut self, place: Place, shutdown: CancellationToken) -> Outcome {
        // 1. Handshake.
        let attach = match self.handshake(&place, &shutdown).await {
            Ok(attach) => attach,
            Err(outcome) => return outcome,
        };
        drop(place);
        self.shared.update_unauthenticated();
        let Some(_slot) = self.shared.admission.session() else {
            let refusal = Refusal::TooManySessions(self.shared.config.limits.max_connections);
            self.shared.count_auth_failure(refusal.reason());
            warn!(peer = %self.peer, reason = refusal.reason(), "attach refused");
            if self
                .reply_preauth(&attach.attach, Err(refusal.message(&self.client_info)))
                .await
                .is_ok()
            {
                self.linger().await;
            }
            return Outcome::Refused;
        };
        let limits = &self.shared.config.limits;
        self.client.codec_mut().set_max_body(limits.max_body_bytes);
        self.shared.mark_authenticated(self.id);
        // 2. Connect.
        if let Err(outcome) = self.check_side_door(&attach.attach).await {
            return outcome;
        }
        if let Err(outcome) = self.inject_if_needed(&attach.attach, &shutdown).await {
            return outcome;
        }
        let upstream = match self.connect(&attach.attach, &shutdown).await {
            Ok(upstream) => upstream,
            Err(outcome) => return outcome,
        };
        let _own = upstream
            .local_addr()
            .ok()
            .map(|local| OwnConnection::new(&self.shared, local));
        let mut upstream = self.frame_upstream(upstream);
        // 3. Upstream handshake.
        let Attach {
            initialize,
            attach,
            handed_back,
        } = attach;
        if let Err(outcome) = self
            .upstream_handshake(&mut upstream, initialize, &attach, &shutdown)
            .await
        {
            return outcome;
        }
        // 4. Relay, and 5. End.
        self.relay(upstream, Relay::new(handed_back), &shutdown)
            .await
    }

    pub(super) fn next_seq(&mut self) -> i64 {
        let seq = self.own_seq;
        self.own_seq += 1;
        seq
    }

    pub(super) async fn send_client(&mut self, msg: &Message) -> Result<(), CodecError> {
        self.client.send(msg.bytes().clone()).await
    }

    /// Tells the client something on its debug console (best effort).
    pub(super) async fn say(&mut self, text: &str) {
        let seq = self.next_seq();
        let _ = self.send_client(&message::console(seq, text)).await;
    }

    /// Answers a request of the client's; whether the answer was written.
    pub(super) async fn reply(&mut self, request: &Message, result: Result<Value, String>) -> bool {
        let seq = self.next_seq();
        self.send_client(&message::response(seq, request, result))
            .await
            .is_ok()
    }
}
