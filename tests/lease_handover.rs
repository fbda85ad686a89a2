//! Handovers against the testkit API server: controller handover (docs/PROTOCOL.md §8), gate mode,
//! `--min-hold` release, and a restarted process with the same identity (PROTOCOL.md §7).

mod common;

use std::time::Duration;

use common::*;
use kube::api::PostParams;
use zen_lead::lease::record::{self, Renewer};
use zen_lead::lease::{Candidate, ElectionConfig, Elector, LeaderState, LostReason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_handover_supersedes_the_holder_and_the_named_candidate_takes_over() {
    let server = server().await;
    let Pair {
        a,
        term,
        mut sb,
        b: _b,
    } = leader_and_follower(&server, "handover", timing(3600, 10, 1000)).await;
    // What the controller writes on evidence that pod-a's containers stopped.
    let api = leases(&server);
    let observed = api.get("handover").await.expect("get");
    let body = record::controller_handover(
        &observed,
        "handover",
        "pod-b",
        Some("uid-pod-b"),
        jiff::Timestamp::now(),
        Duration::from_secs(3600),
        term + 1,
    )
    .expect("term fits");
    api.replace("handover", &PostParams::default(), &body)
        .await
        .expect("conditional handover write");

    let mut sa = a.state();
    let lost = wait_for(&mut sa, "a to see it was superseded", |s| {
        matches!(s, LeaderState::Lost { .. })
    })
    .await;
    assert_eq!(
        lost,
        LeaderState::Lost {
            reason: LostReason::Superseded {
                holder: "pod-b".into()
            }
        }
    );
    let leading = wait_for(&mut sb, "b to take over", is_leading).await;
    // Taking over keeps the controller's term: no second acquisition.
    assert_eq!(common::term(&leading), term + 1);
    let r = lease_record(&server, "handover").await;
    assert_eq!(r.renewer, Renewer::SelfRenewing);
    assert_eq!(r.holder.as_deref(), Some("pod-b"));
    assert!(r.session.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_mode_hands_the_lease_to_the_controller() {
    let server = server().await;
    let t = timing(3600, 10, 1000);
    let mut a = spawn(&server, "gate", "pod-a", t);
    let term = a.leading().await.expect("a leads");
    assert_eq!(a.hand_to_controller().await.expect("hand over"), term);
    let r = lease_record(&server, "gate").await;
    assert_eq!(r.holder.as_deref(), Some("pod-a"));
    assert_eq!(r.holder_uid.as_deref(), Some("uid-pod-a"));
    assert_eq!(r.renewer, Renewer::Controller);
    assert_eq!(r.session, None);
    assert_eq!(r.term, term);
    // Another candidate does not take it early.
    let b = spawn(&server, "gate", "pod-b", t);
    wait_following(&mut b.state(), "b to follow pod-a", "pod-a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_hold_release_keeps_the_lease_held_for_the_rest_of_the_hold() {
    let server = server().await;
    let t = timing(3600, 10, 1000);
    let mut config = config("minhold", "pod-a", t);
    config.min_hold = Some(Duration::from_secs(5));
    let mut a = Elector::spawn(client(&server, "pod-a"), config);
    let term = a.leading().await.expect("a leads");
    a.release().await.expect("release");
    let r = lease_record(&server, "minhold").await;
    assert_eq!(
        r.holder.as_deref(),
        Some("pod-a"),
        "released before min-hold"
    );
    let duration = r.lease_duration_seconds.expect("duration");
    assert!(
        (1..=5).contains(&duration),
        "duration {duration} does not cover the rest of min-hold"
    );
    // After the rest of the hold, the lease expires normally and another candidate takes it.
    let b = spawn(&server, "minhold", "pod-b", t);
    let mut sb = b.state();
    let leading = wait_for(&mut sb, "b to lead after min-hold", is_leading).await;
    assert_eq!(common::term(&leading), term + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_identity_with_a_new_session_waits_for_expiry() {
    let server = server().await;
    let t = timing(4, 2, 500);
    let mut old = spawn(&server, "restarted", "pod-a", t);
    let term = old.leading().await.expect("old process leads");
    // The old process dies without releasing (its task is dropped).
    drop(old);
    let new_process = ElectionConfig {
        candidate: Candidate {
            session: zen_lead::identity::new_session(),
            ..candidate("pod-a")
        },
        ..config("restarted", "pod-a", t)
    };
    let spawned = zen_lead::clock::BootInstant::now();
    let new = Elector::spawn(client(&server, "pod-a"), new_process);
    let mut s = new.state();
    // It first sees itself named, yet waits: the record is another session's.
    wait_following(&mut s, "the new process to wait", "pod-a").await;
    let states = record_states(new.state());
    let leading = wait_for(&mut s, "the new process to lead after expiry", is_leading).await;
    drop(new);
    let led_at = states
        .await
        .expect("states")
        .into_iter()
        .find_map(|(at, s)| is_leading(&s).then_some(at))
        .expect("led");
    // A lower bound, so load cannot make it flaky: the record had to stay unchanged for the
    // lease duration on the new process's clock, which started after it was spawned.
    assert!(
        led_at.saturating_duration_since(spawned) >= t.lease_duration,
        "the new process took the old session's lease before it expired"
    );
    assert_eq!(common::term(&leading), term + 1);
}
