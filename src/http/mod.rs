//! The HTTP endpoint on `http.host:http.port`:
//!
//! | path | answer |
//! | --- | --- |
//! | `/healthz` | 200 while the DAP accept loop and the memory sampler run; 503 otherwise |
//! | `/readyz` | 200 when the DAP listener is bound, the upstream port is listening, the upstream check is recent, and debugpy is not reachable on a non-loopback address (unless `auth.allow_exposed_upstream`); 503 with every reason otherwise |
//! | `/metrics` | Prometheus text format |
//! | `/status` | JSON: config summary without secrets, upstream (listening, exposed, bypass connections), target processes with redacted command lines, memory, sessions, `tcp_nodelay` ([`crate::nodelay`]), `injection` (attach on demand) |
//! | `/` | a human page: state, warnings, sessions, what debugging cost, memory steps, and an SVG chart per process with debugging events and steps |
//!
//! - [`server`]: the hyper server (header and request timeouts, connection cap shedding
//!   the oldest, bounded shutdown) that serves the routes.
//! - `page`: the server-rendered page; `chart`: its SVG charts; `cost`: what debugging
//!   cost, on the page and in `/status`.
//!
//! No handler reads `/proc`: the upstream's sockets come from
//! [`crate::upstream_watch`] and the processes from the monitor, both kept fresh in the
//! background. The one exception to "answer from memory" is `/readyz` when the latest
//! check says not ready: it asks the watcher for a check begun after the request and
//! waits for it at most [`READY_WAIT`] (checks asked for this way are shared by every
//! waiting request and rate-limited), so that a probe right after debugpy came up is
//! not told a second-old story.

mod chart;
mod cost;
mod page;
pub mod server;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::debuggee::discover;
use crate::debuggee::monitor::Snapshot;
use crate::state::Shared;
use crate::upstream_watch::UpstreamState;

pub use server::bind;

/// How long `/readyz` waits for a fresh upstream check when the latest says not ready
/// (kubelet's default probe timeout is 1 s).
pub const READY_WAIT: Duration = Duration::from_millis(500);

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
    if !shared.listener_running() {
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

/// Why the sidecar is not ready, given the upstream state; empty when it is.
fn not_ready(shared: &Shared, upstream: &UpstreamState) -> Vec<String> {
    let c = &shared.config;
    let mut reasons = Vec::new();
    if !shared.dap_bound() {
        reasons.push("the DAP listener is not bound".to_owned());
    }
    match upstream.age() {
        None => reasons.push("the upstream port has not been checked yet".to_owned()),
        Some(age) if !upstream.is_recent() => reasons.push(format!(
            "the upstream check is stale (last {:.1} s ago; the watcher is stuck)",
            age.as_secs_f64()
        )),
        Some(_) => {}
    }
    // With attach on demand, no debugpy is the normal state until someone attaches (and
    // an unready sidecar would take the app's pod out of its Services).
    let on_demand = c.inject.mode == crate::config::InjectMode::Auto;
    if upstream.checked.is_some() && !upstream.listening && !on_demand {
        reasons.push(format!(
            "nothing listens on the upstream port {} (is the app running under debugpy --listen {}?)",
            c.upstream_port(),
            c.upstream
        ));
    }
    if !upstream.exposed.is_empty() && !c.auth.allow_exposed_upstream {
        reasons.push(format!(
            "debugpy listens on {} (not loopback): anyone who reaches it runs code in the app \
             without the token; start debugpy with --listen 127.0.0.1:{} \
             (or accept the risk with auth.allow_exposed_upstream: true)",
            addresses(&upstream.exposed),
            c.upstream_port()
        ));
    }
    reasons
}

fn addresses(list: &[std::net::SocketAddr]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let mut upstream = shared.upstream.latest();
    if !upstream.listening || !upstream.is_recent() {
        // Maybe debugpy came up a moment ago: look again (shared, bounded).
        upstream = shared.upstream.fresh(READY_WAIT).await;
    }
    let reasons = not_ready(&shared, &upstream);
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

fn status_json(shared: &Shared, snapshot: &Snapshot, upstream: &UpstreamState) -> Value {
    let c = &shared.config;
    let process = |p: &Option<discover::ProcessInfo>,
                   m: &Option<crate::debuggee::memory::Memory>| {
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
            "http": c.http.addr().to_string(),
            "upstream": c.upstream,
            "upstream_timeout_seconds": c.upstream_timeout.as_secs_f64(),
            "wait": c.wait,
            "tcp_nodelay": c.tcp_nodelay,
            "path_mappings": c.path_mappings.iter().map(|m| json!({
                "local_root": m.local_root, "remote_root": m.remote_root
            })).collect::<Vec<_>>(),
            "auth": {
                "summary": c.auth.summary(),
                "token_configured": c.auth.token.is_some(),
                "allow_loopback_without_token": c.auth.allow_loopback_without_token,
                "allow": c.auth.allow.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                "allow_exposed_upstream": c.auth.allow_exposed_upstream,
            },
            "memory": {
                "window_seconds": c.memory.window.as_secs_f64(),
                "pss": c.memory.pss,
                "max_growth_while_attached": c.memory.max_growth_while_attached,
                "on_limit": format!("{:?}", c.memory.on_limit).to_lowercase(),
            },
        },
        "upstream": {
            "address": c.upstream,
            "listening": upstream.listening,
            "exposed": upstream.exposed.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "bypass_connections": upstream.bypass_connections,
            "checked_seconds_ago": upstream.age().map(|a| a.as_secs_f64()),
        },
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
            "growth": {
                "debuggee": snapshot.debuggee_growth,
                "adapter": snapshot.adapter_growth,
            },
            "steps": snapshot.steps,
            "debugging_cost": cost::json(snapshot),
            "cgroup": snapshot.cgroup,
        },
        "sessions": sessions,
        "tcp_nodelay": shared.nodelay.json(),
        "injection": injection_json(shared, snapshot),
    })
}

/// The latest attach on demand and the app's growth since (`null` before any).
fn injection_json(shared: &Shared, snapshot: &Snapshot) -> Value {
    let Some(mark) = shared.injector.last() else {
        return Value::Null;
    };
    let same_app = snapshot.found.debuggee.as_ref().map(|p| p.pid) == Some(mark.pid);
    let now = snapshot
        .debuggee
        .as_ref()
        .filter(|_| same_app)
        .map(|m| m.rss);
    let growth = mark
        .resident_before
        .zip(now)
        .map(|(before, now)| now as i64 - before as i64);
    json!({
        "pid": mark.pid,
        "at": unix(mark.at),
        "python": mark.version,
        "resident_before_bytes": mark.resident_before,
        "growth_since_bytes": growth,
    })
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let snapshot = shared.monitor.figures(shared.config.memory.window);
    Json(status_json(&shared, &snapshot, &shared.upstream.latest()))
}

async fn page(State(shared): State<Arc<Shared>>) -> Html<String> {
    let snapshot = shared.monitor.snapshot(shared.config.memory.window);
    Html(page::render(&shared, &snapshot, &shared.upstream.latest()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::body::Body;
    use axum::http::Request;
    use std::time::Instant;
    use tower::ServiceExt as _;

    fn shared(change: impl FnOnce(&mut Config)) -> Arc<Shared> {
        let mut config = Config::default(); // upstream 127.0.0.1:5679
        change(&mut config);
        let shared = Shared::new(config).expect("metrics");
        shared.set_dap_bound(Some(([127, 0, 0, 1], 5678).into()));
        Arc::new(shared)
    }

    fn checked(listening: bool, exposed: &[&str], bypass: usize) -> UpstreamState {
        UpstreamState {
            checked: Some(Instant::now()),
            listening,
            exposed: exposed.iter().filter_map(|a| a.parse().ok()).collect(),
            bypass_connections: bypass,
        }
    }

    async fn get(shared: &Arc<Shared>, path: &str) -> (StatusCode, String) {
        let request = Request::get(path).body(Body::empty()).expect("request");
        let response = router(shared.clone())
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let code = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ready_when_bound_listening_fresh_and_not_exposed() {
        let shared = shared(|_| {});
        shared.upstream.publish(checked(true, &[], 0));
        assert_eq!(
            get(&shared, "/readyz").await,
            (StatusCode::OK, "ready\n".into())
        );
    }

    #[tokio::test]
    async fn with_attach_on_demand_no_debugpy_is_ready() {
        let shared = shared(|c| c.inject.mode = crate::config::InjectMode::Auto);
        shared.upstream.publish(checked(false, &[], 0));
        assert_eq!(
            get(&shared, "/readyz").await,
            (StatusCode::OK, "ready\n".into())
        );
    }

    #[tokio::test]
    async fn not_ready_lists_every_reason() {
        let shared = shared(|_| {});
        shared.set_dap_bound(None);
        shared
            .upstream
            .publish(checked(false, &["0.0.0.0:5679"], 0));
        let started = Instant::now();
        let (code, body) = get(&shared, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with("not ready: "), "{body}");
        for reason in [
            "the DAP listener is not bound",
            "nothing listens on the upstream port 5679",
            "debugpy listens on 0.0.0.0:5679 (not loopback)",
            "--listen 127.0.0.1:5679",
        ] {
            assert!(body.contains(reason), "{reason} missing: {body}");
        }
        // No watcher runs here: the wait for a fresh check is bounded.
        assert!(started.elapsed() < READY_WAIT + Duration::from_millis(400));
    }

    #[tokio::test]
    async fn never_checked_or_stale_is_not_ready() {
        let shared = shared(|_| {});
        let (code, body) = get(&shared, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("has not been checked yet"), "{body}");
        let stale = crate::upstream_watch::STALE_AFTER + Duration::from_secs(1);
        let Some(old) = Instant::now().checked_sub(stale) else {
            return; // a machine up for less than that cannot express the case
        };
        shared.upstream.publish(UpstreamState {
            checked: Some(old),
            ..checked(true, &[], 0)
        });
        let (code, body) = get(&shared, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("stale"), "{body}");
    }

    #[tokio::test]
    async fn an_exposed_upstream_is_ready_only_when_allowed() {
        let shared = shared(|c| c.auth.allow_exposed_upstream = true);
        shared.upstream.publish(checked(true, &["[::]:5679"], 0));
        assert_eq!(get(&shared, "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn status_and_page_show_the_side_door_and_bypass_connections() {
        let shared = shared(|c| c.auth.token = Some("hunter2-token".into()));
        shared
            .upstream
            .publish(checked(true, &["0.0.0.0:5679", "[::]:5679"], 2));
        let (code, body) = get(&shared, "/status").await;
        assert_eq!(code, StatusCode::OK);
        let status: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            status["upstream"]["exposed"],
            json!(["0.0.0.0:5679", "[::]:5679"])
        );
        assert_eq!(status["upstream"]["bypass_connections"], 2);
        assert_eq!(status["upstream"]["listening"], true);
        assert_eq!(status["config"]["auth"]["summary"], "token required");
        assert!(!body.contains("hunter2"), "the token leaked: {body}");

        let (code, html) = get(&shared, "/").await;
        assert_eq!(code, StatusCode::OK);
        assert!(html.contains(r#"class="alert""#), "{html}");
        assert!(html.contains("0.0.0.0:5679"));
        assert!(html.contains("without the token"));
        assert!(html.contains("--listen 127.0.0.1:5679"));
        assert!(html.contains("2 connections to debugpy"), "{html}");
        assert!(!html.contains('\\'), "a stray backslash: {html}");
        assert!(!html.contains("hunter2"));
    }

    #[tokio::test]
    async fn a_safe_upstream_shows_no_warning() {
        let shared = shared(|_| {});
        shared.upstream.publish(checked(true, &[], 0));
        let (_, html) = get(&shared, "/").await;
        assert!(!html.contains(r#"class="alert""#), "{html}");
        let (_, body) = get(&shared, "/status").await;
        let status: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(status["upstream"]["exposed"], json!([]));
        assert_eq!(status["upstream"]["bypass_connections"], 0);
    }

    #[tokio::test]
    async fn the_auth_text_follows_the_config() {
        let cases = [
            (Some("t"), true, "token required"),
            (Some("t"), false, "token required"),
            (None, true, "no token: loopback clients only"),
            (None, false, "no token: nobody can attach"),
        ];
        for (token, loopback, text) in cases {
            let shared = shared(|c| {
                c.auth.token = token.map(str::to_owned);
                c.auth.allow_loopback_without_token = loopback;
            });
            assert_eq!(shared.config.auth.summary(), text);
            shared.upstream.publish(checked(true, &[], 0));
            let (_, body) = get(&shared, "/status").await;
            let status: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(status["config"]["auth"]["summary"], text);
            let (_, html) = get(&shared, "/").await;
            assert!(html.contains(text), "{text}: {html}");
        }
    }

    #[tokio::test]
    async fn healthz_and_metrics_answer_from_memory() {
        let shared = shared(|_| {});
        assert_eq!(
            get(&shared, "/healthz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        shared.set_listener_running(true);
        assert_eq!(
            get(&shared, "/healthz").await,
            (StatusCode::OK, "ok\n".into())
        );
        let (code, text) = get(&shared, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(text.contains("dap_sidecar_upstream_exposed"), "{text}");
    }

    /// Feeds the monitor one sample, as the sampling loop would.
    fn sample(shared: &Shared, rss: u64, adapter: Option<u64>) {
        use crate::debuggee::discover::{Found, ProcessInfo};
        use crate::debuggee::memory::Memory;
        use crate::debuggee::monitor::Sample;
        let process = |pid, cmdline: &str| ProcessInfo {
            pid,
            cmdline: cmdline.into(),
        };
        let memory = |rss| Memory {
            rss,
            hwm: rss,
            swap: 0,
            pss: None,
        };
        let sample = Sample {
            found: Found {
                debuggee: Some(process(4242, "python main.py")),
                adapter: adapter.map(|_| process(4343, "python debugpy/adapter")),
            },
            debuggee: Some(memory(rss)),
            adapter: adapter.map(memory),
            cgroup: None,
            read_pss: false,
        };
        shared
            .monitor
            .record(&shared.config, &shared.metrics, sample);
    }

    #[tokio::test]
    async fn status_metrics_and_page_say_what_debugging_cost() {
        const MIB: u64 = 1 << 20;
        let shared = shared(|_| {});
        shared.upstream.publish(checked(true, &[], 0));
        // Seen before debugpy, then debugpy loaded (+7 MiB and an adapter), then an
        // attach (+5 MiB), then flat.
        for _ in 0..3 {
            sample(&shared, 200 * MIB, None);
        }
        sample(&shared, 207 * MIB, Some(18 * MIB));
        sample(&shared, 207 * MIB, Some(18 * MIB));
        shared.monitor.on_attach("127.0.0.1:50000");
        sample(&shared, 212 * MIB, Some(19 * MIB));
        sample(&shared, 212 * MIB, Some(19 * MIB));

        let (_, body) = get(&shared, "/status").await;
        let status: Value = serde_json::from_str(&body).expect("json");
        let cost = &status["memory"]["debugging_cost"];
        assert_eq!(cost["before_debugpy"]["rss"], 200 * MIB, "{cost:#}");
        assert_eq!(cost["app_growth_since_before_debugpy_bytes"], 12 * MIB);
        assert_eq!(cost["steps_by_cause_bytes"]["debugpy_loaded"], 7 * MIB);
        assert_eq!(cost["steps_by_cause_bytes"]["session_attached"], 5 * MIB);
        assert_eq!(cost["steps_by_cause_bytes"]["unknown"], 0);
        let events = cost["events"].as_array().expect("events");
        assert_eq!(events.len(), 2, "{cost:#}");
        assert_eq!(events[1]["cause"], "session_attached");
        assert_eq!(events[1]["rss_before"], 207 * MIB);
        assert_eq!(events[1]["rss_after"], 212 * MIB);
        let steps = status["memory"]["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 2, "{steps:?}");
        // Far too little history for a growth figure: none is given.
        assert_eq!(
            status["memory"]["growth_bytes_per_second"]["debuggee"],
            Value::Null
        );

        let (_, metrics) = get(&shared, "/metrics").await;
        for line in [
            "dap_sidecar_target_memory_at_event_bytes{event=\"before_debugpy\"} 209715200",
            "dap_sidecar_target_memory_at_event_bytes{event=\"session_attached\"} 222298112",
            "dap_sidecar_target_memory_step_bytes{cause=\"session_attached\"} 5242880",
            "dap_sidecar_target_memory_steps_total{cause=\"debugpy_loaded\"} 1",
            "dap_sidecar_target_memory_steps_total{cause=\"unknown\"} 0",
        ] {
            assert!(metrics.contains(line), "{line} missing:\n{metrics}");
        }
        assert!(!metrics.contains("target_memory_growth_bytes_per_second{role=\"debuggee\"}"));

        let (_, html) = get(&shared, "/").await;
        assert!(html.contains("What debugging cost"), "{html}");
        assert!(
            html.contains("App before debugpy: <strong>200.0 MiB</strong>"),
            "{html}"
        );
        assert!(
            html.contains("session attached <strong>+5.0 MiB</strong>"),
            "{html}"
        );
        assert!(
            html.contains("+5.0 MiB, session attached"),
            "step label: {html}"
        );
        assert!(html.contains("python main.py"));
    }
}
