//! The pure decision core of the Lease protocol (docs/PROTOCOL.md).
//!
//! Given the observed record, what this candidate knows and the BOOTTIME clock, decide the next
//! step. No I/O and no clock reads: every rule of the protocol that can be decided without the network is
//! decided here and tested table-driven.

use std::time::Duration;

use super::record::{self, LeaseRecord, Renewer, TermOverflow};
use super::{Candidate, LostReason, Timing};
use crate::clock::BootInstant;

/// What this candidate knows about its own leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// The term we hold.
    pub term: u64,
    /// When we *sent* the last write that succeeded (docs/PROTOCOL.md §4).
    pub last_success_send: BootInstant,
}

impl Leadership {
    /// The instant we lead no more unless a renewal succeeds first.
    pub fn deadline(&self, timing: &Timing) -> BootInstant {
        self.last_success_send + timing.renew_deadline
    }
}

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The observed Lease; `None` when it does not exist.
    pub record: Option<&'a LeaseRecord>,
    /// When this candidate first saw this exact record (same [`LeaseRecord::key`]).
    pub first_seen: BootInstant,
    /// This candidate.
    pub candidate: &'a Candidate,
    /// Our leadership, if we believe we hold the lease.
    pub leading: Option<Leadership>,
    /// The highest term the pool ever had that this candidate knows: `LeaderPolicy`
    /// `status.term` when readable, and every term it saw on the Lease. `None` only for a pool
    /// this candidate has never seen a trace of.
    pub high_water_term: Option<u64>,
    /// The lease duration of the last record this candidate saw, kept after the Lease vanished:
    /// a deleted Lease is waited out for it (docs/PROTOCOL.md §2).
    pub last_lease_duration: Option<Duration>,
    /// For a record that is a finished holder's `--min-hold` ([`LeaseRecord::min_hold_release`]):
    /// when the hold ends, on our clock, as judged from the API server's clock. `None` when not
    /// known; the record then expires like any held one.
    pub hold_ends: Option<BootInstant>,
    /// The pool's timings.
    pub timing: Timing,
    /// Now, on CLOCK_BOOTTIME.
    pub now: BootInstant,
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The Lease does not exist: create it holding it, with this term.
    Create {
        /// The term to write.
        term: u64,
    },
    /// Take the observed record (empty, expired, or our own session's): a new term.
    Acquire {
        /// The term to write.
        term: u64,
    },
    /// The controller handed the lease to us: take over renewing as `self`, keeping its term.
    TakeOver {
        /// The term the controller wrote.
        term: u64,
    },
    /// We lead: renew at this instant.
    Renew {
        /// When the next renewal is due.
        at: BootInstant,
    },
    /// Someone else holds it: wait for a change, or until the local expiry timer fires.
    Wait {
        /// When the record, if unchanged until then, expires on our clock.
        until: BootInstant,
    },
    /// We led and lead no more.
    Lost(LostReason),
    /// A Lease of the pool's name exists that zen-lead does not manage: never take it.
    Conflict,
    /// The next term would not fit the Lease (docs/PROTOCOL.md §3): refuse, never repeat a term.
    TermExhausted(TermOverflow),
}

/// `make(term)` with the next term, or the refusal.
fn with_next_term(
    record_term: Option<u64>,
    high_water: Option<u64>,
    make: impl FnOnce(u64) -> Decision,
) -> Decision {
    match record::next_term(record_term, high_water) {
        Ok(term) => make(term),
        Err(overflow) => Decision::TermExhausted(overflow),
    }
}

/// Whether the record was handed to this candidate by the controller (docs/PROTOCOL.md §7, §8): it names
/// us with `renewer: controller`, and its pod UID is ours or absent.
fn handed_to_us(record: &LeaseRecord, candidate: &Candidate) -> bool {
    record.renewer == Renewer::Controller
        && record.holder.as_deref() == Some(candidate.identity.as_str())
        && match (&record.holder_uid, &candidate.pod_uid) {
            (None, _) => true,
            (Some(theirs), Some(ours)) => theirs == ours,
            (Some(_), None) => false,
        }
}

fn is_our_session(record: &LeaseRecord, candidate: &Candidate) -> bool {
    record.holder.as_deref() == Some(candidate.identity.as_str())
        && record.session.as_deref() == Some(candidate.session.as_str())
}

/// Decides the next step (docs/PROTOCOL.md).
pub fn decide(input: &Input<'_>) -> Decision {
    let Input {
        record,
        first_seen,
        candidate,
        leading,
        high_water_term,
        last_lease_duration,
        hold_ends,
        timing,
        now,
    } = *input;

    if let Some(leadership) = leading {
        // PROTOCOL.md §4: judged first, so that a wake-up from a pause past the deadline means lost even
        // if the record still names us and a renewal would succeed.
        if now >= leadership.deadline(&timing) {
            return Decision::Lost(LostReason::RenewDeadline);
        }
        let Some(record) = record else {
            return Decision::Lost(LostReason::Deleted);
        };
        if !record.managed {
            return Decision::Conflict;
        }
        if !is_our_session(record, candidate) {
            return Decision::Lost(LostReason::Superseded {
                holder: record.holder.clone().unwrap_or_default(),
            });
        }
        return Decision::Renew {
            at: leadership.last_success_send + timing.retry_period,
        };
    }

    let Some(record) = record else {
        // PROTOCOL.md §2: only a pool this candidate never saw a trace of is created at once. A Lease that
        // vanished (`kubectl delete lease`) may have had a holder that is still stopping its
        // work: wait it out for the lease duration, from when the absence was seen.
        if high_water_term.is_none() && last_lease_duration.is_none() {
            return with_next_term(None, None, |term| Decision::Create { term });
        }
        let duration = input
            .last_lease_duration
            .unwrap_or(timing.lease_duration)
            .max(timing.lease_duration);
        let until = first_seen + duration;
        if now >= until {
            // PROTOCOL.md §3: a recreated Lease continues above the high-water mark.
            return with_next_term(None, high_water_term, |term| Decision::Create { term });
        }
        return Decision::Wait { until };
    };
    if !record.managed {
        return Decision::Conflict;
    }
    // PROTOCOL.md §3: a negative term (a hand edit) read as 0 would restart the terms: it is waited on like
    // any record, but never taken.
    let acquire = || match record::next_term_after(Some(record), high_water_term) {
        Ok(term) => Decision::Acquire { term },
        Err(overflow) => Decision::TermExhausted(overflow),
    };
    if record.is_released() {
        // PROTOCOL.md §2, §5: a release marked by the holder that ended this term is free at once.
        return acquire();
    }
    if is_our_session(record, candidate) {
        // Our own process wrote it (e.g. the response to our acquisition was lost) and we run
        // no work under it: nobody else can be running under this session.
        return acquire();
    }
    if handed_to_us(record, candidate) {
        if let Some(value) = record.negative_term {
            return Decision::TermExhausted(TermOverflow::Negative(value));
        }
        return Decision::TakeOver { term: record.term };
    }
    // PROTOCOL.md §2, §7: anyone else (including the same identity with another session or pod UID),
    // and an empty holder without the release marker (cleared by hand), holds it until the
    // record has stayed unchanged for its lease duration on our clock.
    let expires = first_seen + record.lease_duration(timing.lease_duration);
    // PROTOCOL.md §5: a finished holder's min-hold ends when the API server's clock says so; its work has
    // already stopped, so this is de-duplication only.
    let until = match (record.min_hold_release(), hold_ends) {
        (Some(_), Some(hold_ends)) => hold_ends.min(expires),
        _ => expires,
    };
    if now >= until {
        acquire()
    } else {
        Decision::Wait { until }
    }
}

/// How long the record in `input` has been unchanged on our clock (for logs).
pub fn unchanged_for(input: &Input<'_>) -> Duration {
    input.now.saturating_duration_since(input.first_seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> BootInstant {
        BootInstant::from_since_boot(Duration::from_secs(1000 + secs))
    }

    fn me() -> Candidate {
        Candidate {
            identity: "pod-a".into(),
            pod_uid: Some("uid-a".into()),
            session: "session-a".into(),
        }
    }

    /// A record builder: `held_by("pod-b")` and modifiers.
    #[derive(Clone)]
    struct R(LeaseRecord);

    impl R {
        fn empty() -> Self {
            Self(LeaseRecord {
                resource_version: Some("1".into()),
                managed: true,
                holder: None,
                holder_uid: None,
                session: None,
                renewer: Renewer::SelfRenewing,
                acquire_time: None,
                renew_time: None,
                lease_duration_seconds: Some(15),
                term: 4,
                negative_term: None,
                released_term: None,
                min_hold_until: None,
            })
        }
        /// Released by its holder: empty, with the marker for its term.
        fn released() -> Self {
            let mut r = Self::empty();
            r.0.released_term = Some(r.0.term);
            r
        }
        fn marker(mut self, term: u64) -> Self {
            self.0.released_term = Some(term);
            self
        }
        /// A finished holder's min-hold: still named, marked, with the hold's end.
        fn min_hold(mut self) -> Self {
            self.0.released_term = Some(self.0.term);
            self.0.min_hold_until = Some(jiff::Timestamp::UNIX_EPOCH);
            self
        }
        fn held_by(identity: &str) -> Self {
            let mut r = Self::empty();
            r.0.holder = Some(identity.into());
            r.0.holder_uid = Some(format!("uid-{identity}"));
            r.0.session = Some(format!("session-{identity}"));
            r
        }
        fn mine() -> Self {
            let mut r = Self::held_by("pod-a");
            r.0.holder_uid = Some("uid-a".into());
            r.0.session = Some("session-a".into());
            r
        }
        fn session(mut self, s: &str) -> Self {
            self.0.session = Some(s.into());
            self
        }
        fn uid(mut self, u: Option<&str>) -> Self {
            self.0.holder_uid = u.map(Into::into);
            self
        }
        fn by_controller(mut self) -> Self {
            self.0.renewer = Renewer::Controller;
            self.0.session = None;
            self
        }
        fn unmanaged(mut self) -> Self {
            self.0.managed = false;
            self
        }
        fn duration(mut self, secs: i32) -> Self {
            self.0.lease_duration_seconds = Some(secs);
            self
        }
        fn term(mut self, t: u64) -> Self {
            self.0.term = t;
            self
        }
        /// `leaseTransitions` edited to a negative value (read as term 0).
        fn negative(mut self, value: i32) -> Self {
            self.0.term = 0;
            self.0.negative_term = Some(value);
            self
        }
    }

    struct Case {
        name: &'static str,
        record: Option<R>,
        first_seen: BootInstant,
        candidate: Candidate,
        leading: Option<Leadership>,
        high_water: Option<u64>,
        last_lease_duration: Option<Duration>,
        hold_ends: Option<BootInstant>,
        now: BootInstant,
        expect: Decision,
    }

    impl Case {
        fn new(name: &'static str, record: Option<R>, now: BootInstant, expect: Decision) -> Self {
            Self {
                name,
                record,
                first_seen: at(0),
                candidate: me(),
                leading: None,
                high_water: None,
                last_lease_duration: None,
                hold_ends: None,
                now,
                expect,
            }
        }
        fn last_lease_duration(mut self, secs: u64) -> Self {
            self.last_lease_duration = Some(Duration::from_secs(secs));
            self
        }
        fn hold_ends(mut self, at: BootInstant) -> Self {
            self.hold_ends = Some(at);
            self
        }
        fn leading(mut self, term: u64, last_success_send: BootInstant) -> Self {
            self.leading = Some(Leadership {
                term,
                last_success_send,
            });
            self
        }
        fn high_water(mut self, t: u64) -> Self {
            self.high_water = Some(t);
            self
        }
        fn candidate(mut self, c: Candidate) -> Self {
            self.candidate = c;
            self
        }
    }

    fn timing() -> Timing {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn decision_table() {
        use Decision::*;
        let cases = vec![
            // Creation and terms (PROTOCOL.md §3).
            Case::new(
                "absent lease is created with term 1",
                None,
                at(0),
                Create { term: 1 },
            ),
            Case::new(
                "recreated lease keeps the term above the high-water mark",
                None,
                at(15),
                Create { term: 8 },
            )
            .high_water(7),
            Case::new(
                "acquisition never goes below the high-water mark",
                Some(R::empty().term(2).marker(2)),
                at(0),
                Acquire { term: 10 },
            )
            .high_water(9),
            // Only a real release is free (PROTOCOL.md §2, §5).
            Case::new(
                "release marked for its own term is taken at once",
                Some(R::released()),
                at(0),
                Acquire { term: 5 },
            ),
            Case::new(
                "holder cleared by hand (no marker) waits out its lease duration",
                Some(R::empty()),
                at(14),
                Wait { until: at(15) },
            ),
            Case::new(
                "holder cleared by hand is taken once unchanged for its duration",
                Some(R::empty()),
                at(15),
                Acquire { term: 5 },
            ),
            Case::new(
                "a marker left from an earlier term frees nothing",
                Some(R::empty().marker(3)),
                at(0),
                Wait { until: at(15) },
            ),
            Case::new(
                "a marker on a named holder frees nothing",
                Some(R::held_by("pod-b").marker(4)),
                at(0),
                Wait { until: at(15) },
            ),
            Case::new(
                "lease deleted while a holder was known waits its last lease duration",
                None,
                at(59),
                Wait { until: at(60) },
            )
            .high_water(4)
            .last_lease_duration(60),
            Case::new(
                "lease deleted while a holder was known waits at least our lease duration",
                None,
                at(0),
                Wait { until: at(15) },
            )
            .high_water(4)
            .last_lease_duration(5),
            Case::new(
                "lease deleted is recreated above the term once waited out",
                None,
                at(60),
                Create { term: 5 },
            )
            .high_water(4)
            .last_lease_duration(60),
            Case::new(
                "no lease but a high-water term (LeaderPolicy status) waits",
                None,
                at(14),
                Wait { until: at(15) },
            )
            .high_water(7),
            // Min-hold (PROTOCOL.md §5): de-duplication, judged on the API server's clock.
            Case::new(
                "copy within a finished holder's min-hold waits for its end",
                Some(R::held_by("pod-b").duration(600).min_hold()),
                at(10),
                Wait { until: at(300) },
            )
            .hold_ends(at(300)),
            Case::new(
                "copy after a finished holder's min-hold takes it at once",
                Some(R::held_by("pod-b").duration(600).min_hold()),
                at(0),
                Acquire { term: 5 },
            )
            .hold_ends(at(0)),
            Case::new(
                "min-hold whose end cannot be judged expires like a held lease",
                Some(R::held_by("pod-b").duration(600).min_hold()),
                at(10),
                Wait { until: at(600) },
            ),
            Case::new(
                "a live holder's recorded min-hold end frees nothing",
                Some({
                    let mut r = R::held_by("pod-b").by_controller();
                    r.0.min_hold_until = Some(jiff::Timestamp::UNIX_EPOCH);
                    r
                }),
                at(10),
                Wait { until: at(15) },
            )
            .hold_ends(at(0)),
            // Terms never pass i32::MAX, never repeat (PROTOCOL.md §3).
            Case::new(
                "acquisition past i32::MAX is refused",
                Some(R::empty().term(record::MAX_TERM).marker(record::MAX_TERM)),
                at(0),
                TermExhausted(TermOverflow::Above(record::MAX_TERM + 1)),
            ),
            Case::new(
                "acquisition up to i32::MAX is allowed",
                Some(
                    R::empty()
                        .term(record::MAX_TERM - 1)
                        .marker(record::MAX_TERM - 1),
                ),
                at(0),
                Acquire {
                    term: record::MAX_TERM,
                },
            ),
            Case::new(
                "expired acquisition above a high-water of i32::MAX is refused",
                Some(R::held_by("pod-b")),
                at(15),
                TermExhausted(TermOverflow::Above(record::MAX_TERM + 1)),
            )
            .high_water(record::MAX_TERM),
            Case::new(
                "creation above a high-water of i32::MAX is refused",
                None,
                at(15),
                TermExhausted(TermOverflow::Above(record::MAX_TERM + 1)),
            )
            .high_water(record::MAX_TERM),
            // A negative term (hand edit) is never taken as term 0 (PROTOCOL.md §3).
            Case::new(
                "a released record with a negative term is refused",
                Some(R::empty().negative(-1).marker(0)),
                at(0),
                TermExhausted(TermOverflow::Negative(-1)),
            ),
            Case::new(
                "an expired record with a negative term is refused",
                Some(R::held_by("pod-b").negative(-5)),
                at(15),
                TermExhausted(TermOverflow::Negative(-5)),
            ),
            Case::new(
                "a live holder with a negative term is waited on",
                Some(R::held_by("pod-b").negative(-5)),
                at(10),
                Wait { until: at(15) },
            ),
            Case::new(
                "our own session's record with a negative term is refused",
                Some(R::mine().negative(-1)),
                at(0),
                TermExhausted(TermOverflow::Negative(-1)),
            ),
            Case::new(
                "a handover with a negative term is refused",
                Some(
                    R::held_by("pod-a")
                        .uid(Some("uid-a"))
                        .by_controller()
                        .negative(-1),
                ),
                at(0),
                TermExhausted(TermOverflow::Negative(-1)),
            ),
            // Local expiry (PROTOCOL.md §2).
            Case::new(
                "held lease is not taken before it stayed unchanged for its duration",
                Some(R::held_by("pod-b")),
                at(14),
                Wait { until: at(15) },
            ),
            Case::new(
                "held lease is taken once unchanged for its duration",
                Some(R::held_by("pod-b")),
                at(15),
                Acquire { term: 5 },
            ),
            Case::new(
                "the record's own duration counts, not ours",
                Some(R::held_by("pod-b").duration(60)),
                at(30),
                Wait { until: at(60) },
            ),
            Case::new(
                "a zero duration still waits a second",
                Some(R::held_by("pod-b").duration(0)),
                at(0),
                Wait { until: at(1) },
            ),
            // A follower that slept through the expiry just sees the timer has fired: BOOTTIME
            // counted the suspend, so the record really was unchanged that long on our clock.
            Case::new(
                "suspended follower wakes after expiry",
                Some(R::held_by("pod-b")),
                at(3600),
                Acquire { term: 5 },
            ),
            // Identity (PROTOCOL.md §7).
            Case::new(
                "same identity with a new session waits",
                Some(
                    R::held_by("pod-a")
                        .session("old-session")
                        .uid(Some("uid-a")),
                ),
                at(5),
                Wait { until: at(15) },
            ),
            Case::new(
                "same identity with another pod uid waits",
                Some(R::held_by("pod-a").uid(Some("uid-old"))),
                at(5),
                Wait { until: at(15) },
            ),
            Case::new(
                "our own session's record is ours to take",
                Some(R::mine()),
                at(0),
                Acquire { term: 5 },
            ),
            // Controller handover (PROTOCOL.md §8).
            Case::new(
                "handover naming us and our uid is taken over",
                Some(R::held_by("pod-a").uid(Some("uid-a")).by_controller()),
                at(0),
                TakeOver { term: 4 },
            ),
            Case::new(
                "handover naming us without a uid is taken over",
                Some(R::held_by("pod-a").uid(None).by_controller()),
                at(0),
                TakeOver { term: 4 },
            ),
            Case::new(
                "handover naming our name with another uid waits",
                Some(R::held_by("pod-a").uid(Some("uid-old")).by_controller()),
                at(0),
                Wait { until: at(15) },
            ),
            Case::new(
                "handover to someone else waits",
                Some(R::held_by("pod-b").by_controller()),
                at(0),
                Wait { until: at(15) },
            ),
            Case::new(
                "handover naming a uid when we know none waits",
                Some(R::held_by("pod-a").uid(Some("uid-a")).by_controller()),
                at(0),
                Wait { until: at(15) },
            )
            .candidate(Candidate {
                pod_uid: None,
                ..me()
            }),
            // Unmanaged (docs/PROTOCOL.md, The record).
            Case::new(
                "unmanaged released lease is a conflict",
                Some(R::released().unmanaged()),
                at(0),
                Conflict,
            ),
            Case::new(
                "unmanaged expired lease is a conflict",
                Some(R::held_by("pod-b").unmanaged()),
                at(100),
                Conflict,
            ),
            // Holder (PROTOCOL.md §4).
            Case::new(
                "holder renews a retry period after its last success",
                Some(R::mine()),
                at(3),
                Renew { at: at(4) },
            )
            .leading(4, at(2)),
            Case::new(
                "holder past its deadline is lost",
                Some(R::mine()),
                at(12),
                Lost(LostReason::RenewDeadline),
            )
            .leading(4, at(2)),
            Case::new(
                "holder waking from a suspend past its deadline is lost",
                Some(R::mine()),
                at(500),
                Lost(LostReason::RenewDeadline),
            )
            .leading(4, at(2)),
            Case::new(
                "holder just before its deadline still renews",
                Some(R::mine()),
                at(11),
                Renew { at: at(4) },
            )
            .leading(4, at(2)),
            Case::new(
                "holder that sees another holder is superseded",
                Some(R::held_by("pod-b")),
                at(3),
                Lost(LostReason::Superseded {
                    holder: "pod-b".into(),
                }),
            )
            .leading(4, at(2)),
            Case::new(
                "holder that sees its identity with another session is superseded",
                Some(R::mine().session("other")),
                at(3),
                Lost(LostReason::Superseded {
                    holder: "pod-a".into(),
                }),
            )
            .leading(4, at(2)),
            Case::new(
                "holder that sees the holder cleared by hand is superseded",
                Some(R::empty()),
                at(3),
                Lost(LostReason::Superseded {
                    holder: String::new(),
                }),
            )
            .leading(4, at(2)),
            Case::new(
                "holder whose lease was deleted",
                None,
                at(3),
                Lost(LostReason::Deleted),
            )
            .leading(4, at(2)),
            Case::new(
                "holder whose lease became unmanaged",
                Some(R::mine().unmanaged()),
                at(3),
                Conflict,
            )
            .leading(4, at(2)),
        ];
        for case in cases {
            let record = case.record.as_ref().map(|r| &r.0);
            let input = Input {
                record,
                first_seen: case.first_seen,
                candidate: &case.candidate,
                leading: case.leading,
                high_water_term: case.high_water,
                last_lease_duration: case.last_lease_duration,
                hold_ends: case.hold_ends,
                timing: timing(),
                now: case.now,
            };
            assert_eq!(decide(&input), case.expect, "case: {}", case.name);
        }
    }
}
