//! `TCP_NODELAY` on pydevd's connection to debugpy's adapter (src/nodelay/), against
//! real debugpy 1.8.22 and a real DAP client:
//!
//! - an app under plain `python -m debugpy --listen`: `stackTrace` p50 through the
//!   sidecar at least 10x lower than directly to debugpy before the sidecar came; the
//!   option set on pydevd's socket and on no other socket of the app (which holds a TCP
//!   connection of its own);
//! - an app under `dap-sidecar launch`: the bootstrap set the option before the sidecar
//!   ran, and `stackTrace` p50 through the sidecar is at least 10x lower than directly
//!   to an app under plain debugpy;
//! - a sidecar without the rights (not root, the app root): `/status` and the metric say
//!   "not applied" and why, and debugging works all the same.
//!
//! The sockets are inspected from the test itself, by duplicating the app's fds with
//! `pidfd_getfd` and reading the option (the test runs as root, like CI).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dap::DapClient;
use common::{
    App, SOON, Sidecar, break_line, http_get, mapping_yaml, python, sidecar_bin, upstream_yaml,
};
use serde_json::{Value, json};

/// `stackTrace` round trips per measurement (each is about 44 ms without the fix).
const ROUND_TRIPS: usize = 25;

/// One TCP socket of a process, seen through a duplicate of its fd.
#[derive(Debug)]
struct Socket {
    fd: i32,
    local: SocketAddr,
    peer: Option<SocketAddr>,
    nodelay: bool,
}

/// Every TCP socket `pid` holds, with `TCP_NODELAY` read from a duplicate.
fn tcp_sockets_of(pid: u32) -> Vec<Socket> {
    use rustix::net::{SocketType, sockopt};
    use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};
    let pidfd = pidfd_open(Pid::from_raw(pid as i32).expect("pid"), PidfdFlags::empty())
        .expect("pidfd_open");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fds") {
        let entry = entry.expect("fd entry");
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let fd: i32 = entry.file_name().to_string_lossy().parse().expect("fd");
        let Ok(dup) = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()) else {
            continue; // closed meanwhile
        };
        if sockopt::socket_type(&dup).ok() != Some(SocketType::STREAM) {
            continue;
        }
        let addr = |a: Option<rustix::net::SocketAddrAny>| {
            a.and_then(|a| SocketAddr::try_from(a).ok())
                .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
        };
        let Some(local) = addr(rustix::net::getsockname(&dup).ok()) else {
            continue; // a Unix socket
        };
        out.push(Socket {
            fd,
            local,
            peer: addr(rustix::net::getpeername(&dup).ok().flatten()),
            nodelay: sockopt::tcp_nodelay(&dup).expect("getsockopt"),
        });
    }
    out
}

/// `stackTrace` round-trip times: attaches to `addr` with a breakpoint in main.py at
/// `path`, waits for the stop, times [`ROUND_TRIPS`] requests, checks `variables` of the
/// top frame work too, and disconnects (the app resumes).
fn stack_traces(addr: SocketAddr, path: &str) -> Vec<Duration> {
    let mut client = DapClient::connect(addr);
    client.attach_with_breakpoint(json!({}), path, break_line());
    let (thread, frame) = client.stopped_frame();
    assert_eq!(frame["source"]["path"], path, "{frame}");
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        let r = client.request("stackTrace", json!({"threadId": thread}));
        times.push(started.elapsed());
        assert_eq!(r["success"], true, "{r}");
    }
    let frame = frame["id"].as_i64().expect("frame id");
    assert!(client.evaluate("n", frame).parse::<i64>().is_ok());
    let r = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(r["success"], true, "{r}");
    assert!(
        client.closed(SOON),
        "debugpy did not close after disconnect"
    );
    times
}

fn p50(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The sidecar in front of `app`, with the app's checkout mapped and `extra` config.
fn sidecar_for(app: &App, extra: &str) -> Sidecar {
    sidecar_wrapped(app, extra, |c| c)
}

fn sidecar_wrapped(app: &App, extra: &str, wrap: impl FnOnce(Command) -> Command) -> Sidecar {
    Sidecar::start_with(
        &format!(
            "{}{}target:\n  sample_interval: 200ms\n{extra}",
            upstream_yaml(app.port),
            mapping_yaml(&app.local_root.display().to_string(), &app.remote_root),
        ),
        wrap,
    )
}

/// Polls `/status` until its `tcp_nodelay` satisfies `done` (or the deadline); returns it.
fn nodelay_status(sidecar: &Sidecar, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SOON;
    loop {
        let (_, body) = http_get(sidecar.http, "/status");
        let status: Value = serde_json::from_str(&body).expect("status json");
        let nodelay = status["tcp_nodelay"].clone();
        if done(&nodelay) {
            return nodelay;
        }
        assert!(
            Instant::now() < deadline,
            "tcp_nodelay never got there: {nodelay:#}\n{}",
            sidecar.log.all()
        );
        std::thread::sleep(Duration::from_millis(100)); // polling a condition with a deadline
    }
}

/// The app's TCP sockets connected to a loopback peer other than `not_peer`: pydevd's
/// connection to debugpy's adapter (the app's only other one).
fn pydevd_socket(app: &App, not_peer: Option<SocketAddr>) -> Socket {
    let deadline = Instant::now() + SOON;
    loop {
        let mut found: Vec<Socket> = tcp_sockets_of(app.pid())
            .into_iter()
            .filter(|s| {
                s.peer
                    .is_some_and(|p| p.ip().is_loopback() && Some(p) != not_peer)
            })
            .collect();
        if found.len() == 1 {
            return found.remove(0);
        }
        assert!(
            found.len() < 2 && Instant::now() < deadline,
            "pydevd's socket not found alone: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(50)); // polling a condition with a deadline
    }
}

fn ratio(direct: Duration, through: Duration) -> f64 {
    direct.as_secs_f64() / through.as_secs_f64().max(1e-9)
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI) and root (pidfd_getfd on the app): run by scripts/test.sh"]
fn plain_debugpy_gets_nodelay_on_pydevds_socket_only_and_answers_10x_faster() {
    // The app holds a loopback TCP connection of its own, to this listener.
    let own = TcpListener::bind("127.0.0.1:0").expect("listener");
    let own_addr = own.local_addr().expect("addr");
    let mut app = App::prepare();
    let script = "import socket, sys\n\
                  own = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
                  print('own socket', own.getsockname()[1], flush=True)\n\
                  import main\n\
                  main.main()\n";
    std::fs::File::create(app.remote_root.join("own_socket.py"))
        .and_then(|mut f| f.write_all(script.as_bytes()))
        .expect("write script");
    let port = own_addr.port().to_string();
    app.launch_full(None, "127.0.0.1", "own_socket.py", &[&port], "app started");
    let (_accepted, _) = own.accept().expect("the app's own connection");

    let before = pydevd_socket(&app, Some(own_addr));
    assert!(
        !before.nodelay,
        "debugpy 1.8.22 sets no TCP_NODELAY itself: {before:?}"
    );
    let remote_main = app.remote_root.join("main.py").display().to_string();
    let direct = p50(stack_traces(
        SocketAddr::from(([127, 0, 0, 1], app.port)),
        &remote_main,
    ));

    let sidecar = sidecar_for(&app, "");
    let status = nodelay_status(&sidecar, |s| s["reason"] != "no_debuggee");
    assert_eq!(status["reason"], "set_by_sidecar", "{status:#}");
    assert_eq!(status["active"], true);
    assert_eq!(status["sockets"][0]["pid"], app.pid(), "{status:#}");

    // The option is on pydevd's socket, and on no other TCP socket of the app.
    let sockets = tcp_sockets_of(app.pid());
    let pydevd: Vec<&Socket> = sockets.iter().filter(|s| s.fd == before.fd).collect();
    assert_eq!(pydevd.len(), 1, "{sockets:?}");
    assert!(pydevd[0].nodelay, "pydevd's socket: {sockets:?}");
    assert_eq!(
        status["sockets"][0]["local"],
        pydevd[0].local.to_string(),
        "the sidecar reports the socket it set"
    );
    let own_socket: Vec<&Socket> = sockets
        .iter()
        .filter(|s| s.peer == Some(own_addr))
        .collect();
    assert_eq!(own_socket.len(), 1, "the app's own connection: {sockets:?}");
    for other in sockets.iter().filter(|s| s.fd != before.fd) {
        assert!(!other.nodelay, "an app socket was touched: {other:?}");
    }
    let metrics = http_get(sidecar.http, "/metrics").1;
    assert!(
        metrics.contains("dap_sidecar_debugpy_nodelay{reason=\"set_by_sidecar\"} 1"),
        "{metrics}"
    );

    let through = p50(stack_traces(sidecar.addr, &app.local_main()));
    println!(
        "plain debugpy: stackTrace p50 directly (no TCP_NODELAY) {direct:?}, through the \
         sidecar (TCP_NODELAY set by the sidecar) {through:?}: {:.0}x",
        ratio(direct, through)
    );
    assert!(
        direct >= through * 10,
        "stackTrace p50: direct {direct:?}, through the sidecar {through:?}"
    );
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI) and root (pidfd_getfd on the app): run by scripts/test.sh"]
fn an_app_under_dap_sidecar_launch_has_nodelay_from_the_start_and_answers_10x_faster() {
    // The baseline: the same app under plain debugpy, directly.
    let plain = App::start();
    let direct = p50(stack_traces(
        SocketAddr::from(([127, 0, 0, 1], plain.port)),
        &plain.remote_root.join("main.py").display().to_string(),
    ));

    let mut app = App::prepare();
    app.launch_command(launcher(&app, "main.py"));
    assert!(
        app.stdout.wait("app started", SOON).is_some(),
        "{}",
        app.stdout.all()
    );
    assert!(
        !app.stdout.all().contains("not applied"),
        "{}",
        app.stdout.all()
    );
    // Set by the bootstrap in the app, before any sidecar ran.
    let socket = pydevd_socket(&app, None);
    assert!(socket.nodelay, "pydevd's socket: {socket:?}");

    let sidecar = sidecar_for(&app, "");
    let status = nodelay_status(&sidecar, |s| s["reason"] != "no_debuggee");
    assert_eq!(status["reason"], "already_set", "{status:#}");
    assert!(
        status["detail"]
            .as_str()
            .is_some_and(|d| d.contains("dap-sidecar launch")),
        "{status:#}"
    );
    let through = p50(stack_traces(sidecar.addr, &app.local_main()));
    println!(
        "dap-sidecar launch: stackTrace p50 directly to plain debugpy {direct:?}, through the \
         sidecar to the launched app {through:?}: {:.0}x",
        ratio(direct, through)
    );
    assert!(
        direct >= through * 10,
        "stackTrace p50: direct {direct:?}, through the sidecar {through:?}"
    );
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI), root and setpriv (a non-root sidecar): run by scripts/test.sh"]
fn a_sidecar_without_the_rights_says_not_applied_and_still_debugs() {
    let app = App::start();
    let bin = binary_for_nobody();
    let sidecar = sidecar_wrapped(&app, "", as_nobody(&bin));
    let status = nodelay_status(&sidecar, |s| s["reason"] != "no_debuggee");
    assert_eq!(status["reason"], "no_permission", "{status:#}");
    assert_eq!(status["active"], false);
    let detail = status["detail"].as_str().unwrap_or_default();
    for needle in [
        "cap_add: [SYS_PTRACE]",
        "capabilities: {add: [SYS_PTRACE]}",
        "dap-sidecar launch",
    ] {
        assert!(detail.contains(needle), "{needle} missing: {detail}");
    }
    let metrics = http_get(sidecar.http, "/metrics").1;
    assert!(
        metrics.contains("dap_sidecar_debugpy_nodelay{reason=\"no_permission\"} 0"),
        "{metrics}"
    );
    assert!(
        sidecar
            .log
            .wait("TCP_NODELAY not applied", SOON)
            .is_some_and(|l| l.contains("no_permission")),
        "{}",
        sidecar.log.all()
    );
    // Said once, not every second.
    let times = stack_traces(sidecar.addr, &app.local_main());
    assert_eq!(times.len(), ROUND_TRIPS);
    assert_eq!(
        sidecar.log.all().matches("TCP_NODELAY not applied").count(),
        1,
        "{}",
        sidecar.log.all()
    );
    // Untouched: the sidecar could not, and the app's socket says so.
    assert!(!pydevd_socket(&app, None).nodelay);
    println!(
        "non-root sidecar: stackTrace p50 {:?} (no TCP_NODELAY)",
        p50(times)
    );
}

/// A copy of the sidecar binary that `nobody` may run (the build directory may be in a
/// home directory only root can enter); deleted on drop.
fn binary_for_nobody() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let copy = dir.path().join("dap-sidecar");
    std::fs::copy(sidecar_bin(), &copy).expect("copy the sidecar");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Wraps the sidecar's command to run the copy in `bin` as `nobody` (the app stays root),
/// with its config made readable.
fn as_nobody(bin: &tempfile::TempDir) -> impl FnOnce(Command) -> Command {
    let program = bin.path().join("dap-sidecar");
    move |cmd| {
        let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
        if let Some(i) = args.iter().position(|a| a == "--config") {
            std::fs::set_permissions(&args[i + 1], std::fs::Permissions::from_mode(0o644))
                .expect("chmod config");
        }
        let mut wrapped = Command::new("setpriv");
        wrapped
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program)
            .args(&args);
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => wrapped.env(key, v),
                None => wrapped.env_remove(key),
            };
        }
        wrapped.stdout(Stdio::null()).stderr(Stdio::piped());
        wrapped
    }
}

/// `dap-sidecar launch -- python <script>` for `app`, debugpy on `app.port`.
fn launcher(app: &App, script: &str) -> Command {
    let mut cmd = Command::new(sidecar_bin());
    cmd.arg("launch")
        .arg("--upstream")
        .arg(format!("127.0.0.1:{}", app.port))
        .arg("--")
        .arg(python())
        .arg(app.remote_root.join(script));
    cmd
}

/// The pid of debugpy's adapter for `port`, started by the launcher's bootstrap.
fn launched_adapter(port: u16) -> u32 {
    let wanted = format!("--port\0{port}\0");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("# dap-sidecar launch: debugpy's adapter") && cmdline.contains(&wanted)
        })
        .unwrap_or_else(|| panic!("no adapter started by the bootstrap for port {port}"))
}

/// `dap-sidecar launch -- python main.py` for `app`.
fn launch(app: &mut App) {
    let cmd = launcher(app, "main.py");
    app.launch_command(cmd);
    assert!(
        app.stdout.wait("app started", SOON).is_some(),
        "{}",
        app.stdout.all()
    );
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI), root and setpriv (a non-root sidecar): run by scripts/test.sh"]
fn a_sidecar_without_the_rights_trusts_dap_sidecar_launch_and_says_so() {
    let mut app = App::prepare();
    launch(&mut app);
    let bin = binary_for_nobody();
    let sidecar = sidecar_wrapped(&app, "", as_nobody(&bin));
    let status = nodelay_status(&sidecar, |s| s["reason"] != "no_debuggee");
    assert_eq!(status["reason"], "launcher", "{status:#}");
    assert_eq!(status["active"], true);
    let detail = status["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("pid {}", app.pid())) && detail.contains("lacks the rights"),
        "{detail}"
    );
    // And it is so: the bootstrap set it.
    assert!(pydevd_socket(&app, None).nodelay);
    let through = p50(stack_traces(sidecar.addr, &app.local_main()));
    // The launcher also started debugpy's adapter with TCP_NODELAY on the sockets it
    // accepts: the sidecar's connection has it although the sidecar could not set it.
    let adapter = launched_adapter(app.port);
    let server_side = pydevd_socket(&app, None).peer;
    let steps = p50(step_cycles(sidecar.addr, &app.local_main(), 4, || {
        let sockets = tcp_sockets_of(adapter);
        let accepted: Vec<&Socket> = sockets
            .iter()
            .filter(|s| s.peer.is_some())
            .filter(|s| s.local.port() == app.port || Some(s.local) == server_side)
            .collect();
        assert_eq!(accepted.len(), 2, "pydevd's and the sidecar's: {sockets:?}");
        for s in accepted {
            assert!(s.nodelay, "an accepted socket of the adapter: {sockets:?}");
        }
    }));
    println!(
        "non-root sidecar, app under dap-sidecar launch: stackTrace p50 {through:?}, step cycle p50 {steps:?}"
    );
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI) and root (pidfd_getfd on the app): run by scripts/test.sh"]
fn a_restarted_debugpy_and_its_debugged_subprocess_get_nodelay_again() {
    let mut app = App::start();
    let sidecar = sidecar_for(&app, "");
    let first = nodelay_status(&sidecar, |s| s["reason"] == "set_by_sidecar");
    let first_local = first["sockets"][0]["local"].clone();
    app.kill();
    // The same port, now with a debugged subprocess: two pydevd connections.
    app.launch_script(None, "spawn.py", "app started");
    let child_pids = |s: &Value| -> Vec<i64> {
        s["sockets"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["pid"].as_i64()).collect())
            .unwrap_or_default()
    };
    let second = nodelay_status(&sidecar, |s| {
        s["reason"] == "set_by_sidecar" && child_pids(s).len() == 2
    });
    let pids = child_pids(&second);
    assert!(pids.contains(&i64::from(app.pid())), "{second:#}");
    assert_ne!(second["sockets"][0]["local"], first_local);
    for s in second["sockets"].as_array().into_iter().flatten() {
        assert_eq!(s["reason"], "set_by_sidecar", "{second:#}");
    }
    for pid in pids {
        let pid = u32::try_from(pid).expect("pid");
        let socket = tcp_sockets_of(pid)
            .into_iter()
            .find(|s| {
                s.peer.map(|p| p.to_string())
                    == second["sockets"][0]["remote"].as_str().map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("no pydevd socket in pid {pid}"));
        assert!(socket.nodelay, "pid {pid}: {socket:?}");
        if pid != app.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status(); // the debugged child
        }
    }
}

#[test]
#[ignore = "Python 3 (a stand-in debugpy without the hook point): run by scripts/test.sh"]
fn without_the_hook_point_launch_says_why_once_and_starts_debugpy_as_usual() {
    // A debugpy whose pydevd has no start_client; its CLI prints what it was given.
    let fake = tempfile::tempdir().expect("tempdir");
    let files = [
        ("debugpy/__init__.py", "__version__ = '0.0-stand-in'\n"),
        (
            "debugpy/__main__.py",
            "import os, sys\nprint('debugpy cli', os.getpid(), sys.argv[1:], flush=True)\n\
             print('orig_argv', sys.orig_argv[1:], flush=True)\n",
        ),
        ("debugpy/server/__init__.py", ""),
        ("debugpy/server/cli.py", ""),
        ("pydevd.py", ""),
        ("_pydevd_bundle/__init__.py", ""),
        ("_pydevd_bundle/pydevd_comm.py", ""),
    ];
    for (path, text) in files {
        let path = fake.path().join(path);
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let mut app = App::prepare();
    let mut cmd = Command::new(sidecar_bin());
    cmd.args([
        "launch",
        "--upstream",
        "127.0.0.1:5999",
        "--",
        "python3",
        "-u",
        "main.py",
        "--x",
    ])
    .env("PYTHONPATH", fake.path());
    app.launch_command(cmd);
    let cli = app
        .stdout
        .wait("debugpy cli", SOON)
        .unwrap_or_else(|| panic!("{}", app.stdout.all()));
    assert_eq!(
        cli,
        format!(
            "debugpy cli {} ['--listen', '127.0.0.1:5999', 'main.py', '--x']",
            app.pid()
        ),
        "same pid, same arguments as `python -m debugpy`"
    );
    let orig = app.stdout.wait("orig_argv", SOON).expect("orig_argv");
    assert!(
        orig.contains("'-u', '-Xfrozen_modules=off', '-X', 'dap_sidecar_nodelay=no_hook', '-m', 'debugpy', '--listen'"),
        "{orig}"
    );
    let all = app.stdout.all();
    assert_eq!(all.matches("TCP_NODELAY not applied").count(), 1, "{all}");
    assert!(
        all.contains("debugpy 0.0-stand-in has no pydevd_comm.start_client"),
        "{all}"
    );
}

/// Step cycles as VS Code runs them (`next`, `stopped`, `threads`, `stackTrace`,
/// `scopes`, `variables`), timed, in one session to `addr` stopped in main.py at `path`.
/// `before` runs once the app is stopped, before the timing.
fn step_cycles(addr: SocketAddr, path: &str, n: usize, before: impl FnOnce()) -> Vec<Duration> {
    let mut client = DapClient::connect(addr);
    client.attach_with_breakpoint(json!({}), path, break_line());
    let (thread, _) = client.stopped_frame();
    before();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let next = client.send("next", json!({"threadId": thread}));
        assert_eq!(client.response(next, SOON)["success"], true);
        client.event("stopped", SOON).expect("stopped after next");
        client.request("threads", json!({}));
        let trace = client.request("stackTrace", json!({"threadId": thread, "levels": 20}));
        let frame = trace["body"]["stackFrames"][0]["id"]
            .as_i64()
            .expect("frame");
        let scopes = client.request("scopes", json!({"frameId": frame}));
        let locals = scopes["body"]["scopes"][0]["variablesReference"].clone();
        let vars = client.request("variables", json!({"variablesReference": locals}));
        times.push(started.elapsed());
        assert_eq!(vars["success"], true, "{vars}");
    }
    let r = client.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(r["success"], true, "{r}");
    assert!(
        client.closed(SOON),
        "debugpy did not close after disconnect"
    );
    times
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI) and root (pidfd_getfd on debugpy): run by scripts/test.sh"]
fn the_adapters_side_of_the_sidecars_connection_gets_nodelay_and_a_step_is_fast() {
    let app = App::start();
    let remote_main = app.remote_root.join("main.py").display().to_string();
    let direct = p50(step_cycles(
        SocketAddr::from(([127, 0, 0, 1], app.port)),
        &remote_main,
        4,
        || {},
    ));
    let sidecar = sidecar_for(&app, "");
    nodelay_status(&sidecar, |s| s["reason"] == "set_by_sidecar");
    let through = p50(step_cycles(sidecar.addr, &app.local_main(), 8, || {
        let status = nodelay_status(&sidecar, |s| s["adapter_client_sockets"] == 1);
        let (_, body) = http_get(sidecar.http, "/status");
        let full: Value = serde_json::from_str(&body).expect("status");
        let adapter = u32::try_from(full["target"]["adapter"]["pid"].as_u64().expect("adapter"))
            .expect("pid");
        let pydevd_server = status["sockets"][0]["remote"].as_str().expect("remote");
        // The adapter's side of the sidecar's connection has it; its pydevd side does not.
        let sockets = tcp_sockets_of(adapter);
        let client_side: Vec<&Socket> = sockets
            .iter()
            .filter(|s| s.local.port() == app.port && s.peer.is_some())
            .collect();
        assert_eq!(client_side.len(), 1, "{sockets:?}");
        assert!(client_side[0].nodelay, "{sockets:?}");
        for s in sockets
            .iter()
            .filter(|s| s.local.to_string() == pydevd_server)
        {
            assert!(
                !s.nodelay,
                "the adapter's side of pydevd's connection: {s:?}"
            );
        }
    }));
    println!(
        "step cycle p50: directly {direct:?}, through the sidecar with TCP_NODELAY {through:?}: {:.0}x",
        ratio(direct, through)
    );
    assert!(
        direct >= through * 10,
        "step cycle p50: direct {direct:?}, through the sidecar {through:?}"
    );
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI) and root (pidfd_getfd on the app): run by scripts/test.sh"]
fn a_subprocess_of_a_launched_app_is_debugged_and_the_sidecar_covers_it() {
    let mut app = App::prepare();
    app.launch_command(launcher(&app, "spawn.py"));
    // The child (main.py) prints "app started": debugpy started it under pydevd too.
    assert!(
        app.stdout.wait("app started", SOON).is_some(),
        "{}",
        app.stdout.all()
    );
    let sidecar = sidecar_for(&app, "");
    let status = nodelay_status(&sidecar, |s| {
        s["sockets"].as_array().is_some_and(|a| a.len() == 2) && s["reason"] != "no_debuggee"
    });
    let by_pid = |pid: i64| {
        status["sockets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["pid"] == pid)
            .cloned()
            .unwrap_or_else(|| panic!("no socket of pid {pid}: {status:#}"))
    };
    // The launched process runs the bootstrap; its debugged child runs debugpy's own
    // command line, so the sidecar sets the child's.
    assert_eq!(
        by_pid(i64::from(app.pid()))["reason"],
        "already_set",
        "{status:#}"
    );
    let child = status["sockets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["pid"] != i64::from(app.pid()))
        .cloned()
        .expect("the child's socket");
    assert_eq!(child["reason"], "set_by_sidecar", "{status:#}");
    assert_eq!(status["reason"], "set_by_sidecar", "{status:#}");
    if let Some(pid) = child["pid"].as_i64() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
}
