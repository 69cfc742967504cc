//! "What debugging cost", on the page and in `/status`: the app's memory before debugpy
//! (when the sidecar saw it), every debugging event with the app's memory around it, the
//! steps of the app's memory added up by cause, and the latest steps.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::page::{ago, esc, mib};
use crate::debuggee::events::Cause;
use crate::debuggee::monitor::Snapshot;

fn signed_mib(bytes: i64) -> String {
    format!("{:+.1} MiB", bytes as f64 / 1048576.0)
}

/// A Unix time as how long ago.
fn ago_unix(at: f64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::try_from_secs_f64(at).unwrap_or_default();
    format!("{} ago", ago(t))
}

/// "What debugging cost": the app before debugpy, the events with the app's memory
/// around each, and the steps added up by cause.
pub(super) fn render(s: &Snapshot) -> String {
    let mut html = String::from("<h2>What debugging cost</h2>");
    let now = s.debuggee.map(|m| m.rss);
    match s.before_debugpy {
        Some(before) => {
            let _ = write!(
                html,
                "<p>App before debugpy: <strong>{}</strong> ({}). Now {}: <strong>{}</strong> since, plus the debugpy adapter process ({}).</p>",
                mib(Some(before.rss)),
                ago_unix(before.at),
                mib(now),
                now.map_or("–".into(), |n| signed_mib(n as i64 - before.rss as i64)),
                mib(s.adapter.map(|m| m.rss)),
            );
        }
        None => html.push_str(
            "<p>The app was not seen before debugpy was loaded (it started under debugpy, or before the sidecar), so its memory without debugpy is not known. The debugpy adapter is a process of its own: ",
        ),
    }
    if s.before_debugpy.is_none() {
        let _ = write!(html, "{} now.</p>", mib(s.adapter.map(|m| m.rss)));
    }
    let totals: Vec<String> = s
        .cost_by_cause
        .iter()
        .map(|(cause, bytes)| {
            format!(
                "{} <strong>{}</strong>",
                cause.map_or("other steps", Cause::words),
                signed_mib(*bytes)
            )
        })
        .collect();
    let _ = write!(
        html,
        "<p id=\"cost-by-cause\">Steps of the app's memory by cause: {}.</p>",
        totals.join(" · ")
    );
    if s.events.is_empty() {
        html.push_str("<p>No debugging event yet.</p>");
        return html;
    }
    html.push_str(
        "<table id=\"events\"><tr><th>event</th><th>when</th><th>client</th><th>app before</th><th>app after</th><th>change</th><th>adapter</th></tr>",
    );
    for e in s.events.iter().rev().take(20) {
        let change = match (e.rss_before, e.rss_after) {
            (Some(b), Some(a)) => signed_mib(a as i64 - b as i64),
            _ => "–".into(),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{change}</td><td>{}</td></tr>",
            e.cause.words(),
            ago_unix(e.at),
            esc(e.peer.as_deref().unwrap_or("")),
            mib(e.rss_before),
            mib(e.rss_after),
            mib(e.adapter_rss),
        );
    }
    html.push_str("</table>");
    html
}

/// The latest steps of the app's memory, newest first.
pub(super) fn steps(s: &Snapshot) -> String {
    if s.steps.is_empty() {
        return "<p>No steps in the app's memory so far.</p>".into();
    }
    let mut html = String::from(
        "<h3>Steps of the app's memory</h3><table id=\"steps\"><tr><th>when</th><th>size</th><th>cause</th></tr>",
    );
    for step in s.steps.iter().rev().take(10) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ago_unix(step.at),
            signed_mib(step.bytes),
            step.cause.map_or("unknown", Cause::words)
        );
    }
    html.push_str("</table>");
    html
}

/// `/status` `memory.debugging_cost`: the app before debugpy (when seen), every
/// debugging event with the app's memory around it, and the steps added up by cause.
pub(super) fn json(snapshot: &Snapshot) -> Value {
    let by_cause: serde_json::Map<String, Value> = snapshot
        .cost_by_cause
        .iter()
        .map(|(cause, bytes)| {
            (
                cause.map_or("unknown", |c| c.key()).to_owned(),
                json!(bytes),
            )
        })
        .collect();
    let now = snapshot.debuggee.map(|m| m.rss);
    let since_before = snapshot
        .before_debugpy
        .zip(now)
        .map(|(before, now)| now as i64 - before.rss as i64);
    json!({
        "before_debugpy": snapshot.before_debugpy,
        "app_growth_since_before_debugpy_bytes": since_before,
        "adapter_rss_bytes": snapshot.adapter.map(|m| m.rss),
        "steps_by_cause_bytes": by_cause,
        "events": snapshot.events,
    })
}
