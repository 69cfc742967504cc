//! Breakpoints in files outside every local root. Such a path goes to debugpy as it is;
//! debugpy then rejects the breakpoint ("Breakpoint in file that does not exist") and
//! nothing says why. The usual cause is a client that sent no `workspaceFolder` (nvim-dap
//! never does) while the sidecar relies on it. When debugpy rejects a breakpoint whose
//! path matched no root, the sidecar adds what it received and the line to add, worded
//! for the client, to the breakpoint's `message` and says it once on the debug console.

use std::collections::HashSet;

use serde_json::Value;

use crate::config::MappingConfig;
use crate::dap::message::{Kind, Message};
use crate::paths::PathMapper;
use crate::proxy::client::ClientInfo;

/// Most `setBreakpoints` requests remembered while their answers are pending, and most
/// paths explained once per session: bounds for a client that sends thousands.
const MAX_TRACKED: usize = 64;

/// The unmapped breakpoint paths of one session.
#[derive(Default)]
pub(super) struct Unmapped {
    /// `setBreakpoints` requests whose path matched no local root: (seq, path).
    pending: Vec<(i64, String)>,
    /// Paths already explained on the console.
    explained: HashSet<String>,
}

impl Unmapped {
    /// Notes a client's `setBreakpoints` whose `source.path` is under no local root
    /// (call before the path is mapped).
    pub(super) fn note_request(&mut self, msg: &Message, mapper: &mut PathMapper) {
        if !msg.is_request("setBreakpoints") || self.pending.len() >= MAX_TRACKED {
            return;
        }
        let Ok(map) = msg.to_map() else {
            return;
        };
        let path = map
            .get("arguments")
            .and_then(|a| a.get("source"))
            .and_then(|s| s.get("path"))
            .and_then(Value::as_str);
        if let Some(path) = path
            && mapper.to_remote(path).is_none()
        {
            self.pending.push((msg.seq, path.to_owned()));
        }
    }

    /// For debugpy's answer to a noted request that rejected breakpoints: adds the
    /// explanation to each rejected breakpoint's `message`. Returns the explanation if
    /// it should also go to the console (once per path).
    pub(super) fn explain(
        &mut self,
        msg: &mut Message,
        mapper: &PathMapper,
        client: &ClientInfo,
        configured: &[MappingConfig],
    ) -> Option<String> {
        if msg.kind != Kind::Response || msg.name != "setBreakpoints" || self.pending.is_empty() {
            return None;
        }
        let i = self
            .pending
            .iter()
            .position(|(seq, _)| Some(*seq) == msg.request_seq)?;
        let (_, path) = self.pending.swap_remove(i);
        let text = hint(&path, mapper, client, configured);
        let rewritten = msg.rewrite(|map| {
            let Some(breakpoints) = map
                .get_mut("body")
                .and_then(|b| b.get_mut("breakpoints"))
                .and_then(Value::as_array_mut)
            else {
                return false;
            };
            let mut changed = false;
            for bp in breakpoints.iter_mut().filter_map(Value::as_object_mut) {
                if bp.get("verified").and_then(Value::as_bool) != Some(false) {
                    continue;
                }
                let message = match bp.get("message").and_then(Value::as_str) {
                    Some(theirs) => format!("{}. {text}", theirs.trim_end_matches('.')),
                    None => text.clone(),
                };
                bp.insert("message".into(), Value::String(message));
                changed = true;
            }
            changed
        });
        if !matches!(rewritten, Ok(true)) || self.explained.len() >= MAX_TRACKED {
            return None;
        }
        self.explained.insert(path).then_some(text)
    }
}

/// The explanation for a breakpoint `path` that matched no local root of `mapper` (built
/// from the client's values and the `configured` mappings).
pub(super) fn hint(
    path: &str,
    mapper: &PathMapper,
    client: &ClientInfo,
    configured: &[MappingConfig],
) -> String {
    let roots: Vec<&str> = mapper.local_roots().collect();
    let why = if !roots.is_empty() {
        format!(
            "it is outside the local folders this session maps ({})",
            roots.join(", ")
        )
    } else if configured.is_empty() {
        "this session maps no local folder: the client sent no workspaceFolder or pathMappings, and the sidecar has no path_mappings (then it maps the client's workspaceFolder)".to_owned()
    } else {
        "this session maps no local folder: the sidecar's path_mappings map the client's workspaceFolder, and the client sent none (nor pathMappings)".to_owned()
    };
    let remote = mapper
        .remote_roots()
        .next()
        .or_else(|| configured.first().map(|m| m.remote_root.as_str()));
    format!(
        "dap-sidecar: the breakpoint's file {path:?} was passed to debugpy unchanged, because {why}. To map your checkout into the container, {}, or set path_mappings on the sidecar.",
        client.mapping_fix(remote)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::client::Editor;
    use bytes::Bytes;

    fn msg(json: &str) -> Message {
        Message::parse(Bytes::from(json.to_owned())).unwrap()
    }

    const NVIM: ClientInfo = ClientInfo {
        editor: Editor::Neovim,
        progress: true,
    };

    #[test]
    fn a_rejected_unmapped_breakpoint_is_explained_once() {
        let mut mapper = PathMapper::default();
        let mut unmapped = Unmapped::default();
        for seq in [3, 5] {
            let request = msg(&format!(
                r#"{{"seq":{seq},"type":"request","command":"setBreakpoints","arguments":{{"source":{{"path":"/home/me/app/main.py"}},"breakpoints":[{{"line":3}}]}}}}"#
            ));
            unmapped.note_request(&request, &mut mapper);
        }
        let answer = |seq: i64| {
            msg(&format!(
                r#"{{"seq":9,"type":"response","request_seq":{seq},"command":"setBreakpoints","success":true,"body":{{"breakpoints":[{{"verified":false,"message":"Breakpoint in file that does not exist.","line":3}}]}}}}"#
            ))
        };
        let mut first = answer(3);
        let said = unmapped.explain(&mut first, &mapper, &NVIM, &[]).unwrap();
        assert!(said.contains("\"/home/me/app/main.py\""), "{said}");
        assert!(
            said.contains("workspaceFolder = '${workspaceFolder}'"),
            "{said}"
        );
        assert!(said.contains("maps no local folder"), "{said}");
        let map = first.to_map().unwrap();
        let message = map["body"]["breakpoints"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("Breakpoint in file that does not exist. dap-sidecar"));
        // The same path again: the breakpoint is explained, the console is not told twice.
        let mut second = answer(5);
        assert_eq!(unmapped.explain(&mut second, &mapper, &NVIM, &[]), None);
        assert!(
            second.to_map().unwrap()["body"]["breakpoints"][0]["message"]
                .as_str()
                .unwrap()
                .contains("dap-sidecar")
        );
    }

    #[test]
    fn mapped_or_verified_breakpoints_are_left_alone() {
        let mut mapper = PathMapper::new([("/home/me/app", "/usr/src/app")], false);
        let mut unmapped = Unmapped::default();
        let request = msg(
            r#"{"seq":3,"type":"request","command":"setBreakpoints","arguments":{"source":{"path":"/home/me/app/main.py"},"breakpoints":[{"line":3}]}}"#,
        );
        unmapped.note_request(&request, &mut mapper);
        let request = msg(
            r#"{"seq":4,"type":"request","command":"setBreakpoints","arguments":{"source":{"path":"/elsewhere/x.py"},"breakpoints":[{"line":3}]}}"#,
        );
        unmapped.note_request(&request, &mut mapper);
        let mut verified = msg(
            r#"{"seq":9,"type":"response","request_seq":4,"command":"setBreakpoints","success":true,"body":{"breakpoints":[{"verified":true,"line":3}]}}"#,
        );
        let before = verified.bytes().clone();
        assert_eq!(unmapped.explain(&mut verified, &mapper, &NVIM, &[]), None);
        assert_eq!(verified.bytes(), &before);
        let mut mapped = msg(
            r#"{"seq":9,"type":"response","request_seq":3,"command":"setBreakpoints","success":true,"body":{"breakpoints":[{"verified":false,"line":3}]}}"#,
        );
        assert_eq!(unmapped.explain(&mut mapped, &mapper, &NVIM, &[]), None);
    }

    #[test]
    fn the_hint_names_the_roots_it_has() {
        let mapper = PathMapper::new([("/home/me/app", "/srv/app")], false);
        let text = hint("/tmp/x.py", &mapper, &ClientInfo::default(), &[]);
        assert!(text.contains("outside the local folders this session maps (/home/me/app)"));
        assert!(text.contains("\"remoteRoot\": \"/srv/app\""), "{text}");
    }
}
