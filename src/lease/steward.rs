//! The controller's decision on a pool's Lease (docs/PROTOCOL.md §8): acquire on behalf of a pod,
//! renew for it, hand over on evidence of death, release for a finished gated pod.
//!
//! Pure, like [`super::decision`], and built on it: whether a record may be taken now, and with
//! which term, is asked of [`super::decision::decide`] on behalf of a candidate that never holds
//! anything. What only the controller knows (the holder's pod: alive, stopped or dead; whether a
//! candidate is Ready) comes in as plain values.

use std::time::Duration;

use super::decision::{self, Decision};
use super::record::{self, LeaseRecord, TermOverflow};
use super::{Candidate, Timing};
use crate::clock::BootInstant;

/// The record's holder, as the controller judges it from the holder's pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Nobody holds the Lease (absent, released, or cleared).
    Vacant,
    /// The holder works. `renew`: the controller renews for it (`renewer: controller`).
    Alive {
        /// Whether the controller renews this holder.
        renew: bool,
    },
    /// Not dead, but not renewed any more (its pod is NotReady, terminating, or not seen): the
    /// record runs out.
    Stopped,
    /// Evidence that the holder's containers have stopped (docs/PROTOCOL.md §8).
    Dead,
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
    /// Evidence that the previous holder is dead.
    Evidence,
}

impl Cause {
    /// The label of Events and metrics: `new`, `release`, `expiry` or `evidence`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Vacant => "new",
            Self::Release => "release",
            Self::Expiry => "expiry",
            Self::Evidence => "evidence",
        }
    }
}

/// The controller's next write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to write; decide again at `recheck` (or on the next change).
    Idle {
        /// When the decision may change without any watch event.
        recheck: Option<BootInstant>,
    },
    /// Create the missing Lease for the successor.
    Create {
        /// Its term.
        term: u64,
    },
    /// Acquire the observed record for the successor (`renewer: controller`, a new term).
    Acquire {
        /// Its term.
        term: u64,
        /// Why.
        cause: Cause,
    },
    /// Renew the controller-renewed holder now.
    Renew,
    /// Release the record of a dead holder, with the marker (`record::release`), or with the
    /// min-hold it recorded (`record::release_with_min_hold`).
    Release {
        /// The recorded min-hold that has not ended yet: its end and the time left.
        hold: Option<(jiff::Timestamp, Duration)>,
    },
    /// The pool's Lease is not managed by zen-lead.
    Conflict,
    /// No term is left for an acquisition.
    TermExhausted(TermOverflow),
}

/// Everything the step depends on.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The observed record; `None` when the Lease does not exist.
    pub record: Option<&'a LeaseRecord>,
    /// When the controller first saw this exact record (or the absence of the Lease).
    pub first_seen: BootInstant,
    /// The holder.
    pub holder: Holder,
    /// Whether a candidate (other than a dead holder) is Ready to be named.
    pub successor: bool,
    /// The pool's high-water term (`LeaderPolicy` status, and every term seen).
    pub high_water: Option<u64>,
    /// The lease duration of the last record seen, kept after the Lease vanished.
    pub last_lease_duration: Option<Duration>,
    /// When the controller sent its last successful renewal of this record, if it did.
    pub last_renewal: Option<BootInstant>,
    /// The pool's timings.
    pub timing: Timing,
    /// Now, on CLOCK_BOOTTIME.
    pub now: BootInstant,
    /// Now, on the wall clock: only to judge a recorded min-hold (de-duplication, not
    /// exclusion: docs/PROTOCOL.md §5).
    pub wall_now: jiff::Timestamp,
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

fn until_wall(until: jiff::Timestamp, now: jiff::Timestamp) -> Duration {
    Duration::try_from(until.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Decides the controller's next write for the pool.
pub fn decide(input: &Input<'_>) -> Step {
    let hold_ends = input
        .record
        .and_then(LeaseRecord::min_hold_release)
        .map(|until| input.now + until_wall(until, input.wall_now));
    let candidate = observer();
    let core = decision::decide(&decision::Input {
        record: input.record,
        first_seen: input.first_seen,
        candidate: &candidate,
        leading: None,
        high_water_term: input.high_water,
        last_lease_duration: input.last_lease_duration,
        hold_ends,
        timing: input.timing,
        now: input.now,
    });
    if core == Decision::Conflict {
        return Step::Conflict;
    }
    if input.holder == Holder::Dead {
        let record = input.record;
        // A min-hold recorded by the gate de-duplicates runs of a CronJob: it is honoured even
        // when someone is Ready (docs/PROTOCOL.md §5).
        let hold = record
            .and_then(|r| r.min_hold_until)
            .map(|until| (until, until_wall(until, input.wall_now)))
            .filter(|(_, left)| !left.is_zero());
        if hold.is_some() || !input.successor {
            return Step::Release { hold };
        }
        // docs/PROTOCOL.md §8: hand over at once to the candidate Ready the longest.
        return match record::next_term_after(record, input.high_water) {
            Ok(term) => Step::Acquire {
                term,
                cause: Cause::Evidence,
            },
            Err(overflow) => Step::TermExhausted(overflow),
        };
    }
    if let Holder::Alive { renew: true } = input.holder {
        // A live holder that the controller renews keeps its term, even if its record looks
        // expired (a controller failover that took longer than the pool's lease): nobody else
        // took it, and the conditional write loses if someone did.
        let due = input
            .last_renewal
            .map_or(input.now, |sent| sent + input.timing.retry_period);
        return if input.now >= due {
            Step::Renew
        } else {
            Step::Idle { recheck: Some(due) }
        };
    }
    match core {
        Decision::Create { term } if input.successor => Step::Create { term },
        Decision::Acquire { term } if input.successor => Step::Acquire {
            term,
            cause: if input.record.is_some_and(LeaseRecord::is_released) {
                Cause::Release
            } else {
                Cause::Expiry
            },
        },
        Decision::Wait { until } => Step::Idle {
            recheck: Some(until),
        },
        Decision::TermExhausted(overflow) if input.successor => Step::TermExhausted(overflow),
        // Nobody to name; or a holder's step, which the observer never gets.
        _ => Step::Idle { recheck: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::record::Renewer;

    fn at(secs: u64) -> BootInstant {
        BootInstant::from_since_boot(Duration::from_secs(1000 + secs))
    }

    fn wall(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap()
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
            negative_term: None,
            released_term: None,
            min_hold_until: None,
        }
    }

    fn released(term: u64) -> LeaseRecord {
        let mut r = record(None, Renewer::SelfRenewing, term);
        r.released_term = Some(term);
        r
    }

    struct Case {
        name: &'static str,
        record: Option<LeaseRecord>,
        holder: Holder,
        successor: bool,
        high_water: Option<u64>,
        last_lease_duration: Option<Duration>,
        last_renewal: Option<BootInstant>,
        now: BootInstant,
        expect: Step,
    }

    fn case(name: &'static str, record: Option<LeaseRecord>, holder: Holder) -> Case {
        Case {
            name,
            record,
            holder,
            successor: true,
            high_water: None,
            last_lease_duration: None,
            last_renewal: None,
            now: at(0),
            expect: Step::Idle { recheck: None },
        }
    }

    impl Case {
        fn now(mut self, secs: u64) -> Self {
            self.now = at(secs);
            self
        }
        fn nobody_ready(mut self) -> Self {
            self.successor = false;
            self
        }
        fn high_water(mut self, t: u64) -> Self {
            self.high_water = Some(t);
            self
        }
        fn known_before(mut self, secs: u64) -> Self {
            self.last_lease_duration = Some(Duration::from_secs(secs));
            self
        }
        fn renewed(mut self, secs: u64) -> Self {
            self.last_renewal = Some(at(secs));
            self
        }
        fn expect(mut self, step: Step) -> Self {
            self.expect = step;
            self
        }
    }

    #[test]
    fn steward_table() {
        use Holder::*;
        let held = |renewer| Some(record(Some("a"), renewer, 4));
        let ctl = Renewer::Controller;
        let own = Renewer::SelfRenewing;
        let mut unmanaged = record(Some("x"), own, 1);
        unmanaged.managed = false;
        let mut gated_hold = record(Some("a"), ctl, 4);
        gated_hold.min_hold_until = Some(wall(100));
        let mut gated_hold_over = record(Some("a"), ctl, 4);
        gated_hold_over.min_hold_until = Some(wall(-5));
        let cleared = record(None, own, 4);
        let cases = vec![
            case("a brand-new pool is created at once", None, Vacant)
                .expect(Step::Create { term: 1 }),
            case(
                "a new pool with nobody Ready waits for a change",
                None,
                Vacant,
            )
            .nobody_ready()
            .expect(Step::Idle { recheck: None }),
            case(
                "a deleted Lease is waited out before it is recreated",
                None,
                Vacant,
            )
            .high_water(4)
            .known_before(15)
            .now(14)
            .expect(Step::Idle {
                recheck: Some(at(15)),
            }),
            case(
                "a deleted Lease is recreated above the high-water mark",
                None,
                Vacant,
            )
            .high_water(4)
            .known_before(15)
            .now(15)
            .expect(Step::Create { term: 5 }),
            case(
                "a marked release is acquired at once",
                Some(released(4)),
                Vacant,
            )
            .expect(Step::Acquire {
                term: 5,
                cause: Cause::Release,
            }),
            case(
                "terms continue above the high-water mark",
                Some(released(4)),
                Vacant,
            )
            .high_water(9)
            .expect(Step::Acquire {
                term: 10,
                cause: Cause::Release,
            }),
            case(
                "a holder cleared by hand is waited out",
                Some(cleared.clone()),
                Vacant,
            )
            .now(14)
            .expect(Step::Idle {
                recheck: Some(at(15)),
            }),
            case(
                "a holder cleared by hand is taken after its duration",
                Some(cleared),
                Vacant,
            )
            .now(15)
            .expect(Step::Acquire {
                term: 5,
                cause: Cause::Expiry,
            }),
            case(
                "a Ready controller holder is renewed",
                held(ctl),
                Alive { renew: true },
            )
            .expect(Step::Renew),
            case(
                "renewal waits a retry period after the last one",
                held(ctl),
                Alive { renew: true },
            )
            .renewed(0)
            .now(1)
            .expect(Step::Idle {
                recheck: Some(at(2)),
            }),
            case(
                "renewal is due a retry period after the last one",
                held(ctl),
                Alive { renew: true },
            )
            .renewed(0)
            .now(2)
            .expect(Step::Renew),
            case(
                "a live holder whose record looks expired keeps its term",
                held(ctl),
                Alive { renew: true },
            )
            .now(60)
            .expect(Step::Renew),
            case(
                "a stopped holder is not renewed; the successor waits for expiry",
                held(ctl),
                Stopped,
            )
            .now(14)
            .expect(Step::Idle {
                recheck: Some(at(15)),
            }),
            case("after expiry the successor is named", held(ctl), Stopped)
                .now(15)
                .expect(Step::Acquire {
                    term: 5,
                    cause: Cause::Expiry,
                }),
            case(
                "zen-lead-exec holders are never renewed by the controller",
                held(own),
                Alive { renew: false },
            )
            .now(3)
            .expect(Step::Idle {
                recheck: Some(at(15)),
            }),
            case(
                "an expired zen-lead-exec record goes to the successor",
                held(own),
                Alive { renew: false },
            )
            .now(15)
            .expect(Step::Acquire {
                term: 5,
                cause: Cause::Expiry,
            }),
            case("evidence hands over at once", held(own), Dead).expect(Step::Acquire {
                term: 5,
                cause: Cause::Evidence,
            }),
            case(
                "evidence with nobody Ready releases with the marker",
                held(ctl),
                Dead,
            )
            .nobody_ready()
            .expect(Step::Release { hold: None }),
            case(
                "a finished gated pod's recorded min-hold is honoured",
                Some(gated_hold),
                Dead,
            )
            .expect(Step::Release {
                hold: Some((wall(100), Duration::from_secs(100))),
            }),
            case(
                "a min-hold that has ended releases plainly",
                Some(gated_hold_over),
                Dead,
            )
            .nobody_ready()
            .expect(Step::Release { hold: None }),
            case(
                "evidence never hands over above a negative term",
                held(own).map(|mut r| {
                    r.term = 0;
                    r.negative_term = Some(-1);
                    r
                }),
                Dead,
            )
            .expect(Step::TermExhausted(TermOverflow::Negative(-1))),
            case("a handover past i32::MAX is refused", held(own), Dead)
                .high_water(record::MAX_TERM)
                .expect(Step::TermExhausted(TermOverflow::Above(
                    record::MAX_TERM + 1,
                ))),
            case(
                "an unmanaged Lease is a conflict",
                Some(unmanaged),
                Alive { renew: false },
            )
            .expect(Step::Conflict),
        ];
        for case in cases {
            let input = Input {
                record: case.record.as_ref(),
                first_seen: at(0),
                holder: case.holder,
                successor: case.successor,
                high_water: case.high_water,
                last_lease_duration: case.last_lease_duration,
                last_renewal: case.last_renewal,
                timing: timing(),
                now: case.now,
                wall_now: wall(0),
            };
            assert_eq!(decide(&input), case.expect, "case: {}", case.name);
        }
    }
}
