//! The benchmark's DAP client: blocking, one request in flight, reused buffers. It finds
//! a response's `request_seq` in its first bytes instead of parsing the body, so a 16 MiB
//! answer costs the client a copy, not a parse.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::wire::{failed, read_frame, request_seq, write_frame};

/// One client connection.
pub struct Client {
    /// Where requests are written.
    out: TcpStream,
    /// Where frames are read from.
    reader: BufReader<TcpStream>,
    /// The last request's seq.
    seq: i64,
    /// Header line buffer.
    line: String,
    /// Body buffer (the last frame read).
    body: Vec<u8>,
}

impl Client {
    /// Connects, initializes and attaches (with `token`, which the fake ignores): after
    /// this, requests reach the upstream. Returns the client and how long that took.
    pub fn attach(addr: SocketAddr, token: &str) -> io::Result<(Client, Duration)> {
        let started = Instant::now();
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            out: stream.try_clone()?,
            reader: BufReader::with_capacity(64 * 1024, stream),
            seq: 0,
            line: String::new(),
            body: Vec::new(),
        };
        client.request(
            "initialize",
            r#"{"clientID":"bench","adapterID":"debugpy","pathFormat":"path","linesStartAt1":true,"columnsStartAt1":true}"#,
        )?;
        client.request(
            "attach",
            &format!(r#"{{"token":"{token}","justMyCode":false}}"#),
        )?;
        Ok((client, started.elapsed()))
    }

    /// Sends a request and waits for its response (skipping events); returns the
    /// response's body length.
    pub fn request(&mut self, command: &str, arguments: &str) -> io::Result<usize> {
        self.seq += 1;
        let head = format!(
            r#"{{"seq":{},"type":"request","command":"{command}","arguments":"#,
            self.seq
        );
        write_frame(
            &mut self.out,
            head.as_bytes(),
            format!("{arguments}}}").as_bytes(),
        )?;
        loop {
            if !read_frame(&mut self.reader, &mut self.line, &mut self.body)? {
                return Err(io::Error::other(format!(
                    "connection closed awaiting {command}"
                )));
            }
            if request_seq(&self.body) == Some(self.seq) {
                if failed(&self.body) {
                    return Err(io::Error::other(format!(
                        "{command} failed: {}",
                        String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
                    )));
                }
                return Ok(self.body.len());
            }
        }
    }

    /// The last frame read (a response body after [`Client::request`]).
    pub fn last(&self) -> &[u8] {
        &self.body
    }

    /// Ends the session properly: `disconnect`, then waits for the peer to close.
    pub fn disconnect(mut self) -> io::Result<()> {
        self.request("disconnect", r#"{"terminateDebuggee":false}"#)?;
        while read_frame(&mut self.reader, &mut self.line, &mut self.body)? {}
        self.out.flush()
    }
}
