//! What is free at once and what is waited out (docs/PROTOCOL.md §2, §5), against the testkit
//! API server: only a release marked by its holder is free; a deleted Lease or a holder cleared
//! by hand is waited out for the lease duration; a finished holder's `--min-hold` ends on the API
//! server's clock.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use kube::api::PostParams;
use zen_lead::clock::BootInstant;
use zen_lead::lease::record::{self, MAX_TERM, TermOverflow};
use zen_lead::lease::{Elector, LeaderState, LeaseError, LostReason};

/// The first instant `states` shows a Leading state.
fn led_at(states: &[(BootInstant, LeaderState)]) -> BootInstant {
    states
        .iter()
        .find(|(_, s)| is_leading(s))
        .map(|(at, _)| *at)
        .expect("led")
}

/// Guards docs/PROTOCOL.md §2: after `kubectl delete lease`, the old holder stops at once, and a
/// follower that knew it does not create the Lease again before the lease duration has passed
/// since the deletion (the old holder may still be stopping its work).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_lease_is_waited_out_for_the_lease_duration() {
    let server = server().await;
    let lease_duration = Duration::from_secs(4);
    let Pair { a, term, sb, b } = leader_and_follower(&server, "deleted", timing(4, 2, 500)).await;
    let states = record_states(sb);
    let mut sa = a.state();
    let deleted = BootInstant::now();
    leases(&server)
        .delete("deleted", &Default::default())
        .await
        .expect("delete the lease");
    let lost = wait_for(&mut sa, "a to step down", |s| {
        matches!(s, LeaderState::Lost { .. })
    })
    .await;
    assert_eq!(
        lost,
        LeaderState::Lost {
            reason: LostReason::Deleted
        }
    );
    let mut sb = b.state();
    let leading = wait_for(&mut sb, "b to recreate the lease", is_leading).await;
    assert!(common::term(&leading) > term, "the term went back");
    drop(b);
    let states = states.await.expect("states");
    let waited = led_at(&states).saturating_duration_since(deleted);
    assert!(
        waited >= lease_duration,
        "b recreated the lease {waited:?} after the deletion, before the lease duration"
    );
    drop(a);
}

/// Guards docs/PROTOCOL.md §2: an empty holder without the release marker (`kubectl patch` by
/// hand) is waited out for the lease duration; the holder it names no more stops at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_cleared_by_hand_is_waited_out_for_the_lease_duration() {
    let server = server().await;
    let lease_duration = Duration::from_secs(4);
    let Pair { a, term, sb, b } = leader_and_follower(&server, "cleared", timing(4, 2, 500)).await;
    let states = record_states(sb);
    let mut sa = a.state();
    let api = leases(&server);
    let mut lease = api.get("cleared").await.expect("get lease");
    lease
        .spec
        .get_or_insert_with(LeaseSpec::default)
        .holder_identity = None;
    let cleared = BootInstant::now();
    api.replace("cleared", &PostParams::default(), &lease)
        .await
        .expect("clear the holder by hand");
    wait_for(&mut sa, "a to step down", |s| {
        matches!(s, LeaderState::Lost { .. })
    })
    .await;
    let mut sb = b.state();
    let leading = wait_for(&mut sb, "b to take the cleared lease", is_leading).await;
    assert_eq!(common::term(&leading), term + 1);
    drop(b);
    let waited = led_at(&states.await.expect("states")).saturating_duration_since(cleared);
    assert!(
        waited >= lease_duration,
        "b took the cleared lease {waited:?} after the clearing, before the lease duration"
    );
    drop(a);
}

/// Guards docs/PROTOCOL.md §5: a release writes the marker naming the term it ends, and only
/// such a record is taken at once (here with a lease duration far longer than the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_writes_the_marker_and_is_taken_at_once() {
    let server = server().await;
    let mut a = spawn(&server, "marked", "pod-a", timing(3600, 10, 2000));
    let term = a.leading().await.expect("a leads");
    a.release().await.expect("release");
    let released = lease_record(&server, "marked").await;
    assert_eq!(released.holder, None);
    assert_eq!(released.released_term, Some(term));
    assert!(released.is_released());
    let mut b = spawn(&server, "marked", "pod-b", timing(3600, 10, 2000));
    assert_eq!(leading_within(&mut b).await.expect("b leads"), term + 1);
    let taken = lease_record(&server, "marked").await;
    assert_eq!(taken.released_term, None, "the marker outlived the release");
}

/// Guards docs/PROTOCOL.md §5 (`--min-hold`): a copy that starts after a finished holder's hold
/// has ended takes the lease at once, even though the record's lease duration is still long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_after_the_min_hold_takes_the_lease_at_once() {
    let server = server().await;
    let t = timing(3600, 10, 2000);
    let mut a = spawn(&server, "held", "pod-a", t);
    let term = a.leading().await.expect("a leads");
    // What a finished holder writes under `--min-hold`, with a hold that ended a minute ago
    // while the record still covers an hour: only the hold's end may decide.
    let api = leases(&server);
    let observed = api.get("held").await.expect("get lease");
    let now = jiff::Timestamp::now();
    let ended = now - jiff::SignedDuration::from_secs(60);
    let body = record::release_with_min_hold(&observed, "held", now, ended, t.lease_duration);
    api.replace("held", &PostParams::default(), &body)
        .await
        .expect("write the finished min-hold");
    drop(a);
    let mut b = spawn(&server, "held", "pod-b", t);
    assert_eq!(leading_within(&mut b).await.expect("b leads"), term + 1);
}

/// Guards docs/PROTOCOL.md §5 (`--min-hold`): within the hold, other copies wait (they see the
/// finished holder named) and take the lease only when the hold ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_within_the_min_hold_waits_for_its_end() {
    let server = server().await;
    let t = timing(3600, 10, 1000);
    let hold = Duration::from_secs(3);
    let mut holder = config("hold", "pod-a", t);
    holder.min_hold = Some(hold);
    let started = BootInstant::now();
    let mut a = Elector::spawn(client(&server, "pod-a"), holder);
    let term = a.leading().await.expect("a leads");
    a.release().await.expect("release");
    let r = lease_record(&server, "hold").await;
    assert_eq!(r.holder.as_deref(), Some("pod-a"));
    assert_eq!(r.released_term, Some(term));
    assert!(r.min_hold_release().is_some(), "no min-hold end recorded");
    let b = spawn(&server, "hold", "pod-b", t);
    let mut sb = b.state();
    wait_following(&mut sb, "b to wait within the hold", "pod-a").await;
    let states = record_states(b.state());
    let leading = wait_for(&mut sb, "b to lead after the hold", is_leading).await;
    assert_eq!(common::term(&leading), term + 1);
    drop(b);
    // The hold's end is judged on the API server's `Date`, which has a resolution of one second.
    let waited = led_at(&states.await.expect("states")).saturating_duration_since(started);
    assert!(
        waited + Duration::from_secs(1) >= hold,
        "b led {waited:?} after a's acquisition, within the hold of {hold:?}"
    );
}

/// Guards docs/PROTOCOL.md §3: a term that would pass i32::MAX is refused with an error; it
/// never saturates and repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_term_past_i32_max_is_refused() {
    let server = server().await;
    let t = timing(3600, 10, 2000);
    let mut a = spawn(&server, "last-term", "pod-a", t);
    a.leading().await.expect("a leads");
    let api = leases(&server);
    let mut lease = api.get("last-term").await.expect("get lease");
    lease
        .spec
        .get_or_insert_with(LeaseSpec::default)
        .lease_transitions = Some(i32::MAX);
    let lease = api
        .replace("last-term", &PostParams::default(), &lease)
        .await
        .expect("raise the term to i32::MAX");
    let released = record::release(&lease, "last-term", jiff::Timestamp::now());
    api.replace("last-term", &PostParams::default(), &released)
        .await
        .expect("release at i32::MAX");
    drop(a);
    let mut b = spawn(&server, "last-term", "pod-b", t);
    match leading_within(&mut b).await {
        Err(LeaseError::TermOverflow { source, .. }) => {
            assert_eq!(source, TermOverflow::Above(MAX_TERM + 1))
        }
        other => panic!("expected a term overflow, got {other:?}"),
    }
    let r = lease_record(&server, "last-term").await;
    assert_eq!(
        (r.term, r.holder),
        (MAX_TERM, None),
        "the last term was reused"
    );
}
