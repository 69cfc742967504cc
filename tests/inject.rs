//! Attach on demand end to end: an app started as plain `python3.14 main.py` in the
//! Debian sid root (no debugpy anywhere in it), the sidecar on the host with
//! `inject.mode: auto` and a real DAP client attaching with the token; and each refusal
//! with its message, log line and metric label. Needs root (chroot, namespaces) and the
//! root and wheel of `scripts/py314-root.sh`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::dap::DapClient;
use common::py314::{RootApp, debugpy_site};
use common::{SOON, Sidecar, TOKEN, break_line, free_port, http_get};
use serde_json::json;

/// The sidecar's config for `app`: upstream on a free port, injection on, the app by pid.
fn config(app: &RootApp, port: u16, extra: &str) -> String {
    format!(
        "upstream: 127.0.0.1:{port}\nupstream_timeout: 20s\nauth:\n  token: {TOKEN}\ntarget:\n  pid: {}\n  sample_interval: 1s\npath_mappings:\n  - local_root: '{}'\n    remote_root: '{}'\ninject:\n  mode: auto\n  debugpy: '{}'\n{extra}",
        app.pid(),
        app.app.local_root.display(),
        app.inside,
        debugpy_site().display(),
    )
}

/// A metric's value in `/metrics` text (0 when absent).
fn metric(sidecar: &Sidecar, series: &str) -> f64 {
    let (_, text) = http_get(sidecar.http, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// One debug session: attach with the token, stop at the breakpoint, evaluate,
/// continue, disconnect. Returns the client's history as text (for console output).
fn debug_once(sidecar: &Sidecar, app: &RootApp) -> String {
    let mut client = DapClient::connect(sidecar.addr);
    let bps =
        client.attach_with_breakpoint(json!({"token": TOKEN}), &app.local_main(), break_line());
    assert_eq!(bps["body"]["breakpoints"][0]["verified"], true, "{bps}");
    let (thread, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main(), "{frame}");
    assert_eq!(frame["line"], break_line());
    let id = frame["id"].as_i64().expect("frame id");
    let n: i64 = client.evaluate("n", id).parse().expect("n");
    assert_eq!(client.evaluate("n * 10", id), (n * 10).to_string());
    let cleared = client.request(
        "setBreakpoints",
        json!({"source": {"path": app.local_main()}, "breakpoints": []}),
    );
    assert_eq!(cleared["success"], true, "{cleared}");
    let cont = client.request("continue", json!({"threadId": thread}));
    assert_eq!(cont["success"], true, "{cont}");
    assert!(
        app.app.wait_tick_above(n + 3, SOON).is_some(),
        "app did not continue"
    );
    let bye = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(bye["success"], true, "{bye}");
    assert!(client.closed(SOON), "not closed after disconnect");
    format!("{:?}", client.history)
}

#[test]
#[ignore = "needs root and the sid root with python3.14: run by scripts/test.sh"]
fn a_plain_python_3_14_app_is_attached_on_demand() {
    let mut app = RootApp::prepare();
    app.launch("main.py", &[], &[], "app started");
    let port = free_port();
    let sidecar = Sidecar::start(&config(&app, port, ""));

    let first = debug_once(&sidecar, &app);
    assert!(
        first.contains("started debugpy in the app"),
        "no console line: {first}"
    );
    let started = sidecar
        .log
        .wait("debugpy started in the app on demand", SOON)
        .unwrap_or_else(|| panic!("{}", sidecar.log.all()));
    let line: serde_json::Value = serde_json::from_str(&started).expect("JSON log line");
    eprintln!("injection to debugpy listening: {} ms", line["took_ms"]);
    // The injection is marked where memory is shown, with the growth since.
    assert!(metric(&sidecar, "dap_sidecar_injection_timestamp_seconds") > 0.0);
    let before = metric(
        &sidecar,
        "dap_sidecar_target_resident_memory_at_injection_bytes",
    );
    assert!(before > 1e6, "RSS before injection: {before}");
    let deadline = std::time::Instant::now() + SOON;
    let injection = loop {
        let (_, body) = http_get(sidecar.http, "/status");
        let status: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
        let injection = status["injection"].clone();
        if injection["growth_since_bytes"].is_i64() || std::time::Instant::now() > deadline {
            break injection;
        }
        std::thread::sleep(Duration::from_millis(200)); // polling /status for a sample
    };
    assert_eq!(injection["pid"], app.pid(), "{injection}");
    assert_eq!(
        injection["resident_before_bytes"].as_f64(),
        Some(before),
        "{injection}"
    );
    let growth = injection["growth_since_bytes"]
        .as_i64()
        .expect("growth sampled");
    // The injected debugpy gets the TCP_NODELAY fix too (the sidecar has ptrace rights).
    let deadline = std::time::Instant::now() + SOON;
    let nodelay = loop {
        let (_, body) = http_get(sidecar.http, "/status");
        let status: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
        let nodelay = status["tcp_nodelay"].clone();
        if nodelay["active"] == true || std::time::Instant::now() > deadline {
            break nodelay;
        }
        std::thread::sleep(Duration::from_millis(200)); // polling /status for a scan
    };
    assert_eq!(nodelay["active"], true, "{nodelay}");
    eprintln!("tcp_nodelay for the injected debugpy: {nodelay}");
    let (_, page) = http_get(sidecar.http, "/");
    assert!(
        page.contains("debugpy started in the app on demand") && page.contains("MiB since"),
        "the page does not show the injection"
    );
    eprintln!(
        "app RSS before injection {:.1} MB, growth since {:.1} MB",
        before / 1e6,
        growth as f64 / 1e6
    );
    // The app keeps running after the session.
    let ticks = app.output().len();
    assert!(
        app.output()
            .wait_from(ticks, SOON, |l| l.starts_with("tick "))
            .is_some(),
        "app stopped after disconnect"
    );

    // A second session reuses the running debugpy: no second injection.
    let second = debug_once(&sidecar, &app);
    assert!(!second.contains("started debugpy in the app"), "{second}");
    assert_eq!(
        metric(
            &sidecar,
            "dap_sidecar_injections_total{result=\"injected\"}"
        ),
        1.0
    );
    assert_eq!(
        sidecar
            .log
            .all()
            .matches("debugpy started in the app on demand")
            .count(),
        1
    );
    let ticks = app.output().len();
    assert!(
        app.output()
            .wait_from(ticks, SOON, |l| l.starts_with("tick "))
            .is_some(),
        "app stopped after the second session"
    );
    // The app's own environment never had debugpy: the copy came from the sidecar.
    let own = Command::new("chroot")
        .arg(app.root())
        .args(["python3.14", "-c", "import debugpy"])
        .output()
        .expect("chroot python3.14");
    assert!(
        !own.status.success(),
        "the sid root must not have debugpy of its own"
    );
}

#[test]
#[ignore = "needs root and the sid root with python3.14: run by scripts/test.sh"]
fn an_interpreter_in_libpython_is_attached_on_demand() {
    // `python3.14-shared` is a PIE launcher whose interpreter, `.PyRuntime` included, is
    // Debian's libpython3.14.so, as in the official python:3.14 images.
    let mut app = RootApp::prepare();
    app.launch_with(
        "/usr/local/bin/python3.14-shared",
        "main.py",
        &[],
        &[],
        "app started",
    );
    let sidecar = Sidecar::start(&config(&app, free_port(), ""));
    let first = debug_once(&sidecar, &app);
    assert!(
        first.contains("started debugpy in the app"),
        "no console line: {first}"
    );
    let ticks = app.output().len();
    assert!(
        app.output()
            .wait_from(ticks, SOON, |l| l.starts_with("tick "))
            .is_some(),
        "app stopped after disconnect"
    );
}

/// Attaches once and expects a refusal; returns its message.
fn refused(sidecar: &Sidecar) -> String {
    let mut client = DapClient::connect(sidecar.addr);
    let init = client.initialize();
    assert_eq!(init["success"], true, "{init}");
    let seq = client.attach(json!({"token": TOKEN}));
    let reply = client.response(seq, Duration::from_secs(60));
    assert_eq!(reply["success"], false, "{reply}");
    reply["message"].as_str().expect("message").to_owned()
}

/// Checks a refusal's message, log line and metric label.
fn assert_refusal(sidecar: &Sidecar, message: &str, label: &str, says: &[&str]) {
    eprintln!("refusal {label}: {message}");
    for part in says {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
    assert!(
        sidecar
            .log
            .wait_from(0, SOON, |l| l.contains("attach on demand refused")
                && l.contains(label))
            .is_some(),
        "{}",
        sidecar.log.all()
    );
    let series = format!("dap_sidecar_injections_total{{result=\"{label}\"}}");
    assert_eq!(metric(sidecar, &series), 1.0, "{series}");
}

#[test]
#[ignore = "needs root and the sid root with python3.14: run by scripts/test.sh"]
fn remote_debugging_disabled_is_refused() {
    let mut app = RootApp::prepare();
    app.launch(
        "main.py",
        &[("PYTHON_DISABLE_REMOTE_DEBUG", "1")],
        &[],
        "app started",
    );
    let sidecar = Sidecar::start(&config(&app, free_port(), ""));
    let message = refused(&sidecar);
    assert_refusal(
        &sidecar,
        &message,
        "remote_debug_disabled",
        &[
            "remote debugging disabled",
            "PYTHON_DISABLE_REMOTE_DEBUG",
            "-X disable-remote-debug",
        ],
    );
    assert!(app.app.wait_tick_above(0, SOON).is_some());
}

#[test]
#[ignore = "needs root and the sid root with python3.14: run by scripts/test.sh"]
fn a_main_thread_that_never_reaches_bytecode_is_reported() {
    let mut app = RootApp::prepare();
    app.write(
        "sleeper.py",
        "import time\nprint('sleeping', flush=True)\ntime.sleep(3600)\n",
    );
    app.launch("sleeper.py", &[], &[], "sleeping");
    let sidecar = Sidecar::start(&config(&app, free_port(), "  timeout: 2s\n"));
    let message = refused(&sidecar);
    assert_refusal(
        &sidecar,
        &message,
        "script_not_run",
        &[
            "did not run the attach script within 2s",
            "main thread",
            "sleeping in a long call",
        ],
    );
}

#[test]
#[ignore = "needs root and the sid root with python3.14: run by scripts/test.sh"]
fn no_target_is_refused() {
    let mut app = RootApp::prepare();
    app.launch("main.py", &[], &[], "app started");
    let yaml = config(&app, free_port(), "").replace(
        &format!("  pid: {}\n", app.pid()),
        "  match: no-such-app-anywhere-here\n",
    );
    let sidecar = Sidecar::start(&yaml);
    let message = refused(&sidecar);
    assert_refusal(
        &sidecar,
        &message,
        "no_target",
        &["no Python process found", "target.pid"],
    );
}

#[test]
#[ignore = "needs Debian 12's python3.11 on the host: run by scripts/test.sh"]
fn an_older_python_is_refused_with_its_version() {
    let mut app = RootApp::prepare();
    // The same app run by the host's Python 3.11, outside the root.
    let mut cmd = Command::new("/usr/bin/python3.11");
    cmd.arg("-u").arg(app.app.remote_root.join("main.py"));
    app.app.launch_command(cmd);
    assert!(app.output().wait("app started", SOON).is_some());
    let sidecar = Sidecar::start(&config(&app, free_port(), ""));
    let message = refused(&sidecar);
    assert_refusal(
        &sidecar,
        &message,
        "python_too_old",
        &["Python 3.11", "Python 3.14 or later", "dap-sidecar launch"],
    );
}

#[test]
#[ignore = "needs root (a sidecar as another uid against a root app): run by scripts/test.sh"]
fn a_sidecar_without_ptrace_rights_is_refused() {
    let mut app = RootApp::prepare();
    app.launch("main.py", &[], &[], "app started");
    // The sidecar as nobody: its config file (0600, root's) made readable first.
    let sidecar = Sidecar::start_with(&config(&app, free_port(), ""), |cmd| {
        let config = cmd
            .get_args()
            .skip_while(|a| *a != "--config")
            .nth(1)
            .expect("--config")
            .to_owned();
        let mut wrapped = Command::new("sh");
        wrapped
            .args(["-c", r#"chmod a+r "$0" && exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@""#])
            .arg(&config)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        wrapped
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        wrapped
    });
    let message = refused(&sidecar);
    assert_refusal(
        &sidecar,
        &message,
        "no_ptrace_rights",
        &[
            "no permission to attach",
            "SYS_PTRACE",
            "cap_add",
            "securityContext",
            "ptrace_scope",
        ],
    );
}
