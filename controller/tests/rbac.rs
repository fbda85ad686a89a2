//! The `zen-lead-controller` ClusterRole is least privilege, proven both ways (docs/RBAC.md): the
//! real controller process runs on a testkit API server in auth mode under the ServiceAccount
//! token of `zen-lead-system/zen-lead-controller`, bound only by `config/rbac/`. With the whole
//! role, the full scenario works and nothing is denied; without any one of its rules, the
//! scenario fails and the controller's log names the denied request.
//!
//! The controller watches every namespace, so two controllers cannot share one server without
//! electing each other's pools. The rows run at once instead, each on its own in-process server.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::{EVENTUALLY, NS, eventually, policies, record};
use zen_lead::lease::record::Renewer;
use zen_lead_testkit::TestServer;

const SA_TOKEN: &str = "zen-lead-controller-sa-token";
const SA_USER: &str = "system:serviceaccount:zen-lead-system:zen-lead-controller";
const POOL: &str = "rbac";
const PODS: [&str; 3] = ["rbac-0", "rbac-1", "rbac-2"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A manifest of the repository, as JSON.
fn manifest(path: &str) -> Value {
    manifest_at(&repo(path))
}

fn manifest_at(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn typed<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).expect("a manifest of the expected kind")
}

/// Creates the cluster-scoped `object` as the admin.
async fn create<K>(server: &TestServer, object: &Value)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let object: K = typed(object);
    Api::<K>::all(server.client().expect("admin client"))
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", object.name_any()));
}

/// The role's rule `i` as `resources [verbs]`, and the denial a controller without it logs.
fn describe(rule: &Value) -> (String, Vec<String>) {
    let words = |key: &str| -> Vec<String> {
        rule[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (resources, verbs) = (words("resources"), words("verbs"));
    let name = format!("{} [{}]", resources.join(","), verbs.join(","));
    let denials = resources
        .iter()
        .flat_map(|r| {
            verbs
                .iter()
                .map(move |v| format!("cannot {v} resource {r:?}"))
        })
        .collect();
    (name, denials)
}

/// A controller process, SIGKILLed when dropped.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One row: an auth-mode server with the CRD, `deploy/`'s Namespace and ServiceAccount, `role`
/// as the `zen-lead-controller` ClusterRole and `config/rbac/`'s binding; the pool's policy and
/// three Ready annotation-only pods; and the controller under the ServiceAccount's token.
async fn start_row(row: &str, role: &Value) -> (TestServer, Controller) {
    let server = TestServer::builder()
        .auth(true)
        .start()
        .await
        .expect("start testkit");
    server
        .tokens()
        .add_service_account(SA_TOKEN, "zen-lead-system", "zen-lead-controller");
    let crds = std::fs::read_dir(repo("config/crd/bases"))
        .expect("config/crd/bases")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"));
    for crd in crds {
        create::<CustomResourceDefinition>(&server, &manifest_at(&crd)).await;
    }
    create::<Namespace>(&server, &manifest("deploy/00-namespace.yaml")).await;
    let account: ServiceAccount = typed(&manifest("deploy/10-serviceaccount.yaml"));
    Api::<ServiceAccount>::namespaced(server.client().expect("client"), "zen-lead-system")
        .create(&PostParams::default(), &account)
        .await
        .expect("create the ServiceAccount");
    create::<ClusterRole>(&server, role).await;
    create::<ClusterRoleBinding>(
        &server,
        &manifest("config/rbac/controller_clusterrolebinding.yaml"),
    )
    .await;
    support::policy(&server, POOL, 30, 20, 1, json!({})).await;
    for pod in PODS {
        support::run_pod(&server, POOL, pod);
    }

    let dir = std::env::temp_dir();
    let kubeconfig = dir.join(format!(
        "zen-lead-rbac-{}-{row}.kubeconfig",
        std::process::id()
    ));
    let text = zen_lead_testkit::kubeconfig::render(server.url(), None, Some(SA_TOKEN));
    zen_lead_testkit::kubeconfig::write(&kubeconfig, &text).expect("write the kubeconfig");
    let log = dir.join(format!("zen-lead-rbac-{}-{row}.log", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_zen-lead-controller"))
        .env_clear()
        .env("KUBECONFIG", &kubeconfig)
        // Event failures are logged at debug.
        .env(
            "RUST_LOG",
            "info,kube=warn,zen_lead_controller::events=debug",
        )
        .args(["--identity", "ctl-rbac", "--namespace", "zen-lead-system"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(["--lease-duration", "4s", "--renew-deadline", "2s"])
        .args(["--retry-period", "500ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the log"))
        .spawn()
        .expect("start zen-lead-controller");
    (server, Controller { child, log })
}

/// What the full scenario has not done yet: empty once the controller holds its own Lease,
/// named a leader of the pool in its Lease (`renewer: controller`), written the roles, the
/// status and the `LeaderElected` Event; with `failover_from`, after the holder's pod failed,
/// named another leader with a `Failover` Event.
async fn missing(server: &TestServer, failover_from: Option<&str>) -> Vec<&'static str> {
    let mut missing = Vec::new();
    let own = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        server.client().expect("client"),
        "zen-lead-system",
    )
    .get_opt("zen-lead-controller")
    .await
    .expect("get the own Lease");
    if own.and_then(|l| l.spec?.holder_identity).as_deref() != Some("ctl-rbac") {
        missing.push("its own Lease");
    }
    let holder = record(server, POOL)
        .await
        .filter(|r| r.renewer == Renewer::Controller)
        .and_then(|r| r.holder)
        .filter(|h| PODS.contains(&h.as_str()) && Some(h.as_str()) != failover_from);
    if holder.is_none() {
        missing.push("the pool's Lease");
    }
    let pods = support::pods(server)
        .list(&ListParams::default())
        .await
        .expect("list pods");
    let roles_written = pods.items.iter().all(|pod| {
        let want = if Some(pod.name_any()) == holder {
            "leader"
        } else {
            "follower"
        };
        pod.labels().get("zen-lead/role").map(String::as_str) == Some(want)
            && pod.labels().get("zen-lead/pool").map(String::as_str) == Some(POOL)
            && pod.annotations().get("zen-lead/role").map(String::as_str) == Some(want)
    });
    if holder.is_none() || !roles_written {
        missing.push("the roles");
    }
    let status = policies(server)
        .get(POOL)
        .await
        .expect("get the policy")
        .status;
    let stable = status.as_ref().is_some_and(|s| {
        s.phase == Some(zen_lead::api::Phase::Stable)
            && s.current_holder.as_ref().map(|h| &h.name) == holder.as_ref()
    });
    if holder.is_none() || !stable {
        missing.push("the status");
    }
    let events = Api::<Event>::namespaced(server.client().expect("client"), NS)
        .list(&ListParams::default())
        .await
        .expect("list events");
    let reason = if failover_from.is_some() {
        "Failover"
    } else {
        "LeaderElected"
    };
    if !events
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some(reason))
    {
        missing.push(if failover_from.is_some() {
            "the Failover Event"
        } else {
            "the LeaderElected Event"
        });
    }
    missing
}

/// The whole role: the scenario completes, with a failover on evidence, and nothing is denied.
/// Returns how long the first election took from the controller's start.
async fn whole_role(role: Value) -> Duration {
    let started = Instant::now();
    let (server, controller) = start_row("whole", &role).await;
    loop {
        let missing = missing(&server, None).await;
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < EVENTUALLY,
            "with the whole role, after {EVENTUALLY:?} still missing: {}; the log:\n{}",
            missing.join(", "),
            controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elected = started.elapsed();
    let holder = record(&server, POOL)
        .await
        .and_then(|r| r.holder)
        .expect("a holder");
    server
        .kubelet()
        .set_phase(NS, &holder, "Failed")
        .expect("fail the leader's pod");
    eventually(EVENTUALLY, "a failover on evidence", || {
        let server = &server;
        let holder = holder.as_str();
        async move { missing(server, Some(holder)).await.is_empty().then_some(()) }
    })
    .await;
    let log = controller.log();
    assert!(
        !log.contains("forbidden"),
        "with the whole role nothing may be denied; the log:\n{log}"
    );
    elected
}

/// The role without rule `i`: the controller's log names a denied request of that rule, and
/// the scenario is still incomplete after twice the time the whole role needed (and at least
/// 5 s). Returns the row's line for the table.
async fn without_rule(
    role: Value,
    i: usize,
    whole: tokio::sync::watch::Receiver<Option<Duration>>,
) -> String {
    let started = Instant::now();
    let rule = role["rules"][i].clone();
    let (name, denials) = describe(&rule);
    let mut reduced = role;
    if let Some(rules) = reduced["rules"].as_array_mut() {
        rules.remove(i);
    }
    let (server, controller) = start_row(&format!("without-{i}"), &reduced).await;
    let denied = eventually(EVENTUALLY, &format!("a logged denial of {name}"), || {
        let log = controller.log();
        let found = log
            .lines()
            .find(|line| line.contains(SA_USER) && denials.iter().any(|d| line.contains(d)))
            .and_then(|line| denials.iter().find(|d| line.contains(*d)).cloned());
        std::future::ready(found)
    })
    .await;
    let mut whole = whole;
    let needed = whole
        .wait_for(Option::is_some)
        .await
        .expect("the whole-role row reports")
        .unwrap_or_default();
    let wait = (needed * 2).max(Duration::from_secs(5));
    if let Some(left) = wait.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let missing = missing(&server, None).await;
    assert!(
        !missing.is_empty(),
        "without rule {i} ({name}) the scenario still works after {:?}: the rule is not needed",
        started.elapsed()
    );
    format!(
        "  without {name:<55} {denied:<45} missing: {}",
        missing.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_role_is_enough_and_every_rule_is_needed() {
    support::init_tracing();
    let role = manifest("config/rbac/controller_clusterrole.yaml");
    assert_eq!(role["kind"], "ClusterRole");
    let rules = role["rules"].as_array().map_or(0, Vec::len);
    assert!(rules >= 5, "the controller role has {rules} rules");

    let (tell, told) = tokio::sync::watch::channel(None);
    let whole = {
        let role = role.clone();
        tokio::spawn(async move {
            let took = whole_role(role).await;
            let _ = tell.send(Some(took));
            took
        })
    };
    let rows: Vec<_> = (0..rules)
        .map(|i| tokio::spawn(without_rule(role.clone(), i, told.clone())))
        .collect();
    let took = whole.await.expect("the whole-role row");
    println!("  whole role: elected in {took:?}, failover on evidence; nothing denied");
    for row in rows {
        println!("{}", row.await.expect("a row"));
    }
}
