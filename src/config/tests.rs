//! Loading as a whole: layers, precedence, and every problem reported at once.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use figment::providers::Env;

use super::*;

fn no_env() -> Env {
    Env::prefixed("DAP_SIDECAR_TEST_UNSET_PREFIX_")
}

fn file(ext: &str, content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(ext)
        .tempfile()
        .expect("temp file");
    f.write_all(content.as_bytes()).expect("write");
    f
}

#[test]
fn defaults_match_the_spec() {
    let c = Config::load_with_env(None, &Overrides::default(), no_env()).expect("valid");
    assert_eq!(c.host.to_string(), "0.0.0.0");
    assert_eq!(c.port, 5678);
    assert_eq!(c.upstream, "127.0.0.1:5679");
    assert_eq!(c.upstream_timeout, Duration::from_secs(30));
    assert_eq!(c.http.port, 5680);
    assert!(c.auth.allow_loopback_without_token);
    assert_eq!(c.target.pid, TargetPid::Auto);
    assert_eq!(c.memory.on_limit, OnLimit::Warn);
}

#[test]
fn seed_yaml_loads() {
    let f = file(
        ".yaml",
        r#"
host: 0.0.0.0
port: 5678
wait: true
path_mappings:
  - local_root: 'c:\Users\Penny\Documents\Software\home-assistant\'
    remote_root: /usr/src/app
auth:
  token: 0123456789abcdef0123
  allow: [10.0.0.0/8, "::1"]
memory:
  max_growth_while_attached: 512MiB
  on_limit: detach
"#,
    );
    let c = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env()).expect("valid");
    assert!(c.wait);
    assert_eq!(
        c.path_mappings[0].local_root.as_deref(),
        Some(r"c:\Users\Penny\Documents\Software\home-assistant\")
    );
    assert_eq!(c.auth.allow.len(), 2);
    assert_eq!(c.memory.max_growth_while_attached, Some(512 << 20));
    assert_eq!(c.memory.on_limit, OnLimit::Detach);
}

#[test]
fn toml_loads_and_flags_win() {
    let f = file(".toml", "port = 7000\n[http]\nport = 7001\n");
    let o = Overrides {
        port: Some(7100),
        ..Overrides::default()
    };
    let c = Config::load_with_env(Some(f.path()), &o, no_env()).expect("valid");
    assert_eq!(c.port, 7100);
    assert_eq!(c.http.port, 7001);
}

#[test]
fn every_problem_is_reported_at_once() {
    let f = file(
        ".yaml",
        r#"
port: 70000
upstream_timeout: soon
prot: 1
auth:
  allow: [10.0.0.0/8, 10.0.0.0/33]
  token: short
memory:
  on_limit: explode
"#,
    );
    let err = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env())
        .expect_err("invalid");
    let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "port",
        "upstream_timeout",
        "prot",
        "auth.allow[1]",
        "auth.token",
        "memory.on_limit",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let text = err.to_string();
    assert!(!text.contains("short"), "token leaked: {text}");
    assert!(text.contains("70000") && text.contains("YAML"), "{text}");
}

#[test]
fn missing_file_and_bad_extension_are_problems() {
    let err = Config::load_with_env(
        Some(Path::new("/nonexistent/x.yaml")),
        &Overrides::default(),
        no_env(),
    )
    .expect_err("invalid");
    assert_eq!(err.0[0].message, "no such file");
    let f = file(".ini", "port=1");
    let err = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env())
        .expect_err("invalid");
    assert!(err.0[0].message.contains(".yaml"));
}

#[test]
fn token_file_is_read_and_trimmed() {
    let secret = file(".txt", "0123456789abcdef0123\n");
    let o = Overrides {
        token_file: Some(secret.path().to_path_buf()),
        ..Overrides::default()
    };
    let c = Config::load_with_env(None, &o, no_env()).expect("valid");
    assert_eq!(c.auth.token.as_deref(), Some("0123456789abcdef0123"));
    assert!(!format!("{:?}", c.auth).contains("0123456789"));
}

#[test]
fn tokens_with_too_little_variety_are_refused() {
    for (weak, why) in [
        ("aaaaaaaaaaaaaaaa", "1 different"),
        ("abababababababababababab", "2 different"),
        ("abcdefg", "7 characters"),
    ] {
        let f = file(".yaml", &format!("auth:\n  token: {weak}\n"));
        let err = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env())
            .expect_err("weak token accepted");
        let text = err.to_string();
        assert!(text.contains("auth.token") && text.contains(why), "{text}");
        assert!(!text.contains(weak), "token leaked: {text}");
    }
    let weak_file = file(".txt", "xyxyxyxyxyxyxyxyxyxy\n");
    let o = Overrides {
        token_file: Some(weak_file.path().to_path_buf()),
        ..Overrides::default()
    };
    let err = Config::load_with_env(None, &o, no_env()).expect_err("weak token file");
    assert!(err.to_string().contains("auth.token_file"), "{err}");
    assert!(
        token_strength("4f9c2a7e1b3d8f60").is_ok(),
        "a random hex token passes"
    );
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("512MiB"), Some(512 << 20));
    assert_eq!(parse_size("64 KiB"), Some(64 << 10));
    assert_eq!(parse_size("10"), Some(10));
    assert_eq!(parse_size("1.5GiB"), None);
    assert_eq!(parse_size("99999999999999999999GiB"), None);
}

#[test]
fn every_flag_sets_a_known_key() {
    let secret = file(".txt", "0123456789abcdef0123\n");
    let o = Overrides {
        host: Some("::1".into()),
        port: Some(7000),
        upstream: Some("[::1]:7001".into()),
        http_port: Some(7002),
        token_file: Some(secret.path().to_path_buf()),
        wait: Some(true),
        log_format: Some("json".into()),
    };
    let c = Config::load_with_env(None, &o, no_env()).expect("valid");
    assert_eq!(c.dap_addr().to_string(), "[::1]:7000");
    assert_eq!(c.upstream_port(), 7001);
    assert_eq!(c.http.port, 7002);
    assert_eq!(c.auth.summary(), "token required");
    assert!(c.wait);
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn unknown_keys_are_listed_first_then_the_token_then_the_rest() {
    // The order `check` has always printed problems in; the key table keeps it.
    let f = file(
        ".yaml",
        "port: 99999\nlog:\n  fromat: json\nauth:\n  token: short\nfoo: 1\n",
    );
    let err = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env())
        .expect_err("invalid");
    let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["foo", "log.fromat", "auth.token", "port"]);
}

#[test]
fn inject_mode_takes_yaml_s_boolean_off() {
    for (yaml, mode) in [
        ("inject:\n  mode: off\n", InjectMode::Off),
        ("inject:\n  mode: \"off\"\n", InjectMode::Off),
        ("inject:\n  mode: auto\n", InjectMode::Auto),
        ("inject:\n  mode: on\n", InjectMode::Auto),
    ] {
        let f = file(".yaml", yaml);
        let c = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env())
            .unwrap_or_else(|e| panic!("{yaml}: {e}"));
        assert_eq!(c.inject.mode, mode, "{yaml}");
    }
    let f = file(".yaml", "inject:\n  mode: sometimes\n");
    let errors = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env())
        .expect_err("invalid");
    assert!(
        errors.to_string().contains("must be auto or off"),
        "{errors}"
    );
}
