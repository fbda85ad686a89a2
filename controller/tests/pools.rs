//! Gated CronJob runs, mixed pools of zen-lead-exec and annotation-only pods, recreated Leases
//! and many pools at once, with the real controller and the library's own Elector standing in
//! for the `zen-lead-exec` processes.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use zen_lead::lease::record::Renewer;
use zen_lead::lease::{Candidate, ElectionConfig, Elector, Timing};

fn exec_elector(
    server: &zen_lead_testkit::TestServer,
    pool: &str,
    pod: &serde_json::Value,
    timing: Timing,
) -> Elector {
    let name = pod["metadata"]["name"].as_str().expect("name").to_string();
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let client = zen_lead::client::from_config(
        server
            .config(&zen_lead::client::user_agent(&name), None)
            .expect("config"),
        &name,
    )
    .expect("client");
    Elector::spawn(
        client,
        ElectionConfig {
            pool: pool.into(),
            namespace: NS.into(),
            candidate: Candidate {
                identity: name,
                pod_uid: Some(uid),
                session: zen_lead::identity::new_session(),
            },
            timing,
            min_hold: None,
        },
    )
}

fn timing(lease: u64, renew: u64, retry_ms: u64) -> Timing {
    zen_lead::timing::validate(
        Duration::from_secs(lease),
        Duration::from_secs(renew),
        Duration::from_millis(retry_ms),
    )
    .expect("valid")
}

/// A pod whose init container runs `zen-lead-exec gate`.
fn gated_spec() -> serde_json::Value {
    json!({
        "restartPolicy": "Never",
        "initContainers": [{"name": "zen-lead-gate", "image": "ghcr.io/kube-zen/zen-lead-exec:0.1.0",
                            "args": ["gate", "--pool=billing", "--on-follower=fail"]}],
        "containers": [{"name": "export", "image": "registry.example.com/billing-export:3.1.0"}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_runs_are_renewed_while_they_run_and_released_when_they_end() {
    let server = server().await;
    let _controller = controller(&server, "ctl-gate");
    policy(&server, "billing", 4, 2, 1, json!({})).await;
    let t = timing(4, 2, 1000);

    // Run 1: its gate acquires and hands renewal to the controller.
    let run1 = run_pod_with(&server, "billing", "billing-run-1", gated_spec());
    let mut gate = exec_elector(&server, "billing", &run1, t);
    let term = tokio::time::timeout(EVENTUALLY, gate.leading())
        .await
        .expect("in time")
        .expect("leads");
    gate.hand_to_controller()
        .await
        .expect("handed to the controller");
    let handed = record(&server, "billing").await.expect("lease");
    assert_eq!(handed.renewer, Renewer::Controller);

    // The controller renews while the run runs: well past the lease duration, same holder/term.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let running = record(&server, "billing").await.expect("lease");
    assert_eq!(
        (running.holder.as_deref(), running.term),
        (Some("billing-run-1"), term)
    );
    assert!(
        running.renew_time > handed.renew_time,
        "renewed by the controller"
    );

    // A second run's gate waits while run 1 runs.
    let run2 = run_pod_with(&server, "billing", "billing-run-2", gated_spec());
    let mut gate2 = exec_elector(&server, "billing", &run2, t);
    assert!(
        tokio::time::timeout(Duration::from_secs(6), gate2.leading())
            .await
            .is_err(),
        "run 2 must not lead while run 1 runs"
    );

    // Run 1 ends: the controller releases with the marker, and run 2 leads at once.
    server
        .kubelet()
        .set_phase(NS, "billing-run-1", "Succeeded")
        .expect("succeed");
    let term2 = tokio::time::timeout(Duration::from_secs(20), gate2.leading())
        .await
        .expect("run 2 leads soon after run 1 ends")
        .expect("leads");
    assert_eq!(term2, term + 1);
    let reasons = event_reasons(&server, "billing").await;
    assert!(
        reasons.contains(&"LeaderElected".to_string()),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_pool_of_exec_and_annotation_only_pods() {
    let server = server().await;
    let _controller = controller(&server, "ctl-mixed");
    policy(&server, "mixed", 4, 2, 1, json!({})).await;
    let t = timing(4, 2, 1000);
    // x and y run zen-lead-exec; z is annotation-only.
    let x = run_pod(&server, "mixed", "mixed-x");
    let mut ex = exec_elector(&server, "mixed", &x, t);
    let term = tokio::time::timeout(EVENTUALLY, ex.leading())
        .await
        .expect("in time")
        .expect("x leads");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let y = run_pod(&server, "mixed", "mixed-y");
    let mut ey = exec_elector(&server, "mixed", &y, t);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    run_pod(&server, "mixed", "mixed-z");

    let (leader, _) = wait_elected(&server, "mixed").await;
    assert_eq!(leader, "mixed-x");
    let held = record(&server, "mixed").await.expect("lease");
    assert_eq!(
        held.renewer,
        Renewer::SelfRenewing,
        "the controller never renews an exec holder"
    );

    // x's pod fails: the controller hands over on evidence to the candidate Ready the longest
    // (y, an exec pod), whose elector takes over renewing as `self`.
    drop(ex);
    server
        .kubelet()
        .set_phase(NS, "mixed-x", "Failed")
        .expect("fail");
    let term_y = tokio::time::timeout(Duration::from_secs(20), ey.leading())
        .await
        .expect("y leads at once on evidence")
        .expect("leads");
    assert_eq!(term_y, term + 1);
    eventually(EVENTUALLY, "y renews as self", || async {
        record(&server, "mixed").await.filter(|r| {
            r.holder.as_deref() == Some("mixed-y") && r.renewer == Renewer::SelfRenewing
        })
    })
    .await;
    let (leader, _) = wait_elected(&server, "mixed").await;
    assert_eq!(leader, "mixed-y");

    // y's command ends: it releases and its pod finishes. The controller names z, the
    // annotation-only pod (whether it saw the release or the finished pod first).
    ey.release().await.expect("release");
    server
        .kubelet()
        .set_phase(NS, "mixed-y", "Succeeded")
        .expect("succeed");
    let record = wait_holder(&server, "mixed", "mixed-z", term_y, EVENTUALLY).await;
    assert_eq!(record.renewer, Renewer::Controller);
    let (leader, _) = wait_elected(&server, "mixed").await;
    assert_eq!(leader, "mixed-z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_lease_continues_above_the_high_water_term() {
    let server = server().await;
    let _controller = controller(&server, "ctl-recreate");
    policy(&server, "phoenix", 4, 2, 1, json!({})).await;
    run_pod(&server, "phoenix", "phoenix-a");
    let (_, term) = wait_elected(&server, "phoenix").await;
    let (ok, _, err) = kubectl(&server, &["delete", "lease", "phoenix"]);
    assert!(ok, "{err}");
    let record = eventually(EVENTUALLY, "the Lease recreated", || async {
        record(&server, "phoenix").await.filter(|r| r.is_held())
    })
    .await;
    assert!(record.term > term, "term {} after {term}", record.term);
    let status = policies(&server)
        .get("phoenix")
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(status.term.unwrap_or(0) >= i64::try_from(record.term).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pools_stay_independent() {
    let server = server().await;
    let _controller = controller(&server, "ctl-fifty");
    for i in 0..50 {
        let pool = format!("pool-{i:02}");
        policy(&server, &pool, 10, 6, 2, json!({})).await;
        run_pod(&server, &pool, &format!("{pool}-a"));
        run_pod(&server, &pool, &format!("{pool}-b"));
    }
    for i in 0..50 {
        let pool = format!("pool-{i:02}");
        let (leader, term) = wait_elected(&server, &pool).await;
        assert!(leader.starts_with(&pool), "{pool} led by {leader}");
        assert_eq!(term, 1, "{pool}");
        assert_eq!(leaders(&server, &pool).await.len(), 1, "{pool}");
    }
    // One pool's failover leaves the others alone.
    let leader7 = leaders(&server, "pool-07").await.remove(0);
    let other7 = if leader7.ends_with("-a") {
        "pool-07-b"
    } else {
        "pool-07-a"
    };
    server
        .kubelet()
        .set_phase(NS, &leader7, "Failed")
        .expect("fail");
    let r7 = wait_holder(&server, "pool-07", other7, 1, EVENTUALLY).await;
    assert_eq!(r7.term, 2);
    let others = futures::future::join_all((0..50).filter(|i| *i != 7).map(|i| {
        let server = &server;
        async move {
            record(server, &format!("pool-{i:02}"))
                .await
                .map(|r| r.term)
        }
    }))
    .await;
    assert!(others.iter().all(|t| *t == Some(1)), "{others:?}");
}
