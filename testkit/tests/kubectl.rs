//! The real kubectl (a subprocess with `--kubeconfig`) against the testkit server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, Lines};
use tokio::process::Command;
use zen_lead_testkit::TestServer;

/// How long one kubectl step may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);

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

/// A Widget manifest with the given name and flow-style spec.
fn widget(name: &str, spec: &str) -> String {
    format!("apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

/// Output of one kubectl run.
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Asserts that `what` (the kubectl run) succeeded; returns its stdout.
    fn expect_ok(self, what: &str) -> String {
        assert!(self.ok, "{what} failed: {}", self.stderr);
        self.stdout
    }

    /// Asserts that kubectl failed and said `needle` on stderr.
    fn assert_fails_with(&self, needle: &str) {
        assert!(
            !self.ok && self.stderr.contains(needle),
            "expected a failure mentioning {needle:?}: {}",
            self.stderr
        );
    }
}

/// The real kubectl, pointed at one server through its kubeconfig.
struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    fn for_server(server: &TestServer) -> Self {
        Self::new(server.kubeconfig_path())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl to the end, feeding `stdin` when given; a failure is returned, not asserted.
    async fn run_input(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).await.expect("write stdin");
            drop(pipe);
        }
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("kubectl finishes")
            .expect("kubectl output");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_input(args, None).await
    }

    /// `kubectl apply -f -` of `manifest`, which may fail.
    async fn try_apply(&self, manifest: &str) -> Out {
        self.run_input(&["apply", "-f", "-"], Some(manifest)).await
    }

    /// `kubectl apply --server-side <flags> -f -` of `manifest`, which may fail.
    async fn server_side_apply(&self, flags: &[&str], manifest: &str) -> Out {
        let args: Vec<&str> = ["apply", "--server-side"]
            .into_iter()
            .chain(flags.iter().copied())
            .chain(["-f", "-"])
            .collect();
        self.run_input(&args, Some(manifest)).await
    }

    /// Runs kubectl and asserts it succeeded; returns its stdout.
    async fn ok_input(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.run_input(args, stdin)
            .await
            .expect_ok(&format!("kubectl {args:?}"))
    }

    async fn ok(&self, args: &[&str]) -> String {
        self.ok_input(args, None).await
    }

    /// `kubectl apply -f -` of `manifest`, asserted to succeed.
    async fn apply(&self, manifest: &str) -> String {
        self.ok_input(&["apply", "-f", "-"], Some(manifest)).await
    }

    /// `kubectl get <kind> <name> -o jsonpath=<path>`, asserted to succeed.
    async fn jsonpath(&self, kind: &str, name: &str, path: &str) -> String {
        self.ok(&["get", kind, name, "-o", &format!("jsonpath={path}")])
            .await
    }

    /// `kubectl patch <kind> <name> --type <patch_type> -p <patch>`, which may fail.
    async fn patch(&self, kind: &str, name: &str, patch_type: &str, patch: &str) -> Out {
        self.run(&["patch", kind, name, "--type", patch_type, "-p", patch])
            .await
    }

    /// The same patch, asserted to succeed.
    async fn patch_ok(&self, kind: &str, name: &str, patch_type: &str, patch: &str) -> String {
        self.ok(&["patch", kind, name, "--type", patch_type, "-p", patch])
            .await
    }

    /// kubectl's answer to `auth can-i <verb> <resource>`, asked with the identity flags in `who`.
    async fn can_i(&self, who: &[&str], verb: &str, resource: &str) -> String {
        let args: Vec<&str> = who
            .iter()
            .copied()
            .chain(["auth", "can-i", verb, resource])
            .collect();
        self.run(&args).await.stdout.trim().to_string()
    }
}

/// The next line a long-running process prints, within the test's patience.
async fn next_line<R>(lines: &mut Lines<R>, what: &str) -> String
where
    R: AsyncBufRead + Unpin,
{
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect(what)
        .expect("read")
        .expect("line")
}

/// A server with the Widget CRD and the widget w1 applied.
async fn setup() -> (TestServer, Kubectl) {
    let server = TestServer::start().await.expect("server");
    let kc = Kubectl::for_server(&server);
    kc.apply(CRD).await;
    kc.apply(WIDGET).await;
    (server, kc)
}

#[tokio::test]
async fn apply_crd_then_custom_object_and_get() {
    let (_server, kc) = setup().await;
    let crd = kc
        .jsonpath(
            "crd",
            "widgets.example.com",
            "{.status.conditions[?(@.type==\"Established\")].status}",
        )
        .await;
    assert_eq!(crd, "True");
    // The schema default was applied.
    assert_eq!(kc.jsonpath("wd", "w1", "{.spec.size}").await, "3");
    let table = kc.ok(&["get", "widgets"]).await;
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
        kc.ok(&["get", "wd", "-l", "team=a", "-o", "name"])
            .await
            .contains("widget.example.com/w1")
    );
    assert!(
        kc.run(&["get", "wd", "-l", "team=b", "-o", "name"])
            .await
            .stdout
            .trim()
            .is_empty()
    );
    // Re-applying unchanged is a no-op.
    assert!(kc.apply(WIDGET).await.contains("unchanged"));
    // Schema validation and strict field validation come back as kubectl errors.
    let bad = kc
        .patch("wd", "w1", "merge", r#"{"spec":{"size":50}}"#)
        .await;
    bad.assert_fails_with("spec.size");
    let unknown = kc.try_apply(&widget("w2", "{bogus: 1}")).await;
    unknown.assert_fails_with("unknown field \"spec.bogus\"");
}

#[tokio::test]
async fn patch_types_and_delete() {
    let (_server, kc) = setup().await;
    kc.patch_ok("wd", "w1", "merge", r#"{"spec":{"size":5}}"#)
        .await;
    assert_eq!(kc.jsonpath("wd", "w1", "{.spec.size}").await, "5");
    kc.patch_ok(
        "wd",
        "w1",
        "json",
        r#"[{"op":"replace","path":"/spec/size","value":6}]"#,
    )
    .await;
    assert_eq!(kc.jsonpath("wd", "w1", "{.spec.size}").await, "6");
    // Strategic merge is for built-ins; custom resources answer 415 as the real server does.
    let smp = kc
        .patch("wd", "w1", "strategic", r#"{"spec":{"size":7}}"#)
        .await;
    assert!(!smp.ok, "strategic merge on a CR must fail");
    kc.ok(&["create", "configmap", "cm1", "--from-literal=a=b"])
        .await;
    kc.patch_ok("configmap", "cm1", "strategic", r#"{"data":{"c":"d"}}"#)
        .await;
    assert_eq!(kc.jsonpath("cm", "cm1", "{.data.a}{.data.c}").await, "bd");

    kc.ok(&["delete", "wd", "w1"]).await;
    let gone = kc.run(&["get", "wd", "w1"]).await;
    gone.assert_fails_with("NotFound");
}

#[tokio::test]
async fn apply_server_side() {
    let (_server, kc) = setup().await;
    let applied = kc
        .server_side_apply(&[], &widget("w3", "{size: 2}"))
        .await
        .expect_ok("server-side apply");
    assert!(applied.contains("serverside-applied"), "{applied}");
    let managers = kc
        .ok(&[
            "get",
            "wd",
            "w3",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert!(managers.contains("kubectl"), "{managers}");

    let conflict = kc
        .server_side_apply(&["--field-manager", "other"], &widget("w3", "{size: 4}"))
        .await;
    conflict.assert_fails_with("conflict");
    kc.server_side_apply(
        &["--force-conflicts", "--field-manager", "other"],
        &widget("w3", "{size: 4}"),
    )
    .await
    .expect_ok("forced server-side apply");
    assert_eq!(kc.jsonpath("wd", "w3", "{.spec.size}").await, "4");
}

#[tokio::test]
async fn get_watch_prints_the_change() {
    let (_server, kc) = setup().await;
    let mut child = kc
        .command(&[
            "get",
            "wd",
            "-w",
            "-o",
            "jsonpath={.metadata.name}={.spec.size}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl -w");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = next_line(&mut lines, "initial line").await;
    assert_eq!(first, "w1=3");
    kc.patch_ok("wd", "w1", "merge", r#"{"spec":{"size":8}}"#)
        .await;
    let changed = next_line(&mut lines, "change line").await;
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
    let kc = Kubectl::for_server(&server);
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
    kc.apply(rbac).await;
    assert_eq!(
        kc.ok(&["auth", "can-i", "delete", "nodes"]).await.trim(),
        "yes"
    );
    let app = ["--token", "app-token"];
    assert_eq!(
        kc.can_i(&app, "update", "leases.coordination.k8s.io").await,
        "yes"
    );
    assert_eq!(
        kc.can_i(&app, "delete", "leases.coordination.k8s.io").await,
        "no"
    );
    assert_eq!(kc.can_i(&app, "get", "pods").await, "no");
    // Denied for real: 403 with kube-apiserver's message.
    let denied = kc.run(&["--token", "alice-token", "get", "leases"]).await;
    denied.assert_fails_with("Forbidden");
    denied.assert_fails_with("User \"alice\" cannot list resource \"leases\"");
    let allowed = kc.run(&["--token", "app-token", "get", "leases"]).await;
    assert!(allowed.ok, "{}", allowed.stderr);
    // Impersonation by the admin (kubectl --as).
    let as_sa = kc
        .can_i(
            &["--as", "system:serviceaccount:default:app"],
            "update",
            "leases",
        )
        .await;
    assert_eq!(as_sa, "yes");
    let as_alice = kc.can_i(&["--as", "alice"], "update", "leases").await;
    assert_eq!(as_alice, "no");
    let bad = kc.run(&["--token", "nope", "get", "leases"]).await;
    bad.assert_fails_with("Unauthorized");
}

#[tokio::test]
async fn serve_binary_prints_url_writes_kubeconfig_and_exits_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("testkit-bin-{}", std::process::id()));
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zen-lead-testkit"))
        .args(["serve", "--addr", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = next_line(&mut lines, "ready line").await;
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{first}"
    );
    let kc = Kubectl::new(&kubeconfig);
    assert_eq!(
        kc.ok(&["get", "ns", "default", "-o", "name"]).await.trim(),
        "namespace/default"
    );
    assert_eq!(
        kc.ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.contexts[0].context.namespace}"
        ])
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
    let exit = tokio::time::timeout(WAIT, child.wait())
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
    let kc = Kubectl::for_server(&server);
    kc.apply(&leader_policy_crd()).await;
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standby-daemon.yaml"),
    )
    .expect("example");
    kc.apply(&example).await;
    let name = kc
        .ok(&["get", "lp", "-o", "jsonpath={.items[0].metadata.name}"])
        .await;
    kc.ok(&[
        "patch",
        "lp",
        &name,
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"currentHolder":{"name":"pod-a"},"phase":"Stable","candidates":3,"term":2}}"#,
    ])
    .await;
    let table = kc.ok(&["get", "lp"]).await;
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
        [name.as_str(), "pod-a", "Stable", "3", "2"],
        "{table}"
    );
}

/// Regression: kubectl falls back to /openapi/v2 for kinds the v3 documents lack, and Go's mime
/// parser rejected the `@` in the old content type.
#[tokio::test]
async fn apply_of_an_unserved_kind_reports_the_missing_mapping_and_deployments_reapply() {
    let server = TestServer::start().await.expect("server");
    let kc = Kubectl::for_server(&server);
    let missing = kc
        .try_apply("apiVersion: example.com/v1\nkind: Nothing\nmetadata: {name: thing}\n")
        .await;
    missing.assert_fails_with("no matches for kind \"Nothing\"");

    let deploy = |replicas: u32, image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: d}}}}\n  template:\n    metadata: {{labels: {{app: d}}}}\n    spec:\n      containers:\n      - {{name: main, image: {image}}}\n      - {{name: side, image: side:1}}\n"
        )
    };
    kc.apply(&deploy(1, "app:1")).await;
    kc.apply(&deploy(2, "app:2")).await;
    let got = kc
        .jsonpath(
            "deploy",
            "d",
            "{.spec.replicas} {.spec.template.spec.containers[*].image} {.metadata.generation}",
        )
        .await;
    assert_eq!(got, "2 app:2 side:1 2");
    let diff = kc
        .run_input(&["diff", "-f", "-"], Some(&deploy(3, "app:2")))
        .await;
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
    let kc = Kubectl::for_server(&server);
    kc.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=pw=hunter2",
    ])
    .await;
    assert_eq!(
        kc.jsonpath("secret", "s1", "{.data.pw}").await,
        "aHVudGVyMg=="
    );
    kc.ok(&["create", "serviceaccount", "bot"]).await;
    kc.ok(&["create", "namespace", "other"]).await;
    kc.ok(&[
        "create",
        "role",
        "r",
        "--verb=get,list",
        "--resource=pods,leases.coordination.k8s.io",
    ])
    .await;
    kc.ok(&[
        "create",
        "rolebinding",
        "rb",
        "--role=r",
        "--serviceaccount=default:bot",
    ])
    .await;
    let bot = ["--as", "system:serviceaccount:default:bot"];
    assert_eq!(
        kc.can_i(&bot, "list", "leases.coordination.k8s.io").await,
        "yes"
    );
    assert_eq!(kc.can_i(&bot, "get", "pods").await, "yes");
    assert_eq!(kc.can_i(&bot, "delete", "pods").await, "no");
    let unsupported = kc.run(&["create", "deployment", "d", "--image=x"]).await;
    unsupported.assert_fails_with("protobuf");
}
