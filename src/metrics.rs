//! The sidecar's Prometheus metrics (names from the spec, all prefixed `dap_sidecar_`).
//!
//! Counters on the hot path (`messages_total`) are resolved to their label values once,
//! so relaying a message costs an atomic add.

use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::dap::message::{Kind, Message};
use crate::debuggee::cgroup::CgroupMemory;
use crate::debuggee::events::{Cause, Ledger};
use crate::debuggee::memory::Memory;

/// The memory figures beyond RSS that a sample publishes (see
/// [`Metrics::set_memory_figures`]).
pub struct MemoryFigures<'a> {
    /// The least-squares slopes (debuggee, adapter).
    pub least_squares: [Option<f64>; 2],
    /// The debuggee's cgroup memory, when visible.
    pub cgroup: Option<&'a CgroupMemory>,
    /// The debugging events and steps of the current app process.
    pub ledger: &'a Ledger,
}

/// The `cause` label of a step.
fn cause_label(cause: Option<Cause>) -> &'static str {
    cause.map_or("unknown", Cause::key)
}

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
    /// `target_memory_growth_least_squares_bytes_per_second{role}`: the least-squares
    /// slope over `memory.window`, steps and all (what `growth_rate` was before steps
    /// were told apart), for comparison.
    pub growth_least_squares: GaugeVec,
    /// `target_memory_steps_total{cause}`: steps of the app's RSS seen, by cause.
    pub steps_total: IntCounterVec,
    /// `target_memory_step_bytes{cause}`: the app's RSS steps added up by cause, for the
    /// current app process: what debugging cost.
    pub step_bytes: IntGaugeVec,
    /// `target_memory_at_event_bytes{event}`: the app's RSS before debugpy was loaded
    /// (when seen) and after the latest `debugpy_loaded`, `session_attached` and
    /// `session_ended` settled.
    pub at_event: IntGaugeVec,
    /// `target_cgroup_memory_bytes{kind}`: the app's cgroup memory (`current`, `anon`,
    /// `file`), when visible.
    pub cgroup: IntGaugeVec,
    /// `target_cgroup_memory_max_bytes`: the app's cgroup memory limit, when it has one.
    /// (A vector without labels, so that the series can be absent.)
    pub cgroup_max: IntGaugeVec,
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
                "Growth of RSS over memory.window with one-off steps left out (robust slope plus recurring steps); absent until the history covers half the window",
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
        let growth_least_squares = GaugeVec::new(
            Opts::new(
                "target_memory_growth_least_squares_bytes_per_second",
                "Least-squares slope of RSS over memory.window, steps included",
            ),
            &["role"],
        )?;
        let steps_total = IntCounterVec::new(
            Opts::new(
                "target_memory_steps_total",
                "Steps of the app's RSS by cause (debugpy_loaded, session_attached, session_ended, unknown)",
            ),
            &["cause"],
        )?;
        let step_bytes = IntGaugeVec::new(
            Opts::new(
                "target_memory_step_bytes",
                "The app's RSS steps added up by cause since the app process started",
            ),
            &["cause"],
        )?;
        let at_event = IntGaugeVec::new(
            Opts::new(
                "target_memory_at_event_bytes",
                "The app's RSS before debugpy was loaded (before_debugpy) and after the latest debugpy_loaded, session_attached, session_ended",
            ),
            &["event"],
        )?;
        let cgroup = IntGaugeVec::new(
            Opts::new(
                "target_cgroup_memory_bytes",
                "Memory of the app's cgroup (current, anon, file), when its files are visible",
            ),
            &["kind"],
        )?;
        let cgroup_max = IntGaugeVec::new(
            Opts::new(
                "target_cgroup_memory_max_bytes",
                "Memory limit of the app's cgroup, when it has one",
            ),
            &[],
        )?;
        registry.register(Box::new(growth_least_squares.clone()))?;
        registry.register(Box::new(steps_total.clone()))?;
        registry.register(Box::new(step_bytes.clone()))?;
        registry.register(Box::new(at_event.clone()))?;
        registry.register(Box::new(cgroup.clone()))?;
        registry.register(Box::new(cgroup_max.clone()))?;
        for cause in Cause::ALL.map(Some).into_iter().chain([None]) {
            steps_total.with_label_values(&[cause_label(cause)]);
        }
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
            growth_least_squares,
            steps_total,
            step_bytes,
            at_event,
            cgroup,
            cgroup_max,
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

    /// Counts a step of the app's RSS.
    pub fn count_step(&self, cause: Option<Cause>) {
        self.steps_total
            .with_label_values(&[cause_label(cause)])
            .inc();
    }

    /// Publishes the figures beyond RSS: the least-squares slopes, the steps by cause,
    /// the RSS at debugging events, the cgroup. Absent figures remove their series.
    pub fn set_memory_figures(&self, f: &MemoryFigures<'_>) {
        let set = |gauge: &IntGaugeVec, label: &str, value: Option<i64>| {
            let labels: &[&str] = if label.is_empty() { &[] } else { &[label] };
            match value {
                Some(v) => gauge.with_label_values(labels).set(v),
                None => {
                    let _ = gauge.remove_label_values(labels);
                }
            }
        };
        let bytes = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for (role, slope) in ["debuggee", "adapter"].into_iter().zip(f.least_squares) {
            match slope {
                Some(v) => self.growth_least_squares.with_label_values(&[role]).set(v),
                None => {
                    let _ = self.growth_least_squares.remove_label_values(&[role]);
                }
            }
        }
        for cause in Cause::ALL.map(Some).into_iter().chain([None]) {
            let total = f.ledger.total(cause);
            let seen = f.ledger.steps.iter().any(|s| s.cause == cause);
            set(&self.step_bytes, cause_label(cause), seen.then_some(total));
        }
        let before = f.ledger.before_debugpy.map(|r| bytes(r.rss));
        set(&self.at_event, "before_debugpy", before);
        for cause in Cause::ALL {
            let after = f.ledger.last(cause).and_then(|e| e.rss_after).map(bytes);
            set(&self.at_event, cause.key(), after);
        }
        let c = f.cgroup;
        set(&self.cgroup, "current", c.map(|c| bytes(c.current)));
        set(&self.cgroup, "anon", c.and_then(|c| c.anon).map(bytes));
        set(&self.cgroup, "file", c.and_then(|c| c.file).map(bytes));
        set(&self.cgroup_max, "", c.and_then(|c| c.max).map(bytes));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_series_come_and_go_with_the_figures() {
        let metrics = Metrics::new().expect("metrics");
        let ledger = Ledger::default();
        let cgroup = CgroupMemory {
            dir: "/sys/fs/cgroup/app".into(),
            version: 2,
            current: 300 << 20,
            anon: Some(200 << 20),
            file: None,
            max: Some(512 << 20),
        };
        let figures = |cgroup| MemoryFigures {
            least_squares: [Some(1.5), None],
            cgroup,
            ledger: &ledger,
        };
        metrics.set_memory_figures(&figures(Some(&cgroup)));
        let text = metrics.render();
        for line in [
            "dap_sidecar_target_cgroup_memory_max_bytes 536870912",
            "dap_sidecar_target_cgroup_memory_bytes{kind=\"current\"} 314572800",
            "dap_sidecar_target_cgroup_memory_bytes{kind=\"anon\"} 209715200",
            "dap_sidecar_target_memory_growth_least_squares_bytes_per_second{role=\"debuggee\"} 1.5",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("kind=\"file\""), "{text}");
        metrics.set_memory_figures(&figures(None));
        let text = metrics.render();
        assert!(!text.contains("dap_sidecar_target_cgroup_memory_max_bytes "));
        assert!(!text.contains("kind=\"current\""));
    }
}
