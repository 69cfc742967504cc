//! Phase 3 of a session: the upstream handshake. The sidecar announced
//! [`default_capabilities`] to the client before debugpy was reached; now the client's
//! own `initialize` is forwarded, debugpy's greeting events are passed on, and if
//! debugpy's capabilities differ from those announced, a `capabilities` event reconciles
//! them. Then the `attach` goes up, without `token` and `pathMappings`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::dap::codec::Frame;
use crate::dap::message::{self, Kind, Message};
use crate::proxy::rewrite;
use crate::proxy::session::{Outcome, Session};
use crate::proxy::upstream::Upstream;

/// The capabilities announced before debugpy is reached: debugpy 1.8's, so that the
/// `capabilities` event is only needed when the upstream really differs.
pub fn default_capabilities() -> Value {
    json!({
        "supportsCompletionsRequest": true,
        "supportsConditionalBreakpoints": true,
        "supportsConfigurationDoneRequest": true,
        "supportsDebuggerProperties": true,
        "supportsDelayedStackTraceLoading": true,
        "supportsEvaluateForHovers": true,
        "supportsExceptionInfoRequest": true,
        "supportsExceptionOptions": true,
        "supportsFunctionBreakpoints": true,
        "supportsHitConditionalBreakpoints": true,
        "supportsLogPoints": true,
        "supportsModulesRequest": true,
        "supportsSetExpression": true,
        "supportsSetVariable": true,
        "supportsValueFormattingOptions": true,
        "supportsTerminateDebuggee": true,
        "supportsTerminateRequest": true,
        "supportsGotoTargetsRequest": true,
        "supportsClipboardContext": true,
        "exceptionBreakpointFilters": [
            {"filter": "raised", "label": "Raised Exceptions", "default": false,
             "description": "Break whenever any exception is raised."},
            {"filter": "uncaught", "label": "Uncaught Exceptions", "default": true,
             "description": "Break when the process is exiting due to unhandled exception."},
            {"filter": "userUnhandled", "label": "User Uncaught Exceptions", "default": false,
             "description": "Break when exception escapes into library code."}
        ],
        "supportsStepInTargetsRequest": true
    })
}

impl Session {
    /// Phase 3: forward `initialize`, reconcile capabilities, forward `attach`.
    pub(super) async fn upstream_handshake(
        &mut self,
        upstream: &mut Upstream,
        initialize: Option<Message>,
        attach: &Message,
        shutdown: &CancellationToken,
    ) -> Result<(), Outcome> {
        if let Some(init) = initialize {
            if upstream.send(init.bytes().clone()).await.is_err() {
                return Err(self.upstream_failed(attach, "connection closed").await);
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
                        .upstream_failed(attach, "no answer to initialize")
                        .await);
                };
                let Ok(mut msg) = Message::parse(bytes) else {
                    return Err(self.upstream_failed(attach, "invalid message").await);
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
                return Err(self.upstream_failed(attach, &why).await);
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
        if upstream.send(attach.bytes().clone()).await.is_err() {
            return Err(self.upstream_failed(attach, "connection closed").await);
        }
        Ok(())
    }
}
