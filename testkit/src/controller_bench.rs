//! `zen-lead-testkit bench-controller`: zen-lead-controller's own figures at scale
//! (docs/BENCHMARKS.md): resident memory, the time from the last pod Ready to every pool led
//! and every role written, and steady-state API requests per second.
//!
//! The server runs in this process; the controller is a separate process (so that its memory is
//! its own), a client like any other, over loopback HTTP. Pods are annotation-only candidates,
//! the case where the controller does all the work: it acquires and renews every pool's Lease.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::TestServer;
use crate::controller_process::{self, ControllerError, Launch};

/// The LeaderPolicy CRD, as committed.
const CRD_YAML: &str =
    include_str!("../../config/crd/bases/coordination.kube-zen.io_leaderpolicies.yaml");

/// Pools per namespace (the pools spread over `pools / POOLS_PER_NAMESPACE` namespaces).
const POOLS_PER_NAMESPACE: usize = 100;

/// The identity (and so the User-Agent) of the measured controller.
const IDENTITY: &str = "bench-controller";

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// LeaderPolicies.
    pub pools: usize,
    /// Candidate pods per pool.
    pub pods_per_pool: usize,
    /// The steady-state window.
    pub steady: Duration,
    /// Upper bound on convergence.
    pub converge_within: Duration,
    /// The controller binary (default: next to this executable).
    pub controller: Option<PathBuf>,
}

/// The benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerBenchError {
    /// The server did not start.
    #[error("starting the server")]
    Start(#[source] crate::StartError),
    /// No client could be built.
    #[error("building a client")]
    Client(#[source] crate::ClientError),
    /// The controller process failed.
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// A request failed.
    #[error("{phase} failed")]
    Request {
        /// Which phase.
        phase: &'static str,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Running a pod failed.
    #[error("running pod {name}: {message}")]
    RunPod {
        /// The pod.
        name: String,
        /// The server's message.
        message: String,
    },
    /// The committed CRD does not parse.
    #[error("parsing the committed CRD")]
    Crd(#[source] serde_yaml::Error),
    /// The watch that detects convergence ended.
    #[error("watching for convergence")]
    Watch(#[source] watcher::Error),
    /// Not converged in time.
    #[error(
        "not converged within {within:?}: {led} of {pools} pools led, {roles} of {pods} roles written; controller log {log}"
    )]
    NotConverged {
        /// The bound.
        within: Duration,
        /// Pools with a holder in status.
        led: usize,
        /// Pools.
        pools: usize,
        /// Pods with a role label.
        roles: usize,
        /// Pods.
        pods: usize,
        /// The controller's log.
        log: PathBuf,
    },
    /// The end state breaks a rule (not exactly one leader per pool, or status and roles differ).
    #[error("inconsistent end state: {0}")]
    Inconsistent(String),
}

fn request(phase: &'static str) -> impl FnOnce(kube::Error) -> ControllerBenchError {
    move |source| ControllerBenchError::Request { phase, source }
}

/// Runs the benchmark and returns the report table.
pub async fn run(options: Options) -> Result<String, ControllerBenchError> {
    let exe = controller_process::locate(options.controller.clone())?;
    let dir =
        std::env::temp_dir().join(format!("zen-lead-bench-controller-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let kubeconfig = dir.join("kubeconfig");
    let server = TestServer::builder()
        .kubeconfig(&kubeconfig)
        // The controller's watch must not fall out of the history during the pod burst.
        .retained_events(4 * options.pools * (options.pods_per_pool + 2) + 10_000)
        .start()
        .await
        .map_err(ControllerBenchError::Start)?;
    let client = server
        .client_as("bench-driver")
        .map_err(ControllerBenchError::Client)?;
    let policies = install(&client, &options).await?;

    let mut controller = Launch {
        exe,
        kubeconfig,
        identity: IDENTITY.into(),
        log: dir.join("controller.log"),
        // Its startup lines, and what a person should act on.
        rust_log: "warn,zen_lead_controller::run=info".into(),
        args: Vec::new(),
    }
    .spawn()?;
    // Warm: it leads its own Lease and has reconciled every pool once (each has its series).
    let pools = options.pools;
    controller
        .wait_metrics(
            options.converge_within,
            "leading, and every pool reconciled",
            move |text| {
                sum_metric(text, "controller_leading") >= 1.0
                    && series(text, "zen_lead_candidates") >= pools
            },
        )
        .await?;
    let ready_at_start = controller.is_ready();
    let (idle_rss, _) = controller.memory_kib().unwrap_or_default();

    // The watches that see convergence start before the pods exist.
    let pods_api: Api<Pod> = Api::all(client.clone());
    let expected_pods = options.pools * options.pods_per_pool;
    let watch = tokio::spawn(converged(
        pods_api.clone(),
        policies.clone(),
        options.pools,
        expected_pods,
    ));

    let burst_start = Instant::now();
    for (namespace, pool) in pool_names(options.pools) {
        for i in 0..options.pods_per_pool {
            let name = format!("{pool}-{i}");
            server
                .kubelet()
                .run_pod(
                    &namespace,
                    json!({"metadata": {
                        "name": name,
                        "annotations": {"zen-lead/pool": pool, "zen-lead/join": "true"},
                    }}),
                )
                .map_err(|e| ControllerBenchError::RunPod {
                    name,
                    message: e.to_string(),
                })?;
        }
    }
    let last_ready = Instant::now();
    let burst = last_ready - burst_start;

    let converged_at = match tokio::time::timeout(options.converge_within, watch).await {
        Ok(Ok(Ok(at))) => at,
        Ok(Ok(Err(e))) => return Err(e),
        Ok(Err(_)) | Err(_) => {
            let (led, roles) = progress(&pods_api, &policies).await?;
            return Err(ControllerBenchError::NotConverged {
                within: options.converge_within,
                led,
                pools: options.pools,
                roles,
                pods: expected_pods,
                log: controller.log_path().to_path_buf(),
            });
        }
    };
    let convergence = converged_at.saturating_duration_since(last_ready);
    let (converged_rss, converged_hwm) = controller.memory_kib().unwrap_or_default();
    check_consistent(&pods_api, &policies, options.pods_per_pool).await?;

    // Steady state: nothing changes; the controller renews every pool's Lease.
    server.accounting().reset();
    let reconciles_before = controller
        .metrics_text()
        .map(|text| sum_metric(&text, "reconcile_duration_seconds_count"))
        .unwrap_or(0.0);
    let window = Instant::now();
    tokio::time::sleep(options.steady).await;
    let seconds = window.elapsed().as_secs_f64();
    let verbs: BTreeMap<String, u64> = server
        .accounting()
        .snapshot()
        .into_iter()
        .filter(|(agent, _)| agent.contains(&format!("({IDENTITY})")))
        .flat_map(|(_, verbs)| verbs)
        .fold(BTreeMap::new(), |mut all, (verb, n)| {
            *all.entry(verb).or_default() += n;
            all
        });
    let total: u64 = verbs.values().sum();
    let (steady_rss, steady_hwm) = controller.memory_kib().unwrap_or_default();
    let metrics = controller.metrics_text().unwrap_or_default();
    let reconciles = sum_metric(&metrics, "reconcile_duration_seconds_count") - reconciles_before;
    let reconcile_errors = sum_metric(&metrics, "reconcile_errors");
    let lease_write_errors = sum_metric(&metrics, "lease_write_errors");
    let exit = controller.stop(Duration::from_secs(20));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "zen-lead-testkit bench-controller: {} pools, {} pods ({} per pool, annotation-only), one controller process, loopback HTTP",
        options.pools, expected_pods, options.pods_per_pool
    );
    let _ = writeln!(out, "{:<52} {:>14}", "figure", "measured");
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "{name:<52} {value:>14}");
    };
    row(
        "/readyz once every pool was reconciled",
        if ready_at_start { "200" } else { "503" }.into(),
    );
    row("resident memory, idle (policies only)", mib(idle_rss));
    row("resident memory, converged", mib(converged_rss));
    row(
        &format!("resident memory, after {:.0} s steady state", seconds),
        mib(steady_rss),
    );
    row(
        "resident memory, peak (VmHWM)",
        mib(converged_hwm.max(steady_hwm)),
    );
    row(
        &format!("pods created and Ready ({expected_pods})"),
        format!("{} ms", burst.as_millis()),
    );
    row(
        "convergence: last pod Ready -> all led, all roles",
        format!("{} ms", convergence.as_millis()),
    );
    row(
        "convergence: first pod Ready -> all led, all roles",
        format!(
            "{} ms",
            converged_at
                .saturating_duration_since(burst_start)
                .as_millis()
        ),
    );
    row(
        "steady-state API requests/s (all verbs)",
        format!("{:.1}", total as f64 / seconds),
    );
    for (verb, n) in &verbs {
        row(
            &format!("  {verb}/s"),
            format!("{:.1}", *n as f64 / seconds),
        );
    }
    row(
        "steady-state API requests/s per pool",
        format!("{:.3}", total as f64 / seconds / options.pools as f64),
    );
    row(
        "steady-state reconciles/s",
        format!("{:.1}", reconciles / seconds),
    );
    row(
        "reconcile errors, whole run (metric)",
        format!("{reconcile_errors:.0}"),
    );
    row(
        "Lease write errors, whole run (metric)",
        format!("{lease_write_errors:.0}"),
    );
    row(
        "exit after SIGTERM",
        exit.map_or("did not exit".into(), |s| s.to_string()),
    );
    let _ = writeln!(out, "controller log: {}", controller.log_path().display());
    Ok(out)
}

/// `(namespace, pool)` for every pool, `POOLS_PER_NAMESPACE` to a namespace.
fn pool_names(pools: usize) -> Vec<(String, String)> {
    (0..pools)
        .map(|p| {
            (
                format!("bench-{}", p / POOLS_PER_NAMESPACE),
                format!("pool-{p:04}"),
            )
        })
        .collect()
}

/// The CRD, the namespaces and the LeaderPolicies (default timings); returns the policies' API.
async fn install(
    client: &kube::Client,
    options: &Options,
) -> Result<Api<DynamicObject>, ControllerBenchError> {
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(CRD_YAML).map_err(ControllerBenchError::Crd)?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd)
        .await
        .map_err(request("creating the CRD"))?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut names: Vec<String> = pool_names(options.pools)
        .into_iter()
        .map(|(ns, _)| ns)
        .collect();
    names.push("zen-lead-system".into());
    names.dedup();
    for name in names {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap_or_default();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .map_err(request("creating a namespace"))?;
    }
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "coordination.kube-zen.io",
        "v1alpha1",
        "LeaderPolicy",
    ));
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let results: Vec<Result<DynamicObject, kube::Error>> = stream::iter(pool_names(options.pools))
        .map(|(namespace, pool)| {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &resource);
            let mut policy = DynamicObject::new(&pool, &resource).within(&namespace);
            policy.data = json!({"spec": {}});
            async move { api.create(&PostParams::default(), &policy).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for result in results {
        result.map_err(request("creating a LeaderPolicy"))?;
    }
    Ok(all)
}

/// Resolves at the instant every pool has a holder in status and every pod a role label.
async fn converged(
    pods: Api<Pod>,
    policies: Api<DynamicObject>,
    pools: usize,
    expected_pods: usize,
) -> Result<Instant, ControllerBenchError> {
    enum Seen {
        Pod(String, bool),
        Policy(String, bool),
    }
    let pod_events = watcher(pods, watcher::Config::default())
        .applied_objects()
        .map_ok(|pod: Pod| {
            let role = pod
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("zen-lead/role"));
            Seen::Pod(pod.metadata.uid.unwrap_or_default(), role)
        })
        .boxed();
    let policy_events = watcher(policies, watcher::Config::default())
        .applied_objects()
        .map_ok(|policy: DynamicObject| {
            let led = policy
                .data
                .pointer("/status/currentHolder/name")
                .and_then(|v| v.as_str())
                .is_some_and(|n| !n.is_empty());
            Seen::Policy(policy.metadata.uid.unwrap_or_default(), led)
        })
        .boxed();
    let mut events = stream::select(pod_events, policy_events);
    let (mut with_role, mut led) = (HashSet::new(), HashSet::new());
    while let Some(event) = events
        .try_next()
        .await
        .map_err(ControllerBenchError::Watch)?
    {
        match event {
            Seen::Pod(uid, true) => {
                with_role.insert(uid);
            }
            Seen::Pod(uid, false) => {
                with_role.remove(&uid);
            }
            Seen::Policy(uid, true) => {
                led.insert(uid);
            }
            Seen::Policy(uid, false) => {
                led.remove(&uid);
            }
        }
        if with_role.len() >= expected_pods && led.len() >= pools {
            return Ok(Instant::now());
        }
    }
    Err(ControllerBenchError::Inconsistent(
        "the convergence watch ended".into(),
    ))
}

/// Pools led and pods with a role, from a list (for the error report).
async fn progress(
    pods: &Api<Pod>,
    policies: &Api<DynamicObject>,
) -> Result<(usize, usize), ControllerBenchError> {
    let pods = pods
        .list(&ListParams::default().labels("zen-lead/role"))
        .await
        .map_err(request("listing pods"))?;
    let policies = policies
        .list(&ListParams::default())
        .await
        .map_err(request("listing LeaderPolicies"))?;
    let led = policies
        .items
        .iter()
        .filter(|p| p.data.pointer("/status/currentHolder/name").is_some())
        .count();
    Ok((led, pods.items.len()))
}

/// Exactly one leader per pool, the pod its status names, and every other candidate a follower.
async fn check_consistent(
    pods: &Api<Pod>,
    policies: &Api<DynamicObject>,
    per_pool: usize,
) -> Result<(), ControllerBenchError> {
    let mut roles: HashMap<(String, String), (Vec<String>, usize)> = HashMap::new();
    for pod in pods
        .list(&ListParams::default())
        .await
        .map_err(request("listing pods"))?
    {
        let labels = pod.metadata.labels.unwrap_or_default();
        let (Some(pool), Some(role)) = (labels.get("zen-lead/pool"), labels.get("zen-lead/role"))
        else {
            continue;
        };
        let entry = roles
            .entry((pod.metadata.namespace.unwrap_or_default(), pool.clone()))
            .or_default();
        match role.as_str() {
            "leader" => entry.0.push(pod.metadata.name.unwrap_or_default()),
            "follower" => entry.1 += 1,
            other => {
                return Err(ControllerBenchError::Inconsistent(format!(
                    "role {other:?} in pool {pool}"
                )));
            }
        }
    }
    for policy in policies
        .list(&ListParams::default())
        .await
        .map_err(request("listing LeaderPolicies"))?
    {
        let key = (
            policy.metadata.namespace.clone().unwrap_or_default(),
            policy.metadata.name.clone().unwrap_or_default(),
        );
        let holder = policy
            .data
            .pointer("/status/currentHolder/name")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let (leaders, followers) = roles.get(&key).cloned().unwrap_or_default();
        if leaders != [holder] || followers + 1 != per_pool {
            return Err(ControllerBenchError::Inconsistent(format!(
                "pool {}/{}: status holder {holder:?}, leader pods {leaders:?}, {followers} followers",
                key.0, key.1
            )));
        }
    }
    Ok(())
}

/// How many samples the metric family `name` has.
fn series(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .count()
}

/// The sum of every sample of the metric family whose name contains `name`.
fn sum_metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next().is_some_and(|n| n.contains(name)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v)
}
