//! Samples the app's memory every `target.sample_interval` on a blocking thread and keeps
//! what the HTTP endpoints show: the latest readings (RSS and, where visible, the
//! cgroup), the history ([`crate::debuggee::history`]), the growth figures
//! ([`crate::debuggee::growth`]: steps told apart from trends), the debugging events and
//! the steps with their causes ([`crate::debuggee::events`]), and the debuggee's RSS when
//! the current attach began.
//!
//! Figures are computed when a sample is taken, never when a page is asked for.
//!
//! With `memory.max_growth_while_attached`, a sample that finds the debuggee grown past
//! the limit since attach raises a [`LimitEvent`] (once per attach) that every session
//! receives: `warn` tells the IDE, `detach` ends the sessions cleanly.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Config, OnLimit, TargetConfig};
use crate::debuggee::cgroup::{self, CgroupMemory};
use crate::debuggee::discover::{self, Found};
use crate::debuggee::events::{Cause, Event, Ledger, Reading, StepEvent};
use crate::debuggee::growth::{self, Growth, Step};
use crate::debuggee::history::History;
use crate::debuggee::memory::{self, Memory};
use crate::metrics::{MemoryFigures, Metrics};

pub use crate::debuggee::history::Point;

/// PSS is read at most this often: `smaps_rollup` stalls large targets.
const PSS_EVERY: Duration = Duration::from_secs(60);
/// Recent samples are kept at least this long (longer if `memory.window` is).
const KEEP_RECENT: Duration = Duration::from_secs(600);

/// The debuggee grew past `memory.max_growth_while_attached`.
#[derive(Clone, Copy, Debug)]
pub struct LimitEvent {
    /// Growth since attach, bytes.
    pub growth: u64,
    /// The configured limit, bytes.
    pub limit: u64,
    /// What sessions should do.
    pub action: OnLimit,
}

/// What the monitor knows now.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// The latest discovery.
    #[serde(skip)]
    pub found: Found,
    /// Debuggee memory.
    pub debuggee: Option<Memory>,
    /// Adapter memory.
    pub adapter: Option<Memory>,
    /// The debuggee's cgroup memory, when visible.
    pub cgroup: Option<CgroupMemory>,
    /// Debuggee RSS growth over `memory.window` with steps told apart, bytes per second
    /// (`None` until the history covers enough of the window).
    pub debuggee_growth_per_second: Option<f64>,
    /// Likewise for the adapter.
    pub adapter_growth_per_second: Option<f64>,
    /// The parts of the debuggee's growth figure.
    pub debuggee_growth: Growth,
    /// The parts of the adapter's growth figure.
    pub adapter_growth: Growth,
    /// Debuggee RSS when the current attach began (while a session is attached).
    pub baseline: Option<u64>,
    /// Debuggee RSS now minus `baseline`.
    pub growth_since_attach: Option<i64>,
    /// The chart's points: the current (or last) session and at least the recent
    /// samples, older parts downsampled.
    pub history: Vec<Point>,
    /// Where the full-resolution samples begin in `history` (Unix seconds); points
    /// before are downsampled.
    pub recent_from: Option<f64>,
    /// Debugging events of the current app process (debugpy loaded, attaches, ends).
    pub events: Vec<Event>,
    /// Memory steps of the current app process, with causes.
    pub steps: Vec<StepEvent>,
    /// The app's RSS before debugpy was loaded, when the sidecar saw it.
    pub before_debugpy: Option<Reading>,
    /// The steps' totals by cause (`None`: unknown), bytes.
    pub cost_by_cause: Vec<(Option<Cause>, i64)>,
    /// When the current (or last) session began (Unix seconds).
    pub session_start: Option<f64>,
    /// A session is attached now.
    pub attached: bool,
    /// `memory.window`, seconds.
    pub window: f64,
}

/// Mutable monitor state.
#[derive(Default)]
struct State {
    /// Latest discovery and readings.
    found: Found,
    debuggee: Option<Memory>,
    adapter: Option<Memory>,
    cgroup: Option<CgroupMemory>,
    /// Samples.
    history: History,
    /// Events and steps of the current app process.
    ledger: Ledger,
    /// Growth figures as of the latest sample.
    debuggee_growth: Growth,
    adapter_growth: Growth,
    /// Authenticated sessions now.
    attached: usize,
    /// When the current (or last) session began.
    session_start: Option<f64>,
    /// Debuggee RSS when `attached` went from 0 to 1 (filled by the next sample if
    /// unknown then).
    baseline: Option<u64>,
    /// The limit event was raised for this attach.
    limit_raised: bool,
    /// When PSS was last read.
    last_pss: Option<Instant>,
    /// When the loop last completed a sample.
    last_sample: Option<Instant>,
}

/// The memory monitor.
pub struct Monitor {
    /// The state, behind a std mutex held only for short updates and copies.
    state: Mutex<State>,
    /// Limit events for sessions.
    limits: broadcast::Sender<LimitEvent>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            state: Mutex::new(State::default()),
            limits: broadcast::channel(16).0,
        }
    }
}

/// One blocking sampling round's readings.
pub struct Sample {
    /// Discovery.
    pub found: Found,
    /// Debuggee memory.
    pub debuggee: Option<Memory>,
    /// Adapter memory.
    pub adapter: Option<Memory>,
    /// The debuggee's cgroup memory.
    pub cgroup: Option<CgroupMemory>,
    /// PSS was read this round.
    pub read_pss: bool,
}

impl Monitor {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Subscribes a session to limit events.
    pub fn subscribe(&self) -> broadcast::Receiver<LimitEvent> {
        self.limits.subscribe()
    }

    /// A session authenticated: an event, and the growth baseline if it is the first.
    pub fn on_attach(&self, peer: &str) {
        let at = unix(SystemTime::now());
        self.with(|s| {
            s.attached += 1;
            if s.attached == 1 {
                s.baseline = s.debuggee.map(|m| m.rss);
                s.limit_raised = false;
                s.session_start = Some(at);
            }
            s.ledger
                .event(at, Cause::SessionAttached, Some(peer.to_owned()));
        });
    }

    /// An authenticated session ended.
    pub fn on_detach(&self, peer: &str) {
        let at = unix(SystemTime::now());
        self.with(|s| {
            s.attached = s.attached.saturating_sub(1);
            if s.attached == 0 {
                s.baseline = None;
            }
            s.ledger
                .event(at, Cause::SessionEnded, Some(peer.to_owned()));
        });
    }

    /// The pid of debugpy's adapter in the latest discovery (cheap: copies no history).
    pub fn adapter_pid(&self) -> Option<i32> {
        self.with(|s| s.found.adapter.as_ref().map(|p| p.pid))
    }

    /// When the sampling loop last completed a round (for `/healthz`).
    pub fn last_sample(&self) -> Option<Instant> {
        self.with(|s| s.last_sample)
    }

    /// A copy of everything, for `/`.
    pub fn snapshot(&self, window: Duration) -> Snapshot {
        self.copy(window, true)
    }

    /// A copy of everything but the chart's points, for `/status`.
    pub fn figures(&self, window: Duration) -> Snapshot {
        self.copy(window, false)
    }

    fn copy(&self, window: Duration, with_history: bool) -> Snapshot {
        self.with(|s| {
            let recent_from = s.history.recent_from();
            // The chart covers the current (or last) session, from a minute before it.
            let since = match (s.session_start, recent_from) {
                (Some(start), Some(recent)) => (start - 60.0).min(recent),
                (_, Some(recent)) => recent,
                _ => 0.0,
            };
            Snapshot {
                found: s.found.clone(),
                debuggee: s.debuggee,
                adapter: s.adapter,
                cgroup: s.cgroup.clone(),
                debuggee_growth_per_second: s.debuggee_growth.per_second,
                adapter_growth_per_second: s.adapter_growth.per_second,
                debuggee_growth: s.debuggee_growth.clone(),
                adapter_growth: s.adapter_growth.clone(),
                baseline: s.baseline,
                growth_since_attach: growth_since_attach(s),
                history: if with_history {
                    s.history.chart(since)
                } else {
                    Vec::new()
                },
                recent_from,
                events: s.ledger.events.iter().cloned().collect(),
                steps: s.ledger.steps.iter().cloned().collect(),
                before_debugpy: s.ledger.before_debugpy,
                cost_by_cause: Cause::ALL
                    .iter()
                    .map(|c| Some(*c))
                    .chain([None])
                    .map(|c| (c, s.ledger.total(c)))
                    .collect(),
                session_start: s.session_start,
                attached: s.attached > 0,
                window: window.as_secs_f64(),
            }
        })
    }

    /// Samples until `shutdown`.
    pub async fn run(&self, config: &Config, metrics: &Metrics, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(config.target.sample_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let want_pss = config.memory.pss
                && self.with(|s| s.last_pss.is_none_or(|t| t.elapsed() >= PSS_EVERY));
            let target = config.target.clone();
            let port = config.upstream_port();
            let read = tokio::task::spawn_blocking(move || sample(&target, port, want_pss)).await;
            let Ok(sample) = read else {
                warn!("memory sampling thread failed");
                continue;
            };
            self.record(config, metrics, sample);
        }
    }

    /// Takes in one sampling round's readings: history, events, steps, figures, metrics,
    /// and the attach limit.
    pub fn record(&self, config: &Config, metrics: &Metrics, sample: Sample) {
        let now = Instant::now();
        let at = unix(SystemTime::now());
        let keep = config.memory.window.max(KEEP_RECENT);
        let event = self.with(|s| {
            let pids = |f: &Found| {
                (
                    f.debuggee.as_ref().map(|p| p.pid),
                    f.adapter.as_ref().map(|p| p.pid),
                )
            };
            let (old, new) = (pids(&s.found), pids(&sample.found));
            if old != new {
                info!(debuggee = new.0, adapter = new.1, "target changed");
            }
            if old.0 != new.0 {
                // A restarted app: the old history says nothing about the new process.
                s.history.clear();
                s.ledger = Ledger::new(new.0, config.target.sample_interval);
                if s.attached > 0 {
                    s.baseline = None;
                }
            }
            s.found = sample.found;
            // Keep the last PSS between (rate-limited) reads.
            let keep_pss = |new: Option<Memory>, old: Option<Memory>| {
                new.map(|mut m| {
                    if !sample.read_pss {
                        m.pss = old.and_then(|o| o.pss);
                    }
                    m
                })
            };
            s.debuggee = keep_pss(sample.debuggee, s.debuggee);
            s.adapter = keep_pss(sample.adapter, s.adapter);
            s.cgroup = sample.cgroup;
            if sample.read_pss {
                s.last_pss = Some(now);
            }
            if s.attached > 0 && s.baseline.is_none() {
                s.baseline = s.debuggee.map(|m| m.rss);
            }
            let point = Point {
                at,
                debuggee: s.debuggee.map(|m| m.rss),
                adapter: s.adapter.map(|m| m.rss),
            };
            s.history.push(now, point, keep);
            if s.ledger.sample(at, point.debuggee, point.adapter) == Some(Cause::DebugpyLoaded) {
                info!(
                    debuggee_rss_before = s.ledger.before_debugpy.map(|r| r.rss),
                    adapter_rss = point.adapter,
                    "debugpy loaded into the app"
                );
            }
            update_growth(s, config.memory.window, metrics);
            s.last_sample = Some(now);
            debug!(
                debuggee_rss = point.debuggee,
                adapter_rss = point.adapter,
                growth = s.debuggee_growth.per_second,
                "memory sampled"
            );
            metrics.set_target(
                s.debuggee,
                s.adapter,
                s.debuggee_growth.per_second,
                s.adapter_growth.per_second,
                growth_since_attach(s),
            );
            metrics.set_memory_figures(&MemoryFigures {
                least_squares: [
                    s.debuggee_growth.least_squares,
                    s.adapter_growth.least_squares,
                ],
                cgroup: s.cgroup.as_ref(),
                ledger: &s.ledger,
            });
            let limit = config.memory.max_growth_while_attached?;
            let grown = u64::try_from(growth_since_attach(s)?).ok()?;
            if grown > limit && !s.limit_raised {
                s.limit_raised = true;
                return Some(LimitEvent {
                    growth: grown,
                    limit,
                    action: config.memory.on_limit,
                });
            }
            None
        });
        if let Some(event) = event {
            warn!(
                growth = event.growth,
                limit = event.limit,
                action = ?event.action,
                "the app's memory grew past memory.max_growth_while_attached"
            );
            metrics.memory_limit_exceeded_total.inc();
            let _ = self.limits.send(event);
        }
    }
}

/// Finds the steps in the recent history, records the new ones with their causes, and
/// computes both processes' growth over `window`.
fn update_growth(s: &mut State, window: Duration, metrics: &Metrics) {
    let recent = s.history.recent();
    let in_window = s.history.window(window);
    let window_from = in_window.first().map_or(f64::MAX, |p| p.at);
    let figure = |pick: fn(&Point) -> Option<u64>, ledger: &Ledger| {
        let series = |points: &[Point]| -> Vec<(f64, f64)> {
            points
                .iter()
                .filter_map(|p| Some((p.at, pick(p)? as f64)))
                .collect()
        };
        let steps = growth::detect_steps(&series(&recent));
        let explained: Vec<(Step, bool)> = steps
            .iter()
            .filter(|st| st.to > window_from)
            .map(|st| (*st, ledger.cause_of(st).is_some()))
            .collect();
        (
            growth::growth(&series(&in_window), window.as_secs_f64(), &explained),
            steps,
        )
    };
    let (debuggee, steps) = figure(|p| p.debuggee, &s.ledger);
    let (adapter, _) = figure(|p| p.adapter, &s.ledger);
    for step in s.ledger.record_steps(&steps) {
        info!(
            bytes = step.bytes,
            cause = step.cause.map_or("unknown", Cause::key),
            "the app's memory stepped"
        );
        metrics.count_step(step.cause);
    }
    s.debuggee_growth = debuggee;
    s.adapter_growth = adapter;
}

fn growth_since_attach(s: &State) -> Option<i64> {
    let now = i64::try_from(s.debuggee?.rss).ok()?;
    let base = i64::try_from(s.baseline?).ok()?;
    Some(now - base)
}

/// One blocking sampling round: discovery and readings.
fn sample(target: &TargetConfig, port: u16, pss: bool) -> Sample {
    let found = discover::discover(target, port);
    let debuggee = found
        .debuggee
        .as_ref()
        .and_then(|p| memory::read(p.pid, pss));
    let adapter = found
        .adapter
        .as_ref()
        .and_then(|p| memory::read(p.pid, pss));
    let cgroup = found.debuggee.as_ref().and_then(|p| cgroup::read(p.pid));
    Sample {
        found,
        debuggee,
        adapter,
        cgroup,
        read_pss: pss,
    }
}
