//! The install manifests and examples apply cleanly with the real `kubectl`, in the documented
//! order (docs/INSTALL.md), the controller's Deployment is hardened as docs/INSTALL.md says, and
//! the LeaderPolicy CRD behaves as docs/API.md says.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use zen_lead_testkit::TestServer;

fn kubectl_output(server: &TestServer, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kubectl (it must be on the PATH)")
}

fn kubectl(server: &TestServer, args: &[&str]) -> (bool, String) {
    let out = kubectl_output(server, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Applies cleanly: exit 0, nothing on stderr (no error, no warning), every object created.
/// Returns the `kind/name` of each object kubectl reports.
fn apply_cleanly(server: &TestServer, args: &[&str]) -> BTreeSet<String> {
    let out = kubectl_output(server, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "kubectl {} did not apply cleanly:\n{stdout}{stderr}",
        args.join(" ")
    );
    stdout
        .lines()
        .map(|line| {
            let (object, verb) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("unexpected kubectl output line {line:?}"));
            assert_eq!(verb, "created", "on an empty server: {line}");
            object.to_string()
        })
        .collect()
}

/// The objects of the install (docs/INSTALL.md), as kubectl names them.
const INSTALLED: [&str; 9] = [
    "customresourcedefinition.apiextensions.k8s.io/leaderpolicies.coordination.kube-zen.io",
    "clusterrole.rbac.authorization.k8s.io/zen-lead-workload",
    "clusterrole.rbac.authorization.k8s.io/zen-lead-controller",
    "clusterrolebinding.rbac.authorization.k8s.io/zen-lead-controller",
    "namespace/zen-lead-system",
    "serviceaccount/zen-lead-controller",
    "deployment.apps/zen-lead-controller",
    "role.rbac.authorization.k8s.io/zen-lead-gate",
    "rolebinding.rbac.authorization.k8s.io/zen-lead-gate",
];

fn installed() -> BTreeSet<String> {
    INSTALLED.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_in_three_steps_applies_cleanly_on_an_empty_server() {
    let server = TestServer::start().await.expect("start the testkit");
    let mut objects = BTreeSet::new();
    // Exactly docs/INSTALL.md's commands, in that order; a Kustomization file in any of these
    // directories would be sent as an object and fail here.
    for dir in ["config/crd/bases/", "config/rbac/", "deploy/"] {
        objects.extend(apply_cleanly(&server, &["apply", "-f", dir]));
    }
    assert_eq!(objects, installed());
    // The binding names the ServiceAccount that the Deployment runs as.
    let subject = kubectl_ok(
        &server,
        &[
            "get",
            "clusterrolebinding/zen-lead-controller",
            "-o",
            "jsonpath={.subjects[0].namespace}/{.subjects[0].name} {.roleRef.name}",
        ],
    );
    let account = kubectl_ok(
        &server,
        &[
            "get",
            "-n",
            "zen-lead-system",
            "deployment/zen-lead-controller",
            "-o",
            "jsonpath={.spec.template.spec.serviceAccountName}",
        ],
    );
    assert_eq!(
        subject.trim(),
        format!("zen-lead-system/{} zen-lead-controller", account.trim())
    );
    // Gates may read the controller's Lease, and nothing else in its namespace.
    let gate = kubectl_ok(
        &server,
        &[
            "get",
            "-n",
            "zen-lead-system",
            "role/zen-lead-gate",
            "rolebinding/zen-lead-gate",
            "-o",
            "json",
        ],
    );
    let gate: Value = serde_json::from_str(&gate).expect("gate RBAC JSON");
    let (role, binding) = (&gate["items"][0], &gate["items"][1]);
    assert_eq!(
        role["rules"],
        serde_json::json!([{
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["zen-lead-controller"],
            "verbs": ["get"],
        }])
    );
    assert_eq!(binding["roleRef"]["name"], "zen-lead-gate");
    assert_eq!(binding["subjects"][0]["name"], "system:serviceaccounts");
    // Applying the same install again changes nothing.
    for dir in ["config/crd/bases/", "config/rbac/", "deploy/"] {
        let text = kubectl_ok(&server, &["apply", "-f", dir]);
        assert!(
            text.lines().all(|l| l.ends_with(" unchanged")),
            "re-applying {dir}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_with_kustomize_applies_the_same_objects_on_an_empty_server() {
    let server = TestServer::start().await.expect("start the testkit");
    let objects = apply_cleanly(&server, &["apply", "-k", "deploy/"]);
    assert_eq!(objects, installed(), "kubectl apply -k deploy/");
    // Both ways install the same thing: the three-step install finds it all unchanged.
    for dir in ["config/crd/bases/", "config/rbac/", "deploy/"] {
        let text = kubectl_ok(&server, &["apply", "-f", dir]);
        assert!(
            text.lines().all(|l| l.ends_with(" unchanged")),
            "after -k, applying {dir}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_deployment_is_hardened_and_probed_as_documented() {
    let server = TestServer::start().await.expect("start the testkit");
    for dir in ["config/crd/bases/", "config/rbac/", "deploy/"] {
        apply_cleanly(&server, &["apply", "-f", dir]);
    }
    let text = kubectl_ok(
        &server,
        &[
            "get",
            "-n",
            "zen-lead-system",
            "deployment/zen-lead-controller",
            "-o",
            "json",
        ],
    );
    let deployment: Value = serde_json::from_str(&text).expect("deployment JSON");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let selector = &spec["selector"]["matchLabels"];
    let pod = &spec["template"]["spec"];

    // Two replicas on two nodes: spread by hostname over the Deployment's own pods.
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread["labelSelector"]["matchLabels"], *selector);
    let anti =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        anti["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        anti["podAffinityTerm"]["labelSelector"]["matchLabels"],
        *selector
    );

    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let security = &c["securityContext"];
    assert!(
        security["runAsUser"].as_u64().is_some_and(|uid| uid > 0),
        "a numeric non-root user, so the kubelet can check runAsNonRoot on a scratch image: {security}"
    );
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));

    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource}: {}",
                c["resources"]
            );
        }
    }

    // The probes hit the controller's health endpoints on its metrics port.
    let port = &c["ports"][0];
    assert_eq!(port["name"], "metrics");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            get["port"] == port["name"] || get["port"] == port["containerPort"],
            "{probe} port {} is the metrics port",
            get["port"]
        );
    }

    // Its identity and its own Lease's namespace come from the downward API.
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = c["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("env {name} missing"));
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field, "{name}");
    }
}

fn kubectl_ok(server: &TestServer, args: &[&str]) -> String {
    let (ok, text) = kubectl(server, args);
    assert!(ok, "kubectl {} failed:\n{text}", args.join(" "));
    text
}

async fn server_with_crd() -> TestServer {
    let server = TestServer::start().await.expect("start the testkit");
    kubectl_ok(&server, &["apply", "-f", "config/crd/bases/"]);
    kubectl_ok(
        &server,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/leaderpolicies.coordination.kube-zen.io",
        ],
    );
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_then_every_example_applies_cleanly() {
    let server = server_with_crd().await;
    kubectl_ok(&server, &["apply", "-f", "config/rbac/"]);
    kubectl_ok(&server, &["apply", "-f", "deploy/"]);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut applied = 0;
    for entry in std::fs::read_dir(&examples).expect("read examples/") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = kubectl_ok(
                &server,
                &["apply", "-f", path.to_str().expect("utf-8 path")],
            );
            assert!(
                text.contains("created") || text.contains("configured"),
                "{}: {text}",
                path.display()
            );
            applied += 1;
        }
    }
    assert!(
        applied >= 5,
        "expected the five example manifests, applied {applied}"
    );
    // What the examples created is really there.
    kubectl_ok(
        &server,
        &["get", "cronjob/nightly-report", "cronjob/billing-export"],
    );
    kubectl_ok(
        &server,
        &["get", "deployment/sync-daemon", "lp/sync-daemon"],
    );
    kubectl_ok(
        &server,
        &[
            "get",
            "deployment/my-app",
            "lp/my-pool",
            "service/my-app-leader",
        ],
    );
    kubectl_ok(&server, &["get", "clusterrole/zen-lead-workload"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_policy_defaults_and_short_name() {
    let server = server_with_crd().await;
    let policy = "apiVersion: coordination.kube-zen.io/v1alpha1\nkind: LeaderPolicy\nmetadata:\n  name: my-pool\nspec: {}\n";
    let file = tempfile(policy);
    kubectl_ok(&server, &["apply", "-f", &file]);
    let spec = kubectl_ok(
        &server,
        &[
            "get",
            "lp",
            "my-pool",
            "-o",
            "jsonpath={.spec.leaseDurationSeconds}/{.spec.renewDeadlineSeconds}/{.spec.retryPeriodSeconds}/{.spec.identityStrategy}/{.spec.followerMode}",
        ],
    );
    assert_eq!(spec.trim(), "15/10/2/pod/standby");
    // docs/API.md's printer columns.
    let table = kubectl_ok(&server, &["get", "leaderpolicy", "my-pool"]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "LEADER", "PHASE", "CANDIDATES", "TERM", "AGE"] {
        assert!(header.contains(column), "missing column {column}: {table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_policy_rejects_renew_deadline_not_below_lease_duration() {
    let server = server_with_crd().await;
    let policy = "apiVersion: coordination.kube-zen.io/v1alpha1\nkind: LeaderPolicy\nmetadata:\n  name: bad\nspec:\n  leaseDurationSeconds: 10\n  renewDeadlineSeconds: 10\n";
    let file = tempfile(policy);
    let (ok, text) = kubectl(&server, &["apply", "-f", &file]);
    assert!(
        !ok,
        "a policy with renewDeadline >= leaseDuration must be rejected:\n{text}"
    );
    assert!(
        text.contains("is invalid") && text.contains("renewDeadlineSeconds"),
        "the rejection names the rule: {text}"
    );
    let (found, _) = kubectl(&server, &["get", "lp", "bad"]);
    assert!(!found, "the rejected policy must not be stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_policy_rejects_out_of_range_and_unknown_enum() {
    let server = server_with_crd().await;
    let policy = "apiVersion: coordination.kube-zen.io/v1alpha1\nkind: LeaderPolicy\nmetadata:\n  name: bad\nspec:\n  leaseDurationSeconds: 4000\n  identityStrategy: random\n";
    let file = tempfile(policy);
    let (ok, text) = kubectl(&server, &["apply", "-f", &file]);
    assert!(
        !ok,
        "out-of-range and unknown enum must be rejected:\n{text}"
    );
    assert!(text.contains("spec.leaseDurationSeconds"), "{text}");
    assert!(text.contains("spec.identityStrategy"), "{text}");
}

/// Writes `text` to a fresh file and returns its path.
fn tempfile(text: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "zen-lead-manifest-{}-{}.yaml",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).expect("write a temp manifest");
    path.to_str().expect("utf-8 temp path").to_string()
}
