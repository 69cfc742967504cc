//! The command line: `check`, exit code 64 with every problem listed, environment
//! layering, and `launch-json`.

mod common;

use std::io::Write;
use std::process::{Command, Output};

use common::{TOKEN, sidecar_bin};

fn yaml(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp");
    f.write_all(content.as_bytes()).expect("write");
    f
}

fn sidecar(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(sidecar_bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run dap-sidecar")
}

#[test]
fn invalid_config_exits_64_listing_every_problem_before_binding() {
    let f = yaml(
        "port: 99999\nupstream: nowhere\nauth:\n  allow: [300.1.1.1]\nmemory:\n  on_limit: panic\nlog:\n  fromat: json\n",
    );
    let path = f.path().to_str().unwrap();
    for args in [vec!["check", "--config", path], vec!["--config", path]] {
        let out = sidecar(&args, &[]);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for needle in [
            "5 problems",
            "port = 99999: must be a TCP port",
            "upstream = \"nowhere\": must be host:port",
            "auth.allow[0] = \"300.1.1.1\"",
            "memory.on_limit = \"panic\": must be warn or detach",
            "log.fromat: unknown key (allowed: format, level)",
            "YAML file",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let f = yaml("port: 7000\nupstream: 127.0.0.1:7001\n");
    let path = f.path().to_str().unwrap();
    let out = sidecar(
        &["check", "--config", path, "--upstream", "127.0.0.1:7003"],
        &[
            ("DAP_SIDECAR_PORT", "7002"),
            ("DAP_SIDECAR_AUTH__TOKEN", TOKEN),
            ("DAP_SIDECAR_HTTP__PORT", "7004"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dap:      0.0.0.0:7002"), "{text}");
    assert!(text.contains("upstream: 127.0.0.1:7003"), "{text}");
    assert!(text.contains("http:     0.0.0.0:7004"), "{text}");
    assert!(text.contains("token required"), "{text}");
    assert!(!text.contains(TOKEN), "check printed the token");

    let out = sidecar(
        &["check"],
        &[
            ("DAP_SIDECAR_PORT", "x"),
            ("DAP_SIDECAR_AUTH__TOKEN", "short"),
        ],
    );
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("port = \"x\"") && err.contains("environment"),
        "{err}"
    );
    assert!(
        err.contains("auth.token = <redacted>") && !err.contains("short\""),
        "{err}"
    );
}

#[test]
fn the_config_file_can_come_from_the_environment_and_toml_works() {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp");
    f.write_all(b"port = 7100\n[[path_mappings]]\nlocal_root = 'C:\\src\\app'\nremote_root = '/usr/src/app'\n").expect("write");
    let out = sidecar(
        &["check"],
        &[("DAP_SIDECAR_CONFIG", f.path().to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(":7100") && text.contains(r"C:\src\app <-> /usr/src/app"),
        "{text}"
    );
}

#[test]
fn launch_json_is_a_ready_vscode_attach_configuration() {
    let out = sidecar(
        &["launch-json", "--port", "6000"],
        &[("DAP_SIDECAR_AUTH__TOKEN", TOKEN)],
    );
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let attach = &doc["configurations"][0];
    assert_eq!(attach["type"], "debugpy");
    assert_eq!(attach["request"], "attach");
    assert_eq!(attach["connect"]["port"], 6000);
    assert_eq!(attach["token"], "${input:dapSidecarToken}");
    assert!(
        attach.get("pathMappings").is_none(),
        "the sidecar maps paths itself"
    );
    assert_eq!(doc["inputs"][0]["password"], true);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(TOKEN));
}

#[test]
fn healthcheck_probes_the_local_http_endpoint() {
    let sidecar = common::Sidecar::start("");
    let port = sidecar.http.port().to_string();
    let out = sidecar_cmd(&["healthcheck", "--http-port", &port]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unused = common::free_port().to_string();
    let out = sidecar_cmd(&["healthcheck", "--http-port", &unused]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/healthz"));
}

fn sidecar_cmd(args: &[&str]) -> Output {
    sidecar(args, &[])
}

/// A variable meant for another program that happens to share the prefix (a client-side
/// `DAP_SIDECAR_TOKEN`) is named, with the variable it probably meant.
#[test]
fn an_unknown_prefixed_variable_is_named_with_what_it_probably_meant() {
    let out = sidecar(
        &["check"],
        &[
            ("DAP_SIDECAR_TOKEN", "abc"),
            ("DAP_SIDECAR_LIMITS__FRAME_TIMEOUTS", "3s"),
        ],
    );
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "2 problems",
        "environment variable DAP_SIDECAR_TOKEN: `token` is not a setting",
        "Did you mean DAP_SIDECAR_AUTH__TOKEN (auth.token)?",
        "environment variable DAP_SIDECAR_LIMITS__FRAME_TIMEOUTS",
        "name outside that prefix",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
    }
    assert!(!err.contains("abc"), "the value may be a secret:\n{err}");
}
