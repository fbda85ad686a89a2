//! Helpers for the Lease protocol tests against the testkit API server over real HTTP.
#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::sync::watch;
use zen_lead::clock::BootInstant;
use zen_lead::lease::record::LeaseRecord;
use zen_lead::lease::{Candidate, ElectionConfig, Elector, LeaderState, LeaseError, Timing};
use zen_lead_testkit::TestServer;

/// Generous bound for "eventually" conditions on a loaded 2-core machine.
pub const EVENTUALLY: Duration = Duration::from_secs(60);

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub async fn server() -> TestServer {
    init_tracing();
    TestServer::start()
        .await
        .expect("start the testkit API server")
}

/// The user agent (testkit client identity) of candidate `identity`.
pub fn agent(identity: &str) -> String {
    zen_lead::client::user_agent(identity)
}

/// A client for `identity`, built the way zen-lead builds its clients.
pub fn client(server: &TestServer, identity: &str) -> kube::Client {
    let config = server.config("unused", None).expect("testkit config");
    zen_lead::client::from_config(config, identity).expect("client")
}

pub fn candidate(identity: &str) -> Candidate {
    Candidate {
        identity: identity.to_owned(),
        pod_uid: Some(format!("uid-{identity}")),
        session: zen_lead::identity::new_session(),
    }
}

pub fn timing(lease: u64, renew: u64, retry_ms: u64) -> Timing {
    zen_lead::timing::validate(
        Duration::from_secs(lease),
        Duration::from_secs(renew),
        Duration::from_millis(retry_ms),
    )
    .expect("valid test timing")
}

pub fn config(pool: &str, identity: &str, timing: Timing) -> ElectionConfig {
    ElectionConfig {
        pool: pool.to_owned(),
        namespace: "default".to_owned(),
        candidate: candidate(identity),
        timing,
        min_hold: None,
    }
}

pub fn spawn(server: &TestServer, pool: &str, identity: &str, timing: Timing) -> Elector {
    Elector::spawn(client(server, identity), config(pool, identity, timing))
}

/// An elector for `identity` talking to whatever `kube_config` points at (another server, a
/// bad token, nothing at all), built the way zen-lead builds its clients.
pub fn spawn_with(
    kube_config: kube::Config,
    pool: &str,
    identity: &str,
    timing: Timing,
) -> Elector {
    let client = zen_lead::client::from_config(kube_config, identity).expect("client");
    Elector::spawn(client, config(pool, identity, timing))
}

/// What `elector.leading()` answers, or panics if it does not answer within [`EVENTUALLY`].
pub async fn leading_within(elector: &mut Elector) -> Result<u64, LeaseError> {
    tokio::time::timeout(EVENTUALLY, elector.leading())
        .await
        .expect("elector answers")
}

/// `a` leads a pool and `b` follows it: the start of every two-candidate scenario.
///
/// Destructure it without `..` (bind an unused follower as `b: _b`): a field left to `..` is
/// dropped at once, and a dropped elector stops campaigning.
pub struct Pair {
    /// The holder.
    pub a: Elector,
    /// The term `a` leads under.
    pub term: u64,
    /// The follower.
    pub b: Elector,
    /// `b`'s state, already seen following `pod-a`.
    pub sb: watch::Receiver<LeaderState>,
}

/// Spawns `pod-a` in `pool`, waits until it leads, then spawns `pod-b` and waits until it
/// follows `pod-a`.
pub async fn leader_and_follower(server: &TestServer, pool: &str, timing: Timing) -> Pair {
    let mut a = spawn(server, pool, "pod-a", timing);
    let term = a.leading().await.expect("a leads");
    let b = spawn(server, pool, "pod-b", timing);
    let mut sb = b.state();
    wait_following(&mut sb, "b to follow a", "pod-a").await;
    Pair { a, term, b, sb }
}

/// The Leases in the `default` namespace, through the server's admin client.
pub fn leases(server: &TestServer) -> Api<Lease> {
    Api::namespaced(server.client().expect("client"), "default")
}

/// The record of `pool`'s Lease as it stands on the server.
pub async fn lease_record(server: &TestServer, pool: &str) -> LeaseRecord {
    LeaseRecord::from_lease(&leases(server).get(pool).await.expect("get lease"))
}

/// Polls `done` every 50 ms until it holds; `Err` if it does not within [`EVENTUALLY`].
pub async fn poll_until(
    mut done: impl AsyncFnMut() -> bool,
) -> Result<(), tokio::time::error::Elapsed> {
    tokio::time::timeout(EVENTUALLY, async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Waits until `state` satisfies `pred`, or panics after [`EVENTUALLY`].
pub async fn wait_for(
    state: &mut watch::Receiver<LeaderState>,
    what: &str,
    pred: impl Fn(&LeaderState) -> bool,
) -> LeaderState {
    let result = tokio::time::timeout(EVENTUALLY, async {
        state.wait_for(|s| pred(s)).await.map(|s| s.clone())
    })
    .await;
    match result {
        Ok(found) => found.expect("elector state channel"),
        Err(_) => panic!(
            "timed out waiting for {what}; state is {:?}",
            *state.borrow()
        ),
    }
}

/// Waits until `state` follows `holder`.
pub async fn wait_following(
    state: &mut watch::Receiver<LeaderState>,
    what: &str,
    holder: &str,
) -> LeaderState {
    wait_for(
        state,
        what,
        |s| matches!(s, LeaderState::Following { holder: Some(h) } if h == holder),
    )
    .await
}

/// The deadline of the Leading state `state` holds now (marking it seen); panics with
/// `not_leading` and the state otherwise.
pub fn leading_deadline(
    state: &mut watch::Receiver<LeaderState>,
    not_leading: &str,
) -> BootInstant {
    match &*state.borrow_and_update() {
        LeaderState::Leading { deadline, .. } => *deadline,
        other => panic!("{not_leading}: {other:?}"),
    }
}

/// Waits until `state` leads with a deadline later than `before`: a renewal succeeded.
pub async fn wait_renewed(
    state: &mut watch::Receiver<LeaderState>,
    what: &str,
    before: BootInstant,
) -> LeaderState {
    wait_for(
        state,
        what,
        |s| matches!(s, LeaderState::Leading { deadline, .. } if *deadline > before),
    )
    .await
}

pub fn is_leading(state: &LeaderState) -> bool {
    matches!(state, LeaderState::Leading { .. })
}

pub fn is_following(state: &LeaderState) -> bool {
    matches!(state, LeaderState::Following { .. })
}

/// Records every state an elector publishes, with the BOOTTIME instant it was seen.
pub fn record_states(
    mut state: watch::Receiver<LeaderState>,
) -> tokio::task::JoinHandle<Vec<(BootInstant, LeaderState)>> {
    tokio::spawn(async move {
        let mut seen = vec![(BootInstant::now(), state.borrow_and_update().clone())];
        while state.changed().await.is_ok() {
            seen.push((BootInstant::now(), state.borrow_and_update().clone()));
        }
        seen
    })
}

/// The term of a Leading state.
pub fn term(state: &LeaderState) -> u64 {
    match state {
        LeaderState::Leading { term, .. } => *term,
        other => panic!("not leading: {other:?}"),
    }
}
