//! The samples the monitor keeps: every recent sample (for the growth fit and the
//! chart's detail) and a longer history downsampled to one point per
//! [`LONG_BUCKET_SECONDS`] (each the largest reading in its bucket, so no step or peak
//! is lost), so the chart can cover a session that began hours ago.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Most recent samples kept.
pub const MAX_RECENT: usize = 4000;
/// Width of a downsampled bucket, seconds.
pub const LONG_BUCKET_SECONDS: f64 = 60.0;
/// Buckets kept: 24 hours.
pub const MAX_LONG: usize = 1440;

/// One sample (or one downsampled bucket).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    /// When it was taken (Unix seconds); for a bucket, its first sample.
    pub at: f64,
    /// Debuggee RSS, bytes.
    pub debuggee: Option<u64>,
    /// Adapter RSS, bytes.
    pub adapter: Option<u64>,
}

/// Recent samples and the downsampled long history.
#[derive(Default)]
pub struct History {
    /// Samples, oldest first, with the monotonic time they were taken.
    recent: VecDeque<(Instant, Point)>,
    /// Buckets, oldest first.
    long: VecDeque<Point>,
}

fn max(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl History {
    /// Adds a sample taken at `now`, keeping recent samples for `keep`.
    pub fn push(&mut self, now: Instant, point: Point, keep: Duration) {
        self.recent.push_back((now, point));
        while self.recent.len() > MAX_RECENT
            || self
                .recent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > keep)
        {
            self.recent.pop_front();
        }
        let bucket = |at: f64| (at / LONG_BUCKET_SECONDS).floor();
        match self.long.back_mut() {
            Some(last) if bucket(last.at) == bucket(point.at) => {
                last.debuggee = max(last.debuggee, point.debuggee);
                last.adapter = max(last.adapter, point.adapter);
            }
            _ => self.long.push_back(point),
        }
        while self.long.len() > MAX_LONG {
            self.long.pop_front();
        }
    }

    /// Forgets everything (a new process: the old history says nothing about it).
    pub fn clear(&mut self) {
        self.recent.clear();
        self.long.clear();
    }

    /// The recent samples within `window` of the newest, oldest first.
    pub fn window(&self, window: Duration) -> Vec<Point> {
        let Some((newest, _)) = self.recent.back() else {
            return Vec::new();
        };
        self.recent
            .iter()
            .filter(|(t, _)| newest.duration_since(*t) <= window)
            .map(|(_, p)| *p)
            .collect()
    }

    /// When the oldest recent sample was taken (Unix seconds).
    pub fn recent_from(&self) -> Option<f64> {
        self.recent.front().map(|(_, p)| p.at)
    }

    /// Every recent sample, oldest first.
    pub fn recent(&self) -> Vec<Point> {
        self.recent.iter().map(|(_, p)| *p).collect()
    }

    /// The chart's points: downsampled buckets from `since` (Unix seconds) up to where
    /// the recent samples begin, then every recent sample.
    pub fn chart(&self, since: f64) -> Vec<Point> {
        let recent_from = self.recent.front().map_or(f64::INFINITY, |(_, p)| p.at);
        let start = bucket_start(recent_from);
        self.long
            .iter()
            .filter(|p| p.at >= bucket_start(since) && p.at < start)
            .copied()
            .chain(self.recent.iter().map(|(_, p)| *p))
            .collect()
    }
}

fn bucket_start(at: f64) -> f64 {
    (at / LONG_BUCKET_SECONDS).floor() * LONG_BUCKET_SECONDS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: f64, rss: u64) -> Point {
        Point {
            at,
            debuggee: Some(rss),
            adapter: None,
        }
    }

    #[test]
    fn keeps_recent_samples_and_a_downsampled_long_history() {
        let mut h = History::default();
        let start = Instant::now();
        // One sample every 10 s for an hour, recent ones kept for 5 minutes.
        for i in 0..360u64 {
            let now = start + Duration::from_secs(i * 10);
            h.push(now, point(i as f64 * 10.0, i), Duration::from_secs(300));
        }
        assert_eq!(h.recent().len(), 31);
        assert_eq!(h.window(Duration::from_secs(60)).len(), 7);
        // The whole hour: 54 buckets before the recent part, then 31 samples.
        let chart = h.chart(0.0);
        assert_eq!(chart.len(), 54 + 31, "{chart:?}");
        // A bucket holds the largest reading of its minute.
        assert_eq!(chart[0], point(0.0, 5));
        assert!(chart.windows(2).all(|w| w[0].at < w[1].at));
        // Only from a given time.
        assert_eq!(h.chart(3000.0).len(), 4 + 31);
        h.clear();
        assert!(h.chart(0.0).is_empty());
    }
}
