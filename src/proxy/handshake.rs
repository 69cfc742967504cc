//! Phase 1 of a session: everything before a client is authenticated. Nothing it sends
//! reaches debugpy, and everything it can make the sidecar do is bounded:
//!
//! - **bytes**: a message may be at most `limits.max_handshake_bytes` (64 KiB by default;
//!   the `initialize` and `attach` of VS Code or nvim-dap are one to three KiB), and the
//!   token is read out of the `attach` without building a tree of it
//!   ([`presented_token`]);
//! - **messages**: at most [`MAX_MESSAGES`] before the `attach`;
//! - **time**: the `attach` must be complete within `limits.auth_timeout` of the
//!   connection being accepted, however the client spreads its bytes; a reply the client
//!   does not read within [`WRITE_WAIT`] ends the connection instead of queueing;
//! - **place**: the connection holds one of `limits.max_unauthenticated` places and is
//!   closed when it is the oldest and a newer one needs the place
//!   ([`super::admission`]);
//! - **failures**: a refused `attach` is answered after `limits.auth_failure_delay`, one
//!   attempt per connection, and logged through the [`super::throttle`].
//!
//! The sidecar answers `initialize` itself with debugpy's usual capabilities
//! ([`default_capabilities`]), refuses `launch` and anything else, and on a valid
//! `attach` hands the session on with the client's `initialize`, the `attach` without
//! `token` and `pathMappings`, and the path mapper for this client (taken out of the
//! `attach` in [`super::attach`]).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, sleep, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::dap::message::{self, Kind, Message};
use crate::proxy::admission::Place;
use crate::proxy::attach::Attach;
use crate::proxy::auth::{Refusal, presented_token};
use crate::proxy::capabilities::default_capabilities;
use crate::proxy::client::ClientInfo;
use crate::proxy::session::{Outcome, Session};
use crate::throttled;

/// Most messages a client may send before its `attach` (real clients send two:
/// `initialize` and `attach`).
pub const MAX_MESSAGES: usize = 16;

/// How long a reply before authentication may wait for the client to read it.
pub const WRITE_WAIT: Duration = Duration::from_secs(1);

/// How long a client whose attach failed may take to say `disconnect`.
const LINGER: Duration = Duration::from_secs(5);

/// How reading the handshake's messages ended.
enum Step {
    /// A valid attach.
    Attached(Box<Attach>),
    /// An attach to refuse (after the failure delay).
    Refuse(Message, Refusal),
    /// The connection ends.
    End(Outcome),
}

impl Session {
    /// Phase 1: answer `initialize`, authenticate `attach`, within the budgets above.
    pub(super) async fn handshake(
        &mut self,
        place: &Place,
        shutdown: &CancellationToken,
    ) -> Result<Attach, Outcome> {
        let deadline = self.accepted + self.shared.config.limits.auth_timeout;
        let step = tokio::select! {
            step = timeout_at(deadline, self.read_attach(place)) => match step {
                Ok(step) => step,
                Err(_) => {
                    throttled!(self.shared.log_throttle, "auth_timeout", info!(peer = %self.peer, "closing connection: no valid attach within limits.auth_timeout"));
                    Step::End(Outcome::Abandoned)
                }
            },
            _ = place.shed() => Step::End(self.shed()),
            _ = shutdown.cancelled() => Step::End(Outcome::Shutdown),
        };
        match step {
            Step::Attached(attach) => Ok(*attach),
            Step::End(outcome) => Err(outcome),
            Step::Refuse(request, refusal) => {
                Err(self.refuse(&request, &refusal, place, shutdown).await)
            }
        }
    }

    fn shed(&self) -> Outcome {
        throttled!(
            self.shared.log_throttle,
            "shed",
            info!(peer = %self.peer, "closing the oldest unauthenticated connection to make room (limits.max_unauthenticated)")
        );
        Outcome::Shed
    }

    /// Reads messages until a valid `attach` (or a reason to stop).
    async fn read_attach(&mut self, place: &Place) -> Step {
        let mut initialize = None;
        for _ in 0..MAX_MESSAGES {
            let msg = match self.read_preauth().await {
                Ok(msg) => msg,
                Err(outcome) => return Step::End(outcome),
            };
            place.progressed();
            if msg.kind != Kind::Request {
                debug!(peer = %self.peer, kind = ?msg.kind, name = %msg.name, "ignoring non-request before attach");
                continue;
            }
            let answer = match msg.name.as_str() {
                "initialize" => Ok(default_capabilities()),
                "attach" => return self.authenticate(msg, initialize.take()),
                "disconnect" | "terminate" => {
                    let _ = self.reply_preauth(&msg, Ok(json!({}))).await;
                    return Step::End(Outcome::Abandoned);
                }
                "launch" => Err("dap-sidecar: only \"request\": \"attach\" is supported; the app is already running under debugpy in its container.".to_owned()),
                _ => Err("dap-sidecar: not attached yet; send attach (with your token) first.".to_owned()),
            };
            if let Err(outcome) = self.reply_preauth(&msg, answer).await {
                return Step::End(outcome);
            }
            if msg.name == "initialize" {
                self.client_info = ClientInfo::from_initialize(&msg);
                initialize = Some(msg);
            }
        }
        throttled!(
            self.shared.log_throttle,
            "too_many_messages",
            warn!(peer = %self.peer, "closing connection: {MAX_MESSAGES} messages without an attach")
        );
        Step::End(Outcome::Abandoned)
    }

    /// Checks the attach's token; on success takes the client's settings out of it.
    fn authenticate(&mut self, msg: Message, initialize: Option<Message>) -> Step {
        let presented = match presented_token(msg.bytes()) {
            Ok(token) => token,
            Err(e) => {
                throttled!(
                    self.shared.log_throttle,
                    "bad_frame",
                    warn!(peer = %self.peer, reason = %e, "closing connection")
                );
                return Step::End(Outcome::Abandoned);
            }
        };
        if let Err(refusal) = self.shared.auth.check(self.peer.ip(), presented.as_deref()) {
            return Step::Refuse(msg, refusal);
        }
        // Authenticated: from here on the message may be parsed whole.
        let Ok(attach) = self.take_settings(msg, initialize) else {
            return Step::End(Outcome::Abandoned);
        };
        info!(peer = %self.peer, "client authenticated");
        Step::Attached(Box::new(attach))
    }

    /// A refused attach: counted exactly, logged within the throttle, answered after
    /// the failure delay (so guessing costs time), then the connection lingers briefly
    /// for the client's `disconnect`.
    async fn refuse(
        &mut self,
        request: &Message,
        refusal: &Refusal,
        place: &Place,
        shutdown: &CancellationToken,
    ) -> Outcome {
        self.shared.count_auth_failure(refusal.reason());
        throttled!(
            self.shared.log_throttle,
            "attach_refused",
            warn!(peer = %self.peer, reason = refusal.reason(), "attach refused")
        );
        tokio::select! {
            _ = sleep(self.shared.config.limits.auth_failure_delay) => {}
            _ = place.shed() => return self.shed(),
            _ = shutdown.cancelled() => return Outcome::Shutdown,
        }
        if self
            .reply_preauth(request, Err(refusal.message(&self.client_info)))
            .await
            .is_ok()
        {
            tokio::select! {
                _ = self.linger() => {}
                _ = place.shed() => return self.shed(),
                _ = shutdown.cancelled() => return Outcome::Shutdown,
            }
        }
        Outcome::Refused
    }

    /// Reads one message before authentication; any error ends the connection.
    async fn read_preauth(&mut self) -> Result<Message, Outcome> {
        use futures_util::StreamExt;
        match self.client.next().await {
            Some(Ok(bytes)) => match Message::parse(bytes) {
                Ok(msg) => {
                    self.max_client_seq = self.max_client_seq.max(msg.seq);
                    Ok(msg)
                }
                Err(e) => {
                    throttled!(
                        self.shared.log_throttle,
                        "bad_frame",
                        warn!(peer = %self.peer, reason = %e, "closing connection")
                    );
                    Err(Outcome::Abandoned)
                }
            },
            Some(Err(e)) => {
                throttled!(
                    self.shared.log_throttle,
                    "bad_frame",
                    warn!(peer = %self.peer, reason = %e, "closing connection")
                );
                Err(Outcome::Abandoned)
            }
            None => {
                debug!(peer = %self.peer, "client closed before attaching");
                Err(Outcome::Abandoned)
            }
        }
    }

    /// Answers a request before authentication; a client that does not read its
    /// replies within [`WRITE_WAIT`] is dropped rather than queued for.
    pub(super) async fn reply_preauth(
        &mut self,
        request: &Message,
        result: Result<Value, String>,
    ) -> Result<(), Outcome> {
        let seq = self.next_seq();
        let reply = message::response(seq, request, result);
        match timeout(WRITE_WAIT, self.send_client(&reply)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Outcome::Abandoned),
            Err(_) => {
                throttled!(
                    self.shared.log_throttle,
                    "not_reading",
                    warn!(peer = %self.peer, "closing connection: the client does not read its replies")
                );
                Err(Outcome::Abandoned)
            }
        }
    }

    /// After a failed attach, IDEs send `disconnect`: answer it (and refuse anything
    /// else) for a few seconds, then close.
    pub(super) async fn linger(&mut self) {
        let deadline = Instant::now() + LINGER;
        let _ = timeout_at(deadline, async {
            for _ in 0..MAX_MESSAGES {
                let Ok(msg) = self.read_preauth().await else {
                    return;
                };
                if msg.kind != Kind::Request {
                    continue;
                }
                if msg.name == "disconnect" || msg.name == "terminate" {
                    let _ = self.reply_preauth(&msg, Ok(json!({}))).await;
                    return;
                }
                if self
                    .reply_preauth(&msg, Err("dap-sidecar: not attached.".into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
        .await;
    }
}
