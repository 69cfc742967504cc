//! The realism run: the fixture app under real debugpy (from PyPI, in the tests' venv),
//! stopped at a breakpoint, reached directly, through socat and through the sidecar.
//! Measures what a stepping user waits for: `stackTrace` and `evaluate` round trips.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::dap::DapClient;
use super::common::{App, SOON, TOKEN, break_line};
use super::relays::{MODES, Mode, Relay};
use super::report::{Better, Row, percentile_us};

/// Attaches through each mode in turn (`rounds` rotations), pauses the app, and times
/// `n` stackTrace and `n` evaluate requests per mode and round.
pub fn run(n: usize, rounds: usize) -> Vec<Row> {
    let app = App::start();
    let relays: Vec<Relay> = MODES
        .iter()
        .map(|&m| {
            Relay::start(
                m,
                app.port,
                &app.local_root.display().to_string(),
                &app.remote_root,
            )
        })
        .collect();
    let mut stack: Vec<Vec<Duration>> = vec![Vec::new(); 3];
    let mut eval: Vec<Vec<Duration>> = vec![Vec::new(); 3];
    for _ in 0..rounds {
        for (i, relay) in relays.iter().enumerate() {
            let (extra, path) = match relay.mode {
                Mode::Sidecar => (json!({"token": TOKEN}), app.local_main()),
                _ => (
                    json!({}),
                    app.remote_root.join("main.py").display().to_string(),
                ),
            };
            let mut client = DapClient::connect(relay.addr);
            client.attach_with_breakpoint(extra, &path, break_line());
            let (thread, frame) = client.stopped_frame();
            let source = frame["source"]["path"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert_eq!(
                source,
                path,
                "{}: the top frame's path as the IDE sees it",
                relay.mode.name()
            );
            let frame = frame["id"].as_i64().expect("frame id");
            for _ in 0..n {
                let started = Instant::now();
                let r = client.request("stackTrace", json!({"threadId": thread}));
                stack[i].push(started.elapsed());
                assert_eq!(r["success"], true, "{r}");
                let started = Instant::now();
                let r = client.request(
                    "evaluate",
                    json!({"expression": "n", "frameId": frame, "context": "repl"}),
                );
                eval[i].push(started.elapsed());
                assert_eq!(r["success"], true, "{r}");
            }
            let r = client.request("disconnect", json!({"terminateDebuggee": false}));
            assert_eq!(r["success"], true, "{r}");
            assert!(
                client.closed(SOON),
                "{}: debugpy did not close after disconnect",
                relay.mode.name()
            );
        }
    }
    let mut rows = Vec::new();
    for (name, samples) in [
        ("debugpy stackTrace", &mut stack),
        ("debugpy evaluate", &mut eval),
    ] {
        for p in [50.0, 99.0] {
            let values = [0, 1, 2].map(|i| percentile_us(&mut samples[i], p));
            rows.push(Row {
                workload: name.to_owned(),
                metric: format!("p{p:.0}"),
                values,
                unit: "µs",
                better: Better::Lower,
            });
        }
    }
    rows
}
