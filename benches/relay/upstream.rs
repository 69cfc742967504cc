//! The fast fake upstream: a DAP server that answers like debugpy's adapter would, from
//! prebuilt response bodies, so that what the benchmark measures is the relay in between.
//!
//! - `initialize`, `attach` (then an `initialized` event), `disconnect` (then close);
//! - `threads`: a one-thread answer (the small round trip);
//! - `variables` with the benchmark's own argument `benchBytes` (and `benchPaths`): a
//!   response of that many bytes of variables, whose values mention container paths
//!   when `benchPaths` is true;
//! - `stackTrace` with `levels`: that many frames, each with a container `source.path`;
//! - anything else: an empty success.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufReader};
use std::net::{TcpListener, TcpStream};
use std::thread;

use serde::Deserialize;
use serde_json::Value;

use super::wire::{read_frame, write_frame};

/// The container-side root the fake's paths live under.
pub const REMOTE_ROOT: &str = "/usr/src/app";

/// Starts the fake on a free loopback port and returns the port.
pub fn start() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake upstream");
    let port = listener.local_addr().expect("fake upstream addr").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let _ = serve(stream);
            });
        }
    });
    port
}

#[derive(Deserialize)]
struct Request {
    seq: i64,
    command: String,
    #[serde(default)]
    arguments: Value,
}

fn serve(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let (mut line, mut body) = (String::new(), Vec::new());
    let mut seq = 0;
    // Response bodies after the envelope, built once per distinct request shape.
    let mut cache: HashMap<(String, u64, bool), Vec<u8>> = HashMap::new();
    while read_frame(&mut reader, &mut line, &mut body)? {
        let request: Request = serde_json::from_slice(&body).map_err(io::Error::other)?;
        let args = &request.arguments;
        let key = match request.command.as_str() {
            "variables" => (
                "variables".to_owned(),
                args["benchBytes"].as_u64().unwrap_or(0),
                args["benchPaths"].as_bool().unwrap_or(false),
            ),
            "stackTrace" => (
                "stackTrace".to_owned(),
                args["levels"].as_u64().unwrap_or(20),
                false,
            ),
            other => (other.to_owned(), 0, false),
        };
        let tail = cache.entry(key).or_insert_with_key(|(command, n, paths)| {
            let body = match command.as_str() {
                "variables" => variables(*n as usize, *paths),
                "stackTrace" => stack_trace(*n as usize),
                "threads" => r#"{"threads":[{"id":1,"name":"MainThread"}]}"#.to_owned(),
                "initialize" => r#"{"supportsConfigurationDoneRequest":true,"supportsEvaluateForHovers":true,"supportsTerminateRequest":true}"#.to_owned(),
                _ => "{}".to_owned(),
            };
            format!(r#","success":true,"command":"{command}","body":{body}}}"#).into_bytes()
        });
        seq += 1;
        let head = format!(
            r#"{{"seq":{seq},"type":"response","request_seq":{}"#,
            request.seq
        );
        write_frame(&mut out, head.as_bytes(), tail)?;
        match request.command.as_str() {
            "attach" => {
                seq += 1;
                let event = format!(r#"{{"seq":{seq},"type":"event","event":"initialized"}}"#);
                write_frame(&mut out, event.as_bytes(), b"")?;
            }
            "disconnect" => {
                seq += 1;
                let event =
                    format!(r#"{{"seq":{seq},"type":"event","event":"terminated","body":{{}}}}"#);
                write_frame(&mut out, event.as_bytes(), b"")?;
                return Ok(());
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `variables` body of about `size` bytes.
fn variables(size: usize, paths: bool) -> String {
    let mut vars = String::with_capacity(size + 512);
    let mut i = 0;
    while vars.len() < size {
        if i > 0 {
            vars.push(',');
        }
        let value = if paths {
            format!("'{REMOTE_ROOT}/data/part_{i:06}.csv'")
        } else {
            format!("'row {i:06}: {}'", "x".repeat(24))
        };
        let _ = write!(
            vars,
            r#"{{"name":"[{i}]","value":"{value}","type":"str","evaluateName":"rows[{i}]","variablesReference":0}}"#
        );
        i += 1;
    }
    format!(r#"{{"variables":[{vars}]}}"#)
}

/// A `stackTrace` body of `levels` frames in container files.
fn stack_trace(levels: usize) -> String {
    let mut frames = String::new();
    for i in 0..levels {
        if i > 0 {
            frames.push(',');
        }
        let _ = write!(
            frames,
            r#"{{"id":{id},"name":"handler_{i}","line":{line},"column":1,"source":{{"name":"module_{m}.py","path":"{REMOTE_ROOT}/pkg/sub_{d}/module_{m}.py","sourceReference":0}}}}"#,
            id = i + 1,
            line = 10 + i % 300,
            m = i % 50,
            d = i % 7
        );
    }
    format!(r#"{{"stackFrames":[{frames}],"totalFrames":{levels}}}"#)
}
