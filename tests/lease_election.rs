//! The Lease protocol against the testkit API server over real HTTP: election, release, terms,
//! unmanaged leases.

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use zen_lead::lease::{LeaderState, LeaseError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_exactly_one_leads() {
    let server = server().await;
    let t = timing(15, 10, 2000);
    let a = spawn(&server, "two", "pod-a", t);
    let b = spawn(&server, "two", "pod-b", t);
    let (mut sa, mut sb) = (a.state(), b.state());
    // Whichever leads first, the other must end up following it.
    let first = tokio::time::timeout(EVENTUALLY, async {
        tokio::select! {
            s = sa.wait_for(is_leading) => ("pod-a", s.expect("a").clone()),
            s = sb.wait_for(is_leading) => ("pod-b", s.expect("b").clone()),
        }
    })
    .await
    .expect("someone leads");
    let (mut other, leader) = if first.0 == "pod-a" {
        (b.state(), "pod-a")
    } else {
        (a.state(), "pod-b")
    };
    let following = wait_following(&mut other, "the other to follow the leader", leader).await;
    assert!(is_following(&following));
    let record = lease_record(&server, "two").await;
    assert_eq!(record.holder.as_deref(), Some(leader));
    assert_eq!(record.term, term(&first.1));
    assert!(record.managed);
    assert_eq!(
        record.holder_uid.as_deref(),
        Some(format!("uid-{leader}").as_str())
    );
    assert!(
        !matches!(*a.state().borrow(), LeaderState::Leading { .. })
            || !matches!(*b.state().borrow(), LeaderState::Leading { .. })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_hands_over_within_one_watch_event() {
    let server = server().await;
    // A lease so long that only a release (not expiry) can hand over within the test.
    let Pair {
        a,
        term: term_a,
        mut sb,
        b: _b,
    } = leader_and_follower(&server, "release", timing(3600, 10, 2000)).await;
    let writes = || {
        server.accounting().count(&agent("pod-b"), "update")
            + server.accounting().count(&agent("pod-b"), "create")
    };
    let writes_before = writes();
    a.release().await.expect("release");
    let leading = wait_for(&mut sb, "b to lead after the release", is_leading).await;
    assert_eq!(term(&leading), term_a + 1);
    // b saw the release in its watch and took the lease in one write: no polling, no retries.
    let writes_after = writes();
    assert_eq!(writes_after - writes_before, 1);
    let record = lease_record(&server, "release").await;
    assert_eq!(record.holder.as_deref(), Some("pod-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_elector_race_one_leader_and_strictly_increasing_terms() {
    let server = server().await;
    let t = timing(3600, 10, 2000);
    let mut electors: Vec<_> = (0..5)
        .map(|i| spawn(&server, "race", &format!("pod-{i}"), t))
        .collect();
    let mut terms = Vec::new();
    while !electors.is_empty() {
        // Exactly one leads; everyone else follows it.
        let leader = tokio::time::timeout(EVENTUALLY, async {
            loop {
                if let Some(i) = electors
                    .iter()
                    .position(|e| is_leading(&e.state().borrow()))
                {
                    return i;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("one of the electors leads");
        let elector = electors.remove(leader);
        let state = elector.state().borrow().clone();
        terms.push(term(&state));
        for other in &electors {
            assert!(!is_leading(&other.state().borrow()), "two leaders at once");
        }
        elector.release().await.expect("release");
    }
    assert!(
        terms.windows(2).all(|w| w[0] < w[1]),
        "terms not strictly increasing: {terms:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_lease_is_a_conflict() {
    let server = server().await;
    let api = leases(&server);
    let foreign = Lease {
        metadata: ObjectMeta {
            name: Some("foreign".into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".into(),
                "helm".into(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec::default()),
    };
    api.create(&PostParams::default(), &foreign)
        .await
        .expect("create foreign lease");
    let mut a = spawn(&server, "foreign", "pod-a", timing(15, 10, 2000));
    let result = leading_within(&mut a).await;
    assert!(
        matches!(result, Err(LeaseError::Unmanaged { .. })),
        "{result:?}"
    );
    // Never taken over.
    let record = lease_record(&server, "foreign").await;
    assert_eq!(record.holder, None);
    assert!(!record.managed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_lease_keeps_the_term_from_leader_policy_status() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    use zen_lead::api::{LeaderPolicy, LeaderPolicySpec, LeaderPolicyStatus};

    let server = server().await;
    let client = server.client().expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &LeaderPolicy::crd())
        .await
        .expect("install CRD");
    let policies: Api<LeaderPolicy> = Api::namespaced(client.clone(), "default");
    let created = tokio::time::timeout(EVENTUALLY, async {
        loop {
            let policy = LeaderPolicy::new("recreated", LeaderPolicySpec::default());
            match policies.create(&PostParams::default(), &policy).await {
                Ok(created) => return created,
                // The CRD's resource may take a moment to be served.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("create LeaderPolicy");
    let mut with_status = created.clone();
    with_status.status = Some(LeaderPolicyStatus {
        term: Some(41),
        ..Default::default()
    });
    policies
        .replace_status("recreated", &PostParams::default(), &with_status)
        .await
        .expect("write status.term");

    let t = timing(15, 10, 2000);
    let mut a = spawn(&server, "recreated", "pod-a", t);
    assert_eq!(a.leading().await.expect("a leads"), 42);
    assert_eq!(lease_record(&server, "recreated").await.term, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_over_tls_with_a_bearer_token() {
    init_tracing();
    let server = zen_lead_testkit::TestServer::builder()
        .tls(true)
        .auth(true)
        .start()
        .await
        .expect("start TLS server");
    assert!(server.url().starts_with("https://"));
    // The client stack zen-lead builds (TLS roots, token auth, keep-alive) against it.
    let config = server.config("unused", None).expect("config");
    let mut a = spawn_with(config, "tls", "pod-a", timing(15, 10, 2000));
    let term = leading_within(&mut a).await.expect("a leads");
    assert_eq!(term, 1);
    assert!(server.accounting().total(&agent("pod-a")) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_client_gets_forbidden_without_retrying_forever() {
    init_tracing();
    let server = zen_lead_testkit::TestServer::builder()
        .auth(true)
        .start()
        .await
        .expect("start server");
    let config = server
        .config("unused", Some("not-a-token"))
        .expect("config");
    let mut a = spawn_with(config, "denied", "pod-a", timing(15, 10, 2000));
    let result = leading_within(&mut a).await;
    assert!(
        matches!(result, Err(LeaseError::Forbidden { .. })),
        "{result:?}"
    );
}

/// Guards docs/PROTOCOL.md §3 without a controller: a follower that saw term N and then sees the Lease
/// deleted recreates it above N, so that the fencing token never goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_lease_is_recreated_above_the_last_term_seen() {
    let server = server().await;
    let api = leases(&server);
    let Pair {
        a,
        term: first,
        mut sb,
        b: _b,
    } = leader_and_follower(&server, "deleted", timing(15, 10, 2000)).await;
    // Raise the term the way a handover history would, so that a restart from 1 is visible.
    let mut current = api.get("deleted").await.expect("get lease");
    current
        .spec
        .get_or_insert_with(LeaseSpec::default)
        .lease_transitions = Some(i32::try_from(first + 6).expect("small term"));
    api.replace("deleted", &PostParams::default(), &current)
        .await
        .expect("raise the term");
    let raised = first + 6;
    // a keeps holding (same holder and session); b sees the raised term through its watch.
    poll_until(async || {
        let record = lease_record(&server, "deleted").await;
        record.term == raised && record.holder.as_deref() == Some("pod-a")
    })
    .await
    .expect("raised term stays");
    // Let b's watch deliver the raised record before the deletion.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    api.delete("deleted", &Default::default())
        .await
        .expect("delete the lease");
    let leading = wait_for(&mut sb, "b to lead the recreated lease", is_leading).await;
    assert!(
        term(&leading) > raised,
        "recreated at term {} after term {raised} was seen",
        term(&leading)
    );
    drop(a);
}

/// Guards docs/PROTOCOL.md §3 across `--rejoin`: a new elector started with the term its process last
/// led under creates a missing Lease above that term, even with no `LeaderPolicy` to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elector_started_above_a_term_never_goes_below_it() {
    let server = server().await;
    let t = timing(15, 10, 2000);
    let mut a = zen_lead::lease::Elector::spawn_above(
        client(&server, "pod-a"),
        config("floor", "pod-a", t),
        9,
    );
    assert_eq!(a.leading().await.expect("a leads"), 10);
    assert_eq!(lease_record(&server, "floor").await.term, 10);
}

/// Guards the one-line refusal of an unmanaged Lease: its holder is not "another replica", so
/// the elector never publishes `Following` it (a wrapper would log that it waits for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_held_lease_is_never_reported_as_followed() {
    let server = server().await;
    let api = leases(&server);
    let foreign = Lease {
        metadata: ObjectMeta {
            name: Some("foreign-held".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("someone-else".into()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }),
    };
    api.create(&PostParams::default(), &foreign)
        .await
        .expect("create foreign lease");
    let mut a = spawn(&server, "foreign-held", "pod-a", timing(15, 10, 2000));
    let states = record_states(a.state());
    let result = leading_within(&mut a).await;
    assert!(
        matches!(result, Err(LeaseError::Unmanaged { .. })),
        "{result:?}"
    );
    drop(a);
    let states = states.await.expect("states");
    assert!(
        !states
            .iter()
            .any(|(_, s)| matches!(s, LeaderState::Following { .. })),
        "{states:?}"
    );
}
