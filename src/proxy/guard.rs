//! Requests the sidecar refuses instead of passing them on, because they are known to
//! take debugpy down (see `docs/DEBUGPY.md`, "What kills debugpy's adapter").
//!
//! - A NUL character in a file path (`source.path` and any other `path`, and the roots
//!   of `pathMappings`): pydevd's reader thread in the app dies on the `ValueError` that
//!   Python raises for it, debugpy's adapter loses the app and exits, and nobody can
//!   attach until the app restarts. No real file path contains NUL.
//!
//! The check costs nothing for ordinary messages: only a message whose raw bytes hold
//! JSON's `\u0000` escape is parsed.

use serde_json::Value;

use crate::dap::message::Message;

/// Why a request is refused; `Display` is the message the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dangerous {
    /// A NUL character inside a file path.
    #[error(
        "dap-sidecar refused `{command}`: the path {path:?} contains a NUL character, which no file path can contain (debugpy would lose its connection to the app on it). Check the client or extension that produced it."
    )]
    NulInPath {
        /// The request's command.
        command: String,
        /// The path, as received (NUL shown escaped).
        path: String,
    },
}

/// Keys whose string values are file paths.
const PATH_KEYS: &[&str] = &["path", "localRoot", "remoteRoot"];

/// Whether `msg` (from the client) must not reach debugpy, and why.
pub fn check(msg: &Message) -> Result<(), Dangerous> {
    if !msg.contains(br"\u0000") {
        return Ok(());
    }
    let Ok(map) = msg.to_map() else {
        return Ok(()); // not an object: the relay's own checks deal with it
    };
    let mut found = None;
    for key in ["arguments", "body"] {
        if let Some(value) = map.get(key) {
            find_nul_path(value, &mut found);
        }
    }
    match found {
        Some(path) => Err(Dangerous::NulInPath {
            command: msg.name.clone(),
            path,
        }),
        None => Ok(()),
    }
}

/// Looks for a path value with a NUL in it, anywhere below `value`.
fn find_nul_path(value: &Value, found: &mut Option<String>) {
    if found.is_some() {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s) if PATH_KEYS.contains(&key.as_str()) && s.contains('\0') => {
                        *found = Some(s.clone());
                        return;
                    }
                    _ => find_nul_path(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| find_nul_path(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(json: &str) -> Message {
        Message::parse(Bytes::from(json.to_owned())).unwrap()
    }

    #[test]
    fn a_nul_in_a_source_path_is_refused() {
        let m = msg(
            r#"{"seq":4,"type":"request","command":"setBreakpoints","arguments":{"source":{"path":"/app/ma\u0000in.py"},"breakpoints":[{"line":3}]}}"#,
        );
        let err = check(&m).unwrap_err();
        assert_eq!(
            err,
            Dangerous::NulInPath {
                command: "setBreakpoints".into(),
                path: "/app/ma\0in.py".into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("setBreakpoints"), "{text}");
        assert!(text.contains(r#""/app/ma\0in.py""#), "{text}");
    }

    #[test]
    fn nul_in_mapping_roots_and_nested_paths_is_refused() {
        for json in [
            r#"{"seq":2,"type":"request","command":"attach","arguments":{"pathMappings":[{"localRoot":"/h\u0000","remoteRoot":"/app"}]}}"#,
            r#"{"seq":2,"type":"request","command":"gotoTargets","arguments":{"source":{"path":"x\u0000"},"line":1}}"#,
        ] {
            assert!(check(&msg(json)).is_err(), "{json}");
        }
    }

    #[test]
    fn nul_outside_paths_and_ordinary_messages_pass() {
        for json in [
            r#"{"seq":4,"type":"request","command":"evaluate","arguments":{"expression":"'a\u0000b'"}}"#,
            r#"{"seq":4,"type":"request","command":"setBreakpoints","arguments":{"source":{"path":"/app/main.py"},"breakpoints":[{"line":3}]}}"#,
            r#"{"seq":4,"type":"request","command":"evaluate","arguments":{"expression":"'\\u0000'"}}"#,
        ] {
            assert_eq!(check(&msg(json)), Ok(()), "{json}");
        }
    }
}
