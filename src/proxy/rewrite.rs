//! Rewrites the path-carrying fields of DAP messages (see `docs/DEBUGPY.md`).
//!
//! Towards debugpy: every `source` object's `path` (setBreakpoints, gotoTargets,
//! breakpointLocations, source, evaluate, ...). Towards the IDE: `source` objects anywhere
//! (stack frames, breakpoints, scopes, loaded sources, output), nested `sources`, module
//! paths, the `stackTrace` text of exception details, and container paths in `output`
//! text. Launch-config style paths (`rules[].path`, `autoReload.watchDirectories`) are
//! container-side and never touched, because only the keys above are followed.
//!
//! Both directions first check the raw bytes cheaply, so messages that carry no path are
//! forwarded without being parsed. Towards the IDE, only the subtrees that mention a
//! container root are parsed (borrowing, one level at a time), and large successful
//! responses that cannot carry paths (`variables`, `evaluate`, ...) are not even held
//! whole: the upstream codec passes them through as they arrive ([`passes_untouched`]).

use serde_json::{Map, Value};

use serde_json::value::RawValue;

use crate::dap::message::{Kind, Message, MessageError, Peek};
use crate::dap::raw::{self, RawArray, RawObject};
use crate::paths::PathMapper;

/// Successful responses to these commands carry no paths (values, memory, source text),
/// so the sidecar passes them through without parsing, however large.
const PATHLESS_RESPONSES: &[&str] = &[
    "variables",
    "evaluate",
    "setVariable",
    "setExpression",
    "readMemory",
    "completions",
    "source",
];

/// Whether a message from debugpy, judged by its first bytes, needs no rewriting: a
/// successful response to a `PATHLESS_RESPONSES` command whose envelope comes before
/// its body (as debugpy writes it). Used to stream large `variables` dumps.
pub fn passes_untouched(prefix: &[u8]) -> bool {
    let peek = Peek::of(prefix);
    peek.kind.as_deref() == Some("response")
        && peek.success == Some(true)
        && peek
            .name
            .as_deref()
            .is_some_and(|name| PATHLESS_RESPONSES.contains(&name))
}

/// Maps IDE paths in a message from the client to container paths.
pub fn to_upstream(msg: &mut Message, mapper: &mut PathMapper) -> Result<bool, MessageError> {
    if mapper.is_empty() || !msg.contains(b"\"source\"") {
        return Ok(false);
    }
    msg.rewrite(|map| {
        let mut changed = false;
        for key in ["arguments", "body"] {
            if let Some(v) = map.get_mut(key) {
                changed |= walk_to_remote(v, mapper);
            }
        }
        changed
    })
}

fn walk_to_remote(value: &mut Value, mapper: &mut PathMapper) -> bool {
    match value {
        Value::Object(map) => {
            let mut changed = false;
            for (key, v) in map.iter_mut() {
                if key == "source" {
                    changed |= map_path_field(v, |p| mapper.to_remote(p));
                }
                changed |= walk_to_remote(v, mapper);
            }
            changed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, v| walk_to_remote(v, mapper) | acc),
        _ => false,
    }
}

/// Maps container paths in a message from debugpy to IDE paths.
///
/// Only the parts whose raw text contains a container root are parsed, one level at a
/// time and borrowing (see [`raw`]); everything else is copied as it arrived. A
/// `stackTrace` of hundreds of frames thus costs a few small allocations per frame.
pub fn to_client(msg: &mut Message, mapper: &PathMapper) -> Result<bool, MessageError> {
    if !mentions_roots(msg, mapper) {
        return Ok(false);
    }
    let body_slot = if msg.kind == Kind::Event && msg.name == "output" {
        Slot::OutputBody
    } else {
        Slot::Plain
    };
    let mut result = Ok(());
    let changed = msg.rewrite_bytes(|bytes| {
        let top: RawObject<'_> = match serde_json::from_slice(bytes) {
            Ok(top) => top,
            Err(e) => {
                result = Err(MessageError::Invalid(e));
                return None;
            }
        };
        raw::edit_object(&top, |key, value| {
            (key == "body").then(|| to_local(value, body_slot, mapper))?
        })
    });
    result.map(|()| changed)
}

/// Whether a message's raw bytes mention a container root (a cheap check before
/// parsing anything).
pub fn mentions_roots(msg: &Message, mapper: &PathMapper) -> bool {
    !mapper.is_empty() && mapper.remote_roots().any(|r| msg.contains(r.as_bytes()))
}

/// What a value is to the mapping, judged by the key it sits under.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Nothing special; look inside.
    Plain,
    /// A `source` or `module` object: its `path` is a container path.
    PathHolder,
    /// `sources` or `modules`: an array of path holders.
    PathHolders,
    /// Free text that may mention container paths (`stackTrace` of exception details).
    Text,
    /// The body of an `output` event: its `output` is free text.
    OutputBody,
}

impl Slot {
    fn under(key: &str) -> Slot {
        match key {
            "source" | "module" => Slot::PathHolder,
            "sources" | "modules" => Slot::PathHolders,
            "stackTrace" => Slot::Text,
            _ => Slot::Plain,
        }
    }
}

/// The new text of `value` with container paths mapped, or `None` if nothing changed.
fn to_local(value: &RawValue, slot: Slot, mapper: &PathMapper) -> Option<String> {
    let text = value.get();
    if !mapper
        .remote_roots()
        .any(|root| memchr::memmem::find(text.as_bytes(), root.as_bytes()).is_some())
    {
        return None;
    }
    match text.as_bytes().first()? {
        b'{' => {
            let object: RawObject<'_> = serde_json::from_str(text).ok()?;
            raw::edit_object(&object, |key, value| match (slot, key) {
                (Slot::PathHolder, "path") => raw::edit_string(value, |p| mapper.to_local(p)),
                (Slot::OutputBody, "output") => {
                    raw::edit_string(value, |t| mapper.text_to_local(t))
                }
                _ => to_local(value, Slot::under(key), mapper),
            })
        }
        b'[' => {
            let items: RawArray<'_> = serde_json::from_str(text).ok()?;
            let item_slot = match slot {
                Slot::PathHolders => Slot::PathHolder,
                _ => Slot::Plain,
            };
            raw::edit_array(&items, |item| to_local(item, item_slot, mapper))
        }
        b'"' if slot == Slot::Text => raw::edit_string(value, |t| mapper.text_to_local(t)),
        _ => None,
    }
}

/// Maps `value.path` if `value` is an object with a string `path`.
fn map_path_field(value: &mut Value, map: impl FnOnce(&str) -> Option<String>) -> bool {
    let Some(Value::String(path)) = value.as_object_mut().and_then(|o| o.get_mut("path")) else {
        return false;
    };
    match map(path) {
        Some(mapped) if mapped != *path => {
            *path = mapped;
            true
        }
        _ => false,
    }
}

/// The `arguments` object of a request, if it has one.
pub fn arguments(map: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    map.get_mut("arguments").and_then(Value::as_object_mut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(json: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(json.as_bytes())).expect("valid")
    }

    fn mapper() -> PathMapper {
        PathMapper::new([("/home/me/app", "/usr/src/app")], false)
    }

    #[test]
    fn breakpoints_go_up_as_container_paths() {
        let mut m = msg(
            r#"{"seq":3,"type":"request","command":"setBreakpoints","arguments":{"source":{"name":"a.py","path":"/home/me/app/a.py"},"breakpoints":[{"line":3}]}}"#,
        );
        assert!(to_upstream(&mut m, &mut mapper()).unwrap());
        let map = m.to_map().unwrap();
        assert_eq!(map["arguments"]["source"]["path"], "/usr/src/app/a.py");
        assert_eq!(map["arguments"]["source"]["name"], "a.py");
    }

    #[test]
    fn every_path_field_comes_back_local() {
        let mapper = mapper();
        let cases = [
            (
                r#"{"seq":1,"type":"response","command":"stackTrace","request_seq":1,"success":true,"body":{"stackFrames":[{"id":1,"source":{"path":"/usr/src/app/a.py"},"line":1}]}}"#,
                "/body/stackFrames/0/source/path",
            ),
            (
                r#"{"seq":1,"type":"event","event":"module","body":{"reason":"new","module":{"id":1,"name":"a","path":"/usr/src/app/a.py"}}}"#,
                "/body/module/path",
            ),
            (
                r#"{"seq":1,"type":"response","command":"modules","request_seq":1,"success":true,"body":{"modules":[{"id":1,"name":"a","path":"/usr/src/app/a.py"}]}}"#,
                "/body/modules/0/path",
            ),
            (
                r#"{"seq":1,"type":"response","command":"loadedSources","request_seq":1,"success":true,"body":{"sources":[{"path":"/usr/src/app/a.py"}]}}"#,
                "/body/sources/0/path",
            ),
            (
                r#"{"seq":1,"type":"event","event":"breakpoint","body":{"reason":"changed","breakpoint":{"verified":true,"source":{"path":"/usr/src/app/a.py"}}}}"#,
                "/body/breakpoint/source/path",
            ),
            (
                r#"{"seq":1,"type":"response","command":"scopes","request_seq":1,"success":true,"body":{"scopes":[{"name":"Locals","source":{"path":"/usr/src/app/a.py"}}]}}"#,
                "/body/scopes/0/source/path",
            ),
        ];
        for (json, pointer) in cases {
            let mut m = msg(json);
            assert!(to_client(&mut m, &mapper).unwrap(), "{json}");
            let v = Value::Object(m.to_map().unwrap());
            assert_eq!(v.pointer(pointer).unwrap(), "/home/me/app/a.py", "{json}");
        }
    }

    #[test]
    fn tracebacks_in_output_and_exception_info_are_mapped() {
        let mapper = mapper();
        let mut m = msg(
            r#"{"seq":1,"type":"event","event":"output","body":{"category":"stderr","output":"  File \"/usr/src/app/a.py\", line 2\n"}}"#,
        );
        assert!(to_client(&mut m, &mapper).unwrap());
        assert_eq!(
            m.to_map().unwrap()["body"]["output"],
            "  File \"/home/me/app/a.py\", line 2\n"
        );
        let mut m = msg(
            r#"{"seq":1,"type":"response","command":"exceptionInfo","request_seq":1,"success":true,"body":{"details":{"stackTrace":"  File \"/usr/src/app/a.py\", line 2"}}}"#,
        );
        assert!(to_client(&mut m, &mapper).unwrap());
        assert_eq!(
            m.to_map().unwrap()["body"]["details"]["stackTrace"],
            "  File \"/home/me/app/a.py\", line 2"
        );
    }

    #[test]
    fn container_side_options_and_unrelated_messages_are_untouched() {
        let raw = r#"{"seq":1,"type":"response","command":"variables","request_seq":1,"success":true,"body":{"variables":[{"name":"p","value":"'/usr/src/app/x'"}]}}"#;
        let mut m = msg(raw);
        assert!(!to_client(&mut m, &mapper()).unwrap());
        assert_eq!(m.bytes().as_ref(), raw.as_bytes());
        let raw = r#"{"seq":1,"type":"request","command":"attach","arguments":{"rules":[{"path":"/home/me/app/x"}]}}"#;
        let mut m = msg(raw);
        assert!(!to_upstream(&mut m, &mut mapper()).unwrap());
        assert_eq!(m.bytes().as_ref(), raw.as_bytes());
    }

    #[test]
    fn only_successful_pathless_responses_pass_untouched() {
        let msg = |kind: &str, name: &str, success: bool| {
            format!(
                r#"{{"seq":1,"type":"{kind}","request_seq":1,"success":{success},"command":"{name}","body":{{"#
            )
        };
        assert!(passes_untouched(
            msg("response", "variables", true).as_bytes()
        ));
        assert!(passes_untouched(
            msg("response", "evaluate", true).as_bytes()
        ));
        assert!(!passes_untouched(
            msg("response", "stackTrace", true).as_bytes()
        ));
        assert!(!passes_untouched(
            msg("response", "variables", false).as_bytes()
        ));
        assert!(!passes_untouched(
            msg("request", "variables", true).as_bytes()
        ));
        assert!(!passes_untouched(
            br#"{"seq":1,"type":"event","event":"output","body":{"#
        ));
    }
}
