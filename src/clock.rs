//! CLOCK_BOOTTIME instants: the only clock the Lease protocol judges expiry with (docs/PROTOCOL.md §2).
//!
//! `std::time::Instant` and tokio's clock are CLOCK_MONOTONIC, which stops during a VM suspend.
//! A holder that slept through its deadline must notice on wake-up, so every deadline is a
//! [`BootInstant`].

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// A point on CLOCK_BOOTTIME, which keeps counting through suspend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootInstant(Duration);

impl BootInstant {
    /// Now, on CLOCK_BOOTTIME.
    pub fn now() -> Self {
        // CLOCK_BOOTTIME exists on every Linux since 2.6.39; failure would mean no clock at all.
        let ts = clock_gettime(ClockId::CLOCK_BOOTTIME)
            .or_else(|_| clock_gettime(ClockId::CLOCK_MONOTONIC))
            .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
        Self(Duration::from(ts))
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
    fn adding_a_huge_duration_saturates_instead_of_panicking() {
        let far = BootInstant::now() + Duration::MAX;
        assert_eq!(far.since_boot(), Duration::MAX);
        assert!(!far.has_passed());
    }
}
