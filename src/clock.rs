//! CLOCK_BOOTTIME instants: the only clock the Lease protocol judges expiry with (docs/PROTOCOL.md §2).
//!
//! `std::time::Instant` and tokio's clock are CLOCK_MONOTONIC, which stops during a VM suspend.
//! A holder that slept through its deadline must notice on wake-up, so every deadline is a
//! [`BootInstant`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

/// A point on CLOCK_BOOTTIME, which keeps counting through suspend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootInstant(Duration);

/// Neither CLOCK_BOOTTIME nor CLOCK_MONOTONIC can be read (a seccomp policy, a broken kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot read CLOCK_BOOTTIME ({boottime}) nor CLOCK_MONOTONIC ({monotonic}): no deadline can be judged"
)]
pub struct ClockError {
    /// The error of CLOCK_BOOTTIME.
    pub boottime: Errno,
    /// The error of CLOCK_MONOTONIC.
    pub monotonic: Errno,
}

/// Set once a clock read failed; never cleared.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Whether a clock read has ever failed in this process. A caller that sees it must stop: every
/// instant read since then is [`BootInstant::FAILED`].
pub fn failed() -> bool {
    FAILED.load(Ordering::Relaxed)
}

/// The instant from two readings: BOOTTIME, else MONOTONIC (which stops during suspend, the
/// lesser evil), else an error.
fn from_readings(
    boottime: Result<TimeSpec, Errno>,
    monotonic: impl FnOnce() -> Result<TimeSpec, Errno>,
) -> Result<BootInstant, ClockError> {
    match boottime {
        Ok(ts) => Ok(BootInstant(Duration::from(ts))),
        Err(boottime) => match monotonic() {
            Ok(ts) => Ok(BootInstant(Duration::from(ts))),
            Err(monotonic) => Err(ClockError {
                boottime,
                monotonic,
            }),
        },
    }
}

impl BootInstant {
    /// What [`BootInstant::now`] returns when no clock can be read: the end of time, so that
    /// every deadline has passed and a holder stops at once. A clock failure never means "the
    /// deadline never passes" (docs/PROTOCOL.md §4). Callers check [`failed`] to stop for good.
    pub const FAILED: Self = Self(Duration::MAX);

    /// Now, on CLOCK_BOOTTIME, or an error when no clock can be read.
    pub fn try_now() -> Result<Self, ClockError> {
        let read = from_readings(clock_gettime(ClockId::CLOCK_BOOTTIME), || {
            clock_gettime(ClockId::CLOCK_MONOTONIC)
        });
        if read.is_err() {
            FAILED.store(true, Ordering::Relaxed);
        }
        read
    }

    /// Now, on CLOCK_BOOTTIME; [`BootInstant::FAILED`] when no clock can be read.
    pub fn now() -> Self {
        Self::try_now().unwrap_or(Self::FAILED)
    }

    /// An instant from a raw offset since boot (for tests of pure logic).
    pub const fn from_since_boot(since_boot: Duration) -> Self {
        Self(since_boot)
    }

    /// Time since boot.
    pub const fn since_boot(self) -> Duration {
        self.0
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// Time left until `self`, measured from now; zero if past.
    pub fn remaining(self) -> Duration {
        self.saturating_duration_since(Self::now())
    }

    /// Whether `self` is in the past.
    pub fn has_passed(self) -> bool {
        Self::now() >= self
    }
}

impl std::ops::Add<Duration> for BootInstant {
    type Output = Self;
    fn add(self, rhs: Duration) -> Self {
        // Saturating: a user-given duration (`--min-hold 500000000000y`) must not panic.
        Self(self.0.saturating_add(rhs))
    }
}

impl std::ops::Sub<Duration> for BootInstant {
    type Output = Self;
    fn sub(self, rhs: Duration) -> Self {
        Self(self.0.saturating_sub(rhs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_that_cannot_be_read_is_an_error_never_zero() {
        let failed = from_readings(Err(Errno::EPERM), || Err(Errno::ENOSYS));
        assert_eq!(
            failed,
            Err(ClockError {
                boottime: Errno::EPERM,
                monotonic: Errno::ENOSYS
            })
        );
        let monotonic = from_readings(Err(Errno::EINVAL), || Ok(TimeSpec::new(5, 0)));
        assert_eq!(
            monotonic,
            Ok(BootInstant::from_since_boot(Duration::from_secs(5)))
        );
        // What `now()` gives on failure: every deadline, however far, has passed.
        let far_deadline = BootInstant::from_since_boot(Duration::from_secs(1 << 40));
        assert!(BootInstant::FAILED >= far_deadline);
        assert_eq!(
            far_deadline.saturating_duration_since(BootInstant::FAILED),
            Duration::ZERO
        );
    }

    #[test]
    fn adding_a_huge_duration_saturates_instead_of_panicking() {
        let far = BootInstant::now() + Duration::MAX;
        assert_eq!(far.since_boot(), Duration::MAX);
        assert!(!far.has_passed());
    }
}
