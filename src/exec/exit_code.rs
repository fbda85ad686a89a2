//! The one exit-code table of `zen-lead-exec` (sysexits-style), documented in `docs/EXEC.md`.
//!
//! Once the child has run, its own code passes through (or 128+signal), so a child may exit
//! with any of these numbers too; the wrapper's own codes mean something only when the log line
//! before them came from `zen-lead-exec`.

use nix::sys::wait::WaitStatus;

/// The child (or gate) finished successfully, or `--on-follower skip` skipped.
pub const SUCCESS: u8 = 0;
/// Bad command line: missing command or pool, unknown flag, unparsable value (EX_USAGE).
pub const USAGE: u8 = 64;
/// The API server could not be reached (EX_UNAVAILABLE).
pub const API_UNREACHABLE: u8 = 69;
/// An internal error of the wrapper (EX_SOFTWARE).
pub const SOFTWARE: u8 = 70;
/// The operating system refused a wrapper duty: signal handlers, fork (EX_OSERR).
pub const OS_ERROR: u8 = 71;
/// `--wait-timeout` passed before this replica led (EX_TEMPFAIL).
pub const WAIT_TIMEOUT: u8 = 75;
/// A Lease with the pool's name exists but is not managed by zen-lead (EX_PROTOCOL).
pub const UNMANAGED_LEASE: u8 = 76;
/// The API server denied access: fix RBAC or credentials (EX_NOPERM).
pub const PERMISSION_DENIED: u8 = 77;
/// Bad configuration: timing rules, unreadable kubeconfig, no namespace (EX_CONFIG).
pub const CONFIG: u8 = 78;
/// Another replica leads and `--on-follower fail` was given.
pub const FOLLOWER: u8 = 79;
/// The lease was lost while the child ran; the child was stopped.
pub const LEASE_LOST: u8 = 80;
/// `gate`: zen-lead-controller is not alive (its Lease is missing, released or stale), so the
/// gate did not hand over and released the pool's lease.
pub const NO_CONTROLLER: u8 = 81;
/// The command was found but could not be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found.
pub const NOT_FOUND: u8 = 127;
/// Added to a signal number when the child was killed by that signal.
pub const SIGNAL_BASE: u8 = 128;

/// The code the wrapper exits with for a child's wait status: its exit code, or 128+signal.
pub fn from_wait_status(status: WaitStatus) -> u8 {
    match status {
        // The kernel keeps only the low 8 bits of an exit code.
        WaitStatus::Exited(_, code) => (code & 0xff) as u8,
        WaitStatus::Signaled(_, signal, _) => SIGNAL_BASE.wrapping_add(signal as i32 as u8),
        _ => SOFTWARE,
    }
}

/// The code for a signal number, 128+N.
pub fn for_signal(signal: i32) -> u8 {
    SIGNAL_BASE.wrapping_add(signal as u8)
}

/// The code for a failed exec of the command (`std::io::Error` from spawning it).
pub fn for_spawn_error(error: &std::io::Error) -> u8 {
    match error.kind() {
        std::io::ErrorKind::NotFound => NOT_FOUND,
        _ => NOT_EXECUTABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn wait_status_maps_to_code_or_128_plus_signal() {
        let pid = Pid::from_raw(42);
        assert_eq!(from_wait_status(WaitStatus::Exited(pid, 0)), 0);
        assert_eq!(from_wait_status(WaitStatus::Exited(pid, 255)), 255);
        assert_eq!(
            from_wait_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            137
        );
        assert_eq!(
            from_wait_status(WaitStatus::Signaled(pid, Signal::SIGTERM, true)),
            143
        );
    }

    #[test]
    fn wrapper_codes_are_distinct() {
        let mut codes = vec![
            USAGE,
            API_UNREACHABLE,
            SOFTWARE,
            OS_ERROR,
            WAIT_TIMEOUT,
            UNMANAGED_LEASE,
            PERMISSION_DENIED,
            CONFIG,
            FOLLOWER,
            LEASE_LOST,
            NO_CONTROLLER,
            NOT_EXECUTABLE,
            NOT_FOUND,
        ];
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n);
    }

    #[test]
    fn spawn_errors() {
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        let pd = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(for_spawn_error(&nf), 127);
        assert_eq!(for_spawn_error(&pd), 126);
    }
}
