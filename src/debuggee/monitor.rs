//! Samples the app's memory every `target.sample_interval` on a blocking thread and keeps
//! what the HTTP endpoints show: the latest readings, a history for the chart and the
//! growth fit, attach/detach marks, and the debuggee's RSS when the current attach began.
//!
//! With `memory.max_growth_while_attached`, a sample that finds the debuggee grown past
//! the limit since attach raises a [`LimitEvent`] (once per attach) that every session
//! receives: `warn` tells the IDE, `detach` ends the sessions cleanly.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Config, OnLimit, TargetConfig};
use crate::debuggee::discover::{self, Found};
use crate::debuggee::memory::{self, Memory};
use crate::metrics::Metrics;

/// Most history points kept for the chart.
const MAX_POINTS: usize = 2000;
/// Most attach/detach marks kept.
const MAX_MARKS: usize = 200;
/// PSS is read at most this often: `smaps_rollup` stalls large targets.
const PSS_EVERY: Duration = Duration::from_secs(60);

/// One sample in the history.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Point {
    /// When it was taken (Unix seconds).
    pub at: f64,
    /// Debuggee RSS, bytes.
    pub debuggee: Option<u64>,
    /// Adapter RSS, bytes.
    pub adapter: Option<u64>,
}

/// A session attaching or ending, for the chart.
#[derive(Clone, Debug, Serialize)]
pub struct Mark {
    /// When (Unix seconds).
    pub at: f64,
    /// `attach` or `detach`.
    pub kind: &'static str,
    /// The client's address.
    pub peer: String,
}

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
    /// RSS growth over `memory.window`, bytes per second.
    pub debuggee_growth_per_second: Option<f64>,
    /// Likewise for the adapter.
    pub adapter_growth_per_second: Option<f64>,
    /// Debuggee RSS when the current attach began (while a session is attached).
    pub baseline: Option<u64>,
    /// Debuggee RSS now minus `baseline`.
    pub growth_since_attach: Option<i64>,
    /// The chart's history.
    pub history: Vec<Point>,
    /// Attach/detach marks.
    pub marks: Vec<Mark>,
}

/// Mutable monitor state.
#[derive(Default)]
struct State {
    /// Latest discovery and readings.
    found: Found,
    debuggee: Option<Memory>,
    adapter: Option<Memory>,
    /// Samples, oldest first, with the monotonic time they were taken.
    history: VecDeque<(Instant, Point)>,
    marks: VecDeque<Mark>,
    /// Authenticated sessions now.
    attached: usize,
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

impl Monitor {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Subscribes a session to limit events.
    pub fn subscribe(&self) -> broadcast::Receiver<LimitEvent> {
        self.limits.subscribe()
    }

    /// A session authenticated: mark it, and start the growth baseline if it is the first.
    pub fn on_attach(&self, peer: &str) {
        self.with(|s| {
            s.attached += 1;
            if s.attached == 1 {
                s.baseline = s.debuggee.map(|m| m.rss);
                s.limit_raised = false;
            }
            push_mark(s, "attach", peer);
        });
    }

    /// An authenticated session ended.
    pub fn on_detach(&self, peer: &str) {
        self.with(|s| {
            s.attached = s.attached.saturating_sub(1);
            if s.attached == 0 {
                s.baseline = None;
            }
            push_mark(s, "detach", peer);
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

    /// A copy of everything, for `/status` and `/`.
    pub fn snapshot(&self, window: Duration) -> Snapshot {
        self.with(|s| {
            let (d, a) = slopes(&s.history, window);
            Snapshot {
                found: s.found.clone(),
                debuggee: s.debuggee,
                adapter: s.adapter,
                debuggee_growth_per_second: d,
                adapter_growth_per_second: a,
                baseline: s.baseline,
                growth_since_attach: growth(s),
                history: s.history.iter().map(|(_, p)| *p).collect(),
                marks: s.marks.iter().cloned().collect(),
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
            let Ok((found, debuggee, adapter)) = read else {
                warn!("memory sampling thread failed");
                continue;
            };
            self.record(config, metrics, found, debuggee, adapter, want_pss);
        }
    }

    fn record(
        &self,
        config: &Config,
        metrics: &Metrics,
        found: Found,
        debuggee: Option<Memory>,
        adapter: Option<Memory>,
        read_pss: bool,
    ) {
        let now = Instant::now();
        let keep = config.memory.window.max(Duration::from_secs(600));
        let event = self.with(|s| {
            let pids = |f: &Found| {
                (
                    f.debuggee.as_ref().map(|p| p.pid),
                    f.adapter.as_ref().map(|p| p.pid),
                )
            };
            let (old, new) = (pids(&s.found), pids(&found));
            if old != new {
                info!(debuggee = new.0, adapter = new.1, "target changed");
            }
            if old.0 != new.0 {
                // A restarted app: the old history says nothing about the new process.
                s.history.clear();
                if s.attached > 0 {
                    s.baseline = None;
                }
            }
            s.found = found;
            // Keep the last PSS between (rate-limited) reads.
            let keep_pss = |new: Option<Memory>, old: Option<Memory>| {
                new.map(|mut m| {
                    if !read_pss {
                        m.pss = old.and_then(|o| o.pss);
                    }
                    m
                })
            };
            s.debuggee = keep_pss(debuggee, s.debuggee);
            s.adapter = keep_pss(adapter, s.adapter);
            if read_pss {
                s.last_pss = Some(now);
            }
            if s.attached > 0 && s.baseline.is_none() {
                s.baseline = s.debuggee.map(|m| m.rss);
            }
            s.history.push_back((
                now,
                Point {
                    at: unix(SystemTime::now()),
                    debuggee: s.debuggee.map(|m| m.rss),
                    adapter: s.adapter.map(|m| m.rss),
                },
            ));
            while s.history.len() > MAX_POINTS
                || s.history
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > keep)
            {
                s.history.pop_front();
            }
            s.last_sample = Some(now);
            debug!(
                debuggee_rss = s.debuggee.map(|m| m.rss),
                adapter_rss = s.adapter.map(|m| m.rss),
                "memory sampled"
            );
            let (d, a) = slopes(&s.history, config.memory.window);
            metrics.set_target(s.debuggee, s.adapter, d, a, growth(s));
            let limit = config.memory.max_growth_while_attached?;
            let grown = u64::try_from(growth(s)?).ok()?;
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

fn push_mark(s: &mut State, kind: &'static str, peer: &str) {
    s.marks.push_back(Mark {
        at: unix(SystemTime::now()),
        kind,
        peer: peer.to_owned(),
    });
    while s.marks.len() > MAX_MARKS {
        s.marks.pop_front();
    }
}

fn growth(s: &State) -> Option<i64> {
    let now = i64::try_from(s.debuggee?.rss).ok()?;
    let base = i64::try_from(s.baseline?).ok()?;
    Some(now - base)
}

/// Growth slopes (debuggee, adapter) over the last `window` of history.
fn slopes(history: &VecDeque<(Instant, Point)>, window: Duration) -> (Option<f64>, Option<f64>) {
    let Some((newest, _)) = history.back() else {
        return (None, None);
    };
    let recent: Vec<&(Instant, Point)> = history
        .iter()
        .filter(|(t, _)| newest.duration_since(*t) <= window)
        .collect();
    let fit = |pick: fn(&Point) -> Option<u64>| {
        let points: Vec<(f64, f64)> = recent
            .iter()
            .filter_map(|(t, p)| {
                Some((t.duration_since(recent[0].0).as_secs_f64(), pick(p)? as f64))
            })
            .collect();
        memory::slope(&points)
    };
    (fit(|p| p.debuggee), fit(|p| p.adapter))
}

/// One blocking sampling round: discovery and readings.
fn sample(target: &TargetConfig, port: u16, pss: bool) -> (Found, Option<Memory>, Option<Memory>) {
    let found = discover::discover(target, port);
    let debuggee = found
        .debuggee
        .as_ref()
        .and_then(|p| memory::read(p.pid, pss));
    let adapter = found
        .adapter
        .as_ref()
        .and_then(|p| memory::read(p.pid, pss));
    (found, debuggee, adapter)
}
