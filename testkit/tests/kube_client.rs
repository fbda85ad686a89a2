//! The unmodified kube client against the testkit server, over real HTTP.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::core::Status;
use kube::runtime::watcher;
use kube::{Api, Client};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use zen_lead_testkit::TestServer;

const WAIT: Duration = Duration::from_secs(60);

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": name}}),
    )
    .expect("configmap")
}

fn lease(name: &str) -> Lease {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 10}}))
        .expect("lease")
}

/// Creates the ConfigMap `name` and a ConfigMap `<name>-dep` that it owns, for garbage collection.
async fn create_owner_and_dependent(cms: &Api<ConfigMap>, name: &str) {
    let owner = cms
        .create(&PostParams::default(), &cm(name, json!({})))
        .await
        .expect("owner");
    let uid = owner.metadata.uid.expect("uid");
    let dependent: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": format!("{name}-dep"),
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid}]}}))
        .expect("dep");
    cms.create(&PostParams::default(), &dependent)
        .await
        .expect("dependent");
}

/// The Status a failed call carried; any other kind of error fails the test.
fn api_status(err: kube::Error) -> Box<Status> {
    match err {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The HTTP code of an API error.
fn api_code(err: kube::Error) -> u16 {
    api_status(err).code
}

/// The HTTP code of a call that must fail with an API error.
async fn failed_code<T: Debug>(call: impl Future<Output = kube::Result<T>>, what: &str) -> u16 {
    api_code(call.await.expect_err(what))
}

/// Creates `obj` with default parameters.
async fn create<K>(api: &Api<K>, obj: &K) -> K
where
    K: Clone + DeserializeOwned + Serialize + Debug,
{
    api.create(&PostParams::default(), obj)
        .await
        .expect("create")
}

/// The resourceVersion of a fresh list: a watch from it misses nothing written afterwards.
async fn list_rv<K>(api: &Api<K>) -> String
where
    K: Clone + DeserializeOwned + Debug,
{
    api.list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv")
}

/// A watch from `rv`, boxed so the test can poll it.
async fn watch_from<K>(api: &Api<K>, params: &WatchParams, rv: &str) -> EventStream<K>
where
    K: Clone + DeserializeOwned + Debug + Send + 'static,
{
    api.watch(params, rv).await.expect("watch").boxed()
}

type EventStream<K> = BoxStream<'static, kube::Result<WatchEvent<K>>>;

/// The next watch event, or None when the server ends the stream.
async fn next_event<K>(stream: &mut EventStream<K>) -> Option<WatchEvent<K>> {
    tokio::time::timeout(WAIT, stream.try_next())
        .await
        .expect("event")
        .expect("ok")
}

/// Polls `f` until it holds, failing the test after WAIT.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn crud_with_real_status_errors() {
    let server = TestServer::start().await.expect("server");
    let leases: Api<Lease> = Api::default_namespaced(server.client().expect("client"));
    let created = create(&leases, &lease("l1")).await;
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1: u64 = created
        .metadata
        .resource_version
        .clone()
        .expect("rv")
        .parse()
        .expect("numeric rv");
    assert_eq!(
        failed_code(leases.create(&PostParams::default(), &lease("l1")), "dup").await,
        409
    );
    assert_eq!(failed_code(leases.get("nope"), "missing").await, 404);

    let mut l = leases.get("l1").await.expect("get");
    l.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    let replaced = leases
        .replace("l1", &PostParams::default(), &l)
        .await
        .expect("replace");
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .clone()
        .expect("rv")
        .parse()
        .expect("rv");
    assert!(rv2 > rv1);
    // Stale resourceVersion: 409 Conflict with the real reason.
    let err = leases
        .replace("l1", &PostParams::default(), &l)
        .await
        .expect_err("stale");
    let s = api_status(err);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );
    // Leases refuse unconditional updates.
    let mut unconditional = replaced.clone();
    unconditional.metadata.resource_version = None;
    let err = leases
        .replace("l1", &PostParams::default(), &unconditional)
        .await
        .expect_err("no rv");
    let s = api_status(err);
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains(
            "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        ),
        "{}",
        s.message
    );

    let list = leases.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());

    // generateName
    let mut g = lease("");
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let made = leases
        .create(&PostParams::default(), &g)
        .await
        .expect("generateName");
    let name = made.metadata.name.expect("name");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    leases
        .delete("l1", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(failed_code(leases.get("l1"), "gone").await, 404);
    assert_eq!(
        failed_code(leases.delete("l1", &DeleteParams::default()), "twice").await,
        404
    );

    // A namespaced create in a missing namespace is a NotFound for the namespace.
    let other: Api<Lease> = Api::namespaced(server.client().expect("client"), "missing");
    assert_eq!(
        failed_code(other.create(&PostParams::default(), &lease("x")), "ns").await,
        404
    );
}

#[tokio::test]
async fn conditional_update_race_has_one_winner_per_round() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    create(&leases, &lease("race")).await;
    for round in 0..5 {
        let current = leases.get("race").await.expect("get");
        let writers = 8;
        let barrier = Arc::new(tokio::sync::Barrier::new(writers));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let leases = leases.clone();
            let mut mine = current.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                mine.spec.as_mut().expect("spec").holder_identity = Some(format!("w{w}-r{round}"));
                barrier.wait().await;
                leases.replace("race", &PostParams::default(), &mine).await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.expect("join") {
                Ok(_) => wins += 1,
                Err(e) => assert_eq!(api_code(e), 409),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
}

#[tokio::test]
async fn selectors_and_pagination() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        create(
            &cms,
            &cm(&format!("c{i}"), json!({"tier": tier, "app": "x"})),
        )
        .await;
    }
    let even = cms
        .list(&ListParams::default().labels("tier=even"))
        .await
        .expect("list");
    assert_eq!(even.items.len(), 4);
    let notin = cms
        .list(&ListParams::default().labels("tier notin (even),app"))
        .await
        .expect("list");
    assert_eq!(notin.items.len(), 3);
    let one = cms
        .list(&ListParams::default().fields("metadata.name=c3"))
        .await
        .expect("list");
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].metadata.name.as_deref(), Some("c3"));
    let err = cms
        .list(&ListParams::default().fields("data.k=c3"))
        .await
        .expect_err("bad field");
    assert_eq!(api_code(err), 400);

    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.expect("page");
        pages += 1;
        seen.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn raw_watch_streams_events_with_selector_transitions() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    let rv = list_rv(&cms).await;
    let mut stream = watch_from(
        &cms,
        &WatchParams::default().labels("app=web").timeout(30),
        &rv,
    )
    .await;
    create(&cms, &cm("a", json!({"app": "web"}))).await;
    create(&cms, &cm("b", json!({"app": "db"}))).await;
    let mut a = cms.get("a").await.expect("get");
    a.metadata.labels = Some([("app".to_string(), "gone".to_string())].into());
    cms.replace("a", &PostParams::default(), &a)
        .await
        .expect("relabel");
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let ev = next_event(&mut stream).await.expect("open");
        match ev {
            WatchEvent::Added(c) => kinds.push(format!("ADDED {}", c.metadata.name.expect("n"))),
            WatchEvent::Modified(c) => {
                kinds.push(format!("MODIFIED {}", c.metadata.name.expect("n")))
            }
            WatchEvent::Deleted(c) => {
                kinds.push(format!("DELETED {}", c.metadata.name.expect("n")))
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    // b never matched; a leaving the selector is a DELETED.
    assert_eq!(kinds, vec!["ADDED a", "DELETED a"]);
}

#[tokio::test]
async fn watcher_resumes_after_timeout_and_relists_after_gone() {
    let server = TestServer::builder()
        .retained_events(50)
        .start()
        .await
        .expect("server");
    let ua = "watcher-test";
    let client = server.client_as(ua).expect("client");
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let seen = Arc::new(std::sync::Mutex::new(
        std::collections::BTreeSet::<String>::new(),
    ));
    let restarts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (s2, r2) = (seen.clone(), restarts.clone());
    // A 1 s server-side timeout makes the watcher re-watch again and again.
    let cfg = watcher::Config::default().timeout(1);
    let task = tokio::spawn(async move {
        let mut stream = watcher(cms, cfg).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) => {
                    s2.lock()
                        .expect("lock")
                        .insert(c.metadata.name.expect("name"));
                }
                Ok(watcher::Event::Init) => {
                    r2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                _ => {}
            }
        }
    });
    let writer: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    create(&writer, &cm("before", json!({}))).await;
    eventually("the first object", || async {
        seen.lock().expect("lock").contains("before")
    })
    .await;
    // Outlive several 1 s watch timeouts, then write: the resumed watch must deliver it.
    eventually("three watch requests", || async {
        server.accounting().count(ua, "watch") >= 3
    })
    .await;
    let lists_before = server.accounting().count(ua, "list");
    create(&writer, &cm("after-timeout", json!({}))).await;
    eventually("the object after timeouts", || async {
        seen.lock().expect("lock").contains("after-timeout")
    })
    .await;
    assert_eq!(
        server.accounting().count(ua, "list"),
        lists_before,
        "resuming must not re-list"
    );

    // Compaction + dropped watches: the resume gets 410 and the watcher re-lists.
    server.faults().compact();
    server.faults().drop_watches();
    eventually("a re-list after 410", || async {
        server.accounting().count(ua, "list") > lists_before
    })
    .await;
    create(&writer, &cm("after-gone", json!({}))).await;
    eventually("the object after re-list", || async {
        seen.lock().expect("lock").contains("after-gone")
    })
    .await;
    assert!(restarts.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    task.abort();
}

#[tokio::test]
async fn watch_from_compacted_version_is_gone() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    let rv = list_rv(&cms).await;
    create(&cms, &cm("x", json!({}))).await;
    server.faults().compact();
    let mut stream = watch_from(&cms, &WatchParams::default(), &rv).await;
    match next_event(&mut stream).await {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn status_subresource_and_generation() {
    // No Deployment controller races the status writes below.
    let server = TestServer::builder()
        .controllers(false)
        .start()
        .await
        .expect("server");
    let deploys: Api<Deployment> = Api::default_namespaced(server.client().expect("client"));
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"replicas": 5}
    }))
    .expect("deployment");
    let created = create(&deploys, &d).await;
    assert!(created.status.is_none(), "status is dropped on create");
    assert_eq!(created.metadata.generation, Some(1));

    let mut s = created.clone();
    s.status = Some(serde_json::from_value(json!({"replicas": 3})).expect("status"));
    s.spec.as_mut().expect("spec").replicas = Some(9);
    let after_status = deploys
        .replace_status("d", &PostParams::default(), &s)
        .await
        .expect("status write");
    assert_eq!(
        after_status.status.as_ref().and_then(|s| s.replicas),
        Some(3)
    );
    assert_eq!(
        after_status.spec.as_ref().and_then(|s| s.replicas),
        Some(1),
        "status writes ignore spec"
    );
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    let mut m = after_status.clone();
    m.spec.as_mut().expect("spec").replicas = Some(2);
    m.status = None;
    let after_main = deploys
        .replace("d", &PostParams::default(), &m)
        .await
        .expect("main write");
    assert_eq!(
        after_main.status.as_ref().and_then(|s| s.replicas),
        Some(3),
        "main writes ignore status"
    );
    assert_eq!(after_main.metadata.generation, Some(2));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    let mut c = cm("f", json!({}));
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    create(&cms, &c).await;
    cms.delete("f", &DeleteParams::default())
        .await
        .expect("delete");
    let held = cms.get("f").await.expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    let mut released = held.clone();
    released.metadata.finalizers = None;
    cms.replace("f", &PostParams::default(), &released)
        .await
        .expect("remove finalizer");
    assert_eq!(failed_code(cms.get("f"), "gone").await, 404);
}

#[tokio::test]
async fn kubelet_restarts_a_container() {
    let server = TestServer::start().await.expect("server");
    let pods: Api<Pod> = Api::default_namespaced(server.client().expect("client"));
    let kubelet = server.kubelet();
    kubelet
        .run_pod("default", json!({"metadata": {"name": "r1"}}))
        .expect("run");
    kubelet
        .restart_container("default", "r1", None)
        .expect("restart");
    kubelet
        .restart_container("default", "r1", Some("main"))
        .expect("restart");
    let pod = pods.get("r1").await.expect("get");
    let status = &pod
        .status
        .expect("status")
        .container_statuses
        .expect("statuses")[0];
    assert_eq!(status.restart_count, 2);
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    assert_eq!(last.map(|t| t.exit_code), Some(137));
    assert!(
        status
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .is_some()
    );
    assert!(
        kubelet
            .restart_container("default", "missing", None)
            .is_err()
    );
}

#[tokio::test]
async fn graceful_pod_deletion_and_kubelet() {
    let server = TestServer::start().await.expect("server");
    let pods: Api<Pod> = Api::default_namespaced(server.client().expect("client"));
    let kubelet = server.kubelet();
    let p = kubelet
        .run_pod(
            "default",
            json!({"metadata": {"name": "p1", "labels": {"app": "x"}}}),
        )
        .expect("run");
    assert_eq!(p.pointer("/status/phase"), Some(&json!("Running")));
    let got = pods.get("p1").await.expect("get");
    let ready = |pod: &Pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status.clone())
            })
    };
    assert_eq!(ready(&got).as_deref(), Some("True"));
    assert!(got.status.as_ref().and_then(|s| s.pod_ip.clone()).is_some());
    kubelet.set_ready("default", "p1", false).expect("unready");
    assert_eq!(
        ready(&pods.get("p1").await.expect("get")).as_deref(),
        Some("False")
    );
    let running = pods
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .expect("list");
    assert_eq!(running.items.len(), 1);

    // Graceful: the pod lingers terminating until the grace period ends.
    pods.delete("p1", &DeleteParams::default().grace_period(2))
        .await
        .expect("delete");
    let terminating = pods.get("p1").await.expect("terminating");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(2));
    eventually("removal after the grace period", || async {
        pods.get_opt("p1").await.expect("get").is_none()
    })
    .await;

    // Containers stopped: removed at once.
    kubelet
        .run_pod("default", json!({"metadata": {"name": "p2"}}))
        .expect("run");
    pods.delete("p2", &DeleteParams::default().grace_period(3600))
        .await
        .expect("delete");
    assert!(pods.get_opt("p2").await.expect("get").is_some());
    kubelet
        .containers_stopped("default", "p2")
        .expect("stopped");
    assert!(pods.get_opt("p2").await.expect("get").is_none());

    // gracePeriodSeconds=0: immediate.
    kubelet
        .run_pod("default", json!({"metadata": {"name": "p3"}}))
        .expect("run");
    pods.delete("p3", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete");
    assert!(pods.get_opt("p3").await.expect("get").is_none());
}

#[tokio::test]
async fn background_propagation_deletes_dependents_and_orphan_keeps_them() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    for owner in ["o1", "o2"] {
        create_owner_and_dependent(&cms, owner).await;
    }
    cms.delete("o1", &DeleteParams::background())
        .await
        .expect("delete");
    eventually("the dependent to be collected", || async {
        cms.get_opt("o1-dep").await.expect("get").is_none()
    })
    .await;
    cms.delete("o2", &DeleteParams::orphan())
        .await
        .expect("delete");
    let orphan = cms.get("o2-dep").await.expect("orphan kept");
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

fn no_retry(server: &TestServer, ua: &str) -> Client {
    let mut config = server.config(ua, None).expect("config");
    config.default_retry = false;
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn faults_latency_errors_and_blackhole_per_client() {
    let server = TestServer::start().await.expect("server");
    let victim: Api<ConfigMap> = Api::default_namespaced(no_retry(&server, "victim"));
    let bystander: Api<ConfigMap> = Api::default_namespaced(no_retry(&server, "bystander"));

    server
        .faults()
        .latency(Some("victim"), Duration::from_millis(300));
    let start = std::time::Instant::now();
    victim
        .list(&ListParams::default())
        .await
        .expect("slow list");
    assert!(start.elapsed() >= Duration::from_millis(300));
    server.faults().clear();

    for code in [500u16, 429, 503] {
        server.faults().errors(Some("victim"), code, 1.0);
        assert_eq!(
            failed_code(victim.list(&ListParams::default()), "fault").await,
            code
        );
        bystander
            .list(&ListParams::default())
            .await
            .expect("others unaffected");
    }
    server.faults().errors(Some("victim"), 500, 0.5);
    let mut failures = 0;
    for _ in 0..10 {
        if victim.list(&ListParams::default()).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 5);
    server.faults().clear();

    server.faults().blackhole(Some("victim"), true);
    let hung =
        tokio::time::timeout(Duration::from_secs(1), victim.list(&ListParams::default())).await;
    assert!(hung.is_err(), "a blackholed request hangs");
    bystander
        .list(&ListParams::default())
        .await
        .expect("others unaffected");
    let pending = tokio::spawn({
        let victim = victim.clone();
        async move { victim.list(&ListParams::default()).await }
    });
    server.faults().blackhole(Some("victim"), false);
    tokio::time::timeout(WAIT, pending)
        .await
        .expect("heals")
        .expect("join")
        .expect("served after healing");

    // Global faults hit every client.
    server.faults().errors(None, 503, 1.0);
    assert_eq!(
        failed_code(bystander.list(&ListParams::default()), "global").await,
        503
    );
    server.faults().clear();
    assert!(server.accounting().count("victim", "list") >= 15);
}

#[tokio::test]
async fn faults_drop_watches_and_restart() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    let rv = list_rv(&cms).await;
    let mut stream = watch_from(&cms, &WatchParams::default().timeout(290), &rv).await;
    server.faults().drop_watches();
    let end = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("watch ends");
    assert!(end.is_none(), "dropped watch ends cleanly: {end:?}");

    let mut stream = watch_from(&cms, &WatchParams::default().timeout(290), &rv).await;
    server.faults().restart();
    let end = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("connection dropped");
    assert!(
        !matches!(end, Some(Ok(_))),
        "no event, the connection is gone: {end:?}"
    );
    // State is kept and new connections are served.
    cms.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .expect("create after restart");
    assert!(cms.get_opt("after").await.expect("get").is_some());
}

#[tokio::test]
async fn tls_and_token_auth() {
    let server = TestServer::builder()
        .tls(true)
        .auth(true)
        .start()
        .await
        .expect("server");
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("admin client"));
    cms.create(&PostParams::default(), &cm("t", json!({})))
        .await
        .expect("admin may");
    let bad: Api<ConfigMap> =
        Api::default_namespaced(server.client_with_token("bad", "wrong").expect("client"));
    assert_eq!(
        failed_code(bad.list(&ListParams::default()), "401").await,
        401
    );
    let kc = std::fs::read_to_string(server.kubeconfig_path()).expect("kubeconfig");
    assert!(kc.contains("certificate-authority-data:") && kc.contains("token: "));
}

#[tokio::test]
async fn rbac_allows_bound_service_account_and_denies_others() {
    let server = TestServer::builder()
        .auth(true)
        .start()
        .await
        .expect("server");
    server
        .tokens()
        .add_service_account("app-token", "default", "app");
    server.tokens().add_user("bob-token", "bob", &["devs"]);
    let admin = server.client().expect("admin");
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::default_namespaced(admin.clone());
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::default_namespaced(admin);
    roles
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "leases"},
            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]
        })).expect("role"))
        .await
        .expect("role");
    bindings
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "leases"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leases"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "default"}]
        })).expect("binding"))
        .await
        .expect("binding");
    let app: Api<Lease> = Api::default_namespaced(
        server
            .client_with_token("app", "app-token")
            .expect("client"),
    );
    app.create(&PostParams::default(), &lease("mine"))
        .await
        .expect("allowed create");
    app.get("mine").await.expect("allowed get");
    let err = app
        .delete("mine", &DeleteParams::default())
        .await
        .expect_err("no delete verb");
    let s = api_status(err);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert!(
        s.message.contains(
            "User \"system:serviceaccount:default:app\" cannot delete resource \"leases\""
        ),
        "{}",
        s.message
    );
    let bob: Api<Lease> = Api::default_namespaced(
        server
            .client_with_token("bob", "bob-token")
            .expect("client"),
    );
    assert_eq!(failed_code(bob.get("mine"), "unbound user").await, 403);
}

#[tokio::test]
async fn server_side_apply_with_field_managers() {
    use kube::api::{Patch, PatchParams};
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
    let created = cms
        .patch("ssa", &PatchParams::apply("one"), &Patch::Apply(&body))
        .await
        .expect("apply creates");
    assert_eq!(
        created
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("1")
    );
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"one".to_string()), "{managers:?}");
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "2"}});
    assert_eq!(
        failed_code(
            cms.patch("ssa", &PatchParams::apply("two"), &Patch::Apply(&other)),
            "conflict"
        )
        .await,
        409
    );
    let forced = cms
        .patch(
            "ssa",
            &PatchParams::apply("two").force(),
            &Patch::Apply(&other),
        )
        .await
        .expect("force");
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("2")
    );
}

#[tokio::test]
async fn bookmarks_when_allowed() {
    let server = TestServer::builder()
        .bookmark_interval(Duration::from_millis(200))
        .start()
        .await
        .expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    let rv = list_rv(&cms).await;
    let mut stream = watch_from(&cms, &WatchParams::default().timeout(60), &rv).await;
    match next_event(&mut stream).await {
        Some(WatchEvent::Bookmark(b)) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn blackholed_watch_goes_silent_until_healed() {
    let server = TestServer::start().await.expect("server");
    let watcher_api: Api<ConfigMap> =
        Api::default_namespaced(server.client_as("partitioned").expect("client"));
    let writer: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    let rv = list_rv(&watcher_api).await;
    let mut stream = watch_from(&watcher_api, &WatchParams::default().timeout(120), &rv).await;
    server.faults().blackhole(Some("partitioned"), true);
    create(&writer, &cm("during", json!({}))).await;
    let silent = tokio::time::timeout(Duration::from_secs(1), stream.try_next()).await;
    assert!(silent.is_err(), "no event while partitioned: {silent:?}");
    server.faults().blackhole(Some("partitioned"), false);
    match next_event(&mut stream).await {
        Some(WatchEvent::Added(c)) => assert_eq!(c.metadata.name.as_deref(), Some("during")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn admin_endpoint_controls_faults_and_reports_accounting() {
    let server = TestServer::start().await.expect("server");
    let admin = server.client_as("admin-caller").expect("client");
    let victim: Api<ConfigMap> = Api::default_namespaced(no_retry(&server, "victim"));
    victim.list(&ListParams::default()).await.expect("list");
    let req = |method: &str, path: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .expect("request")
    };
    let counts: serde_json::Value = serde_json::from_str(
        &admin
            .request_text(req("GET", "/testkit/accounting", ""))
            .await
            .expect("accounting"),
    )
    .expect("json");
    assert_eq!(counts["victim"]["list"], 1);
    assert!(
        counts.get("admin-caller").is_none(),
        "admin calls are not counted"
    );
    admin
        .request_text(req(
            "PUT",
            "/testkit/faults?client=victim",
            r#"{"errorRate":1.0,"errorCode":500}"#,
        ))
        .await
        .expect("set fault");
    assert_eq!(
        failed_code(victim.list(&ListParams::default()), "fault").await,
        500
    );
    admin
        .request_text(req("DELETE", "/testkit/faults", ""))
        .await
        .expect("clear");
    victim.list(&ListParams::default()).await.expect("healed");
    let pod: serde_json::Value = serde_json::from_str(
        &admin
            .request_text(req(
                "POST",
                "/testkit/kubelet/pods/default",
                r#"{"metadata":{"name":"ap"}}"#,
            ))
            .await
            .expect("run pod"),
    )
    .expect("json");
    assert_eq!(pod["status"]["phase"], "Running");
    admin
        .request_text(req(
            "POST",
            "/testkit/kubelet/pods/default/ap/phase?phase=Succeeded",
            "",
        ))
        .await
        .expect("phase");
    let pods: Api<Pod> = Api::default_namespaced(server.client().expect("client"));
    let p = pods.get("ap").await.expect("get");
    assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Succeeded"));
}

#[tokio::test]
async fn custom_resources_get_schema_defaults_validation_and_discovery() {
    use kube::core::{DynamicObject, GroupVersionKind};
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let crd = serde_json::from_value(json!({
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
                    "properties": {"n": {"type": "integer", "minimum": 1, "default": 2}}}}}}}]}
    }))
    .expect("crd");
    let created = crds
        .create(&PostParams::default(), &crd)
        .await
        .expect("crd");
    let conds = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Gadget"))
        .expect("served");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
    let gadgets: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {}
    }))
    .expect("obj");
    let made = create(&gadgets, &obj).await;
    assert_eq!(made.data["spec"]["n"], 2, "schema default applied");
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "b"}, "spec": {"n": 0}
    }))
    .expect("obj");
    let s = api_status(
        gadgets
            .create(&PostParams::default(), &bad)
            .await
            .expect_err("invalid"),
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(s.message.contains("spec.n"), "{}", s.message);
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .expect("delete crd");
    let gone = gadgets
        .list(&ListParams::default())
        .await
        .expect_err("no longer served");
    assert_eq!(api_code(gone), 404);
}

#[tokio::test]
async fn bench_runs_small() {
    let report = zen_lead_testkit::bench::run(200, 20, Duration::from_secs(120))
        .await
        .expect("bench");
    assert!(report.contains("watch events delivered"), "{report}");
    assert!(report.contains("(1000 of 1000 events)"), "{report}");
}

#[tokio::test]
async fn foreground_deletion_collects_dependents_first_and_deletecollection_uses_selectors() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    create_owner_and_dependent(&cms, "fg").await;
    cms.delete("fg", &DeleteParams::foreground())
        .await
        .expect("delete");
    eventually("owner and dependent gone", || async {
        cms.get_opt("fg").await.expect("get").is_none()
            && cms.get_opt("fg-dep").await.expect("get").is_none()
    })
    .await;

    for (n, team) in [("k1", "a"), ("k2", "a"), ("k3", "b")] {
        create(&cms, &cm(n, json!({"team": team}))).await;
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("team=a"),
    )
    .await
    .expect("deletecollection");
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, ["k3"]);
}

#[tokio::test]
async fn exact_list_from_a_compacted_version_is_gone() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    let rv = list_rv(&cms).await;
    server.faults().compact();
    let lp = ListParams::default()
        .at(&rv)
        .matching(kube::api::VersionMatch::Exact);
    assert_eq!(failed_code(cms.list(&lp), "compacted").await, 410);
    // A NotOlderThan list is served from the latest state.
    cms.list(&ListParams::default().at(&rv))
        .await
        .expect("not older than");
}

#[tokio::test]
async fn crd_versions_share_storage_and_namespaces_delete_their_contents() {
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    let crd = serde_json::from_value(json!({
        "metadata": {"name": "things.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema},
                {"name": "v2", "served": true, "storage": false, "schema": schema}]}
    }))
    .expect("crd");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("crd");
    let v1: Api<DynamicObject> = Api::default_namespaced_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Thing")),
    );
    let v2: Api<DynamicObject> = Api::default_namespaced_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v2", "Thing")),
    );
    let obj: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Thing",
        "metadata": {"name": "t"}, "spec": {"x": 1}}))
        .expect("obj");
    v1.create(&PostParams::default(), &obj)
        .await
        .expect("create v1");
    let read = v2.get("t").await.expect("read through v2");
    assert_eq!(
        read.types.map(|t| t.api_version).as_deref(),
        Some("example.com/v2")
    );
    assert_eq!(read.data["spec"]["x"], 1);

    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).expect("ns"),
        )
        .await
        .expect("ns");
    let in_tmp: Api<ConfigMap> = Api::namespaced(client.clone(), "tmp");
    create(&in_tmp, &cm("inside", json!({}))).await;
    namespaces
        .delete("tmp", &DeleteParams::default())
        .await
        .expect("delete ns");
    eventually("namespace gone", || async {
        namespaces.get_opt("tmp").await.expect("get").is_none()
    })
    .await;
    assert!(
        in_tmp
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn metadata_only_api_and_metadata_watcher() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    create(&cms, &cm("meta", json!({"x": "y"}))).await;
    let one = cms.get_metadata("meta").await.expect("get_metadata");
    assert_eq!(
        one.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("x"))
            .map(String::as_str),
        Some("y")
    );
    let list = cms
        .list_metadata(&ListParams::default())
        .await
        .expect("list_metadata");
    assert_eq!(list.items.len(), 1);
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::default_namespaced(server.client().expect("client"));
    let mut stream = watcher(meta_api, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    while !names.contains(&"meta".to_string()) {
        match tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("event")
            .expect("open")
            .expect("ok")
        {
            watcher::Event::InitApply(m) | watcher::Event::Apply(m) => {
                names.push(m.metadata.name.expect("name"))
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn events_k8s_io_events_are_core_events_too() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner = create(&cms, &cm("evt", json!({}))).await;
    let reporter = Reporter {
        controller: "zen-lead-test".into(),
        instance: None,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let reference = kube::Resource::object_ref(&owner, &());
    for _ in 0..2 {
        recorder
            .publish(
                &Event {
                    type_: EventType::Warning,
                    reason: "Tested".into(),
                    note: Some("it happened".into()),
                    action: "Test".into(),
                    secondary: None,
                },
                &reference,
            )
            .await
            .expect("publish");
    }
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let seen = core
        .list(
            &ListParams::default().fields("involvedObject.name=evt,involvedObject.kind=ConfigMap"),
        )
        .await
        .expect("core list");
    assert_eq!(
        seen.items.len(),
        1,
        "a repeated event is one object with a series"
    );
    assert_eq!(seen.items[0].message.as_deref(), Some("it happened"));
    assert_eq!(seen.items[0].reason.as_deref(), Some("Tested"));
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::default_namespaced(client);
    let viewed = v1
        .list(&ListParams::default().fields("regarding.name=evt"))
        .await
        .expect("v1 list");
    assert_eq!(viewed.items.len(), 1);
    assert_eq!(
        viewed.items[0]
            .regarding
            .as_ref()
            .and_then(|r| r.name.as_deref()),
        Some("evt")
    );
}

#[tokio::test]
async fn unknown_patch_content_type_is_415() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    create(&cms, &cm("p", json!({}))).await;
    let req = http::Request::builder()
        .method("PATCH")
        .uri("/api/v1/namespaces/default/configmaps/p")
        .header("content-type", "text/plain")
        .body(b"{}".to_vec())
        .expect("request");
    let s = api_status(client.request_text(req).await.expect_err("415"));
    assert_eq!((s.code, s.reason.as_str()), (415, "UnsupportedMediaType"));
}
