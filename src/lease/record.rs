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
/// Annotation a release writes, naming the term it ends (docs/PROTOCOL.md §5). Only an empty
/// holder carrying it for the record's own term is free at once (docs/PROTOCOL.md §2).
pub const ANNOTATION_RELEASED_TERM: &str = "zen-lead/released-term";
/// Annotation with the end of a `--min-hold` (RFC 3339, on the API server's clock), written by
/// the holder that acquired under it (docs/PROTOCOL.md §5).
pub const ANNOTATION_MIN_HOLD_UNTIL: &str = "zen-lead/min-hold-until";
/// The highest term a Lease can carry: `leaseTransitions` is an int32 (docs/PROTOCOL.md §3).
pub const MAX_TERM: u64 = i32::MAX as u64;

/// No next term can be written: refused, never saturated nor restarted (docs/PROTOCOL.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TermOverflow {
    /// The term that was asked for would pass [`MAX_TERM`].
    #[error(
        "term {0} is above the largest term a Lease can carry ({MAX_TERM}): no term is left; delete the Lease and reset the LeaderPolicy status term to start again"
    )]
    Above(u64),
    /// The record's `leaseTransitions` is negative (a hand edit): read as 0, terms would restart.
    #[error(
        "leaseTransitions is {0}, and a term is never negative; set it back to the pool's last term, or delete the Lease"
    )]
    Negative(i32),
}

/// The term after `record_term` and the pool's `high_water` mark (docs/PROTOCOL.md §3).
pub fn next_term(record_term: Option<u64>, high_water: Option<u64>) -> Result<u64, TermOverflow> {
    let term = record_term
        .unwrap_or(0)
        .max(high_water.unwrap_or(0))
        .saturating_add(1);
    checked_term(term).map(|_| term)
}

/// The term after the observed `record` (`None`: no Lease) and the pool's `high_water` mark;
/// refused for a record whose `leaseTransitions` is negative (docs/PROTOCOL.md §3).
pub fn next_term_after(
    record: Option<&LeaseRecord>,
    high_water: Option<u64>,
) -> Result<u64, TermOverflow> {
    if let Some(value) = record.and_then(|r| r.negative_term) {
        return Err(TermOverflow::Negative(value));
    }
    next_term(record.map(|r| r.term), high_water)
}

fn checked_term(term: u64) -> Result<i32, TermOverflow> {
    i32::try_from(term).map_err(|_| TermOverflow::Above(term))
}

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
    negative_term: Option<i32>,
    released_term: Option<u64>,
    min_hold_until: Option<jiff::Timestamp>,
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
    /// `leaseTransitions`: the term (0 when negative).
    pub term: u64,
    /// `leaseTransitions` when it is negative (a hand edit): no term may follow it.
    pub negative_term: Option<i32>,
    /// `zen-lead/released-term`: the term a release ended (docs/PROTOCOL.md §5).
    pub released_term: Option<u64>,
    /// `zen-lead/min-hold-until`: when a `--min-hold` ends, on the API server's clock.
    pub min_hold_until: Option<jiff::Timestamp>,
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
            negative_term: spec.and_then(|s| s.lease_transitions).filter(|t| *t < 0),
            released_term: annotation(ANNOTATION_RELEASED_TERM).and_then(|t| t.parse().ok()),
            min_hold_until: annotation(ANNOTATION_MIN_HOLD_UNTIL).and_then(|t| t.parse().ok()),
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
            negative_term: self.negative_term,
            released_term: self.released_term,
            min_hold_until: self.min_hold_until,
        }
    }

    /// Whether someone holds the lease.
    pub fn is_held(&self) -> bool {
        self.holder.is_some()
    }

    /// Whether the record is a real release (docs/PROTOCOL.md §5): an empty holder, marked by
    /// the holder that ended this very term. Only such a record is free at once.
    pub fn is_released(&self) -> bool {
        self.holder.is_none() && self.released_term == Some(self.term)
    }

    /// The end of the `--min-hold` of a holder that has finished its work: the record still
    /// names the holder, carries the release marker for its term and the hold's end
    /// (docs/PROTOCOL.md §5). `None` for any other record, including a live holder's.
    pub fn min_hold_release(&self) -> Option<jiff::Timestamp> {
        (self.holder.is_some() && self.released_term == Some(self.term))
            .then_some(self.min_hold_until)
            .flatten()
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

fn set_holder(lease: &mut Lease, holder: &Holder) {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(holder.identity.clone());
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    // A write that names a holder is no release.
    annotations.remove(ANNOTATION_RELEASED_TERM);
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
/// any term the pool had before: docs/PROTOCOL.md §3). A create is conditional by nature: a 409
/// means the Lease exists. Fails for a term above [`MAX_TERM`].
pub fn create(
    namespace: &str,
    pool: &str,
    holder: &Holder,
    now: jiff::Timestamp,
    lease_duration: Duration,
    term: u64,
) -> Result<Lease, TermOverflow> {
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
/// (see [`next_term`]). Fails for a term above [`MAX_TERM`].
pub fn acquire(
    observed: &Lease,
    pool: &str,
    holder: &Holder,
    now: jiff::Timestamp,
    lease_duration: Duration,
    term: u64,
) -> Result<Lease, TermOverflow> {
    let transitions = checked_term(term)?;
    // An acquisition writes what a renewal writes, and starts a new term.
    let mut lease = renew(observed, pool, holder, now, lease_duration);
    if let Some(annotations) = lease.metadata.annotations.as_mut() {
        // A hold belongs to the term that set it.
        annotations.remove(ANNOTATION_MIN_HOLD_UNTIL);
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.acquire_time = Some(MicroTime(now));
    spec.lease_transitions = Some(transitions);
    Ok(lease)
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

/// The observed term, as the release marker's value.
fn observed_term(observed: &Lease) -> String {
    LeaseRecord::from_lease(observed).term.to_string()
}

/// Body of a release: an empty holder and the release marker naming the term it ends, in one
/// write, so that a standby may take it at once (docs/PROTOCOL.md §5). The term stays. Write
/// it only when the work of this term has stopped, every descendant included.
pub fn release(observed: &Lease, pool: &str, now: jiff::Timestamp) -> Lease {
    let mut lease = base(observed, pool);
    let term = observed_term(observed);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.renew_time = Some(MicroTime(now));
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.remove(ANNOTATION_HOLDER_UID);
    annotations.remove(ANNOTATION_SESSION);
    annotations.remove(ANNOTATION_MIN_HOLD_UNTIL);
    annotations.insert(
        ANNOTATION_RENEWER.to_owned(),
        Renewer::SelfRenewing.as_str().to_owned(),
    );
    annotations.insert(ANNOTATION_RELEASED_TERM.to_owned(), term);
    lease
}

/// Body of a release under `--min-hold` (docs/PROTOCOL.md §5): the work has stopped (the release
/// marker names the term), but the holder stays recorded until `hold_until` (on the API
/// server's clock), so that other copies of the same tick skip or wait; a copy that sees the
/// hold over takes the lease at once. `leaseDurationSeconds` covers the `remaining` hold, so a
/// reader that cannot judge `hold_until` still waits no longer than the hold.
pub fn release_with_min_hold(
    observed: &Lease,
    pool: &str,
    now: jiff::Timestamp,
    hold_until: jiff::Timestamp,
    remaining: Duration,
) -> Lease {
    let mut lease = held_for(observed, pool, now, remaining);
    let term = observed_term(observed);
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(ANNOTATION_RELEASED_TERM.to_owned(), term);
    annotations.insert(ANNOTATION_MIN_HOLD_UNTIL.to_owned(), hold_until.to_string());
    lease
}

/// Body of a gate-mode handover (docs/EXEC.md): the holder stays, the controller renews from now
/// on. `hold_until` records a `--min-hold` (on the API server's clock) for the controller to
/// honour when it releases for the pod.
pub fn hand_to_controller(
    observed: &Lease,
    pool: &str,
    now: jiff::Timestamp,
    hold_until: Option<jiff::Timestamp>,
) -> Lease {
    let mut lease = base(observed, pool);
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match hold_until {
        Some(until) => annotations.insert(ANNOTATION_MIN_HOLD_UNTIL.to_owned(), until.to_string()),
        None => annotations.remove(ANNOTATION_MIN_HOLD_UNTIL),
    };
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
/// a new `term`, `renewer: controller`. Fails for a term above [`MAX_TERM`].
pub fn controller_handover(
    observed: &Lease,
    pool: &str,
    to_identity: &str,
    to_pod_uid: Option<&str>,
    now: jiff::Timestamp,
    lease_duration: Duration,
    term: u64,
) -> Result<Lease, TermOverflow> {
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
        let lease = create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 7).unwrap();
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
            create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 3).unwrap(),
            "42",
        );
        let other = Holder {
            identity: "pod-b".into(),
            pod_uid: None,
            session: Some("s-b".into()),
            renewer: Renewer::SelfRenewing,
        };
        let bodies = [
            acquire(&held, "pool", &other, ts(20), Duration::from_secs(15), 4).unwrap(),
            renew(&held, "pool", &me(), ts(2), Duration::from_secs(15)),
            release(&held, "pool", ts(3)),
            release_with_min_hold(&held, "pool", ts(3), ts(8), Duration::from_millis(4500)),
            hand_to_controller(&held, "pool", ts(3), None),
            controller_handover(
                &held,
                "pool",
                "pod-b",
                Some("uid-b"),
                ts(3),
                Duration::from_secs(15),
                4,
            )
            .unwrap(),
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
        assert_eq!((rel.term, &rel.holder, &rel.session), (3, &None, &None));
        assert!(rel.is_released());
        assert_eq!(
            (hold.holder.as_deref(), hold.lease_duration_seconds),
            (Some("pod-a"), Some(5))
        );
        assert!(!hold.is_released());
        assert_eq!(hold.min_hold_release(), Some(ts(8)));
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
        let mut lease = create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 1).unwrap();
        lease.metadata.labels = None;
        assert!(!LeaseRecord::from_lease(&lease).managed);
        let mut lease = create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 1).unwrap();
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
        let mut lease = create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 1).unwrap();
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

    #[test]
    fn only_a_marked_release_of_this_term_is_released() {
        let held = observed(
            create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 3).unwrap(),
            "42",
        );
        let record = LeaseRecord::from_lease(&held);
        assert!(!record.is_released());
        assert_eq!(record.released_term, None);

        let released = release(&held, "pool", ts(1));
        let record = LeaseRecord::from_lease(&released);
        assert_eq!(record.released_term, Some(3));
        assert!(record.is_released());

        // An empty holder written by someone else (`kubectl patch`) has no marker.
        let mut cleared = held.clone();
        cleared.spec.as_mut().unwrap().holder_identity = None;
        assert!(!LeaseRecord::from_lease(&cleared).is_released());

        // A marker left from an earlier term does not free a later one.
        let mut stale = released.clone();
        stale.spec.as_mut().unwrap().lease_transitions = Some(4);
        assert!(!LeaseRecord::from_lease(&stale).is_released());
    }

    #[test]
    fn any_write_naming_a_holder_removes_the_release_marker() {
        let released = observed(
            release(
                &create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 3).unwrap(),
                "pool",
                ts(1),
            ),
            "43",
        );
        let acquired = acquire(&released, "pool", &me(), ts(2), Duration::from_secs(15), 4);
        let renewed = renew(&released, "pool", &me(), ts(2), Duration::from_secs(15));
        for body in [acquired.unwrap(), renewed] {
            let record = LeaseRecord::from_lease(&body);
            assert_eq!(record.released_term, None);
            assert!(!record.is_released());
            assert!(
                !body
                    .metadata
                    .annotations
                    .unwrap()
                    .contains_key(ANNOTATION_RELEASED_TERM)
            );
        }
    }

    #[test]
    fn a_min_hold_recorded_by_the_gate_is_kept_by_renewals_and_dropped_by_a_new_term() {
        let held = observed(
            create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 3).unwrap(),
            "42",
        );
        let gated = observed(
            hand_to_controller(&held, "pool", ts(1), Some(ts(600))),
            "43",
        );
        let record = LeaseRecord::from_lease(&gated);
        assert_eq!(record.min_hold_until, Some(ts(600)));
        // A live holder's hold frees nothing.
        assert_eq!(record.min_hold_release(), None);
        let renewed = renew(&gated, "pool", &me(), ts(2), Duration::from_secs(15));
        assert_eq!(
            LeaseRecord::from_lease(&renewed).min_hold_until,
            Some(ts(600))
        );
        let next = acquire(&gated, "pool", &me(), ts(3), Duration::from_secs(15), 4).unwrap();
        assert_eq!(LeaseRecord::from_lease(&next).min_hold_until, None);
    }

    #[test]
    fn a_negative_term_is_refused_not_read_as_zero() {
        let mut lease = create("ns", "pool", &me(), ts(0), Duration::from_secs(15), 3).unwrap();
        lease.spec.as_mut().unwrap().lease_transitions = Some(-1);
        let record = LeaseRecord::from_lease(&lease);
        assert_eq!(record.negative_term, Some(-1));
        assert_eq!(
            next_term_after(Some(&record), Some(7)),
            Err(TermOverflow::Negative(-1))
        );
        lease.spec.as_mut().unwrap().lease_transitions = Some(3);
        let record = LeaseRecord::from_lease(&lease);
        assert_eq!(record.negative_term, None);
        assert_eq!(next_term_after(Some(&record), None), Ok(4));
        assert_eq!(next_term_after(None, Some(7)), Ok(8));
        let message = TermOverflow::Negative(-1).to_string();
        assert!(message.contains("leaseTransitions is -1"), "{message}");
    }

    #[test]
    fn a_term_past_i32_max_is_refused_not_saturated() {
        assert_eq!(next_term(Some(MAX_TERM - 1), None), Ok(MAX_TERM));
        assert_eq!(
            next_term(Some(MAX_TERM), None),
            Err(TermOverflow::Above(MAX_TERM + 1))
        );
        assert_eq!(
            next_term(Some(1), Some(MAX_TERM)),
            Err(TermOverflow::Above(MAX_TERM + 1))
        );
        let held = create(
            "ns",
            "pool",
            &me(),
            ts(0),
            Duration::from_secs(15),
            MAX_TERM,
        )
        .unwrap();
        assert_eq!(LeaseRecord::from_lease(&held).term, MAX_TERM);
        assert!(
            create(
                "ns",
                "pool",
                &me(),
                ts(0),
                Duration::from_secs(15),
                MAX_TERM + 1
            )
            .is_err()
        );
        assert!(
            acquire(
                &held,
                "pool",
                &me(),
                ts(1),
                Duration::from_secs(15),
                MAX_TERM + 1
            )
            .is_err()
        );
        assert!(
            controller_handover(
                &held,
                "pool",
                "pod-b",
                None,
                ts(1),
                Duration::from_secs(15),
                MAX_TERM + 1
            )
            .is_err()
        );
    }
}
