//! Timing rules (docs/API.md and docs/PROTOCOL.md §4), checked before anything runs.
//!
//! Pure functions over plain durations: `zen-lead-exec` checks its flags with the kill grace,
//! the controller checks a `LeaderPolicy` spec without one.

use std::time::Duration;

use crate::lease::Timing;

/// Default `leaseDuration` (docs/API.md).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Default `renewDeadline` (docs/API.md).
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Default `retryPeriod` (docs/API.md).
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// Shortest allowed `leaseDuration`.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(1);
/// Longest allowed `leaseDuration`.
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(3600);

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }
}

/// A duration shown the way it is written on the command line (`15s`, `500ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown(pub Duration);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A timing combination that the Lease protocol cannot run safely. Each message is one line
/// that says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// `leaseDuration` outside 1 s..=3600 s.
    #[error("--lease-duration ({lease}) must be between 1s and 1h (3600s)")]
    LeaseDurationOutOfRange {
        /// The given lease duration.
        lease: Shown,
    },
    /// `retryPeriod` is zero.
    #[error("--retry-period must be greater than zero")]
    RetryPeriodZero,
    /// `renewDeadline` is not below `leaseDuration`.
    #[error(
        "--renew-deadline ({renew}) must be less than --lease-duration ({lease}): lower the renew deadline or raise the lease duration"
    )]
    RenewDeadlineNotBelowLease {
        /// The given renew deadline.
        renew: Shown,
        /// The given lease duration.
        lease: Shown,
    },
    /// `renewDeadline` is not above 1.2 × `retryPeriod`, so a single slow retry could miss it.
    #[error(
        "--renew-deadline ({renew}) must be greater than 1.2 x --retry-period ({retry}): raise the renew deadline or lower the retry period"
    )]
    RenewDeadlineTooShortForRetry {
        /// The given renew deadline.
        renew: Shown,
        /// The given retry period.
        retry: Shown,
    },
    /// `renewDeadline + killGrace` is not below `leaseDuration`: the old child could still run
    /// when another candidate may start (docs/PROTOCOL.md §4).
    #[error(
        "--renew-deadline ({renew}) plus --kill-grace ({grace}) must be less than --lease-duration ({lease}): lower one of the first two or raise the lease duration"
    )]
    KillGraceTooLong {
        /// The given renew deadline.
        renew: Shown,
        /// The given kill grace.
        grace: Shown,
        /// The given lease duration.
        lease: Shown,
    },
}

impl TimingError {
    /// The same rule phrased with `LeaderPolicy` spec field names, for a status condition.
    pub fn spec_message(&self) -> String {
        self.message_with(&Names {
            lease_duration: "leaseDurationSeconds",
            renew_deadline: "renewDeadlineSeconds",
            retry_period: "retryPeriodSeconds",
            kill_grace: "killGrace",
        })
    }

    /// The same rule with each value named where it came from (a flag, a `LeaderPolicy` field,
    /// a default), so that the message never names a flag the user did not pass.
    pub fn message_with(&self, names: &Names<'_>) -> String {
        self.to_string()
            .replace("--lease-duration", names.lease_duration)
            .replace("--renew-deadline", names.renew_deadline)
            .replace("--retry-period", names.retry_period)
            .replace("--kill-grace", names.kill_grace)
    }
}

/// How [`TimingError::message_with`] names each value.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    /// The lease duration.
    pub lease_duration: &'a str,
    /// The renew deadline.
    pub renew_deadline: &'a str,
    /// The retry period.
    pub retry_period: &'a str,
    /// The kill grace.
    pub kill_grace: &'a str,
}

/// The kill grace to use when none is given: `default`, or half of `leaseDuration −
/// renewDeadline` where `default` would break `renewDeadline + killGrace < leaseDuration`
/// (docs/EXEC.md `--kill-grace`). Returns it and whether it shrank.
pub fn default_kill_grace(
    lease_duration: Duration,
    renew_deadline: Duration,
    default: Duration,
) -> (Duration, bool) {
    if renew_deadline.saturating_add(default) < lease_duration {
        (default, false)
    } else {
        (lease_duration.saturating_sub(renew_deadline) / 2, true)
    }
}

/// Checks the timings of a pool without a kill grace (the controller, a `LeaderPolicy` spec).
pub fn validate(
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
) -> Result<Timing, TimingError> {
    if !(MIN_LEASE_DURATION..=MAX_LEASE_DURATION).contains(&lease_duration) {
        return Err(TimingError::LeaseDurationOutOfRange {
            lease: Shown(lease_duration),
        });
    }
    if retry_period.is_zero() {
        return Err(TimingError::RetryPeriodZero);
    }
    if renew_deadline >= lease_duration {
        return Err(TimingError::RenewDeadlineNotBelowLease {
            renew: Shown(renew_deadline),
            lease: Shown(lease_duration),
        });
    }
    // Integer comparison (5 × renew > 6 × retry) avoids float rounding at the boundary.
    if renew_deadline.as_nanos() * 5 <= retry_period.as_nanos() * 6 {
        return Err(TimingError::RenewDeadlineTooShortForRetry {
            renew: Shown(renew_deadline),
            retry: Shown(retry_period),
        });
    }
    Ok(Timing {
        lease_duration,
        renew_deadline,
        retry_period,
    })
}

/// Checks the timings of a wrapper that stops its child with `kill_grace` after losing the
/// lease: on top of [`validate`], `renewDeadline + killGrace < leaseDuration` (docs/PROTOCOL.md §4).
pub fn validate_with_kill_grace(
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    kill_grace: Duration,
) -> Result<Timing, TimingError> {
    let timing = validate(lease_duration, renew_deadline, retry_period)?;
    if renew_deadline.saturating_add(kill_grace) >= lease_duration {
        return Err(TimingError::KillGraceTooLong {
            renew: Shown(renew_deadline),
            grace: Shown(kill_grace),
            lease: Shown(lease_duration),
        });
    }
    Ok(timing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }
    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn defaults_are_valid() {
        let d = Timing::default();
        assert_eq!(
            validate(d.lease_duration, d.renew_deadline, d.retry_period),
            Ok(d)
        );
        assert_eq!(
            d,
            Timing {
                lease_duration: s(15),
                renew_deadline: s(10),
                retry_period: s(2)
            }
        );
    }

    #[test]
    fn table() {
        use TimingError as E;
        type Case = (
            Duration,
            Duration,
            Duration,
            Option<Duration>,
            Option<fn(&E) -> bool>,
        );
        let cases: Vec<Case> = vec![
            (s(15), s(10), s(2), None, None),
            (s(15), s(10), s(2), Some(s(4)), None),
            (
                s(15),
                s(10),
                s(2),
                Some(s(5)),
                Some(|e| matches!(e, E::KillGraceTooLong { .. })),
            ),
            (
                s(15),
                s(10),
                s(2),
                Some(s(6)),
                Some(|e| matches!(e, E::KillGraceTooLong { .. })),
            ),
            (s(1), ms(500), ms(100), None, None),
            (
                ms(999),
                ms(500),
                ms(100),
                None,
                Some(|e| matches!(e, E::LeaseDurationOutOfRange { .. })),
            ),
            (s(3600), s(10), s(2), None, None),
            (
                s(3601),
                s(10),
                s(2),
                None,
                Some(|e| matches!(e, E::LeaseDurationOutOfRange { .. })),
            ),
            (
                s(15),
                s(15),
                s(2),
                None,
                Some(|e| matches!(e, E::RenewDeadlineNotBelowLease { .. })),
            ),
            (
                s(15),
                s(20),
                s(2),
                None,
                Some(|e| matches!(e, E::RenewDeadlineNotBelowLease { .. })),
            ),
            // Exactly 1.2 × retry is not enough: the rule is strictly greater.
            (
                s(15),
                ms(2400),
                s(2),
                None,
                Some(|e| matches!(e, E::RenewDeadlineTooShortForRetry { .. })),
            ),
            (s(15), ms(2401), s(2), None, None),
            (
                s(15),
                s(10),
                Duration::ZERO,
                None,
                Some(|e| matches!(e, E::RetryPeriodZero)),
            ),
        ];
        for (i, (lease, renew, retry, grace, expected)) in cases.into_iter().enumerate() {
            let got = match grace {
                Some(g) => validate_with_kill_grace(lease, renew, retry, g),
                None => validate(lease, renew, retry),
            };
            match (got, expected) {
                (Ok(t), None) => assert_eq!(
                    (t.lease_duration, t.renew_deadline, t.retry_period),
                    (lease, renew, retry),
                    "case {i}"
                ),
                (Err(e), Some(is)) => assert!(is(&e), "case {i}: unexpected error {e}"),
                (got, _) => panic!("case {i}: unexpected result {got:?}"),
            }
        }
    }

    #[test]
    fn the_default_kill_grace_shrinks_to_fit_fast_timings() {
        // 15/10: the 3s default fits.
        assert_eq!(default_kill_grace(s(15), s(10), s(3)), (s(3), false));
        // 10/7 and the CRD-valid 6/4: half the gap.
        assert_eq!(default_kill_grace(s(10), s(7), s(3)), (ms(1500), true));
        assert_eq!(default_kill_grace(s(6), s(4), s(3)), (s(1), true));
        for (lease, renew, retry) in [
            (s(10), s(7), s(2)),
            (s(6), s(4), s(1)),
            (s(15), s(10), s(2)),
        ] {
            let (grace, _) = default_kill_grace(lease, renew, s(3));
            assert!(
                validate_with_kill_grace(lease, renew, retry, grace).is_ok(),
                "{lease:?}/{renew:?}/{retry:?} with {grace:?}"
            );
        }
    }

    #[test]
    fn messages_say_what_to_fix() {
        let err = validate_with_kill_grace(s(15), s(10), s(2), s(6)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--renew-deadline (10s) plus --kill-grace (6s) must be less than --lease-duration (15s): lower one of the first two or raise the lease duration"
        );
        let err = validate(s(15), ms(2000), ms(2000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--renew-deadline (2s) must be greater than 1.2 x --retry-period (2s): raise the renew deadline or lower the retry period"
        );
        let err = validate(s(0), ms(500), ms(100)).unwrap_err();
        assert!(!err.to_string().contains('\n'));
        let err = validate(s(15), s(15), s(2)).unwrap_err();
        assert_eq!(
            err.spec_message(),
            "renewDeadlineSeconds (15s) must be less than leaseDurationSeconds (15s): lower the renew deadline or raise the lease duration"
        );
    }
}
