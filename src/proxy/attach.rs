//! The end of phase 1: what an authenticated client's `attach` carries. The `attach` is
//! parsed once, into an order-preserving map (`ClientAttach`); `token` and
//! `pathMappings` are taken out of its `arguments`, `clientOS` and `workspaceFolder` are
//! read, the session's path mapper is built from them, `workspaceFolder` is mapped to
//! its container path, and the `attach` is serialized once to be forwarded. The values
//! removed or rewritten are kept to hand back in subprocess configurations
//! ([`HandBack`]).

use serde_json::{Map, Value};
use tracing::debug;

use crate::config::{DEFAULT_REMOTE_ROOT, MappingConfig};
use crate::dap::message::{Message, MessageError};
use crate::paths::PathMapper;
use crate::proxy::rewrite::arguments;
use crate::proxy::session::Session;

/// What the handshake learned from an authenticated client.
pub struct Attach {
    /// The client's `initialize`, to forward upstream.
    pub initialize: Option<Message>,
    /// The `attach` with `token` and `pathMappings` removed.
    pub attach: Message,
    /// What to hand back in subprocess configurations.
    pub handed_back: HandBack,
}

/// The client's own attach values that the sidecar removed or rewrote. debugpy builds a
/// subprocess's attach configuration from the attach it received; putting these back
/// lets the IDE's new connection authenticate and map like this one.
#[derive(Default)]
pub struct HandBack {
    /// `token`.
    pub token: Option<Value>,
    /// `pathMappings`.
    pub path_mappings: Option<Value>,
    /// `workspaceFolder`, as the client spelled it.
    pub workspace_folder: Option<Value>,
}

/// An authenticated client's `attach`, parsed once: the values the sidecar takes out of
/// it, and the rest as a map, serialized again only if something changed.
pub(super) struct ClientAttach {
    /// The `attach` as it arrived (its bytes are forwarded if nothing changes).
    msg: Message,
    /// The whole `attach`, without what was taken out.
    map: Map<String, Value>,
    /// Whether `map` differs from `msg`.
    changed: bool,
    /// Whether `clientOS` says Windows.
    client_windows: bool,
    /// `workspaceFolder` as the client sent it, if a string.
    workspace_folder: Option<String>,
    /// What to hand back.
    handed_back: HandBack,
}

impl ClientAttach {
    /// Parses `msg` (an `attach` request) and takes `token` and `pathMappings` out of its
    /// `arguments`.
    pub(super) fn parse(msg: Message) -> Result<ClientAttach, MessageError> {
        let mut map = msg.to_map()?;
        let mut handed_back = HandBack::default();
        if let Some(args) = arguments(&mut map) {
            // `remove` moves the last argument into the removed one's place (serde_json's
            // `preserve_order` map): the forwarded bytes have always been so.
            handed_back.token = args.remove("token");
            handed_back.path_mappings = args.remove("pathMappings");
        }
        let changed = handed_back.token.is_some() || handed_back.path_mappings.is_some();
        let args = map.get("arguments");
        let client_windows = args
            .and_then(|a| a.get("clientOS"))
            .and_then(Value::as_str)
            .is_some_and(|os| os.eq_ignore_ascii_case("windows"));
        let workspace_folder = args
            .and_then(|a| a.get("workspaceFolder"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(ClientAttach {
            msg,
            map,
            changed,
            client_windows,
            workspace_folder,
            handed_back,
        })
    }

    /// The path pairs (local, remote) for this client: its `pathMappings` if it sent any
    /// (identity entries, which some IDEs add by default, do not count), else the
    /// configured ones, with a missing local root meaning the client's
    /// `workspaceFolder`, else `workspaceFolder` to [`DEFAULT_REMOTE_ROOT`].
    pub(super) fn mapping_pairs(&self, configured: &[MappingConfig]) -> Vec<(String, String)> {
        let workspace = self.workspace_folder.as_deref();
        let from_client: Vec<(String, String)> = self
            .handed_back
            .path_mappings
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let local = m.get("localRoot")?.as_str()?;
                let remote = m.get("remoteRoot")?.as_str()?;
                Some((local.to_owned(), remote.to_owned()))
            })
            .filter(|(local, remote)| local != remote)
            .collect();
        if !from_client.is_empty() {
            from_client
        } else if configured.is_empty() {
            workspace
                .map(|w| vec![(w.to_owned(), DEFAULT_REMOTE_ROOT.to_owned())])
                .unwrap_or_default()
        } else {
            configured
                .iter()
                .filter_map(|m| {
                    let local = m.local_root.as_deref().or(workspace)?;
                    Some((local.to_owned(), m.remote_root.clone()))
                })
                .collect()
        }
    }

    /// Whether the client runs on Windows (`clientOS`).
    pub(super) fn client_windows(&self) -> bool {
        self.client_windows
    }

    /// Replaces the client's `workspaceFolder` (a local path) with its container path, so
    /// debugpy sees no local paths; the original is handed back.
    pub(super) fn map_workspace_folder(&mut self, mapper: &mut PathMapper) {
        let Some(Value::String(folder)) =
            arguments(&mut self.map).and_then(|a| a.get_mut("workspaceFolder"))
        else {
            return;
        };
        let Some(remote) = mapper.to_remote(folder) else {
            return;
        };
        self.handed_back.workspace_folder = Some(Value::String(std::mem::replace(folder, remote)));
        self.changed = true;
    }

    /// The `attach` to forward (serialized here, if anything changed) and what to hand
    /// back.
    pub(super) fn finish(self) -> Result<(Message, HandBack), MessageError> {
        let mut msg = self.msg;
        if self.changed {
            msg.set_map(self.map)?;
        }
        Ok((msg, self.handed_back))
    }
}

impl Session {
    /// Takes the client's settings out of its authenticated `attach`: the session's
    /// path mapper, the `attach` to forward, and what to hand back.
    pub(super) fn take_settings(
        &mut self,
        attach: Message,
        initialize: Option<Message>,
    ) -> Result<Attach, MessageError> {
        let mut attach = ClientAttach::parse(attach)?;
        let pairs = attach.mapping_pairs(&self.shared.config.path_mappings);
        debug!(peer = %self.peer, mappings = ?pairs, "path mappings");
        self.mapper = PathMapper::new(
            pairs.iter().map(|(l, r)| (l.as_str(), r.as_str())),
            attach.client_windows(),
        );
        attach.map_workspace_folder(&mut self.mapper);
        let (attach, handed_back) = attach.finish()?;
        Ok(Attach {
            initialize,
            attach,
            handed_back,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(json: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(json.as_bytes())).expect("valid")
    }

    /// The whole of [`Session::take_settings`] but the session.
    fn take(json: &str, configured: &[MappingConfig]) -> (Message, HandBack, PathMapper) {
        let mut attach = ClientAttach::parse(msg(json)).unwrap();
        let pairs = attach.mapping_pairs(configured);
        let mut mapper = PathMapper::new(
            pairs.iter().map(|(l, r)| (l.as_str(), r.as_str())),
            attach.client_windows(),
        );
        attach.map_workspace_folder(&mut mapper);
        let (attach, handed_back) = attach.finish().unwrap();
        (attach, handed_back, mapper)
    }

    #[test]
    fn a_vs_code_attach_goes_up_without_token_and_mappings_and_with_a_container_folder() {
        let sent = r#"{"command":"attach","arguments":{"name":"Attach (dap-sidecar)","type":"debugpy","request":"attach","connect":{"host":"localhost","port":5679},"token":"s3cret","pathMappings":[{"localRoot":"/home/me/app","remoteRoot":"/usr/src/app"}],"justMyCode":false,"workspaceFolder":"/home/me/app","clientOS":"unix","__configurationTarget":6,"__sessionId":"4c1b2a6e"},"type":"request","seq":2}"#;
        let (attach, back, mapper) = take(sent, &[]);
        // The bytes the sidecar has always forwarded for this attach (the last
        // arguments move into the places of `token` and `pathMappings`).
        assert_eq!(
            std::str::from_utf8(attach.bytes()).unwrap(),
            r#"{"command":"attach","arguments":{"name":"Attach (dap-sidecar)","type":"debugpy","request":"attach","connect":{"host":"localhost","port":5679},"__sessionId":"4c1b2a6e","__configurationTarget":6,"justMyCode":false,"workspaceFolder":"/usr/src/app","clientOS":"unix"},"type":"request","seq":2}"#
        );
        assert!(attach.is_request("attach"));
        assert_eq!(attach.seq, 2);
        assert_eq!(back.token, Some(Value::from("s3cret")));
        assert_eq!(
            back.path_mappings,
            Some(serde_json::json!([{"localRoot": "/home/me/app", "remoteRoot": "/usr/src/app"}]))
        );
        assert_eq!(back.workspace_folder, Some(Value::from("/home/me/app")));
        assert_eq!(
            mapper.to_local("/usr/src/app/a.py").as_deref(),
            Some("/home/me/app/a.py")
        );
    }

    #[test]
    fn an_attach_with_nothing_to_take_is_forwarded_byte_for_byte() {
        let sent = r#"{"seq":2,"type":"request","command":"attach","arguments":{"connect":{"port":5679},"x":1.50}}"#;
        let (attach, back, mapper) = take(sent, &[]);
        assert_eq!(attach.bytes().as_ref(), sent.as_bytes());
        assert!(back.token.is_none() && back.path_mappings.is_none());
        assert!(back.workspace_folder.is_none());
        assert!(mapper.is_empty());
    }

    #[test]
    fn configured_mappings_default_to_the_workspace_folder_and_windows_clients_are_seen() {
        let sent = r#"{"seq":2,"type":"request","command":"attach","arguments":{"token":"t","workspaceFolder":"C:\\Users\\me\\app","clientOS":"Windows","pathMappings":[{"localRoot":"C:\\x","remoteRoot":"C:\\x"}]}}"#;
        let configured = [MappingConfig {
            local_root: None,
            remote_root: "/srv/app".into(),
        }];
        let (attach, back, mapper) = take(sent, &configured);
        assert_eq!(
            std::str::from_utf8(attach.bytes()).unwrap(),
            r#"{"seq":2,"type":"request","command":"attach","arguments":{"clientOS":"Windows","workspaceFolder":"/srv/app"}}"#
        );
        assert_eq!(
            back.workspace_folder,
            Some(Value::from("C:\\Users\\me\\app"))
        );
        assert_eq!(
            mapper.to_local("/srv/app/a.py").as_deref(),
            Some("C:\\Users\\me\\app\\a.py")
        );
    }

    #[test]
    fn an_attach_that_is_not_an_object_is_an_error() {
        // The envelope parses from an array too; the attach does not.
        let msg = msg(r#"["request",2,"attach",null,null,null]"#);
        assert!(ClientAttach::parse(msg).is_err());
    }
}
