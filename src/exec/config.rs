//! Command line and environment of `zen-lead-exec`: clap parses raw args, [`Config::from_cli`]
//! turns them into a validated [`Config`] before anything runs.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nix::sys::signal::Signal;

use super::controller_alive::ControllerLease;
use crate::lease::Timing;
use crate::timing::{self, Names, TimingError};

/// Default `--kill-grace`: with the default 10s renew deadline it stays below the 15s lease.
/// Where it would not (fast timings such as 10/7), it shrinks ([`timing::default_kill_grace`]).
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// Runs a command only while this replica holds the pool's Lease.
#[derive(Debug, Parser)]
#[command(
    name = "zen-lead-exec",
    version,
    override_usage = "zen-lead-exec [OPTIONS] -- CMD [ARGS...]\n       zen-lead-exec gate [OPTIONS]",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Gate mode instead of running a command.
    #[command(subcommand)]
    pub subcommand: Option<Command>,
    /// Options shared by both modes.
    #[command(flatten)]
    pub options: Options,
    /// The command to run while leading, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// For initContainers: acquire (or wait for) the lease, hand renewing to the controller, exit 0.
    Gate {
        /// Options shared by both modes.
        #[command(flatten)]
        options: Options,
        /// Where the controller's own Lease is.
        #[command(flatten)]
        controller: ControllerArgs,
    },
}

/// The gate's options for finding zen-lead-controller's own Lease, which it checks before
/// handing over.
#[derive(Debug, Clone, Args)]
pub struct ControllerArgs {
    /// Namespace of zen-lead-controller (where its own Lease is).
    #[arg(long, env = "ZEN_LEAD_CONTROLLER_NAMESPACE", default_value = crate::api::CONTROLLER_NAMESPACE)]
    pub controller_namespace: String,
    /// Name of zen-lead-controller's own Lease.
    #[arg(long, env = "ZEN_LEAD_CONTROLLER_LEASE", default_value = crate::api::CONTROLLER_LEASE)]
    pub controller_lease: String,
}

/// Options shared by the run and gate modes.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// The pool: the name of the LeaderPolicy and of its Lease.
    #[arg(long, env = "ZEN_LEAD_POOL")]
    pub pool: Option<String>,
    /// Namespace of the pool [default: the pod's namespace, else the kubeconfig's].
    #[arg(long, env = "ZEN_LEAD_NAMESPACE")]
    pub namespace: Option<String>,
    /// This candidate's identity [default: ZEN_LEAD_IDENTITY, POD_NAME, hostname].
    #[arg(long, env = "ZEN_LEAD_IDENTITY")]
    pub identity: Option<String>,
    /// Lease duration, e.g. 15s [default: the LeaderPolicy's, else 15s].
    #[arg(long, env = "ZEN_LEAD_LEASE_DURATION", value_parser = parse_duration)]
    pub lease_duration: Option<Duration>,
    /// Renew deadline, e.g. 10s [default: the LeaderPolicy's, else 10s].
    #[arg(long, env = "ZEN_LEAD_RENEW_DEADLINE", value_parser = parse_duration)]
    pub renew_deadline: Option<Duration>,
    /// Retry period, e.g. 2s [default: the LeaderPolicy's, else 2s].
    #[arg(long, env = "ZEN_LEAD_RETRY_PERIOD", value_parser = parse_duration)]
    pub retry_period: Option<Duration>,
    /// What a replica that does not lead does.
    #[arg(long, env = "ZEN_LEAD_ON_FOLLOWER", value_enum, default_value_t = OnFollower::Wait)]
    pub on_follower: OnFollower,
    /// Give up waiting for the lease after this long (exit 75).
    #[arg(long, env = "ZEN_LEAD_WAIT_TIMEOUT", value_parser = parse_duration)]
    pub wait_timeout: Option<Duration>,
    /// Keep the lease held until acquireTime + this, even after the child exits (CronJobs).
    #[arg(long, env = "ZEN_LEAD_MIN_HOLD", value_parser = parse_duration)]
    pub min_hold: Option<Duration>,
    /// Time between the stop signal and SIGKILL when the lease is lost [default: 3s, or half of
    /// lease duration - renew deadline when 3s does not fit].
    #[arg(long, env = "ZEN_LEAD_KILL_GRACE", value_parser = parse_duration)]
    pub kill_grace: Option<Duration>,
    /// Signal sent to the child when the lease is lost (name or number) [default: SIGTERM].
    #[arg(long, env = "ZEN_LEAD_STOP_SIGNAL", value_parser = parse_signal)]
    pub stop_signal: Option<Signal>,
    /// Forward signals to the child's whole process group instead of the child alone.
    #[arg(long, env = "ZEN_LEAD_SIGNAL_GROUP", value_parser = clap::builder::BoolishValueParser::new())]
    pub signal_group: bool,
    /// After losing the lease, wait for it again instead of exiting.
    #[arg(long, env = "ZEN_LEAD_REJOIN", value_parser = clap::builder::BoolishValueParser::new())]
    pub rejoin: bool,
    /// Log format (the level comes from RUST_LOG).
    #[arg(long, env = "ZEN_LEAD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--on-follower`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFollower {
    /// Standby: wait until this replica leads.
    Wait,
    /// Exit 0 at once (CronJobs).
    Skip,
    /// Exit with the follower code (79).
    Fail,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What to do once leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Run this command (program, then arguments) while leading.
    Run(Vec<OsString>),
    /// Check that the controller whose Lease this is is alive, hand renewal to it and exit.
    Gate(ControllerLease),
}

/// Timings given on the command line; unset ones come from the LeaderPolicy or the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimingFlags {
    /// `--lease-duration`.
    pub lease_duration: Option<Duration>,
    /// `--renew-deadline`.
    pub renew_deadline: Option<Duration>,
    /// `--retry-period`.
    pub retry_period: Option<Duration>,
}

/// Where the timings a flag leaves unset come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback<'a> {
    /// The pool's LeaderPolicy (`namespace/name`) supplied these.
    Policy(&'a str, Timing),
    /// No LeaderPolicy: the defaults (15s/10s/2s).
    Defaults,
}

/// Resolved timings that break a rule; the message names where each value came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TimingConfigError {
    /// The rule that is broken.
    pub rule: TimingError,
    message: String,
}

impl TimingFlags {
    /// Fills unset flags from `fallback`, picks the kill grace (the flag, else the default,
    /// shrunk when it does not fit) and checks the result. Returns the timing and kill grace.
    pub fn resolve(
        &self,
        fallback: Fallback<'_>,
        kill_grace: Option<Duration>,
    ) -> Result<(Timing, Duration), TimingConfigError> {
        let (base, policy) = match fallback {
            Fallback::Policy(name, timing) => (timing, Some(name)),
            Fallback::Defaults => (Timing::default(), None),
        };
        let lease = self.lease_duration.unwrap_or(base.lease_duration);
        let renew = self.renew_deadline.unwrap_or(base.renew_deadline);
        let retry = self.retry_period.unwrap_or(base.retry_period);
        let (grace, shrunk) = match kill_grace {
            Some(grace) => (grace, false),
            None => timing::default_kill_grace(lease, renew, DEFAULT_KILL_GRACE),
        };
        let origin =
            |flag: &'static str, given: bool, field: &str, default: &str| match (given, policy) {
                (true, _) => flag.to_owned(),
                (false, Some(name)) => format!("{field} of LeaderPolicy {name}"),
                (false, None) => format!("the default {default}"),
            };
        let lease_name = origin(
            "--lease-duration",
            self.lease_duration.is_some(),
            "leaseDurationSeconds",
            "lease duration",
        );
        let renew_name = origin(
            "--renew-deadline",
            self.renew_deadline.is_some(),
            "renewDeadlineSeconds",
            "renew deadline",
        );
        let retry_name = origin(
            "--retry-period",
            self.retry_period.is_some(),
            "retryPeriodSeconds",
            "retry period",
        );
        let grace_name = match (kill_grace, shrunk) {
            (Some(_), _) => "--kill-grace",
            (None, false) => "the default kill grace",
            (None, true) => "the default kill grace (half of lease duration - renew deadline)",
        };
        timing::validate_with_kill_grace(lease, renew, retry, grace)
            .map(|timing| (timing, grace))
            .map_err(|rule| TimingConfigError {
                message: rule.message_with(&Names {
                    lease_duration: &lease_name,
                    renew_deadline: &renew_name,
                    retry_period: &retry_name,
                    kill_grace: grace_name,
                }),
                rule,
            })
    }

    /// Whether every timing was given, so no LeaderPolicy needs to be read.
    pub fn complete(&self) -> bool {
        self.lease_duration.is_some()
            && self.renew_deadline.is_some()
            && self.retry_period.is_some()
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Run a command or gate.
    pub mode: Mode,
    /// The pool.
    pub pool: String,
    /// `--namespace`, if given (else resolved from the pod or kubeconfig).
    pub namespace: Option<String>,
    /// `--identity`, if given (else resolved by [`crate::identity`]).
    pub identity: Option<String>,
    /// Timing flags.
    pub timing: TimingFlags,
    /// `--on-follower`.
    pub on_follower: OnFollower,
    /// `--wait-timeout`.
    pub wait_timeout: Option<Duration>,
    /// `--min-hold`.
    pub min_hold: Option<Duration>,
    /// `--kill-grace`, if given (else the default, shrunk to fit: [`TimingFlags::resolve`]).
    pub kill_grace: Option<Duration>,
    /// `--stop-signal`.
    pub stop_signal: Signal,
    /// `--signal-group`.
    pub signal_group: bool,
    /// `--rejoin`.
    pub rejoin: bool,
    /// `--log-format`.
    pub log_format: LogFormat,
}

/// Raw arguments that do not make a runnable configuration. Each message is one line that says
/// what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// clap rejected the command line (its first line).
    #[error("{0} (see zen-lead-exec --help)")]
    ParseArgs(String),
    /// No command after `--`.
    #[error(
        "missing command: give the command to run after --, e.g. zen-lead-exec --pool my-pool -- ./report (or use the gate subcommand)"
    )]
    MissingCommand,
    /// No pool.
    #[error("missing pool: set --pool or ZEN_LEAD_POOL to the LeaderPolicy name")]
    MissingPool,
    /// The pool is not a valid Lease name.
    #[error(
        "invalid pool name {0:?}: use a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)"
    )]
    InvalidPool(String),
    /// The namespace is not a valid namespace name.
    #[error(
        "invalid namespace {0:?}: use a DNS label (lowercase letters, digits and '-', at most 63 characters)"
    )]
    InvalidNamespace(String),
    /// `--controller-namespace` is not a valid namespace name.
    #[error(
        "invalid --controller-namespace {0:?}: use a DNS label (lowercase letters, digits and '-', at most 63 characters)"
    )]
    InvalidControllerNamespace(String),
    /// `--controller-lease` is not a valid Lease name.
    #[error(
        "invalid --controller-lease {0:?}: use a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)"
    )]
    InvalidControllerLease(String),
    /// `gate --on-follower skip` would exit 0, and the pod's containers would run unled.
    #[error(
        "gate cannot skip: its exit 0 would let the pod's containers run without the lease; use --on-follower fail (or wait) with gate"
    )]
    GateSkip,
    /// A flag that means nothing to the gate, which runs no command.
    #[error(
        "gate does not take {0}: the gate runs no command, so it neither stops nor rejoins one; remove {0}"
    )]
    GateFlag(&'static str),
    /// A zero kill grace would SIGKILL without giving the child a chance.
    #[error("--kill-grace must be greater than zero")]
    KillGraceZero,
    /// Timing flags break a rule of the Lease protocol.
    #[error(transparent)]
    Timing(#[from] TimingConfigError),
}

impl ConfigError {
    /// The documented exit code.
    pub fn exit_code(&self) -> u8 {
        use super::exit_code;
        match self {
            Self::ParseArgs(_)
            | Self::MissingCommand
            | Self::MissingPool
            | Self::InvalidPool(_)
            | Self::InvalidNamespace(_)
            | Self::InvalidControllerNamespace(_)
            | Self::InvalidControllerLease(_)
            | Self::GateSkip
            | Self::GateFlag(_) => exit_code::USAGE,
            Self::KillGraceZero | Self::Timing(_) => exit_code::CONFIG,
        }
    }
}

/// What parsing the command line produced.
#[derive(Debug)]
pub enum Parsed {
    /// Run with this configuration.
    Run(Box<Config>),
    /// `--help` or `--version`: print this and exit 0.
    Info(String),
}

/// Parses and validates the process arguments.
pub fn parse<I, T>(args: I) -> Result<Parsed, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => Config::from_cli(cli).map(|c| Parsed::Run(Box::new(c))),
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Ok(Parsed::Info(e.render().to_string()))
            }
            _ => {
                let rendered = e.render().to_string();
                let first = rendered
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid arguments")
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned();
                // A command given without `--` reaches clap as an unknown positional.
                if let Some(arg) = first
                    .strip_prefix("unexpected argument '")
                    .and_then(|rest| rest.split('\'').next())
                    .filter(|arg| !arg.starts_with('-'))
                {
                    return Err(ConfigError::ParseArgs(format!(
                        "unexpected argument '{arg}': put the command after --, e.g. zen-lead-exec --pool my-pool -- {arg}"
                    )));
                }
                Err(ConfigError::ParseArgs(first))
            }
        },
    }
}

impl Config {
    /// Validates parsed arguments.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let (mode, options) = match cli.subcommand {
            Some(Command::Gate {
                options,
                controller,
            }) => (Mode::Gate(ControllerLease::from_args(controller)?), options),
            None => {
                if cli.command.is_empty() {
                    return Err(ConfigError::MissingCommand);
                }
                (Mode::Run(cli.command), cli.options)
            }
        };
        let pool = options
            .pool
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .ok_or(ConfigError::MissingPool)?;
        if !is_dns_subdomain(&pool) {
            return Err(ConfigError::InvalidPool(pool));
        }
        let namespace = options
            .namespace
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if let Some(ns) = &namespace
            && !is_dns_label(ns)
        {
            return Err(ConfigError::InvalidNamespace(ns.clone()));
        }
        if matches!(mode, Mode::Gate(_)) {
            if options.on_follower == OnFollower::Skip {
                return Err(ConfigError::GateSkip);
            }
            let given = [
                ("--rejoin", options.rejoin),
                ("--signal-group", options.signal_group),
                ("--stop-signal", options.stop_signal.is_some()),
                ("--kill-grace", options.kill_grace.is_some()),
            ];
            if let Some((flag, _)) = given.into_iter().find(|(_, given)| *given) {
                return Err(ConfigError::GateFlag(flag));
            }
        }
        if options.kill_grace.is_some_and(|g| g.is_zero()) {
            return Err(ConfigError::KillGraceZero);
        }
        let timing = TimingFlags {
            lease_duration: options.lease_duration,
            renew_deadline: options.renew_deadline,
            retry_period: options.retry_period,
        };
        // Settings given in full are checked now, before any API call; partial ones once the
        // LeaderPolicy fills the rest.
        if timing.complete() {
            timing.resolve(Fallback::Defaults, options.kill_grace)?;
        }
        Ok(Self {
            mode,
            pool,
            namespace,
            identity: options.identity.filter(|i| !i.trim().is_empty()),
            timing,
            on_follower: options.on_follower,
            wait_timeout: options.wait_timeout,
            min_hold: options.min_hold,
            kill_grace: options.kill_grace,
            stop_signal: options.stop_signal.unwrap_or(Signal::SIGTERM),
            signal_group: options.signal_group,
            rejoin: options.rejoin,
            log_format: options.log_format,
        })
    }
}

impl ControllerLease {
    /// Validates `--controller-namespace` and `--controller-lease`.
    fn from_args(args: ControllerArgs) -> Result<Self, ConfigError> {
        let namespace = args.controller_namespace.trim().to_owned();
        if !is_dns_label(&namespace) {
            return Err(ConfigError::InvalidControllerNamespace(namespace));
        }
        let name = args.controller_lease.trim().to_owned();
        if !is_dns_subdomain(&name) {
            return Err(ConfigError::InvalidControllerLease(name));
        }
        Ok(Self { namespace, name })
    }
}

/// Parses `15s`, `500ms`, `1m30s`; a bare number is seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(value).map_err(|e| format!("{e} (write durations like 15s or 500ms)"))
}

/// Parses `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(value: &str) -> Result<Signal, String> {
    let value = value.trim();
    if let Ok(n) = value.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("no signal number {n}"));
    }
    let upper = value.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("unknown signal {value:?} (use a name like SIGTERM or a number)"))
        .and_then(|s| {
            if s == Signal::SIGCHLD {
                Err("SIGCHLD cannot stop a child".to_owned())
            } else {
                Ok(s)
            }
        })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["zen-lead-exec"];
        all.extend_from_slice(args);
        match parse(all)? {
            Parsed::Run(c) => Ok(*c),
            Parsed::Info(i) => panic!("unexpected info: {i}"),
        }
    }

    #[test]
    fn run_mode_with_defaults() {
        let c = run(&["--pool", "p", "--", "echo", "hi"]).unwrap();
        assert_eq!(c.mode, Mode::Run(vec!["echo".into(), "hi".into()]));
        assert_eq!(c.pool, "p");
        assert_eq!(c.on_follower, OnFollower::Wait);
        assert_eq!(c.kill_grace, None);
        assert_eq!(c.stop_signal, Signal::SIGTERM);
        assert!(!c.signal_group && !c.rejoin);
        assert_eq!(c.timing, TimingFlags::default());
    }

    #[test]
    fn gate_mode_takes_options_after_the_subcommand() {
        let c = run(&["gate", "--pool", "p", "--on-follower", "fail"]).unwrap();
        assert_eq!(c.mode, Mode::Gate(ControllerLease::default()));
        assert_eq!(c.on_follower, OnFollower::Fail);
        let c = run(&[
            "gate",
            "--pool",
            "p",
            "--controller-namespace",
            "ops",
            "--controller-lease",
            "ctl",
        ])
        .unwrap();
        let lease = ControllerLease {
            namespace: "ops".into(),
            name: "ctl".into(),
        };
        assert_eq!(c.mode, Mode::Gate(lease));
        assert_eq!(
            ControllerLease::default().to_string(),
            "zen-lead-system/zen-lead-controller"
        );
    }

    #[test]
    fn durations_and_signals() {
        let c = run(&[
            "--pool",
            "p",
            "--lease-duration",
            "4s",
            "--renew-deadline",
            "2500ms",
            "--retry-period",
            "500ms",
            "--kill-grace",
            "1s",
            "--stop-signal",
            "int",
            "--",
            "x",
        ])
        .unwrap();
        assert_eq!(c.timing.lease_duration, Some(Duration::from_secs(4)));
        assert_eq!(c.timing.renew_deadline, Some(Duration::from_millis(2500)));
        assert_eq!(c.stop_signal, Signal::SIGINT);
        assert_eq!(parse_signal("15"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGUSR1"), Ok(Signal::SIGUSR1));
        assert!(parse_signal("SIGNOPE").is_err());
    }

    #[test]
    fn bad_input_is_one_line_with_its_code() {
        let cases: &[(&[&str], u8)] = &[
            (&["--pool", "p"], 64),
            (&["--", "echo"], 64),
            (
                &["--pool", "p", "--lease-duration", "fifteen", "--", "x"],
                64,
            ),
            (&["--pool", "p", "--bogus", "--", "x"], 64),
            (&["--pool", "Bad_Pool", "--", "x"], 64),
            (&["gate", "--pool", "p", "--on-follower", "skip"], 64),
            (&["gate", "--pool", "p", "--rejoin"], 64),
            (&["gate", "--pool", "p", "--signal-group"], 64),
            (&["gate", "--pool", "p", "--stop-signal", "INT"], 64),
            (&["gate", "--pool", "p", "--kill-grace", "1s"], 64),
            (
                &["gate", "--pool", "p", "--controller-namespace", "Ops_"],
                64,
            ),
            (&["gate", "--pool", "p", "--controller-lease", "-x"], 64),
            // The controller's Lease means nothing to a wrapper that renews for itself.
            (
                &["--pool", "p", "--controller-namespace", "ops", "--", "x"],
                64,
            ),
            (
                &[
                    "--pool",
                    "p",
                    "--lease-duration",
                    "15s",
                    "--renew-deadline",
                    "10s",
                    "--retry-period",
                    "2s",
                    "--kill-grace",
                    "6s",
                    "--",
                    "x",
                ],
                78,
            ),
            (&["--pool", "p", "--kill-grace", "0s", "--", "x"], 78),
        ];
        for (args, code) in cases {
            let err = run(args).unwrap_err();
            assert_eq!(err.exit_code(), *code, "{args:?}: {err}");
            assert!(!err.to_string().contains('\n'), "{args:?}: {err}");
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn partial_timings_resolve_against_the_fallback() {
        let flags = TimingFlags {
            renew_deadline: Some(secs(12)),
            ..TimingFlags::default()
        };
        // An explicit kill grace that breaks the rule is refused; the default shrinks.
        assert!(flags.resolve(Fallback::Defaults, Some(secs(3))).is_err());
        let (_, grace) = flags.resolve(Fallback::Defaults, None).unwrap();
        assert_eq!(grace, Duration::from_millis(1500));
        assert_eq!(
            flags.resolve(Fallback::Defaults, Some(secs(2))).unwrap().1,
            secs(2)
        );
    }

    #[test]
    fn fast_leader_policy_timings_work_with_no_flags() {
        let none = TimingFlags::default();
        for (lease, renew, retry) in [(10, 7, 2), (6, 4, 1)] {
            let policy = Timing {
                lease_duration: secs(lease),
                renew_deadline: secs(renew),
                retry_period: secs(retry),
            };
            let (timing, grace) = none
                .resolve(Fallback::Policy("default/p", policy), None)
                .unwrap_or_else(|e| panic!("{lease}/{renew}/{retry}: {e}"));
            assert_eq!(timing, policy);
            assert!(timing.renew_deadline + grace < timing.lease_duration);
        }
    }

    #[test]
    fn timing_errors_name_where_each_value_came_from() {
        let policy = Timing {
            lease_duration: secs(10),
            renew_deadline: secs(7),
            retry_period: secs(2),
        };
        let err = TimingFlags::default()
            .resolve(Fallback::Policy("default/p", policy), Some(secs(3)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "renewDeadlineSeconds of LeaderPolicy default/p (7s) plus --kill-grace (3s) must be less than leaseDurationSeconds of LeaderPolicy default/p (10s): lower one of the first two or raise the lease duration"
        );
        let flags = TimingFlags {
            renew_deadline: Some(secs(20)),
            ..TimingFlags::default()
        };
        let err = flags.resolve(Fallback::Defaults, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--renew-deadline (20s) must be less than the default lease duration (15s): lower the renew deadline or raise the lease duration"
        );
    }

    #[test]
    fn switches() {
        let c = run(&["--pool", "p", "--rejoin", "--signal-group", "--", "x"]).unwrap();
        assert!(c.rejoin && c.signal_group);
    }

    #[test]
    fn help_is_info() {
        assert!(matches!(
            parse(["zen-lead-exec", "--help"]),
            Ok(Parsed::Info(_))
        ));
    }
}
