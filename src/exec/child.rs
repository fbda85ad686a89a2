//! The child: spawned with std's `Command` (never waited on by std: the reaper is the only
//! waiter), in its own process group, with the lease in its environment.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::unistd::Pid;

use super::exit_code;
use super::pre_exec::{self, InheritedSignals};
use super::reaper::Reaper;

/// What the child learns about the lease it runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseEnv {
    /// `ZEN_LEAD_POOL`.
    pub pool: String,
    /// `ZEN_LEAD_NAMESPACE`.
    pub namespace: String,
    /// `ZEN_LEAD_IDENTITY`.
    pub identity: String,
    /// `ZEN_LEAD_TERM`: the fencing token.
    pub term: u64,
}

impl LeaseEnv {
    /// The variables, as set in the child.
    pub fn vars(&self) -> [(&'static str, String); 5] {
        [
            ("ZEN_LEAD_POOL", self.pool.clone()),
            ("ZEN_LEAD_NAMESPACE", self.namespace.clone()),
            ("ZEN_LEAD_IDENTITY", self.identity.clone()),
            ("ZEN_LEAD_TERM", self.term.to_string()),
            ("ZEN_LEAD_HELD", "true".to_owned()),
        ]
    }
}

/// The command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// An empty command line (rejected earlier by the config; kept for the type's sake).
    #[error("no command to run")]
    EmptyCommand,
    /// fork/exec failed.
    #[error("cannot run {program}: {error}")]
    Spawn {
        /// The program.
        program: String,
        /// Why (shown in the message, so not a `#[source]`).
        error: std::io::Error,
    },
}

impl ChildError {
    /// 127 when the command was not found, 126 when it could not be executed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::EmptyCommand => exit_code::USAGE,
            Self::Spawn { error, .. } => exit_code::for_spawn_error(error),
        }
    }
}

/// Starts `command` as the main child of `reaper`, in a new process group led by the child.
pub fn spawn(
    command: &[OsString],
    env: &LeaseEnv,
    inherited: &InheritedSignals,
    reaper: &Reaper,
) -> Result<Pid, ChildError> {
    let (program, args) = command.split_first().ok_or(ChildError::EmptyCommand)?;
    let mut cmd = Command::new(program);
    cmd.args(args).envs(env.vars()).process_group(0);
    pre_exec::prepare(&mut cmd, inherited.clone());
    reaper
        .spawn_main(|| cmd.spawn())
        .map_err(|error| ChildError::Spawn {
            program: program.to_string_lossy().into_owned(),
            error,
        })
}
