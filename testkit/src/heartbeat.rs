//! The single-active checker: a child under `zen-lead-exec` appends
//! `TERM,start|beat|stop,NANOS,IDENTITY` lines to a shared file, and no two terms' intervals may
//! interleave. Used by the demo and by the election tests.

use std::collections::BTreeMap;

/// The heartbeat child: appends its records to the file named by `$HB`; SIGTERM ends it cleanly.
pub const SCRIPT: &str = r#"#!/bin/sh
hb() { echo "$ZEN_LEAD_TERM,$1,$(date +%s%N),$ZEN_LEAD_IDENTITY" >> "$HB"; }
hb start
trap 'hb stop; exit 0' TERM INT
while :; do hb beat; sleep 0.1 & wait $!; done
"#;

/// One term's interval as recorded by its child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// The term (`ZEN_LEAD_TERM`).
    pub term: u64,
    /// The replica that ran it.
    pub identity: String,
    /// Its first record, in nanoseconds since the epoch.
    pub first: u128,
    /// Its last record.
    pub last: u128,
}

/// Why a heartbeat file fails the check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A line that is not `TERM,KIND,NANOS[,IDENTITY]`.
    #[error("bad heartbeat line {0:?}")]
    BadLine(String),
    /// One term recorded by two replicas.
    #[error("term {term} ran under two identities: {first} and {second}")]
    TwoIdentities {
        /// The term.
        term: u64,
        /// The identity seen first.
        first: String,
        /// The other one.
        second: String,
    },
    /// A later term started before an earlier one's last record: two leaders ran at once.
    #[error(
        "terms interleave: term {} ({}) ran {}..{} and term {} ({}) started at {}",
        earlier.term, earlier.identity, earlier.first, earlier.last,
        later.term, later.identity, later.first
    )]
    Interleave {
        /// The earlier term.
        earlier: Interval,
        /// The term that started too soon.
        later: Interval,
    },
}

/// Parses a heartbeat file into per-term intervals, in term order.
pub fn intervals(text: &str) -> Result<Vec<Interval>, CheckError> {
    let mut by_term: BTreeMap<u64, Interval> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = || CheckError::BadLine(line.to_owned());
        let parts: Vec<&str> = line.split(',').collect();
        let [term, _kind, at, rest @ ..] = parts.as_slice() else {
            return Err(bad());
        };
        let term: u64 = term.parse().map_err(|_| bad())?;
        let at: u128 = at.parse().map_err(|_| bad())?;
        let identity = rest.first().copied().unwrap_or("").to_owned();
        let entry = by_term.entry(term).or_insert_with(|| Interval {
            term,
            identity: identity.clone(),
            first: at,
            last: at,
        });
        if entry.identity != identity {
            return Err(CheckError::TwoIdentities {
                term,
                first: entry.identity.clone(),
                second: identity,
            });
        }
        entry.first = entry.first.min(at);
        entry.last = entry.last.max(at);
    }
    Ok(by_term.into_values().collect())
}

/// The single-active check: each term starts only after the previous term's last record.
/// Returns the intervals in term order.
pub fn check_single_active(text: &str) -> Result<Vec<Interval>, CheckError> {
    let all = intervals(text)?;
    if let Some(pair) = all.windows(2).find(|pair| pair[1].first <= pair[0].last) {
        return Err(CheckError::Interleave {
            earlier: pair[0].clone(),
            later: pair[1].clone(),
        });
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_are_errors() {
        for line in ["3,start", "x,start,100,a", "3,start,soon,a"] {
            assert!(
                matches!(intervals(line), Err(CheckError::BadLine(_))),
                "{line}"
            );
        }
    }
}
