//! Helpers shared by the controller's integration tests: a testkit API server with the
//! LeaderPolicy CRD, the real controller (in-process through the library's `run`, or as the
//! built binary), pods from the testkit's kubelet simulation, and polling with generous limits.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use zen_lead::api::LeaderPolicy;
use zen_lead::lease::record::LeaseRecord;
use zen_lead_controller::config::Config;
use zen_lead_testkit::TestServer;

/// The limit for "eventually" conditions on a loaded machine.
pub const EVENTUALLY: Duration = Duration::from_secs(60);
/// The namespace of the pools.
pub const NS: &str = "default";

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A testkit server with the CRD and the controller's namespace installed.
pub async fn server() -> TestServer {
    init_tracing();
    let server = TestServer::start().await.expect("start testkit");
    let client = server.client().expect("client");
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &LeaderPolicy::crd())
        .await
        .expect("install the CRD");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "zen-lead-system"}}))
        .expect("namespace");
    Api::<Namespace>::all(client)
        .create(&PostParams::default(), &ns)
        .await
        .expect("create zen-lead-system");
    server
}

/// A running in-process controller; dropping it stops it.
pub struct Controller {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Controller {
    /// Stops the controller and waits for it (it releases its own Lease).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(EVENTUALLY, task).await;
        }
    }
}

/// Fast timings for the controller's own Lease.
pub fn own_timing() -> zen_lead::lease::Timing {
    zen_lead::timing::validate(
        Duration::from_secs(3),
        Duration::from_secs(2),
        Duration::from_millis(500),
    )
    .expect("valid")
}

/// Starts the real controller in this process as `identity`.
pub fn controller(server: &TestServer, identity: &str) -> Controller {
    let config = Config {
        namespace: "zen-lead-system".into(),
        identity: identity.into(),
        pod_uid: None,
        metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log_format: zen_lead::exec::config::LogFormat::Text,
        timing: own_timing(),
        write_concurrency: zen_lead_controller::config::DEFAULT_WRITE_CONCURRENCY,
    };
    let kube_config = server
        .config(&zen_lead::client::user_agent(identity), None)
        .expect("config");
    let client = zen_lead::client::from_config(kube_config, identity).expect("client");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        zen_lead_controller::run::run_with_client(config, client, async move {
            let _ = stopped.await;
        })
        .await
        .expect("controller runs");
    });
    Controller {
        stop: Some(stop),
        task: Some(task),
    }
}

/// `n` distinct free loopback ports (all bound at once, so that none repeats).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect()
}

/// The controller binary, started as a process with fast own-Lease timings.
pub fn controller_process(server: &TestServer, identity: &str, metrics: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_zen-lead-controller"))
        .env_clear()
        .env("KUBECONFIG", server.kubeconfig_path())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .args(["--identity", identity, "--namespace", "zen-lead-system"])
        .args(["--metrics-addr", &metrics.to_string()])
        .args([
            "--lease-duration",
            "3s",
            "--renew-deadline",
            "2s",
            "--retry-period",
            "500ms",
        ])
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("RUST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start zen-lead-controller")
}

/// Creates a LeaderPolicy `pool` with the given timings (seconds) and extra spec fields.
pub async fn policy(
    server: &TestServer,
    pool: &str,
    lease: i32,
    renew: i32,
    retry: i32,
    extra: Value,
) {
    let mut spec = json!({
        "leaseDurationSeconds": lease,
        "renewDeadlineSeconds": renew,
        "retryPeriodSeconds": retry,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let policy: LeaderPolicy = serde_json::from_value(json!({
        "apiVersion": "coordination.kube-zen.io/v1alpha1",
        "kind": "LeaderPolicy",
        "metadata": {"name": pool, "namespace": NS},
        "spec": spec,
    }))
    .expect("policy");
    policies(server)
        .create(&PostParams::default(), &policy)
        .await
        .expect("create policy");
}

/// The LeaderPolicies of [`NS`].
pub fn policies(server: &TestServer) -> Api<LeaderPolicy> {
    Api::namespaced(server.client().expect("client"), NS)
}

/// The pods of [`NS`].
pub fn pods(server: &TestServer) -> Api<Pod> {
    Api::namespaced(server.client().expect("client"), NS)
}

/// The Leases of [`NS`].
pub fn leases(server: &TestServer) -> Api<Lease> {
    Api::namespaced(server.client().expect("client"), NS)
}

/// An annotated pod of `pool`, Running and Ready (through the kubelet simulation).
pub fn run_pod(server: &TestServer, pool: &str, name: &str) -> Value {
    run_pod_with(server, pool, name, json!({}))
}

/// Like [`run_pod`] with a pod spec.
pub fn run_pod_with(server: &TestServer, pool: &str, name: &str, spec: Value) -> Value {
    let mut pod = json!({
        "metadata": {
            "name": name,
            "annotations": {"zen-lead/pool": pool, "zen-lead/join": "true"},
        },
    });
    if spec.as_object().is_some_and(|s| !s.is_empty()) {
        pod["spec"] = spec;
    }
    server.kubelet().run_pod(NS, pod).expect("run pod")
}

/// The pool's Lease record, if any.
pub async fn record(server: &TestServer, pool: &str) -> Option<LeaseRecord> {
    leases(server)
        .get_opt(pool)
        .await
        .expect("get lease")
        .map(|l| LeaseRecord::from_lease(&l))
}

/// Role labels of the pool's pods: name -> role.
pub async fn roles(server: &TestServer, pool: &str) -> BTreeMap<String, String> {
    let list = pods(server)
        .list(&kube::api::ListParams::default().labels(&format!("zen-lead/pool={pool}")))
        .await
        .expect("list pods");
    list.items
        .iter()
        .map(|p| {
            (
                p.name_any(),
                p.labels().get("zen-lead/role").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// The pods labelled leader in the pool.
pub async fn leaders(server: &TestServer, pool: &str) -> Vec<String> {
    roles(server, pool)
        .await
        .into_iter()
        .filter(|(_, r)| r == "leader")
        .map(|(n, _)| n)
        .collect()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `limit` with `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the pool's Lease names `holder` with a term above `above`; returns the record.
pub async fn wait_holder(
    server: &TestServer,
    pool: &str,
    holder: &str,
    above: u64,
    limit: Duration,
) -> LeaseRecord {
    eventually(
        limit,
        &format!("{pool} held by {holder} above term {above}"),
        || async {
            record(server, pool)
                .await
                .filter(|r| r.holder.as_deref() == Some(holder) && r.term > above)
        },
    )
    .await
}

/// Waits until the pool is Stable with one leader pod, labelled; returns (leader, term).
pub async fn wait_elected(server: &TestServer, pool: &str) -> (String, u64) {
    eventually(EVENTUALLY, &format!("{pool} elected"), || async {
        let policy = policies(server).get(pool).await.ok()?;
        let status = policy.status?;
        let holder = status.current_holder?.name;
        let leaders = leaders(server, pool).await;
        (leaders == [holder.clone()]).then_some((holder, u64::try_from(status.term?).ok()?))
    })
    .await
}

/// Runs kubectl against the server; returns (success, stdout, stderr).
pub fn kubectl(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .args(args)
        .output()
        .expect("run kubectl (it must be installed)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Events (core view) about `name`: their reasons.
pub async fn event_reasons(server: &TestServer, name: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(server.client().expect("client"), NS);
    let list = api.list(&Default::default()).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}
