//! Evidence of death (docs/PROTOCOL.md §8) hands over at once; force deletion (also when a pod
//! of the same name replaces the old one at once, as a StatefulSet does) and NotReady do not,
//! and wait for the Lease to expire. The real controller against the testkit's kubelet.

mod support;

use std::time::{Duration, Instant};

use kube::api::DeleteParams;
use serde_json::json;
use support::*;

/// Elects `pool` between `<pool>-a` (Ready first) and `<pool>-b`; returns the term.
async fn elect_a(
    server: &zen_lead_testkit::TestServer,
    pool: &str,
    lease: i32,
    renew: i32,
    retry: i32,
) -> u64 {
    policy(server, pool, lease, renew, retry, json!({})).await;
    run_pod(server, pool, &format!("{pool}-a"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    run_pod(server, pool, &format!("{pool}-b"));
    let (leader, term) = wait_elected(server, pool).await;
    assert_eq!(leader, format!("{pool}-a"));
    term
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_of_death_hands_over_at_once() {
    let server = server().await;
    let _controller = controller(&server, "ctl-evidence");
    // A long lease: a handover well within it can only come from evidence.
    let pools = ["failed", "deleted", "restarted"];
    let mut terms = Vec::new();
    for pool in pools {
        terms.push(elect_a(&server, pool, 60, 40, 2).await);
    }
    // Let the controller see a renewal of each (the restart baseline).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kubelet = server.kubelet();
    let started = Instant::now();
    kubelet.set_phase(NS, "failed-a", "Failed").expect("fail");
    pods(&server)
        .delete("deleted-a", &DeleteParams::default().grace_period(30))
        .await
        .expect("graceful delete");
    kubelet
        .restart_container(NS, "restarted-a", None)
        .expect("restart");
    // The graceful deletion completes once the controller has seen it terminating.
    eventually(
        EVENTUALLY,
        "deleted-a demoted while terminating",
        || async {
            (roles(&server, "deleted")
                .await
                .get("deleted-a")
                .map(String::as_str)
                == Some("follower"))
            .then_some(())
        },
    )
    .await;
    // As a kubelet ends a deleted pod: its containers reported terminated, then the object
    // removed.
    kubelet
        .set_phase(NS, "deleted-a", "Failed")
        .expect("containers terminated");
    wait_holder(
        &server,
        "deleted",
        "deleted-b",
        terms[1],
        Duration::from_secs(40),
    )
    .await;
    kubelet
        .containers_stopped(NS, "deleted-a")
        .expect("containers stopped");
    for (pool, term) in pools.iter().zip(&terms) {
        let record = wait_holder(
            &server,
            pool,
            &format!("{pool}-b"),
            *term,
            Duration::from_secs(40),
        )
        .await;
        assert_eq!(record.term, term + 1, "{pool}: one new term");
        let (leader, _) = wait_elected(&server, pool).await;
        assert_eq!(leader, format!("{pool}-b"), "{pool}");
        assert!(
            event_reasons(&server, pool)
                .await
                .contains(&"Failover".to_string()),
            "{pool}: a Failover event on the policy"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "every handover came before the 60s lease could expire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_deletion_and_not_ready_wait_for_expiry() {
    let server = server().await;
    let _controller = controller(&server, "ctl-expiry");
    let lease = 6;
    let t_ready = elect_a(&server, "unready", lease, 4, 1).await;
    let t_forced = elect_a(&server, "forced", lease, 4, 1).await;
    let t_replaced = elect_a(&server, "replaced", lease, 4, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = Instant::now();
    server
        .kubelet()
        .set_ready(NS, "unready-a", false)
        .expect("not ready");
    pods(&server)
        .delete("forced-a", &DeleteParams::default().grace_period(0))
        .await
        .expect("force delete");
    // A StatefulSet recreates a force-deleted pod's name at once, while the old containers may
    // still run on their node: another UID proves nothing without the kubelet's report.
    pods(&server)
        .delete("replaced-a", &DeleteParams::default().grace_period(0))
        .await
        .expect("force delete");
    run_pod(&server, "replaced", "replaced-a");

    // NotReady demotes at once, while the Lease still names the old holder.
    eventually(Duration::from_secs(20), "unready-a demoted", || async {
        let roles = roles(&server, "unready").await;
        let record = record(&server, "unready").await?;
        (roles.get("unready-a").map(String::as_str) == Some("follower")
            && record.holder.as_deref() == Some("unready-a"))
        .then_some(())
    })
    .await;
    let status = policies(&server)
        .get("unready")
        .await
        .unwrap()
        .status
        .unwrap();
    let elected = status
        .conditions
        .iter()
        .find(|c| c.type_ == "LeaderElected")
        .unwrap();
    assert_eq!(elected.reason, "HolderNotReady", "{elected:?}");
    assert!(status.current_holder.is_none());

    for (pool, term) in [
        ("unready", t_ready),
        ("forced", t_forced),
        ("replaced", t_replaced),
    ] {
        wait_holder(&server, pool, &format!("{pool}-b"), term, EVENTUALLY).await;
        let waited = started.elapsed();
        // The last renewal was at most a retry period (1s) before the trigger: a successor
        // named before leaseDuration − retryPeriod would not have waited for expiry.
        assert!(
            waited >= Duration::from_secs(lease as u64 - 1),
            "{pool}: successor after {waited:?}, before the lease expired"
        );
        let (leader, _) = wait_elected(&server, pool).await;
        assert_eq!(leader, format!("{pool}-b"));
    }
}
