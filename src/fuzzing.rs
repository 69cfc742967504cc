//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by
//! `tests/fuzz_regressions.rs`, which replays the seeds and every crash ever found.
//! Each function takes arbitrary bytes and panics only when an invariant breaks.

// Fuzz harnesses exist to panic when an invariant breaks.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

use crate::dap::codec::{DapCodec, Frame, StreamingCodec};
use crate::dap::message::{Message, Peek};
use crate::paths::PathMapper;
use crate::proxy::rewrite;

/// The framing: the same frames (and the same error or none) whether the bytes arrive
/// at once or in pieces of any size; every frame re-encodes to itself; the streaming
/// codec (with small sizes, so fuzz inputs reach them) yields the same bodies, whether
/// whole or passed through in parts.
pub fn codec(data: &[u8]) {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) + 1;
    let new = || DapCodec::new(128, 4096);

    let mut whole = Vec::new();
    let mut buf = BytesMut::from(wire);
    let mut c = new();
    let whole_error = loop {
        match c.decode(&mut buf) {
            Ok(Some(frame)) => whole.push(frame),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };

    let mut parts = Vec::new();
    let (mut buf, mut c) = (BytesMut::new(), new());
    let mut parts_error = false;
    'feed: for piece in wire.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match c.decode(&mut buf) {
                Ok(Some(frame)) => parts.push(frame),
                Ok(None) => break,
                Err(_) => {
                    parts_error = true;
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(whole, parts, "frames depend on how the bytes were split");
    assert_eq!(
        whole_error, parts_error,
        "an error depends on how the bytes were split"
    );

    for frame in &whole {
        let mut out = BytesMut::new();
        let mut c = new();
        assert!(Encoder::<Bytes>::encode(&mut c, frame.clone(), &mut out).is_ok());
        assert_eq!(
            c.decode(&mut out).ok().flatten().as_ref(),
            Some(frame),
            "re-encoding"
        );
        assert!(out.is_empty());
    }

    // Pass everything through that starts with `{` once it is 32 bytes or longer.
    let rule: fn(&[u8]) -> bool = |prefix| prefix.first() == Some(&b'{');
    let mut c = StreamingCodec::with_sizes(new(), rule, 32, 8);
    let (mut buf, mut bodies, mut current): (_, Vec<Bytes>, Option<(usize, Vec<u8>)>) =
        (BytesMut::new(), Vec::new(), None);
    'stream: for piece in wire.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match c.decode(&mut buf) {
                Ok(Some(Frame::Whole(body))) => {
                    assert!(
                        current.is_none(),
                        "a whole frame inside a passed-through one"
                    );
                    bodies.push(body);
                }
                Ok(Some(Frame::Start { length, bytes })) => {
                    assert!(
                        current.is_none(),
                        "a new start inside a passed-through frame"
                    );
                    assert!(bytes.len() <= length);
                    current = Some((length, bytes.to_vec()));
                }
                Ok(Some(Frame::More(bytes))) => {
                    let Some((_, so_far)) = current.as_mut() else {
                        panic!("more bytes without a start");
                    };
                    assert!(!bytes.is_empty(), "an empty part");
                    so_far.extend_from_slice(&bytes);
                }
                Ok(None) => break,
                Err(_) => break 'stream,
            }
            if let Some((length, so_far)) = &current {
                assert!(
                    so_far.len() <= *length,
                    "a part beyond the announced length"
                );
                if so_far.len() == *length {
                    assert!(!c.mid_frame());
                    bodies.push(Bytes::from(so_far.clone()));
                    current = None;
                } else {
                    assert!(c.mid_frame());
                }
            }
        }
    }
    assert_eq!(
        bodies[..],
        whole[..bodies.len().min(whole.len())],
        "passing through changed a body"
    );
    if !whole_error {
        assert_eq!(bodies.len(), whole.len(), "passing through lost a body");
    }
}

/// Path rewriting, both ways, on a message taken from the input and on messages built
/// around a path taken from it: only strings change, the envelope never does, an
/// unchanged message keeps its bytes, mapped paths are exactly what the mapper says, and
/// mapping is stable (to the container, back, and to the container again).
pub fn rewrite(data: &[u8]) {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let windows = choice & 1 == 1;
    let local = if windows {
        r"C:\Users\Me\proj"
    } else {
        "/home/me/proj"
    };
    let pairs = [
        (local, "/usr/src/app"),
        ("/home/me/lib", "/usr/src/app/lib"),
    ];
    let mapper = PathMapper::new(pairs, choice & 2 == 2);

    let _ = Peek::of(rest);
    let _ = rewrite::passes_untouched(rest);
    if let Ok(msg) = Message::parse(Bytes::copy_from_slice(rest)) {
        check_both_ways(&msg, &mapper);
    }

    let text = String::from_utf8_lossy(rest);
    let remote = format!("/usr/src/app/{text}");
    let mut round = mapper.clone();
    if let Some(there) = round.to_remote(&remote.replace("/usr/src/app", local))
        && let Some(back) = round.to_local(&there)
    {
        assert_eq!(
            round.to_remote(&back).as_deref(),
            Some(there.as_str()),
            "unstable"
        );
    }

    let frame = serde_json::json!({"seq": 2, "type": "response", "request_seq": 1, "success": true,
        "command": "stackTrace", "body": {"stackFrames": [{"id": 1, "source": {"path": remote}}]}});
    let mut msg = Message::parse(Bytes::from(frame.to_string())).expect("built message");
    let expected = mapper.to_local(&remote).unwrap_or_else(|| remote.clone());
    assert!(rewrite::to_client(&mut msg, &mapper).is_ok());
    let got = msg.to_map().expect("valid after rewrite");
    assert_eq!(
        got["body"]["stackFrames"][0]["source"]["path"], expected,
        "the frame's path is not what the mapper says"
    );

    let output = serde_json::json!({"seq": 3, "type": "event", "event": "output",
        "body": {"category": "stderr", "output": text}});
    let mut msg = Message::parse(Bytes::from(output.to_string())).expect("built message");
    let expected = mapper
        .text_to_local(&text)
        .unwrap_or_else(|| text.to_string());
    assert!(rewrite::to_client(&mut msg, &mapper).is_ok());
    let got = msg.to_map().expect("valid after rewrite");
    assert_eq!(got["body"]["output"], expected.as_str(), "output text");
}

fn check_both_ways(msg: &Message, mapper: &PathMapper) {
    let Ok(before) = serde_json::from_slice::<Value>(msg.bytes()) else {
        return;
    };
    let mut to_client = msg.clone();
    let changed = rewrite::to_client(&mut to_client, mapper).unwrap_or(false);
    check_rewritten(msg, &before, &to_client, changed);
    let mut to_upstream = msg.clone();
    let mut mapper = mapper.clone();
    let changed = rewrite::to_upstream(&mut to_upstream, &mut mapper).unwrap_or(false);
    check_rewritten(msg, &before, &to_upstream, changed);
}

fn check_rewritten(original: &Message, before: &Value, after: &Message, changed: bool) {
    if !changed {
        assert_eq!(
            original.bytes(),
            after.bytes(),
            "unchanged but different bytes"
        );
        return;
    }
    let Ok(reparsed) = Message::parse(after.bytes().clone()) else {
        panic!("rewritten message does not parse");
    };
    assert_eq!(
        (
            &reparsed.kind,
            reparsed.seq,
            &reparsed.name,
            reparsed.request_seq,
            reparsed.success
        ),
        (
            &original.kind,
            original.seq,
            &original.name,
            original.request_seq,
            original.success
        ),
        "the envelope changed"
    );
    let after: Value = serde_json::from_slice(after.bytes()).expect("rewritten JSON parses");
    assert_eq!(
        shape(before),
        shape(&after),
        "something other than strings changed"
    );
}

/// `value` with every string emptied: what a rewrite must preserve.
fn shape(value: &Value) -> Value {
    match value {
        Value::String(_) => Value::String(String::new()),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        other => other.clone(),
    }
}
