//! Container processes: spawning under a parent-death signal, signalling a container's process
//! group and its descendants, and the set of live ones that must die with the kubelet.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// The program that sets the parent-death signal and then executes the container's command
/// (util-linux), so that no unsafe `pre_exec` hook is needed.
pub const PDEATHSIG_LAUNCHER: &str = "setpriv";

/// Whether the launcher can run here.
pub fn launcher_available() -> bool {
    std::process::Command::new(PDEATHSIG_LAUNCHER)
        .args(["--pdeathsig", "KILL", "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Live container processes: process group id → main pid.
#[derive(Debug, Clone, Default)]
pub struct Live(Arc<Mutex<HashMap<i32, i32>>>);

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, i32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a started container.
    pub fn add(&self, pid: i32) {
        self.lock().insert(pid, pid);
    }

    /// Forgets an ended one.
    pub fn remove(&self, pid: i32) {
        self.lock().remove(&pid);
    }

    /// SIGKILLs every live container with everything it started.
    pub fn kill_all(&self) {
        let all: Vec<i32> = self.lock().drain().map(|(pgid, _)| pgid).collect();
        for pgid in all {
            kill_tree(pgid, Signal::SIGKILL);
        }
    }
}

/// A process's parent pid, from `/proc/PID/stat`.
fn ppid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may contain spaces and parentheses: the fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every descendant of `root` (not `root` itself).
pub fn descendants(root: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(i32, i32)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, ppid_of(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.split_off(1)
}

/// Sends `signal` to the container's process group and to every descendant of its main
/// process (which may lead process groups of their own), as stopping a container's cgroup
/// would reach them all.
pub fn kill_tree(pid: i32, signal: Signal) {
    let below = descendants(pid);
    let _ = killpg(Pid::from_raw(pid), signal);
    for p in below {
        let _ = kill(Pid::from_raw(p), signal);
    }
}

/// Sends `signal` to the container's process group only (graceful stop: the main process
/// decides what happens to the rest).
pub fn signal_group(pgid: i32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code as a container runtime reports it (128 + signal when killed).
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
}

impl Exit {
    /// From a wait status.
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Self { code, signal: None },
            (None, Some(sig)) => Self {
                code: 128 + sig,
                signal: Some(sig),
            },
            (None, None) => Self {
                code: 128,
                signal: None,
            },
        }
    }
}

/// Starts `argv` in a process group of its own with the parent-death signal set, output
/// appended to `log`, and the exact environment `env`.
pub fn spawn(
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    log: &Path,
) -> std::io::Result<tokio::process::Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let mut cmd = tokio::process::Command::new(PDEATHSIG_LAUNCHER);
    cmd.args(["--pdeathsig", "KILL", "--"])
        .args(argv)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    cmd.spawn()
}
