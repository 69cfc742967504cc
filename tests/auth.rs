//! Authentication against real debugpy: refused clients never reach it. The proof is
//! debugpy's own adapter log, which records every IDE connection it accepts; each test
//! also makes one accepted attach, so the proof would catch a leak.
//!
//! Ignored in a plain `cargo test` (they need debugpy, and the last one root);
//! `scripts/test.sh` runs them with `--ignored`.

mod common;

use std::net::SocketAddr;

use common::dap::DapClient;
use common::{App, NetNs, SOON, Sidecar, TOKEN, break_line, mapping_yaml, upstream_yaml};
use serde_json::{Value, json};

fn refused(client: &mut DapClient, extra: Value) -> String {
    client.initialize();
    let seq = client.attach(extra);
    let answer = client.response(seq, SOON);
    assert_eq!(answer["success"], false, "{answer}");
    let bye = client.request("disconnect", json!({}));
    assert_eq!(bye["success"], true, "{bye}");
    assert!(client.closed(SOON), "refused connection stays open");
    answer["message"].as_str().unwrap_or_default().to_owned()
}

fn config(app: &App, auth: &str) -> String {
    format!(
        "{}{}auth:\n{auth}",
        upstream_yaml(app.port),
        mapping_yaml(&app.local_root.display().to_string(), &app.remote_root)
    )
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn missing_or_wrong_token_is_refused_before_debugpy() {
    let app = App::start();
    let sidecar = Sidecar::start(&config(&app, &format!("  token: {TOKEN}\n")));

    let message = refused(&mut DapClient::connect(sidecar.addr), json!({}));
    assert!(message.contains("token is required"), "{message}");
    assert!(message.contains("launch.json"), "{message}");
    let message = refused(
        &mut DapClient::connect(sidecar.addr),
        json!({"token": "nope-nope-nope-nope"}),
    );
    assert!(message.contains("token is wrong"), "{message}");
    let message = refused(
        &mut DapClient::connect(sidecar.addr),
        json!({"token": 12345}),
    );
    assert!(message.contains("token is wrong"), "{message}");

    assert_eq!(app.client_connections(), 0, "debugpy saw a refused client");
    assert!(!sidecar.log.all().contains(TOKEN), "the token was logged");
    assert!(sidecar.log.wait("wrong_token", SOON).is_some());

    let mut ok = DapClient::connect(sidecar.addr);
    ok.attach_with_breakpoint(json!({"token": TOKEN}), &app.local_main(), break_line());
    ok.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(app.client_connections(), 1);
    assert!(
        !app.adapter_log().contains(TOKEN),
        "the token reached debugpy"
    );
}

#[test]
#[ignore = "real debugpy (a Python venv from PyPI): run by scripts/test.sh"]
fn addresses_outside_the_allowlist_are_refused() {
    let app = App::start();
    let sidecar = Sidecar::start(&config(
        &app,
        &format!("  token: {TOKEN}\n  allow: [10.99.0.0/16]\n"),
    ));
    // Refused at accept: one `output` event says why, then the connection closes
    // before the client can send anything.
    let mut client = DapClient::connect(sidecar.addr);
    let told = client.output(SOON, |text| text.contains("127.0.0.1 are not allowed"));
    assert!(told.is_some(), "no refusal message");
    assert!(client.closed(SOON), "a disallowed connection stays open");
    assert!(sidecar.log.wait("not_allowed", SOON).is_some());
    assert_eq!(app.client_connections(), 0);

    let sidecar = Sidecar::start(&config(
        &app,
        &format!("  token: {TOKEN}\n  allow: [127.0.0.0/8]\n"),
    ));
    let mut ok = DapClient::connect(sidecar.addr);
    ok.attach_with_breakpoint(json!({"token": TOKEN}), &app.local_main(), break_line());
    ok.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(app.client_connections(), 1);
}

/// A real remote client: the app and the sidecar run in their own network namespace
/// (like a pod), the client connects from the test's namespace over a veth link.
#[test]
#[ignore = "root (a network namespace) and real debugpy: run by scripts/test.sh"]
fn remote_client_needs_a_configured_token() {
    let ns = NetNs::create(1);
    let mut app = App::prepare();
    app.launch_in(Some(&ns.name));
    let in_ns = |auth: &str| {
        let sidecar = Sidecar::start_with(&format!("host: 0.0.0.0\n{}", config(&app, auth)), |c| {
            ns.wrap(c)
        });
        let addr = SocketAddr::new(ns.inside.into(), sidecar.addr.port());
        (sidecar, addr)
    };

    let (_open, addr) = in_ns("  allow_loopback_without_token: true\n");
    let message = refused(&mut DapClient::connect(addr), json!({}));
    assert!(message.contains("no token is configured"), "{message}");
    assert!(message.contains(&ns.outside.to_string()), "{message}");
    assert_eq!(
        app.client_connections(),
        0,
        "debugpy saw a remote client without a token"
    );

    let (_secured, addr) = in_ns(&format!("  token: {TOKEN}\n"));
    let mut ok = DapClient::connect(addr);
    let bps = ok.attach_with_breakpoint(json!({"token": TOKEN}), &app.local_main(), break_line());
    assert_eq!(bps["body"]["breakpoints"][0]["verified"], true, "{bps}");
    let (_, frame) = ok.stopped_frame();
    assert_eq!(frame["source"]["path"], app.local_main());
    ok.request("disconnect", json!({"terminateDebuggee": false}));
    assert_eq!(app.client_connections(), 1);
}
