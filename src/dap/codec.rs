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
    fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let length = match self.pending_body {
            Some(length) => length,
            None => {
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
                length
            }
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
        let header = format!("Content-Length: {}\r\n\r\n", body.len());
        dst.reserve(header.len() + body.len());
        dst.put_slice(header.as_bytes());
        dst.put_slice(&body);
        Ok(())
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

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut c = codec();
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = c.decode(&mut buf) {}
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
