//! What each candidate told its application, as dense samples, turned into belief intervals,
//! and the longest time two candidates believed they led at once (docs/BENCHMARKS.md, figure 5).
//!
//! A candidate process writes one sample (a CLOCK_MONOTONIC timestamp) every few milliseconds
//! while its library says it leads; for zen-lead, while the wrapped command runs. Consecutive
//! samples closer than a maximum gap form one interval; a longer gap (a paused process, which
//! samples nothing) splits it, so a stopped process is not counted as acting on its belief.

use std::time::Duration;

/// One stretch of consecutive samples of one candidate, in nanoseconds, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// The first sample.
    pub start: u64,
    /// The last sample.
    pub end: u64,
}

/// Groups `samples` (any order) into intervals, splitting where two samples are more than
/// `max_gap` apart.
pub fn intervals(samples: &[u64], max_gap: Duration) -> Vec<Interval> {
    let gap = u64::try_from(max_gap.as_nanos()).unwrap_or(u64::MAX);
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<Interval> = Vec::new();
    for t in sorted {
        match out.last_mut() {
            Some(last) if t - last.end <= gap => last.end = t,
            _ => out.push(Interval { start: t, end: t }),
        }
    }
    out
}

/// When two or more candidates believed they led at the same time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overlap {
    /// The longest contiguous stretch with two or more believers.
    pub longest: Duration,
    /// All such stretches added up.
    pub total: Duration,
    /// Whether two believers were ever observed at one instant (true even when `longest` is
    /// zero: one candidate's single sample inside another's interval).
    pub seen: bool,
}

/// The overlap of several candidates' intervals (one `Vec` per candidate, each candidate's
/// intervals disjoint, as [`intervals`] makes them).
pub fn overlap(candidates: &[Vec<Interval>]) -> Overlap {
    // A sweep over starts (+1) and ends (-1). At equal times starts come first, so intervals
    // that touch, and a single sample inside another interval, count as seen together.
    let mut events: Vec<(u64, i32)> = candidates
        .iter()
        .flatten()
        .flat_map(|i| [(i.start, 1), (i.end, -1)])
        .collect();
    events.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out = Overlap::default();
    let mut believers = 0;
    let mut since = 0;
    for (t, delta) in events {
        let before = believers;
        believers += delta;
        if before < 2 && believers >= 2 {
            since = t;
            out.seen = true;
        } else if before >= 2 && believers < 2 {
            let d = Duration::from_nanos(t - since);
            out.longest = out.longest.max(d);
            out.total += d;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn iv(start_ms: u64, end_ms: u64) -> Interval {
        Interval {
            start: start_ms * MS,
            end: end_ms * MS,
        }
    }

    /// Samples every `step_ms` from `from_ms` to `to_ms` inclusive.
    fn every(step_ms: u64, from_ms: u64, to_ms: u64) -> Vec<u64> {
        (from_ms..=to_ms)
            .step_by(step_ms as usize)
            .map(|t| t * MS)
            .collect()
    }

    #[test]
    fn samples_closer_than_the_gap_form_one_interval() {
        let mut s = every(5, 100, 200);
        s.reverse();
        assert_eq!(intervals(&s, Duration::from_millis(50)), vec![iv(100, 200)]);
    }

    #[test]
    fn a_pause_splits_the_interval() {
        // Sampling stops at 200 ms (SIGSTOP) and resumes at 20 s (SIGCONT) for one sample.
        let mut s = every(5, 100, 200);
        s.push(20_000 * MS);
        assert_eq!(
            intervals(&s, Duration::from_secs(1)),
            vec![iv(100, 200), iv(20_000, 20_000)]
        );
        assert!(intervals(&[], Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn disjoint_believers_do_not_overlap() {
        let o = overlap(&[vec![iv(0, 1000)], vec![iv(1001, 3000)]]);
        assert_eq!(o, Overlap::default());
    }

    #[test]
    fn the_longest_stretch_with_two_believers() {
        // a: 0–10 s and 20–22 s; b: 8–30 s. Two believers 8–10 s and 20–22 s.
        let a = vec![iv(0, 10_000), iv(20_000, 22_000)];
        let b = vec![iv(8_000, 30_000)];
        let o = overlap(&[a, b]);
        assert!(o.seen);
        assert_eq!(o.longest, Duration::from_secs(2));
        assert_eq!(o.total, Duration::from_secs(4));
    }

    #[test]
    fn three_believers_are_one_stretch() {
        // Counts 2 from 5 s, 3 from 6 s to 7 s, still 2 until 9 s.
        let o = overlap(&[
            vec![iv(0, 9_000)],
            vec![iv(5_000, 7_000)],
            vec![iv(6_000, 12_000)],
        ]);
        assert_eq!(o.longest, Duration::from_secs(4));
        assert_eq!(o.total, Duration::from_secs(4));
    }

    #[test]
    fn one_sample_inside_another_interval_is_seen_with_zero_length() {
        // A resumed holder that writes one sample before it is stopped.
        let o = overlap(&[vec![iv(20_000, 20_000)], vec![iv(15_000, 40_000)]]);
        assert!(o.seen);
        assert_eq!(o.longest, Duration::ZERO);
    }

    #[test]
    fn touching_intervals_are_seen() {
        let o = overlap(&[vec![iv(0, 1000)], vec![iv(1000, 2000)]]);
        assert!(o.seen);
        assert_eq!(o.longest, Duration::ZERO);
    }
}
