//! The seed's integration guide, verbatim, with real `kubectl` against the testkit and the
//! controller running: every command answers what the guide says it answers, including the
//! three troubleshooting symptoms (docs/TROUBLESHOOTING.md).

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

fn ok(server: &zen_lead_testkit::TestServer, args: &[&str]) -> String {
    let (success, out, err) = kubectl(server, args);
    assert!(success, "kubectl {args:?} failed: {err}");
    println!("$ kubectl {}\n{out}", args.join(" "));
    out
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
    // A pod's role, from its annotation (kubectl needs the `/` of the key escaped in jsonpath).
    let role = ok(
        &server,
        &[
            "get",
            "pod",
            &leader,
            "-o",
            r"jsonpath={.metadata.annotations.zen-lead\/role}",
        ],
    );
    assert_eq!(role, "leader");
    let role = ok(
        &server,
        &[
            "get",
            "pod",
            "my-app-2",
            "-o",
            r"jsonpath={.metadata.annotations.zen-lead\/role}",
        ],
    );
    assert_eq!(role, "follower");
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
    let leaders = ok(
        &server,
        &[
            "get",
            "pods",
            "-l",
            "zen-lead/pool=my-pool,zen-lead/role=leader",
            "-o",
            "name",
        ],
    );
    assert_eq!(leaders.lines().count(), 1, "{leaders}");

    // Symptom "leader not processing": the leader's Lease is renewed and its Events say who leads.
    let events = ok(&server, &["events", "--for", &format!("pod/{leader}")]);
    assert!(events.contains("LeaderElected"), "{events}");

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
        out.contains("NoCandidates").then_some(out)
    })
    .await;
    println!("$ kubectl events --for leaderpolicy/my-pool\n{events}");
    assert!(events.contains("Warning"), "{events}");
    let none = ok(
        &server,
        &[
            "get",
            "pods",
            "-l",
            "zen-lead/pool=my-pool,zen-lead/role=leader",
            "-o",
            "name",
        ],
    );
    assert_eq!(none, "", "nobody is labelled leader");
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
