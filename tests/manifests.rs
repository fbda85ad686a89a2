//! The install manifests and examples apply cleanly with the real `kubectl`, in the documented
//! order (README, Install), and the LeaderPolicy CRD behaves as docs/API.md says.

use std::path::Path;
use std::process::Command;

use zen_lead_testkit::TestServer;

fn kubectl(server: &TestServer, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kubectl (it must be on the PATH)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
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
        applied >= 4,
        "expected the four example manifests, applied {applied}"
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
