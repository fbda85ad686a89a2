//! The stop that nothing can delay (docs/PROTOCOL.md §4): a dedicated thread owns the child's
//! deadline, sends the stop signal when leadership ends and SIGKILL after the kill grace.
//!
//! It depends on no log write, no pipe, no API call and no async task: it reads the elector's
//! state with a non-blocking borrow, measures time on CLOCK_BOOTTIME in short sleeps, and sends
//! the signals with plain `kill(2)` calls. It logs only after signalling, and logging itself
//! never blocks (`super::log`). If the async runtime stalls, renewals stop reaching it and it
//! stops the child at the last deadline it saw: the safe side.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::clock::BootInstant;
use crate::lease::LeaderState;

/// Longest sleep between two looks at the state and the clock.
const TICK: Duration = Duration::from_millis(20);

/// How to stop the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopPlan {
    /// The child (leader of its own process group).
    pub pid: Pid,
    /// Send the stop signal to the whole process group.
    pub group: bool,
    /// `--stop-signal`.
    pub stop_signal: Signal,
    /// Time between the stop signal and SIGKILL.
    pub kill_grace: Duration,
}

/// The handle of the stop thread; [`Stopper::disarm`] it once the child has exited.
#[derive(Debug)]
pub struct Stopper {
    disarm: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

/// Where a stop stands, as a pure value (tested without threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Leading: stop at `deadline` unless renewed.
    Leading { deadline: BootInstant },
    /// The stop signal was sent; SIGKILL at `kill_at`.
    Stopping { kill_at: BootInstant },
    /// SIGKILL was sent: nothing left to do.
    Killed,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Nothing,
    SendStop,
    SendKill,
}

/// The next phase and action, given the elector's latest `Leading` deadline (`None` when it
/// leads no more) and the time.
fn step(
    phase: Phase,
    leading: Option<BootInstant>,
    now: BootInstant,
    grace: Duration,
) -> (Phase, Act) {
    match phase {
        Phase::Leading { deadline } => {
            let deadline = leading.map_or(deadline, |d| d.max(deadline));
            if leading.is_some() && now < deadline {
                return (Phase::Leading { deadline }, Act::Nothing);
            }
            // Lost, or the deadline passed: the kill comes a grace after the earlier of the two,
            // never later than the deadline the child ran under allows.
            let kill_at = now.min(deadline) + grace;
            (Phase::Stopping { kill_at }, Act::SendStop)
        }
        Phase::Stopping { kill_at } if now >= kill_at => (Phase::Killed, Act::SendKill),
        other => (other, Act::Nothing),
    }
}

fn leading_deadline(state: &watch::Receiver<LeaderState>) -> Option<BootInstant> {
    match *state.borrow() {
        LeaderState::Leading { deadline, .. } => Some(deadline),
        _ => None,
    }
}

impl Stopper {
    /// Starts the stop thread for a child started under a lease that ends at `deadline` unless
    /// `state` shows a renewal.
    pub fn arm(
        plan: StopPlan,
        state: watch::Receiver<LeaderState>,
        deadline: BootInstant,
    ) -> std::io::Result<Self> {
        let (disarm, disarmed) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("zen-lead-stop".into())
            .spawn(move || run(plan, state, deadline, disarmed))?;
        Ok(Self {
            disarm,
            thread: Some(thread),
        })
    }

    /// Stops the thread: the child has exited, so nothing is left to signal.
    pub fn disarm(mut self) {
        let _ = self.disarm.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    plan: StopPlan,
    state: watch::Receiver<LeaderState>,
    deadline: BootInstant,
    disarmed: mpsc::Receiver<()>,
) {
    let mut phase = Phase::Leading { deadline };
    loop {
        let now = BootInstant::now();
        let (next, act) = step(phase, leading_deadline(&state), now, plan.kill_grace);
        phase = next;
        match act {
            Act::Nothing => {}
            Act::SendStop => {
                let sent = if plan.group {
                    killpg(plan.pid, plan.stop_signal)
                } else {
                    kill(plan.pid, plan.stop_signal)
                };
                // Logged only now that the signal is out.
                tracing::warn!(pid = plan.pid.as_raw(), signal = ?plan.stop_signal, ok = sent.is_ok(), "leading ended; stop signal sent to the child");
            }
            Act::SendKill => {
                let group = killpg(plan.pid, Signal::SIGKILL);
                let child = kill(plan.pid, Signal::SIGKILL);
                tracing::warn!(
                    pid = plan.pid.as_raw(),
                    group_ok = group.is_ok(),
                    child_ok = child.is_ok(),
                    "kill grace passed; SIGKILL sent"
                );
                return;
            }
        }
        let wait = match phase {
            Phase::Leading { deadline } => deadline.remaining().min(TICK),
            Phase::Stopping { kill_at } => kill_at.remaining().min(TICK),
            Phase::Killed => return,
        };
        match disarmed.recv_timeout(wait) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> BootInstant {
        BootInstant::from_since_boot(Duration::from_millis(1_000_000 + ms))
    }

    const GRACE: Duration = Duration::from_millis(3000);

    #[test]
    fn leading_before_the_deadline_does_nothing() {
        let phase = Phase::Leading {
            deadline: at(10_000),
        };
        assert_eq!(
            step(phase, Some(at(10_000)), at(9_999), GRACE),
            (phase, Act::Nothing)
        );
    }

    #[test]
    fn a_renewal_moves_the_deadline() {
        let phase = Phase::Leading {
            deadline: at(10_000),
        };
        let renewed = Phase::Leading {
            deadline: at(12_000),
        };
        assert_eq!(
            step(phase, Some(at(12_000)), at(11_000), GRACE),
            (renewed, Act::Nothing)
        );
    }

    #[test]
    fn the_deadline_passing_sends_the_stop_then_the_kill_a_grace_later() {
        let phase = Phase::Leading {
            deadline: at(10_000),
        };
        let (stopping, act) = step(phase, Some(at(10_000)), at(10_000), GRACE);
        assert_eq!(act, Act::SendStop);
        assert_eq!(
            stopping,
            Phase::Stopping {
                kill_at: at(13_000)
            }
        );
        assert_eq!(
            step(stopping, None, at(12_999), GRACE),
            (stopping, Act::Nothing)
        );
        assert_eq!(
            step(stopping, None, at(13_000), GRACE),
            (Phase::Killed, Act::SendKill)
        );
    }

    #[test]
    fn losing_the_lease_stops_at_once() {
        let phase = Phase::Leading {
            deadline: at(10_000),
        };
        let (stopping, act) = step(phase, None, at(2_000), GRACE);
        assert_eq!(act, Act::SendStop);
        assert_eq!(stopping, Phase::Stopping { kill_at: at(5_000) });
    }

    #[test]
    fn a_stop_noticed_late_still_kills_by_the_deadline_plus_the_grace() {
        // The stop thread itself was held up (the whole wrapper was paused) past the deadline.
        let phase = Phase::Leading {
            deadline: at(10_000),
        };
        let (stopping, act) = step(phase, Some(at(10_000)), at(20_000), GRACE);
        assert_eq!(act, Act::SendStop);
        assert_eq!(
            stopping,
            Phase::Stopping {
                kill_at: at(13_000)
            }
        );
        assert_eq!(step(stopping, None, at(20_000), GRACE).1, Act::SendKill);
    }

    #[test]
    fn the_thread_stops_a_child_even_when_nothing_else_runs() {
        // A real process, signalled by the thread alone: no runtime, no supervisor.
        let child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let pid = Pid::from_raw(child.id() as i32);
        let (tx, rx) = watch::channel(LeaderState::Leading {
            term: 1,
            deadline: BootInstant::now() + Duration::from_millis(200),
        });
        let plan = StopPlan {
            pid,
            group: false,
            stop_signal: Signal::SIGTERM,
            kill_grace: Duration::from_secs(1),
        };
        let stopper =
            Stopper::arm(plan, rx, BootInstant::now() + Duration::from_millis(200)).expect("arm");
        let mut child = child;
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
        stopper.disarm();
        drop(tx);
    }
}
