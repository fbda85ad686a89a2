//! The one reaper: a `waitpid(-1, WNOHANG)` loop, run on every SIGCHLD, that reaps every zombie
//! (orphaned grandchildren included) and records the main child's status.

use std::process::Child;
use std::sync::{Mutex, MutexGuard, PoisonError};

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
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

/// Longest wait for leftover descendants to die after SIGKILL (a process in uninterruptible
/// sleep dies only when it wakes).
const LEFTOVER_WAIT: Duration = Duration::from_secs(5);

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: i32,
    ppid: i32,
    state: char,
}

/// Every process in `/proc`, numbered as that `/proc` numbers them.
fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may contain spaces and parentheses: fields follow the last ')'.
            let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some(Proc { pid, ppid, state })
        })
        .collect()
}

/// The descendants of `root` that still run: zombies and dead entries run nothing, but their
/// children (re-parented soon) still count.
fn live_descendants(procs: &[Proc], root: i32) -> Vec<i32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(procs.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    let running = |pid: &i32| {
        procs
            .iter()
            .any(|p| p.pid == *pid && !matches!(p.state, 'Z' | 'X' | 'x'))
    };
    found.into_iter().skip(1).filter(running).collect()
}

/// What [`kill_leftovers`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leftovers {
    /// Whether any descendant was left behind and SIGKILLed.
    pub killed: bool,
    /// Descendants still running when the wait ran out (stuck in uninterruptible sleep, or
    /// not ours to signal): the term's work cannot be confirmed gone.
    pub surviving: Vec<i32>,
}

/// SIGKILLs every process the child left behind (daemons that left its process group included,
/// since orphans re-parent to this PID 1 or subreaper) and waits, up to a bound, until none
/// runs: nothing started under the lease may outlive it.
pub async fn kill_leftovers() -> Leftovers {
    let until = std::time::Instant::now() + LEFTOVER_WAIT;
    let me = nix::unistd::getpid();
    // Pids in `/proc` are those of the namespace that mounted it; when that is not ours they
    // cannot be signalled safely.
    let proc_self = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<i32>().ok());
    if proc_self != Some(me.as_raw()) {
        if me.as_raw() != 1 {
            // Unlisted is not confirmed gone (docs/PROTOCOL.md §5): only having no child at all
            // says that no descendant runs, since every orphan re-parents to this subreaper.
            tracing::debug!(
                "/proc is not of this PID namespace; leftover descendants judged by our children"
            );
            return unlisted(children, until).await;
        }
        // The init of a PID namespace without its own /proc: kill(-1) reaches every other
        // process in it. It succeeds while any is left, zombies included, until reaped.
        let mut killed = false;
        loop {
            if kill(Pid::from_raw(-1), Signal::SIGKILL).is_err() {
                return Leftovers {
                    killed,
                    surviving: Vec::new(),
                };
            }
            killed = true;
            if std::time::Instant::now() >= until {
                // Which pids is unknown without /proc; -1 stands for "some".
                return Leftovers {
                    killed,
                    surviving: vec![-1],
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Descendants only: a process that entered the namespace from outside (`kubectl exec`) is
    // not the child's and is left alone.
    sweep(
        || live_descendants(&processes(), me.as_raw()),
        |pid| kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok(),
        until,
    )
    .await
}

/// What this process's children are, seen without reaping any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Children {
    /// No child at all: no descendant runs, as orphans re-parent to this subreaper.
    None,
    /// Only children that have exited and wait to be reaped (by the signal thread).
    Exited,
    /// At least one child still runs.
    Running,
}

/// Looks at this process's children with `waitid(WNOWAIT)`, which reaps nothing: the signal
/// thread stays the only reaper.
fn children() -> Children {
    use nix::sys::wait::{Id, waitid};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::All, flags) {
            Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => return Children::None,
            // An error cannot tell: as good as running.
            Ok(WaitStatus::StillAlive) | Err(_) => return Children::Running,
            Ok(_) => return Children::Exited,
        }
    }
}

/// The leftovers when they cannot be listed: none once no child is left (exited ones are being
/// reaped), else unknown survivors (`-1`) when `until` passes.
async fn unlisted(look: impl Fn() -> Children, until: std::time::Instant) -> Leftovers {
    loop {
        if look() == Children::None {
            return Leftovers::default();
        }
        if std::time::Instant::now() >= until {
            return Leftovers {
                killed: false,
                surviving: vec![-1],
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGKILLs what `left` lists until it lists nothing, or `until` passes.
async fn sweep(
    left: impl Fn() -> Vec<i32>,
    kill: impl Fn(i32) -> bool,
    until: std::time::Instant,
) -> Leftovers {
    let mut killed = false;
    loop {
        let surviving = left();
        if surviving.is_empty() || std::time::Instant::now() >= until {
            return Leftovers { killed, surviving };
        }
        for pid in surviving {
            killed |= kill(pid);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, state: char) -> Proc {
        Proc { pid, ppid, state }
    }

    #[test]
    fn leftovers_are_live_descendants_at_any_depth_only() {
        let procs = [
            p(1, 0, 'S'),
            p(10, 1, 'S'), // us
            p(11, 10, 'S'),
            p(12, 11, 'R'),
            p(13, 10, 'Z'), // a zombie: runs nothing
            p(14, 13, 'S'), // but its child does
            p(20, 1, 'S'),  // not ours
            p(21, 20, 'S'),
        ];
        let mut found = live_descendants(&procs, 10);
        found.sort_unstable();
        assert_eq!(found, vec![11, 12, 14]);
        assert!(live_descendants(&procs, 21).is_empty());
    }

    #[tokio::test]
    async fn unlisted_leftovers_are_gone_only_without_any_child() {
        let soon = || std::time::Instant::now() + Duration::from_millis(100);
        assert_eq!(
            unlisted(|| Children::None, soon()).await,
            Leftovers::default()
        );
        let unknown = Leftovers {
            killed: false,
            surviving: vec![-1],
        };
        assert_eq!(unlisted(|| Children::Running, soon()).await, unknown);
        assert_eq!(unlisted(|| Children::Exited, soon()).await, unknown);
        // Exited children are reaped meanwhile: then none is left.
        let looks = std::cell::Cell::new(0);
        let reaped = || {
            looks.set(looks.get() + 1);
            if looks.get() < 3 {
                Children::Exited
            } else {
                Children::None
            }
        };
        let later = std::time::Instant::now() + Duration::from_secs(30);
        assert_eq!(unlisted(reaped, later).await, Leftovers::default());
    }

    #[test]
    fn a_running_child_is_seen_without_reaping_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        // Other tests' children may have exited meanwhile; ours alone rules out `None`.
        assert_ne!(children(), Children::None);
        child.kill().expect("kill");
        child.wait().expect("the child was not reaped by the look");
    }

    #[tokio::test]
    async fn a_descendant_that_survives_sigkill_is_reported() {
        // A process stuck in uninterruptible sleep: SIGKILL is accepted, yet it stays listed.
        let until = std::time::Instant::now() + Duration::from_millis(200);
        let found = sweep(|| vec![42], |_| true, until).await;
        assert_eq!(
            found,
            Leftovers {
                killed: true,
                surviving: vec![42]
            }
        );
        let gone = std::cell::Cell::new(false);
        let until = std::time::Instant::now() + Duration::from_secs(30);
        let found = sweep(
            || if gone.get() { vec![] } else { vec![42] },
            |_| {
                gone.set(true);
                true
            },
            until,
        )
        .await;
        assert_eq!(
            found,
            Leftovers {
                killed: true,
                surviving: vec![]
            }
        );
    }
}
