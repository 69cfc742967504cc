//! What debugging cost the app: the debugging events (debugpy loaded, a session
//! attached, a session ended) with the app's memory around each, the memory steps with
//! their causes, and the totals by cause. One [`Ledger`] per app process: a restarted
//! app starts a new one.
//!
//! A step is put down to the latest event before it when it began within the settling
//! time after that event ([`Ledger::settle`]: three samples, at least 5 s): pydevd does
//! its work after the attach the sidecar saw. Steps with no such event have cause
//! `unknown`.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use crate::debuggee::growth::Step;

/// Most events and steps kept.
const MAX_KEPT: usize = 200;
/// Samples without debugpy an app needs before "debugpy loaded" is an event: an app
/// started by `python -m debugpy` is briefly without its adapter, but debugpy is
/// already in it.
const SEEN_WITHOUT_DEBUGPY: usize = 2;

/// Why the app's memory moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// debugpy was loaded into the app (its adapter appeared for an app already seen).
    DebugpyLoaded,
    /// A session authenticated and attached.
    SessionAttached,
    /// A session ended.
    SessionEnded,
}

impl Cause {
    /// Every cause, in order.
    pub const ALL: [Cause; 3] = [
        Cause::DebugpyLoaded,
        Cause::SessionAttached,
        Cause::SessionEnded,
    ];

    /// The label value in metrics and the key in `/status`.
    pub fn key(self) -> &'static str {
        match self {
            Cause::DebugpyLoaded => "debugpy_loaded",
            Cause::SessionAttached => "session_attached",
            Cause::SessionEnded => "session_ended",
        }
    }

    /// Words for the page.
    pub fn words(self) -> &'static str {
        match self {
            Cause::DebugpyLoaded => "debugpy loaded",
            Cause::SessionAttached => "session attached",
            Cause::SessionEnded => "session ended",
        }
    }
}

/// A debugging event and the app's memory around it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// When (Unix seconds).
    pub at: f64,
    /// What happened.
    pub cause: Cause,
    /// The client's address, for sessions.
    pub peer: Option<String>,
    /// App RSS at the last sample before the event.
    pub rss_before: Option<u64>,
    /// App RSS at the latest sample within the settling time after it.
    pub rss_after: Option<u64>,
    /// Adapter RSS at that sample.
    pub adapter_rss: Option<u64>,
}

/// A step of the app's memory, with its cause when known.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepEvent {
    /// The last sample before the step (Unix seconds).
    pub from: f64,
    /// The first sample after it.
    pub at: f64,
    /// Its size in bytes (negative: memory given back).
    pub bytes: i64,
    /// What caused it, when known.
    pub cause: Option<Cause>,
}

/// A reading: when and how much.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Reading {
    /// When (Unix seconds).
    pub at: f64,
    /// App RSS, bytes.
    pub rss: u64,
}

/// The debugging history of one app process.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// The app's pid.
    pub pid: Option<i32>,
    /// The app's RSS at the last sample before debugpy was seen (only when the app was
    /// seen without debugpy).
    pub before_debugpy: Option<Reading>,
    /// debugpy's adapter has been seen for this app.
    pub debugpy_seen: bool,
    /// Samples that found the app without debugpy's adapter.
    seen_without: usize,
    /// Events, oldest first.
    pub events: VecDeque<Event>,
    /// Steps, oldest first.
    pub steps: VecDeque<StepEvent>,
    /// The app's RSS at the newest sample.
    last_rss: Option<u64>,
    /// How long after an event its effects count as its own.
    settle: f64,
}

impl Ledger {
    /// A ledger for the app with `pid`, sampled every `interval`.
    pub fn new(pid: Option<i32>, interval: Duration) -> Ledger {
        Ledger {
            pid,
            settle: Self::settle(interval),
            ..Ledger::default()
        }
    }

    /// The settling time after an event: three samples, at least 5 s.
    pub fn settle(interval: Duration) -> f64 {
        (interval.as_secs_f64() * 3.0).max(5.0)
    }

    /// A debugging event at `at` (Unix seconds).
    pub fn event(&mut self, at: f64, cause: Cause, peer: Option<String>) {
        self.events.push_back(Event {
            at,
            cause,
            peer,
            rss_before: self.last_rss,
            rss_after: None,
            adapter_rss: None,
        });
        while self.events.len() > MAX_KEPT {
            self.events.pop_front();
        }
    }

    /// A sample of the app (and adapter, if found) at `at`. Returns the event for
    /// "debugpy loaded" when this sample is the first to find the adapter for an app
    /// that was seen without it.
    pub fn sample(&mut self, at: f64, rss: Option<u64>, adapter: Option<u64>) -> Option<Cause> {
        let mut loaded = None;
        if let (None, false, Some(rss)) = (adapter, self.debugpy_seen, rss) {
            self.before_debugpy = Some(Reading { at, rss });
            self.seen_without += 1;
        }
        if adapter.is_some() && !self.debugpy_seen {
            self.debugpy_seen = true;
            if self.seen_without < SEEN_WITHOUT_DEBUGPY {
                self.before_debugpy = None;
            } else {
                self.event(at, Cause::DebugpyLoaded, None);
                loaded = Some(Cause::DebugpyLoaded);
            }
        }
        // An event's "after" settles until the next event.
        let mut next_at = f64::INFINITY;
        for e in self.events.iter_mut().rev() {
            if at >= e.at && at - e.at <= self.settle && at < next_at {
                e.rss_after = rss.or(e.rss_after);
                e.adapter_rss = adapter.or(e.adapter_rss);
            }
            next_at = e.at;
        }
        self.last_rss = rss.or(self.last_rss);
        loaded
    }

    /// The cause of `step`: the latest event before its end, if the step began within
    /// the settling time after it.
    pub fn cause_of(&self, step: &Step) -> Option<Cause> {
        self.events
            .iter()
            .rev()
            .find(|e| e.at <= step.to)
            .filter(|e| step.from - e.at <= self.settle)
            .map(|e| e.cause)
    }

    /// Records the closed steps among `steps` that begin where or after the last recorded
    /// one ended (a run re-read with a different threshold is not counted twice);
    /// returns the new ones.
    pub fn record_steps(&mut self, steps: &[Step]) -> Vec<StepEvent> {
        let newest = self.steps.back().map_or(f64::MIN, |s| s.at);
        let new: Vec<StepEvent> = steps
            .iter()
            .filter(|s| !s.open && s.from >= newest)
            .map(|s| StepEvent {
                from: s.from,
                at: s.to,
                bytes: s.bytes.round() as i64,
                cause: self.cause_of(s),
            })
            .collect();
        self.steps.extend(new.iter().cloned());
        while self.steps.len() > MAX_KEPT {
            self.steps.pop_front();
        }
        new
    }

    /// The total of the recorded steps put down to `cause` (`None`: unknown).
    pub fn total(&self, cause: Option<Cause>) -> i64 {
        self.steps
            .iter()
            .filter(|s| s.cause == cause)
            .map(|s| s.bytes)
            .sum()
    }

    /// The newest event of a kind.
    pub fn last(&self, cause: Cause) -> Option<&Event> {
        self.events.iter().rev().find(|e| e.cause == cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn step(from: f64, to: f64, bytes: f64) -> Step {
        Step {
            from,
            to,
            bytes,
            open: false,
        }
    }

    #[test]
    fn an_app_seen_before_debugpy_has_a_before_figure_and_a_loaded_event() {
        let mut l = Ledger::new(Some(7), Duration::from_secs(1));
        assert_eq!(l.sample(1.0, Some(100 * MIB), None), None);
        assert_eq!(l.sample(2.0, Some(101 * MIB), None), None);
        assert_eq!(
            l.sample(3.0, Some(108 * MIB), Some(18 * MIB)),
            Some(Cause::DebugpyLoaded)
        );
        assert_eq!(l.sample(4.0, Some(109 * MIB), Some(18 * MIB)), None);
        assert_eq!(
            l.before_debugpy,
            Some(Reading {
                at: 2.0,
                rss: 101 * MIB
            })
        );
        let loaded = l.last(Cause::DebugpyLoaded).expect("event");
        assert_eq!(loaded.rss_before, Some(101 * MIB));
        assert_eq!(loaded.rss_after, Some(109 * MIB));
        assert_eq!(loaded.adapter_rss, Some(18 * MIB));
        // The step between samples 2 and 3 is debugpy's.
        let new = l.record_steps(&[step(2.0, 3.0, 7.0 * MIB as f64)]);
        assert_eq!(new[0].cause, Some(Cause::DebugpyLoaded));
        assert_eq!(l.total(Some(Cause::DebugpyLoaded)), 7 * MIB as i64);
    }

    #[test]
    fn an_app_found_with_debugpy_has_no_before_figure() {
        let mut l = Ledger::new(Some(7), Duration::from_secs(1));
        assert_eq!(l.sample(1.0, Some(100 * MIB), Some(18 * MIB)), None);
        assert_eq!(l.before_debugpy, None);
        assert!(l.events.is_empty());
        // Seen once before its adapter: started under debugpy, not loaded later.
        let mut l = Ledger::new(Some(8), Duration::from_secs(1));
        assert_eq!(l.sample(1.0, Some(10 * MIB), None), None);
        assert_eq!(l.sample(2.0, Some(30 * MIB), Some(18 * MIB)), None);
        assert_eq!(l.before_debugpy, None);
        assert!(l.events.is_empty());
    }

    #[test]
    fn steps_get_the_cause_of_the_event_they_follow_within_the_settling_time() {
        let mut l = Ledger::new(Some(7), Duration::from_millis(200));
        l.sample(1.0, Some(100 * MIB), Some(MIB));
        l.event(10.0, Cause::SessionAttached, Some("127.0.0.1:5".into()));
        l.sample(10.2, Some(100 * MIB), Some(MIB));
        l.sample(10.4, Some(105 * MIB), Some(MIB));
        l.event(30.0, Cause::SessionEnded, None);
        let new = l.record_steps(&[
            step(10.2, 10.4, 5.0 * MIB as f64),
            step(20.0, 20.2, 1.0 * MIB as f64),
            step(31.0, 31.2, -(MIB as f64)),
        ]);
        let causes: Vec<Option<Cause>> = new.iter().map(|s| s.cause).collect();
        assert_eq!(
            causes,
            [
                Some(Cause::SessionAttached),
                None,
                Some(Cause::SessionEnded)
            ]
        );
        let attach = l.last(Cause::SessionAttached).expect("attach");
        assert_eq!(
            (attach.rss_before, attach.rss_after),
            (Some(100 * MIB), Some(105 * MIB))
        );
        // Recorded once: the same steps again add nothing, an open one waits.
        assert!(l.record_steps(&[step(20.0, 20.2, 1e6)]).is_empty());
        // Nor a longer run overlapping a recorded one.
        assert!(l.record_steps(&[step(30.8, 31.4, 1e6)]).is_empty());
        let open = Step {
            open: true,
            ..step(40.0, 40.2, 1e6)
        };
        assert!(l.record_steps(&[open]).is_empty());
        assert_eq!(l.total(None), MIB as i64);
    }
}
