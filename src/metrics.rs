//! The sidecar's Prometheus metrics (names from the spec, all prefixed `dap_sidecar_`).
//!
//! Counters on the hot path (`messages_total`) are resolved to their label values once,
//! so relaying a message costs an atomic add.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::dap::message::{Kind, Message};

/// Every metric the sidecar exports.
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// `sessions_active`: authenticated DAP sessions open now.
    pub sessions_active: IntGauge,
    /// `sessions_total{outcome}`: ended sessions by outcome.
    pub sessions_total: IntCounterVec,
    /// `auth_failures_total{reason}`: refused clients.
    pub auth_failures_total: IntCounterVec,
    /// `debuggee_stopped`: 1 while a session has the app stopped.
    pub debuggee_stopped: IntGauge,
    /// `messages_total{direction,kind}`, resolved: `[direction][kind]`.
    messages: [[IntCounter; 4]; 2],
}

const DIRECTIONS: [&str; 2] = ["to_upstream", "to_client"];
const KINDS: [&str; 4] = ["request", "response", "event", "other"];

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("dap_sidecar".into()), None)?;
        let sessions_active =
            IntGauge::new("sessions_active", "Authenticated DAP sessions open now")?;
        let sessions_total = IntCounterVec::new(
            Opts::new("sessions_total", "Ended DAP sessions by outcome"),
            &["outcome"],
        )?;
        let auth_failures_total = IntCounterVec::new(
            Opts::new("auth_failures_total", "Refused DAP clients by reason"),
            &["reason"],
        )?;
        let debuggee_stopped = IntGauge::new(
            "debuggee_stopped",
            "1 while the app is stopped (breakpoint, pause, exception) by a session",
        )?;
        let messages_total = IntCounterVec::new(
            Opts::new("messages_total", "DAP messages relayed"),
            &["direction", "kind"],
        )?;
        registry.register(Box::new(sessions_active.clone()))?;
        registry.register(Box::new(sessions_total.clone()))?;
        registry.register(Box::new(auth_failures_total.clone()))?;
        registry.register(Box::new(debuggee_stopped.clone()))?;
        registry.register(Box::new(messages_total.clone()))?;
        let resolve = |d: &str| KINDS.map(|k| messages_total.with_label_values(&[d, k]));
        Ok(Metrics {
            registry,
            sessions_active,
            sessions_total,
            auth_failures_total,
            debuggee_stopped,
            messages: DIRECTIONS.map(resolve),
        })
    }

    /// Counts a relayed message; `to_client` selects the direction.
    pub fn count_message(&self, to_client: bool, msg: &Message) {
        let kind = match msg.kind {
            Kind::Request => 0,
            Kind::Response => 1,
            Kind::Event => 2,
            Kind::Other(_) => 3,
        };
        self.messages[usize::from(to_client)][kind].inc();
    }
}
