//! Minimal blocking DAP framing for the benchmark's client and fake upstream: reused
//! buffers, one `write` per small frame, no JSON parsing on the hot path.

use std::io::{self, BufRead, Write};

/// Reads one frame's body into `body` (reused). `Ok(false)` on a clean end of stream.
pub fn read_frame(
    reader: &mut impl BufRead,
    line: &mut String,
    body: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(line)? == 0 {
            return Ok(false);
        }
        let text = line.trim_end();
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let length = length.ok_or_else(|| io::Error::other("frame without Content-Length"))?;
    body.resize(length, 0);
    reader.read_exact(body)?;
    Ok(true)
}

/// Writes a frame whose body is `head` followed by `tail`: small frames go out in one
/// write; a large `tail` is written from where it lies, without being copied.
pub fn write_frame(out: &mut impl Write, head: &[u8], tail: &[u8]) -> io::Result<()> {
    let header = format!("Content-Length: {}\r\n\r\n", head.len() + tail.len());
    if tail.len() <= 64 * 1024 {
        let mut frame = Vec::with_capacity(header.len() + head.len() + tail.len());
        frame.extend_from_slice(header.as_bytes());
        frame.extend_from_slice(head);
        frame.extend_from_slice(tail);
        out.write_all(&frame)
    } else {
        let mut first = Vec::with_capacity(header.len() + head.len());
        first.extend_from_slice(header.as_bytes());
        first.extend_from_slice(head);
        out.write_all(&first)?;
        out.write_all(tail)
    }
}

/// The `request_seq` of a response, found among the first bytes of its body (the
/// benchmark's peers put the envelope first), or `None` for an event or request.
pub fn request_seq(body: &[u8]) -> Option<i64> {
    let window = &body[..body.len().min(256)];
    let key = b"\"request_seq\":";
    let at = window.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: String = window[at..]
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit())
        .map(|b| *b as char)
        .collect();
    digits.parse().ok()
}

/// Whether a response's first bytes say it failed.
pub fn failed(body: &[u8]) -> bool {
    let window = &body[..body.len().min(256)];
    [&b"\"success\":false"[..], b"\"success\": false"]
        .iter()
        .any(|needle| window.windows(needle.len()).any(|w| w == *needle))
}
