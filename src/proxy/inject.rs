//! Phase 2, before connecting: attach on demand. With `inject.mode: auto` and nothing
//! listening on the upstream, the session asks the [`crate::inject::Injector`] to start
//! debugpy in the running app, tells the client on its console what happened, and then
//! connects as usual. A refusal answers the client's `attach` with the reason and what
//! to do, is logged, and is counted in `injections_total{result}`.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::InjectMode;
use crate::dap::message::Message;
use crate::inject::Ensured;
use crate::proxy::session::{Outcome, Session};

impl Session {
    /// Starts debugpy in the app when configured and needed; a shutdown stops waiting.
    pub(super) async fn inject_if_needed(
        &mut self,
        attach: &Message,
        shutdown: &CancellationToken,
    ) -> Result<(), Outcome> {
        if self.shared.config.inject.mode == InjectMode::Off {
            return Ok(());
        }
        let shared = self.shared.clone();
        let ensured = tokio::select! {
            ensured = shared.injector.ensure(&shared) => ensured,
            _ = shutdown.cancelled() => return Err(Outcome::Shutdown),
        };
        match ensured {
            Ok(Ensured::Listening) => Ok(()),
            Ok(Ensured::AlreadyInjected { pid }) => {
                // Handed over before but not listening (yet): the script may still be
                // pending in a busy main thread. Connecting waits `upstream_timeout`.
                self.say(&format!(
                    "dap-sidecar: debugpy was already started in the app (pid {pid}) but does not listen yet; waiting for it"
                ))
                .await;
                Ok(())
            }
            Ok(Ensured::Injected { pid, version, took }) => {
                let ms = took.as_millis();
                info!(peer = %self.peer, pid, %version, took_ms = ms as u64, "debugpy started in the app on demand");
                self.say(&format!(
                    "dap-sidecar: started debugpy in the app (pid {pid}, Python {version}) in {ms} ms"
                ))
                .await;
                Ok(())
            }
            Err(e) => {
                warn!(peer = %self.peer, reason = e.label(), error = %e, "attach on demand refused");
                self.reply(attach, Err(format!("dap-sidecar: {e}"))).await;
                self.linger().await;
                Err(Outcome::NotInjected)
            }
        }
    }
}
