//! DAP framing: `Content-Length: N\r\n\r\n<N bytes of JSON>`.
//!
//! The decoder parses what is buffered and asks for more only when a frame is incomplete.
//! Once a header is parsed its length is remembered, so a large body arriving in many
//! reads is never re-scanned. Header and body sizes are capped; every malformed input is
//! a [`CodecError`], never a panic (the codec is fuzzed and property-tested).

use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

const HEADER_END: &[u8] = b"\r\n\r\n";

/// Why a frame could not be read. Each variant ends the connection it came from.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// No `\r\n\r\n` within `max_header_bytes`.
    #[error("header longer than {limit} bytes")]
    HeaderTooLarge {
        /// The configured cap.
        limit: usize,
    },
    /// `Content-Length` above `max_body_bytes`.
    #[error("Content-Length {length} exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The announced length.
        length: u64,
        /// The configured cap.
        limit: usize,
    },
    /// The peer spoke HTTP to the DAP port.
    #[error("an HTTP request arrived on the DAP port (the HTTP endpoints are on http.port)")]
    Http,
    /// A header line that is not `Name: value`, or a bad `Content-Length`.
    #[error("malformed header: {0}")]
    BadHeader(String),
    /// The header block has no `Content-Length`.
    #[error("header has no Content-Length")]
    MissingContentLength,
}

/// Encodes and decodes DAP frames; the items are raw JSON bodies.
#[derive(Debug, Clone)]
pub struct DapCodec {
    /// Largest accepted header block (up to and including `\r\n\r\n`).
    max_header_bytes: usize,
    /// Largest accepted body.
    max_body_bytes: usize,
    /// Length of the body being awaited, once its header has been consumed.
    pending_body: Option<usize>,
    /// When the first byte of the incomplete frame in the buffer arrived.
    frame_started: Option<Instant>,
}

impl DapCodec {
    /// A codec with the given caps.
    pub fn new(max_header_bytes: usize, max_body_bytes: usize) -> Self {
        DapCodec {
            max_header_bytes,
            max_body_bytes,
            pending_body: None,
            frame_started: None,
        }
    }

    /// Changes the body cap for frames whose header has not been read yet (the sidecar
    /// raises it once a client has authenticated).
    pub fn set_max_body(&mut self, max_body_bytes: usize) {
        self.max_body_bytes = max_body_bytes;
    }

    /// When the frame now being received started, if one is incomplete (for slow-frame
    /// timeouts: a client that starts a frame must finish it).
    pub fn frame_started(&self) -> Option<Instant> {
        self.frame_started
    }

    fn parse_header(&self, header: &[u8]) -> Result<usize, CodecError> {
        let text = std::str::from_utf8(header)
            .map_err(|_| CodecError::BadHeader("header is not ASCII".into()))?;
        let mut length = None;
        for line in text.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                if looks_like_http(line) {
                    return Err(CodecError::Http);
                }
                return Err(CodecError::BadHeader(format!(
                    "expected `Name: value`, got {:?}",
                    truncate(line, 60)
                )));
            };
            if name.trim().eq_ignore_ascii_case("content-length") {
                let value = value.trim();
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CodecError::BadHeader(format!(
                        "Content-Length {:?} is not a number",
                        truncate(value, 30)
                    )));
                }
                let n: u64 = value.parse().unwrap_or(u64::MAX);
                if n > self.max_body_bytes as u64 {
                    return Err(CodecError::BodyTooLarge {
                        length: n,
                        limit: self.max_body_bytes,
                    });
                }
                if length.replace(n as usize).is_some() {
                    return Err(CodecError::BadHeader("Content-Length given twice".into()));
                }
            }
        }
        length.ok_or(CodecError::MissingContentLength)
    }
}

fn looks_like_http(line: &str) -> bool {
    const METHODS: &[&str] = &[
        "GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "PRI ",
    ];
    METHODS.iter().any(|m| line.starts_with(m)) && line.contains(" HTTP/")
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Decoder for DapCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let frame = self.decode_frame(src)?;
        self.frame_started = match (&frame, src.is_empty() && self.pending_body.is_none()) {
            (_, true) => None,
            (Some(_), false) => Some(Instant::now()),
            (None, false) => Some(self.frame_started.unwrap_or_else(Instant::now)),
        };
        Ok(frame)
    }
}

impl DapCodec {
    /// The length of the body now being received: parses (and consumes) the header if
    /// that has not been done yet. `None` while the header is incomplete.
    fn body_length(&mut self, src: &mut BytesMut) -> Result<Option<usize>, CodecError> {
        if let Some(length) = self.pending_body {
            return Ok(Some(length));
        }
        let window = src.len().min(self.max_header_bytes);
        let Some(end) = find(&src[..window], HEADER_END) else {
            if src.len() >= self.max_header_bytes {
                // The first line may tell us it is HTTP, which deserves a clearer reason.
                let first = src[..].split(|b: &u8| *b == b'\n').next().unwrap_or(&[]);
                if looks_like_http(&String::from_utf8_lossy(first)) {
                    return Err(CodecError::Http);
                }
                return Err(CodecError::HeaderTooLarge {
                    limit: self.max_header_bytes,
                });
            }
            return Ok(None);
        };
        let length = self.parse_header(&src[..end])?;
        src.advance(end + HEADER_END.len());
        self.pending_body = Some(length);
        Ok(Some(length))
    }

    fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let Some(length) = self.body_length(src)? else {
            return Ok(None);
        };
        if src.len() < length {
            src.reserve(length - src.len());
            return Ok(None);
        }
        self.pending_body = None;
        Ok(Some(src.split_to(length).freeze()))
    }
}

impl Encoder<Bytes> for DapCodec {
    type Error = CodecError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(Frame::Whole(body), dst)
    }
}

impl Encoder<Frame> for DapCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        let (length, bytes) = match frame {
            Frame::Whole(body) => (Some(body.len()), body),
            Frame::Start { length, bytes } => (Some(length), bytes),
            Frame::More(bytes) => (None, bytes),
        };
        if let Some(length) = length {
            let header = format!("Content-Length: {length}\r\n\r\n");
            dst.reserve(header.len() + bytes.len());
            dst.put_slice(header.as_bytes());
        }
        dst.put_slice(&bytes);
        Ok(())
    }
}

/// What a [`StreamingCodec`] yields (and what a [`DapCodec`] can write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete body.
    Whole(Bytes),
    /// The start of a body passed through as it arrives: the announced length and the
    /// bytes so far.
    Start {
        /// The body's full length.
        length: usize,
        /// Its first bytes.
        bytes: Bytes,
    },
    /// More bytes of the body being passed through.
    More(Bytes),
}

/// Bodies at least this long are candidates for passing through.
pub const STREAM_ABOVE: usize = 64 * 1024;

/// How much of a body the pass-through rule gets to see (the envelope comes first).
pub const STREAM_PEEK: usize = 4 * 1024;

/// A [`DapCodec`] that passes large bodies through as they arrive instead of holding
/// them whole, when `rule` says (from the body's first [`STREAM_PEEK`] bytes) that the
/// message needs no rewriting. Memory per message then stays at a read buffer's size
/// and the relay pipelines like a plain TCP relay. Everything else is decoded whole.
#[derive(Debug, Clone)]
pub struct StreamingCodec {
    /// Framing, caps and whole-frame decoding.
    inner: DapCodec,
    /// Decides from a body's first bytes whether it may pass through.
    rule: fn(&[u8]) -> bool,
    /// Bodies at least this long are candidates ([`STREAM_ABOVE`]).
    above: usize,
    /// How many first bytes `rule` sees ([`STREAM_PEEK`]; at most `above`).
    peek: usize,
    /// Where the body being received stands.
    state: Streaming,
}

/// Where a [`StreamingCodec`]'s current body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streaming {
    /// Between frames, or before the decision on a large body.
    Idle,
    /// A large body the rule refused: decoded whole.
    Holding,
    /// Passing a body through; this many bytes are still to come.
    Passing(usize),
}

impl StreamingCodec {
    /// Wraps `inner`; `rule` sees the first bytes of each large body.
    pub fn new(inner: DapCodec, rule: fn(&[u8]) -> bool) -> Self {
        Self::with_sizes(inner, rule, STREAM_ABOVE, STREAM_PEEK)
    }

    /// Like [`StreamingCodec::new`] with other sizes (for tests and fuzzing, which use
    /// small frames); `peek` is capped at `above`.
    pub fn with_sizes(inner: DapCodec, rule: fn(&[u8]) -> bool, above: usize, peek: usize) -> Self {
        StreamingCodec {
            inner,
            rule,
            above: above.max(1),
            peek: peek.min(above).max(1),
            state: Streaming::Idle,
        }
    }

    /// Whether a body is being passed through and is not complete yet (nothing else may
    /// be written to its destination until it is).
    pub fn mid_frame(&self) -> bool {
        matches!(self.state, Streaming::Passing(_))
    }
}

impl Decoder for StreamingCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.state {
            Streaming::Passing(left) => {
                if src.is_empty() {
                    src.reserve(self.above);
                    return Ok(None);
                }
                let n = src.len().min(left);
                self.state = match left - n {
                    0 => Streaming::Idle,
                    left => Streaming::Passing(left),
                };
                Ok(Some(Frame::More(src.split_to(n).freeze())))
            }
            Streaming::Holding => {
                let frame = self.inner.decode(src)?;
                if frame.is_some() {
                    self.state = Streaming::Idle;
                }
                Ok(frame.map(Frame::Whole))
            }
            Streaming::Idle => {
                let Some(length) = self.inner.body_length(src)? else {
                    return Ok(None);
                };
                if length < self.above {
                    return Ok(self.inner.decode(src)?.map(Frame::Whole));
                }
                if src.len() < self.peek {
                    src.reserve(self.above);
                    return Ok(None);
                }
                if !(self.rule)(&src[..self.peek]) {
                    self.state = Streaming::Holding;
                    return self.decode(src);
                }
                self.inner.pending_body = None;
                let n = src.len().min(length);
                self.state = match length - n {
                    0 => Streaming::Idle,
                    left => Streaming::Passing(left),
                };
                Ok(Some(Frame::Start {
                    length,
                    bytes: src.split_to(n).freeze(),
                }))
            }
        }
    }
}

impl Encoder<Bytes> for StreamingCodec {
    type Error = CodecError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.inner.encode(Frame::Whole(body), dst)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec() -> DapCodec {
        DapCodec::new(256, 1024)
    }

    fn frame(body: &str) -> Vec<u8> {
        format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    #[test]
    fn decodes_back_to_back_frames_and_waits_for_partial_ones() {
        let mut c = codec();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame(r#"{"a":1}"#));
        buf.extend_from_slice(&frame(r#"{"b":2}"#)[..10]);
        assert_eq!(c.decode(&mut buf).unwrap().unwrap(), r#"{"a":1}"#);
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&frame(r#"{"b":2}"#)[10..]);
        assert_eq!(c.decode(&mut buf).unwrap().unwrap(), r#"{"b":2}"#);
        assert!(buf.is_empty());
    }

    #[test]
    fn remembers_when_an_incomplete_frame_started() {
        let mut c = codec();
        let mut buf = BytesMut::from(&frame("{}")[..5]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        let started = c.frame_started().expect("frame started");
        buf.extend_from_slice(&frame("{}")[5..]);
        assert!(c.decode(&mut buf).unwrap().is_some());
        assert_eq!(c.frame_started(), None);
        buf.extend_from_slice(b"Content");
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(c.frame_started().expect("new frame") >= started);
    }

    #[test]
    fn extra_headers_and_case_are_accepted() {
        let mut c = codec();
        let mut buf = BytesMut::from(&b"content-length: 2\r\nContent-Type: x\r\n\r\n{}"[..]);
        assert_eq!(c.decode(&mut buf).unwrap().unwrap(), "{}");
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP"),
            (b"Content-Length: 99999\r\n\r\n", "exceeds"),
            (b"Content-Length: -1\r\n\r\n", "not a number"),
            (b"Content-Length: 1\r\nContent-Length: 1\r\n\r\n", "twice"),
            (b"X: 1\r\n\r\n", "no Content-Length"),
            (b"garbage\r\n\r\n", "expected"),
            (&[0xff; 300], "header longer"),
        ];
        for (input, reason) in cases {
            let err = codec()
                .decode(&mut BytesMut::from(*input))
                .expect_err("must fail");
            assert!(err.to_string().contains(reason), "{err} !~ {reason}");
        }
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let mut c = codec();
        let mut buf = BytesMut::new();
        c.encode(Bytes::from_static(b"{\"x\":true}"), &mut buf)
            .unwrap();
        assert_eq!(c.decode(&mut buf).unwrap().unwrap(), "{\"x\":true}");
    }

    fn big_body(tag: &str, len: usize) -> String {
        let mut body = format!("{{\"{tag}\":\"");
        body.push_str(&"x".repeat(len - body.len() - 2));
        body.push_str("\"}");
        body
    }

    fn stream_rule(prefix: &[u8]) -> bool {
        prefix.starts_with(b"{\"pass\"")
    }

    /// Feeds `wire` in pieces of `step` bytes; returns what came out, with every part's
    /// bytes re-encoded, so the output can be compared with the input wire.
    fn stream_through(wire: &[u8], step: usize) -> (Vec<Frame>, Vec<u8>) {
        let mut c = StreamingCodec::new(DapCodec::new(256, 1 << 20), stream_rule);
        let (mut buf, mut frames, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(frame) = c.decode(&mut buf).unwrap() {
                c.inner.encode(frame.clone(), &mut out).unwrap();
                frames.push(frame);
            }
        }
        assert!(!c.mid_frame());
        (frames, out.to_vec())
    }

    #[test]
    fn large_bodies_the_rule_accepts_pass_through_in_parts() {
        let big = big_body("pass", STREAM_ABOVE * 3);
        let held = big_body("hold", STREAM_ABOVE * 2);
        let wire = [frame(&big), frame(r#"{"a":1}"#), frame(&held), frame("{}")].concat();
        let (frames, out) = stream_through(&wire, 10_000);
        assert_eq!(out, wire, "the bytes written are the bytes read");
        assert!(matches!(&frames[0], Frame::Start { length, .. } if *length == big.len()));
        let parts = frames
            .iter()
            .take_while(|f| !matches!(f, Frame::Whole(_)))
            .count();
        assert!(parts > 2, "a large body comes in several parts");
        assert_eq!(
            frames[parts],
            Frame::Whole(Bytes::from_static(br#"{"a":1}"#))
        );
        assert_eq!(
            frames[parts + 1],
            Frame::Whole(Bytes::from(held)),
            "held whole"
        );
        assert_eq!(frames.len(), parts + 3);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut c = codec();
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = c.decode(&mut buf) {}
        }

        #[test]
        fn passing_through_survives_any_chunking(step in 1usize..70_000, small in "[ -~]{0,50}") {
            let big = big_body("pass", STREAM_ABOVE + 5000);
            let held = big_body("hold", STREAM_ABOVE + 10);
            let small = serde_json::to_string(&small).unwrap();
            let wire = [frame(&small), frame(&big), frame(&held), frame(&big)].concat();
            let (_, out) = stream_through(&wire, step);
            prop_assert_eq!(out, wire);
        }

        #[test]
        fn frames_survive_any_split(bodies in proptest::collection::vec("[ -~]{0,200}", 1..5),
                                    cut in 0usize..2000) {
            let mut wire = Vec::new();
            for b in &bodies { wire.extend_from_slice(&frame(b)); }
            let cut = cut.min(wire.len());
            let mut c = codec();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut out = Vec::new();
            while let Some(f) = c.decode(&mut buf).unwrap() { out.push(f); }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = c.decode(&mut buf).unwrap() { out.push(f); }
            let got: Vec<String> = out.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
            prop_assert_eq!(got, bodies);
        }
    }
}
