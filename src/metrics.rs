//! The sidecar's Prometheus metrics (names from the spec, all prefixed `dap_sidecar_`).
//!
//! Counters on the hot path (`messages_total`) are resolved to their label values once,
//! so relaying a message costs an atomic add.

use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::dap::message::{Kind, Message};
use crate::debuggee::memory::Memory;

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
    /// `target_up`: 1 when the app process is found.
    pub target_up: IntGauge,
    /// `upstream_up`: 1 when the upstream port is listening.
    pub upstream_up: IntGauge,
    /// `target_resident_memory_bytes{role}`.
    pub resident: IntGaugeVec,
    /// `target_resident_memory_max_bytes{role}`: the high-water mark (VmHWM).
    pub resident_max: IntGaugeVec,
    /// `target_swap_bytes{role}`.
    pub swap: IntGaugeVec,
    /// `target_proportional_memory_bytes{role}`, only with `memory.pss`.
    pub pss: IntGaugeVec,
    /// `target_memory_growth_bytes_per_second{role}`.
    pub growth_rate: GaugeVec,
    /// `target_memory_growth_since_attach_bytes`.
    pub growth_since_attach: Gauge,
    /// `memory_limit_exceeded_total`: times the growth limit was crossed.
    pub memory_limit_exceeded_total: IntCounter,
    /// `messages_passed_through_total`: large path-free responses relayed as they
    /// arrived instead of being held whole.
    pub messages_passed_through_total: IntCounter,
    /// `connections_unauthenticated`: DAP connections open now that have not
    /// authenticated yet.
    pub connections_unauthenticated: IntGauge,
    /// `connections_shed_total{listener}`: connections closed to make room for newer
    /// ones (`dap`: unauthenticated ones; `http`).
    pub connections_shed_total: IntCounterVec,
    /// `upstream_exposed`: 1 while debugpy (the upstream port, or another listening
    /// socket of its adapter) listens on a non-loopback address, reachable without the
    /// sidecar's token.
    pub upstream_exposed: IntGauge,
    /// `upstream_bypass_connections`: connections to debugpy's client port now that did
    /// not come through the sidecar.
    pub upstream_bypass_connections: IntGauge,
    /// `upstream_bypass_connections_total`: such connections seen since start.
    pub upstream_bypass_connections_total: IntCounter,
    /// `injections_total{result}`: attach-on-demand attempts by result (`injected`, or
    /// the refusal: `no_target`, `python_too_old`, `remote_debug_disabled`, ...).
    pub injections_total: IntCounterVec,
    /// `injection_timestamp_seconds`: when the latest injection had debugpy listening
    /// (unix time; 0 before any).
    pub injection_timestamp_seconds: Gauge,
    /// `target_resident_memory_at_injection_bytes`: the app's RSS just before the
    /// latest injection; the growth since is `target_resident_memory_bytes{role="debuggee"}`
    /// minus this.
    pub resident_at_injection: IntGauge,
    /// The sidecar's own `process_*` metrics (unprefixed, as Prometheus expects).
    process: Registry,
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
        let injections_total = IntCounterVec::new(
            Opts::new(
                "injections_total",
                "Attach-on-demand attempts (debugpy started in a running app) by result",
            ),
            &["result"],
        )?;
        registry.register(Box::new(injections_total.clone()))?;
        let injection_timestamp_seconds = Gauge::new(
            "injection_timestamp_seconds",
            "When the latest attach on demand had debugpy listening (unix time)",
        )?;
        registry.register(Box::new(injection_timestamp_seconds.clone()))?;
        let resident_at_injection = IntGauge::new(
            "target_resident_memory_at_injection_bytes",
            "The app's resident memory just before the latest attach on demand",
        )?;
        registry.register(Box::new(resident_at_injection.clone()))?;
        registry.register(Box::new(debuggee_stopped.clone()))?;
        registry.register(Box::new(messages_total.clone()))?;
        let target_up = IntGauge::new("target_up", "1 when the app process is found")?;
        let upstream_up = IntGauge::new("upstream_up", "1 when the upstream port is listening")?;
        let by_role = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["role"]);
        let resident = by_role(
            "target_resident_memory_bytes",
            "Resident set size (VmRSS) of the app (debuggee) and of debugpy's adapter",
        )?;
        let resident_max = by_role(
            "target_resident_memory_max_bytes",
            "Peak resident set size (VmHWM) of the app and of debugpy's adapter",
        )?;
        let swap = by_role("target_swap_bytes", "Swapped-out memory (VmSwap)")?;
        let pss = by_role(
            "target_proportional_memory_bytes",
            "Proportional set size from smaps_rollup (only with memory.pss)",
        )?;
        let growth_rate = GaugeVec::new(
            Opts::new(
                "target_memory_growth_bytes_per_second",
                "Least-squares slope of RSS over memory.window",
            ),
            &["role"],
        )?;
        let growth_since_attach = Gauge::new(
            "target_memory_growth_since_attach_bytes",
            "Debuggee RSS now minus at the current session's attach (0 without a session)",
        )?;
        let memory_limit_exceeded_total = IntCounter::new(
            "memory_limit_exceeded_total",
            "Times the debuggee grew past memory.max_growth_while_attached",
        )?;
        let messages_passed_through_total = IntCounter::new(
            "messages_passed_through_total",
            "Large path-free responses from debugpy relayed as they arrived, not held whole",
        )?;
        registry.register(Box::new(messages_passed_through_total.clone()))?;
        let connections_unauthenticated = IntGauge::new(
            "connections_unauthenticated",
            "DAP connections open now that have not authenticated yet",
        )?;
        let connections_shed_total = IntCounterVec::new(
            Opts::new(
                "connections_shed_total",
                "Connections closed to make room for newer ones (dap: unauthenticated; http)",
            ),
            &["listener"],
        )?;
        let upstream_exposed = IntGauge::new(
            "upstream_exposed",
            "1 while debugpy listens on a non-loopback address, reachable without the token",
        )?;
        let upstream_bypass_connections = IntGauge::new(
            "upstream_bypass_connections",
            "Connections to debugpy's client port now that did not come through the sidecar",
        )?;
        let upstream_bypass_connections_total = IntCounter::new(
            "upstream_bypass_connections_total",
            "Connections to debugpy's client port seen that did not come through the sidecar",
        )?;
        registry.register(Box::new(connections_unauthenticated.clone()))?;
        registry.register(Box::new(connections_shed_total.clone()))?;
        registry.register(Box::new(upstream_exposed.clone()))?;
        registry.register(Box::new(upstream_bypass_connections.clone()))?;
        registry.register(Box::new(upstream_bypass_connections_total.clone()))?;
        for listener in ["dap", "http"] {
            connections_shed_total.with_label_values(&[listener]);
        }
        for c in [&target_up, &upstream_up] {
            registry.register(Box::new(c.clone()))?;
        }
        for c in [&resident, &resident_max, &swap, &pss] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(growth_rate.clone()))?;
        registry.register(Box::new(growth_since_attach.clone()))?;
        registry.register(Box::new(memory_limit_exceeded_total.clone()))?;
        let process = Registry::new();
        process.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let resolve = |d: &str| KINDS.map(|k| messages_total.with_label_values(&[d, k]));
        Ok(Metrics {
            registry,
            sessions_active,
            sessions_total,
            auth_failures_total,
            injections_total,
            injection_timestamp_seconds,
            resident_at_injection,
            debuggee_stopped,
            messages: DIRECTIONS.map(resolve),
            target_up,
            upstream_up,
            resident,
            resident_max,
            swap,
            pss,
            growth_rate,
            growth_since_attach,
            memory_limit_exceeded_total,
            messages_passed_through_total,
            connections_unauthenticated,
            connections_shed_total,
            upstream_exposed,
            upstream_bypass_connections,
            upstream_bypass_connections_total,
            process,
        })
    }

    /// Publishes a monitor sample (`upstream_up` is the upstream watch's). Series of a
    /// process that is not found are removed, so dashboards show a gap rather than a
    /// stale value.
    pub fn set_target(
        &self,
        debuggee: Option<Memory>,
        adapter: Option<Memory>,
        debuggee_rate: Option<f64>,
        adapter_rate: Option<f64>,
        growth_since_attach: Option<i64>,
    ) {
        self.target_up.set(i64::from(debuggee.is_some()));
        for (role, memory, rate) in [
            ("debuggee", debuggee, debuggee_rate),
            ("adapter", adapter, adapter_rate),
        ] {
            let gauges = [&self.resident, &self.resident_max, &self.swap, &self.pss];
            match memory {
                Some(m) => {
                    let values = [Some(m.rss), Some(m.hwm), Some(m.swap), m.pss];
                    for (gauge, value) in gauges.iter().zip(values) {
                        match value {
                            Some(v) => gauge
                                .with_label_values(&[role])
                                .set(i64::try_from(v).unwrap_or(i64::MAX)),
                            None => {
                                let _ = gauge.remove_label_values(&[role]);
                            }
                        }
                    }
                }
                None => {
                    for gauge in gauges {
                        let _ = gauge.remove_label_values(&[role]);
                    }
                }
            }
            match rate {
                Some(r) => self.growth_rate.with_label_values(&[role]).set(r),
                None => {
                    let _ = self.growth_rate.remove_label_values(&[role]);
                }
            }
        }
        self.growth_since_attach
            .set(growth_since_attach.unwrap_or(0) as f64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Counts a relayed message; `to_client` selects the direction.
    pub fn count_message(&self, to_client: bool, msg: &Message) {
        self.count_kind(to_client, &msg.kind);
    }

    /// Counts a message known only by its kind (one passed through unparsed).
    pub fn count_kind(&self, to_client: bool, kind: &Kind) {
        let kind = match kind {
            Kind::Request => 0,
            Kind::Response => 1,
            Kind::Event => 2,
            Kind::Other(_) => 3,
        };
        self.messages[usize::from(to_client)][kind].inc();
    }
}
