//! The memory figures against real parts: real debugpy loaded into a running app, a real
//! DAP client attaching through the sidecar, an app that really leaks, promtool replaying
//! the growth figures the sidecar produced through the alert rules, headless Chromium
//! screenshots of the page, the text log written to a file, and the app's cgroup.
//!
//! Sampling every 200 ms with windows of a few seconds keeps them fast; every wait is
//! for a log line, an app output line or a DAP message, with a deadline.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dap::DapClient;
use common::{App, SOON, Sidecar, http_get, python, upstream_yaml};
use serde_json::{Value, json};

const MIB: f64 = 1048576.0;
/// `memory.window` of the step test.
const STEP_WINDOW: f64 = 4.0;
/// `memory.window` of the leak test.
const LEAK_WINDOW: f64 = 8.0;

/// A sidecar sampling every 200 ms with debug logs (so tests can await samples).
fn sidecar(app: &App, target: &str, window: f64) -> Sidecar {
    Sidecar::start(&format!(
        "{}target:\n  sample_interval: 200ms\n{target}memory:\n  window: {window}s\nlog:\n  level: dap_sidecar=debug\n",
        upstream_yaml(app.port),
    ))
}

fn json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or(Value::Null)
}

/// The sidecar's "memory sampled" lines from line `from` on, as JSON.
fn samples_from(sidecar: &Sidecar, from: usize) -> Vec<Value> {
    sidecar
        .log
        .all()
        .lines()
        .skip(from)
        .filter(|l| l.contains("memory sampled"))
        .map(json_line)
        .collect()
}

/// Waits until `n` more samples were taken after log line `from`; returns the log length.
fn await_samples(sidecar: &Sidecar, from: usize, n: usize) -> usize {
    let before = sidecar
        .log
        .all()
        .lines()
        .take(from)
        .filter(|l| l.contains("memory sampled"))
        .count();
    assert!(
        sidecar.log.wait_count("memory sampled", before + n, SOON),
        "fewer than {n} samples:\n{}",
        sidecar.log.all()
    );
    sidecar.log.len()
}

fn status(sidecar: &Sidecar) -> Value {
    let (code, body) = http_get(sidecar.http, "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

/// The value of the metric line starting with `series` (name and labels).
fn metric(sidecar: &Sidecar, series: &str) -> Option<f64> {
    let (_, text) = http_get(sidecar.http, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// initialize, attach, configurationDone: a session whose app keeps running.
fn attach_running(client: &mut DapClient) {
    let init = client.initialize();
    assert_eq!(init["success"], true, "{init}");
    let attach = client.attach(json!({}));
    client
        .event("initialized", SOON)
        .unwrap_or_else(|| panic!("no initialized event: {:#?}", client.history));
    let done = client.request("configurationDone", json!({}));
    assert_eq!(done["success"], true, "{done}");
    let attached = client.response(attach, SOON);
    assert_eq!(attached["success"], true, "{attached}");
}

/// Pauses the running app, evaluates `expression` in its top frame, and continues.
fn evaluate_paused(client: &mut DapClient, expression: &str) {
    let threads = client.request("threads", json!({}));
    let thread = threads["body"]["threads"][0]["id"].clone();
    client.request("pause", json!({ "threadId": thread }));
    let (thread, frame) = client.stopped_frame();
    let frame = frame["id"].as_i64().expect("frame id");
    client.evaluate(expression, frame);
    client.request("continue", json!({ "threadId": thread }));
}

/// The app (`memory_app.py`) started with `args`, not under debugpy, inside `group`
/// from its first instruction (memory is charged to the cgroup that allocates it).
fn app_in_cgroup(group: &TestCgroup, args: &[&str]) -> App {
    let mut app = App::prepare();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
        .arg(&group.dir)
        .arg(python())
        .arg("-Xfrozen_modules=off")
        .arg(app.remote_root.join("memory_app.py"))
        .args(args);
    app.launch_command(cmd);
    assert!(
        app.stdout.wait("memory app ready", SOON).is_some(),
        "app did not start:\n{}",
        app.stdout.all()
    );
    app
}

/// Go's `%.4g` for the values `humanize1024` prints (as Prometheus' templates do).
fn humanize1024(mut v: f64) -> String {
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti"] {
        if v.abs() < 1024.0 {
            break;
        }
        v /= 1024.0;
        prefix = p;
    }
    let digits = 4 - (v.abs().log10().floor() as i32 + 1);
    let mut text = format!("{:.*}", digits.max(0) as usize, v);
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{text}{prefix}")
}

/// Replays `growth` (one value per sample, as the sidecar published them) through the
/// alert rules, one value per minute: a promtool test that expects `DebuggeeMemoryGrowing`
/// to fire at minute `fire_at` (or never, with `None`).
fn replay_through_alert_rules(growth: &[f64], fire_at: Option<usize>) {
    let values: Vec<String> = growth.iter().map(|v| format!("{v:.3}")).collect();
    let eval = fire_at.unwrap_or(growth.len() - 1);
    let mut yaml = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'dap_sidecar_target_memory_growth_bytes_per_second{{role=\"debuggee\", instance=\"app:5680\", job=\"dap-sidecar\"}}'\n        values: '{}'\n    alert_rule_test:\n      - eval_time: {eval}m\n        alertname: DebuggeeMemoryGrowing\n",
        common::repo_dir()
            .join("deploy/prometheus/alerts.yml")
            .display(),
        values.join(" ")
    );
    match fire_at {
        None => yaml.push_str("        exp_alerts: []\n"),
        Some(minute) => {
            let _ = write!(
                yaml,
                "        exp_alerts:\n          - exp_labels:\n              severity: warning\n              role: debuggee\n              instance: app:5680\n              job: dap-sidecar\n            exp_annotations:\n              summary: \"The debugged app's memory grows by {}B/s\"\n              description: \"The app behind dap-sidecar app:5680 has grown steadily for 15 minutes. debugpy keeps its tracer loaded after a session; restart the app when you are done debugging.\"\n",
                humanize1024(growth[minute])
            );
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("replay_test.yml");
    std::fs::write(&file, &yaml).expect("write replay");
    let out = Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool (Debian package prometheus) must be installed: bash scripts/setup.sh");
    assert!(
        out.status.success(),
        "promtool replay failed:\n{yaml}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A headless Chromium screenshot of the page, saved as `target/tmp/<name>.png`.
fn screenshot(sidecar: &Sidecar, name: &str) -> PathBuf {
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().expect("profile");
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
            "--hide-scrollbars",
            "--window-size=1000,1900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("http://{}/", sidecar.http))
        .output()
        .expect("chromium (Debian package) must be installed: bash scripts/setup.sh");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000);
    println!("screenshot: {}", png.display());
    png
}

/// An app seen before debugpy, debugpy loaded into it, a real client attaching: the
/// steps are shown with their causes, and the growth figure shows no growth from the
/// sample after the step on, where the least-squares line would.
#[test]
#[ignore = "real debugpy, promtool and headless Chromium: run by scripts/test.sh"]
fn an_attach_step_then_flat_is_a_step_with_its_cause_not_growth() {
    let mut app = App::prepare();
    let port = app.port.to_string();
    let script = app.remote_root.join("memory_app.py");
    let mut cmd = Command::new(python());
    cmd.arg("-Xfrozen_modules=off").arg(&script).args([
        "--ballast",
        "200",
        "--listen-on-usr1",
        &port,
    ]);
    app.launch_command(cmd);
    assert!(app.stdout.wait("memory app ready", SOON).is_some());
    let sidecar = sidecar(
        &app,
        &format!("  match: '{}'\n", script.display()),
        STEP_WINDOW,
    );
    // Seen without debugpy for a few samples.
    let pid = app.pid();
    sidecar
        .log
        .wait_from(0, SOON, |l| {
            l.contains("target changed") && l.contains(&format!("\"debuggee\":{pid}"))
        })
        .unwrap_or_else(|| panic!("app not found:\n{}", sidecar.log.all()));
    await_samples(&sidecar, 0, 5);

    // debugpy.listen() in the running app.
    Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(app.stdout.wait("debugpy listening", SOON).is_some());
    let loaded = sidecar
        .log
        .wait("debugpy loaded into the app", SOON)
        .unwrap_or_else(|| panic!("debugpy not seen:\n{}", sidecar.log.all()));
    println!("{loaded}");

    // Settled: the growth figure is shown, and flat.
    let from = sidecar.log.len();
    sidecar
        .log
        .wait_from(from, SOON, |l| {
            l.contains("memory sampled") && json_line(l)["growth"].as_f64() == Some(0.0)
        })
        .unwrap_or_else(|| panic!("no flat growth figure:\n{}", sidecar.log.all()));
    let idle = screenshot(&sidecar, "memory-idle");

    // A real client attaches through the sidecar. Attaching real debugpy 1.8.22 to this
    // small app costs it nothing measurable (the tracer came with debugpy.listen()), so
    // the session makes its step itself: 5 MiB allocated from the debug console right
    // after the attach, on a 200 MiB app.
    let before_attach = sidecar.log.len();
    let mut client = DapClient::connect(sidecar.addr);
    attach_running(&mut client);
    evaluate_paused(
        &mut client,
        "globals().__setitem__('blob', b'x' * (5 << 20))",
    );
    let step_line = sidecar
        .log
        .wait_from(before_attach, SOON, |l| {
            l.contains("the app's memory stepped") && l.contains("session_attached")
        })
        .unwrap_or_else(|| panic!("no attach step:\n{}", sidecar.log.all()));
    let step = json_line(&step_line);
    let step_bytes = step["bytes"].as_f64().expect("bytes");
    println!("step: {:.2} MiB", step_bytes / MIB);
    assert!(step_bytes > 4.5 * MIB, "{step}");
    // The least-squares line, still holding the step, would call it growth.
    let least_squares = status(&sidecar)["memory"]["growth"]["debuggee"]["least_squares"]
        .as_f64()
        .expect("least squares");
    println!(
        "least-squares slope now: {:.0} KiB/s",
        least_squares / 1024.0
    );
    assert!(least_squares > 100.0 * 1024.0, "{least_squares}");
    // From the sample that saw the step (the step still open: it may go on) and the one
    // after it (which recorded it), for a whole window: flat.
    let log = sidecar.log.all();
    let lines: Vec<&str> = log.lines().collect();
    let recorded = lines
        .iter()
        .position(|l| *l == step_line)
        .expect("step line");
    let step_at = lines[..recorded]
        .iter()
        .rposition(|l| l.contains("memory sampled"))
        .expect("the sample that saw the step");
    let after = await_samples(&sidecar, step_at, (STEP_WINDOW / 0.2) as usize + 5);
    let samples = samples_from(&sidecar, step_at);
    let growth: Vec<f64> = samples
        .iter()
        .filter_map(|s| s["growth"].as_f64())
        .collect();
    println!(
        "growth after the step (KiB/s): {:?}",
        growth
            .iter()
            .map(|g| (g / 1024.0).round())
            .collect::<Vec<_>>()
    );
    assert_eq!(growth.len(), samples.len(), "a sample without a figure");
    let rss: Vec<f64> = samples
        .iter()
        .filter_map(|s| s["debuggee_rss"].as_f64())
        .collect();
    assert!(
        growth.iter().all(|g| g.abs() < 4096.0),
        "growth shown after a step: {growth:?}, RSS {rss:?}"
    );
    let s = status(&sidecar);
    println!("growth parts: {}", s["memory"]["growth"]["debuggee"]);
    let rate = metric(
        &sidecar,
        "dap_sidecar_target_memory_growth_bytes_per_second{role=\"debuggee\"}",
    )
    .expect("growth metric");
    assert!(rate.abs() < 4096.0, "metric says {rate}");
    assert_eq!(
        metric(
            &sidecar,
            "dap_sidecar_target_memory_steps_total{cause=\"session_attached\"}"
        ),
        Some(1.0)
    );
    // The cost: before debugpy, debugpy loaded, the attach.
    let cost = &s["memory"]["debugging_cost"];
    let before = cost["before_debugpy"]["rss"].as_f64().expect("before");
    assert!(before > 200.0 * MIB, "{cost:#}");
    let causes: Vec<&str> = cost["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["cause"].as_str())
        .collect();
    assert_eq!(causes, ["debugpy_loaded", "session_attached"], "{cost:#}");
    assert!(cost["steps_by_cause_bytes"]["session_attached"].as_f64() > Some(4.5 * MIB));
    assert!(cost["steps_by_cause_bytes"]["debugpy_loaded"].as_f64() > Some(MIB));
    println!("debugging cost: {cost:#}");
    let (_, page) = http_get(sidecar.http, "/");
    assert!(
        page.contains(", session attached</text>"),
        "step label missing"
    );

    // The figures the sidecar published, replayed through the alert rules: no alert.
    let mut minutes = growth.clone();
    minutes.resize(20, *growth.last().unwrap_or(&0.0));
    replay_through_alert_rules(&minutes, None);
    let _ = after;
    let attached = screenshot(&sidecar, "memory-attached-after-step");
    // The step in the app's chart, in pixels: the largest rise between two points after
    // the attach mark (y grows downwards).
    let (_, page) = http_get(sidecar.http, "/");
    let chart = page
        .split("<svg id=\"memory-chart\"")
        .nth(1)
        .and_then(|c| c.split("</svg>").next())
        .expect("app chart");
    let attach_x: f64 = chart
        .split("class=\"mark attach\" x1=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|x| x.parse().ok())
        .expect("attach mark");
    let points: Vec<(f64, f64)> = chart
        .split(" points=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("polyline")
        .split(' ')
        .filter_map(|xy| {
            let (x, y) = xy.split_once(',')?;
            Some((x.parse().ok()?, y.parse().ok()?))
        })
        .collect();
    let rise = points
        .windows(2)
        .filter(|w| w[0].0 >= attach_x - 1.0)
        .map(|w| w[0].1 - w[1].1)
        .fold(0.0, f64::max);
    println!("the 5 MiB step is {rise:.0} px high in a 300 px chart");
    // From zero, 5 MiB of about 240 would be 5 px.
    assert!(rise >= 20.0, "the step is {rise} px");
    println!("look at {} and {}", idle.display(), attached.display());

    // The session ends: an event with the app's memory around it; nothing given back.
    let before_end = sidecar.log.len();
    client.request("disconnect", json!({"terminateDebuggee": false}));
    sidecar
        .log
        .wait_from(before_end, SOON, |l| l.contains("session ended"))
        .unwrap_or_else(|| panic!("session did not end:\n{}", sidecar.log.all()));
    await_samples(&sidecar, sidecar.log.len(), 5);
    let cost = status(&sidecar)["memory"]["debugging_cost"].clone();
    let ended = cost["events"]
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .expect("events");
    assert_eq!(ended["cause"], "session_ended", "{cost:#}");
    let (b, a) = (
        ended["rss_before"].as_f64().expect("before"),
        ended["rss_after"].as_f64().expect("after"),
    );
    println!("session ended: {:.1} -> {:.1} MiB", b / MIB, a / MIB);
    assert!((a - b).abs() < MIB, "{ended}");
    assert!(
        metric(
            &sidecar,
            "dap_sidecar_target_memory_at_event_bytes{event=\"session_ended\"}"
        )
        .is_some()
    );
}

/// An app that really leaks 1 MiB every 2 s under debugpy: growth within the window,
/// and the figures replayed through the alert rules fire the alert.
#[test]
#[ignore = "real debugpy, promtool and headless Chromium: run by scripts/test.sh"]
fn a_leaking_app_shows_growth_within_the_window_and_fires_the_alert() {
    let mut app = App::prepare();
    app.launch_full(
        None,
        "127.0.0.1",
        "memory_app.py",
        &["--ballast", "150", "--leak", "1", "--every", "2"],
        "memory app ready",
    );
    let sidecar = sidecar(&app, "", LEAK_WINDOW);
    let first = sidecar
        .log
        .wait("memory sampled", SOON)
        .unwrap_or_else(|| panic!("no sample:\n{}", sidecar.log.all()));
    let started = Instant::now();
    drop(first);
    let shown = sidecar
        .log
        .wait_from(0, SOON, |l| {
            l.contains("memory sampled") && json_line(l)["growth"].as_f64() > Some(0.35 * MIB)
        })
        .unwrap_or_else(|| panic!("no growth shown:\n{}", sidecar.log.all()));
    let took = started.elapsed();
    println!(
        "growth shown {:.1} s after the first sample: {}",
        took.as_secs_f64(),
        json_line(&shown)["growth"]
    );
    // Within the window (plus a second for a loaded machine).
    assert!(
        took.as_secs_f64() < LEAK_WINDOW + 1.0,
        "took {took:?}; window {LEAK_WINDOW} s"
    );
    let from = sidecar.log.len();
    await_samples(&sidecar, from, 20);
    let growth: Vec<f64> = samples_from(&sidecar, from)
        .iter()
        .take(20)
        .filter_map(|s| s["growth"].as_f64())
        .collect();
    println!(
        "growth (MiB/s): {:?}",
        growth
            .iter()
            .map(|g| (g / MIB * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    assert_eq!(growth.len(), 20);
    assert!(
        growth.iter().all(|g| (0.3 * MIB..0.7 * MIB).contains(g)),
        "the real rate is 0.5 MiB/s: {growth:?}"
    );
    let s = status(&sidecar);
    println!("growth parts: {}", s["memory"]["growth"]["debuggee"]);
    replay_through_alert_rules(&growth, Some(17));
    screenshot(&sidecar, "memory-leaking");
}

/// The text log written to a file (as `kubectl logs` and log shippers see it) has no
/// terminal escape codes.
#[test]
#[ignore = "runs the sidecar binary: run by scripts/test.sh"]
fn the_text_log_in_a_file_has_no_escape_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        "port: 0\nhost: 127.0.0.1\nhttp:\n  port: 0\ntarget:\n  sample_interval: 100ms\nlog:\n  level: debug\n",
    )
    .expect("config");
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(common::sidecar_bin())
        .arg("--config")
        .arg(&config)
        .args(["--log-format", "text"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start sidecar");
    let deadline = Instant::now() + SOON;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // Bound, and sampling: levels, targets and fields have all been written.
        if text.contains("HTTP listener bound") && text.matches("memory sampled").count() >= 3 {
            break text;
        }
        assert!(Instant::now() < deadline, "no log lines:\n{text}");
        // Polling a file: there is no notification for another process's writes.
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains(" INFO "), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in the log file:\n{text:?}"
    );
}

/// The app in a cgroup of its own: its cgroup memory is read from the files.
#[test]
#[ignore = "root, a writable memory cgroup (v2, or v1 as on this dev machine), Python and promtool: run by scripts/test.sh"]
fn the_apps_cgroup_memory_is_read_when_visible() {
    let group = TestCgroup::create();
    group.limit(1 << 30);
    let app = app_in_cgroup(&group, &["--ballast", "64"]);
    let script = app.remote_root.join("memory_app.py");
    let sidecar = sidecar(&app, &format!("  match: '{}'\n", script.display()), 4.0);
    await_samples(&sidecar, 0, 3);
    let s = status(&sidecar);
    let cgroup = &s["memory"]["cgroup"];
    println!("{cgroup:#}");
    assert_eq!(cgroup["dir"].as_str(), Some(group.dir.to_str().unwrap()));
    let reported = cgroup["current"].as_f64().expect("current");
    let file = group.current() as f64;
    assert!(
        (reported - file).abs() <= file * 0.1,
        "reported {reported}, file {file}"
    );
    assert!(reported > 64.0 * MIB, "the ballast is in it: {reported}");
    assert!(cgroup["anon"].as_f64() > Some(60.0 * MIB), "{cgroup}");
    let current = metric(
        &sidecar,
        "dap_sidecar_target_cgroup_memory_bytes{kind=\"current\"}",
    )
    .expect("cgroup metric");
    assert!((current - file).abs() <= file * 0.1);
    assert_eq!(cgroup["max"].as_u64(), Some(1 << 30), "{cgroup}");
    assert_eq!(
        metric(&sidecar, "dap_sidecar_target_cgroup_memory_max_bytes"),
        Some(f64::from(1 << 30))
    );
    let (_, page) = http_get(sidecar.http, "/");
    assert!(page.contains(&format!("cgroup v{}", group.version)));
    assert!(page.contains("limit 1024.0 MiB"), "{page}");
    // The exposition with the cgroup series passes promtool.
    let (_, text) = http_get(sidecar.http, "/metrics");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed");
    std::io::Write::write_all(&mut check.stdin.take().expect("stdin"), text.as_bytes())
        .expect("write metrics");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// As in a container runtime: the app in a cgroup of its own (B), in its own cgroup and
/// mount namespaces with its cgroup mounted at `/sys/fs/cgroup`; the sidecar in a sibling
/// cgroup (A) and a cgroup namespace of its own, so the app's cgroup is outside the
/// sidecar's view (`/../B`) and only readable through the app's root.
#[test]
#[ignore = "root, a writable memory cgroup (v2, or v1 as on this dev machine), unshare (util-linux) and Python: run by scripts/test.sh"]
fn the_apps_cgroup_is_read_through_its_root_from_another_cgroup_namespace() {
    let app_group = TestCgroup::create_named("ctr-app");
    let sidecar_group = TestCgroup::create_named("ctr-sidecar");
    let mut app = App::prepare();
    let script = app.remote_root.join("memory_app.py");
    let mount = if app_group.version == 2 {
        "mount -t cgroup2 none /sys/fs/cgroup"
    } else {
        "mount -t tmpfs none /sys/fs/cgroup && mkdir /sys/fs/cgroup/memory && mount -t cgroup -o memory none /sys/fs/cgroup/memory"
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            r#"echo $$ > "$0/cgroup.procs" && exec unshare --cgroup --mount --fork sh -c '{mount} && exec "$0" "$@"' "$@""#
        ))
        .arg(&app_group.dir)
        .arg(python())
        .arg(&script)
        .args(["--ballast", "48"]);
    app.launch_command(cmd);
    assert!(
        app.stdout.wait("memory app ready", SOON).is_some(),
        "app did not start:\n{}",
        app.stdout.all()
    );
    let yaml = format!(
        "{}target:\n  sample_interval: 200ms\n  match: '{}'\nlog:\n  level: dap_sidecar=debug\n",
        upstream_yaml(app.port),
        script.display()
    );
    let group_dir = sidecar_group.dir.clone();
    let sidecar = Sidecar::start_with(&yaml, move |inner| {
        let mut wrapped = Command::new("sh");
        wrapped
            .arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec unshare --cgroup "$@""#)
            .arg(&group_dir)
            .arg(inner.get_program())
            .args(inner.get_args());
        wrapped.stdout(Stdio::null()).stderr(Stdio::piped());
        wrapped
    });
    await_samples(&sidecar, 0, 3);
    let s = status(&sidecar);
    let pid = s["target"]["debuggee"]["pid"].as_u64().expect("app found");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("app cgroup");
    println!("the app's cgroup as the test sees it: {own}");
    let cgroup = &s["memory"]["cgroup"];
    println!("{cgroup:#}");
    let dir = cgroup["dir"].as_str().expect("cgroup visible");
    assert!(
        dir.starts_with(&format!("/proc/{pid}/root/sys/fs/cgroup")),
        "read through the app's root: {dir}"
    );
    let reported = cgroup["current"].as_f64().expect("current");
    let file = app_group.current() as f64;
    assert!(
        (reported - file).abs() <= file * 0.1,
        "reported {reported}, file {file}"
    );
    assert!(reported > 48.0 * MIB, "{reported}");
}

/// A memory cgroup below the test's own, removed on drop (after its processes left).
struct TestCgroup {
    dir: PathBuf,
    version: u8,
}

impl TestCgroup {
    fn create() -> TestCgroup {
        Self::create_named("app")
    }

    fn create_named(tag: &str) -> TestCgroup {
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("own cgroup");
        let name = format!("dap-sidecar-test-{}-{tag}", std::process::id());
        // cgroup v2 (unified) first, then the v1 memory hierarchy.
        let v2 = own.lines().find_map(|l| l.strip_prefix("0::"));
        let v1 = own.lines().find_map(|l| {
            let (_, rest) = l.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then_some(path)
        });
        let candidates = [
            v2.map(|p| {
                (
                    PathBuf::from("/sys/fs/cgroup").join(p.trim_start_matches('/')),
                    2,
                )
            }),
            v1.map(|p| {
                (
                    PathBuf::from("/sys/fs/cgroup/memory").join(p.trim_start_matches('/')),
                    1,
                )
            }),
        ];
        for (parent, version) in candidates.into_iter().flatten() {
            let file = if version == 2 {
                "memory.current"
            } else {
                "memory.usage_in_bytes"
            };
            let dir = parent.join(&name);
            if std::fs::create_dir(&dir).is_ok() && dir.join(file).exists() {
                return TestCgroup { dir, version };
            }
            let _ = std::fs::remove_dir(&dir);
        }
        panic!("no writable memory cgroup below {own}");
    }

    fn limit(&self, bytes: u64) {
        let file = if self.version == 2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::write(self.dir.join(file), bytes.to_string()).expect("set the limit");
    }

    fn current(&self) -> u64 {
        let file = if self.version == 2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .expect("cgroup file")
            .trim()
            .parse()
            .expect("number")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The app is killed by its own drop, which runs first (declared later); wait for
        // the group to empty.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            // Retrying rmdir until the kernel has reaped the processes.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
