//! Signals: every catchable signal is turned into an [`Event`] on a channel by one thread
//! (signal-hook's self-pipe), SIGCHLD drives the reaper, and [`forward`] passes the others on
//! to the child or its process group.

use std::sync::Arc;

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use signal_hook::iterator::Signals;
use tokio::sync::mpsc;

use super::reaper::Reaper;

/// What the signal thread reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A signal to act on or forward.
    Signal(Signal),
    /// The main child exited.
    ChildExited(WaitStatus),
    /// A real-time signal (`SIGRTMIN..=SIGRTMAX`, which [`Signal`] cannot name), to forward.
    RealTime(i32),
}

/// Signals the wrapper cannot or must not take over from the kernel: SIGKILL and SIGSTOP cannot
/// be caught, and SIGSEGV/SIGILL/SIGFPE/SIGBUS report a fault of the wrapper itself, which a
/// handler would turn into an endless loop instead of a crash. SIGCHLD is the reaper's.
const NOT_FORWARDED: [Signal; 7] = [
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGSEGV,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGBUS,
    Signal::SIGCHLD,
];

/// The signals forwarded to the child.
pub fn forwarded() -> impl Iterator<Item = Signal> {
    Signal::iterator().filter(|s| !NOT_FORWARDED.contains(s))
}

/// Whether a signal starts the graceful path (forward, keep renewing, release after the child).
pub fn is_termination(signal: Signal) -> bool {
    matches!(signal, Signal::SIGTERM | Signal::SIGINT)
}

/// Failure to take over signal handling.
#[derive(Debug, thiserror::Error)]
pub enum SignalsError {
    /// signal-hook could not register the handlers.
    #[error("cannot install signal handlers")]
    Register(#[source] std::io::Error),
    /// The signal thread could not start.
    #[error("cannot start the signal thread")]
    SpawnThread(#[source] std::io::Error),
}

/// Installs handlers for every forwarded signal and SIGCHLD, and starts the thread that reaps on
/// SIGCHLD and reports events. Reaps once at start, for zombies inherited before the handler.
pub fn install(reaper: Arc<Reaper>) -> Result<mpsc::UnboundedReceiver<Event>, SignalsError> {
    let numbers: Vec<i32> = forwarded()
        .chain(std::iter::once(Signal::SIGCHLD))
        .map(|s| s as i32)
        .chain(real_time())
        .collect();
    let mut signals = Signals::new(&numbers).map_err(SignalsError::Register)?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("zen-lead-signals".into())
        .spawn(move || {
            if let Some(status) = reaper.reap() {
                let _ = tx.send(Event::ChildExited(status));
            }
            for number in signals.forever() {
                let Ok(signal) = Signal::try_from(number) else {
                    if tx.send(Event::RealTime(number)).is_err() {
                        break;
                    }
                    continue;
                };
                if signal == Signal::SIGCHLD {
                    if let Some(status) = reaper.reap() {
                        let _ = tx.send(Event::ChildExited(status));
                    }
                } else if tx.send(Event::Signal(signal)).is_err() {
                    break;
                }
            }
        })
        .map_err(SignalsError::SpawnThread)?;
    Ok(rx)
}

/// Sends `signal` to the child, or to its whole process group (the child leads its own group).
/// A child that is already gone is not an error.
pub fn forward(child: Pid, signal: Signal, group: bool) {
    let result = if group {
        killpg(child, signal)
    } else {
        kill(child, signal)
    };
    match result {
        Ok(()) => tracing::debug!(?signal, pid = child.as_raw(), group, "forwarded signal"),
        Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => {
            tracing::warn!(?signal, pid = child.as_raw(), %error, "cannot forward signal")
        }
    }
}

/// The real-time signal numbers this libc leaves to applications; all are forwarded too.
pub fn real_time() -> std::ops::RangeInclusive<i32> {
    nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX()
}

/// [`forward`] for a real-time signal number.
pub fn forward_real_time(child: Pid, number: i32, group: bool) {
    let target = if group {
        -child.as_raw()
    } else {
        child.as_raw()
    };
    match super::pre_exec::kill_raw(target, number) {
        Ok(()) => tracing::debug!(number, pid = child.as_raw(), group, "forwarded signal"),
        Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => {
            tracing::warn!(number, pid = child.as_raw(), %error, "cannot forward signal")
        }
    }
}

/// SIGKILLs the child's whole process group, so that no descendant runs on without the lease.
pub fn kill_group(child: Pid) {
    match killpg(child, Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pid = child.as_raw(), %error, "cannot kill process group"),
    }
}
