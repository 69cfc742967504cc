//! Connection churn: thousands of sessions opened and ended cleanly, abruptly, with
//! garbage, or before attaching, against a minimal fake upstream (so the sidecar is what
//! is measured; the real-debugpy behaviour is covered by the other tests). The sidecar's
//! open fds must return to their level after warm-up and its RSS must stay bounded; the
//! figures are printed. `DAP_SIDECAR_SOAK_SESSIONS` sets the count (CI runs the default).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Instant;

use common::dap::DapClient;
use common::{SOON, Sidecar, http_get, vm_rss};
use serde_json::{Value, json};

/// A DAP server that answers like debugpy would, minimally: initialize, attach (plus an
/// `initialized` event), disconnect (then close), anything else with success.
fn fake_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake upstream");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    port
}

fn serve(stream: TcpStream) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut seq = 0;
    let send = |writer: &mut TcpStream, v: Value| {
        let body = serde_json::to_vec(&v).expect("json");
        let frame = [
            format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes(),
            body,
        ]
        .concat();
        writer.write_all(&frame).is_ok()
    };
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
            return;
        };
        seq += 1;
        let command = msg["command"].as_str().unwrap_or_default().to_owned();
        let ok = json!({"seq": seq, "type": "response", "request_seq": msg["seq"], "command": command, "success": true});
        if !send(&mut writer, ok) {
            return;
        }
        if command == "attach" {
            seq += 1;
            send(
                &mut writer,
                json!({"seq": seq, "type": "event", "event": "initialized"}),
            );
        }
        if command == "disconnect" {
            seq += 1;
            send(
                &mut writer,
                json!({"seq": seq, "type": "event", "event": "terminated"}),
            );
            return;
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn sessions_active(sidecar: &Sidecar) -> i64 {
    let (_, metrics) = http_get(sidecar.http, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("dap_sidecar_sessions_active "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// One session of the given kind.
fn churn(sidecar: &Sidecar, kind: usize) {
    match kind % 4 {
        0 => {
            let mut c = DapClient::connect(sidecar.addr);
            c.initialize();
            let attach = c.attach(json!({}));
            c.event("initialized", SOON).expect("initialized");
            assert_eq!(c.response(attach, SOON)["success"], true);
            c.request("disconnect", json!({}));
            assert!(c.closed(SOON));
        }
        1 => {
            let mut c = DapClient::connect(sidecar.addr);
            c.initialize();
            c.attach(json!({}));
            c.event("initialized", SOON).expect("initialized");
            c.kill(); // abrupt: no disconnect
        }
        2 => {
            let mut s = TcpStream::connect(sidecar.addr).expect("connect");
            let _ = s.write_all(b"garbage\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
        _ => {
            let s = TcpStream::connect(sidecar.addr).expect("connect");
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn connection_churn_leaks_no_fds_and_keeps_memory_bounded() {
    let sessions: usize = std::env::var("DAP_SIDECAR_SOAK_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let upstream = fake_upstream();
    let sidecar = Sidecar::start(&format!("upstream: 127.0.0.1:{upstream}\n"));
    let pid = sidecar.pid();
    // Abrupt clients end asynchronously: wait until the sidecar logged every close.
    let settle = |sidecar: &Sidecar, total: usize| {
        assert!(
            sidecar.log.wait_count("connection closed", total, SOON * 2),
            "connections never closed"
        );
        assert_eq!(sessions_active(sidecar), 0);
    };

    let warm = sessions / 10;
    for i in 0..warm {
        churn(&sidecar, i);
    }
    settle(&sidecar, warm);
    let (fds0, rss0) = (open_fds(pid), vm_rss(pid));
    let started = Instant::now();
    for i in warm..sessions {
        churn(&sidecar, i);
    }
    settle(&sidecar, sessions);
    let (fds1, rss1) = (open_fds(pid), vm_rss(pid));
    println!(
        "soak: {sessions} connections in {:.1} s; fds {fds0} -> {fds1}; RSS {:.1} -> {:.1} MiB",
        started.elapsed().as_secs_f64(),
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0
    );
    assert!(fds1 <= fds0 + 2, "fd leak: {fds0} -> {fds1}");
    assert!(rss1 < rss0 + (4 << 20), "RSS grew from {rss0} to {rss1}");
}
