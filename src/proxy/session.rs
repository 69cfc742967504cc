//! One client connection, from accept to close.
//!
//! 1. **Handshake** ([`super::handshake`], nothing reaches debugpy): the sidecar answers
//!    `initialize` itself and waits for `attach`, which it authenticates, within small
//!    budgets of bytes, messages and time. Then the client needs one of the
//!    `limits.max_connections` session slots.
//! 2. **Connect**: only then it connects to the upstream, retrying with backoff for
//!    `upstream_timeout` and telling the client through `output` events.
//! 3. **Upstream handshake**: the client's own `initialize` is forwarded; if debugpy's
//!    capabilities differ from those the sidecar announced, a `capabilities` event
//!    reconciles them. Then the `attach` goes up, without `token` and `pathMappings`.
//! 4. **Relay** both ways, rewriting paths; reverse requests pass through.
//! 5. **End**: a client that vanishes gets a `disconnect` (terminateDebuggee false) sent
//!    upstream on its behalf, so an app paused at a breakpoint resumes; an upstream that
//!    vanishes gets the client a `terminated` event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::OnLimit;
use crate::dap::codec::{CodecError, DapCodec, Frame, StreamingCodec};
use crate::dap::message::{self, Kind, Message};
use crate::paths::PathMapper;
use crate::proxy::admission::Place;
use crate::proxy::auth::Refusal;
use crate::proxy::handshake::{Attach, HandBack, default_capabilities};
use crate::proxy::rewrite::{self, arguments};
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
        }
    }

    /// Whether the connection ended before it authenticated (these are what an
    /// unauthenticated client can cause at will, so their log lines are throttled).
    pub fn unauthenticated(self) -> bool {
        matches!(self, Outcome::Refused | Outcome::Abandoned | Outcome::Shed)
    }
}

type Conn = Framed<TcpStream, DapCodec>;

/// The upstream side: large path-free responses pass through as they arrive.
type Upstream = Framed<TcpStream, StreamingCodec>;

/// How long the sidecar waits for debugpy to answer the `disconnect` it sends for a
/// client that vanished.
const DISCONNECT_GRACE: Duration = Duration::from_secs(5);

/// How long an attach waits for a fresh look at debugpy's listening sockets.
const SIDE_DOOR_CHECK: Duration = Duration::from_secs(1);

/// A look at debugpy's listening sockets at most this old is good enough for an attach.
const SIDE_DOOR_MAX_AGE: Duration = Duration::from_secs(2);

/// Messages from debugpy at least this large are path-mapped on a blocking thread.
const OFFLOAD_ABOVE: usize = 64 * 1024;

/// Commands whose success means the debuggee runs again.
const RESUMING: &[&str] = &[
    "continue",
    "next",
    "stepIn",
    "stepOut",
    "stepBack",
    "reverseContinue",
    "goto",
];

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
        }
    }

    /// Runs the session to its end; `place` is its place among the unauthenticated
    /// connections, given up once it authenticates.
    pub async fn run(mut self, place: Place, shutdown: CancellationToken) -> Outcome {
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
                .reply_preauth(&attach.attach, Err(refusal.to_string()))
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
        if let Err(outcome) = self.check_side_door(&attach.attach).await {
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
        let upstream_codec = StreamingCodec::new(
            DapCodec::new(
                self.shared.config.limits.max_header_bytes,
                self.shared.config.limits.max_body_bytes,
            ),
            rewrite::passes_untouched,
        );
        let mut upstream = Framed::new(upstream, upstream_codec);
        match self
            .upstream_handshake(&mut upstream, attach, &shutdown)
            .await
        {
            Ok(relay) => self.relay(upstream, relay, &shutdown).await,
            Err(outcome) => outcome,
        }
    }

    /// Refuses to relay when debugpy itself listens on a non-loopback address (anyone
    /// who reaches it there needs no token), unless `auth.allow_exposed_upstream`; with
    /// it, the client is warned on its console.
    async fn check_side_door(&mut self, attach: &Message) -> Result<(), Outcome> {
        // The watch looks every second; only a missing or old look is waited for (a
        // fresh one costs an attach up to 200 ms).
        let latest = self.shared.upstream.latest();
        let exposed = if latest.age().is_some_and(|age| age <= SIDE_DOOR_MAX_AGE) {
            latest.exposed
        } else {
            self.shared.upstream.fresh(SIDE_DOOR_CHECK).await.exposed
        };
        if exposed.is_empty() {
            return Ok(());
        }
        let at = exposed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let danger = format!(
            "debugpy listens on {at}, not only on loopback: anyone who reaches that address can run any code in the app without the sidecar's token. Start it with `--listen 127.0.0.1:PORT`"
        );
        if self.shared.config.auth.allow_exposed_upstream {
            self.say(&format!(
                "dap-sidecar: warning: {danger} (relaying anyway: auth.allow_exposed_upstream is true)."
            ))
            .await;
            return Ok(());
        }
        warn!(peer = %self.peer, exposed = %at, "attach refused: debugpy is exposed");
        self.reply(
            attach,
            Err(format!(
                "dap-sidecar: refusing to relay: {danger}, or set auth.allow_exposed_upstream: true on the sidecar to accept the risk."
            )),
        )
        .await;
        self.linger().await;
        Err(Outcome::UpstreamExposed)
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
    async fn say(&mut self, text: &str) {
        let seq = self.next_seq();
        let _ = self.send_client(&message::console(seq, text)).await;
    }

    async fn reply(&mut self, request: &Message, result: Result<Value, String>) -> bool {
        let seq = self.next_seq();
        self.send_client(&message::response(seq, request, result))
            .await
            .is_ok()
    }

    /// Phase 2: connect to the upstream, retrying until `upstream_timeout`.
    async fn connect(
        &mut self,
        attach: &Message,
        shutdown: &CancellationToken,
    ) -> Result<TcpStream, Outcome> {
        let upstream = self.shared.config.upstream.clone();
        let limit = self.shared.config.upstream_timeout;
        let started = Instant::now();
        let deadline = started + limit;
        let mut backoff = Duration::from_millis(50);
        let mut next_report = started;
        if !self.shared.wait_finalized(DISCONNECT_GRACE).await {
            warn!(peer = %self.peer, "a previous session is still ending; attaching anyway");
        }
        loop {
            let attempt = timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10)),
                TcpStream::connect(upstream.as_str()),
            );
            let error = tokio::select! {
                result = attempt => match result {
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(stream);
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".to_owned(),
                },
                _ = shutdown.cancelled() => return Err(Outcome::Shutdown),
            };
            let now = Instant::now();
            if now >= deadline {
                let text = format!(
                    "dap-sidecar: debugpy did not accept a connection at {upstream} within {} (last error: {error}). Is the app running under `python -m debugpy --listen {upstream}`?",
                    humantime::format_duration(limit)
                );
                warn!(peer = %self.peer, %upstream, %error, "upstream unavailable");
                self.reply(attach, Err(text)).await;
                self.linger().await;
                return Err(Outcome::UpstreamUnavailable);
            }
            if now >= next_report {
                let waited = now.duration_since(started).as_secs();
                let left = deadline.saturating_duration_since(now).as_secs();
                self.say(&format!(
                    "dap-sidecar: waiting for debugpy at {upstream} ({error}); waited {waited}s, giving up in {left}s"
                ))
                .await;
                next_report = now + Duration::from_secs(5);
            }
            // Wait before the next attempt, but notice a client that leaves meanwhile.
            let pause = sleep(backoff.min(deadline.saturating_duration_since(now)));
            tokio::select! {
                _ = pause => {}
                frame = self.client.next() => match frame {
                    None | Some(Err(_)) => return Err(Outcome::Abandoned),
                    Some(Ok(_)) => {
                        // DAP clients wait for the attach response; anything else here is
                        // a protocol error we refuse rather than queue without bound.
                        warn!(peer = %self.peer, "closing connection: message sent before attach completed");
                        return Err(Outcome::Abandoned);
                    }
                },
                _ = shutdown.cancelled() => return Err(Outcome::Shutdown),
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Phase 3: forward `initialize`, reconcile capabilities, forward `attach`.
    async fn upstream_handshake(
        &mut self,
        upstream: &mut Upstream,
        attach: Attach,
        shutdown: &CancellationToken,
    ) -> Result<Relay, Outcome> {
        let relay = Relay {
            handed_back: attach.handed_back,
            client_disconnect: None,
            terminated_sent: false,
            finalizing: None,
        };
        if let Some(init) = attach.initialize {
            if upstream.send(init.bytes().clone()).await.is_err() {
                return Err(self
                    .upstream_failed(&attach.attach, "connection closed")
                    .await);
            }
            let deadline = Instant::now() + self.shared.config.upstream_timeout;
            let answer = loop {
                let frame = tokio::select! {
                    f = upstream.next() => f,
                    _ = sleep_until(deadline) => None,
                    _ = shutdown.cancelled() => return Err(Outcome::Shutdown),
                };
                let Some(Ok(Frame::Whole(bytes))) = frame else {
                    return Err(self
                        .upstream_failed(&attach.attach, "no answer to initialize")
                        .await);
                };
                let Ok(mut msg) = Message::parse(bytes) else {
                    return Err(self
                        .upstream_failed(&attach.attach, "invalid message")
                        .await);
                };
                if msg.kind == Kind::Response && msg.request_seq == Some(init.seq) {
                    break msg;
                }
                // debugpy greets with telemetry `output` and `debugpySockets` events.
                let _ = rewrite::to_client(&mut msg, &self.mapper);
                if self.send_client(&msg).await.is_err() {
                    return Err(Outcome::Abandoned);
                }
            };
            let mut answer_map = answer.to_map().unwrap_or_default();
            if answer.success != Some(true) {
                let why = answer_map
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("initialize failed")
                    .to_owned();
                return Err(self.upstream_failed(&attach.attach, &why).await);
            }
            let body = answer_map.remove("body").unwrap_or(Value::Null);
            if body != default_capabilities() {
                debug!(peer = %self.peer, "upstream capabilities differ; sending capabilities event");
                let seq = self.next_seq();
                let event = message::event(seq, "capabilities", json!({ "capabilities": body }));
                if self.send_client(&event).await.is_err() {
                    return Err(Outcome::Abandoned);
                }
            }
        }
        if upstream.send(attach.attach.bytes().clone()).await.is_err() {
            return Err(self
                .upstream_failed(&attach.attach, "connection closed")
                .await);
        }
        Ok(relay)
    }

    async fn upstream_failed(&mut self, attach: &Message, why: &str) -> Outcome {
        let upstream = self.shared.config.upstream.clone();
        warn!(peer = %self.peer, %upstream, reason = why, "upstream failed during attach");
        self.reply(
            attach,
            Err(format!(
                "dap-sidecar: the debug server at {upstream} failed during attach: {why}"
            )),
        )
        .await;
        Outcome::UpstreamLost
    }

    /// Phase 4 and 5: relay until one side ends, then end the other side properly.
    async fn relay(
        mut self,
        mut upstream: Upstream,
        mut state: Relay,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let frame_timeout = self.shared.config.limits.frame_timeout;
        // Checks for a stalled frame a few times per frame_timeout.
        let mut stall_check = tokio::time::interval(frame_timeout / 4);
        stall_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut limits = self.shared.monitor.subscribe();
        let outcome = loop {
            tokio::select! {
                // Nothing may be written to the client in the middle of a passed-through body.
                event = limits.recv(), if !upstream.codec().mid_frame() => {
                    if let Ok(event) = event {
                        let text = format!(
                            "dap-sidecar: the app's memory grew by {} MiB since this debugging session attached (limit memory.max_growth_while_attached = {} MiB).",
                            event.growth >> 20,
                            event.limit >> 20
                        );
                        match event.action {
                            OnLimit::Warn => self.say(&text).await,
                            OnLimit::Detach => {
                                self.say(&format!("{text} Detaching; the app keeps running.")).await;
                                break Outcome::MemoryLimit;
                            }
                        }
                    }
                }
                _ = stall_check.tick() => {
                    if self.client.codec().frame_started().is_some_and(|t| t.elapsed() >= frame_timeout) {
                        warn!(peer = %self.peer, "closing client connection: a frame took longer than limits.frame_timeout");
                        break Outcome::ClientLost;
                    }
                }
                frame = self.client.next() => match frame {
                    Some(Ok(bytes)) => {
                        if let Err(outcome) = self.on_client_message(bytes, &mut upstream, &mut state).await {
                            break outcome;
                        }
                    }
                    Some(Err(e)) => {
                        warn!(peer = %self.peer, reason = %e, "closing client connection");
                        break Outcome::ClientLost;
                    }
                    None => break if state.client_disconnect.is_some() { Outcome::Disconnected } else { Outcome::ClientLost },
                },
                frame = upstream.next() => match frame {
                    Some(Ok(Frame::Whole(bytes))) => {
                        if let Err(outcome) = self.on_upstream_message(bytes, &mut state).await {
                            break outcome;
                        }
                    }
                    Some(Ok(part)) => {
                        if let Frame::Start { .. } = part {
                            self.shared.metrics.count_kind(true, &Kind::Response);
                            self.shared.metrics.messages_passed_through_total.inc();
                        }
                        if self.client.send(part).await.is_err() {
                            break Outcome::ClientLost;
                        }
                    }
                    Some(Err(e)) => {
                        warn!(peer = %self.peer, reason = %e, "upstream connection failed");
                        break Outcome::UpstreamLost;
                    }
                    None => break if state.client_disconnect.is_some() { Outcome::Disconnected } else { Outcome::UpstreamLost },
                },
                _ = shutdown.cancelled() => break Outcome::Shutdown,
            }
        };
        self.shared.set_stopped(self.id, false);
        // A body cut off mid-way leaves the client's framing broken: just close.
        let cut_off = upstream.codec().mid_frame();
        match outcome {
            Outcome::ClientLost | Outcome::Shutdown | Outcome::MemoryLimit
                if state.client_disconnect.is_none() =>
            {
                self.disconnect_upstream(&mut upstream).await;
                if outcome == Outcome::MemoryLimit {
                    self.send_terminated(&mut state).await;
                }
                if outcome == Outcome::Shutdown && !cut_off {
                    self.say("dap-sidecar is shutting down; the app keeps running.")
                        .await;
                    self.send_terminated(&mut state).await;
                }
            }
            Outcome::UpstreamLost if !cut_off => {
                self.say("dap-sidecar: the connection to debugpy closed.")
                    .await;
                self.send_terminated(&mut state).await;
            }
            _ => {}
        }
        let _ = SinkExt::<Bytes>::close(&mut self.client).await;
        info!(peer = %self.peer, outcome = outcome.label(), "session ended");
        outcome
    }

    async fn send_terminated(&mut self, state: &mut Relay) {
        if !state.terminated_sent {
            state.terminated_sent = true;
            let seq = self.next_seq();
            let _ = self
                .send_client(&message::event(seq, "terminated", json!({})))
                .await;
        }
    }

    /// Sends `disconnect` (terminateDebuggee false) on behalf of a client that vanished,
    /// and waits (briefly) until debugpy has finalized the session: it answers the
    /// request and sends `terminated` after releasing the app, or closes the connection.
    /// Only then may the next client attach.
    async fn disconnect_upstream(&mut self, upstream: &mut Upstream) {
        let _finalizing = self.shared.finalizing().await;
        let seq = self.max_client_seq + 1;
        let request = message::request(
            seq,
            "disconnect",
            json!({ "restart": false, "terminateDebuggee": false, "suspendDebuggee": false }),
        );
        info!(peer = %self.peer, "client gone: sending disconnect upstream so the app resumes");
        if upstream.send(request.bytes().clone()).await.is_err() {
            return;
        }
        let finalized = timeout(DISCONNECT_GRACE, async {
            let (mut answered, mut terminated) = (false, false);
            while let Some(Ok(frame)) = upstream.next().await {
                let Frame::Whole(bytes) = frame else {
                    continue;
                };
                let Ok(msg) = Message::parse(bytes) else {
                    continue;
                };
                answered |= msg.kind == Kind::Response && msg.request_seq == Some(seq);
                terminated |= msg.is_event("terminated");
                if answered && terminated {
                    return;
                }
            }
        })
        .await;
        if finalized.is_err() {
            warn!(peer = %self.peer, "debugpy did not finish the disconnect in time");
        }
    }

    async fn on_client_message(
        &mut self,
        bytes: Bytes,
        upstream: &mut Upstream,
        state: &mut Relay,
    ) -> Result<(), Outcome> {
        let mut msg = Message::parse(bytes).map_err(|e| {
            warn!(peer = %self.peer, reason = %e, "closing client connection");
            Outcome::ClientLost
        })?;
        self.max_client_seq = self.max_client_seq.max(msg.seq);
        self.shared.metrics.count_message(false, &msg);
        if msg.is_request("disconnect") {
            state.client_disconnect = Some(msg.seq);
            state.finalizing = Some(self.shared.finalizing().await);
        }
        if let Err(e) = rewrite::to_upstream(&mut msg, &mut self.mapper) {
            warn!(peer = %self.peer, reason = %e, "could not map paths in a client message");
        }
        upstream
            .send(msg.bytes().clone())
            .await
            .map_err(|_| Outcome::UpstreamLost)
    }

    async fn on_upstream_message(
        &mut self,
        bytes: Bytes,
        state: &mut Relay,
    ) -> Result<(), Outcome> {
        let mut msg = Message::parse(bytes).map_err(|e| {
            warn!(peer = %self.peer, reason = %e, "upstream sent an invalid message");
            Outcome::UpstreamLost
        })?;
        self.shared.metrics.count_message(true, &msg);
        match (&msg.kind, msg.name.as_str()) {
            (Kind::Event, "terminated") => {
                state.terminated_sent = true;
                // The app is gone (or detached): nothing is stopped any more.
                self.shared.set_stopped(self.id, false);
            }
            (Kind::Event, "exited") => self.shared.set_stopped(self.id, false),
            (Kind::Event, "stopped") => self.shared.set_stopped(self.id, true),
            (Kind::Event, "continued") => self.shared.set_stopped(self.id, false),
            (Kind::Response, "attach") if msg.success == Some(false) => self.explain_busy(&mut msg),
            (Kind::Request, "startDebugging") => state.hand_back(&mut msg, true),
            (Kind::Event, "debugpyAttach") => state.hand_back(&mut msg, false),
            _ => {}
        }
        // Resuming commands may be answered without a `continued` event.
        if msg.kind == Kind::Response
            && msg.success == Some(true)
            && RESUMING.contains(&msg.name.as_str())
        {
            self.shared.set_stopped(self.id, false);
        }
        let msg = self.map_to_client(msg).await;
        self.send_client(&msg)
            .await
            .map_err(|_| Outcome::ClientLost)
    }

    /// Maps container paths in a message from debugpy. Large messages are mapped on a
    /// blocking thread, so that an `output` event with a hundred thousand traceback
    /// lines never holds up the other sessions or the health endpoints.
    async fn map_to_client(&self, mut msg: Message) -> Message {
        if msg.bytes().len() < OFFLOAD_ABOVE || !rewrite::mentions_roots(&msg, &self.mapper) {
            if let Err(e) = rewrite::to_client(&mut msg, &self.mapper) {
                warn!(peer = %self.peer, reason = %e, "could not map paths in an upstream message");
            }
            return msg;
        }
        let mapper = self.mapper.clone();
        let original = msg.clone(); // cheap: the body is reference-counted
        let mapped = tokio::task::spawn_blocking(move || {
            let result = rewrite::to_client(&mut msg, &mapper);
            (msg, result)
        })
        .await;
        match mapped {
            Ok((msg, Ok(_))) => msg,
            Ok((msg, Err(e))) => {
                warn!(peer = %self.peer, reason = %e, "could not map paths in an upstream message");
                msg
            }
            Err(e) => {
                warn!(peer = %self.peer, reason = %e, "path mapping failed; forwarding unmapped");
                original
            }
        }
    }

    /// debugpy refuses a second client with "already being debugged"; say who holds it.
    fn explain_busy(&self, msg: &mut Message) {
        let Some((peer, since)) = self.shared.holder(self.id) else {
            return;
        };
        let since = humantime::format_rfc3339_seconds(since);
        let _ = msg.rewrite(|map| {
            let Some(Value::String(text)) = map.get_mut("message") else {
                return false;
            };
            if !text.contains("already being debugged") {
                return false;
            }
            text.push_str(&format!(
                " (dap-sidecar: the session is held by {peer}, attached since {since})"
            ));
            true
        });
    }
}

/// One of the sidecar's own connections to debugpy, registered with the upstream watch
/// (so it is not counted as a bypass) while it is open.
struct OwnConnection {
    /// The shared state holding the watch.
    shared: Arc<Shared>,
    /// The connection's local address.
    local: SocketAddr,
}

impl OwnConnection {
    fn new(shared: &Arc<Shared>, local: SocketAddr) -> OwnConnection {
        shared.upstream.register_own(local);
        OwnConnection {
            shared: shared.clone(),
            local,
        }
    }
}

impl Drop for OwnConnection {
    fn drop(&mut self) {
        self.shared.upstream.unregister_own(self.local);
    }
}

/// What the relay phase keeps track of.
struct Relay {
    /// Values handed back in subprocess configurations.
    handed_back: HandBack,
    /// `seq` of the client's own `disconnect`, once sent.
    client_disconnect: Option<i64>,
    /// Whether the client has seen a `terminated` event.
    terminated_sent: bool,
    /// Held from the client's `disconnect` until the session ends (see
    /// [`Shared::finalizing`]).
    finalizing: Option<tokio::sync::OwnedRwLockReadGuard<()>>,
}

impl Relay {
    /// Puts the client's own values back into a subprocess configuration
    /// (`startDebugging` arguments or a `debugpyAttach` event body).
    fn hand_back(&self, msg: &mut Message, reverse_request: bool) {
        let back = &self.handed_back;
        let values = [
            ("token", &back.token),
            ("pathMappings", &back.path_mappings),
            ("workspaceFolder", &back.workspace_folder),
        ];
        if values.iter().all(|(_, v)| v.is_none()) {
            return;
        }
        let _ = msg.rewrite(|map| {
            let config = if reverse_request {
                arguments(map)
                    .and_then(|a| a.get_mut("configuration"))
                    .and_then(Value::as_object_mut)
            } else {
                map.get_mut("body").and_then(Value::as_object_mut)
            };
            let Some(config) = config else {
                return false;
            };
            for (key, value) in values {
                if let Some(value) = value {
                    config.insert(key.into(), value.clone());
                }
            }
            true
        });
    }
}
