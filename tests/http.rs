//! The HTTP endpoints of the sidecar running in-process (`server::Server`), over
//! loopback through the real hyper server: health, readiness (following the fake
//! debugpy's listening socket), metrics, status and the page; and both listeners closed
//! once the shutdown token is cancelled. No Python, no root.
//!
//! The router's answers for states a test cannot easily arrange (debugpy exposed,
//! bypass connections) are unit tests in `src/http/mod.rs`; Prometheus, promtool and
//! Chromium reading these endpoints are in `tests/observability.rs`.

mod common;

use std::time::Duration;

use common::TOKEN;
use common::async_dap::{Client, http_get, metric};
use common::fake_upstream::FakeUpstream;
use common::in_process::{InProcess, config};
use serde_json::{Value, json};

#[tokio::test]
async fn health_readiness_metrics_status_and_page_answer_over_loopback() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;

    let (code, body) = http_get(sidecar.http, "/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, body) = http_get(sidecar.http, "/readyz").await;
    assert_eq!((code, body.as_str()), (200, "ready\n"));

    let (code, metrics) = http_get(sidecar.http, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(metric(&metrics, "dap_sidecar_upstream_up"), Some(1.0));
    assert_eq!(metric(&metrics, "dap_sidecar_sessions_active"), Some(0.0));
    assert!(
        metrics.contains("\nprocess_resident_memory_bytes "),
        "{metrics}"
    );

    // A session shows in the metrics (configurationDone was relayed).
    let mut client = Client::connect(sidecar.dap).await;
    client.handshake(json!({"token": TOKEN})).await;
    let (_, metrics) = http_get(sidecar.http, "/metrics").await;
    assert_eq!(metric(&metrics, "dap_sidecar_sessions_active"), Some(1.0));
    assert!(
        metric(
            &metrics,
            "dap_sidecar_messages_total{direction=\"to_upstream\",kind=\"request\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );

    let (code, body) = http_get(sidecar.http, "/status").await;
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).expect("status JSON");
    assert_eq!(status["config"]["auth"]["summary"], "token required");
    assert_eq!(status["config"]["upstream"], fake.addr.to_string());
    assert_eq!(status["upstream"]["listening"], true, "{status:#}");
    assert!(!body.contains(TOKEN), "the token leaked: {body}");

    let (code, page) = http_get(sidecar.http, "/").await;
    assert_eq!(code, 200);
    assert!(page.contains("<title>dap-sidecar</title>"), "{page}");
    assert!(page.contains("memory-chart"), "{page}");
    assert!(!page.contains(TOKEN));

    let (code, _) = http_get(sidecar.http, "/nope").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn readyz_says_why_while_nothing_listens_upstream() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port"); // released: nothing listens there
    let sidecar = InProcess::start(config(nobody)).await;
    let (code, body) = http_get(sidecar.http, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!(
            "nothing listens on the upstream port {}",
            nobody.port()
        )),
        "{body}"
    );
    // Liveness does not depend on debugpy.
    let (code, _) = http_get(sidecar.http, "/healthz").await;
    assert_eq!(code, 200);
    let (_, metrics) = http_get(sidecar.http, "/metrics").await;
    assert_eq!(metric(&metrics, "dap_sidecar_upstream_up"), Some(0.0));

    // debugpy comes up on that port: ready within a probe or two (a probe that finds it
    // not ready asks for a fresh look, and waits for it at most 500 ms).
    let listener = tokio::net::TcpListener::bind(nobody)
        .await
        .expect("rebind the port");
    let deadline = tokio::time::Instant::now() + common::SOON;
    loop {
        let (code, body) = http_get(sidecar.http, "/readyz").await;
        if code == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {body}"
        );
    }
    drop(listener);
}

#[tokio::test]
async fn shutdown_closes_both_listeners_promptly() {
    let fake = FakeUpstream::start().await;
    let sidecar = InProcess::start(config(fake.addr)).await;
    let (dap, http) = (sidecar.dap, sidecar.http);
    // An idle keep-alive connection does not hold the shutdown up.
    let idle = tokio::net::TcpStream::connect(http).await.expect("connect");
    let started = std::time::Instant::now();
    sidecar.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "serve took {:?}",
        started.elapsed()
    );
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
    assert!(tokio::net::TcpStream::connect(dap).await.is_err());
    drop(idle);
}
