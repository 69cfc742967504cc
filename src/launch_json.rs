//! `dap-sidecar launch-json`: a ready VS Code `launch.json` for this sidecar.
//!
//! No `pathMappings`: the sidecar maps paths itself. The token is asked for at attach
//! time through a password prompt (`${input:...}`) so it never lands in the repository.

use serde_json::{Value, json};

use crate::config::Config;

/// The `launch.json` document; `host` is the address the IDE reaches the sidecar at.
pub fn render(config: &Config, host: &str) -> Value {
    let mut attach = json!({
        "name": "Attach (dap-sidecar)",
        "type": "debugpy",
        "request": "attach",
        "connect": { "host": host, "port": config.port },
        "justMyCode": false
    });
    let mut doc = json!({ "version": "0.2.0", "configurations": [] });
    if config.auth.token.is_some()
        && let Some(obj) = attach.as_object_mut()
    {
        obj.insert("token".into(), "${input:dapSidecarToken}".into());
        doc["inputs"] = json!([{
            "id": "dapSidecarToken",
            "type": "promptString",
            "description": "dap-sidecar token (auth.token of the sidecar)",
            "password": true
        }]);
    }
    doc["configurations"] = json!([attach]);
    doc
}
