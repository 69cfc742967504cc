//! The shipped deployment files, checked offline: Kubernetes schemas (kubernetes-validate
//! bundles them), the CRDs' structure, the PrometheusRule equal to the Prometheus rules
//! file, the ConfigMap's config accepted by `dap-sidecar check`, and compose.yaml's shape.

mod common;

use std::fs;
use std::process::Command;

use common::{repo_dir, sidecar_bin, venv};
use serde_json::Value;

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = fs::read_to_string(repo_dir().join(path)).expect("manifest");
    text.split("\n---")
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn validate(files: &[&str]) -> std::process::Output {
    let tool =
        venv("manifests-venv", "tests/requirements-manifests.txt").join("bin/kubernetes-validate");
    Command::new(tool)
        .args(["--strict", "--kubernetes-version", "1.30.0"])
        .args(files)
        .current_dir(repo_dir())
        .output()
        .expect("kubernetes-validate")
}

#[test]
fn builtin_kinds_pass_strict_schema_validation() {
    let files = [
        "deploy/kubernetes/deployment.yaml",
        "deploy/kubernetes/secret.yaml",
        "deploy/kubernetes/service.yaml",
    ];
    let out = validate(&files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The validator rejects what it should: a misspelt field.
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yaml");
    let text = fs::read_to_string(repo_dir().join(files[2])).expect("service");
    fs::write(&broken, text.replace("targetPort:", "targetPrt:")).expect("write");
    let out = validate(&[broken.to_str().expect("path")]);
    assert!(!out.status.success(), "a misspelt field passed validation");
}

#[test]
fn the_pod_shares_processes_and_never_liveness_probes_the_debugged_app() {
    let docs = yaml_docs("deploy/kubernetes/deployment.yaml");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["shareProcessNamespace"], true);
    let containers = pod["containers"].as_array().expect("containers");
    let app = containers
        .iter()
        .find(|c| c["name"] == "app")
        .expect("app container");
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "dap-sidecar")
        .expect("sidecar");
    assert!(
        app.get("livenessProbe").is_none(),
        "a liveness probe would kill an app paused at a breakpoint"
    );
    assert_eq!(sidecar["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(sidecar["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(sidecar["securityContext"]["runAsNonRoot"], true);
    let token_env = sidecar["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "DAP_SIDECAR_AUTH__TOKEN_FILE");
    assert!(token_env.is_some(), "the token must come from the Secret");

    // The ConfigMap's config is valid for the sidecar itself.
    let config_map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("ConfigMap");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dap-sidecar.yaml");
    fs::write(
        &file,
        config_map["data"]["dap-sidecar.yaml"]
            .as_str()
            .expect("config"),
    )
    .expect("write");
    let out = Command::new(sidecar_bin())
        .arg("check")
        .arg("--config")
        .arg(&file)
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn monitoring_resources_match_the_service_and_the_rules_file() {
    let service = &yaml_docs("deploy/kubernetes/service.yaml")[0];
    let monitor = &yaml_docs("deploy/kubernetes/servicemonitor.yaml")[0];
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    let port = &monitor["spec"]["endpoints"][0]["port"];
    assert!(
        service["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| &p["name"] == port)
    );

    let rule = &yaml_docs("deploy/kubernetes/prometheusrule.yaml")[0];
    assert_eq!(rule["kind"], "PrometheusRule");
    let rules_file = &yaml_docs("deploy/prometheus/alerts.yml")[0];
    assert_eq!(
        rule["spec"]["groups"], rules_file["groups"],
        "PrometheusRule drifted from alerts.yml"
    );
}

#[test]
fn compose_shares_the_apps_namespaces_and_publishes_on_localhost_only() {
    let compose = &yaml_docs("compose.yaml")[0];
    let sidecar = &compose["services"]["sidecar"];
    assert_eq!(sidecar["network_mode"], "service:app");
    assert_eq!(sidecar["pid"], "service:app");
    for port in compose["services"]["app"]["ports"]
        .as_array()
        .expect("ports")
    {
        assert!(
            port.as_str().expect("port").starts_with("127.0.0.1:"),
            "{port}"
        );
    }
    assert_eq!(compose["services"]["app"]["build"]["target"], "demo-app");
    assert_eq!(sidecar["build"]["target"], "sidecar");
}
