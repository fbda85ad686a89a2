//! Kubernetes Events (events.k8s.io, kube-runtime's `Recorder`) on the policy and the pods
//! concerned: `LeaderElected`, `LeaderLost`, `Failover`, `NoCandidates`, and warnings a user acts
//! on (docs/TROUBLESHOOTING.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::debug;
use zen_lead::api::LeaderPolicy;

use crate::pods::PodView;
use crate::write_slots::WriteSlots;

/// Event reasons.
pub mod reason {
    /// A pod became the pool's leader.
    pub const LEADER_ELECTED: &str = "LeaderElected";
    /// A pod is the pool's leader no more.
    pub const LEADER_LOST: &str = "LeaderLost";
    /// Leadership moved; the note says why (evidence, expiry or release).
    pub const FAILOVER: &str = "Failover";
    /// The pool has no (Ready) candidate.
    pub const NO_CANDIDATES: &str = "NoCandidates";
    /// An annotated pod names a pool without a LeaderPolicy.
    pub const NO_LEADER_POLICY: &str = "NoLeaderPolicy";
    /// A candidate of a `custom` pool has no identity.
    pub const MISSING_IDENTITY: &str = "MissingIdentity";
    /// The pool's Lease exists but is not zen-lead's.
    pub const LEASE_CONFLICT: &str = "LeaseConflict";
    /// The policy's timings break a rule: nothing is elected.
    pub const INVALID_TIMING: &str = "InvalidTiming";
}

/// Distinct notes kept with their own series before the map starts again.
const MAX_SERIES: usize = 512;
/// Longest wait for one Event, for a free write slot and the request: an Event is a report, and
/// a hung one must not hold up its pool's reconcile.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Publishes Events as the controller.
///
/// kube-runtime's `Recorder` folds Events that differ only in their note into one series that
/// keeps the first note (`LeaderElected` of another pod would show the old leader's name), so
/// each distinct note gets a recorder of its own: a repeat of the same Event still counts up,
/// a new message is shown as new.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    recorders: Arc<Mutex<HashMap<String, Recorder>>>,
    write_slots: WriteSlots,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

/// What an Event is about.
#[derive(Debug, Clone)]
pub struct Subject(ObjectReference);

impl Subject {
    /// A LeaderPolicy.
    pub fn policy(policy: &LeaderPolicy) -> Self {
        Self(policy.object_ref(&()))
    }

    /// A pod.
    pub fn pod(pod: &PodView) -> Self {
        Self(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            ..ObjectReference::default()
        })
    }
}

impl Events {
    /// Events reported by `zen-lead-controller`, instance `identity`, written within
    /// `write_slots`.
    pub fn new(client: kube::Client, identity: &str, write_slots: WriteSlots) -> Self {
        let reporter = Reporter {
            controller: "zen-lead-controller".into(),
            instance: Some(identity.to_owned()),
        };
        Self {
            client,
            reporter,
            recorders: Arc::default(),
            write_slots,
        }
    }

    /// The bound on writes these Events are published within.
    pub fn write_slots(&self) -> &WriteSlots {
        &self.write_slots
    }

    fn recorder(&self, reason: &str, note: &str) -> Recorder {
        let mut recorders = self
            .recorders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recorders.len() >= MAX_SERIES {
            recorders.clear();
        }
        recorders
            .entry(format!("{reason}\n{note}"))
            .or_insert_with(|| Recorder::new(self.client.clone(), self.reporter.clone()))
            .clone()
    }

    /// Publishes one Event on each subject. A failure is logged and otherwise ignored: an Event
    /// is a report, and the status condition says the same.
    pub async fn publish(&self, subjects: &[Subject], warning: bool, reason: &str, note: String) {
        let recorder = self.recorder(reason, &note);
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: "Elect".into(),
            secondary: None,
        };
        for Subject(reference) in subjects {
            match self
                .write_slots
                .run(PUBLISH_TIMEOUT, recorder.publish(&event, reference))
                .await
            {
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    debug!(%error, reason, object = ?reference.name, "publishing an Event failed");
                }
                None => debug!(reason, object = ?reference.name, "publishing an Event timed out"),
            }
        }
    }
}
