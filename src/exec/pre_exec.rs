//! The wrapper's `unsafe` code: restoring signal state in the forked child before `exec` (tini
//! does the same), so the command starts as if the wrapper were not there; and [`kill_raw`], for
//! the real-time signals nix's `Signal` cannot name.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow};

/// The signal state the wrapper inherited, captured before it installs its own handlers.
#[derive(Debug, Clone)]
pub struct InheritedSignals {
    mask: SigSet,
    /// Bit `n - 1` set: signal `n` was ignored (the `SigIgn` field of `/proc/self/status`).
    ignored: u64,
}

impl InheritedSignals {
    /// Captures the current signal mask and ignored signals. Call before installing handlers.
    pub fn capture() -> Self {
        let mask = SigSet::thread_get_mask().unwrap_or_else(|_| SigSet::empty());
        let ignored = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| parse_sig_ign(&status))
            .unwrap_or(0);
        // The Rust runtime ignores SIGPIPE itself; a child must get the default back.
        let ignored = ignored & !(1u64 << (libc::SIGPIPE - 1));
        Self { mask, ignored }
    }

    /// Whether signal `n` was ignored when the wrapper started.
    pub fn was_ignored(&self, n: i32) -> bool {
        (1..=64).contains(&n) && self.ignored & (1u64 << (n - 1)) != 0
    }
}

fn parse_sig_ign(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("SigIgn:"))?;
    u64::from_str_radix(line.trim_start_matches("SigIgn:").trim(), 16).ok()
}

/// Makes `command` restore, in the child, the inherited dispositions (default for every signal
/// the wrapper handles, ignored for those it inherited ignored) and the inherited signal mask.
///
/// It also sets the child's parent-death signal to SIGKILL: if the wrapper itself is killed
/// (SIGKILL cannot be forwarded), the child must not run on without anyone holding the lease.
pub fn prepare(command: &mut Command, inherited: InheritedSignals) {
    let max = libc::SIGRTMAX();
    let wrapper = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec in the child, where only async-signal-safe
    // calls are allowed: it calls only sigprocmask, signal(2), prctl(2) and getppid(2), all
    // async-signal-safe system calls, allocates nothing (everything it reads was computed
    // before fork) and takes no lock. All signals are blocked first, so a
    // signal that arrives before the dispositions are reset cannot run the wrapper's handler,
    // which would write to the wrapper's self-pipe. Errors of signal(2) are ignored on purpose:
    // SIGKILL/SIGSTOP and the libc-reserved real-time signals cannot be changed and need not be.
    unsafe {
        command.pre_exec(move || {
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), None)?;
            for n in 1..=max {
                if n == libc::SIGKILL || n == libc::SIGSTOP {
                    continue;
                }
                let action = if inherited.was_ignored(n) {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                };
                libc::signal(n, action);
            }
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The wrapper may have died between fork and prctl: then nobody would send it.
            if nix::unistd::getppid() != wrapper {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&inherited.mask), None)?;
            Ok(())
        });
    }
}

/// kill(2) with a raw signal number (a real-time signal): `pid` as kill(2) takes it (negative for
/// a process group).
pub fn kill_raw(pid: i32, number: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; errno is read right
    // after the call by `Errno::result`.
    nix::errno::Errno::result(unsafe { libc::kill(pid, number) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_ign_is_parsed_from_proc_status() {
        let status = "Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001001\n";
        assert_eq!(parse_sig_ign(status), Some(0x1001));
        let inherited = InheritedSignals {
            mask: SigSet::empty(),
            ignored: 0x1001,
        };
        assert!(inherited.was_ignored(1));
        assert!(inherited.was_ignored(13));
        assert!(!inherited.was_ignored(15));
    }
}
