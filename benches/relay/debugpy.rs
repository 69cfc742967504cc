//! The realism run: real debugpy (from PyPI, in the tests' venv), an app paused at a
//! breakpoint, and what a stepping user waits for. Three apps under plain
//! `python -m debugpy --listen`, side by side in one run:
//!
//! - **direct**: app A, reached directly, debugpy as it is (pydevd's socket without
//!   `TCP_NODELAY`);
//! - **sidecar, fix on**: app B through a sidecar with `tcp_nodelay: true`, which set
//!   the option on B's pydevd socket (checked on `/status` before measuring);
//! - **sidecar, fix off**: app C through a sidecar with `tcp_nodelay: false`;
//! - **direct, fix set**: app B reached directly, so the sidecar's own share shows.
//!
//! The sidecar with the fix also sets the option on the adapter's side of each client
//! connection to B (its own, and the direct client's); sessions to B wait for that.
//!
//! Workloads, per session: `stackTrace`, `evaluate`, `variables` (the top frame's locals)
//! round trips, and the step cycle as VS Code does it: `next`, wait for `stopped`, then
//! `threads`, `stackTrace`, `scopes`, `variables`, one after the other.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::dap::DapClient;
use super::common::{App, SOON, Sidecar, TOKEN, http_get};
use super::report::percentile_us;

/// Straight-line statements in the stepped function: more than any run steps over.
const LINES: usize = 1000;

/// The app: a function of [`LINES`] statements called in a loop; the breakpoint is on
/// its first line, and each `next` moves one line.
fn script() -> String {
    let mut s = String::from("import time\n\n\ndef work(n):\n    x = n  # BREAK\n");
    for _ in 0..LINES {
        s.push_str("    x += 1\n");
    }
    s.push_str("    return x\n\n\nprint('steps started', flush=True)\nn = 0\n");
    s.push_str("while True:\n    n = work(n)\n    time.sleep(0.02)\n");
    s
}

/// The breakpoint's line in [`script`].
const BREAK_LINE: i64 = 5;

/// One column of the table.
struct Column {
    name: &'static str,
    addr: SocketAddr,
    /// Through a sidecar (token, mapped paths) or straight to debugpy.
    sidecar: bool,
    /// The HTTP address of the sidecar that fixes this app, if one does: a session
    /// waits until it has set the option on the adapter's side of the connection too.
    fixer: Option<SocketAddr>,
}

/// One app under debugpy running [`script`].
fn app() -> App {
    let mut app = App::prepare();
    for root in [&app.remote_root, &app.local_root] {
        std::fs::write(root.join("steps.py"), script()).expect("write steps.py");
    }
    app.launch_script(None, "steps.py", "steps started");
    app
}

/// A sidecar in front of `app` (token, one mapping), with `tcp_nodelay` as given.
fn sidecar(app: &App, nodelay: bool) -> Sidecar {
    Sidecar::start(&format!(
        "upstream: 127.0.0.1:{}\ntcp_nodelay: {nodelay}\nauth:\n  token: {TOKEN}\n\
         path_mappings:\n  - local_root: '{}'\n    remote_root: '{}'\n",
        app.port,
        app.local_root.display(),
        app.remote_root.display()
    ))
}

/// Waits until the `tcp_nodelay` of the `/status` at `http` satisfies `done`.
fn wait_nodelay(http: SocketAddr, done: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + SOON;
    loop {
        let (_, body) = http_get(http, "/status");
        let status: Value = serde_json::from_str(&body).unwrap_or_default();
        if done(&status["tcp_nodelay"]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tcp_nodelay not as expected: {:#}",
            status["tcp_nodelay"]
        );
        std::thread::sleep(Duration::from_millis(50)); // polling a condition with a deadline
    }
}

/// Which samples a table row shows.
type Pick = fn(&mut Samples) -> &mut Vec<Duration>;

/// Samples of one session, by workload.
#[derive(Default)]
struct Samples {
    stack: Vec<Duration>,
    evaluate: Vec<Duration>,
    variables: Vec<Duration>,
    step: Vec<Duration>,
    /// The step cycle's parts: `next` sent to `stopped` received, then each request.
    parts: [Vec<Duration>; 5],
}

fn timed(client: &mut DapClient, command: &str, args: Value, into: &mut Vec<Duration>) -> Value {
    let started = Instant::now();
    let r = client.request(command, args);
    into.push(started.elapsed());
    assert_eq!(r["success"], true, "{r}");
    r
}

/// The locals' `variablesReference` of frame `frame`.
fn locals(client: &mut DapClient, frame: i64) -> i64 {
    let scopes = client.request("scopes", json!({"frameId": frame}));
    scopes["body"]["scopes"][0]["variablesReference"]
        .as_i64()
        .expect("variablesReference")
}

/// One session: attach, stop at the breakpoint, `n` of each request, `n` step cycles,
/// disconnect.
fn session(column: &Column, root: &str, n: usize, out: &mut Samples) {
    let path = format!("{root}/steps.py");
    let extra = if column.sidecar {
        json!({"token": TOKEN})
    } else {
        json!({})
    };
    let mut client = DapClient::connect(column.addr);
    client.attach_with_breakpoint(extra, &path, BREAK_LINE);
    let (thread, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], path.as_str(), "{}", column.name);
    if let Some(http) = column.fixer {
        wait_nodelay(http, |s| s["adapter_client_sockets"].as_u64() >= Some(1));
    }
    let frame = frame["id"].as_i64().expect("frame id");
    let reference = locals(&mut client, frame);
    for _ in 0..n {
        timed(
            &mut client,
            "stackTrace",
            json!({"threadId": thread}),
            &mut out.stack,
        );
        timed(
            &mut client,
            "evaluate",
            json!({"expression": "n", "frameId": frame, "context": "repl"}),
            &mut out.evaluate,
        );
        let r = timed(
            &mut client,
            "variables",
            json!({"variablesReference": reference}),
            &mut out.variables,
        );
        assert!(
            r["body"]["variables"]
                .as_array()
                .is_some_and(|v| !v.is_empty())
        );
    }
    // Breakpoints off, so that every `next` stops on the next line of work().
    client.request(
        "setBreakpoints",
        json!({"source": {"path": path}, "breakpoints": []}),
    );
    for _ in 0..n {
        let started = Instant::now();
        let mut lap = started;
        let mut part = |i: usize, parts: &mut [Vec<Duration>; 5]| {
            let now = Instant::now();
            parts[i].push(now - lap);
            lap = now;
        };
        let next = client.send("next", json!({"threadId": thread}));
        assert_eq!(client.response(next, SOON)["success"], true);
        client.event("stopped", SOON).expect("stopped after next");
        part(0, &mut out.parts);
        client.request("threads", json!({}));
        part(1, &mut out.parts);
        let trace = client.request("stackTrace", json!({"threadId": thread, "levels": 20}));
        part(2, &mut out.parts);
        let top = trace["body"]["stackFrames"][0]["id"]
            .as_i64()
            .expect("frame id");
        let reference = locals(&mut client, top);
        part(3, &mut out.parts);
        let vars = client.request("variables", json!({"variablesReference": reference}));
        part(4, &mut out.parts);
        out.step.push(started.elapsed());
        assert_eq!(vars["success"], true, "{vars}");
    }
    let r = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(r["success"], true, "{r}");
    assert!(
        client.closed(SOON),
        "{}: debugpy did not close",
        column.name
    );
    client.history.clear();
}

/// Runs the comparison (`n` of each workload per session, `rounds` rotations over the
/// columns) and prints its table.
pub fn run(n: usize, rounds: usize) {
    let (a, b, c) = (app(), app(), app());
    let fixed = sidecar(&b, true);
    let off = sidecar(&c, false);
    wait_nodelay(fixed.http, |s| s["reason"] == "set_by_sidecar");
    wait_nodelay(off.http, |s| s["reason"] == "disabled");
    let direct = |app: &App| SocketAddr::from(([127, 0, 0, 1], app.port));
    let columns = [
        (
            Column {
                name: "direct",
                addr: direct(&a),
                sidecar: false,
                fixer: None,
            },
            a.remote_root.display().to_string(),
        ),
        (
            Column {
                name: "sidecar, fix on",
                addr: fixed.addr,
                sidecar: true,
                fixer: Some(fixed.http),
            },
            b.local_root.display().to_string(),
        ),
        (
            Column {
                name: "sidecar, fix off",
                addr: off.addr,
                sidecar: true,
                fixer: None,
            },
            c.local_root.display().to_string(),
        ),
        (
            Column {
                name: "direct, fix set",
                addr: direct(&b),
                sidecar: false,
                fixer: Some(fixed.http),
            },
            b.remote_root.display().to_string(),
        ),
    ];
    let mut samples: Vec<Samples> = columns.iter().map(|_| Samples::default()).collect();
    for _ in 0..rounds {
        for ((column, root), out) in columns.iter().zip(samples.iter_mut()) {
            session(column, root, n, out);
        }
    }
    println!("\n### Real debugpy: `TCP_NODELAY` on pydevd's socket (app paused at a breakpoint)\n");
    println!(
        "{n} of each per session, {rounds} sessions per column, rotating. direct: debugpy as it \
         is; sidecar, fix on: `tcp_nodelay: true`, set by the sidecar (pidfd_getfd); sidecar, \
         fix off: `tcp_nodelay: false`; direct, fix set: the fixed app without the sidecar.\n"
    );
    println!(
        "| workload | metric | direct | sidecar, fix on | sidecar, fix off | direct, fix set | \
         direct / fix on | sidecar's share (fix on - direct, fix set) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let picks: [(&str, Pick); 4] = [
        ("`stackTrace`", |s| &mut s.stack),
        ("`evaluate`", |s| &mut s.evaluate),
        ("`variables`", |s| &mut s.variables),
        (
            "step cycle (`next`, `stopped`, `threads`, `stackTrace`, `scopes`, `variables`)",
            |s| &mut s.step,
        ),
    ];
    for (name, pick) in picks {
        for p in [50.0, 99.0] {
            let v: Vec<f64> = samples
                .iter_mut()
                .map(|s| percentile_us(pick(s), p))
                .collect();
            println!(
                "| {name} | p{p:.0} | {} | {} | {} | {} | {:.0}x | {:+.0} µs |",
                ms(v[0]),
                ms(v[1]),
                ms(v[2]),
                ms(v[3]),
                v[0] / v[1],
                v[1] - v[3],
            );
        }
    }
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.name).collect();
    print_parts(&names, &mut samples);
}

/// The step cycle's parts, p50, per column: where its time goes.
fn print_parts(names: &[&str], samples: &mut [Samples]) {
    println!("\nThe step cycle's parts (p50):\n");
    println!("| part | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    let parts = [
        "`next` sent to `stopped` received",
        "`threads`",
        "`stackTrace`",
        "`scopes`",
        "`variables`",
    ];
    for (i, part) in parts.iter().enumerate() {
        let cells: Vec<String> = samples
            .iter_mut()
            .map(|s| ms(percentile_us(&mut s.parts[i], 50.0)))
            .collect();
        println!("| {part} | {} |", cells.join(" | "));
    }
}

fn ms(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}
