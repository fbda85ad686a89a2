//! Terms (fencing tokens) from a Lease's history: every acquisition and whether its term
//! repeated or went backwards (docs/BENCHMARKS.md, figure 5).
//!
//! The term is the Lease's `spec.leaseTransitions` when a new holder appears: the one number
//! every library writes (or leaves) in the shared record, and the token an application can
//! fence with. zen-lead hands the same number to its command as `ZEN_LEAD_TERM`.

/// One observed state of a pool's Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The Lease as written (created or changed).
    Record {
        /// `spec.holderIdentity`; `None` or empty when free.
        holder: Option<String>,
        /// `spec.leaseTransitions`; `None` when the field is absent.
        transitions: Option<i32>,
    },
    /// The Lease was deleted.
    Deleted,
}

/// A holder taking the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquisition {
    /// The new holder.
    pub holder: String,
    /// Its term: `leaseTransitions`, absent counted as 0.
    pub term: i64,
}

/// The acquisitions in `history`: each record whose holder is set and differs from the holder
/// before it (a freed, deleted or never-seen Lease has no holder). The term is the last
/// `leaseTransitions` recorded while that holder keeps the Lease, so a library that writes
/// the holder and the new term in two steps is judged by the term it settles on.
pub fn acquisitions(history: &[LeaseEvent]) -> Vec<Acquisition> {
    let mut out: Vec<Acquisition> = Vec::new();
    let mut current: Option<&str> = None;
    for event in history {
        match event {
            LeaseEvent::Deleted => current = None,
            LeaseEvent::Record {
                holder,
                transitions,
            } => {
                let holder = holder.as_deref().filter(|h| !h.is_empty());
                let term = i64::from(transitions.unwrap_or(0));
                match (holder, out.last_mut()) {
                    (Some(h), Some(last)) if current == Some(h) => last.term = term,
                    (Some(h), _) => out.push(Acquisition {
                        holder: h.to_string(),
                        term,
                    }),
                    (None, _) => {}
                }
                current = holder;
            }
        }
    }
    out
}

/// What the terms of a sequence of acquisitions did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TermCheck {
    /// Acquisitions seen.
    pub acquisitions: usize,
    /// Acquisitions whose term equals the highest term before it.
    pub repeated: usize,
    /// Acquisitions whose term is lower than the highest term before it.
    pub backwards: usize,
}

impl TermCheck {
    /// Repeated plus backwards: terms that did not fence off every earlier holder.
    pub fn bad(&self) -> usize {
        self.repeated + self.backwards
    }

    /// Adds another check's counts.
    pub fn add(&mut self, other: TermCheck) {
        self.acquisitions += other.acquisitions;
        self.repeated += other.repeated;
        self.backwards += other.backwards;
    }
}

/// Checks that every acquisition's term is higher than every term before it.
pub fn check(acquisitions: &[Acquisition]) -> TermCheck {
    let mut out = TermCheck {
        acquisitions: acquisitions.len(),
        ..TermCheck::default()
    };
    let mut highest: Option<i64> = None;
    for a in acquisitions {
        match highest {
            Some(h) if a.term == h => out.repeated += 1,
            Some(h) if a.term < h => out.backwards += 1,
            _ => {}
        }
        highest = Some(highest.map_or(a.term, |h| h.max(a.term)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: &str, transitions: Option<i32>) -> LeaseEvent {
        LeaseEvent::Record {
            holder: Some(holder.to_string()),
            transitions,
        }
    }

    fn acq(holder: &str, term: i64) -> Acquisition {
        Acquisition {
            holder: holder.to_string(),
            term,
        }
    }

    #[test]
    fn renewals_are_not_acquisitions() {
        let h = [
            rec("a", Some(1)),
            rec("a", Some(1)),
            rec("", Some(1)),
            rec("b", Some(2)),
            rec("b", Some(2)),
        ];
        assert_eq!(acquisitions(&h), vec![acq("a", 1), acq("b", 2)]);
        assert_eq!(
            check(&acquisitions(&h)),
            TermCheck {
                acquisitions: 2,
                repeated: 0,
                backwards: 0
            }
        );
    }

    #[test]
    fn two_writers_of_the_same_term_repeat_it() {
        // Both read leaseTransitions 5 from an expired record and wrote 6.
        let h = [rec("ghost", Some(5)), rec("a", Some(6)), rec("b", Some(6))];
        let c = check(&acquisitions(&h));
        assert_eq!(c.repeated, 1);
        assert_eq!(c.backwards, 0);
        assert_eq!(c.bad(), 1);
    }

    #[test]
    fn a_recreated_lease_goes_backwards() {
        let h = [
            rec("a", Some(3)),
            LeaseEvent::Deleted,
            rec("a", Some(0)),
            rec("b", Some(1)),
        ];
        let got = acquisitions(&h);
        assert_eq!(got, vec![acq("a", 3), acq("a", 0), acq("b", 1)]);
        let c = check(&got);
        assert_eq!((c.repeated, c.backwards), (0, 2));
    }

    #[test]
    fn a_term_written_after_the_holder_counts() {
        // The holder first, then leaseTransitions in a second write.
        let h = [
            rec("ghost", Some(5)),
            rec("a", Some(5)),
            rec("a", Some(6)),
            rec("a", Some(6)),
        ];
        let got = acquisitions(&h);
        assert_eq!(got, vec![acq("ghost", 5), acq("a", 6)]);
        assert_eq!(check(&got).bad(), 0);
    }

    #[test]
    fn a_missing_field_counts_as_zero_and_repeats() {
        // A library that never writes leaseTransitions.
        let h = [
            rec("a", None),
            LeaseEvent::Record {
                holder: None,
                transitions: None,
            },
            rec("b", None),
            rec("a", None),
        ];
        let c = check(&acquisitions(&h));
        assert_eq!(c.acquisitions, 3);
        assert_eq!((c.repeated, c.backwards), (2, 0));
    }

    #[test]
    fn a_term_that_climbs_back_below_the_high_water_mark_still_counts() {
        let c = check(&[acq("a", 5), acq("b", 1), acq("c", 2), acq("d", 6)]);
        assert_eq!((c.repeated, c.backwards), (0, 2));
        assert!(check(&[]).bad() == 0);
    }
}
