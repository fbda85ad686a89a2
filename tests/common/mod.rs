//! Helpers for the Lease protocol tests against the testkit API server over real HTTP.
#![allow(dead_code)]

use std::time::Duration;

use tokio::sync::watch;
use zen_lead::clock::BootInstant;
use zen_lead::lease::{Candidate, ElectionConfig, Elector, LeaderState, Timing};
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
