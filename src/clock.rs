//! CLOCK_BOOTTIME instants: the only clock the Lease protocol judges expiry with (docs/PROTOCOL.md §2).
//!
//! `std::time::Instant` and tokio's clock are CLOCK_MONOTONIC, which stops during a VM suspend.
//! A holder that slept through its deadline must notice on wake-up, so every deadline is a
//! [`BootInstant`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

/// A point on CLOCK_BOOTTIME, which keeps counting through suspend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootInstant(Duration);

/// No deadline can be judged: neither CLOCK_BOOTTIME nor CLOCK_MONOTONIC can be read (a seccomp
/// policy, a broken kernel), or the clock this process chose stopped working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// No clock could be read at the first read.
    #[error(
        "cannot read CLOCK_BOOTTIME ({boottime}) nor CLOCK_MONOTONIC ({monotonic}): no deadline can be judged"
    )]
    Neither {
        /// The error of CLOCK_BOOTTIME.
        boottime: Errno,
        /// The error of CLOCK_MONOTONIC.
        monotonic: Errno,
    },
    /// The clock chosen at the first read failed later. No other clock is read instead: its
    /// instants are not comparable with the ones already taken.
    #[error(
        "cannot read {clock} ({errno}), the clock this process keeps time with: no deadline can be judged"
    )]
    Chosen {
        /// The chosen clock.
        clock: &'static str,
        /// Its error.
        errno: Errno,
    },
}

/// A clock an instant is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Boottime,
    Monotonic,
}

impl Source {
    fn id(self) -> ClockId {
        match self {
            Self::Boottime => ClockId::CLOCK_BOOTTIME,
            Self::Monotonic => ClockId::CLOCK_MONOTONIC,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Boottime => "CLOCK_BOOTTIME",
            Self::Monotonic => "CLOCK_MONOTONIC",
        }
    }
}

/// The clock chosen by the first successful read, for the life of the process.
static CHOSEN: OnceLock<Source> = OnceLock::new();

/// Set once a clock read failed; never cleared.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Whether a clock read has ever failed in this process. A caller that sees it must stop: every
/// instant read since then is [`BootInstant::FAILED`].
pub fn failed() -> bool {
    FAILED.load(Ordering::Relaxed)
}

/// A reading of the `chosen` clock; when none is chosen yet, of BOOTTIME, else MONOTONIC (which
/// stops during suspend, the lesser evil), with the clock it came from. A chosen clock that fails
/// is an error, never a fallback: instants of two clocks must not be compared.
fn from_readings(
    chosen: Option<Source>,
    read: impl Fn(Source) -> Result<TimeSpec, Errno>,
) -> Result<(Source, BootInstant), ClockError> {
    let instant = |ts: TimeSpec| BootInstant(Duration::from(ts));
    if let Some(clock) = chosen {
        return read(clock)
            .map(|ts| (clock, instant(ts)))
            .map_err(|errno| ClockError::Chosen {
                clock: clock.name(),
                errno,
            });
    }
    match read(Source::Boottime) {
        Ok(ts) => Ok((Source::Boottime, instant(ts))),
        Err(boottime) => match read(Source::Monotonic) {
            Ok(ts) => Ok((Source::Monotonic, instant(ts))),
            Err(monotonic) => Err(ClockError::Neither {
                boottime,
                monotonic,
            }),
        },
    }
}

/// Now, on the process's clock, choosing it at the first successful read.
fn read_chosen() -> Result<BootInstant, ClockError> {
    let read = |source: Source| clock_gettime(source.id());
    let (source, instant) = from_readings(CHOSEN.get().copied(), read)?;
    let chosen = *CHOSEN.get_or_init(|| source);
    if chosen == source {
        Ok(instant)
    } else {
        // Another thread chose first, from the other clock.
        from_readings(Some(chosen), read).map(|(_, instant)| instant)
    }
}

impl BootInstant {
    /// What [`BootInstant::now`] returns when no clock can be read: the end of time, so that
    /// every deadline has passed and a holder stops at once. A clock failure never means "the
    /// deadline never passes" (docs/PROTOCOL.md §4). Callers check [`failed`] to stop for good.
    pub const FAILED: Self = Self(Duration::MAX);

    /// Now, on CLOCK_BOOTTIME, or an error when no clock can be read.
    pub fn try_now() -> Result<Self, ClockError> {
        let read = read_chosen();
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

    fn clocks(
        boottime: Result<i64, Errno>,
        monotonic: Result<i64, Errno>,
    ) -> impl Fn(Source) -> Result<TimeSpec, Errno> {
        move |source| {
            match source {
                Source::Boottime => boottime,
                Source::Monotonic => monotonic,
            }
            .map(|secs| TimeSpec::new(secs, 0))
        }
    }

    fn secs(secs: u64) -> BootInstant {
        BootInstant::from_since_boot(Duration::from_secs(secs))
    }

    #[test]
    fn a_clock_that_cannot_be_read_is_an_error_never_zero() {
        let failed = from_readings(None, clocks(Err(Errno::EPERM), Err(Errno::ENOSYS)));
        assert_eq!(
            failed,
            Err(ClockError::Neither {
                boottime: Errno::EPERM,
                monotonic: Errno::ENOSYS
            })
        );
        let monotonic = from_readings(None, clocks(Err(Errno::EINVAL), Ok(5)));
        assert_eq!(monotonic, Ok((Source::Monotonic, secs(5))));
        // What `now()` gives on failure: every deadline, however far, has passed.
        let far_deadline = BootInstant::from_since_boot(Duration::from_secs(1 << 40));
        assert!(BootInstant::FAILED >= far_deadline);
        assert_eq!(
            far_deadline.saturating_duration_since(BootInstant::FAILED),
            Duration::ZERO
        );
    }

    #[test]
    fn the_clock_is_chosen_once_and_never_falls_back() {
        // The first read chooses BOOTTIME when it works ...
        let first = from_readings(None, clocks(Ok(100), Ok(5)));
        assert_eq!(first, Ok((Source::Boottime, secs(100))));
        // ... and a later BOOTTIME failure is an error, not a jump to MONOTONIC.
        let later = from_readings(Some(Source::Boottime), clocks(Err(Errno::EINVAL), Ok(5)));
        assert_eq!(
            later,
            Err(ClockError::Chosen {
                clock: "CLOCK_BOOTTIME",
                errno: Errno::EINVAL
            })
        );
        // A process that chose MONOTONIC stays on it when BOOTTIME comes back.
        let stays = from_readings(Some(Source::Monotonic), clocks(Ok(100), Ok(6)));
        assert_eq!(stays, Ok((Source::Monotonic, secs(6))));
        let message = later.unwrap_err().to_string();
        assert!(message.contains("CLOCK_BOOTTIME"), "{message}");
    }

    #[test]
    fn adding_a_huge_duration_saturates_instead_of_panicking() {
        let far = BootInstant::now() + Duration::MAX;
        assert_eq!(far.since_boot(), Duration::MAX);
        assert!(!far.has_passed());
    }
}
