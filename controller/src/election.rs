//! The pure election choice of one pool (docs/ARCHITECTURE.md, "The controller"): given the pool's
//! pods, the observed Lease record, what the controller remembers and the BOOTTIME clock, who
//! should hold the Lease and which write comes next.
//!
//! Whether a record may be taken is not decided here: that is the library's decision core,
//! [`zen_lead::lease::decision::decide`], asked on behalf of a candidate that never holds
//! anything. This module adds what only the controller knows: the holder's pod, the evidence of
//! its death, and which candidate is Ready the longest.

use std::time::Duration;

use zen_lead::api::IdentityStrategy;
use zen_lead::clock::BootInstant;
use zen_lead::lease::decision::{self, Decision};
use zen_lead::lease::record::{LeaseRecord, Renewer};
use zen_lead::lease::{Candidate, Timing};

use crate::evidence::Evidence;
use crate::pods::PodView;

/// The candidate the controller names as holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor {
    /// The pod name.
    pub name: String,
    /// The pod UID.
    pub uid: String,
    /// The identity written as `holderIdentity`.
    pub identity: String,
}

/// How the controller judges the record's holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderState {
    /// Nobody holds the Lease (absent, or an empty holder).
    Vacant,
    /// The holder works. `renew`: the controller renews for it (`renewer: controller`).
    Alive {
        /// Whether the controller renews this holder.
        renew: bool,
    },
    /// The holder is not dead, but it does not lead for the controller either: its Lease runs
    /// out and is not renewed.
    Stopped(Stopped),
    /// There is evidence that the holder's containers have stopped.
    Dead(Evidence),
}

/// Why a controller-renewed holder is not renewed any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Its pod is not Ready.
    NotReady,
    /// Its pod is terminating.
    Terminating,
    /// Its pod is not seen (force-deleted, or never annotated).
    Missing,
}

/// Judges the holder from its record, its pod and the evidence.
pub fn holder_state(
    record: Option<&LeaseRecord>,
    holder_pod: Option<&PodView>,
    evidence: Option<Evidence>,
) -> HolderState {
    let Some(record) = record.filter(|r| r.is_held()) else {
        return HolderState::Vacant;
    };
    if let Some(evidence) = evidence {
        return HolderState::Dead(evidence);
    }
    match (record.renewer, holder_pod) {
        // zen-lead-exec renews for itself; only its record tells whether it works.
        (Renewer::SelfRenewing, _) => HolderState::Alive { renew: false },
        (Renewer::Controller, None) => HolderState::Stopped(Stopped::Missing),
        // A gated pod holds until it finishes (docs/EXEC.md, gate mode): its main containers run
        // after the gate, whether Ready or not, and while they drain on deletion.
        (Renewer::Controller, Some(pod)) if pod.gated => HolderState::Alive { renew: true },
        (Renewer::Controller, Some(pod)) if pod.terminating => {
            HolderState::Stopped(Stopped::Terminating)
        }
        (Renewer::Controller, Some(pod)) if pod.is_ready() => HolderState::Alive { renew: true },
        (Renewer::Controller, Some(_)) => HolderState::Stopped(Stopped::NotReady),
    }
}

/// The candidate Ready the longest, ties broken by name (docs/PROTOCOL.md §8); never the pod
/// with `exclude_uid` (a dead holder), never one without an identity.
pub fn successor<'a>(
    pods: impl IntoIterator<Item = &'a PodView>,
    strategy: IdentityStrategy,
    exclude_uid: Option<&str>,
) -> Option<Successor> {
    pods.into_iter()
        .filter(|p| p.is_ready() && Some(p.uid.as_str()) != exclude_uid)
        .filter_map(|p| p.identity(strategy).map(|id| (p, id)))
        .min_by(|(a, _), (b, _)| (a.ready_since, &a.name).cmp(&(b.ready_since, &b.name)))
        .map(|(p, identity)| Successor {
            name: p.name.clone(),
            uid: p.uid.clone(),
            identity: identity.to_owned(),
        })
}

/// Why a new holder is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A new pool, or a Lease that was deleted and waited out.
    Vacant,
    /// The previous holder released.
    Release,
    /// The previous record expired on the controller's clock.
    Expiry,
    /// The previous holder is dead.
    Evidence(Evidence),
}

impl Cause {
    /// The label of Events and metrics: `evidence`, `expiry`, `release` or `new`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Vacant => "new",
            Self::Release => "release",
            Self::Expiry => "expiry",
            Self::Evidence(_) => "evidence",
        }
    }
}

/// The next write for the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to write; decide again at `recheck` (or on the next change).
    Idle {
        /// When the decision may change without any watch event.
        recheck: Option<BootInstant>,
    },
    /// Create the missing Lease for `to`.
    Create {
        /// The new holder.
        to: Successor,
        /// Its term.
        term: u64,
    },
    /// Acquire the observed record for `to` (`renewer: controller`, a new term).
    Acquire {
        /// The new holder.
        to: Successor,
        /// Its term.
        term: u64,
        /// Why.
        cause: Cause,
    },
    /// Renew the controller-renewed holder now.
    Renew,
    /// Release the record of a dead holder (with the marker), nobody being Ready to take it.
    Release {
        /// The evidence.
        evidence: Evidence,
    },
    /// The pool's Lease is not managed by zen-lead.
    Conflict,
    /// No term is left for an acquisition.
    TermExhausted,
}

/// Everything the plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The observed record; `None` when the Lease does not exist.
    pub record: Option<&'a LeaseRecord>,
    /// When the controller first saw this exact record (or the absence of the Lease).
    pub first_seen: BootInstant,
    /// The holder as judged by [`holder_state`].
    pub holder: HolderState,
    /// The candidate Ready the longest, excluding a dead holder.
    pub successor: Option<&'a Successor>,
    /// The pool's high-water term (`LeaderPolicy` status).
    pub high_water: Option<u64>,
    /// When the controller sent its last successful renewal of this record, if it did.
    pub last_renewal: Option<BootInstant>,
    /// The pool's timings.
    pub timing: Timing,
    /// Now, on CLOCK_BOOTTIME.
    pub now: BootInstant,
}

/// The candidate on whose behalf the decision core is asked: it never holds a Lease, so the
/// core answers only "may a new holder be named now, and with which term".
fn observer() -> Candidate {
    Candidate {
        identity: String::new(),
        pod_uid: None,
        session: String::new(),
    }
}

fn next_term(record: Option<&LeaseRecord>, high_water: Option<u64>) -> Option<u64> {
    let term = record
        .map_or(0, |r| r.term)
        .max(high_water.unwrap_or(0))
        .checked_add(1)?;
    (term <= i32::MAX as u64).then_some(term)
}

/// Decides the pool's next write.
pub fn plan(input: &Input<'_>) -> Plan {
    let candidate = observer();
    let core = decision::decide(&decision::Input {
        record: input.record,
        first_seen: input.first_seen,
        candidate: &candidate,
        leading: None,
        high_water_term: input.high_water,
        timing: input.timing,
        now: input.now,
    });
    if core == Decision::Conflict {
        return Plan::Conflict;
    }
    if let HolderState::Dead(evidence) = input.holder {
        // docs/PROTOCOL.md §8: hand over at once to the candidate Ready the longest, or release
        // when nobody is Ready.
        return match (input.successor, next_term(input.record, input.high_water)) {
            (Some(to), Some(term)) => Plan::Acquire {
                to: to.clone(),
                term,
                cause: Cause::Evidence(evidence),
            },
            (Some(_), None) => Plan::TermExhausted,
            (None, _) => Plan::Release { evidence },
        };
    }
    if let HolderState::Alive { renew: true } = input.holder {
        // A live holder that the controller renews keeps its term, even if its record looks
        // expired (a controller failover took longer than the pool's lease): nobody else took
        // it, and the conditional write loses if someone did.
        let due = input
            .last_renewal
            .map_or(input.now, |sent| sent + input.timing.retry_period);
        return if input.now >= due {
            Plan::Renew
        } else {
            Plan::Idle { recheck: Some(due) }
        };
    }
    match core {
        Decision::Create { term } => match input.successor {
            Some(to) => Plan::Create {
                to: to.clone(),
                term,
            },
            None => Plan::Idle { recheck: None },
        },
        Decision::Acquire { term } => match input.successor {
            Some(to) => Plan::Acquire {
                to: to.clone(),
                term,
                cause: if input.holder == HolderState::Vacant {
                    Cause::Release
                } else {
                    Cause::Expiry
                },
            },
            None => Plan::Idle { recheck: None },
        },
        Decision::Wait { until } => Plan::Idle {
            recheck: Some(until),
        },
        // The observer never leads, so the core never answers with a holder's step.
        Decision::TakeOver { .. }
        | Decision::Renew { .. }
        | Decision::Lost(_)
        | Decision::Conflict => Plan::Idle { recheck: None },
    }
}

/// When a record that nobody renews expires on the controller's clock: for status and the role
/// of a holder whose lease ran out.
pub fn expires_at(
    record: &LeaseRecord,
    first_seen: BootInstant,
    fallback: Duration,
) -> BootInstant {
    first_seen + record.lease_duration(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::Phase;
    use crate::pods::fixtures::candidate;

    fn at(secs: u64) -> BootInstant {
        BootInstant::from_since_boot(Duration::from_secs(1000 + secs))
    }

    fn timing() -> Timing {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn record(holder: Option<&str>, renewer: Renewer, term: u64) -> LeaseRecord {
        LeaseRecord {
            resource_version: Some("1".into()),
            managed: true,
            holder: holder.map(Into::into),
            holder_uid: holder.map(|h| format!("uid-{h}")),
            session: None,
            renewer,
            acquire_time: None,
            renew_time: None,
            lease_duration_seconds: Some(15),
            term,
        }
    }

    fn to(name: &str) -> Successor {
        Successor {
            name: name.into(),
            uid: format!("uid-{name}"),
            identity: name.into(),
        }
    }

    #[test]
    fn holder_state_table() {
        let ctl = record(Some("a"), Renewer::Controller, 3);
        let own = record(Some("a"), Renewer::SelfRenewing, 3);
        let ready = candidate("a").ready(0);
        let not_ready = candidate("a");
        let terminating = candidate("a").ready(0).terminating(30);
        let gated_not_ready = candidate("a").gated();
        let cases = [
            ("no record", None, None, None, HolderState::Vacant),
            (
                "empty holder",
                Some(record(None, Renewer::SelfRenewing, 3)),
                None,
                None,
                HolderState::Vacant,
            ),
            (
                "evidence wins",
                Some(ctl.clone()),
                Some(&ready),
                Some(Evidence::UidChanged),
                HolderState::Dead(Evidence::UidChanged),
            ),
            (
                "controller renews a Ready holder",
                Some(ctl.clone()),
                Some(&ready),
                None,
                HolderState::Alive { renew: true },
            ),
            (
                "NotReady stops renewal at once",
                Some(ctl.clone()),
                Some(&not_ready),
                None,
                HolderState::Stopped(Stopped::NotReady),
            ),
            (
                "terminating stops renewal",
                Some(ctl.clone()),
                Some(&terminating),
                None,
                HolderState::Stopped(Stopped::Terminating),
            ),
            (
                "a missing pod is not renewed",
                Some(ctl.clone()),
                None,
                None,
                HolderState::Stopped(Stopped::Missing),
            ),
            (
                "a gated pod is renewed until it finishes, Ready or not",
                Some(ctl.clone()),
                Some(&gated_not_ready),
                None,
                HolderState::Alive { renew: true },
            ),
            (
                "zen-lead-exec renews for itself, Ready or not",
                Some(own.clone()),
                Some(&not_ready),
                None,
                HolderState::Alive { renew: false },
            ),
            (
                "zen-lead-exec without a visible pod",
                Some(own),
                None,
                None,
                HolderState::Alive { renew: false },
            ),
        ];
        for (name, record, pod, evidence, expect) in cases {
            assert_eq!(
                holder_state(record.as_ref(), pod, evidence),
                expect,
                "case: {name}"
            );
        }
    }

    #[test]
    fn successor_is_ready_the_longest_then_by_name() {
        let pods = [
            candidate("c").ready(5),
            candidate("b").ready(3),
            candidate("a").ready(3),
            candidate("old").ready(1).terminating(30),
            candidate("failed").phase(Phase::Failed),
            candidate("waiting"),
        ];
        let pick = |exclude: Option<&str>| {
            successor(&pods, IdentityStrategy::Pod, exclude).map(|s| s.name)
        };
        assert_eq!(pick(None).as_deref(), Some("a"));
        assert_eq!(pick(Some("uid-a")).as_deref(), Some("b"));
        assert_eq!(successor(&pods[5..], IdentityStrategy::Pod, None), None);
        // A custom pool skips a candidate without an identity.
        let mut with_id = candidate("z").ready(9);
        with_id.identity_annotation = Some("zed".into());
        let custom = [candidate("a").ready(0), with_id];
        let chosen = successor(&custom, IdentityStrategy::Custom, None).unwrap();
        assert_eq!(
            (chosen.name.as_str(), chosen.identity.as_str()),
            ("z", "zed")
        );
    }

    struct Case {
        name: &'static str,
        record: Option<LeaseRecord>,
        holder: HolderState,
        successor: Option<Successor>,
        high_water: Option<u64>,
        last_renewal: Option<BootInstant>,
        now: BootInstant,
        expect: Plan,
    }

    fn case(name: &'static str, record: Option<LeaseRecord>, holder: HolderState) -> Case {
        Case {
            name,
            record,
            holder,
            successor: Some(to("b")),
            high_water: None,
            last_renewal: None,
            now: at(0),
            expect: Plan::Idle { recheck: None },
        }
    }

    impl Case {
        fn now(mut self, secs: u64) -> Self {
            self.now = at(secs);
            self
        }
        fn nobody_ready(mut self) -> Self {
            self.successor = None;
            self
        }
        fn high_water(mut self, t: u64) -> Self {
            self.high_water = Some(t);
            self
        }
        fn renewed(mut self, secs: u64) -> Self {
            self.last_renewal = Some(at(secs));
            self
        }
        fn expect(mut self, plan: Plan) -> Self {
            self.expect = plan;
            self
        }
    }

    #[test]
    fn plan_table() {
        use HolderState::*;
        let held = |renewer| Some(record(Some("a"), renewer, 4));
        let ctl = Renewer::Controller;
        let own = Renewer::SelfRenewing;
        let dead = Dead(Evidence::Finished(Phase::Failed));
        let mut unmanaged = record(Some("x"), own, 1);
        unmanaged.managed = false;
        let cases = vec![
            case(
                "a new pool is created for the candidate Ready the longest",
                None,
                Vacant,
            )
            .expect(Plan::Create {
                to: to("b"),
                term: 1,
            }),
            case(
                "a new pool with nobody Ready waits for a change",
                None,
                Vacant,
            )
            .nobody_ready()
            .expect(Plan::Idle { recheck: None }),
            case(
                "an empty holder is acquired",
                Some(record(None, own, 4)),
                Vacant,
            )
            .expect(Plan::Acquire {
                to: to("b"),
                term: 5,
                cause: Cause::Release,
            }),
            case(
                "terms continue above the high-water mark",
                Some(record(None, own, 4)),
                Vacant,
            )
            .high_water(9)
            .expect(Plan::Acquire {
                to: to("b"),
                term: 10,
                cause: Cause::Release,
            }),
            case(
                "a controller holder that is Ready is renewed",
                held(ctl),
                Alive { renew: true },
            )
            .expect(Plan::Renew),
            case(
                "renewal waits a retry period after the last one",
                held(ctl),
                Alive { renew: true },
            )
            .renewed(0)
            .now(1)
            .expect(Plan::Idle {
                recheck: Some(at(2)),
            }),
            case(
                "renewal is due a retry period after the last one",
                held(ctl),
                Alive { renew: true },
            )
            .renewed(0)
            .now(2)
            .expect(Plan::Renew),
            case(
                "a live holder whose record looks expired keeps its term",
                held(ctl),
                Alive { renew: true },
            )
            .now(60)
            .expect(Plan::Renew),
            case(
                "a NotReady holder is not renewed; its successor waits for expiry",
                held(ctl),
                Stopped(super::Stopped::NotReady),
            )
            .now(14)
            .expect(Plan::Idle {
                recheck: Some(at(15)),
            }),
            case(
                "after expiry the successor is named",
                held(ctl),
                Stopped(super::Stopped::NotReady),
            )
            .now(15)
            .expect(Plan::Acquire {
                to: to("b"),
                term: 5,
                cause: Cause::Expiry,
            }),
            case(
                "a force-deleted holder waits for expiry",
                held(ctl),
                Stopped(super::Stopped::Missing),
            )
            .now(3)
            .expect(Plan::Idle {
                recheck: Some(at(15)),
            }),
            case(
                "zen-lead-exec holders are never renewed by the controller",
                held(own),
                Alive { renew: false },
            )
            .now(3)
            .expect(Plan::Idle {
                recheck: Some(at(15)),
            }),
            case(
                "an expired zen-lead-exec record goes to the candidate Ready the longest",
                held(own),
                Alive { renew: false },
            )
            .now(15)
            .expect(Plan::Acquire {
                to: to("b"),
                term: 5,
                cause: Cause::Expiry,
            }),
            case("evidence hands over at once", held(own), dead).expect(Plan::Acquire {
                to: to("b"),
                term: 5,
                cause: Cause::Evidence(Evidence::Finished(Phase::Failed)),
            }),
            case("evidence with nobody Ready releases", held(ctl), dead)
                .nobody_ready()
                .expect(Plan::Release {
                    evidence: Evidence::Finished(Phase::Failed),
                }),
            case("a handover past i32::MAX is refused", held(own), dead)
                .high_water(i32::MAX as u64)
                .expect(Plan::TermExhausted),
            case(
                "an unmanaged Lease is a conflict",
                Some(unmanaged),
                Alive { renew: false },
            )
            .expect(Plan::Conflict),
        ];
        for case in cases {
            let input = Input {
                record: case.record.as_ref(),
                first_seen: at(0),
                holder: case.holder,
                successor: case.successor.as_ref(),
                high_water: case.high_water,
                last_renewal: case.last_renewal,
                timing: timing(),
                now: case.now,
            };
            assert_eq!(plan(&input), case.expect, "case: {}", case.name);
        }
    }
}
