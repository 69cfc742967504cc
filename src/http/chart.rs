//! The page's memory charts: server-rendered SVG, one chart per process so each has its
//! own scale (the adapter's 20 MiB would otherwise flatten the app's 200 MiB).
//!
//! - The y-axis spans the data, not 0 to the maximum: a 5 MiB step on a 200 MiB app
//!   fills a good part of the height. When the axis does not start at zero, a break
//!   mark on the axis and the words "axis starts at N MiB" say so.
//! - The x-axis covers the snapshot's points: the current (or last) session and the
//!   recent samples, older parts downsampled (a shaded band marks them).
//! - Debugging events are dashed vertical lines labelled at the top (in two rows, so
//!   neighbours do not overwrite each other); the app's steps are labelled with their
//!   size and cause where they happened.

use std::fmt::Write as _;

use crate::debuggee::events::{Cause, Event, StepEvent};
use crate::debuggee::growth::MIN_STEP;
use crate::debuggee::history::Point;

const W: f64 = 900.0;
/// Left margin (axis labels).
const L: f64 = 78.0;
/// Right margin.
const R: f64 = 12.0;
/// Top margin (event labels).
const T: f64 = 34.0;
/// Bottom margin (time labels).
const B: f64 = 30.0;
/// Most event labels drawn; beyond, lines only (each with a tooltip).
const MAX_EVENT_LABELS: usize = 12;
/// Most step labels drawn (the latest).
const MAX_STEP_LABELS: usize = 8;
const MIB: f64 = 1048576.0;

/// What one chart shows.
pub(super) struct Chart<'a> {
    /// Element id.
    pub id: &'a str,
    /// Accessible title.
    pub title: &'a str,
    /// Line colour.
    pub color: &'a str,
    /// The series' CSS class.
    pub class: &'a str,
    /// Height in pixels.
    pub height: f64,
    /// `(Unix seconds, bytes)`, oldest first (`None`: not found then).
    pub points: Vec<(f64, Option<u64>)>,
    /// Where the recent, full-resolution samples begin (older points are downsampled).
    pub recent_from: Option<f64>,
    /// Debugging events.
    pub events: &'a [Event],
    /// Steps to label (the app's).
    pub steps: &'a [StepEvent],
}

/// The mark class and the label of an event.
pub(super) fn event_words(cause: Cause) -> (&'static str, &'static str, &'static str) {
    match cause {
        Cause::DebugpyLoaded => ("debugpy", "debugpy loaded", "#7b3fb0"),
        Cause::SessionAttached => ("attach", "attach", "#0a7a2f"),
        Cause::SessionEnded => ("detach", "end", "#b00020"),
    }
}

/// A round step for about four grid lines over `span`.
fn tick_step(span: f64) -> f64 {
    let raw = span / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(raw)
}

/// Bytes as MiB with as many decimals as the tick step needs.
fn mib_label(bytes: f64, step: f64) -> String {
    let decimals = if step >= MIB {
        0
    } else if step >= MIB / 10.0 {
        1
    } else {
        2
    };
    format!("{:.*} MiB", decimals, bytes / MIB)
}

/// How long before "now" a time label is: tenths of seconds under 10 s, whole seconds
/// under 10 minutes, whole minutes beyond.
fn ago_label(seconds: f64) -> String {
    if seconds < 0.05 {
        return "now".into();
    }
    if seconds < 10.0 {
        return format!("-{seconds:.1}s");
    }
    let rounded = if seconds < 600.0 {
        seconds.round()
    } else {
        (seconds / 60.0).round() * 60.0
    };
    format!(
        "-{}",
        humantime::format_duration(std::time::Duration::from_secs(rounded as u64))
    )
}

/// The y range: the data's, at least 1 MiB or 2% of its top tall, padded; the bottom
/// never below zero.
fn y_range(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(MIB).max(hi * 0.02);
    let mid = (hi + lo) / 2.0;
    let (lo, hi) = (mid - span / 2.0, mid + span / 2.0);
    ((lo - span * 0.12).max(0.0), hi + span * 0.18)
}

fn esc(s: &str) -> String {
    super::page::esc(s)
}

impl Chart<'_> {
    /// The SVG.
    pub fn render(&self) -> String {
        let h = self.height;
        let mut svg = format!(
            r#"<svg id="{}" class="chart" data-points="{}" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="{}">"#,
            self.id,
            self.points.len(),
            esc(self.title)
        );
        let values: Vec<f64> = self
            .points
            .iter()
            .filter_map(|(_, v)| v.map(|v| v as f64))
            .collect();
        let (Some(first), Some(last)) = (self.points.first(), self.points.last()) else {
            svg.push_str(r#"<text x="20" y="40">no samples yet</text></svg>"#);
            return svg;
        };
        if values.is_empty() {
            svg.push_str(r#"<text x="20" y="40">process not found</text></svg>"#);
            return svg;
        }
        let (t0, t1) = (first.0, last.0.max(first.0 + 1.0));
        let (lo, hi) = y_range(&values);
        let x = |t: f64| L + (t - t0) / (t1 - t0) * (W - L - R);
        let y = |v: f64| (h - B) - (v - lo) / (hi - lo) * (h - B - T);
        // Downsampled part.
        if let Some(recent) = self.recent_from.filter(|r| *r > t0) {
            let _ = write!(
                svg,
                r##"<rect class="downsampled" x="{L}" y="{T}" width="{:.1}" height="{:.1}" fill="#eef1f6"><title>older samples: the largest reading of each minute</title></rect>"##,
                x(recent) - L,
                h - B - T
            );
        }
        // Grid and labels.
        let step = tick_step((hi - lo) / MIB) * MIB;
        let mut v = (lo / step).ceil() * step;
        while v <= hi {
            let _ = write!(
                svg,
                r##"<line x1="{L}" x2="{}" y1="{yv:.1}" y2="{yv:.1}" stroke="#e2e2e2"/><text x="{}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"##,
                W - R,
                L - 6.0,
                y(v) + 4.0,
                mib_label(v, step),
                yv = y(v)
            );
            v += step;
        }
        let _ = write!(
            svg,
            r##"<line x1="{L}" x2="{L}" y1="{T}" y2="{}" stroke="#888"/>"##,
            h - B
        );
        if lo > 0.0 {
            // The axis does not start at zero: a break on the axis, and words.
            let yb = h - B;
            let _ = write!(
                svg,
                r##"<g class="zero-break"><rect x="{}" y="{:.1}" width="12" height="9" fill="#fff"/><path d="M{} {:.1} l6 -4 l6 4 M{} {:.1} l6 -4 l6 4" stroke="#444" fill="none"/><text x="{}" y="{:.1}" font-size="11" fill="#444">axis starts at {:.0} MiB, not 0</text></g>"##,
                L - 6.0,
                yb - 12.0,
                L - 6.0,
                yb - 4.0,
                L - 6.0,
                yb - 9.0,
                L + 6.0,
                yb - 6.0,
                lo / MIB
            );
        }
        // Time labels.
        for i in 0..=4 {
            let t = t0 + (t1 - t0) * f64::from(i) / 4.0;
            let anchor = match i {
                0 => "start",
                4 => "end",
                _ => "middle",
            };
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" font-size="12" text-anchor="{anchor}">{}</text>"#,
                x(t),
                h - 10.0,
                ago_label(t1 - t)
            );
        }
        // The series, broken where the process was not found.
        let mut segment: Vec<String> = Vec::new();
        let flush = |segment: &mut Vec<String>, svg: &mut String| {
            if !segment.is_empty() {
                let _ = write!(
                    svg,
                    r#"<polyline class="{}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round" points="{}"/>"#,
                    self.class,
                    self.color,
                    segment.join(" ")
                );
                segment.clear();
            }
        };
        for (t, v) in &self.points {
            match v {
                Some(v) => segment.push(format!("{:.1},{:.1}", x(*t), y(*v as f64))),
                None => flush(&mut segment, &mut svg),
            }
        }
        flush(&mut segment, &mut svg);
        self.render_events(&mut svg, t0, &x);
        self.render_steps(&mut svg, t0, &x, &y);
        svg.push_str("</svg>");
        svg
    }

    fn render_events(&self, svg: &mut String, t0: f64, x: &impl Fn(f64) -> f64) {
        let shown: Vec<&Event> = self.events.iter().filter(|e| e.at >= t0).collect();
        let label = shown.len() <= MAX_EVENT_LABELS;
        for (i, e) in shown.iter().enumerate() {
            let (class, words, color) = event_words(e.cause);
            let xe = x(e.at);
            let title = match &e.peer {
                Some(peer) => format!("{words} {peer}"),
                None => words.to_owned(),
            };
            let _ = write!(
                svg,
                r#"<line class="mark {class}" x1="{xe:.1}" x2="{xe:.1}" y1="{T}" y2="{}" stroke="{color}" stroke-width="1.5" stroke-dasharray="5 3"><title>{}</title></line>"#,
                self.height - B,
                esc(&title)
            );
            if label {
                let row = if i % 2 == 0 { 14.0 } else { 28.0 };
                let anchor = if xe > W - 80.0 { "end" } else { "middle" };
                let _ = write!(
                    svg,
                    r#"<text class="mark-label" x="{xe:.1}" y="{row}" font-size="12" font-weight="600" fill="{color}" text-anchor="{anchor}">{words}</text>"#
                );
            }
        }
    }

    fn render_steps(
        &self,
        svg: &mut String,
        t0: f64,
        x: &impl Fn(f64) -> f64,
        y: &impl Fn(f64) -> f64,
    ) {
        let mut shown: Vec<&StepEvent> = self
            .steps
            .iter()
            .filter(|s| s.from >= t0 && (s.bytes.unsigned_abs() as f64) >= MIN_STEP)
            .collect();
        let skip = shown.len().saturating_sub(MAX_STEP_LABELS);
        shown.drain(..skip);
        // Labels close to the previous one go one line further out.
        let mut last: Option<(f64, f64)> = None;
        for s in shown {
            // The level after the step: the first point at or after it.
            let Some(level) = self
                .points
                .iter()
                .find(|(t, v)| *t >= s.at && v.is_some())
                .and_then(|(_, v)| *v)
            else {
                continue;
            };
            let (xs, ys) = (x(s.at), y(level as f64));
            let cause = s.cause.map_or("cause unknown", Cause::words);
            let text = format!("{:+.1} MiB, {cause}", s.bytes as f64 / MIB);
            let (anchor, dx) = if xs > W - 220.0 {
                ("end", -8.0)
            } else {
                ("start", 8.0)
            };
            let out = if s.bytes >= 0 { -1.0 } else { 1.0 };
            let mut ty = ys + if s.bytes >= 0 { -8.0 } else { 16.0 };
            if let Some((lx, ly)) = last
                && (xs - lx).abs() < 230.0
                && (ty - ly).abs() < 15.0
            {
                ty = ly + 15.0 * out;
            }
            last = Some((xs, ty));
            let _ = write!(
                svg,
                r##"<g class="step"><circle cx="{xs:.1}" cy="{ys:.1}" r="4" fill="#1b1b1b"/><text x="{:.1}" y="{:.1}" font-size="12" font-weight="600" fill="#1b1b1b" text-anchor="{anchor}" paint-order="stroke" stroke="#fff" stroke-width="3">{}</text></g>"##,
                xs + dx,
                ty,
                esc(&text)
            );
        }
    }
}

/// The points of one process from the history.
pub(super) fn series(
    history: &[Point],
    pick: fn(&Point) -> Option<u64>,
) -> Vec<(f64, Option<u64>)> {
    history.iter().map(|p| (p.at, pick(p))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_y_axis_spans_the_data_and_says_where_it_starts() {
        let (lo, hi) = y_range(&[200.0 * MIB, 205.0 * MIB]);
        assert!(lo > 190.0 * MIB && hi < 210.0 * MIB, "{lo} {hi}");
        // A flat line gets at least 2% of its value: noise is not blown up.
        let (lo, hi) = y_range(&[200.0 * MIB, 200.0 * MIB + 4096.0]);
        assert!(hi - lo >= 4.0 * MIB, "{lo} {hi}");
        // Small values keep a zero floor.
        assert_eq!(y_range(&[0.0, 100.0]).0, 0.0);
        assert_eq!(tick_step(5.0), 2.0);
        assert_eq!(tick_step(7.0), 2.0);
        assert_eq!(ago_label(0.0), "now");
        assert_eq!(ago_label(1.25), "-1.2s");
        assert_eq!(ago_label(125.4), "-2m 5s");
        assert_eq!(ago_label(7530.0), "-2h 6m");
    }

    #[test]
    fn a_five_mib_step_on_a_200_mib_app_takes_most_of_the_height() {
        let points: Vec<(f64, Option<u64>)> = (0..60)
            .map(|i| {
                let v = if i >= 30 { 205 << 20 } else { 200 << 20 };
                (f64::from(i), Some(v))
            })
            .collect();
        let steps = [StepEvent {
            from: 29.0,
            at: 30.0,
            bytes: 5 << 20,
            cause: Some(Cause::SessionAttached),
        }];
        let chart = Chart {
            id: "c",
            title: "app",
            color: "#000",
            class: "debuggee",
            height: 280.0,
            points,
            recent_from: None,
            events: &[],
            steps: &steps,
        };
        let svg = chart.render();
        assert!(svg.contains("axis starts at"), "{svg}");
        assert!(svg.contains("+5.0 MiB, session attached"), "{svg}");
        // The line's y before and after the step.
        let coords: Vec<f64> = svg
            .split(" points=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("polyline")
            .split(' ')
            .filter_map(|xy| xy.split(',').nth(1)?.parse().ok())
            .collect();
        let jump = coords[0] - coords[coords.len() - 1];
        assert!(jump > 0.6 * (280.0 - T - B), "step is {jump} px");
    }

    #[test]
    fn downsampled_history_is_shaded_and_events_are_labelled() {
        // Two hours: one-minute buckets, then ten minutes of samples every 5 s.
        let mut points: Vec<(f64, Option<u64>)> = (0..110)
            .map(|m| (f64::from(m) * 60.0, Some(100 << 20)))
            .collect();
        points.extend((0..120).map(|i| (6600.0 + f64::from(i) * 5.0, Some(101 << 20))));
        let events = [Event {
            at: 120.0,
            cause: Cause::SessionAttached,
            peer: Some("10.0.0.7:5555".into()),
            rss_before: None,
            rss_after: None,
            adapter_rss: None,
        }];
        let chart = Chart {
            id: "c",
            title: "app",
            color: "#000",
            class: "debuggee",
            height: 280.0,
            points,
            recent_from: Some(6600.0),
            events: &events,
            steps: &[],
        };
        let svg = chart.render();
        assert!(svg.contains(r#"class="downsampled""#), "{svg}");
        assert!(svg.contains(r#"class="mark attach""#));
        assert!(svg.contains("attach 10.0.0.7:5555"));
        assert!(svg.contains(">-1h 30m<"), "{svg}");
    }
}
