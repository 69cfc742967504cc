//! Phase 4 of a session: the relay. Messages go both ways, with paths mapped (towards
//! debugpy in place; from debugpy, large messages on a blocking thread) and large
//! path-free responses passed through as they arrive. Along the way the relay keeps
//! the registry's "stopped" flag, explains debugpy's "already being debugged", hands
//! the client's own attach values back in subprocess configurations, and watches the
//! app's memory limit and stalled client frames. When one side ends, the session ends
//! ([`super::ending`]).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::OnLimit;
use crate::dap::codec::Frame;
use crate::dap::message::{Kind, Message};
use crate::proxy::attach::HandBack;
use crate::proxy::breakpoints::Unmapped;
use crate::proxy::guard;
use crate::proxy::rewrite::{self, arguments};
use crate::proxy::session::{Outcome, Session};
use crate::proxy::upstream::Upstream;

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

/// What the relay phase keeps track of.
pub(super) struct Relay {
    /// Values handed back in subprocess configurations.
    handed_back: HandBack,
    /// `seq` of the client's own `disconnect`, once sent.
    pub(super) client_disconnect: Option<i64>,
    /// Whether debugpy has answered a `disconnect` (the client's, or the sidecar's on a
    /// vanished client's behalf).
    pub(super) disconnect_answered: bool,
    /// Whether the client has seen (or is about to see) a `terminated` event.
    pub(super) terminated_sent: bool,
    /// debugpy's `terminated` event, held back until its answer to the client's
    /// `disconnect` has gone to the client (at the latest until the deadline): debugpy
    /// sends them the other way round, and a client that closes the instant it sees
    /// `terminated` (nvim-dap) would otherwise wait for its own timeout for the answer.
    pub(super) held_terminated: Option<(Message, Instant)>,
    /// The client's `disconnect` or `terminate` whose answer is still to come: debugpy's
    /// `terminated` waits for it (both end with `terminated` before the answer).
    answer_first: Option<i64>,
    /// Held from the client's `disconnect` until the session ends (see
    /// [`Shared::finalizing`](crate::state::Shared::finalizing)).
    pub(super) finalizing: Option<tokio::sync::OwnedRwLockReadGuard<()>>,
    /// Breakpoints in files outside every local root, to explain if debugpy rejects them.
    unmapped: Unmapped,
}

impl Relay {
    /// Until when the held `terminated` event may wait (far ahead when none is held).
    fn held_until(&self) -> Instant {
        self.held_terminated.as_ref().map_or_else(
            || Instant::now() + std::time::Duration::from_secs(3600),
            |(_, until)| *until,
        )
    }

    /// The state at the start of the relay.
    pub(super) fn new(handed_back: HandBack) -> Relay {
        Relay {
            handed_back,
            client_disconnect: None,
            disconnect_answered: false,
            terminated_sent: false,
            held_terminated: None,
            answer_first: None,
            unmapped: Unmapped::default(),
            finalizing: None,
        }
    }

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

impl Session {
    /// Phase 4 and 5: relay until one side ends, then end the other side properly.
    pub(super) async fn relay(
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
                _ = tokio::time::sleep_until(state.held_until()), if state.held_terminated.is_some() => {
                    warn!(peer = %self.peer, "debugpy did not answer disconnect or terminate in time");
                    state.answer_first = None;
                    if self.release_terminated(&mut state).await.is_err() {
                        break Outcome::ClientLost;
                    }
                }
                _ = shutdown.cancelled() => break Outcome::Shutdown,
            }
        };
        self.end(upstream, state, outcome).await
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
        if let Err(why) = guard::check(&msg) {
            warn!(peer = %self.peer, command = %msg.name, reason = %why, "refused a request that would break debugpy");
            if msg.kind == Kind::Request && !self.reply(&msg, Err(why.to_string())).await {
                return Err(Outcome::ClientLost);
            }
            return Ok(());
        }
        if msg.is_request("disconnect") {
            state.client_disconnect = Some(msg.seq);
            state.answer_first = Some(msg.seq);
            state.finalizing = Some(self.shared.finalizing().await);
        }
        if msg.is_request("terminate") {
            state.answer_first = Some(msg.seq);
        }
        state.unmapped.note_request(&msg, &mut self.mapper);
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
                if state.answer_first.is_some() {
                    let until = Instant::now() + self.shared.config.limits.disconnect_timeout;
                    state.held_terminated = Some((msg, until));
                    return Ok(());
                }
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
        let explained = state.unmapped.explain(
            &mut msg,
            &self.mapper,
            &self.client_info,
            &self.shared.config.path_mappings,
        );
        let answers = |seq: Option<i64>| {
            msg.kind == Kind::Response && seq.is_some() && msg.request_seq == seq
        };
        let answers_disconnect = answers(state.client_disconnect);
        let answers_ending = answers(state.answer_first);
        let msg = self.map_to_client(msg).await;
        self.send_client(&msg)
            .await
            .map_err(|_| Outcome::ClientLost)?;
        if let Some(text) = explained {
            self.say(&text).await;
        }
        if answers_disconnect {
            state.disconnect_answered = true;
        }
        if answers_ending {
            state.answer_first = None;
            self.release_terminated(state).await?;
        }
        Ok(())
    }

    /// Sends the client the `terminated` event held back, if any.
    pub(super) async fn release_terminated(&mut self, state: &mut Relay) -> Result<(), Outcome> {
        match state.held_terminated.take() {
            Some((held, _)) => self
                .send_client(&held)
                .await
                .map_err(|_| Outcome::ClientLost),
            None => Ok(()),
        }
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
