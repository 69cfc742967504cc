//! The relay benchmark: the same DAP workloads driven directly to an upstream, through
//! `socat` (the dumb-relay baseline) and through dap-sidecar, in one run. See
//! BENCHMARKS.md for the method and a real run's output.
//!
//! `cargo bench --bench relay` (or `bash scripts/bench.sh`) runs the full set;
//! `-- --quick` a short one (CI); `-- --no-debugpy` skips the real-debugpy part.
//!
//! # Layout
//!
//! - [`wire`]: blocking DAP framing with reused buffers.
//! - [`upstream`]: the fast fake upstream, answering from prebuilt bodies.
//! - [`client`]: the load generator's client (one request in flight).
//! - [`relays`]: starting direct/socat/sidecar and reading their `/proc` figures.
//! - [`workloads`]: small round trips, large responses, concurrent sessions, stackTrace.
//! - [`debugpy`]: real debugpy: direct, and through the sidecar with `tcp_nodelay` on
//!   and off.
//! - [`report`]: percentiles and the Markdown tables.

#[path = "../../tests/common/mod.rs"]
mod common;

mod client;
mod debugpy;
mod relays;
mod report;
mod upstream;
mod wire;
mod workloads;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use relays::{MODES, Relay};
use report::{Better, Row, percentile_us};
use workloads::{LOCAL_ROOT, Sizes};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` builds this too and runs it without `--bench`: compiling
    // is the check there; the figures come from `cargo bench` (scripts/bench.sh).
    if !args.iter().any(|a| a == "--bench") {
        println!("relay benchmark: run it with `cargo bench --bench relay` (scripts/bench.sh)");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let with_debugpy = !args.iter().any(|a| a == "--no-debugpy");
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let started = Instant::now();
    print_machine(quick);

    let upstream = upstream::start();
    let relays: Vec<Relay> = MODES
        .iter()
        .map(|&m| Relay::start(m, upstream, LOCAL_ROOT, Path::new(upstream::REMOTE_ROOT)))
        .collect();
    let sidecar = &relays[2];
    let idle_rss = sidecar.status_bytes("VmRSS");
    let mut rows = Vec::new();
    let mut cpu = Vec::new();
    let mut measure = |name: &str, rows_of: &mut dyn FnMut() -> Vec<Row>, rows: &mut Vec<Row>| {
        let before: Vec<_> = relays.iter().map(Relay::cpu).collect();
        rows.extend(rows_of());
        let after: Vec<_> = relays.iter().map(Relay::cpu).collect();
        let used = |i: usize| match (before[i], after[i]) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        cpu.push((
            name.to_owned(),
            used(1),
            used(2),
            relays[2].status_bytes("VmRSS"),
        ));
    };

    let latency_rows = |name: &str, mut samples: Vec<Vec<Duration>>| -> Vec<Row> {
        [50.0, 99.0]
            .iter()
            .map(|&p| Row {
                workload: name.to_owned(),
                metric: format!("p{p:.0}"),
                values: [0, 1, 2].map(|i| percentile_us(&mut samples[i], p)),
                unit: "µs",
                better: Better::Lower,
            })
            .collect()
    };

    measure(
        "small round trips",
        &mut || {
            let samples = workloads::rotate(&relays, sizes.rounds, |r| {
                workloads::round_trips(r, "threads", "{}", sizes.small, |_| {})
            });
            latency_rows("small round trip (`threads`)", samples)
        },
        &mut rows,
    );
    measure(
        "stackTrace",
        &mut || {
            let args = format!(
                r#"{{"threadId":1,"startFrame":0,"levels":{}}}"#,
                sizes.levels
            );
            let samples = workloads::rotate(&relays, sizes.rounds, |r| {
                workloads::round_trips(
                    r,
                    "stackTrace",
                    &args,
                    sizes.stack,
                    workloads::stack_check(r.mode),
                )
            });
            latency_rows(&format!("stackTrace, {} frames", sizes.levels), samples)
        },
        &mut rows,
    );
    for paths in [false, true] {
        for &(mib, count) in &sizes.large {
            if paths && mib != 16 {
                continue;
            }
            let name = format!(
                "{mib} MiB `variables`{}",
                if paths {
                    ", values with container paths"
                } else {
                    ""
                }
            );
            measure(
                &name.clone(),
                &mut || {
                    let totals = workloads::rotate(&relays, sizes.rounds, |r| {
                        vec![workloads::throughput(r, mib, count, paths)]
                    });
                    let rate = |i: usize| {
                        let bytes: u64 = totals[i].iter().map(|t| t.0).sum();
                        let time: Duration = totals[i].iter().map(|t| t.1).sum();
                        bytes as f64 / time.as_secs_f64() / (1 << 20) as f64
                    };
                    vec![Row {
                        workload: name.clone(),
                        metric: "throughput".into(),
                        values: [rate(0), rate(1), rate(2)],
                        unit: "MiB/s",
                        better: Better::Higher,
                    }]
                },
                &mut rows,
            );
        }
    }
    measure(
        "concurrent sessions",
        &mut || {
            let runs = workloads::rotate(&relays, sizes.rounds, |r| {
                vec![workloads::concurrent(r, sizes.sessions, sizes.per_session)]
            });
            let name = format!("{} concurrent sessions", sizes.sessions);
            let rate = |i: usize| {
                let n: usize = runs[i].iter().map(|c| c.round_trips.len()).sum();
                let wall: Duration = runs[i].iter().map(|c| c.wall).sum();
                n as f64 / wall.as_secs_f64()
            };
            let all =
                |i: usize, f: fn(&workloads::Concurrent) -> &Vec<Duration>| -> Vec<Duration> {
                    runs[i].iter().flat_map(|c| f(c).iter().copied()).collect()
                };
            let mut rt: Vec<Vec<Duration>> = (0..3).map(|i| all(i, |c| &c.round_trips)).collect();
            let mut setup: Vec<Vec<Duration>> = (0..3).map(|i| all(i, |c| &c.setup)).collect();
            vec![
                Row {
                    workload: name.clone(),
                    metric: "round trips/s".into(),
                    values: [rate(0), rate(1), rate(2)],
                    unit: "/s",
                    better: Better::Higher,
                },
                Row {
                    workload: name.clone(),
                    metric: "round trip p99".into(),
                    values: [0, 1, 2].map(|i| percentile_us(&mut rt[i], 99.0)),
                    unit: "µs",
                    better: Better::Lower,
                },
                Row {
                    workload: name,
                    metric: "session set-up p50 (connect, initialize, attach)".into(),
                    values: [0, 1, 2].map(|i| percentile_us(&mut setup[i], 50.0)),
                    unit: "µs",
                    better: Better::Lower,
                },
            ]
        },
        &mut rows,
    );
    report::print_table("Fake upstream (the relay is what is measured)", &rows);
    added_latency(&rows[0]);

    println!("\n### Relay process resources (fake-upstream workloads)\n");
    println!("| workload | socat CPU | sidecar CPU | sidecar RSS after |");
    println!("|---|---:|---:|---:|");
    for (name, socat, sidecar, rss) in &cpu {
        println!(
            "| {name} | {} | {} | {} |",
            ms(*socat),
            ms(*sidecar),
            mib(*rss)
        );
    }
    println!(
        "\nsidecar RSS: idle at start {}, peak (VmHWM) {}, after all sessions ended {}",
        mib(idle_rss),
        mib(sidecar.status_bytes("VmHWM")),
        mib(sidecar.status_bytes("VmRSS"))
    );
    drop(relays);

    if with_debugpy {
        debugpy::run(if quick { 5 } else { 100 }, 2);
    }
    println!(
        "\n(benchmark took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
}

fn added_latency(p50: &Row) {
    let [direct, socat, sidecar] = p50.values;
    println!(
        "\nAdded p50 latency over direct ({}): socat {:+.1} µs, sidecar {:+.1} µs",
        p50.workload,
        socat - direct,
        sidecar - direct
    );
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{} ms", d.as_millis()))
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    })
}

fn print_machine(quick: bool) {
    let sh = |cmd: &str| {
        Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    println!(
        "## dap-sidecar relay benchmark{}\n",
        if quick { " (--quick)" } else { "" }
    );
    println!("- machine: {} cores, {}", sh("nproc"), sh("uname -sr"));
    println!(
        "- cpu: {}",
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
    );
    println!(
        "- socat: {}",
        sh("socat -V 2>/dev/null | grep -m1 'socat version'")
    );
    println!("- sidecar: release build (bench profile), log level info, one mapping, token auth");
}
