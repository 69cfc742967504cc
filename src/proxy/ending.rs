//! Phase 5 of a session: the end. Whichever side ended the relay, the other side is
//! ended properly: a client that vanished (or a shutdown, or the memory limit) gets a
//! `disconnect` (terminateDebuggee false) sent upstream on its behalf, so an app paused
//! at a breakpoint resumes and debugpy is ready for the next client; a client whose
//! upstream vanished, or that the sidecar leaves, gets a `terminated` event.

use std::time::Duration;

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

/// How long the sidecar waits for debugpy to answer the `disconnect` it sends for a
/// client that vanished (and how long a new attach waits for that to finish).
pub(super) const DISCONNECT_GRACE: Duration = Duration::from_secs(5);

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
}
