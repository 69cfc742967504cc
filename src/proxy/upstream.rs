//! Phase 2 of a session: reaching debugpy. Before connecting, the sidecar refuses to
//! relay to a debugpy that listens on a non-loopback address (the side door), unless
//! configured to accept the risk. Then it connects to the upstream, retrying with
//! backoff for `upstream_timeout` and telling the client on its console while it waits.
//! The connection is registered with the upstream watch (`OwnConnection`) so that it
//! is not counted as a bypass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::dap::codec::{DapCodec, StreamingCodec};
use crate::dap::message::{self, Message};
use crate::proxy::rewrite;
use crate::proxy::session::{Outcome, Session};
use crate::state::Shared;

/// The upstream side: large path-free responses pass through as they arrive.
pub(super) type Upstream = Framed<TcpStream, StreamingCodec>;

/// How long a new connection to debugpy waits after the previous session's connection
/// closed (see [`Shared::wait_settled`]).
const SESSION_SETTLE: Duration = Duration::from_millis(100);

/// The `progressId` of the wait for debugpy.
const UPSTREAM_PROGRESS: &str = "dap-sidecar-upstream";

/// How long an attach waits for a fresh look at debugpy's listening sockets.
const SIDE_DOOR_CHECK: Duration = Duration::from_secs(1);

/// A look at debugpy's listening sockets at most this old is good enough for an attach.
const SIDE_DOOR_MAX_AGE: Duration = Duration::from_secs(2);

impl Session {
    /// Refuses to relay when debugpy itself listens on a non-loopback address (anyone
    /// who reaches it there needs no token), unless `auth.allow_exposed_upstream`; with
    /// it, the client is warned on its console.
    pub(super) async fn check_side_door(&mut self, attach: &Message) -> Result<(), Outcome> {
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

    /// Phase 2: connect to the upstream, retrying until `upstream_timeout`.
    pub(super) async fn connect(
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
        let finishing = self.shared.config.limits.disconnect_timeout;
        if !self.shared.wait_finalized(finishing).await {
            warn!(peer = %self.peer, "a previous session is still ending; attaching anyway");
        }
        self.shared.wait_settled(SESSION_SETTLE).await;
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
                        if next_report > started {
                            self.progress("progressEnd", json!({"message": "debugpy is listening"})).await;
                        }
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
                if next_report > started {
                    let body = json!({"message": "debugpy did not come up"});
                    self.progress("progressEnd", body).await;
                }
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
                let message = format!("at {upstream}, up to {left}s more");
                if next_report == started {
                    let body = json!({"title": "Waiting for debugpy", "message": message, "cancellable": false});
                    self.progress("progressStart", body).await;
                } else {
                    self.progress("progressUpdate", json!({"message": message}))
                        .await;
                }
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

    /// Sends a progress event about waiting for debugpy, if the client shows them
    /// (`supportsProgressReporting`): VS Code shows a notification, nvim-dap its status
    /// line (`dap.status()`).
    async fn progress(&mut self, event: &str, mut body: Value) {
        if !self.client_info.progress {
            return;
        }
        if let Some(body) = body.as_object_mut() {
            body.insert("progressId".into(), UPSTREAM_PROGRESS.into());
        }
        let seq = self.next_seq();
        let _ = self.send_client(&message::event(seq, event, body)).await;
    }

    /// Frames a connection to debugpy: messages up to `limits.max_body_bytes`, with
    /// path-free responses passed through as they arrive.
    pub(super) fn frame_upstream(&self, stream: TcpStream) -> Upstream {
        let limits = &self.shared.config.limits;
        let codec = StreamingCodec::new(
            DapCodec::new(limits.max_header_bytes, limits.max_body_bytes),
            rewrite::passes_untouched,
        );
        Framed::new(stream, codec)
    }

    /// Answers the client's `attach` with what went wrong upstream before the attach
    /// was through.
    pub(super) async fn upstream_failed(&mut self, attach: &Message, why: &str) -> Outcome {
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
}

/// One of the sidecar's own connections to debugpy, registered with the upstream watch
/// (so it is not counted as a bypass) while it is open.
pub(super) struct OwnConnection {
    /// The shared state holding the watch.
    shared: Arc<Shared>,
    /// The connection's local address.
    local: SocketAddr,
}

impl OwnConnection {
    pub(super) fn new(shared: &Arc<Shared>, local: SocketAddr) -> OwnConnection {
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
