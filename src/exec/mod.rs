//! `zen-lead-exec` (docs/EXEC.md): runs a command only while this replica holds the pool's Lease,
//! as PID 1 or a subreaper, forwarding signals, reaping zombies.
//!
//! One concept per module: [`config`] (flags to a validated [`config::Config`]), [`exit_code`]
//! (the table), [`child`] + [`pre_exec`] (spawning), [`reaper`], [`signals`], [`stopper`] (the
//! thread that owns the deadline and stops the child), [`log`] (never blocking), [`api`] (client,
//! namespace, LeaderPolicy settings), [`controller_alive`] (the gate's check of the controller's
//! Lease) and [`supervisor`] (the straight sequence).

pub mod api;
pub mod child;
pub mod config;
pub mod controller_alive;
pub mod exit_code;
pub mod log;
pub mod pre_exec;
pub mod reaper;
pub mod signals;
pub mod stopper;
pub mod supervisor;

pub use supervisor::{ExecError, run};

/// An error and its sources as one line (`a: b: c`), for the single stderr line of bad input.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Some errors repeat their source in their own message; say it once.
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn one_line_joins_sources_and_flattens_newlines() {
        let err = Outer(std::io::Error::other("inner\nbroke"));
        assert_eq!(one_line(&err), "outer failed: inner broke");
    }
}
