//! The line protocol between the benchmark and its candidate processes.
//!
//! A candidate writes on stdout: `ready` once it is set up and waits for `go`; `S <term>
//! <nanos>` for each belief sample (it leads, by what its library tells it; term `-1` when the
//! library hands no term to its application; nanos on CLOCK_MONOTONIC, shared by every process
//! of the machine); `released` once a requested release is done. It reads `go` and `release`
//! on stdin and exits when stdin closes. The Python candidate speaks the same lines.

use std::io::Write as _;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// How often a leading candidate writes a sample.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// A line from a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Set up; waits for `go`.
    Ready,
    /// It leads at `at` (CLOCK_MONOTONIC nanoseconds), with `term` if the library gave one.
    Sample {
        /// The term the application was given, if any.
        term: Option<i64>,
        /// When.
        at: u64,
    },
    /// The release it was asked for is done.
    Released,
}

impl Line {
    /// Parses one line; `None` for anything else (a library's own output).
    pub fn parse(line: &str) -> Option<Line> {
        let mut words = line.split_whitespace();
        match words.next()? {
            "ready" => Some(Line::Ready),
            "released" => Some(Line::Released),
            "S" => {
                let term: i64 = words.next()?.parse().ok()?;
                let at = words.next()?.parse().ok()?;
                Some(Line::Sample {
                    term: (term >= 0).then_some(term),
                    at,
                })
            }
            _ => None,
        }
    }
}

/// Nanoseconds on CLOCK_MONOTONIC.
pub fn now_nanos() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Writes one line to stdout at once; a closed stdout (the benchmark is gone) ends the process.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Writes a sample taken now.
pub fn emit_sample(term: Option<i64>) {
    emit(&format!("S {} {}", term.unwrap_or(-1), now_nanos()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        assert_eq!(Line::parse("ready"), Some(Line::Ready));
        assert_eq!(Line::parse("released\n"), Some(Line::Released));
        assert_eq!(
            Line::parse("S 7 123456789"),
            Some(Line::Sample {
                term: Some(7),
                at: 123_456_789
            })
        );
        assert_eq!(
            Line::parse("S -1 5"),
            Some(Line::Sample { term: None, at: 5 })
        );
        assert_eq!(Line::parse("S x 5"), None);
        assert_eq!(Line::parse("INFO leader elected"), None);
        assert_eq!(Line::parse(""), None);
    }
}
