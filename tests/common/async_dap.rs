//! The async side of the harness, for `#[tokio::test]`s that run the sidecar in-process:
//! one frame reader and writer (used by the client below and by the fake upstream), a
//! DAP client, and a plain HTTP GET.
//!
//! Waits have a deadline of [`SOON`] on tokio's clock, so under a paused clock a message
//! that never comes fails the test at once instead of hanging it. A wait that times out
//! mid-frame leaves the connection unusable; the test fails right there anyway.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, timeout_at};

use super::SOON;

/// Reads one `Content-Length` frame and parses its body as JSON. `Ok(None)` when the
/// peer closed the connection before a frame started.
pub async fn read_frame<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Option<Value>> {
    let mut length = None;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return if first {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        first = false;
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
    let length = length.ok_or_else(|| io::Error::other("frame without Content-Length"))?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(io::Error::other)
}

/// Writes `message` as one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, message: &Value) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await
}

/// A DAP client connection (the async twin of [`super::dap::DapClient`]).
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    seq: i64,
    /// Received but not yet consumed.
    pending: VecDeque<Value>,
    /// Every message received, for assertions on the whole conversation.
    pub history: Vec<Value>,
    closed: bool,
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to sidecar");
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        Client {
            reader: BufReader::new(reader),
            writer,
            seq: 0,
            pending: VecDeque::new(),
            history: Vec::new(),
            closed: false,
        }
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes).await
    }

    /// Sends a request; returns its seq.
    pub async fn send(&mut self, command: &str, arguments: Value) -> i64 {
        self.seq += 1;
        let request =
            json!({"seq": self.seq, "type": "request", "command": command, "arguments": arguments});
        write_frame(&mut self.writer, &request)
            .await
            .expect("send request");
        self.seq
    }

    /// The next message before `deadline`; `None` on timeout or once closed.
    async fn next(&mut self, deadline: Instant) -> Option<Value> {
        if self.closed {
            return None;
        }
        match timeout_at(deadline, read_frame(&mut self.reader)).await {
            Ok(Ok(Some(v))) => {
                self.history.push(v.clone());
                Some(v)
            }
            Ok(Ok(None) | Err(_)) => {
                self.closed = true;
                None
            }
            Err(_) => None,
        }
    }

    /// Waits (up to [`SOON`]) for the first message satisfying `pred`; earlier ones stay
    /// pending.
    pub async fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + SOON;
        while let Some(v) = self.next(deadline).await {
            if pred(&v) {
                return Some(v);
            }
            self.pending.push_back(v);
        }
        None
    }

    /// Waits for the response to request `seq`.
    pub async fn response(&mut self, seq: i64) -> Value {
        match self
            .wait_for(|v| v["type"] == "response" && v["request_seq"] == seq)
            .await
        {
            Some(v) => v,
            None => panic!("no response to request {seq}; got {:#?}", self.history),
        }
    }

    /// Sends a request and waits for its response.
    pub async fn request(&mut self, command: &str, arguments: Value) -> Value {
        let seq = self.send(command, arguments).await;
        self.response(seq).await
    }

    /// Waits for an event.
    pub async fn event(&mut self, name: &str) -> Option<Value> {
        self.wait_for(|v| v["type"] == "event" && v["event"] == name)
            .await
    }

    /// Waits until the peer closes the connection; true if it did within [`SOON`].
    pub async fn closed(&mut self) -> bool {
        let deadline = Instant::now() + SOON;
        while !self.closed {
            match self.next(deadline).await {
                Some(v) => self.pending.push_back(v),
                None if self.closed => break,
                None => return false,
            }
        }
        true
    }

    /// `initialize` as VS Code sends it.
    pub async fn initialize(&mut self) -> Value {
        self.request(
            "initialize",
            json!({
                "clientID": "vscode", "clientName": "test", "adapterID": "debugpy",
                "pathFormat": "path", "linesStartAt1": true, "columnsStartAt1": true,
                "supportsVariableType": true, "supportsRunInTerminalRequest": true,
                "supportsStartDebuggingRequest": true, "locale": "en"
            }),
        )
        .await
    }

    /// Starts an attach with `extra` arguments (a token, mappings); returns its seq.
    pub async fn attach(&mut self, extra: Value) -> i64 {
        let mut args = json!({"connect": {"host": "127.0.0.1", "port": 5678}, "justMyCode": false});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        self.send("attach", args).await
    }

    /// initialize, attach, `initialized`, configurationDone, and the attach response
    /// (which debugpy sends only after configurationDone); returns that response.
    pub async fn handshake(&mut self, extra: Value) -> Value {
        let init = self.initialize().await;
        assert_eq!(init["success"], true, "{init}");
        let attach = self.attach(extra).await;
        if self.event("initialized").await.is_none() {
            panic!("no initialized event: {:#?}", self.history);
        }
        let done = self.request("configurationDone", json!({})).await;
        assert_eq!(done["success"], true, "{done}");
        let attached = self.response(attach).await;
        assert_eq!(attached["success"], true, "{attached}");
        attached
    }
}

/// A plain HTTP/1.0 GET over a real socket; returns the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect HTTP");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut response = String::new();
    timeout_at(Instant::now() + SOON, stream.read_to_string(&mut response))
        .await
        .expect("HTTP answer in time")
        .expect("read HTTP");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of an unlabelled metric (or of a labelled series, given as
/// `name{label="value"}`) in Prometheus text; `None` when absent.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
