//! The shipped deployment files, checked offline: Kubernetes schemas (kubernetes-validate
//! bundles them), the CRDs' structure, the PrometheusRule equal to the Prometheus rules
//! file, the ConfigMap's config accepted by `dap-sidecar check`, and compose.yaml's shape.
//!
//! The schema validation needs kubernetes-validate from PyPI and is ignored in a plain
//! `cargo test`; `scripts/test.sh` runs it with `--ignored`.

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
#[ignore = "kubernetes-validate (a Python venv from PyPI): run by scripts/test.sh"]
fn builtin_kinds_pass_strict_schema_validation() {
    let files = [
        "deploy/kubernetes/deployment.yaml",
        "deploy/kubernetes/secret.yaml",
        "deploy/kubernetes/service.yaml",
        "deploy/kubernetes/networkpolicy.yaml",
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

/// Whether a NetworkPolicy ingress rule admits the pod port `name` (number `number`): a
/// rule without `ports`, or a port entry without `port`, admits every port.
fn rule_admits_port(rule: &Value, name: &str, number: u64) -> bool {
    let Some(ports) = rule.get("ports").and_then(Value::as_array) else {
        return true;
    };
    ports.is_empty()
        || ports.iter().any(|p| match p.get("port") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s == name,
            Some(v) => {
                let first = v.as_u64().unwrap_or(u64::MAX);
                let last = p.get("endPort").and_then(Value::as_u64).unwrap_or(first);
                (first..=last).contains(&number)
            }
        })
}

/// A label selector that matches everything (`{}`, or empty `matchLabels` and
/// `matchExpressions`). Absent (or null) is not empty: it means "this namespace" for a
/// namespaceSelector.
fn selector_matches_all(selector: Option<&Value>) -> bool {
    selector.and_then(Value::as_object).is_some_and(|s| {
        s.values().all(|v| match v {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        })
    })
}

/// Where `policy` lets in more than intended, for a pod labelled `pod_labels` whose
/// container ports are `pod_ports` (name -> number): it must select the pod and isolate it
/// for ingress, admit `http-metrics` only from Prometheus pods in a named namespace, and
/// never admit `dap` from everywhere, every namespace, every pod of its namespace, or every
/// address.
fn network_policy_problems(policy: &Value, pod_labels: &Value, pod_ports: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let spec = &policy["spec"];
    if spec["podSelector"]["matchLabels"] != *pod_labels
        || spec["podSelector"].get("matchExpressions").is_some()
    {
        problems.push(format!(
            "podSelector {} is not the pod template's labels {pod_labels}",
            spec["podSelector"]
        ));
    }
    if !spec["policyTypes"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "Ingress"))
    {
        problems.push("policyTypes lacks Ingress: the pod is not isolated".into());
    }
    let rules = spec["ingress"].as_array().cloned().unwrap_or_default();
    for rule in &rules {
        for port in rule["ports"].as_array().into_iter().flatten() {
            if let Some(name) = port["port"].as_str()
                && pod_ports.get(name).is_none()
            {
                problems.push(format!("port {name} is not a port of the pod"));
            }
        }
    }
    let named = |name: &str| pod_ports[name].as_u64().expect("pod port");

    // Metrics: only from Prometheus pods, in a named namespace, both in one peer.
    let metrics_rules: Vec<&Value> = rules
        .iter()
        .filter(|r| rule_admits_port(r, "http-metrics", named("http-metrics")))
        .collect();
    if metrics_rules.is_empty() {
        problems.push("no rule admits http-metrics: Prometheus cannot scrape".into());
    }
    for rule in metrics_rules {
        let peers = rule["from"].as_array().cloned().unwrap_or_default();
        if peers.is_empty() {
            problems.push(format!("http-metrics admitted from everywhere: {rule}"));
        }
        for peer in &peers {
            let prometheus =
                peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "prometheus";
            let namespace = &peer["namespaceSelector"];
            let named_namespace = namespace.is_object() && !selector_matches_all(Some(namespace));
            if peer.get("ipBlock").is_some() || !prometheus || !named_namespace {
                problems.push(format!(
                    "http-metrics admitted from a peer other than Prometheus pods in a named \
                     namespace: {peer}"
                ));
            }
        }
    }

    // DAP: never from everywhere.
    for rule in rules
        .iter()
        .filter(|r| rule_admits_port(r, "dap", named("dap")))
    {
        let peers = rule["from"].as_array().cloned().unwrap_or_default();
        if peers.is_empty() {
            problems.push(format!("dap admitted from everywhere (empty from): {rule}"));
        }
        for peer in &peers {
            if selector_matches_all(peer.get("namespaceSelector")) {
                problems.push(format!("dap admitted from every namespace: {peer}"));
            }
            if peer.get("namespaceSelector").is_none()
                && selector_matches_all(peer.get("podSelector"))
            {
                problems.push(format!(
                    "dap admitted from every pod of the namespace: {peer}"
                ));
            }
            if let Some(cidr) = peer["ipBlock"]["cidr"].as_str()
                && cidr.ends_with("/0")
            {
                problems.push(format!("dap admitted from every address: {peer}"));
            }
        }
    }
    problems
}

/// Whether a Service port reaches the DAP port (by Service port, target port or name).
fn service_exposes_dap(service: &Value) -> bool {
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| {
            p["port"] == 5678
                || p["targetPort"] == 5678
                || p["targetPort"] == "dap"
                || p["name"] == "dap"
        })
}

#[test]
fn network_policy_admits_dap_and_metrics_only_from_where_intended() {
    let kustomization = &yaml_docs("deploy/kubernetes/kustomization.yaml")[0];
    assert!(
        kustomization["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .any(|r| r == "networkpolicy.yaml"),
        "networkpolicy.yaml is not in the kustomization"
    );
    let docs = yaml_docs("deploy/kubernetes/deployment.yaml");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let mut pod_ports = serde_json::Map::new();
    for container in deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
    {
        for port in container["ports"].as_array().into_iter().flatten() {
            let name = port["name"].as_str().expect("port name");
            pod_ports.insert(name.to_owned(), port["containerPort"].clone());
        }
    }
    let pod_ports = Value::Object(pod_ports);
    assert_eq!(pod_ports["dap"], 5678);
    assert_eq!(pod_ports["http-metrics"], 5680);

    let policy = &yaml_docs("deploy/kubernetes/networkpolicy.yaml")[0];
    assert_eq!(policy["kind"], "NetworkPolicy");
    let problems = network_policy_problems(policy, pod_labels, &pod_ports);
    assert!(problems.is_empty(), "{problems:#?}");

    let service = &yaml_docs("deploy/kubernetes/service.yaml")[0];
    assert!(
        !service_exposes_dap(service),
        "the Service exposes the DAP port to every pod: {}",
        service["spec"]["ports"]
    );

    // Each check fails on a policy or Service that breaks it: each case sets the value at a
    // JSON pointer (or appends it to the array there when the pointer ends in `/-`) and
    // must be reported by the check named by the expected message.
    let rule_index = |port: &str| {
        policy["spec"]["ingress"]
            .as_array()
            .expect("ingress")
            .iter()
            .position(|r| {
                r["ports"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["port"] == port))
            })
            .unwrap_or_else(|| panic!("a rule for {port}"))
    };
    let metrics = format!("/spec/ingress/{}", rule_index("http-metrics"));
    let dap = format!("/spec/ingress/{}", rule_index("dap"));
    let peer = policy
        .pointer(&format!("{metrics}/from/0"))
        .expect("peer")
        .clone();
    let broken: Vec<(&str, &str, String, Value)> = vec![
        (
            "other pods selected",
            "is not the pod template's labels",
            "/spec/podSelector/matchLabels".into(),
            serde_json::json!({"app": "x"}),
        ),
        (
            "not isolated for ingress",
            "policyTypes lacks Ingress",
            "/spec/policyTypes".into(),
            serde_json::json!(["Egress"]),
        ),
        (
            "metrics from everywhere",
            "http-metrics admitted from everywhere",
            format!("{metrics}/from"),
            serde_json::json!([]),
        ),
        (
            "metrics from any pod in monitoring, or prometheus pods here",
            "http-metrics admitted from a peer",
            format!("{metrics}/from"),
            serde_json::json!([
                {"namespaceSelector": peer["namespaceSelector"]},
                {"podSelector": peer["podSelector"]},
            ]),
        ),
        (
            "metrics from prometheus pods of any namespace",
            "http-metrics admitted from a peer",
            format!("{metrics}/from/0/namespaceSelector"),
            serde_json::json!({}),
        ),
        (
            "metrics from every address",
            "http-metrics admitted from a peer",
            format!("{metrics}/from/-"),
            serde_json::json!({"ipBlock": {"cidr": "0.0.0.0/0"}}),
        ),
        (
            "a port the pod lacks",
            "not a port of the pod",
            format!("{metrics}/ports/0/port"),
            serde_json::json!("metrics"),
        ),
        (
            "dap from everywhere",
            "dap admitted from everywhere",
            format!("{dap}/from"),
            serde_json::json!([]),
        ),
        (
            "dap from every namespace",
            "dap admitted from every namespace",
            format!("{dap}/from/0"),
            serde_json::json!({"namespaceSelector": {}, "podSelector": {"matchLabels": {"a": "b"}}}),
        ),
        (
            "dap from every pod here",
            "dap admitted from every pod",
            format!("{dap}/from/0"),
            serde_json::json!({"podSelector": {}}),
        ),
        (
            "dap from every address",
            "dap admitted from every address",
            format!("{dap}/from/0"),
            serde_json::json!({"ipBlock": {"cidr": "::/0"}}),
        ),
        (
            "5678 by number from everywhere",
            "dap admitted from everywhere",
            "/spec/ingress/-".into(),
            serde_json::json!({"ports": [{"port": 5678}]}),
        ),
        (
            "a port range over 5678 from everywhere",
            "dap admitted from everywhere",
            "/spec/ingress/-".into(),
            serde_json::json!({"ports": [{"port": 5000, "endPort": 6000}]}),
        ),
        (
            "every port from everywhere",
            "dap admitted from everywhere",
            "/spec/ingress/-".into(),
            serde_json::json!({}),
        ),
    ];
    for (what, expected, pointer, value) in broken {
        let mut policy = policy.clone();
        if let Some(array) = pointer.strip_suffix("/-") {
            policy
                .pointer_mut(array)
                .and_then(Value::as_array_mut)
                .unwrap_or_else(|| panic!("{array}"))
                .push(value);
        } else {
            *policy
                .pointer_mut(&pointer)
                .unwrap_or_else(|| panic!("{pointer}")) = value;
        }
        let problems = network_policy_problems(&policy, pod_labels, &pod_ports);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "not caught: {what} (expected \"{expected}\", got {problems:#?})"
        );
    }
    for port in [
        serde_json::json!({"name": "dap", "port": 5678, "targetPort": "dap"}),
        serde_json::json!({"name": "debug", "port": 80, "targetPort": 5678}),
    ] {
        let mut service = service.clone();
        service["spec"]["ports"]
            .as_array_mut()
            .expect("ports")
            .push(port);
        assert!(service_exposes_dap(&service));
    }
}

/// The attach-on-demand variants (README "Attach on demand"): the app runs plain Python
/// with no debugpy and no sidecar binary, and the sidecar shares its namespaces with the
/// ptrace rights injecting takes.
#[test]
fn the_attach_on_demand_variants_have_a_plain_app_and_a_sidecar_with_ptrace_rights() {
    let compose = &yaml_docs("compose.ondemand.yaml")[0];
    let sidecar = &compose["services"]["sidecar"];
    assert_eq!(sidecar["network_mode"], "service:app");
    assert_eq!(sidecar["pid"], "service:app");
    assert_eq!(sidecar["cap_add"], serde_json::json!(["SYS_PTRACE"]));
    assert_eq!(sidecar["environment"]["DAP_SIDECAR_INJECT__MODE"], "auto");
    assert_eq!(sidecar["build"]["target"], "sidecar-ondemand");
    assert_eq!(
        compose["services"]["app"]["build"]["target"],
        "demo-app-plain"
    );
    for port in compose["services"]["app"]["ports"]
        .as_array()
        .expect("ports")
    {
        assert!(
            port.as_str().expect("port").starts_with("127.0.0.1:"),
            "{port}"
        );
    }
    // The app's image stage: plain Python, nothing of debugpy or the sidecar.
    let dockerfile = fs::read_to_string(repo_dir().join("Dockerfile")).expect("Dockerfile");
    let stage: String = dockerfile
        .lines()
        .skip_while(|l| !l.ends_with("AS demo-app-plain"))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(stage.contains("CMD [\"python3.14\""), "{stage}");
    assert!(
        !stage.contains("debugpy") && !stage.contains("dap-sidecar"),
        "{stage}"
    );

    let docs = yaml_docs("deploy/kubernetes-ondemand/deployment.yaml");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["shareProcessNamespace"], true);
    let containers = pod["containers"].as_array().expect("containers");
    let app = containers.iter().find(|c| c["name"] == "app").expect("app");
    let command = app["command"].to_string();
    assert!(
        !command.contains("debugpy") && !command.contains("dap-sidecar"),
        "{command}"
    );
    assert!(app.get("livenessProbe").is_none());
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "dap-sidecar")
        .expect("sidecar");
    let caps = &sidecar["securityContext"]["capabilities"];
    assert_eq!(caps["drop"], serde_json::json!(["ALL"]));
    assert_eq!(caps["add"], serde_json::json!(["SYS_PTRACE", "CHOWN"]));
    assert_eq!(sidecar["securityContext"]["runAsUser"], 0);
    let config_map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("ConfigMap");
    let config = config_map["data"]["dap-sidecar.yaml"]
        .as_str()
        .expect("config");
    assert!(config.contains("mode: auto"), "{config}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dap-sidecar.yaml");
    fs::write(&file, config).expect("write");
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

    // The kubectl debug profile gives the ephemeral container the same rights.
    let profile = &yaml_docs("deploy/kubernetes-ondemand/kubectl-debug-profile.yaml")[0];
    assert_eq!(
        profile["securityContext"]["capabilities"]["add"],
        serde_json::json!(["SYS_PTRACE", "CHOWN"])
    );
}

#[test]
#[ignore = "kubernetes-validate (a Python venv from PyPI): run by scripts/test.sh"]
fn the_attach_on_demand_deployment_passes_strict_schema_validation() {
    let out = validate(&["deploy/kubernetes-ondemand/deployment.yaml"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
