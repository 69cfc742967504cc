//! The HTTP endpoint (axum) on `http.host:http.port`:
//!
//! | path | answer |
//! | --- | --- |
//! | `/healthz` | 200 while the DAP accept loop and the memory sampler run; 503 otherwise |
//! | `/readyz` | 200 when the DAP listener is bound and the upstream port is listening (read from `/proc/net/tcp`, never by connecting: debugpy treats every connection as an IDE); 503 with the reason otherwise |
//! | `/metrics` | Prometheus text format |
//! | `/status` | JSON: config summary without secrets, upstream, target processes, memory, sessions |
//! | `/` | a human page: state, sessions, and an SVG memory chart with attach/detach marks |
//!
//! The page is server-rendered HTML and SVG with no scripts or external assets, so it
//! works offline and behind any proxy; it refreshes itself every few seconds.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::proxy::Shared;
use crate::target::discover;
use crate::target::monitor::Snapshot;

/// Binds the HTTP listener; returns the bound address and the server future.
pub async fn bind(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let addr = SocketAddr::new(shared.config.http.host, shared.config.http.port);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(shared);
    let serve = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    };
    Ok((bound, serve))
}

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/", get(page))
        .with_state(shared)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let grace = shared.config.target.sample_interval * 3 + Duration::from_secs(10);
    let sampler_ok = shared
        .monitor
        .last_sample()
        .is_none_or(|t| t.elapsed() <= grace);
    if !shared.listener_running.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "DAP accept loop is not running\n",
        )
            .into_response()
    } else if !sampler_ok {
        (StatusCode::SERVICE_UNAVAILABLE, "memory sampler is stuck\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn upstream_listening(shared: &Shared) -> bool {
    let port = shared.config.upstream_port();
    tokio::task::spawn_blocking(move || discover::upstream_listening(port))
        .await
        .unwrap_or(false)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let mut reasons = Vec::new();
    if !shared.dap_bound.load(Ordering::Relaxed) {
        reasons.push("the DAP listener is not bound".to_owned());
    }
    if !upstream_listening(&shared).await {
        reasons.push(format!(
            "nothing listens on the upstream port {} (is the app running under debugpy --listen {}?)",
            shared.config.upstream_port(),
            shared.config.upstream
        ));
    }
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reasons.join("; ")),
        )
            .into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn status_json(shared: &Shared, snapshot: &Snapshot, upstream_listening: bool) -> Value {
    let c = &shared.config;
    let process = |p: &Option<discover::ProcessInfo>, m: &Option<crate::target::memory::Memory>| {
        p.as_ref()
            .map(|p| json!({ "pid": p.pid, "cmdline": p.cmdline, "memory": m }))
    };
    let sessions: Vec<Value> = shared
        .sessions()
        .iter()
        .map(|s| {
            json!({
                "peer": s.peer.to_string(),
                "connected": unix(s.connected),
                "authenticated": s.authenticated.map(unix),
                "stopped": s.stopped,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": {
            "dap": shared.dap_address(),
            "http": format!("{}:{}", c.http.host, c.http.port),
            "upstream": c.upstream,
            "upstream_timeout_seconds": c.upstream_timeout.as_secs_f64(),
            "wait": c.wait,
            "path_mappings": c.path_mappings.iter().map(|m| json!({
                "local_root": m.local_root, "remote_root": m.remote_root
            })).collect::<Vec<_>>(),
            "auth": {
                "token_configured": c.auth.token.is_some(),
                "allow_loopback_without_token": c.auth.allow_loopback_without_token,
                "allow": c.auth.allow.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            },
            "memory": {
                "window_seconds": c.memory.window.as_secs_f64(),
                "pss": c.memory.pss,
                "max_growth_while_attached": c.memory.max_growth_while_attached,
                "on_limit": format!("{:?}", c.memory.on_limit).to_lowercase(),
            },
        },
        "upstream": { "address": c.upstream, "listening": upstream_listening },
        "target": {
            "debuggee": process(&snapshot.found.debuggee, &snapshot.debuggee),
            "adapter": process(&snapshot.found.adapter, &snapshot.adapter),
        },
        "memory": {
            "growth_bytes_per_second": {
                "debuggee": snapshot.debuggee_growth_per_second,
                "adapter": snapshot.adapter_growth_per_second,
            },
            "baseline_at_attach_bytes": snapshot.baseline,
            "growth_since_attach_bytes": snapshot.growth_since_attach,
        },
        "sessions": sessions,
    })
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let snapshot = shared.monitor.snapshot(shared.config.memory.window);
    let listening = upstream_listening(&shared).await;
    Json(status_json(&shared, &snapshot, listening))
}

async fn page(State(shared): State<Arc<Shared>>) -> Html<String> {
    let snapshot = shared.monitor.snapshot(shared.config.memory.window);
    let listening = upstream_listening(&shared).await;
    Html(render_page(&shared, &snapshot, listening))
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("–".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
}

fn rate(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{:+.1} KiB/s", r / 1024.0))
}

fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn render_page(shared: &Shared, s: &Snapshot, listening: bool) -> String {
    let c = &shared.config;
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>dap-sidecar</title><style>
body{{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:70em}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}}
.ok{{color:#0a7a2f}}.bad{{color:#b00020}}svg{{background:#fafafa;border:1px solid #ddd}}
</style></head><body><h1>dap-sidecar</h1>"#
    );
    let yes_no = |b: bool, yes: &str, no: &str| {
        if b {
            format!(r#"<span class="ok">{yes}</span>"#)
        } else {
            format!(r#"<span class="bad">{no}</span>"#)
        }
    };
    let proc_row = |name: &str,
                    p: &Option<discover::ProcessInfo>,
                    m: &Option<crate::target::memory::Memory>,
                    r: Option<f64>| {
        match p {
            Some(p) => format!(
                "<tr><th>{name}</th><td>pid {} <code>{}</code></td><td>RSS {}</td><td>peak {}</td><td>growth {}</td></tr>",
                p.pid,
                esc(&p.cmdline.chars().take(120).collect::<String>()),
                mib(m.map(|m| m.rss)),
                mib(m.map(|m| m.hwm)),
                rate(r)
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
         <tr><th>since attach</th><td colspan=\"4\">{}{}</td></tr></table>",
        esc(&shared.dap_address()),
        yes_no(
            shared.dap_bound.load(Ordering::Relaxed),
            "bound",
            "not bound"
        ),
        esc(&c.upstream),
        yes_no(listening, "listening", "not listening"),
        if c.auth.token.is_some() {
            "token required"
        } else {
            "no token: loopback clients only"
        },
        proc_row(
            "app (debuggee)",
            &s.found.debuggee,
            &s.debuggee,
            s.debuggee_growth_per_second
        ),
        proc_row(
            "debugpy adapter",
            &s.found.adapter,
            &s.adapter,
            s.adapter_growth_per_second
        ),
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
    html.push_str("<h2>Memory</h2>");
    html.push_str(&chart(s));
    html.push_str(
        r#"<p><span style="color:#1f5fbf">&#9632;</span> app RSS &nbsp; <span style="color:#e07b00">&#9632;</span> debugpy adapter RSS &nbsp; <span style="color:#0a7a2f">|</span> attach &nbsp; <span style="color:#b00020">|</span> detach</p>
<p><a href="/status">/status</a> · <a href="/metrics">/metrics</a> · <a href="/readyz">/readyz</a> · <a href="/healthz">/healthz</a></p></body></html>"#,
    );
    html
}

/// The memory chart: RSS of both processes over the kept history, attach/detach marks.
fn chart(s: &Snapshot) -> String {
    const W: f64 = 800.0;
    const H: f64 = 260.0;
    const L: f64 = 60.0; // left margin for labels
    const B: f64 = 24.0; // bottom margin
    let points = &s.history;
    let mut svg = format!(
        r#"<svg id="memory-chart" data-points="{}" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="memory over time">"#,
        points.len()
    );
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        svg.push_str(r#"<text x="20" y="40">no samples yet</text></svg>"#);
        return svg;
    };
    let t0 = first.at;
    let span = (last.at - t0).max(1.0);
    let max = points
        .iter()
        .flat_map(|p| [p.debuggee, p.adapter])
        .flatten()
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let x = |t: f64| L + (t - t0) / span * (W - L - 10.0);
    let y = |v: f64| (H - B) - v / max * (H - B - 10.0);
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="4" y="{:.1}" font-size="11">{:.0} MiB</text>"##,
            W - 10.0,
            y(v) + 4.0,
            v / 1048576.0,
            y = y(v)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{L}" y="{}" font-size="11">-{}</text><text x="{}" y="{}" font-size="11" text-anchor="end">now</text>"#,
        H - 6.0,
        humantime::format_duration(Duration::from_secs(span as u64)),
        W - 10.0,
        H - 6.0
    );
    for (pick, color, class) in [
        (
            (|p: &crate::target::monitor::Point| p.debuggee) as fn(&_) -> Option<u64>,
            "#1f5fbf",
            "debuggee",
        ),
        (
            |p: &crate::target::monitor::Point| p.adapter,
            "#e07b00",
            "adapter",
        ),
    ] {
        let coords: Vec<String> = points
            .iter()
            .filter_map(|p| Some(format!("{:.1},{:.1}", x(p.at), y(pick(p)? as f64))))
            .collect();
        if !coords.is_empty() {
            let _ = write!(
                svg,
                r#"<polyline class="{class}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                coords.join(" ")
            );
        }
    }
    for mark in s.marks.iter().filter(|m| m.at >= t0) {
        let color = if mark.kind == "attach" {
            "#0a7a2f"
        } else {
            "#b00020"
        };
        let _ = write!(
            svg,
            r#"<line class="mark {}" x1="{x:.1}" x2="{x:.1}" y1="10" y2="{}" stroke="{color}" stroke-dasharray="4 3"><title>{} {}</title></line>"#,
            mark.kind,
            H - B,
            mark.kind,
            esc(&mark.peer),
            x = x(mark.at)
        );
    }
    svg.push_str("</svg>");
    svg
}
