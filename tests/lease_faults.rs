//! The Lease protocol under faults injected by the testkit API server: partition, error bursts,
//! watch loss with 410 Gone, connection drops, and request accounting in steady state.

mod common;

use std::time::Duration;

use common::*;
use zen_lead::lease::{LeaderState, LostReason};
use zen_lead_testkit::FaultSpec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_holder_steps_down_before_the_other_acquires() {
    let server = server().await;
    let Pair {
        a,
        b,
        mut sb,
        term: _,
    } = leader_and_follower(&server, "partition", timing(8, 4, 1000)).await;
    let a_states = record_states(a.state());
    let b_states = record_states(b.state());

    server.faults().blackhole(Some(&agent("pod-a")), true);
    wait_for(&mut sb, "b to lead after a's lease expired", is_leading).await;
    server.faults().blackhole(Some(&agent("pod-a")), false);
    drop(a);
    drop(b);

    let a_states = a_states.await.expect("a states");
    let b_states = b_states.await.expect("b states");
    let (lost_at, reason) = a_states
        .iter()
        .find_map(|(at, s)| match s {
            LeaderState::Lost { reason } => Some((*at, reason.clone())),
            _ => None,
        })
        .expect("a stepped down");
    assert_eq!(reason, LostReason::RenewDeadline);
    let last_deadline = a_states
        .iter()
        .rev()
        .find_map(|(_, s)| match s {
            LeaderState::Leading { deadline, .. } => Some(*deadline),
            _ => None,
        })
        .expect("a published its deadline");
    // a stepped down at its deadline (it is not told anything else during the partition).
    assert!(
        lost_at >= last_deadline,
        "a stepped down before its own deadline"
    );
    let b_leads_at = b_states
        .iter()
        .find_map(|(at, s)| is_leading(s).then_some(*at))
        .expect("b led");
    assert!(
        lost_at < b_leads_at,
        "b acquired before the partitioned holder stepped down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bursts_shorter_than_the_deadline_cause_no_step_down() {
    let server = server().await;
    let Pair { a, term, b, sb: _ } =
        leader_and_follower(&server, "bursts", timing(15, 10, 500)).await;
    let a_states = record_states(a.state());
    let ua = agent("pod-a");
    for code in [500, 503, 429] {
        let updates_before = server.accounting().count(&ua, "update");
        server.faults().errors(Some(&ua), code, 1.0);
        // Let a few renewals fail (the burst is much shorter than the 10 s deadline).
        let mut sa = a.state();
        let failed =
            poll_until(async || server.accounting().count(&ua, "update") >= updates_before + 3)
                .await;
        assert!(failed.is_ok(), "a did not retry during the {code} burst");
        server.faults().set_for(&ua, FaultSpec::default());
        // A renewal succeeds after the burst: a new deadline is published.
        let before = leading_deadline(
            &mut sa,
            &format!("a no longer leads during the {code} burst"),
        );
        wait_renewed(&mut sa, "a to renew after the burst", before).await;
    }
    drop(a);
    let states = a_states.await.expect("a states");
    assert!(
        states
            .iter()
            .all(|(_, s)| matches!(s, LeaderState::Leading { term: t, .. } if *t == term)),
        "a stepped down or changed term: {states:?}"
    );
    assert!(is_following(&b.state().borrow()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_make_no_requests_in_steady_state() {
    let server = server().await;
    let t = timing(15, 10, 500);
    let mut a = spawn(&server, "steady", "pod-a", t);
    a.leading().await.expect("a leads");
    let followers: Vec<_> = ["pod-b", "pod-c"]
        .iter()
        .map(|id| spawn(&server, "steady", id, t))
        .collect();
    for f in &followers {
        wait_following(&mut f.state(), "a follower to follow a", "pod-a").await;
    }
    // Let the followers' list + watch settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = |id: &str| server.accounting().total(&agent(id));
    let before: Vec<u64> = ["pod-b", "pod-c"].iter().map(|id| counts(id)).collect();
    let renewals_before = server.accounting().count(&agent("pod-a"), "update");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after: Vec<u64> = ["pod-b", "pod-c"].iter().map(|id| counts(id)).collect();
    let renewals_after = server.accounting().count(&agent("pod-a"), "update");
    assert!(
        renewals_after >= renewals_before + 2,
        "the holder did not renew during the window ({renewals_before} -> {renewals_after})"
    );
    assert_eq!(before, after, "followers made requests in steady state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_410_on_the_lease_watch_is_survived() {
    let server = server().await;
    // Only a release can hand over within the test, and only through a working watch.
    let Pair {
        a,
        term,
        mut sb,
        b: _b,
    } = leader_and_follower(&server, "gone", timing(3600, 10, 1000)).await;
    let lists_before = server.accounting().count(&agent("pod-b"), "list");
    // b lists again (its watch version was compacted away). A renewal that reaches b between
    // the compaction and the drop gives it a version that is still valid, and its resume then
    // needs no list: the fault is repeated until b has had to list.
    let relisted = async || server.accounting().count(&agent("pod-b"), "list") > lists_before;
    let mut attempts = 0;
    loop {
        server.faults().compact();
        server.faults().drop_watches();
        attempts += 1;
        let waited = tokio::time::timeout(Duration::from_secs(10), poll_until(relisted)).await;
        if waited.is_ok_and(|polled| polled.is_ok()) {
            break;
        }
        assert!(
            attempts < 5,
            "b never re-listed after 410 Gone ({attempts} faults)"
        );
    }
    // And its new watch works: a release reaches it.
    assert!(
        is_leading(&a.state().borrow()),
        "a stepped down after losing its watch"
    );
    a.release().await.expect("release");
    let leading = wait_for(&mut sb, "b to lead after the release", is_leading).await;
    assert_eq!(common::term(&leading), term + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_drops_connections_without_losing_the_lease() {
    let server = server().await;
    let Pair {
        a,
        mut sb,
        b: _b,
        term: _,
    } = leader_and_follower(&server, "restart", timing(3600, 10, 1000)).await;
    let mut sa = a.state();
    let before = leading_deadline(&mut sa, "a does not lead");
    server.faults().restart();
    wait_renewed(&mut sa, "a to renew after the restart", before).await;
    a.release().await.expect("release");
    wait_for(&mut sb, "b to lead after the release", is_leading).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_api_server_is_reported() {
    init_tracing();
    // A port that was free a moment ago and has no listener now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
    let mut a = spawn_with(config, "nowhere", "pod-a", timing(2, 1, 500));
    let result = leading_within(&mut a).await;
    assert!(
        matches!(result, Err(zen_lead::lease::LeaseError::Unreachable { .. })),
        "{result:?}"
    );
}

/// A holder whose process is paused past its deadline (here: its only runtime thread blocked,
/// like SIGSTOP) steps down on waking, even though nobody took the lease and a renewal would
/// still succeed (docs/PROTOCOL.md §4).
#[tokio::test(flavor = "current_thread")]
async fn holder_waking_from_a_pause_past_its_deadline_steps_down() {
    let server = server().await;
    let t = timing(30, 3, 1000);
    let mut a = spawn(&server, "paused", "pod-a", t);
    let term = a.leading().await.expect("a leads");
    let mut sa = a.state();
    // Block the runtime: no task of this process runs, as under SIGSTOP.
    std::thread::sleep(t.renew_deadline + std::time::Duration::from_secs(1));
    let lost = wait_for(&mut sa, "a to step down after the pause", |s| {
        matches!(s, LeaderState::Lost { .. })
    })
    .await;
    assert_eq!(
        lost,
        LeaderState::Lost {
            reason: LostReason::RenewDeadline
        }
    );
    // Nobody else took it: the step-down came from the local deadline alone.
    let record = lease_record(&server, "paused").await;
    assert_eq!(
        (record.holder.as_deref(), record.term),
        (Some("pod-a"), term)
    );
}
