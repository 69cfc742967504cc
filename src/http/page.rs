//! The human page at `/`: state, warnings, sessions, and the memory chart.
//!
//! It is server-rendered HTML and SVG with no scripts or external assets, so it works
//! offline and behind any proxy; it refreshes itself every few seconds. When debugpy is
//! reachable around the sidecar (the side door, or connections that did not come
//! through it) the page opens with a red warning, because its "token required" would
//! otherwise be a false promise.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::chart::{self, Chart};
use super::cost;
use crate::debuggee::discover;
use crate::debuggee::growth::{Growth, MIN_COVERAGE};
use crate::debuggee::monitor::Snapshot;
use crate::state::Shared;
use crate::upstream_watch::UpstreamState;

/// Escapes text for HTML.
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(super) fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("–".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
}

/// The growth cell: the figure, or why there is none yet.
fn rate(g: &Growth, window: f64) -> String {
    match g.per_second {
        Some(r) => format!(
            "{:+.1} KiB/s <span class=\"note\">(one-off steps left out)</span>",
            r / 1024.0
        ),
        None if g.covered > 0.0 => format!(
            "– <span class=\"note\">(history covers {:.0} s of the {:.0} s window; shown from {:.0} s)</span>",
            g.covered,
            window,
            window * MIN_COVERAGE
        ),
        None => "–".into(),
    }
}

pub(super) fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// The red warnings at the top: debugpy reachable without the sidecar.
fn warnings(shared: &Shared, upstream: &UpstreamState) -> String {
    let port = shared.config.upstream_port();
    let mut html = String::new();
    if !upstream.exposed.is_empty() {
        let list: Vec<String> = upstream
            .exposed
            .iter()
            .map(|a| format!("<code>{}</code>", esc(&a.to_string())))
            .collect();
        let _ = write!(
            html,
            "<div class=\"alert\" role=\"alert\"><strong>debugpy is reachable around the \
             sidecar.</strong> It listens on {} (not only loopback): anyone who reaches that \
             address runs code in the app <strong>without the token</strong>, whatever the sidecar \
             requires. Start debugpy with <code>--listen 127.0.0.1:{port}</code>.{}</div>",
            list.join(", "),
            if shared.config.auth.allow_exposed_upstream {
                " (auth.allow_exposed_upstream is set: the sidecar stays ready.)"
            } else {
                " Until then /readyz reports not ready."
            }
        );
    }
    if upstream.bypass_connections > 0 {
        let n = upstream.bypass_connections;
        let _ = write!(
            html,
            "<div class=\"alert\" role=\"alert\"><strong>{n} connection{} to debugpy</strong> on \
             port {port} did not come through the sidecar: {} debugging the app without the \
             token.</div>",
            if n == 1 { "" } else { "s" },
            if n == 1 { "a client is" } else { "clients are" },
        );
    }
    html
}

/// The upstream cell: listening or not, and how old the check is when it is stale.
fn upstream_state(upstream: &UpstreamState) -> String {
    let state = if upstream.checked.is_none() {
        r#"<span class="bad">not checked yet</span>"#.to_owned()
    } else if upstream.listening {
        r#"<span class="ok">listening</span>"#.to_owned()
    } else {
        r#"<span class="bad">not listening</span>"#.to_owned()
    };
    match upstream.age() {
        Some(age) if !upstream.is_recent() => format!(
            r#"{state} <span class="bad">(checked {:.0} s ago)</span>"#,
            age.as_secs_f64()
        ),
        _ => state,
    }
}

/// The auth cell: the configured rule, and that it is moot while debugpy is exposed.
fn auth_state(shared: &Shared, upstream: &UpstreamState) -> String {
    let summary = esc(shared.config.auth.summary());
    if upstream.exposed.is_empty() {
        summary
    } else {
        format!(
            r#"{summary} <span class="bad">&mdash; but debugpy is reachable without it (see above)</span>"#
        )
    }
}

/// The page.
pub(super) fn render(shared: &Shared, s: &Snapshot, upstream: &UpstreamState) -> String {
    let c = &shared.config;
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>dap-sidecar</title><style>
body{{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:70em}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}}
.ok{{color:#0a7a2f}}.bad{{color:#b00020}}svg{{background:#fafafa;border:1px solid #ddd}}
.note{{color:#666;font-size:90%}}code.cmd{{white-space:pre-wrap;overflow-wrap:anywhere}}
.alert{{background:#fde7ea;border:2px solid #b00020;color:#b00020;padding:.6em 1em;margin:1em 0}}
</style></head><body><h1>dap-sidecar</h1>"#
    );
    html.push_str(&warnings(shared, upstream));
    let yes_no = |b: bool, yes: &str, no: &str| {
        if b {
            format!(r#"<span class="ok">{yes}</span>"#)
        } else {
            format!(r#"<span class="bad">{no}</span>"#)
        }
    };
    let window = c.memory.window.as_secs_f64();
    let proc_row = |name: &str,
                    p: &Option<discover::ProcessInfo>,
                    m: &Option<crate::debuggee::memory::Memory>,
                    g: &Growth| {
        match p {
            Some(p) => format!(
                "<tr><th>{name}</th><td>pid {} <code class=\"cmd\">{}</code></td><td>RSS {}</td><td>peak {}</td><td>growth {}</td></tr>",
                p.pid,
                esc(&p.cmdline),
                mib(m.map(|m| m.rss)),
                mib(m.map(|m| m.hwm)),
                rate(g, window)
            ),
            None => format!(
                r#"<tr><th>{name}</th><td colspan="4"><span class="bad">not found</span></td></tr>"#
            ),
        }
    };
    let _ = write!(
        html,
        "<h2>State</h2><table><tr><th>DAP</th><td colspan=\"4\">{} {}</td></tr>\
         <tr><th>upstream</th><td colspan=\"4\">{} {}</td></tr>\
         <tr><th>auth</th><td colspan=\"4\">{}</td></tr>{}{}\
         <tr><th>app cgroup</th><td colspan=\"4\">{}</td></tr>\
         <tr><th>since attach</th><td colspan=\"4\">{}{}</td></tr></table>",
        esc(&shared.dap_address()),
        yes_no(shared.dap_bound(), "bound", "not bound"),
        esc(&c.upstream),
        upstream_state(upstream),
        auth_state(shared, upstream),
        proc_row(
            "app (debuggee)",
            &s.found.debuggee,
            &s.debuggee,
            &s.debuggee_growth
        ),
        proc_row(
            "debugpy adapter",
            &s.found.adapter,
            &s.adapter,
            &s.adapter_growth
        ),
        cgroup_cell(s),
        s.growth_since_attach
            .map_or("no session attached".into(), |g| format!(
                "{:+.1} MiB",
                g as f64 / 1048576.0
            )),
        c.memory
            .max_growth_while_attached
            .map_or(String::new(), |l| format!(
                " (limit {} MiB, {:?})",
                l >> 20,
                c.memory.on_limit
            )),
    );
    html.push_str("<h2>Sessions</h2>");
    let sessions = shared.sessions();
    if sessions.is_empty() {
        html.push_str("<p>No IDE connected.</p>");
    } else {
        html.push_str(
            "<table><tr><th>client</th><th>connected</th><th>attached</th><th>app</th></tr>",
        );
        for session in sessions {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{} ago</td><td>{}</td><td>{}</td></tr>",
                esc(&session.peer.to_string()),
                ago(session.connected),
                session
                    .authenticated
                    .map_or("not authenticated".into(), |t| format!("{} ago", ago(t))),
                if session.stopped {
                    "stopped (breakpoint, pause or exception)"
                } else {
                    "running"
                }
            );
        }
        html.push_str("</table>");
    }
    html.push_str(&cost::render(s));
    html.push_str("<h2>Memory</h2>");
    html.push_str(&injection(shared, s));
    html.push_str(&charts(s));
    html.push_str(&cost::steps(s));
    html.push_str(
        r#"<p><a href="/status">/status</a> · <a href="/metrics">/metrics</a> · <a href="/readyz">/readyz</a> · <a href="/healthz">/healthz</a></p></body></html>"#,
    );
    html
}

/// The latest attach on demand, with the app's RSS then and now (empty before any).
fn injection(shared: &Shared, s: &Snapshot) -> String {
    let Some(mark) = shared.injector.last() else {
        return String::new();
    };
    let same_app = s.found.debuggee.as_ref().map(|p| p.pid) == Some(mark.pid);
    let now = s.debuggee.as_ref().filter(|_| same_app).map(|m| m.rss);
    let growth = match (mark.resident_before, now) {
        (Some(before), Some(now)) => format!(
            " ({:+.1} MiB since)",
            (now as f64 - before as f64) / 1048576.0
        ),
        _ => String::new(),
    };
    format!(
        "<p>debugpy started in the app on demand (pid {}, Python {}) {} ago; app RSS then {}, now {}{growth}.</p>",
        mark.pid,
        esc(&mark.version),
        ago(mark.at),
        mib(mark.resident_before),
        mib(now),
    )
}

/// The cgroup cell: the app's cgroup memory, or that it is not visible.
fn cgroup_cell(s: &Snapshot) -> String {
    match &s.cgroup {
        Some(c) => format!(
            "{} <span class=\"note\">(anon {}, file {}{}; cgroup v{} at <code>{}</code>)</span>",
            mib(Some(c.current)),
            mib(c.anon),
            mib(c.file),
            c.max.map_or(String::new(), |m| format!(", limit {}", mib(Some(m)))),
            c.version,
            esc(&c.dir.display().to_string())
        ),
        None => r#"<span class="note">not visible to the sidecar (see the README, "The app's cgroup")</span>"#.into(),
    }
}

/// The two charts (app, adapter), each on its own scale, and their legend.
fn charts(s: &Snapshot) -> String {
    let recent_from = s.recent_from;
    let app = Chart {
        id: "memory-chart",
        title: "the app's memory over time",
        color: "#1f5fbf",
        class: "debuggee",
        height: 300.0,
        points: chart::series(&s.history, |p| p.debuggee),
        recent_from,
        events: &s.events,
        steps: &s.steps,
    };
    let adapter = Chart {
        id: "adapter-chart",
        title: "the debugpy adapter's memory over time",
        color: "#e07b00",
        class: "adapter",
        height: 150.0,
        points: chart::series(&s.history, |p| p.adapter),
        recent_from,
        events: &s.events,
        steps: &[],
    };
    format!(
        r#"<h3>App (debuggee) RSS</h3>{}<h3>debugpy adapter RSS</h3>{}<p><span style="color:#0a7a2f">&#9474;</span> attach &nbsp; <span style="color:#b00020">&#9474;</span> session end &nbsp; <span style="color:#7b3fb0">&#9474;</span> debugpy loaded &nbsp; &#9679; a step of the app's memory, with its cause &nbsp; <span style="background:#eef1f6">&nbsp;&nbsp;&nbsp;</span> older samples, one point per minute (the largest)</p>"#,
        app.render(),
        adapter.render()
    )
}
