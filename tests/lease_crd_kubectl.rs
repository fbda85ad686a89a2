//! The committed CRD with the real `kubectl` against the testkit API server: it installs,
//! defaults an empty spec, rejects bad timings with the CEL message, and serves docs/API.md's
//! printer columns and `jsonpath` pattern.

mod common;

use std::process::Command;

use kube::api::{Api, PostParams};
use zen_lead::api::{CurrentHolder, LeaderPolicy, LeaderPolicyStatus, Phase, Renewer};

fn kubectl(
    server: &zen_lead_testkit::TestServer,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("kubectl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const POLICY: &str = "apiVersion: coordination.kube-zen.io/v1alpha1
kind: LeaderPolicy
metadata:
  name: my-pool
spec: {}
";

const BAD_TIMING: &str = "apiVersion: coordination.kube-zen.io/v1alpha1
kind: LeaderPolicy
metadata:
  name: bad
spec:
  leaseDurationSeconds: 10
  renewDeadlineSeconds: 10
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_installs_defaults_validates_and_prints_with_kubectl() {
    let server = common::server().await;
    let crd_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/crd/bases/");
    let (ok, out) = kubectl(&server, &["apply", "-f", crd_dir], None);
    assert!(ok, "kubectl apply of the CRD failed: {out}");

    // The new resource may take a moment to be discovered.
    let mut applied = (false, String::new());
    for _ in 0..50 {
        applied = kubectl(&server, &["apply", "-f", "-"], Some(POLICY));
        if applied.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        applied.0,
        "kubectl apply of a LeaderPolicy failed: {}",
        applied.1
    );

    let (ok, spec) = kubectl(
        &server,
        &["get", "lp", "my-pool", "-o", "jsonpath={.spec}"],
        None,
    );
    assert!(ok, "{spec}");
    let spec: serde_json::Value = serde_json::from_str(&spec).expect("spec json");
    assert_eq!(
        spec,
        serde_json::json!({"leaseDurationSeconds": 15, "renewDeadlineSeconds": 10,
            "retryPeriodSeconds": 2, "identityStrategy": "pod", "followerMode": "standby"})
    );

    let (ok, out) = kubectl(&server, &["apply", "-f", "-"], Some(BAD_TIMING));
    assert!(
        !ok,
        "a renew deadline equal to the lease duration was accepted"
    );
    assert!(
        out.contains("renewDeadlineSeconds must be less than leaseDurationSeconds"),
        "{out}"
    );

    // What the controller writes; then pattern 2 and the printer columns.
    let api: Api<LeaderPolicy> = Api::namespaced(server.client().expect("client"), "default");
    let mut policy = api.get("my-pool").await.expect("get");
    policy.status = Some(LeaderPolicyStatus {
        phase: Some(Phase::Stable),
        current_holder: Some(CurrentHolder {
            name: "pod-a".into(),
            uid: Some("uid-a".into()),
            identity: Some("pod-a".into()),
            since: None,
            renewer: Some(Renewer::SelfRenewing),
        }),
        candidates: Some(3),
        ready_candidates: Some(3),
        term: Some(7),
        ..Default::default()
    });
    api.replace_status("my-pool", &PostParams::default(), &policy)
        .await
        .expect("write status");
    let (ok, name) = kubectl(
        &server,
        &[
            "get",
            "leaderpolicy",
            "my-pool",
            "-o",
            "jsonpath={.status.currentHolder.name}",
        ],
        None,
    );
    assert!(ok, "{name}");
    assert_eq!(name, "pod-a");
    let (ok, table) = kubectl(&server, &["get", "lp", "my-pool"], None);
    assert!(ok, "{table}");
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "LEADER", "PHASE", "CANDIDATES", "TERM", "AGE"]
    );
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(&row[..5], ["my-pool", "pod-a", "Stable", "3", "7"]);
}
