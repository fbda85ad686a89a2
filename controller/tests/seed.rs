//! The seed's integration guide, verbatim, with real `kubectl` against the testkit and the
//! controller running: every command answers what the guide says it answers, including the
//! three troubleshooting symptoms (docs/TROUBLESHOOTING.md).

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use zen_lead_testkit::TestServer;

/// Runs kubectl, asserts success and prints the command and its output (docs/TROUBLESHOOTING.md
/// quotes them).
fn ok(server: &TestServer, args: &[&str]) -> String {
    let (success, out, err) = kubectl(server, args);
    assert!(success, "kubectl {args:?} failed: {err}");
    println!("$ kubectl {}\n{out}", args.join(" "));
    out
}

/// The seed's command for a pod's role, verbatim.
fn role_of(server: &TestServer, pod: &str) -> String {
    ok(
        server,
        &[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.metadata.annotations.zen-lead/role}",
        ],
    )
}

/// The pods labelled leader, by the label selector a Service would use.
fn leader_pods(server: &TestServer, pool: &str) -> Vec<String> {
    ok(
        server,
        &[
            "get",
            "pods",
            "-l",
            &format!("zen-lead/pool={pool},zen-lead/role=leader"),
            "-o",
            "name",
        ],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_commands_answer_what_the_guide_says() {
    let server = server().await;
    let _controller = controller(&server, "ctl-seed");
    policy(&server, "my-pool", 4, 2, 1, json!({})).await;
    for name in ["my-app-0", "my-app-1", "my-app-2"] {
        run_pod(&server, "my-pool", name);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let (leader, term) = wait_elected(&server, "my-pool").await;

    // Pattern 2: who leads.
    let name = ok(
        &server,
        &[
            "get",
            "leaderpolicy",
            "my-pool",
            "-o",
            "jsonpath={.status.currentHolder.name}",
        ],
    );
    assert_eq!(name, leader);
    // The pool's pods, by label.
    let pods = ok(&server, &["get", "pods", "-l", "zen-lead/pool=my-pool"]);
    for name in ["my-app-0", "my-app-1", "my-app-2"] {
        assert!(pods.contains(name), "{pods}");
    }
    // A pod's role, from its annotation, with the guide's jsonpath as written.
    assert_eq!(role_of(&server, &leader), "leader");
    let follower = if leader == "my-app-2" {
        "my-app-1"
    } else {
        "my-app-2"
    };
    assert_eq!(role_of(&server, follower), "follower");
    // The LeaderElected condition.
    let condition = ok(
        &server,
        &[
            "get",
            "leaderpolicy",
            "my-pool",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="LeaderElected")]}"#,
        ],
    );
    let condition: serde_json::Value = serde_json::from_str(&condition).expect("a JSON condition");
    assert_eq!(
        (condition["status"].as_str(), condition["reason"].as_str()),
        (Some("True"), Some("LeaderActive"))
    );
    // The Lease.
    let lease = ok(&server, &["get", "lease", "my-pool", "-o", "yaml"]);
    assert!(
        lease.contains(&format!("holderIdentity: {leader}")),
        "{lease}"
    );
    assert!(
        lease.contains(&format!("leaseTransitions: {term}")),
        "{lease}"
    );
    assert!(lease.contains("zen-lead/renewer: controller"), "{lease}");
    // The printer columns.
    let table = ok(&server, &["get", "lp"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "LEADER", "PHASE", "CANDIDATES", "TERM", "AGE"]
    );
    assert!(
        table.contains(&leader) && table.contains("Stable"),
        "{table}"
    );

    // Symptom "multiple leaders": the leader label selects exactly one pod.
    assert_eq!(leader_pods(&server, "my-pool"), [format!("pod/{leader}")]);

    // Symptom "leader not processing": the leader's Events say it leads; when it stops being
    // Ready (its readiness probe fails), it is written follower at once, and a successor is
    // named only after its lease expires.
    let events = ok(&server, &["events", "--for", &format!("pod/{leader}")]);
    assert!(events.contains("LeaderElected"), "{events}");
    server
        .kubelet()
        .set_ready(NS, &leader, false)
        .expect("not ready");
    let stuck = eventually(EVENTUALLY, "HolderNotReady", || async {
        let (_, out, _) = kubectl(&server, &[
            "get", "leaderpolicy", "my-pool", "-o",
            r#"jsonpath={.status.phase} {.status.conditions[?(@.type=="LeaderElected")].reason}"#,
        ]);
        out.contains("HolderNotReady").then_some(out)
    })
    .await;
    println!(
        "$ kubectl get leaderpolicy my-pool -o jsonpath='{{.status.phase}} {{...reason}}'\n{stuck}"
    );
    assert_eq!(stuck, "Electing HolderNotReady");
    // The demotion came first: no pod is labelled leader while the lease runs out.
    assert_eq!(role_of(&server, &leader), "follower");
    let lease = ok(&server, &["get", "lease", "my-pool", "-o", "yaml"]);
    assert!(
        lease.contains(&format!("holderIdentity: {leader}")),
        "{lease}"
    );
    ok(&server, &["describe", "leaderpolicy", "my-pool"]);
    let (successor, next_term) = wait_elected(&server, "my-pool").await;
    assert_ne!(successor, leader);
    assert_eq!(next_term, term + 1);
    let events = eventually(EVENTUALLY, "a Failover event", || async {
        let (_, out, _) = kubectl(&server, &["events", "--for", "leaderpolicy/my-pool"]);
        out.contains("Failover").then_some(out)
    })
    .await;
    println!("$ kubectl events --for leaderpolicy/my-pool\n{events}");
    assert!(
        events.contains(&format!("moved to {successor} on expiry")),
        "{events}"
    );
    assert_eq!(
        leader_pods(&server, "my-pool"),
        [format!("pod/{successor}")]
    );

    // Symptom "no leader elected": no candidate is Ready.
    for name in ["my-app-0", "my-app-1", "my-app-2"] {
        server
            .kubelet()
            .set_ready(NS, name, false)
            .expect("not ready");
    }
    let reason = eventually(EVENTUALLY, "NoReadyCandidates", || async {
        let (_, out, _) = kubectl(&server, &[
            "get", "leaderpolicy", "my-pool", "-o",
            r#"jsonpath={.status.phase} {.status.currentHolder.name} {.status.conditions[?(@.type=="LeaderElected")].reason}"#,
        ]);
        out.contains("NoReadyCandidates").then_some(out)
    })
    .await;
    assert_eq!(
        reason.split_whitespace().collect::<Vec<_>>(),
        ["Electing", "NoReadyCandidates"]
    );
    let table = ok(&server, &["get", "lp", "my-pool"]);
    assert!(table.contains("Electing"), "{table}");
    let described = ok(&server, &["describe", "leaderpolicy", "my-pool"]);
    assert!(described.contains("NoReadyCandidates"), "{described}");
    let events = eventually(EVENTUALLY, "a NoCandidates event", || async {
        let (_, out, _) = kubectl(&server, &["events", "--for", "leaderpolicy/my-pool"]);
        out.contains("none Ready").then_some(out)
    })
    .await;
    println!("$ kubectl events --for leaderpolicy/my-pool\n{events}");
    assert!(
        events.lines().any(|l| l.contains("Warning")
            && l.contains("NoCandidates")
            && l.contains("none Ready")),
        "{events}"
    );
    assert!(
        leader_pods(&server, "my-pool").is_empty(),
        "nobody is labelled leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_without_a_policy_and_custom_identities() {
    let server = server().await;
    let _controller = controller(&server, "ctl-misc");
    // A pod naming a pool without a LeaderPolicy gets a Warning, and no election happens.
    run_pod(&server, "nowhere", "lonely-0");
    let events = eventually(EVENTUALLY, "a NoLeaderPolicy event", || async {
        let reasons = event_reasons(&server, "lonely-0").await;
        reasons
            .contains(&"NoLeaderPolicy".to_string())
            .then_some(reasons)
    })
    .await;
    assert!(!events.is_empty());
    assert!(
        record(&server, "nowhere").await.is_none(),
        "no election without a policy"
    );
    assert_eq!(roles(&server, "nowhere").await.len(), 0, "no roles written");

    // identityStrategy custom: the identity comes from the annotation or a literal env.
    policy(
        &server,
        "custom",
        4,
        2,
        1,
        json!({"identityStrategy": "custom", "followerMode": "scaleDown"}),
    )
    .await;
    server
        .kubelet()
        .run_pod(
            NS,
            json!({"metadata": {"name": "custom-0", "annotations": {
            "zen-lead/pool": "custom", "zen-lead/join": "true", "zen-lead/identity": "primary"}}}),
        )
        .expect("pod");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    run_pod_with(
        &server,
        "custom",
        "custom-1",
        json!({"containers": [
        {"name": "main", "image": "app", "env": [{"name": "ZEN_LEAD_IDENTITY", "value": "secondary"}]}]}),
    );
    run_pod(&server, "custom", "custom-2");
    let (leader, _) = wait_elected(&server, "custom").await;
    assert_eq!(leader, "custom-0");
    let held = record(&server, "custom").await.expect("lease");
    assert_eq!(held.holder.as_deref(), Some("primary"));
    let status = policies(&server)
        .get("custom")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        status.current_holder.as_ref().map(|h| h.name.as_str()),
        Some("custom-0")
    );
    let condition = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(condition("IdentitiesResolved").reason, "MissingIdentity");
    assert!(condition("IdentitiesResolved").message.contains("custom-2"));
    assert_eq!(condition("ScaleDown").status, "False");
    eventually(EVENTUALLY, "a MissingIdentity event", || async {
        event_reasons(&server, "custom-2")
            .await
            .contains(&"MissingIdentity".to_string())
            .then_some(())
    })
    .await;
    // The literal env identity is used on failover.
    server
        .kubelet()
        .set_phase(NS, "custom-0", "Failed")
        .expect("fail");
    wait_holder(&server, "custom", "secondary", held.term, EVENTUALLY).await;
}

/// The Events about `pod` with `reason`: (count, whether they were folded into a series).
async fn events_of(server: &TestServer, pod: &str, reason: &str) -> (usize, bool) {
    let api: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(server.client().expect("client"), NS);
    let list = api.list(&Default::default()).await.expect("list events");
    let matching: Vec<_> = list
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect();
    let series = matching.iter().any(|e| e.series.is_some());
    (matching.len(), series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_seen_while_standing_by_is_warned_once_after_leading() {
    use kube::api::PostParams;
    use zen_lead::lease::record::{self, Holder, Renewer};
    let server = server().await;
    // Another replica holds the controller's own Lease (and never renews it): this replica
    // stands by for one lease duration of its own Lease before it may lead.
    let ghost = record::create(
        "zen-lead-system",
        zen_lead_controller::leadership::LEASE_NAME,
        &Holder {
            identity: "ghost".into(),
            pod_uid: None,
            session: Some("ghost-session".into()),
            renewer: Renewer::SelfRenewing,
        },
        jiff::Timestamp::now(),
        Duration::from_secs(3),
        1,
    )
    .expect("a lease body");
    kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        server.client().expect("client"),
        "zen-lead-system",
    )
    .create(&PostParams::default(), &ghost)
    .await
    .expect("the ghost's lease");
    let _controller = controller(&server, "ctl-late");
    run_pod(&server, "nowhere", "lonely-0");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let own = kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        server.client().expect("client"),
        "zen-lead-system",
    );
    let holder = |lease: Option<k8s_openapi::api::coordination::v1::Lease>| {
        lease.and_then(|l| l.spec).and_then(|s| s.holder_identity)
    };
    if holder(
        own.get_opt(zen_lead_controller::leadership::LEASE_NAME)
            .await
            .expect("get"),
    )
    .as_deref()
        == Some("ghost")
    {
        assert_eq!(
            events_of(&server, "lonely-0", "NoLeaderPolicy").await.0,
            0,
            "a standby publishes nothing"
        );
    }
    eventually(EVENTUALLY, "ctl-late leads", || async {
        (holder(
            own.get_opt(zen_lead_controller::leadership::LEASE_NAME)
                .await
                .ok()?,
        )
        .as_deref()
            == Some("ctl-late"))
        .then_some(())
    })
    .await;
    eventually(EVENTUALLY, "the NoLeaderPolicy warning", || async {
        (events_of(&server, "lonely-0", "NoLeaderPolicy").await.0 == 1).then_some(())
    })
    .await;
    // More events of the same pod warn no more.
    for ready in [false, true, false] {
        server
            .kubelet()
            .set_ready(NS, "lonely-0", ready)
            .expect("flip");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        events_of(&server, "lonely-0", "NoLeaderPolicy").await,
        (1, false),
        "one Warning, not repeated"
    );
    let (_, out, _) = kubectl(&server, &["events", "--for", "pod/lonely-0"]);
    println!("$ kubectl events --for pod/lonely-0\n{out}");
    assert!(out.contains("no LeaderPolicy nowhere"), "{out}");
    assert!(record(&server, "nowhere").await.is_none(), "no election");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_zen_lead_does_not_manage_is_reported_never_taken() {
    let server = server().await;
    let _controller = controller(&server, "ctl-conflict");
    // Another tool's election Lease with the pool's name.
    let foreign: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(json!({
        "metadata": {"name": "taken", "namespace": NS},
        "spec": {"holderIdentity": "other-tool", "leaseDurationSeconds": 15},
    }))
    .expect("lease");
    leases(&server)
        .create(&Default::default(), &foreign)
        .await
        .expect("create the foreign lease");
    policy(&server, "taken", 4, 2, 1, json!({})).await;
    run_pod(&server, "taken", "taken-0");
    eventually(EVENTUALLY, "a LeaseConflict event", || async {
        (events_of(&server, "taken", "LeaseConflict").await.0 == 1).then_some(())
    })
    .await;
    let reason = ok(
        &server,
        &[
            "get",
            "leaderpolicy",
            "taken",
            "-o",
            r#"jsonpath={.status.phase} {.status.conditions[?(@.type=="LeaderElected")].reason}"#,
        ],
    );
    assert_eq!(reason, "Electing LeaseConflict");
    let lease = leases(&server).get("taken").await.expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("other-tool"),
        "never taken over"
    );
    assert!(leader_pods(&server, "taken").is_empty());
}
