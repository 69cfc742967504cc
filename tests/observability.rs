//! Observability against real debugpy, real Prometheus (Debian's package) and headless
//! Chromium: memory readings, growth fit, readiness, metrics, the memory limit, the page.
//!
//! Ignored in a plain `cargo test` (each needs debugpy, promtool, Prometheus or
//! Chromium); `scripts/test.sh` runs them with `--ignored`. The endpoints themselves are
//! tested in-process by `tests/http.rs`.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dap::DapClient;
use common::{
    App, Lines, SOON, Sidecar, break_line, free_port, http_get, mapping_yaml, upstream_yaml, vm_rss,
};
use serde_json::{Value, json};

/// A sidecar sampling every 200 ms, with debug logs so tests can await samples.
fn sampling_sidecar(app: &App, extra: &str) -> Sidecar {
    sampling_sidecar_with(app, "", extra)
}

/// Like [`sampling_sidecar`], with extra lines for the `target:` section.
fn sampling_sidecar_with(app: &App, target: &str, extra: &str) -> Sidecar {
    Sidecar::start(&format!(
        "{}{}target:\n  sample_interval: 200ms\n{target}log:\n  level: dap_sidecar=debug\n{extra}",
        upstream_yaml(app.port),
        mapping_yaml(&app.local_root.display().to_string(), &app.remote_root),
    ))
}

/// Waits until discovery has found both processes and `samples` more samples are taken.
fn await_samples(sidecar: &Sidecar, samples: usize) {
    let found = |l: &str| {
        l.contains("target changed")
            && !l.contains("\"debuggee\":null")
            && l.contains("\"adapter\":")
    };
    sidecar
        .log
        .wait_from(0, SOON, |l| found(l) && !l.contains("\"adapter\":null"))
        .unwrap_or_else(|| panic!("target not found:\n{}", sidecar.log.all()));
    // Counted from the whole log: a predicate given to `wait_from` sees lines again.
    let before = sidecar
        .log
        .all()
        .lines()
        .filter(|l| l.contains("memory sampled"))
        .count();
    assert!(
        sidecar
            .log
            .wait_count("memory sampled", before + samples, SOON),
        "fewer than {samples} samples"
    );
}

fn status(sidecar: &Sidecar) -> Value {
    let (code, body) = http_get(sidecar.http, "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

fn within(actual: f64, expected: f64, fraction: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * fraction
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn memory_readings_match_proc_for_app_and_adapter() {
    let app = App::start();
    let sidecar = sampling_sidecar(&app, "");
    await_samples(&sidecar, 2);
    let s = status(&sidecar);
    let debuggee = &s["target"]["debuggee"];
    let adapter = &s["target"]["adapter"];
    assert_eq!(debuggee["pid"], app.pid(), "{s:#}");
    let adapter_pid = adapter["pid"].as_u64().expect("adapter pid") as u32;
    assert!(
        adapter["cmdline"]
            .as_str()
            .unwrap()
            .contains("debugpy/adapter"),
        "{s:#}"
    );
    assert!(
        adapter["cmdline"]
            .as_str()
            .unwrap()
            .contains("--server-access-token <redacted>"),
        "adapter secret shown: {s:#}"
    );
    for (reported, pid) in [(debuggee, app.pid()), (adapter, adapter_pid)] {
        let reported = reported["memory"]["rss"].as_f64().expect("rss");
        let actual = vm_rss(pid) as f64;
        assert!(
            within(reported, actual, 0.10),
            "pid {pid}: reported {reported}, /proc says {actual}"
        );
    }
    let (_, metrics) = http_get(sidecar.http, "/metrics");
    let gauge = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dap_sidecar_target_resident_memory_bytes{role=\"adapter\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("adapter gauge");
    assert!(within(gauge, vm_rss(adapter_pid) as f64, 0.10));
    assert!(metrics.contains("dap_sidecar_target_up 1"));
    assert!(metrics.contains("dap_sidecar_upstream_up 1"));
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn growth_slope_follows_a_steadily_allocating_app() {
    let mut app = App::prepare();
    app.launch_script(None, "grow.py", "grow started");
    let sidecar = sampling_sidecar(&app, "memory:\n  window: 3s\n");
    await_samples(&sidecar, 1);
    let (t0, rss0) = (Instant::now(), vm_rss(app.pid()));
    await_samples(&sidecar, 16);
    let real = (vm_rss(app.pid()) - rss0) as f64 / t0.elapsed().as_secs_f64();
    let fitted = status(&sidecar)["memory"]["growth_bytes_per_second"]["debuggee"]
        .as_f64()
        .expect("growth rate");
    println!(
        "real growth {:.2} MiB/s, fitted {:.2} MiB/s",
        real / 1048576.0,
        fitted / 1048576.0
    );
    assert!(
        real > 4.0 * 1048576.0,
        "the app did not grow as designed: {real}"
    );
    assert!(within(fitted, real, 0.25), "fitted {fitted} vs real {real}");
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn readyz_follows_the_upstream_without_connecting_to_it() {
    let mut app = App::prepare();
    let sidecar = sampling_sidecar(&app, "");
    let (code, body) = http_get(sidecar.http, "/readyz");
    assert_eq!(code, 503);
    assert!(
        body.contains(&format!("upstream port {}", app.port)),
        "{body}"
    );
    assert_eq!(http_get(sidecar.http, "/healthz").0, 200);

    app.launch();
    for _ in 0..5 {
        let (code, body) = http_get(sidecar.http, "/readyz");
        assert_eq!(code, 200, "{body}");
    }
    assert_eq!(app.client_connections(), 0, "a probe connected to debugpy");
    let log = app.adapter_log();
    assert!(
        log.contains("Listening for incoming Client connections"),
        "adapter log missing"
    );
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn memory_limit_detach_ends_the_session_and_the_app_keeps_running() {
    let app = App::start();
    let sidecar = sampling_sidecar(
        &app,
        "memory:\n  max_growth_while_attached: 40MiB\n  on_limit: detach\n",
    );
    await_samples(&sidecar, 1);
    let mut client = DapClient::connect(sidecar.addr);
    let (frame, n) = client.pause_at(json!({}), &app.local_main(), break_line());
    // The limit may strike while this evaluate still runs, so its answer is not awaited.
    client.send(
        "evaluate",
        json!({"expression": "globals().__setitem__('blob', b'x' * (100 << 20))", "frameId": frame, "context": "repl"}),
    );

    let said = client
        .output(SOON, |o| o.contains("Detaching"))
        .unwrap_or_else(|| panic!("no limit message:\n{}", sidecar.log.all()));
    assert!(
        said["body"]["output"]
            .as_str()
            .unwrap()
            .contains("limit memory.max_growth_while_attached = 40 MiB")
    );
    assert!(client.event("terminated", SOON).is_some());
    assert!(
        app.wait_tick_above(n, SOON).is_some(),
        "the app stayed paused"
    );
    assert!(
        sidecar
            .log
            .wait("\"outcome\":\"memory_limit\"", SOON)
            .is_some()
    );
    let (_, metrics) = http_get(sidecar.http, "/metrics");
    assert!(
        metrics.contains("dap_sidecar_sessions_total{outcome=\"memory_limit\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("dap_sidecar_memory_limit_exceeded_total 1"));
}

fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed: bash scripts/setup.sh");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("promtool")
}

#[test]
#[ignore = "promtool (Debian package prometheus): run by scripts/test.sh"]
fn alert_rules_pass_promtool() {
    let out = promtool(&["check", "rules", "deploy/prometheus/alerts.yml"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = promtool(&["test", "rules", "tests/prometheus/alerts_test.yml"], None);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "real debugpy, promtool and Prometheus: run by scripts/test.sh"]
fn metrics_pass_promtool_and_a_real_prometheus_scrapes_them() {
    let app = App::start();
    // The growth figure is published once the history covers half the window.
    let sidecar = sampling_sidecar(&app, "memory:\n  window: 1s\n");
    await_samples(&sidecar, 5);
    let mut client = DapClient::connect(sidecar.addr);
    client.attach_with_breakpoint(json!({}), &app.local_main(), break_line());
    client.stopped_frame();

    let (_, metrics) = http_get(sidecar.http, "/metrics");
    for name in [
        "dap_sidecar_target_up",
        "dap_sidecar_target_resident_memory_bytes{role=\"debuggee\"}",
        "dap_sidecar_target_memory_growth_bytes_per_second{role=\"debuggee\"}",
        "dap_sidecar_target_memory_growth_since_attach_bytes",
        "dap_sidecar_upstream_up 1",
        "dap_sidecar_sessions_active 1",
        "dap_sidecar_debuggee_stopped 1",
        "dap_sidecar_messages_total{direction=\"to_client\",kind=\"event\"}",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let out = promtool(&["check", "metrics"], Some(&metrics));
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    client.request("disconnect", json!({"terminateDebuggee": false}));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dap-sidecar\n    static_configs:\n      - targets: ['{}']\n",
            sidecar.http
        ),
    )
    .expect("config");
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _prometheus = Prometheus::start(&config, &dir.path().join("data"), web);
    let deadline = Instant::now() + SOON;
    let query = "/api/v1/query?query=dap_sidecar_target_resident_memory_bytes";
    loop {
        let (_, body) = http_get(web, query);
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let results = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let debuggee = results.iter().find(|r| r["metric"]["role"] == "debuggee");
        if let Some(series) = debuggee {
            let value: f64 = series["value"][1]
                .as_str()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0.0);
            assert!(value > 1e6, "{series}");
            assert_eq!(series["metric"]["job"], "dap-sidecar");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned the series: {body}"
        );
        // Polling Prometheus' query API: it offers no notification of a completed scrape.
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A real Prometheus server on loopback, killed on drop.
struct Prometheus {
    child: std::process::Child,
}

impl Prometheus {
    fn start(config: &Path, data: &Path, web: SocketAddr) -> Prometheus {
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prometheus (Debian package) must be installed: bash scripts/setup.sh");
        let log = Lines::default();
        log.collect(child.stderr.take().expect("stderr"), "prometheus");
        assert!(
            log.wait("Server is ready to receive web requests", SOON)
                .is_some(),
            "prometheus did not start:\n{}",
            log.all()
        );
        Prometheus { child }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "real debugpy and headless Chromium: run by scripts/test.sh"]
fn status_page_renders_the_chart_in_headless_chromium() {
    let app = App::start();
    let sidecar = sampling_sidecar(&app, "");
    await_samples(&sidecar, 2);
    let mut client = DapClient::connect(sidecar.addr);
    client.attach_with_breakpoint(json!({}), &app.local_main(), break_line());
    client.stopped_frame();
    client.request("disconnect", json!({"terminateDebuggee": false}));
    assert!(sidecar.log.wait("session ended", SOON).is_some());
    await_samples(&sidecar, 3);

    let url = format!("http://{}/", sidecar.http);
    let profile = tempfile::tempdir().expect("profile");
    let chromium = |extra: &[&str]| {
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1000,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium (Debian package) must be installed: bash scripts/setup.sh");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let dom = String::from_utf8(chromium(&["--dump-dom"]).stdout).expect("utf-8 DOM");
    let points: usize = dom
        .split("data-points=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("chart element with data-points");
    assert!(points >= 4, "chart has {points} points");
    let debuggee_line = dom
        .split("class=\"debuggee\"")
        .nth(1)
        .expect("debuggee line in the chart");
    assert!(debuggee_line.contains("points=\""), "line without points");
    assert!(
        dom.contains("class=\"mark attach\"") && dom.contains("class=\"mark detach\""),
        "marks missing"
    );

    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&png);
    chromium(&[&format!("--screenshot={}", png.display())]);
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "screenshot is {} bytes",
        bytes.len()
    );
    println!("screenshot: {}", png.display());
}

/// A restarted app is found again; `target.match` picks the app by command line.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn a_restarted_app_is_rediscovered_and_match_selects_by_command_line() {
    let mut app = App::start();
    let sidecar = sampling_sidecar(&app, "");
    await_samples(&sidecar, 1);
    assert_eq!(status(&sidecar)["target"]["debuggee"]["pid"], app.pid());
    let before = sidecar.log.len();
    app.kill();
    app.launch();
    let new_pid = app.pid();
    sidecar
        .log
        .wait_from(before, SOON, |l| {
            l.contains("target changed") && l.contains(&format!("\"debuggee\":{new_pid}"))
        })
        .unwrap_or_else(|| panic!("restart not noticed:\n{}", sidecar.log.all()));
    assert_eq!(status(&sidecar)["target"]["debuggee"]["pid"], new_pid);

    // The whole path: other tests' apps on the machine run a `usr/src/app/main.py` too.
    let script = app.remote_root.join("main.py");
    let matching = sampling_sidecar_with(&app, &format!("  match: '{}'\n", script.display()), "");
    await_samples(&matching, 1);
    assert_eq!(status(&matching)["target"]["debuggee"]["pid"], new_pid);
}

/// `on_limit: warn` tells the IDE once and keeps the session.
#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn memory_limit_warn_tells_the_ide_and_keeps_the_session() {
    let app = App::start();
    let sidecar = sampling_sidecar(&app, "memory:\n  max_growth_while_attached: 40MiB\n");
    await_samples(&sidecar, 1);
    let mut client = DapClient::connect(sidecar.addr);
    let (frame, _) = client.pause_at(json!({}), &app.local_main(), break_line());
    client.evaluate(
        "globals().__setitem__('blob', b'x' * (100 << 20)) or 'ok'",
        frame,
    );
    client
        .output(SOON, |o| o.contains("grew by"))
        .unwrap_or_else(|| panic!("no warning:\n{}", sidecar.log.all()));
    assert_eq!(
        client.evaluate("1 + 1", frame),
        "2",
        "the session must go on"
    );
    assert!(
        sidecar
            .log
            .wait("memory.max_growth_while_attached", SOON)
            .is_some()
    );
    client.request("disconnect", json!({"terminateDebuggee": false}));
}
