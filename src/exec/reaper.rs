//! The one reaper: a `waitpid(-1, WNOHANG)` loop, run on every SIGCHLD, that reaps every zombie
//! (orphaned grandchildren included) and records the main child's status.

use std::process::Child;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Reaps children and recognises the main one.
#[derive(Debug, Default)]
pub struct Reaper {
    /// The main child's pid. Held locked across spawning it, so that a SIGCHLD that arrives
    /// before the pid is known cannot reap the child unrecognised, and std's own `waitpid` of a
    /// child whose exec failed does not race this loop.
    main: Mutex<Option<Pid>>,
}

/// Why the wrapper could not become a subreaper.
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    /// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
    #[error("cannot become a child subreaper")]
    SetSubreaper(#[source] Errno),
}

impl Reaper {
    /// A reaper with no main child yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Pid>> {
        // The guarded value is a plain pid: a panic elsewhere cannot leave it inconsistent.
        self.main.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes orphaned descendants re-parent to this process when it is not PID 1 (PID 1 gets
    /// them anyway). Returns whether it set the flag.
    pub fn become_subreaper() -> Result<bool, ReaperError> {
        if nix::unistd::getpid().as_raw() == 1 {
            return Ok(false);
        }
        nix::sys::prctl::set_child_subreaper(true).map_err(ReaperError::SetSubreaper)?;
        Ok(true)
    }

    /// Spawns the main child with `spawn` while no reaping can happen, and records its pid.
    pub fn spawn_main(
        &self,
        spawn: impl FnOnce() -> std::io::Result<Child>,
    ) -> std::io::Result<Pid> {
        let mut main = self.lock();
        let child = spawn()?;
        // std's `Child` is dropped without waiting: this reaper is the only one that waits.
        let pid = Pid::from_raw(child.id() as i32);
        *main = Some(pid);
        Ok(pid)
    }

    /// Reaps every exited child. Returns the main child's status if it was among them.
    pub fn reap(&self) -> Option<WaitStatus> {
        let mut main = self.lock();
        let mut main_status = None;
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(status) => {
                    let pid = status.pid();
                    tracing::debug!(?pid, ?status, "reaped");
                    if pid.is_some() && pid == *main {
                        *main = None;
                        main_status = Some(status);
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(error) => {
                    tracing::warn!(%error, "waitpid failed");
                    break;
                }
            }
        }
        main_status
    }
}
