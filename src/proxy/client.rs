//! Who the client is, as its `initialize` says: which editor (so that hints name the
//! place its users write attach settings, in its syntax) and whether it shows progress
//! (`supportsProgressReporting`).
//!
//! `clientID` is `vscode` for VS Code and the editors built on it, `neovim` for nvim-dap;
//! anything else gets neutral wording.

use serde_json::Value;

use crate::config::DEFAULT_REMOTE_ROOT;
use crate::dap::message::Message;

/// The editor on the other end, for wording hints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Editor {
    /// VS Code (`clientID: vscode`): settings live in `launch.json`.
    VsCode,
    /// nvim-dap (`clientID: neovim`): settings live in `dap.configurations.python`.
    Neovim,
    /// Any other client, or none said.
    #[default]
    Other,
}

/// What the client's `initialize` told the sidecar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The editor.
    pub editor: Editor,
    /// Whether the client shows `progressStart`/`progressUpdate`/`progressEnd` events.
    pub progress: bool,
}

impl ClientInfo {
    /// Reads `clientID` and `supportsProgressReporting` from an `initialize` request.
    pub fn from_initialize(msg: &Message) -> ClientInfo {
        let Ok(map) = msg.to_map() else {
            return ClientInfo::default();
        };
        let args = map.get("arguments");
        let editor = match args.and_then(|a| a.get("clientID")).and_then(Value::as_str) {
            Some(id) if id.eq_ignore_ascii_case("vscode") => Editor::VsCode,
            Some(id) if id.eq_ignore_ascii_case("neovim") => Editor::Neovim,
            _ => Editor::Other,
        };
        let progress = args
            .and_then(|a| a.get("supportsProgressReporting"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        ClientInfo { editor, progress }
    }

    /// Where this client's users write attach settings.
    pub fn config_place(&self) -> &'static str {
        match self.editor {
            Editor::VsCode => "your launch.json attach configuration",
            Editor::Neovim => "your nvim-dap configuration (dap.configurations.python)",
            Editor::Other => "your client's attach configuration",
        }
    }

    /// The token property, written the way this client's configuration spells it.
    pub fn token_property(&self) -> &'static str {
        match self.editor {
            Editor::Neovim => "token = '<token>'",
            Editor::VsCode | Editor::Other => "\"token\": \"<token>\"",
        }
    }

    /// What to add so that paths under the user's checkout map to `remote_root` (or the
    /// default container root).
    pub fn mapping_fix(&self, remote_root: Option<&str>) -> String {
        let remote = remote_root.unwrap_or(DEFAULT_REMOTE_ROOT);
        match self.editor {
            Editor::VsCode => format!(
                "add \"pathMappings\": [{{\"localRoot\": \"${{workspaceFolder}}\", \"remoteRoot\": \"{remote}\"}}] to {}",
                self.config_place()
            ),
            Editor::Neovim => format!(
                "add workspaceFolder = '${{workspaceFolder}}' (nvim-dap puts Neovim's current directory there: start Neovim in your checkout) or pathMappings = {{ {{ localRoot = '<your checkout>', remoteRoot = '{remote}' }} }} to {}",
                self.config_place()
            ),
            Editor::Other => format!(
                "add \"workspaceFolder\": \"<your checkout>\" or \"pathMappings\": [{{\"localRoot\": \"<your checkout>\", \"remoteRoot\": \"{remote}\"}}] to {}",
                self.config_place()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn init(args: &str) -> ClientInfo {
        let json =
            format!(r#"{{"seq":1,"type":"request","command":"initialize","arguments":{args}}}"#);
        ClientInfo::from_initialize(&Message::parse(Bytes::from(json)).unwrap())
    }

    #[test]
    fn editors_and_progress_are_read_from_initialize() {
        let vscode = init(r#"{"clientID":"vscode","supportsProgressReporting":true}"#);
        assert_eq!(vscode.editor, Editor::VsCode);
        assert!(vscode.progress);
        let nvim = init(r#"{"clientID":"neovim","supportsProgressReporting":true}"#);
        assert_eq!(nvim.editor, Editor::Neovim);
        let other = init(r#"{"clientID":"emacs"}"#);
        assert_eq!(other, ClientInfo::default());
        assert_eq!(init(r#"{"clientID":7}"#).editor, Editor::Other);
    }

    #[test]
    fn hints_are_worded_for_the_editor() {
        let nvim = ClientInfo {
            editor: Editor::Neovim,
            progress: false,
        };
        assert!(
            nvim.mapping_fix(None)
                .contains("workspaceFolder = '${workspaceFolder}'")
        );
        assert!(
            nvim.mapping_fix(None)
                .contains("remoteRoot = '/usr/src/app'")
        );
        assert!(!nvim.mapping_fix(None).contains("launch.json"));
        let vscode = ClientInfo {
            editor: Editor::VsCode,
            progress: true,
        };
        assert!(vscode.mapping_fix(Some("/srv")).contains("launch.json"));
        assert!(
            vscode
                .mapping_fix(Some("/srv"))
                .contains("\"remoteRoot\": \"/srv\"")
        );
        assert!(
            !ClientInfo::default()
                .mapping_fix(None)
                .contains("launch.json")
        );
    }
}
