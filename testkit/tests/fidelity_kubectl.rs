//! What kubectl users read and ask, answered as kube-apiserver answers: Lease and Event tables,
//! `kubectl events --for`, `kubectl auth whoami` and `kubectl auth can-i --list`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use zen_lead_testkit::TestServer;

/// How long one kubectl run may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);

/// Runs kubectl with `stdin`; returns (success, stdout, stderr).
async fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
    }
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("kubectl finishes")
        .expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs kubectl and asserts it succeeded; returns stdout.
async fn ok(server: &TestServer, args: &[&str], stdin: Option<&str>) -> String {
    let (success, stdout, stderr) = kubectl(server.kubeconfig_path(), args, stdin).await;
    assert!(success, "kubectl {args:?} failed: {stderr}");
    stdout
}

/// The whitespace-separated words of each line.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn get_lease_shows_the_holder() {
    let server = TestServer::start().await.expect("server");
    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: pool-a}\nspec: {holderIdentity: pod-1, leaseDurationSeconds: 15}\n";
    ok(&server, &["apply", "-f", "-"], Some(lease)).await;
    let out = ok(&server, &["get", "lease"], None).await;
    let table = rows(&out);
    assert_eq!(table[0], ["NAME", "HOLDER", "AGE"], "{out}");
    assert_eq!(table[1][..2], ["pool-a", "pod-1"], "{out}");
}

const EVENTS: &str = r#"
apiVersion: v1
kind: Event
metadata: {name: p1.one}
involvedObject: {apiVersion: v1, kind: Pod, name: p1, namespace: default}
reason: Elected
type: Normal
message: p1 leads the pool
count: 1
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:00:00Z"
---
apiVersion: v1
kind: Event
metadata: {name: p2.one}
involvedObject: {apiVersion: v1, kind: Pod, name: p2, namespace: default}
reason: Demoted
type: Warning
message: p2 stepped down
---
apiVersion: v1
kind: Event
metadata: {name: cm.one}
involvedObject: {apiVersion: v1, kind: ConfigMap, name: p1, namespace: default}
reason: Other
type: Normal
message: not about the pod
"#;

#[tokio::test]
async fn get_events_shows_kubectl_columns_and_events_for_filters_by_object() {
    let server = TestServer::start().await.expect("server");
    ok(&server, &["apply", "-f", "-"], Some(EVENTS)).await;
    let out = ok(&server, &["get", "events"], None).await;
    let table = rows(&out);
    assert_eq!(
        table[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    let p1 = table
        .iter()
        .find(|r| r.contains(&"pod/p1".to_string()))
        .unwrap_or_else(|| panic!("a row for pod/p1: {out}"));
    assert_eq!(
        p1[1..],
        ["Normal", "Elected", "pod/p1", "p1", "leads", "the", "pool"],
        "{out}"
    );
    let for_pod = ok(&server, &["events", "--for", "pod/p1"], None).await;
    assert!(for_pod.contains("p1 leads the pool"), "{for_pod}");
    assert!(!for_pod.contains("p2 stepped down"), "{for_pod}");
    assert!(!for_pod.contains("not about the pod"), "{for_pod}");
    let warnings = ok(
        &server,
        &[
            "get",
            "events",
            "--field-selector",
            "type=Warning,reason=Demoted",
        ],
        None,
    )
    .await;
    assert!(warnings.contains("p2 stepped down"), "{warnings}");
    assert!(!warnings.contains("p1 leads"), "{warnings}");
}

#[tokio::test]
async fn auth_whoami_and_can_i_list() {
    let server = TestServer::start().await.expect("server");
    let me = ok(&server, &["auth", "whoami"], None).await;
    assert!(
        rows(&me)
            .iter()
            .any(|r| r[..] == ["Username", "testkit-admin"]),
        "{me}"
    );
    assert!(me.contains("system:masters"), "{me}");
    let all = ok(&server, &["auth", "can-i", "--list"], None).await;
    assert!(
        rows(&all)
            .iter()
            .any(|r| r[..] == ["*.*", "[]", "[]", "[*]"]),
        "{all}"
    );
    let rbac = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: lease-writer, namespace: default}
rules:
- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: lease-writer, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: lease-writer}
subjects:
- {kind: ServiceAccount, name: bot, namespace: default}
"#;
    ok(&server, &["apply", "-f", "-"], Some(rbac)).await;
    let bot = ok(
        &server,
        &[
            "--as",
            "system:serviceaccount:default:bot",
            "auth",
            "can-i",
            "--list",
        ],
        None,
    )
    .await;
    assert!(
        rows(&bot)
            .iter()
            .any(|r| r[..] == ["leases.coordination.k8s.io", "[]", "[]", "[get", "update]"]),
        "{bot}"
    );
    assert!(
        rows(&bot).iter().any(|r| r.first().map(String::as_str)
            == Some("selfsubjectaccessreviews.authorization.k8s.io")),
        "{bot}"
    );
    assert!(!bot.contains("*.*"), "{bot}");
    let who = ok(
        &server,
        &[
            "--as",
            "system:serviceaccount:default:bot",
            "auth",
            "whoami",
        ],
        None,
    )
    .await;
    assert!(who.contains("system:serviceaccount:default:bot"), "{who}");
    assert!(who.contains("system:serviceaccounts:default"), "{who}");
}

#[tokio::test]
async fn kubectl_apply_of_a_lease_with_a_millisecond_renew_time_fails() {
    let server = TestServer::start().await.expect("server");
    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: ms}\nspec: {renewTime: \"2026-01-01T00:00:00.123Z\"}\n";
    let (success, _, stderr) =
        kubectl(server.kubeconfig_path(), &["apply", "-f", "-"], Some(lease)).await;
    assert!(!success && stderr.contains("parsing time"), "{stderr}");
}

/// kubectl validates strictly by default: a misspelt Lease field is refused, not dropped.
#[tokio::test]
async fn kubectl_apply_of_a_lease_with_a_misspelt_field_fails() {
    let server = TestServer::start().await.expect("server");
    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: typo}\nspec: {holder: pod-1}\n";
    let (success, _, stderr) =
        kubectl(server.kubeconfig_path(), &["apply", "-f", "-"], Some(lease)).await;
    assert!(
        !success && stderr.contains("unknown field \"spec.holder\""),
        "{stderr}"
    );
    let (success, _, stderr) = kubectl(
        server.kubeconfig_path(),
        &["apply", "--validate=warn", "-f", "-"],
        Some(lease),
    )
    .await;
    assert!(success, "{stderr}");
    assert!(stderr.contains("unknown field \"spec.holder\""), "{stderr}");
}
