//! The Lease as zen-lead reads and writes it (docs/PROTOCOL.md).
//!
//! Every body built here carries the observed `resourceVersion` (or is a create), so that a
//! write is conditional: a 409 means someone else wrote first (docs/PROTOCOL.md §1). The controller
//! uses the same constructors for its handover writes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label that marks a Lease as zen-lead's.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "zen-lead";
/// Label with the pool name.
pub const LABEL_POOL: &str = "zen-lead/pool";
/// Annotation with the holder's pod UID (guards against reused pod names).
pub const ANNOTATION_HOLDER_UID: &str = "zen-lead/holder-uid";
/// Annotation with the holder's per-process session id.
pub const ANNOTATION_SESSION: &str = "zen-lead/session";
/// Annotation with who renews: `self` or `controller`.
pub const ANNOTATION_RENEWER: &str = "zen-lead/renewer";

/// Who renews the Lease.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Renewer {
    /// The holder process renews (`self`).
    #[default]
    #[serde(rename = "self")]
    SelfRenewing,
    /// The controller renews on the holder's behalf (`controller`).
    #[serde(rename = "controller")]
    Controller,
}

impl Renewer {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SelfRenewing => "self",
            Self::Controller => "controller",
        }
    }

    fn parse(value: Option<&String>) -> Self {
        match value.map(String::as_str) {
            Some("controller") => Self::Controller,
            _ => Self::SelfRenewing,
        }
    }
}

/// Who a write names as holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `holderIdentity`.
    pub identity: String,
    /// The holder's pod UID.
    pub pod_uid: Option<String>,
    /// The holder's session id; `None` when the controller writes for a pod.
    pub session: Option<String>,
    /// Who renews.
    pub renewer: Renewer,
}

impl Holder {
    /// A candidate that renews for itself.
    pub fn candidate(candidate: &super::Candidate) -> Self {
        Self {
            identity: candidate.identity.clone(),
            pod_uid: candidate.pod_uid.clone(),
            session: Some(candidate.session.clone()),
            renewer: Renewer::SelfRenewing,
        }
    }
}

/// The content of a Lease record that matters for expiry: if any of it changes, the holder (or
/// someone) wrote, and the local expiry timer starts again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordKey {
    holder: Option<String>,
    holder_uid: Option<String>,
    session: Option<String>,
    renewer: Renewer,
    acquire_time: Option<jiff::Timestamp>,
    renew_time: Option<jiff::Timestamp>,
    lease_duration_seconds: Option<i32>,
    term: u64,
}

/// A Lease as zen-lead reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRecord {
    /// The `resourceVersion` every write is conditioned on.
    pub resource_version: Option<String>,
    /// Whether the Lease carries `app.kubernetes.io/managed-by=zen-lead`.
    pub managed: bool,
    /// `holderIdentity`; `None` when empty.
    pub holder: Option<String>,
    /// `zen-lead/holder-uid`.
    pub holder_uid: Option<String>,
    /// `zen-lead/session`.
    pub session: Option<String>,
    /// `zen-lead/renewer` (`self` when absent).
    pub renewer: Renewer,
    /// `acquireTime`.
    pub acquire_time: Option<jiff::Timestamp>,
    /// `renewTime` (informational: expiry is judged on the local clock, docs/PROTOCOL.md §2).
    pub renew_time: Option<jiff::Timestamp>,
    /// `leaseDurationSeconds`, as written by the holder.
    pub lease_duration_seconds: Option<i32>,
    /// `leaseTransitions`: the term.
    pub term: u64,
}

fn non_empty(value: Option<&String>) -> Option<String> {
    value.filter(|v| !v.is_empty()).cloned()
}

impl LeaseRecord {
    /// Reads a Lease.
    pub fn from_lease(lease: &Lease) -> Self {
        let labels = lease.metadata.labels.as_ref();
        let annotations = lease.metadata.annotations.as_ref();
        let annotation = |key: &str| non_empty(annotations.and_then(|a| a.get(key)));
        let spec = lease.spec.as_ref();
        Self {
            resource_version: lease.metadata.resource_version.clone(),
            managed: labels
                .and_then(|l| l.get(LABEL_MANAGED_BY))
                .is_some_and(|v| v == MANAGED_BY),
            holder: non_empty(spec.and_then(|s| s.holder_identity.as_ref())),
            holder_uid: annotation(ANNOTATION_HOLDER_UID),
            session: annotation(ANNOTATION_SESSION),
            renewer: Renewer::parse(annotations.and_then(|a| a.get(ANNOTATION_RENEWER))),
            acquire_time: spec.and_then(|s| s.acquire_time.as_ref()).map(|t| t.0),
            renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            lease_duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
            term: spec
                .and_then(|s| s.lease_transitions)
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(0),
        }
    }

    /// The content that identifies "this exact record" for the local expiry timer.
    pub fn key(&self) -> RecordKey {
        RecordKey {
            holder: self.holder.clone(),
            holder_uid: self.holder_uid.clone(),
            session: self.session.clone(),
            renewer: self.renewer,
            acquire_time: self.acquire_time,
            renew_time: self.renew_time,
            lease_duration_seconds: self.lease_duration_seconds,
            term: self.term,
        }
    }

    /// Whether someone holds the lease.
    pub fn is_held(&self) -> bool {
        self.holder.is_some()
    }

    /// The lease duration the holder wrote, for the local expiry timer; `fallback` when absent.
    /// A zero or negative value still waits at least one second: taking a held lease at once
    /// would break docs/PROTOCOL.md §2.
    pub fn lease_duration(&self, fallback: Duration) -> Duration {
        match self.lease_duration_seconds {
            Some(secs) => Duration::from_secs(u64::try_from(secs).unwrap_or(0).max(1)),
            None => fallback,
        }
    }
}

/// `leaseDurationSeconds` for a duration, rounded up to whole seconds (at least 1).
pub fn duration_seconds(duration: Duration) -> i32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
}

fn term_i32(term: u64) -> i32 {
    i32::try_from(term).unwrap_or(i32::MAX)
}

fn set_holder(lease: &mut Lease, holder: &Holder) {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(holder.identity.clone());
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match &holder.pod_uid {
        Some(uid) => annotations.insert(ANNOTATION_HOLDER_UID.to_owned(), uid.clone()),
        None => annotations.remove(ANNOTATION_HOLDER_UID),
    };
    match &holder.session {
        Some(session) => annotations.insert(ANNOTATION_SESSION.to_owned(), session.clone()),
        None => annotations.remove(ANNOTATION_SESSION),
    };
    annotations.insert(
        ANNOTATION_RENEWER.to_owned(),
        holder.renewer.as_str().to_owned(),
    );
}

fn ensure_labels(lease: &mut Lease, pool: &str) {
    let labels = lease.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    labels.insert(LABEL_POOL.to_owned(), pool.to_owned());
}

/// Body of the create of a missing Lease, acquired by `holder` with `term` (which must be above
/// any term the pool had before: docs/PROTOCOL.md §3). A create is conditional by nature: a 409 means the
/// Lease exists.
pub fn create(
    namespace: &str,
    pool: &str,
    holder: &Holder,
    now: jiff::Timestamp,
    lease_duration: Duration,
    term: u64,
) -> Lease {
    // A create writes what an acquisition of an empty Lease of that name writes.
    let missing = Lease {
        metadata: ObjectMeta {
            name: Some(pool.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        spec: None,
    };
    acquire(&missing, pool, holder, now, lease_duration, term)
}

/// The observed Lease as the base of a conditional write: same `resourceVersion`, managed labels
/// (re-asserted, in case they were edited away).
fn base(observed: &Lease, pool: &str) -> Lease {
    let mut lease = observed.clone();
    // The server fills these; sending them back is noise.
    lease.metadata.managed_fields = None;
    ensure_labels(&mut lease, pool);
    lease
}

/// The observed Lease as the base of a write that keeps it held (by whoever it names) for
/// `duration` from `now`.
fn held_for(observed: &Lease, pool: &str, now: jiff::Timestamp, duration: Duration) -> Lease {
    let mut lease = base(observed, pool);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration_seconds(duration));
    lease
}

/// Body of an acquisition of an observed Lease (empty, expired, or handed over) with a new
/// `term`: the observed term + 1, or more when the pool's high-water mark is higher
/// (see [`super::decision`]).
pub fn acquire(
    observed: &Lease,
    pool: &str,
    holder: &Holder,
    now: jiff::Timestamp,
    lease_duration: Duration,
    term: u64,
) -> Lease {
    // An acquisition writes what a renewal writes, and starts a new term.
    let mut lease = renew(observed, pool, holder, now, lease_duration);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.acquire_time = Some(MicroTime(now));
    spec.lease_transitions = Some(term_i32(term));
    lease
}

/// Body of a renewal by the current holder: `renewTime` moves, the term stays. Also used when a
/// candidate named by a controller handover takes over renewing as `self`.
pub fn renew(
    observed: &Lease,
    pool: &str,
    holder: &Holder,
    now: jiff::Timestamp,
    lease_duration: Duration,
) -> Lease {
    let mut lease = held_for(observed, pool, now, lease_duration);
    set_holder(&mut lease, holder);
    lease
}

/// Body of a release: an empty holder, so that a standby may take it at once (docs/PROTOCOL.md §5). The
/// term stays.
pub fn release(observed: &Lease, pool: &str, now: jiff::Timestamp) -> Lease {
    let mut lease = base(observed, pool);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.renew_time = Some(MicroTime(now));
    if let Some(annotations) = lease.metadata.annotations.as_mut() {
        annotations.remove(ANNOTATION_HOLDER_UID);
        annotations.remove(ANNOTATION_SESSION);
        annotations.insert(
            ANNOTATION_RENEWER.to_owned(),
            Renewer::SelfRenewing.as_str().to_owned(),
        );
    }
    lease
}

/// Body of a release under `--min-hold` (docs/PROTOCOL.md §5): the holder stays recorded, with a
/// `leaseDurationSeconds` that covers the rest of the minimum hold, so that nobody takes the
/// lease before `acquireTime + min_hold` (on their own clocks, from when they see this write).
pub fn release_with_min_hold(
    observed: &Lease,
    pool: &str,
    now: jiff::Timestamp,
    remaining: Duration,
) -> Lease {
    held_for(observed, pool, now, remaining)
}

/// Body of a gate-mode handover (docs/EXEC.md): the holder stays, the controller renews from now on.
pub fn hand_to_controller(observed: &Lease, pool: &str, now: jiff::Timestamp) -> Lease {
    let mut lease = base(observed, pool);
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(
        ANNOTATION_RENEWER.to_owned(),
        Renewer::Controller.as_str().to_owned(),
    );
    // The controller renews for the pod, not for this process.
    annotations.remove(ANNOTATION_SESSION);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// Body of a controller handover (docs/PROTOCOL.md §8): the controller gives the lease to `to` (a pod),
/// a new `term`, `renewer: controller`.
pub fn controller_handover(
    observed: &Lease,
    pool: &str,
    to_identity: &str,
    to_pod_uid: Option<&str>,
    now: jiff::Timestamp,
    lease_duration: Duration,
    term: u64,
) -> Lease {
    let holder = Holder {
        identity: to_identity.to_owned(),
        pod_uid: to_pod_uid.map(str::to_owned),
        session: None,
        renewer: Renewer::Controller,
    };
    acquire(observed, pool, &holder, now, lease_duration, term)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn me() -> Holder {
        Holder {
            identity: "pod-a".into(),
            pod_uid: Some("uid-a".into()),
            session: Some("s-a".into()),
            renewer: Renewer::SelfRenewing,
        }
    }

    fn observed(lease: Lease, rv: &str) -> Lease {
        let mut lease = lease;
        lease.metadata.resource_version = Some(rv.into());
        lease
    }

    #[test]
    fn create_carries_labels_annotations_and_term() {
        let lease = create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 7);
        assert_eq!(lease.metadata.resource_version, None);
        let r = LeaseRecord::from_lease(&lease);
        assert!(r.managed);
        assert_eq!(r.holder.as_deref(), Some("pod-a"));
        assert_eq!(r.holder_uid.as_deref(), Some("uid-a"));
        assert_eq!(r.session.as_deref(), Some("s-a"));
        assert_eq!(r.renewer, Renewer::SelfRenewing);
        assert_eq!(r.term, 7);
        assert_eq!(r.lease_duration_seconds, Some(15));
        assert_eq!(
            lease
                .metadata
                .labels
                .unwrap()
                .get(LABEL_POOL)
                .map(String::as_str),
            Some("pool")
        );
    }

    #[test]
    fn writes_keep_the_observed_resource_version() {
        let held = observed(
            create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 3),
            "42",
        );
        let other = Holder {
            identity: "pod-b".into(),
            pod_uid: None,
            session: Some("s-b".into()),
            renewer: Renewer::SelfRenewing,
        };
        let bodies = [
            acquire(&held, "pool", &other, ts(20), Duration::from_secs(15), 4),
            renew(&held, "pool", &me(), ts(2), Duration::from_secs(15)),
            release(&held, "pool", ts(3)),
            release_with_min_hold(&held, "pool", ts(3), Duration::from_millis(4500)),
            hand_to_controller(&held, "pool", ts(3)),
            controller_handover(
                &held,
                "pool",
                "pod-b",
                Some("uid-b"),
                ts(3),
                Duration::from_secs(15),
                4,
            ),
        ];
        for body in &bodies {
            assert_eq!(body.metadata.resource_version.as_deref(), Some("42"));
        }
        let [acq, ren, rel, hold, gate, handover] = bodies.map(|l| LeaseRecord::from_lease(&l));
        assert_eq!(
            (acq.term, acq.holder.as_deref(), acq.holder_uid),
            (4, Some("pod-b"), None)
        );
        assert_eq!(acq.acquire_time, Some(ts(20)));
        assert_eq!(
            (ren.term, ren.acquire_time, ren.renew_time),
            (3, Some(ts(0)), Some(ts(2)))
        );
        assert_eq!((rel.term, rel.holder, rel.session), (3, None, None));
        assert_eq!(
            (hold.holder.as_deref(), hold.lease_duration_seconds),
            (Some("pod-a"), Some(5))
        );
        assert_eq!(
            (gate.term, gate.renewer, gate.session),
            (3, Renewer::Controller, None)
        );
        assert_eq!(gate.holder.as_deref(), Some("pod-a"));
        assert_eq!((handover.term, handover.renewer), (4, Renewer::Controller));
        assert_eq!(handover.holder_uid.as_deref(), Some("uid-b"));
    }

    #[test]
    fn unmanaged_lease_is_recognised() {
        let mut lease = create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 1);
        lease.metadata.labels = None;
        assert!(!LeaseRecord::from_lease(&lease).managed);
        let mut lease = create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 1);
        lease
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_MANAGED_BY.into(), "helm".into());
        assert!(!LeaseRecord::from_lease(&lease).managed);
    }

    #[test]
    fn empty_holder_identity_means_not_held() {
        let mut lease = create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 1);
        lease.spec.as_mut().unwrap().holder_identity = Some(String::new());
        assert!(!LeaseRecord::from_lease(&lease).is_held());
    }

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(duration_seconds(Duration::from_millis(1)), 1);
        assert_eq!(duration_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(duration_seconds(Duration::from_secs(15)), 15);
        assert_eq!(duration_seconds(Duration::ZERO), 1);
    }
}
