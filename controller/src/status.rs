//! The pure status computation of a pool (docs/API.md, "Status"): phase, current holder, counts,
//! the term high-water mark and the conditions, from the same plain values as the election.
//!
//! Timestamps that describe a transition (`lastTransitionTime`, conditions') are carried over
//! from the previous status unless the thing they describe changed, so that an unchanged pool
//! computes an identical status and nothing is written.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use zen_lead::api::{
    CONDITION_LEADER_ELECTED, CONDITION_VALID, CurrentHolder, FollowerMode, LeaderPolicySpec,
    LeaderPolicyStatus, Phase,
};
use zen_lead::lease::record::LeaseRecord;
use zen_lead::timing::TimingError;

use crate::election::{HolderState, Stopped};

/// Condition type: `followerMode: scaleDown` is accepted but not built yet.
pub const CONDITION_SCALE_DOWN: &str = "ScaleDown";
/// Condition type: every candidate of a `custom` pool has an identity.
pub const CONDITION_IDENTITIES: &str = "IdentitiesResolved";

/// `LeaderElected` reasons.
pub mod reason {
    /// A live holder leads.
    pub const LEADER_ACTIVE: &str = "LeaderActive";
    /// No pod is a candidate.
    pub const NO_CANDIDATES: &str = "NoCandidates";
    /// Candidates exist, none is Ready.
    pub const NO_READY_CANDIDATES: &str = "NoReadyCandidates";
    /// The holder's Lease expired and no successor is named yet.
    pub const LEASE_EXPIRED: &str = "LeaseExpired";
    /// The holder is not Ready (or terminating, or gone without evidence): its Lease runs out.
    pub const HOLDER_NOT_READY: &str = "HolderNotReady";
    /// A successor is about to be named.
    pub const ELECTING: &str = "Electing";
    /// The pool's Lease is not managed by zen-lead.
    pub const LEASE_CONFLICT: &str = "LeaseConflict";
    /// The spec breaks a timing rule: nothing is elected.
    pub const INVALID_TIMING: &str = "InvalidTiming";
}

/// Everything the status depends on.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// `metadata.generation` of the policy.
    pub generation: Option<i64>,
    /// The policy's spec.
    pub spec: &'a LeaderPolicySpec,
    /// The timing check of the spec.
    pub timing: Result<(), &'a TimingError>,
    /// The status as last written.
    pub previous: Option<&'a LeaderPolicyStatus>,
    /// The Lease record after this reconcile's write, if any.
    pub record: Option<&'a LeaseRecord>,
    /// The holder as judged by the election.
    pub holder: HolderState,
    /// The holder's record ran out on the controller's clock.
    pub expired: bool,
    /// The holder's pod name, when the controller sees it.
    pub holder_pod: Option<&'a str>,
    /// Number of candidates.
    pub candidates: usize,
    /// Number of Ready candidates.
    pub ready: usize,
    /// The Lease exists but zen-lead does not manage it.
    pub conflict: bool,
    /// Candidates of a `custom` pool without an identity (pod names).
    pub missing_identities: &'a [String],
    /// The highest term the controller saw on the Lease (watch events, its own writes).
    pub seen_term: Option<u64>,
    /// Now, on the wall clock (condition and transition timestamps only).
    pub now: jiff::Timestamp,
}

impl Input<'_> {
    /// Whether the pool has a live holder: phase `Stable`.
    pub fn live(&self) -> bool {
        !self.conflict && !self.expired && matches!(self.holder, HolderState::Alive { .. })
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn leader_elected(input: &Input<'_>) -> (bool, &'static str, String) {
    let pool_hint = "annotate pods with zen-lead/pool and zen-lead/join: \"true\"";
    let holder = input
        .holder_pod
        .map(str::to_owned)
        .or_else(|| input.record.and_then(|r| r.holder.clone()))
        .unwrap_or_default();
    if input.conflict {
        return (
            false,
            reason::LEASE_CONFLICT,
            "a Lease with the pool's name exists without app.kubernetes.io/managed-by=zen-lead; zen-lead never takes it over".into(),
        );
    }
    if let Err(error) = input.timing {
        return (false, reason::INVALID_TIMING, error.spec_message());
    }
    if input.live() {
        let term = input.record.map_or(0, |r| r.term);
        return (
            true,
            reason::LEADER_ACTIVE,
            format!("{holder} leads (term {term})"),
        );
    }
    if input.candidates == 0 {
        return (
            false,
            reason::NO_CANDIDATES,
            format!("no candidate pods: {pool_hint}"),
        );
    }
    match input.holder {
        HolderState::Stopped(why) if !input.expired => {
            let what = match why {
                Stopped::NotReady => "is not Ready",
                Stopped::Terminating => "is terminating",
                Stopped::Missing => "is not found",
            };
            return (
                false,
                reason::HOLDER_NOT_READY,
                format!(
                    "holder {holder} {what}; a successor is named when its lease expires, or at once on evidence that it stopped"
                ),
            );
        }
        HolderState::Stopped(_) | HolderState::Alive { .. } if input.ready > 0 => {
            return (
                false,
                reason::LEASE_EXPIRED,
                format!("the lease of {holder} expired; naming a successor"),
            );
        }
        _ => {}
    }
    if input.ready == 0 {
        return (
            false,
            reason::NO_READY_CANDIDATES,
            format!(
                "{} candidate(s), none Ready: the leader is the candidate Ready the longest",
                input.candidates
            ),
        );
    }
    (
        false,
        reason::ELECTING,
        "naming the candidate Ready the longest".into(),
    )
}

fn condition(
    previous: Option<&LeaderPolicyStatus>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let before = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == type_));
    let last_transition_time = match before {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

fn holder_key(h: &CurrentHolder) -> (&str, Option<&str>, Option<&Time>) {
    (h.name.as_str(), h.uid.as_deref(), h.since.as_ref())
}

/// `ts` without its fraction of a second, as a `metav1.Time` stores it.
fn whole_seconds(ts: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

/// Computes the status.
pub fn compute(input: &Input<'_>) -> LeaderPolicyStatus {
    let previous = input.previous;
    let current_holder = match (input.live(), input.record) {
        (true, Some(record)) => record.holder.as_ref().map(|identity| CurrentHolder {
            name: input.holder_pod.unwrap_or(identity).to_owned(),
            uid: record.holder_uid.clone(),
            identity: Some(identity.clone()),
            // metav1.Time keeps whole seconds: the status read back must compare equal.
            since: record.acquire_time.map(whole_seconds).map(Time),
            renewer: Some(record.renewer),
        }),
        _ => None,
    };
    let before = previous.and_then(|p| p.current_holder.as_ref());
    let last_transition_time = if before.map(holder_key) == current_holder.as_ref().map(holder_key)
    {
        previous.and_then(|p| p.last_transition_time.clone())
    } else {
        Some(Time(input.now))
    };
    let as_i64 = |term: u64| i64::try_from(term).unwrap_or(i64::MAX);
    let term = previous
        .and_then(|p| p.term)
        .max(input.record.map(|r| as_i64(r.term)))
        .max(input.seen_term.map(as_i64));
    let generation = input.generation;
    let (elected, why, message) = leader_elected(input);
    let mut conditions = vec![
        condition(
            previous,
            CONDITION_LEADER_ELECTED,
            elected,
            why,
            message,
            generation,
            input.now,
        ),
        match input.timing {
            Ok(()) => condition(
                previous,
                CONDITION_VALID,
                true,
                "TimingValid",
                "the timings follow the rules of docs/API.md".into(),
                generation,
                input.now,
            ),
            Err(error) => condition(
                previous,
                CONDITION_VALID,
                false,
                reason::INVALID_TIMING,
                error.spec_message(),
                generation,
                input.now,
            ),
        },
    ];
    if input.spec.follower_mode == FollowerMode::ScaleDown {
        conditions.push(condition(
            previous,
            CONDITION_SCALE_DOWN,
            false,
            "NotSupported",
            "followerMode scaleDown is not built yet: followers keep running, as with standby"
                .into(),
            generation,
            input.now,
        ));
    }
    if input.spec.identity_strategy == zen_lead::api::IdentityStrategy::Custom {
        conditions.push(if input.missing_identities.is_empty() {
            condition(
                previous,
                CONDITION_IDENTITIES,
                true,
                "AllResolved",
                "every candidate has an identity".into(),
                generation,
                input.now,
            )
        } else {
            condition(
                previous,
                CONDITION_IDENTITIES,
                false,
                "MissingIdentity",
                format!(
                    "identityStrategy custom: no zen-lead/identity annotation or literal ZEN_LEAD_IDENTITY env on {}; they cannot lead",
                    input.missing_identities.join(", ")
                ),
                generation,
                input.now,
            )
        });
    }
    LeaderPolicyStatus {
        phase: Some(if input.live() {
            Phase::Stable
        } else {
            Phase::Electing
        }),
        current_holder,
        candidates: Some(count(input.candidates)),
        ready_candidates: Some(count(input.ready)),
        term,
        last_transition_time,
        observed_generation: generation,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zen_lead::api::IdentityStrategy;
    use zen_lead::lease::record::Renewer;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn record(term: u64) -> LeaseRecord {
        LeaseRecord {
            resource_version: Some("1".into()),
            managed: true,
            holder: Some("a".into()),
            holder_uid: Some("uid-a".into()),
            session: None,
            renewer: Renewer::Controller,
            acquire_time: Some(ts(0)),
            renew_time: Some(ts(0)),
            lease_duration_seconds: Some(15),
            term,
            negative_term: None,
            released_term: None,
            min_hold_until: None,
        }
    }

    fn input<'a>(spec: &'a LeaderPolicySpec, record: Option<&'a LeaseRecord>) -> Input<'a> {
        Input {
            generation: Some(2),
            spec,
            timing: Ok(()),
            previous: None,
            record,
            holder: HolderState::Alive { renew: true },
            expired: false,
            holder_pod: Some("a"),
            candidates: 3,
            ready: 3,
            conflict: false,
            missing_identities: &[],
            seen_term: None,
            now: ts(10),
        }
    }

    fn elected(status: &LeaderPolicyStatus) -> (&str, &str) {
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_LEADER_ELECTED)
            .unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn leader_elected_reasons() {
        let spec = LeaderPolicySpec::default();
        let rec = record(4);
        let invalid = TimingError::RetryPeriodZero;
        let base = input(&spec, Some(&rec));
        let cases: Vec<(&str, Input<'_>, (&str, &str), Phase)> = vec![
            (
                "a live holder",
                base,
                ("True", reason::LEADER_ACTIVE),
                Phase::Stable,
            ),
            (
                "no candidates",
                Input {
                    candidates: 0,
                    ready: 0,
                    holder: HolderState::Vacant,
                    record: None,
                    ..base
                },
                ("False", reason::NO_CANDIDATES),
                Phase::Electing,
            ),
            (
                "no Ready candidates",
                Input {
                    ready: 0,
                    holder: HolderState::Vacant,
                    ..base
                },
                ("False", reason::NO_READY_CANDIDATES),
                Phase::Electing,
            ),
            (
                "holder NotReady, lease running out",
                Input {
                    holder: HolderState::Stopped(Stopped::NotReady),
                    ..base
                },
                ("False", reason::HOLDER_NOT_READY),
                Phase::Electing,
            ),
            (
                "lease expired",
                Input {
                    holder: HolderState::Stopped(Stopped::NotReady),
                    expired: true,
                    ..base
                },
                ("False", reason::LEASE_EXPIRED),
                Phase::Electing,
            ),
            (
                "a self-renewed holder that stopped renewing",
                Input {
                    holder: HolderState::Alive { renew: false },
                    expired: true,
                    ..base
                },
                ("False", reason::LEASE_EXPIRED),
                Phase::Electing,
            ),
            (
                "unmanaged lease",
                Input {
                    conflict: true,
                    ..base
                },
                ("False", reason::LEASE_CONFLICT),
                Phase::Electing,
            ),
            (
                "invalid timing",
                Input {
                    timing: Err(&invalid),
                    holder: HolderState::Vacant,
                    ..base
                },
                ("False", reason::INVALID_TIMING),
                Phase::Electing,
            ),
        ];
        for (name, input, expect, phase) in cases {
            let status = compute(&input);
            assert_eq!(elected(&status), expect, "case: {name}");
            assert_eq!(status.phase, Some(phase), "case: {name}");
            assert_eq!(
                status.current_holder.is_some(),
                phase == Phase::Stable,
                "case: {name}"
            );
        }
    }

    #[test]
    fn holder_counts_term_and_generation() {
        let spec = LeaderPolicySpec::default();
        let rec = record(4);
        let status = compute(&Input {
            ready: 2,
            ..input(&spec, Some(&rec))
        });
        let holder = status.current_holder.clone().unwrap();
        assert_eq!(holder.name, "a");
        assert_eq!(holder.uid.as_deref(), Some("uid-a"));
        assert_eq!(holder.identity.as_deref(), Some("a"));
        assert_eq!(holder.since, Some(Time(ts(0))));
        assert_eq!(holder.renewer, Some(Renewer::Controller));
        assert_eq!(
            (status.candidates, status.ready_candidates),
            (Some(3), Some(2))
        );
        assert_eq!(status.term, Some(4));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.last_transition_time, Some(Time(ts(10))));
    }

    #[test]
    fn an_unchanged_pool_computes_the_same_status() {
        let spec = LeaderPolicySpec::default();
        let rec = record(4);
        let first = compute(&input(&spec, Some(&rec)));
        let again = compute(&Input {
            previous: Some(&first),
            now: ts(99),
            ..input(&spec, Some(&rec))
        });
        assert_eq!(again, first);
    }

    #[test]
    fn a_status_read_back_is_unchanged_when_the_lease_has_fractional_times() {
        // The Lease's acquireTime is a MicroTime; the status's `since` is a metav1.Time
        // (whole seconds). Each renewal reconciles: the status read back must compare equal,
        // or every renewal patches it.
        let spec = LeaderPolicySpec::default();
        let mut rec = record(4);
        rec.acquire_time = Some(jiff::Timestamp::from_microsecond(1_800_000_000_123_456).unwrap());
        let written = compute(&input(&spec, Some(&rec)));
        let stored: LeaderPolicyStatus =
            serde_json::from_value(serde_json::to_value(&written).unwrap()).unwrap();
        rec.renew_time = Some(ts(2));
        let again = compute(&Input {
            previous: Some(&stored),
            now: ts(2),
            ..input(&spec, Some(&rec))
        });
        assert_eq!(again, stored);
    }

    #[test]
    fn transition_time_moves_only_with_the_holder() {
        let spec = LeaderPolicySpec::default();
        let rec = record(4);
        let first = compute(&input(&spec, Some(&rec)));
        let mut next = record(5);
        next.holder = Some("b".into());
        next.holder_uid = Some("uid-b".into());
        next.acquire_time = Some(ts(50));
        let moved = compute(&Input {
            previous: Some(&first),
            holder_pod: Some("b"),
            now: ts(60),
            ..input(&spec, Some(&next))
        });
        assert_eq!(moved.last_transition_time, Some(Time(ts(60))));
        assert_eq!(moved.term, Some(5));
        // The condition stayed True: its own transition time stays.
        let c = |s: &LeaderPolicyStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == CONDITION_LEADER_ELECTED)
                .unwrap()
                .last_transition_time
                .clone()
        };
        assert_eq!(c(&moved), c(&first));
    }

    #[test]
    fn the_term_high_water_mark_never_goes_down() {
        let spec = LeaderPolicySpec::default();
        let previous = LeaderPolicyStatus {
            term: Some(9),
            ..Default::default()
        };
        let rec = record(1);
        let status = compute(&Input {
            previous: Some(&previous),
            ..input(&spec, Some(&rec))
        });
        assert_eq!(status.term, Some(9));
        let status = compute(&Input {
            previous: Some(&previous),
            record: None,
            holder: HolderState::Vacant,
            ..input(&spec, None)
        });
        assert_eq!(status.term, Some(9));
        // A term seen on the Lease but gone from it (deleted, recreated) still counts.
        let status = compute(&Input {
            previous: Some(&previous),
            seen_term: Some(12),
            ..input(&spec, Some(&rec))
        });
        assert_eq!(status.term, Some(12));
    }

    #[test]
    fn scale_down_and_custom_identity_conditions() {
        let spec = LeaderPolicySpec {
            follower_mode: FollowerMode::ScaleDown,
            identity_strategy: IdentityStrategy::Custom,
            ..LeaderPolicySpec::default()
        };
        let missing = vec!["web-2".to_string()];
        let status = compute(&Input {
            missing_identities: &missing,
            ..input(&spec, None)
        });
        let find = |t: &str| status.conditions.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(find(CONDITION_SCALE_DOWN).status, "False");
        assert_eq!(find(CONDITION_SCALE_DOWN).reason, "NotSupported");
        assert_eq!(find(CONDITION_IDENTITIES).reason, "MissingIdentity");
        assert!(find(CONDITION_IDENTITIES).message.contains("web-2"));
        let plain = compute(&input(&LeaderPolicySpec::default(), None));
        assert_eq!(plain.conditions.len(), 2);
    }
}
