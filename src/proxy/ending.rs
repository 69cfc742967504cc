//! Phase 5 of a session: the end. Whichever side ended the relay, the other side is
//! ended properly: a client that vanished (or a shutdown, or the memory limit) gets a
//! `disconnect` (terminateDebuggee false) sent upstream on its behalf, so an app paused
//! at a breakpoint resumes and debugpy is ready for the next client; a client whose
//! upstream vanished, or that the sidecar leaves, gets a `terminated` event.
//!
//! The connection to debugpy is never closed while debugpy still owes the answer to a
//! `disconnect` (the client's or the sidecar's), up to `limits.disconnect_timeout`:
//! debugpy's adapter exits when it cannot write that answer, and then nobody can attach
//! until the app restarts. A client that closes right after sending `disconnect`, or the
//! instant it sees `terminated`, thus no longer reaches debugpy before debugpy is done.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::timeout;
use tracing::{info, warn};

use crate::dap::codec::Frame;
use crate::dap::message::{self, Kind, Message};
use crate::proxy::relay::Relay;
use crate::proxy::session::{Outcome, Session};
use crate::proxy::upstream::Upstream;

impl Session {
    /// Phase 5: ends the side that did not end the relay (see the module doc), closes
    /// the client's connection and logs the outcome.
    pub(super) async fn end(
        mut self,
        mut upstream: Upstream,
        mut state: Relay,
        outcome: Outcome,
    ) -> Outcome {
        self.shared.set_stopped(self.id, false);
        // A body cut off mid-way leaves the client's framing broken: just close.
        let cut_off = upstream.codec().mid_frame();
        if let Some(seq) = state
            .client_disconnect
            .filter(|_| !state.disconnect_answered)
        {
            // A client that may still be there gets the answer (writing to one that left
            // fails harmlessly).
            let forward = outcome != Outcome::ClientLost && !cut_off;
            self.finish_client_disconnect(&mut upstream, &mut state, seq, forward)
                .await;
        }
        match outcome {
            Outcome::ClientLost | Outcome::Shutdown | Outcome::MemoryLimit
                if state.client_disconnect.is_none() =>
            {
                state.finalizing = Some(self.shared.finalizing().await);
                state.disconnect_answered = self.disconnect_upstream(&mut upstream).await;
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
        if state.disconnect_answered {
            // debugpy closes the connection right after its answer: let it go first.
            let wait = self.shared.config.limits.disconnect_timeout;
            let _ = timeout(wait, async {
                while let Some(Ok(_)) = upstream.next().await {}
            })
            .await;
        }
        drop(upstream);
        self.shared.note_upstream_closed();
        drop(state); // only now may the next session connect
        info!(peer = %self.peer, outcome = outcome.label(), "session ended");
        outcome
    }

    /// Sends the client a `terminated` event, unless it has seen one.
    async fn send_terminated(&mut self, state: &mut Relay) {
        if !state.terminated_sent {
            state.terminated_sent = true;
            let seq = self.next_seq();
            let _ = self
                .send_client(&message::event(seq, "terminated", json!({})))
                .await;
        }
    }

    /// Waits (up to `limits.disconnect_timeout`) for debugpy's answer to the client's own
    /// `disconnect` request `seq`, keeping the connection to debugpy open meanwhile;
    /// `forward` passes the answer and the `terminated` event on to the client.
    async fn finish_client_disconnect(
        &mut self,
        upstream: &mut Upstream,
        state: &mut Relay,
        seq: i64,
        forward: bool,
    ) {
        let wait = self.shared.config.limits.disconnect_timeout;
        let answer = timeout(wait, async {
            while let Some(msg) = next_message(upstream).await {
                if msg.kind == Kind::Response && msg.request_seq == Some(seq) {
                    return Some(msg);
                }
                if msg.is_event("terminated") && state.held_terminated.is_none() {
                    state.held_terminated = Some((msg, tokio::time::Instant::now()));
                }
            }
            None
        })
        .await;
        match answer {
            Ok(Some(answer)) => {
                state.disconnect_answered = true;
                if forward {
                    let _ = self.send_client(&answer).await;
                }
            }
            Ok(None) => {} // debugpy closed the connection: it is done.
            Err(_) => warn!(peer = %self.peer, "debugpy did not answer disconnect in time"),
        }
        if forward {
            let _ = self.release_terminated(state).await;
        } else {
            state.held_terminated = None;
        }
    }

    /// Sends `disconnect` (terminateDebuggee false) on behalf of a client that vanished,
    /// and waits (briefly) until debugpy has finalized the session: it answers the
    /// request and sends `terminated` after releasing the app, or closes the connection.
    /// Only then may the next client attach.
    async fn disconnect_upstream(&mut self, upstream: &mut Upstream) -> bool {
        let seq = self.max_client_seq + 1;
        let request = message::request(
            seq,
            "disconnect",
            json!({ "restart": false, "terminateDebuggee": false, "suspendDebuggee": false }),
        );
        info!(peer = %self.peer, "client gone: sending disconnect upstream so the app resumes");
        if upstream.send(request.bytes().clone()).await.is_err() {
            return false;
        }
        let wait = self.shared.config.limits.disconnect_timeout;
        let finalized = timeout(wait, async {
            let (mut answered, mut terminated) = (false, false);
            while let Some(msg) = next_message(upstream).await {
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
        finalized.is_ok()
    }
}

/// debugpy's next whole message, skipping frames passed through in parts and messages
/// that do not parse; `None` once the connection ends or fails.
async fn next_message(upstream: &mut Upstream) -> Option<Message> {
    while let Some(Ok(frame)) = upstream.next().await {
        if let Frame::Whole(bytes) = frame
            && let Ok(msg) = Message::parse(bytes)
        {
            return Some(msg);
        }
    }
    None
}
