//! The real kubectl (a subprocess with `--kubeconfig`) against the testkit server.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::process::Command;
use zen_lead_testkit::TestServer;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Holder, type: string, jsonPath: .status.holder.name}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1, maximum: 10, default: 3}
              color: {type: string, enum: [red, blue]}
          status:
            type: object
            properties:
              holder:
                type: object
                properties:
                  name: {type: string}
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, labels: {team: a}}
spec: {color: red}
"#;

/// Output of one kubectl run.
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl finishes")
        .expect("kubectl output");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(kubeconfig, args, stdin).await;
    assert!(out.ok, "kubectl {args:?} failed: {}", out.stderr);
    out.stdout
}

async fn setup() -> (TestServer, std::path::PathBuf) {
    let server = TestServer::start().await.expect("server");
    let kc = server.kubeconfig_path().to_path_buf();
    ok(&kc, &["apply", "-f", "-"], Some(CRD)).await;
    ok(&kc, &["apply", "-f", "-"], Some(WIDGET)).await;
    (server, kc)
}

#[tokio::test]
async fn apply_crd_then_custom_object_and_get() {
    let (_server, kc) = setup().await;
    let crd = ok(
        &kc,
        &[
            "get",
            "crd",
            "widgets.example.com",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ],
        None,
    )
    .await;
    assert_eq!(crd, "True");
    // The schema default was applied.
    assert_eq!(
        ok(
            &kc,
            &["get", "wd", "w1", "-o", "jsonpath={.spec.size}"],
            None
        )
        .await,
        "3"
    );
    let table = ok(&kc, &["get", "widgets"], None).await;
    assert!(
        table.starts_with("NAME") && table.contains("SIZE") && table.contains("HOLDER"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("w1") && l.contains('3')),
        "{table}"
    );
    // Label selectors.
    assert!(
        ok(&kc, &["get", "wd", "-l", "team=a", "-o", "name"], None)
            .await
            .contains("widget.example.com/w1")
    );
    assert!(
        kubectl(&kc, &["get", "wd", "-l", "team=b", "-o", "name"], None)
            .await
            .stdout
            .trim()
            .is_empty()
    );
    // Re-applying unchanged is a no-op.
    assert!(
        ok(&kc, &["apply", "-f", "-"], Some(WIDGET))
            .await
            .contains("unchanged")
    );
    // Schema validation and strict field validation come back as kubectl errors.
    let bad = kubectl(
        &kc,
        &[
            "patch",
            "wd",
            "w1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":50}}"#,
        ],
        None,
    )
    .await;
    assert!(
        !bad.ok && bad.stderr.contains("spec.size"),
        "{}",
        bad.stderr
    );
    let unknown = kubectl(
        &kc,
        &["apply", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {bogus: 1}\n"),
    )
    .await;
    assert!(
        !unknown.ok && unknown.stderr.contains("unknown field \"spec.bogus\""),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn patch_types_and_delete() {
    let (_server, kc) = setup().await;
    ok(
        &kc,
        &[
            "patch",
            "wd",
            "w1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":5}}"#,
        ],
        None,
    )
    .await;
    assert_eq!(
        ok(
            &kc,
            &["get", "wd", "w1", "-o", "jsonpath={.spec.size}"],
            None
        )
        .await,
        "5"
    );
    ok(
        &kc,
        &[
            "patch",
            "wd",
            "w1",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/size","value":6}]"#,
        ],
        None,
    )
    .await;
    assert_eq!(
        ok(
            &kc,
            &["get", "wd", "w1", "-o", "jsonpath={.spec.size}"],
            None
        )
        .await,
        "6"
    );
    // Strategic merge is for built-ins; custom resources answer 415 as the real server does.
    let smp = kubectl(
        &kc,
        &[
            "patch",
            "wd",
            "w1",
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"size":7}}"#,
        ],
        None,
    )
    .await;
    assert!(!smp.ok, "strategic merge on a CR must fail");
    ok(
        &kc,
        &["create", "configmap", "cm1", "--from-literal=a=b"],
        None,
    )
    .await;
    ok(
        &kc,
        &[
            "patch",
            "configmap",
            "cm1",
            "--type",
            "strategic",
            "-p",
            r#"{"data":{"c":"d"}}"#,
        ],
        None,
    )
    .await;
    assert_eq!(
        ok(
            &kc,
            &["get", "cm", "cm1", "-o", "jsonpath={.data.a}{.data.c}"],
            None
        )
        .await,
        "bd"
    );

    ok(&kc, &["delete", "wd", "w1"], None).await;
    let gone = kubectl(&kc, &["get", "wd", "w1"], None).await;
    assert!(
        !gone.ok && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );
}

#[tokio::test]
async fn apply_server_side() {
    let (_server, kc) = setup().await;
    let applied = ok(
        &kc,
        &["apply", "--server-side", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {size: 2}\n"),
    )
    .await;
    assert!(applied.contains("serverside-applied"), "{applied}");
    let managers = ok(
        &kc,
        &[
            "get",
            "wd",
            "w3",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
        None,
    )
    .await;
    assert!(managers.contains("kubectl"), "{managers}");

    let conflict = kubectl(
        &kc,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "-f",
            "-",
        ],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {size: 4}\n"),
    )
    .await;
    assert!(
        !conflict.ok && conflict.stderr.contains("conflict"),
        "{}",
        conflict.stderr
    );
    ok(
        &kc,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "other",
            "-f",
            "-",
        ],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {size: 4}\n"),
    )
    .await;
    assert_eq!(
        ok(
            &kc,
            &["get", "wd", "w3", "-o", "jsonpath={.spec.size}"],
            None
        )
        .await,
        "4"
    );
}

#[tokio::test]
async fn get_watch_prints_the_change() {
    let (_server, kc) = setup().await;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .args([
            "get",
            "wd",
            "-w",
            "-o",
            "jsonpath={.metadata.name}={.spec.size}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl -w");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("initial line")
        .expect("read")
        .expect("line");
    assert_eq!(first, "w1=3");
    ok(
        &kc,
        &[
            "patch",
            "wd",
            "w1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":8}}"#,
        ],
        None,
    )
    .await;
    let changed = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("change line")
        .expect("read")
        .expect("line");
    assert_eq!(changed, "w1=8");
    child.kill().await.expect("kill kubectl");
}

#[tokio::test]
async fn auth_can_i_with_rbac() {
    // kubectl sends bearer tokens only over TLS.
    let server = TestServer::builder()
        .auth(true)
        .tls(true)
        .start()
        .await
        .expect("server");
    let kc = server.kubeconfig_path().to_path_buf();
    server
        .tokens()
        .add_service_account("app-token", "default", "app");
    server.tokens().add_user("alice-token", "alice", &[]);
    let rbac = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: lease-writer, namespace: default}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: app-leases, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: lease-writer}
subjects:
- {kind: ServiceAccount, name: app, namespace: default}
"#;
    ok(&kc, &["apply", "-f", "-"], Some(rbac)).await;
    assert_eq!(
        ok(&kc, &["auth", "can-i", "delete", "nodes"], None)
            .await
            .trim(),
        "yes"
    );
    let as_app = |verb: &'static str, res: &'static str| {
        let kc = kc.clone();
        async move {
            kubectl(
                &kc,
                &["--token", "app-token", "auth", "can-i", verb, res],
                None,
            )
            .await
            .stdout
            .trim()
            .to_string()
        }
    };
    assert_eq!(as_app("update", "leases.coordination.k8s.io").await, "yes");
    assert_eq!(as_app("delete", "leases.coordination.k8s.io").await, "no");
    assert_eq!(as_app("get", "pods").await, "no");
    // Denied for real: 403 with kube-apiserver's message.
    let denied = kubectl(&kc, &["--token", "alice-token", "get", "leases"], None).await;
    assert!(
        !denied.ok
            && denied.stderr.contains("Forbidden")
            && denied
                .stderr
                .contains("User \"alice\" cannot list resource \"leases\""),
        "{}",
        denied.stderr
    );
    let allowed = kubectl(&kc, &["--token", "app-token", "get", "leases"], None).await;
    assert!(allowed.ok, "{}", allowed.stderr);
    // Impersonation by the admin (kubectl --as).
    let as_sa = kubectl(
        &kc,
        &[
            "auth",
            "can-i",
            "update",
            "leases",
            "--as",
            "system:serviceaccount:default:app",
        ],
        None,
    )
    .await;
    assert_eq!(as_sa.stdout.trim(), "yes");
    let as_alice = kubectl(
        &kc,
        &["auth", "can-i", "update", "leases", "--as", "alice"],
        None,
    )
    .await;
    assert_eq!(as_alice.stdout.trim(), "no");
    let bad = kubectl(&kc, &["--token", "nope", "get", "leases"], None).await;
    assert!(
        !bad.ok && bad.stderr.contains("Unauthorized"),
        "{}",
        bad.stderr
    );
}

#[tokio::test]
async fn serve_binary_prints_url_writes_kubeconfig_and_exits_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("testkit-bin-{}", std::process::id()));
    let kc = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zen-lead-testkit"))
        .args(["serve", "--addr", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kc)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("ready line")
        .expect("read")
        .expect("line");
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    assert_eq!(
        ok(&kc, &["get", "ns", "default", "-o", "name"], None)
            .await
            .trim(),
        "namespace/default"
    );
    assert_eq!(
        ok(
            &kc,
            &[
                "config",
                "view",
                "--minify",
                "-o",
                "jsonpath={.contexts[0].context.namespace}"
            ],
            None
        )
        .await,
        "default"
    );
    let pid = child.id().expect("pid");
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The project's LeaderPolicy CRD, as committed by the protocol work.
fn leader_policy_crd() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/crd/bases/coordination.kube-zen.io_leaderpolicies.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn leader_policy_crd_prints_its_columns() {
    let server = TestServer::start().await.expect("server");
    let kc = server.kubeconfig_path().to_path_buf();
    ok(&kc, &["apply", "-f", "-"], Some(&leader_policy_crd())).await;
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standby-daemon.yaml"),
    )
    .expect("example");
    ok(&kc, &["apply", "-f", "-"], Some(&example)).await;
    let name = ok(
        &kc,
        &["get", "lp", "-o", "jsonpath={.items[0].metadata.name}"],
        None,
    )
    .await;
    ok(
        &kc,
        &["patch", "lp", &name, "--subresource=status", "--type", "merge", "-p",
          r#"{"status":{"currentHolder":{"name":"pod-a"},"phase":"Leading","candidates":3,"term":2}}"#],
        None,
    )
    .await;
    let table = ok(&kc, &["get", "lp"], None).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "LEADER", "PHASE", "CANDIDATES", "TERM", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .expect("row")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..5],
        [name.as_str(), "pod-a", "Leading", "3", "2"],
        "{table}"
    );
}

/// Regression: kubectl falls back to /openapi/v2 for kinds the v3 documents lack, and Go's mime
/// parser rejected the `@` in the old content type.
#[tokio::test]
async fn apply_of_an_unserved_kind_reports_the_missing_mapping_and_deployments_reapply() {
    let server = TestServer::start().await.expect("server");
    let kc = server.kubeconfig_path().to_path_buf();
    let missing = kubectl(
        &kc,
        &["apply", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Nothing\nmetadata: {name: thing}\n"),
    )
    .await;
    assert!(
        !missing.ok && missing.stderr.contains("no matches for kind \"Nothing\""),
        "{}",
        missing.stderr
    );

    let deploy = |replicas: u32, image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: d}}}}\n  template:\n    metadata: {{labels: {{app: d}}}}\n    spec:\n      containers:\n      - {{name: main, image: {image}}}\n      - {{name: side, image: side:1}}\n"
        )
    };
    ok(&kc, &["apply", "-f", "-"], Some(&deploy(1, "app:1"))).await;
    ok(&kc, &["apply", "-f", "-"], Some(&deploy(2, "app:2"))).await;
    let got = ok(
        &kc,
        &["get", "deploy", "d", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[*].image} {.metadata.generation}"],
        None,
    )
    .await;
    assert_eq!(got, "2 app:2 side:1 2");
    let diff = kubectl(&kc, &["diff", "-f", "-"], Some(&deploy(3, "app:2"))).await;
    assert!(
        diff.stdout.contains("+  replicas: 3"),
        "{}{}",
        diff.stdout,
        diff.stderr
    );
}

/// kubectl's typed `create` subcommands send protobuf bodies.
#[tokio::test]
async fn typed_create_commands_and_impersonated_can_i() {
    let server = TestServer::start().await.expect("server");
    let kc = server.kubeconfig_path().to_path_buf();
    ok(
        &kc,
        &[
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=pw=hunter2",
        ],
        None,
    )
    .await;
    assert_eq!(
        ok(
            &kc,
            &["get", "secret", "s1", "-o", "jsonpath={.data.pw}"],
            None
        )
        .await,
        "aHVudGVyMg=="
    );
    ok(&kc, &["create", "serviceaccount", "bot"], None).await;
    ok(&kc, &["create", "namespace", "other"], None).await;
    ok(
        &kc,
        &[
            "create",
            "role",
            "r",
            "--verb=get,list",
            "--resource=pods,leases.coordination.k8s.io",
        ],
        None,
    )
    .await;
    ok(
        &kc,
        &[
            "create",
            "rolebinding",
            "rb",
            "--role=r",
            "--serviceaccount=default:bot",
        ],
        None,
    )
    .await;
    let can = |verb: &'static str, res: &'static str| {
        let kc = kc.clone();
        async move {
            kubectl(
                &kc,
                &[
                    "auth",
                    "can-i",
                    verb,
                    res,
                    "--as",
                    "system:serviceaccount:default:bot",
                ],
                None,
            )
            .await
            .stdout
            .trim()
            .to_string()
        }
    };
    assert_eq!(can("list", "leases.coordination.k8s.io").await, "yes");
    assert_eq!(can("get", "pods").await, "yes");
    assert_eq!(can("delete", "pods").await, "no");
    let unsupported = kubectl(&kc, &["create", "deployment", "d", "--image=x"], None).await;
    assert!(
        !unsupported.ok && unsupported.stderr.contains("protobuf"),
        "{}",
        unsupported.stderr
    );
}
