//! A fake debugpy: a tiny DAP server on `127.0.0.1:0` that answers like debugpy 1.8 does,
//! minimally, so the sidecar can be tested (and soaked) without Python:
//!
//! - `initialize`: debugpy's capabilities (or whatever [`FakeUpstream::set_capabilities`]
//!   says);
//! - `attach`: the `initialized` event at once; the response after `configurationDone`,
//!   as debugpy does (or at once, with [`Options::attach_waits_for_configuration_done`]
//!   false);
//! - `threads`: one thread; `stackTrace`: `levels` frames (default 20) in container paths
//!   under [`REMOTE_ROOT`]; `variables` with `bytes`: a value of that many bytes;
//! - `disconnect`: `terminated`, then the response (debugpy's order), then it closes the
//!   connection;
//! - anything else: success with an empty body.
//!
//! It records what it received (unless [`Options::record`] is false) and counts the
//! connections it accepted, and can drop every open connection (debugpy vanishing).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};

use super::SOON;
use super::async_dap::{read_frame, write_frame};

/// The container root of the fake's paths.
pub const REMOTE_ROOT: &str = "/usr/src/app";

/// How the fake behaves.
#[derive(Clone)]
pub struct Options {
    /// Answer `attach` only after `configurationDone`, as debugpy does.
    pub attach_waits_for_configuration_done: bool,
    /// Keep every message received (the soak turns it off).
    pub record: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            attach_waits_for_configuration_done: true,
            record: true,
        }
    }
}

/// debugpy 1.8's answer to `initialize`: the same capabilities the sidecar announces for
/// it before connecting (one table, in `src/proxy/capabilities.rs`).
pub fn debugpy_capabilities() -> Value {
    dap_sidecar::proxy::capabilities::default_capabilities()
}

struct State {
    options: Options,
    capabilities: Mutex<Value>,
    /// Every message received, in order (when recording).
    received: Mutex<Vec<Value>>,
    /// Bumped on every message received: what waiters watch.
    changed: watch::Sender<u64>,
    /// Connections accepted.
    connections: AtomicUsize,
    /// Bumped to drop every open connection.
    cut: watch::Sender<u64>,
}

/// A running fake; it lives as long as the runtime (or thread) it was started on.
#[derive(Clone)]
pub struct FakeUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FakeUpstream {
    /// Starts a debugpy-like fake on the current runtime.
    pub async fn start() -> FakeUpstream {
        Self::start_with(Options::default()).await
    }

    /// Starts a fake with `options` on the current runtime.
    pub async fn start_with(options: Options) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake upstream");
        let addr = listener.local_addr().expect("fake address");
        let state = Arc::new(State {
            options,
            capabilities: Mutex::new(debugpy_capabilities()),
            received: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
            connections: AtomicUsize::new(0),
            cut: watch::channel(0).0,
        });
        let accepting = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepting.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, accepting.clone()));
            }
        });
        FakeUpstream { addr, state }
    }

    /// Starts a fake on a runtime of its own, in a thread, for tests without one (the
    /// soak drives the sidecar binary from plain threads).
    pub fn start_in_thread(options: Options) -> FakeUpstream {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fake upstream runtime");
            runtime.block_on(async move {
                let fake = FakeUpstream::start_with(options).await;
                tx.send(fake).expect("hand over the fake");
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("fake upstream started")
    }

    /// What it answers to `initialize` from now on.
    pub fn set_capabilities(&self, capabilities: Value) {
        *self.state.capabilities.lock().unwrap() = capabilities;
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Everything it has received so far.
    pub fn received(&self) -> Vec<Value> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits (up to [`SOON`]) for a request `command`; returns it.
    pub async fn request(&self, command: &str) -> Option<Value> {
        let mut changed = self.state.changed.subscribe();
        let deadline = Instant::now() + SOON;
        loop {
            let found = self
                .state
                .received
                .lock()
                .unwrap()
                .iter()
                .find(|m| m["type"] == "request" && m["command"] == command)
                .cloned();
            if found.is_some() {
                return found;
            }
            match timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// Drops every open connection, as a crashing debugpy would.
    pub fn cut_connections(&self) {
        self.state.cut.send_modify(|n| *n += 1);
    }
}

async fn serve(stream: TcpStream, state: Arc<State>) {
    // Without this, Nagle holds the `initialized` event (a second small write) until the
    // sidecar ACKs, and that delay would dominate the soak's figures.
    let _ = stream.set_nodelay(true);
    let mut cut = state.cut.subscribe();
    cut.mark_unchanged();
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut seq = 0;
    let mut pending_attach: Option<Value> = None;
    loop {
        let msg = tokio::select! {
            msg = read_frame(&mut reader) => match msg {
                Ok(Some(msg)) => msg,
                _ => return,
            },
            _ = cut.changed() => return,
        };
        if state.options.record {
            state.received.lock().unwrap().push(msg.clone());
        }
        state.changed.send_modify(|n| *n += 1);
        if msg["type"] != "request" {
            continue;
        }
        let command = msg["command"].as_str().unwrap_or_default().to_owned();
        let mut out = Vec::new();
        match command.as_str() {
            "attach" => {
                if state.options.attach_waits_for_configuration_done {
                    pending_attach = Some(msg.clone());
                } else {
                    out.push(response(&mut seq, &msg, json!({})));
                }
                out.push(event(&mut seq, "initialized"));
            }
            "configurationDone" => {
                out.push(response(&mut seq, &msg, json!({})));
                if let Some(attach) = pending_attach.take() {
                    out.push(response(&mut seq, &attach, json!({})));
                }
            }
            "disconnect" => {
                out.push(event(&mut seq, "terminated"));
                out.push(response(&mut seq, &msg, json!({})));
            }
            "initialize" => {
                let capabilities = state.capabilities.lock().unwrap().clone();
                out.push(response(&mut seq, &msg, capabilities));
            }
            _ => out.push(response(
                &mut seq,
                &msg,
                answer(&command, &msg["arguments"]),
            )),
        }
        for message in &out {
            if write_frame(&mut writer, message).await.is_err() {
                return;
            }
        }
        if command == "disconnect" {
            return;
        }
    }
}

/// A successful response to `request`.
fn response(seq: &mut i64, request: &Value, body: Value) -> Value {
    *seq += 1;
    json!({"seq": *seq, "type": "response", "request_seq": request["seq"],
           "command": request["command"], "success": true, "body": body})
}

/// An event without a body.
fn event(seq: &mut i64, name: &str) -> Value {
    *seq += 1;
    json!({"seq": *seq, "type": "event", "event": name})
}

/// The body of the fake's answer: one thread, container paths in stack traces, a large
/// value for `variables` with `bytes`, nothing for the rest.
fn answer(command: &str, arguments: &Value) -> Value {
    match command {
        "threads" => json!({"threads": [{"id": 1, "name": "MainThread"}]}),
        "stackTrace" => {
            let levels = arguments["levels"].as_u64().unwrap_or(20);
            let frames: Vec<Value> = (0..levels)
                .map(|i| {
                    json!({"id": i + 1, "name": format!("f{i}"), "line": 1, "column": 1,
                           "source": {"path": format!("{REMOTE_ROOT}/pkg/m{}.py", i % 10)}})
                })
                .collect();
            json!({"stackFrames": frames, "totalFrames": levels})
        }
        "variables" => {
            let bytes = arguments["bytes"].as_u64().unwrap_or(0) as usize;
            json!({"variables": [{"name": "blob", "value": "x".repeat(bytes), "variablesReference": 0}]})
        }
        _ => json!({}),
    }
}
