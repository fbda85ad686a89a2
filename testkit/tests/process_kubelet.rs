//! The process kubelet: pods' containers run as real local processes, and their status, logs,
//! environment, volumes, restarts and deletion follow those processes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;
use zen_lead_testkit::TestServer;

const WAIT: Duration = Duration::from_secs(60);

async fn server() -> TestServer {
    TestServer::builder()
        .process_kubelet(true)
        .start()
        .await
        .expect("start the testkit with the process kubelet (setpriv must be installed)")
}

fn pods(server: &TestServer) -> Api<Pod> {
    Api::namespaced(server.client().expect("client"), "default")
}

async fn create(server: &TestServer, manifest: serde_json::Value) -> Pod {
    let pod: Pod = serde_json::from_value(manifest).expect("a pod");
    pods(server)
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod")
}

/// Polls the pod until `check` holds; returns it.
async fn wait_for(
    server: &TestServer,
    name: &str,
    what: &str,
    check: impl Fn(&Pod) -> bool,
) -> Pod {
    let api = pods(server);
    let until = Instant::now() + WAIT;
    loop {
        let pod = api.get_opt(name).await.expect("get pod");
        if let Some(p) = &pod
            && check(p)
        {
            return p.clone();
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}: {pod:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn kubectl(server: &TestServer, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh_pod(name: &str, restart: &str, script: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 20,
                 "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]},
    })
}

#[tokio::test]
async fn a_pod_that_prints_and_exits_succeeds_and_kubectl_logs_shows_its_output() {
    let server = server().await;
    create(
        &server,
        sh_pod(
            "hello",
            "Never",
            "echo hello from $HOSTNAME; echo to stderr >&2",
        ),
    )
    .await;
    let pod = wait_for(&server, "hello", "Succeeded", |p| phase(p) == "Succeeded").await;
    let state = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(
        (state.exit_code, state.reason.as_deref()),
        (0, Some("Completed"))
    );
    let logs = kubectl(&server, &["logs", "hello"]).await;
    assert_eq!(logs, "hello from hello\nto stderr\n");
    let row = kubectl(&server, &["get", "pod", "hello", "--no-headers"]).await;
    assert!(
        row.contains(" 0/1 ") && row.contains(" Completed "),
        "{row}"
    );
    let logs = kubectl(&server, &["logs", "hello", "-c", "main", "--tail=1"]).await;
    assert_eq!(logs, "to stderr\n");

    create(&server, sh_pod("fails", "Never", "exit 3")).await;
    let pod = wait_for(&server, "fails", "Failed", |p| phase(p) == "Failed").await;
    let code = pod
        .status
        .and_then(|s| s.container_statuses)
        .expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .map(|t| t.exit_code);
    assert_eq!(code, Some(3));
}

#[tokio::test]
async fn downward_api_env_and_volume_files_follow_the_pod() {
    let server = server().await;
    create(
        &server,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "info", "labels": {"app": "x"}, "annotations": {"zen-lead/pool": "p1"}},
            "spec": {
                "containers": [{
                    "name": "main", "image": "busybox",
                    "command": ["sh", "-c", "echo \"$(POOL) $POD_NAME $NS $UID_ $NODE $APP\"; while :; do cat /etc/podinfo/annotations > $HOME/seen; sleep 0.1; done"],
                    "env": [
                        {"name": "POOL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['zen-lead/pool']"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "UID_", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    ],
                    "volumeMounts": [{"name": "podinfo", "mountPath": "/etc/podinfo"}],
                }],
                "volumes": [{"name": "podinfo", "downwardAPI": {"items": [
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                ]}}],
            },
        }),
    )
    .await;
    let pod = wait_for(&server, "info", "Running and Ready", |p| {
        phase(p) == "Running" && ready(p)
    })
    .await;
    let uid = pod.metadata.uid.clone().expect("uid");
    let until = Instant::now() + WAIT;
    let logs = loop {
        let logs = kubectl(&server, &["logs", "info"]).await;
        if !logs.is_empty() {
            break logs;
        }
        assert!(Instant::now() < until, "no output");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        logs.lines().next(),
        Some(format!("p1 info default {uid} testkit-node x").as_str())
    );
    // The annotations file is rewritten when the annotations change; the container reads it
    // through its mount path and copies it into the log.
    pods(&server)
        .patch(
            "info",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"extra": "yes"}}})),
        )
        .await
        .expect("annotate");
    let until = Instant::now() + WAIT;
    loop {
        let seen = kubectl(&server, &["logs", "info"]).await;
        let file = seen_file(&uid);
        if file.contains("extra=\"yes\"") && file.contains("zen-lead/pool=\"p1\"") {
            break;
        }
        assert!(
            Instant::now() < until,
            "annotations file not updated: {file:?} {seen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The copy the container made of its annotations file (in its HOME, the pod directory).
fn seen_file(uid: &str) -> String {
    let tmp = std::env::temp_dir();
    std::fs::read_dir(&tmp)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("zen-lead-testkit-pods-")
        })
        .filter_map(|e| {
            let dir: PathBuf = e.path().join(format!("default_info_{uid}"));
            std::fs::read_to_string(dir.join("seen")).ok()
        })
        .next()
        .unwrap_or_default()
}

#[tokio::test]
async fn init_containers_run_first_in_order() {
    let server = server().await;
    let dir = std::env::temp_dir().join(format!("testkit-init-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("order");
    let f = file.to_string_lossy();
    create(
        &server,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "init"},
            "spec": {"restartPolicy": "Never",
                "initContainers": [
                    {"name": "one", "image": "x", "command": ["sh", "-c", format!("sleep 0.3; echo one >> {f}")]},
                    {"name": "two", "image": "x", "command": ["sh", "-c", format!("echo two >> {f}")]},
                ],
                "containers": [{"name": "main", "image": "x", "command": ["sh", "-c", format!("echo main >> {f}")]}]},
        }),
    )
    .await;
    let pod = wait_for(&server, "init", "Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(
        std::fs::read_to_string(&file).expect("order file"),
        "one\ntwo\nmain\n"
    );
    let inits = pod
        .status
        .and_then(|s| s.init_container_statuses)
        .expect("init statuses");
    assert_eq!(inits.len(), 2);
    // A failing init container fails a restartPolicy Never pod, and the app never runs.
    create(
        &server,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "init-fails"},
            "spec": {"restartPolicy": "Never",
                "initContainers": [{"name": "gate", "image": "x", "command": ["sh", "-c", "exit 1"]}],
                "containers": [{"name": "main", "image": "x", "command": ["sh", "-c", format!("echo ran >> {f}.fail")]}]},
        }),
    )
    .await;
    wait_for(&server, "init-fails", "Failed", |p| phase(p) == "Failed").await;
    assert!(
        !dir.join("order.fail").exists(),
        "the app container ran after a failed init"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn restart_policy_always_restarts_and_counts() {
    let server = server().await;
    create(&server, sh_pod("crash", "Always", "echo run; exit 2")).await;
    let pod = wait_for(&server, "crash", "two restarts", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs[0].restart_count >= 2)
    })
    .await;
    assert_eq!(phase(&pod), "Running");
    let status = pod
        .status
        .and_then(|s| s.container_statuses)
        .expect("statuses")[0]
        .clone();
    let last = status
        .last_state
        .and_then(|s| s.terminated)
        .expect("lastState.terminated");
    assert_eq!(last.exit_code, 2);
    let previous = kubectl(&server, &["logs", "crash", "--previous"]).await;
    assert_eq!(previous, "run\n");
}

#[tokio::test]
async fn a_graceful_delete_delivers_sigterm_and_then_removes_the_pod() {
    let server = server().await;
    let dir = std::env::temp_dir().join(format!("testkit-term-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let marker = dir.join("got-term");
    let script = format!(
        "trap 'echo term > {}; exit 0' TERM; echo up; while :; do sleep 0.1; done",
        marker.display()
    );
    create(&server, sh_pod("term", "Always", &script)).await;
    wait_for(&server, "term", "Running", |p| {
        phase(p) == "Running" && ready(p)
    })
    .await;
    // The shell must have installed its trap: wait for its first output.
    let until = Instant::now() + WAIT;
    while kubectl(&server, &["logs", "term"]).await.is_empty() {
        assert!(Instant::now() < until, "no output");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pods(&server)
        .delete("term", &DeleteParams::default())
        .await
        .expect("delete");
    let api = pods(&server);
    let until = Instant::now() + WAIT;
    while api.get_opt("term").await.expect("get").is_some() {
        assert!(
            Instant::now() < until,
            "pod not removed after its process ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&marker).expect("SIGTERM marker"),
        "term\n"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Live processes whose environment carries `marker` (a container's env is inherited by all it
/// starts).
fn processes_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .filter(|pid| {
            // Zombies are dead already.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()
                        .map(|r| !r.trim_start().starts_with('Z'))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Starts `zen-lead-testkit serve --process-kubelet`, runs a pod whose container starts a
/// grandchild in a process group of its own, and stops the server with `signal`.
async fn no_process_survives(signal: &str) {
    let dir = std::env::temp_dir().join(format!("testkit-survive-{}", uuid::Uuid::new_v4()));
    let kubeconfig = dir.join("kubeconfig");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_zen-lead-testkit"))
        .args(["serve", "--process-kubelet", "--kubeconfig"])
        .arg(&kubeconfig)
        // The pods' directories go under `dir` too, removed below even after a SIGKILL.
        .env("TMPDIR", &dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let mut lines = tokio::io::BufReader::new(serve.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("ready line")
        .expect("read")
        .expect("line");
    assert!(first.starts_with("listening on"), "{first}");
    let marker = format!("survivor-{}", uuid::Uuid::new_v4().simple());
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: s}}\nspec:\n  containers:\n  - name: main\n    image: x\n    command: [sh, -c, 'setsid sleep 600 & sleep 600']\n    env: [{{name: MARKER, value: {marker}}}]\n"
    );
    let path = dir.join("pod.yaml");
    std::fs::write(&path, manifest).expect("manifest");
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["apply", "-f"])
        .arg(&path)
        .output()
        .await
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let until = Instant::now() + WAIT;
    while processes_with(&marker).len() < 2 {
        assert!(
            Instant::now() < until,
            "the container's processes did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = serve.id().expect("pid").to_string();
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .await
        .expect("kill");
    assert!(status.success());
    let _ = tokio::time::timeout(WAIT, serve.wait())
        .await
        .expect("serve exits");
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes_with(&marker);
        if left.is_empty() {
            break;
        }
        if Instant::now() > until {
            for p in &left {
                let _ = Command::new("kill")
                    .args(["-KILL", &p.to_string()])
                    .status()
                    .await;
            }
            panic!("processes outlived the server ({signal}): {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn no_process_survives_the_server_stopping() {
    no_process_survives("-TERM").await;
}

#[tokio::test]
async fn no_container_main_process_survives_the_server_being_killed() {
    no_process_survives_killed().await;
}

/// SIGKILL leaves no time to clean up: the kernel's parent-death signal ends each container's
/// main process. (What it started in sessions of its own is its own business, as in a
/// container runtime without PID namespaces.)
async fn no_process_survives_killed() {
    let dir = std::env::temp_dir().join(format!("testkit-killed-{}", uuid::Uuid::new_v4()));
    let kubeconfig = dir.join("kubeconfig");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_zen-lead-testkit"))
        .args(["serve", "--process-kubelet", "--kubeconfig"])
        .arg(&kubeconfig)
        // The pods' directories go under `dir` too, removed below even after a SIGKILL.
        .env("TMPDIR", &dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let mut lines = tokio::io::BufReader::new(serve.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("ready line")
        .expect("read");
    let marker = format!("orphan-{}", uuid::Uuid::new_v4().simple());
    let path = dir.join("pod.yaml");
    std::fs::write(
        &path,
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: k}}\nspec:\n  containers:\n  - name: main\n    image: x\n    command: [sleep, '600']\n    env: [{{name: MARKER, value: {marker}}}]\n"),
    )
    .expect("manifest");
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["apply", "-f"])
        .arg(&path)
        .output()
        .await
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let until = Instant::now() + WAIT;
    while processes_with(&marker).is_empty() {
        assert!(Instant::now() < until, "the container did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = serve.id().expect("pid").to_string();
    Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .await
        .expect("kill");
    let _ = serve.wait().await;
    let until = Instant::now() + Duration::from_secs(20);
    while !processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < until,
            "the container outlived a SIGKILLed server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_container_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let server = server().await;
    let marker = format!("stubborn-{}", uuid::Uuid::new_v4().simple());
    let mut pod = sh_pod(
        "stubborn",
        "Always",
        "trap '' TERM; echo up; while :; do sleep 0.1; done",
    );
    pod["spec"]["terminationGracePeriodSeconds"] = serde_json::json!(1);
    pod["spec"]["containers"][0]["env"] = serde_json::json!([{"name": "MARKER", "value": marker}]);
    create(&server, pod).await;
    wait_for(&server, "stubborn", "Running", |p| phase(p) == "Running").await;
    let until = Instant::now() + WAIT;
    while kubectl(&server, &["logs", "stubborn"]).await.is_empty() {
        assert!(Instant::now() < until, "no output");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!processes_with(&marker).is_empty());
    pods(&server)
        .delete("stubborn", &DeleteParams::default())
        .await
        .expect("delete");
    let api = pods(&server);
    let until = Instant::now() + WAIT;
    while api.get_opt("stubborn").await.expect("get").is_some()
        || !processes_with(&marker).is_empty()
    {
        assert!(
            Instant::now() < until,
            "the pod or its processes outlived the grace period: {:?}",
            processes_with(&marker)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kubectl_logs_follow_streams_until_the_container_ends() {
    let server = server().await;
    create(
        &server,
        sh_pod(
            "talker",
            "Never",
            "for i in 1 2 3; do echo line $i; sleep 0.3; done",
        ),
    )
    .await;
    wait_for(&server, "talker", "started", |p| phase(p) != "Pending").await;
    let logs = tokio::time::timeout(WAIT, kubectl(&server, &["logs", "-f", "talker"]))
        .await
        .expect("kubectl logs -f ends with the container");
    assert_eq!(logs, "line 1\nline 2\nline 3\n");
}

#[tokio::test]
async fn a_missing_secret_key_holds_the_container_until_the_secret_exists() {
    let server = server().await;
    let mut pod = sh_pod("needs-secret", "Never", "echo token=$TOKEN");
    pod["spec"]["containers"][0]["env"] = serde_json::json!([
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "t"}}},
    ]);
    create(&server, pod).await;
    let waiting = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs[0].state.as_ref()?.waiting.as_ref()?.reason.clone())
    };
    wait_for(&server, "needs-secret", "CreateContainerConfigError", |p| {
        waiting(p).as_deref() == Some("CreateContainerConfigError")
    })
    .await;
    kubectl(
        &server,
        &[
            "create",
            "secret",
            "generic",
            "later",
            "--from-literal=t=s3cret",
        ],
    )
    .await;
    wait_for(&server, "needs-secret", "Succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    assert_eq!(
        kubectl(&server, &["logs", "needs-secret"]).await,
        "token=s3cret\n"
    );
}

/// In auth mode a pod's kubeconfig carries a token of its own service account: RBAC decides
/// what its processes may do.
#[tokio::test]
async fn pods_authenticate_as_their_service_account() {
    let server = TestServer::builder()
        .process_kubelet(true)
        .auth(true)
        .tls(true)
        .start()
        .await
        .expect("server");
    kubectl(&server, &["create", "serviceaccount", "reader"]).await;
    kubectl(
        &server,
        &[
            "create",
            "role",
            "lease-reader",
            "--verb=list",
            "--resource=leases.coordination.k8s.io",
        ],
    )
    .await;
    kubectl(
        &server,
        &[
            "create",
            "rolebinding",
            "r",
            "--role=lease-reader",
            "--serviceaccount=default:reader",
        ],
    )
    .await;
    for (name, sa) in [("allowed", "reader"), ("denied", "default")] {
        let mut pod = sh_pod(name, "Never", "kubectl get leases.coordination.k8s.io 2>&1");
        pod["spec"]["serviceAccountName"] = serde_json::json!(sa);
        create(&server, pod).await;
    }
    for name in ["allowed", "denied"] {
        wait_for(&server, name, "done", |p| {
            matches!(phase(p), "Succeeded" | "Failed")
        })
        .await;
    }
    let allowed = kubectl(&server, &["logs", "allowed"]).await;
    assert!(allowed.contains("No resources found"), "{allowed}");
    let denied = kubectl(&server, &["logs", "denied"]).await;
    assert!(
        denied.contains("system:serviceaccount:default:default") && denied.contains("forbidden"),
        "{denied}"
    );
}
