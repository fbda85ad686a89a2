//! The workload controllers with the real kubectl: Deployments, StatefulSets, Jobs and CronJobs
//! applied as manifests produce pods the way a cluster does.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;
use zen_lead_testkit::TestServer;

/// How long one step may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);

/// kubectl against one server.
struct Kubectl(std::path::PathBuf);

impl Kubectl {
    fn new(server: &TestServer) -> Self {
        Self(server.kubeconfig_path().to_path_buf())
    }

    /// Runs kubectl (feeding `stdin`); returns (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.0)
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
            .expect("kubectl runs (it must be on the PATH)");
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).await.expect("write stdin");
        }
        let out = tokio::time::timeout(WAIT + Duration::from_secs(10), child.wait_with_output())
            .await
            .expect("kubectl finishes")
            .expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, None).await;
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    async fn apply(&self, manifest: &str) {
        let (ok, _, err) = self.run(&["apply", "-f", "-"], Some(manifest)).await;
        assert!(ok, "apply failed: {err}\n{manifest}");
    }

    /// Pod names matching `selector`.
    async fn pods(&self, selector: &str) -> Vec<String> {
        self.ok(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
        ])
        .await
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// Waits until `check` holds for the pods matching `selector`.
    async fn wait_pods(&self, selector: &str, what: &str, check: impl Fn(&[String]) -> bool) {
        let until = Instant::now() + WAIT;
        loop {
            let pods = self.pods(selector).await;
            if check(&pods) {
                return;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}: {pods:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn deployment(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}, annotations: {{team: a}}}}\n    spec:\n      containers:\n      - {{name: main, image: web:1}}\n"
    )
}

#[tokio::test]
async fn deployment_gives_pods_scales_rolls_out_and_deletes_them() {
    let server = TestServer::start().await.expect("server");
    let kc = Kubectl::new(&server);
    kc.apply(&deployment(3)).await;
    kc.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let pods = kc.pods("app=web").await;
    assert_eq!(pods.len(), 3, "{pods:?}");
    let rs = kc
        .ok(&[
            "get",
            "rs",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .await;
    let hash = rs.strip_prefix("web-").expect("ReplicaSet <deploy>-<hash>");
    for pod in &pods {
        let suffix = pod
            .strip_prefix(&format!("web-{hash}-"))
            .unwrap_or_else(|| panic!("{pod} is not <rs>-<suffix>"));
        assert_eq!(suffix.len(), 5, "{pod}");
    }
    let pod = &pods[0];
    let got = kc
        .ok(&[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.labels.pod-template-hash} {.metadata.annotations.team} {.status.phase}",
        ])
        .await;
    assert_eq!(got, format!("ReplicaSet/{rs} {hash} a Running"));

    kc.ok(&["scale", "deployment/web", "--replicas=5"]).await;
    kc.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    kc.wait_pods("app=web", "5 pods", |p| p.len() == 5).await;
    kc.ok(&["scale", "deployment/web", "--replicas=2"]).await;
    kc.wait_pods("app=web", "2 pods", |p| p.len() == 2).await;
    let ready = kc
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}/{.status.replicas}",
        ])
        .await;
    assert_eq!(ready, "2/2");

    // A new template: a new ReplicaSet, and the rollout completes on it.
    kc.apply(&deployment(2).replace("web:1", "web:2")).await;
    kc.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let images = kc
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ])
        .await;
    kc.wait_pods("app=web", "2 pods of the new template", |p| p.len() == 2)
        .await;
    assert!(images.contains("web:2"), "{images}");

    kc.ok(&["delete", "deployment/web"]).await;
    kc.wait_pods("app=web", "no pods", |p| p.is_empty()).await;
    let sets = kc.ok(&["get", "rs", "-o", "name"]).await;
    assert!(sets.trim().is_empty(), "ReplicaSets left: {sets}");
}

#[tokio::test]
async fn statefulset_pods_are_ordinals_and_come_back_with_a_new_uid() {
    let server = TestServer::start().await.expect("server");
    let kc = Kubectl::new(&server);
    kc.apply("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 3\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers:\n      - {name: main, image: db:1}\n").await;
    kc.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .await;
    let mut pods = kc.pods("app=db").await;
    pods.sort();
    assert_eq!(pods, ["db-0", "db-1", "db-2"]);
    let uid = |kc: &Kubectl| {
        let kc = Kubectl(kc.0.clone());
        async move {
            kc.ok(&["get", "pod", "db-1", "-o", "jsonpath={.metadata.uid}"])
                .await
        }
    };
    let before = uid(&kc).await;
    kc.ok(&["delete", "pod", "db-1", "--wait=false"]).await;
    let until = Instant::now() + WAIT;
    loop {
        let (ok, now, _) = kc
            .run(
                &["get", "pod", "db-1", "-o", "jsonpath={.metadata.uid}"],
                None,
            )
            .await;
        if ok && !now.is_empty() && now != before {
            break;
        }
        assert!(Instant::now() < until, "db-1 was not recreated");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kc.ok(&["scale", "statefulset/db", "--replicas=1"]).await;
    kc.wait_pods("app=db", "only db-0", |p| p == ["db-0"]).await;
}

#[tokio::test]
async fn a_job_completes_and_kubectl_wait_sees_it() {
    let server = TestServer::start().await.expect("server");
    let kc = Kubectl::new(&server);
    kc.apply("apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  completions: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - {name: main, image: busybox}\n").await;
    kc.ok(&[
        "wait",
        "--for=condition=complete",
        "job/once",
        "--timeout=60s",
    ])
    .await;
    let status = kc
        .ok(&[
            "get",
            "job",
            "once",
            "-o",
            "jsonpath={.status.succeeded} {.spec.selector.matchLabels}",
        ])
        .await;
    assert!(status.starts_with("2 "), "{status}");
    let pods = kc.pods("job-name=once").await;
    assert_eq!(pods.len(), 2, "{pods:?}");
}

/// With the process kubelet: a CronJob triggered by hand runs its command for real.
#[tokio::test]
async fn a_cronjob_triggered_by_hand_runs() {
    let server = TestServer::builder()
        .process_kubelet(true)
        .start()
        .await
        .expect("server");
    let kc = Kubectl::new(&server);
    // A schedule that never comes during the test: only the manual run happens.
    kc.apply("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: report}\nspec:\n  schedule: \"0 0 1 1 *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: main\n            image: busybox\n            command: [sh, -c, 'echo report ran in $(POD)']\n            env:\n            - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n").await;
    kc.ok(&["create", "job", "--from=cronjob/report", "report-now"])
        .await;
    kc.ok(&[
        "wait",
        "--for=condition=complete",
        "job/report-now",
        "--timeout=60s",
    ])
    .await;
    let logs = kc.ok(&["logs", "job/report-now"]).await;
    assert!(logs.starts_with("report ran in report-now-"), "{logs}");
    let owner = kc
        .ok(&[
            "get",
            "job",
            "report-now",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].name}",
        ])
        .await;
    assert_eq!(owner, "report");
}

/// A CronJob on a schedule that ticks every minute makes a Job named after the tick.
#[tokio::test]
async fn a_cronjob_runs_on_its_schedule() {
    let server = TestServer::start().await.expect("server");
    let kc = Kubectl::new(&server);
    kc.apply("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: tick}\nspec:\n  schedule: \"* * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - {name: main, image: busybox}\n").await;
    // The first tick is at most a minute away.
    let until = Instant::now() + Duration::from_secs(90);
    let job = loop {
        let jobs = kc
            .ok(&["get", "jobs", "-o", "jsonpath={.items[*].metadata.name}"])
            .await;
        if let Some(j) = jobs.split_whitespace().next() {
            break j.to_string();
        }
        assert!(Instant::now() < until, "no Job from the schedule");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let minute: i64 = job
        .strip_prefix("tick-")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{job} is not tick-<minute>"));
    assert!(minute > 29_000_000, "{job}");
    kc.ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{job}"),
        "--timeout=60s",
    ])
    .await;
    let last = kc
        .ok(&[
            "get",
            "cronjob",
            "tick",
            "-o",
            "jsonpath={.status.lastScheduleTime}",
        ])
        .await;
    assert!(!last.is_empty(), "lastScheduleTime unset");
}

/// With the process kubelet: a Job whose pods keep failing is Failed past its backoffLimit.
#[tokio::test]
async fn a_job_past_its_backoff_limit_fails() {
    let server = TestServer::builder()
        .process_kubelet(true)
        .start()
        .await
        .expect("server");
    let kc = Kubectl::new(&server);
    kc.apply("apiVersion: batch/v1\nkind: Job\nmetadata: {name: broken}\nspec:\n  backoffLimit: 1\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - {name: main, image: busybox, command: [sh, -c, 'exit 4']}\n").await;
    kc.ok(&[
        "wait",
        "--for=condition=failed",
        "job/broken",
        "--timeout=60s",
    ])
    .await;
    let status = kc
        .ok(&[
            "get",
            "job",
            "broken",
            "-o",
            "jsonpath={.status.failed} {.status.conditions[?(@.type==\"Failed\")].reason}",
        ])
        .await;
    assert_eq!(status, "2 BackoffLimitExceeded");
}
