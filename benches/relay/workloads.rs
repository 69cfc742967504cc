//! The fake-upstream workloads. Each runs every mode in turn, `rounds` times over, so
//! that slow drifts of the machine spread evenly over the modes.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use super::client::Client;
use super::common::TOKEN;
use super::relays::{Mode, Relay};
use super::upstream::REMOTE_ROOT;

/// The IDE-side root the sidecar maps [`REMOTE_ROOT`] to.
pub const LOCAL_ROOT: &str = "/home/dev/project";

/// How big each workload is.
pub struct Sizes {
    /// Rotations over the modes.
    pub rounds: usize,
    /// Small round trips per mode and round.
    pub small: usize,
    /// stackTrace round trips per mode and round.
    pub stack: usize,
    /// Frames per stackTrace.
    pub levels: usize,
    /// (MiB per response, responses per mode and round) for the large workload.
    pub large: Vec<(usize, usize)>,
    /// Concurrent sessions.
    pub sessions: usize,
    /// Round trips per concurrent session.
    pub per_session: usize,
}

impl Sizes {
    /// The figures in BENCHMARKS.md.
    pub fn full() -> Sizes {
        Sizes {
            rounds: 4,
            small: 5_000,
            stack: 500,
            levels: 500,
            large: vec![(1, 32), (4, 8), (16, 4)],
            sessions: 64,
            per_session: 500,
        }
    }

    /// A short run that proves the benchmark works (CI).
    pub fn quick() -> Sizes {
        Sizes {
            rounds: 2,
            small: 500,
            stack: 50,
            levels: 500,
            large: vec![(1, 4), (16, 1)],
            sessions: 16,
            per_session: 50,
        }
    }
}

fn fail(mode: Mode, what: &str, e: std::io::Error) -> ! {
    panic!("{} / {what}: {e}", mode.name())
}

/// Times `n` sequential requests on one session (after a warm-up of n/10), and checks
/// the last answer with `check`.
pub fn round_trips(
    relay: &Relay,
    command: &str,
    arguments: &str,
    n: usize,
    check: impl Fn(&[u8]),
) -> Vec<Duration> {
    let what = format!("{command} round trips");
    let (mut client, _) =
        Client::attach(relay.addr, TOKEN).unwrap_or_else(|e| fail(relay.mode, &what, e));
    for _ in 0..n / 10 {
        client
            .request(command, arguments)
            .unwrap_or_else(|e| fail(relay.mode, &what, e));
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        client
            .request(command, arguments)
            .unwrap_or_else(|e| fail(relay.mode, &what, e));
        samples.push(started.elapsed());
    }
    check(client.last());
    client
        .disconnect()
        .unwrap_or_else(|e| fail(relay.mode, &what, e));
    samples
}

/// Rotates `run` over the relays `rounds` times, concatenating each relay's results.
pub fn rotate<T>(
    relays: &[Relay],
    rounds: usize,
    mut run: impl FnMut(&Relay) -> Vec<T>,
) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = relays.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, relay) in relays.iter().enumerate() {
            out[i].extend(run(relay));
        }
    }
    out
}

/// Checks that a stackTrace answer carries the paths each mode should show: container
/// paths without the sidecar, IDE paths through it (so the rewrite is what was timed).
pub fn stack_check(mode: Mode) -> impl Fn(&[u8]) {
    move |body: &[u8]| {
        let text = String::from_utf8_lossy(body);
        let (want, not) = match mode {
            Mode::Sidecar => (LOCAL_ROOT, REMOTE_ROOT),
            _ => (REMOTE_ROOT, LOCAL_ROOT),
        };
        assert!(
            text.contains(want) && !text.contains(not),
            "{}: stackTrace paths not as expected",
            mode.name()
        );
    }
}

/// Large responses: bytes per second over `count` answers of `mib` MiB on one session.
pub fn throughput(relay: &Relay, mib: usize, count: usize, paths: bool) -> (u64, Duration) {
    let what = format!("{mib} MiB variables");
    let args = format!(
        r#"{{"variablesReference":1,"benchBytes":{},"benchPaths":{paths}}}"#,
        mib << 20
    );
    let (mut client, _) =
        Client::attach(relay.addr, TOKEN).unwrap_or_else(|e| fail(relay.mode, &what, e));
    client
        .request("variables", &args)
        .unwrap_or_else(|e| fail(relay.mode, &what, e));
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..count {
        bytes += client
            .request("variables", &args)
            .unwrap_or_else(|e| fail(relay.mode, &what, e)) as u64;
    }
    let elapsed = started.elapsed();
    client
        .disconnect()
        .unwrap_or_else(|e| fail(relay.mode, &what, e));
    (bytes, elapsed)
}

/// What one mode's concurrent run gave.
pub struct Concurrent {
    /// Session set-up times (connect, initialize, attach).
    pub setup: Vec<Duration>,
    /// Every round trip's time.
    pub round_trips: Vec<Duration>,
    /// From the start signal until the last session finished.
    pub wall: Duration,
}

/// `sessions` sessions at once, each doing `per_session` small round trips after all
/// have attached.
pub fn concurrent(relay: &Relay, sessions: usize, per_session: usize) -> Concurrent {
    let barrier = Arc::new(Barrier::new(sessions + 1));
    let (addr, mode) = (relay.addr, relay.mode);
    let workers: Vec<_> = (0..sessions)
        .map(|_| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let what = "concurrent sessions";
                let (mut client, setup) =
                    Client::attach(addr, TOKEN).unwrap_or_else(|e| fail(mode, what, e));
                barrier.wait();
                let mut samples = Vec::with_capacity(per_session);
                for _ in 0..per_session {
                    let started = Instant::now();
                    client
                        .request("threads", "{}")
                        .unwrap_or_else(|e| fail(mode, what, e));
                    samples.push(started.elapsed());
                }
                client.disconnect().unwrap_or_else(|e| fail(mode, what, e));
                (setup, samples)
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut out = Concurrent {
        setup: Vec::new(),
        round_trips: Vec::new(),
        wall: Duration::ZERO,
    };
    for worker in workers {
        let (setup, samples) = worker.join().expect("session thread");
        out.setup.push(setup);
        out.round_trips.extend(samples);
    }
    out.wall = started.elapsed();
    out
}
