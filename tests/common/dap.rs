//! A small synchronous DAP client for the tests: a reader thread parses frames into JSON
//! values; the test thread sends requests and waits for responses and events, keeping
//! everything that arrived in order so nothing is missed.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::SOON;

/// A DAP client connection.
pub struct DapClient {
    stream: TcpStream,
    rx: Receiver<Option<Value>>,
    seq: i64,
    /// Received but not yet consumed.
    pending: VecDeque<Value>,
    /// Every message received, for assertions on the whole conversation.
    pub history: Vec<Value>,
    closed: bool,
}

fn read_frame(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

impl DapClient {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> DapClient {
        let stream = TcpStream::connect(addr).expect("connect to sidecar");
        Self::from_stream(stream)
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> DapClient {
        let reader = stream.try_clone().expect("clone stream");
        let (tx, rx) = channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            while let Some(v) = read_frame(&mut reader) {
                if tx.send(Some(v)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
        });
        DapClient {
            stream,
            rx,
            seq: 0,
            pending: VecDeque::new(),
            history: Vec::new(),
            closed: false,
        }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a request; returns its seq.
    pub fn send(&mut self, command: &str, arguments: Value) -> i64 {
        self.seq += 1;
        let body =
            json!({"seq": self.seq, "type": "request", "command": command, "arguments": arguments});
        let body = serde_json::to_vec(&body).expect("json");
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        self.send_raw(&frame).expect("send request");
        self.seq
    }

    fn next(&mut self, deadline: Instant) -> Option<Value> {
        if self.closed {
            return None;
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        match self.rx.recv_timeout(left) {
            Ok(Some(v)) => {
                self.history.push(v.clone());
                Some(v)
            }
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                None
            }
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    /// Waits for the first message satisfying `pred` (earlier ones stay pending).
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        while let Some(v) = self.next(deadline) {
            if pred(&v) {
                return Some(v);
            }
            self.pending.push_back(v);
        }
        None
    }

    /// Answers a reverse request from the adapter.
    pub fn respond(&mut self, request: &Value, body: Value) {
        self.seq += 1;
        let msg = json!({
            "seq": self.seq, "type": "response", "request_seq": request["seq"],
            "command": request["command"], "success": true, "body": body
        });
        let body = serde_json::to_vec(&msg).expect("json");
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        self.send_raw(&frame).expect("send response");
    }

    /// Waits for the response to request `seq`.
    pub fn response(&mut self, seq: i64, timeout: Duration) -> Value {
        self.wait_for(timeout, |v| {
            v["type"] == "response" && v["request_seq"] == seq
        })
        .unwrap_or_else(|| panic!("no response to request {seq}; got {:#?}", self.history))
    }

    /// Sends a request and waits for its response.
    pub fn request(&mut self, command: &str, arguments: Value) -> Value {
        let seq = self.send(command, arguments);
        self.response(seq, SOON)
    }

    /// Waits for an event.
    pub fn event(&mut self, name: &str, timeout: Duration) -> Option<Value> {
        self.wait_for(timeout, |v| v["type"] == "event" && v["event"] == name)
    }

    /// Waits for an `output` event whose text satisfies `text`.
    pub fn output(&mut self, timeout: Duration, text: impl Fn(&str) -> bool) -> Option<Value> {
        self.wait_for(timeout, |v| {
            v["event"] == "output" && v["body"]["output"].as_str().is_some_and(&text)
        })
    }

    /// Waits until the peer closes the connection; true if it did in time.
    pub fn closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            match self.next(deadline) {
                Some(v) => self.pending.push_back(v),
                None if self.closed => break,
                None => return false,
            }
        }
        true
    }

    /// `initialize` as VS Code sends it.
    pub fn initialize(&mut self) -> Value {
        self.request(
            "initialize",
            json!({
                "clientID": "vscode", "clientName": "test", "adapterID": "debugpy",
                "pathFormat": "path", "linesStartAt1": true, "columnsStartAt1": true,
                "supportsVariableType": true, "supportsRunInTerminalRequest": true,
                "supportsStartDebuggingRequest": true, "locale": "en"
            }),
        )
    }

    /// Starts an attach; debugpy answers it only after `configurationDone`.
    pub fn attach(&mut self, extra: Value) -> i64 {
        let mut args = json!({"connect": {"host": "127.0.0.1", "port": 5678}, "justMyCode": false});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        self.send("attach", args)
    }

    /// initialize, attach, wait for `initialized`, set one breakpoint, configurationDone,
    /// and the attach response. Returns the setBreakpoints response.
    pub fn attach_with_breakpoint(&mut self, extra: Value, path: &str, line: i64) -> Value {
        let init = self.initialize();
        assert_eq!(init["success"], true, "{init}");
        let attach = self.attach(extra);
        self.event("initialized", SOON)
            .unwrap_or_else(|| panic!("no initialized event: {:#?}", self.history));
        let bps = self.request(
            "setBreakpoints",
            json!({"source": {"path": path}, "breakpoints": [{"line": line}]}),
        );
        let done = self.request("configurationDone", json!({}));
        assert_eq!(done["success"], true, "{done}");
        let attached = self.response(attach, SOON);
        assert_eq!(attached["success"], true, "{attached}");
        bps
    }

    /// Waits for a `stopped` event; returns (threadId, top frame).
    pub fn stopped_frame(&mut self) -> (i64, Value) {
        let stopped = self
            .event("stopped", SOON)
            .unwrap_or_else(|| panic!("not stopped: {:#?}", self.history));
        let thread = stopped["body"]["threadId"].as_i64().expect("threadId");
        let trace = self.request("stackTrace", json!({"threadId": thread}));
        assert_eq!(trace["success"], true, "{trace}");
        (thread, trace["body"]["stackFrames"][0].clone())
    }

    /// Attaches with one breakpoint, waits until the app stops there, and returns the top
    /// frame's id and the fixture app's tick counter `n` at that moment.
    pub fn pause_at(&mut self, extra: Value, path: &str, line: i64) -> (i64, i64) {
        self.attach_with_breakpoint(extra, path, line);
        let (_, frame) = self.stopped_frame();
        let frame = frame["id"].as_i64().expect("frame id");
        let n = self.evaluate("n", frame).parse().expect("n is a number");
        (frame, n)
    }

    /// Evaluates in a frame; returns the result string.
    pub fn evaluate(&mut self, expression: &str, frame: i64) -> String {
        let r = self.request(
            "evaluate",
            json!({"expression": expression, "frameId": frame, "context": "repl"}),
        );
        assert_eq!(r["success"], true, "{r}");
        r["body"]["result"].as_str().expect("result").to_owned()
    }

    /// Closes the socket abruptly (no disconnect request).
    pub fn kill(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
