//! The command line of `zen-lead-controller` (docs/ARCHITECTURE.md, "The controller"): flags with
//! env vars, turned into a validated [`Config`] before anything runs.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use zen_lead::exec::config::{LogFormat, parse_duration};
use zen_lead::lease::Timing;
use zen_lead::timing::TimingError;

/// Default namespace of the controller's own Lease.
pub const DEFAULT_NAMESPACE: &str = zen_lead::api::CONTROLLER_NAMESPACE;

/// zen-lead-controller: elects for annotated pods, renews for gated pods, hands over on evidence
/// of death, and writes roles, LeaderPolicy status, Events and metrics.
#[derive(Debug, Clone, Parser)]
#[command(name = "zen-lead-controller", version)]
pub struct Cli {
    /// Namespace of the controller's own Lease (`zen-lead-controller`).
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// This replica's identity in the controller's own election [default: POD_NAME, else the hostname].
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ZEN_LEAD_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Log format: text or json (the level comes from RUST_LOG).
    #[arg(long, env = "ZEN_LEAD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Lease duration of the controller's own Lease.
    #[arg(long, env = "ZEN_LEAD_CONTROLLER_LEASE_DURATION", value_parser = parse_duration, default_value = "15s")]
    pub lease_duration: Duration,
    /// Renew deadline of the controller's own Lease: a replica that has not renewed for this long stops writing.
    #[arg(long, env = "ZEN_LEAD_CONTROLLER_RENEW_DEADLINE", value_parser = parse_duration, default_value = "10s")]
    pub renew_deadline: Duration,
    /// Retry period of the controller's own Lease.
    #[arg(long, env = "ZEN_LEAD_CONTROLLER_RETRY_PERIOD", value_parser = parse_duration, default_value = "2s")]
    pub retry_period: Duration,
    /// API writes in flight at once, across all pools; further writes queue, first come, first served.
    #[arg(long, env = "ZEN_LEAD_WRITE_CONCURRENCY", default_value_t = DEFAULT_WRITE_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    pub write_concurrency: u16,
}

/// API writes in flight at once by default: bounds the connections and buffers a burst of
/// thousands of pools would otherwise open at once.
pub const DEFAULT_WRITE_CONCURRENCY: u16 = 32;

/// A configuration the controller cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No identity: neither `--identity`, `POD_NAME` nor a hostname.
    #[error("cannot determine this replica's identity: set --identity or POD_NAME")]
    ResolveIdentity,
    /// The own Lease's timings break a rule.
    #[error("the controller's own Lease timings: {0}")]
    Timing(#[from] TimingError),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace of the controller's own Lease.
    pub namespace: String,
    /// This replica's identity.
    pub identity: String,
    /// This replica's pod UID (`POD_UID`), if known.
    pub pod_uid: Option<String>,
    /// Address of the metrics and health endpoints.
    pub metrics_addr: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Timings of the controller's own Lease.
    pub timing: Timing,
    /// API writes in flight at once.
    pub write_concurrency: u16,
}

impl Config {
    /// Validates the command line, reading the environment and hostname through the given
    /// functions (tests pass their own).
    pub fn from_cli(
        cli: Cli,
        env: impl Fn(&str) -> Option<String>,
        hostname: impl FnOnce() -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let timing =
            zen_lead::timing::validate(cli.lease_duration, cli.renew_deadline, cli.retry_period)?;
        // POD_NAME is read by clap for --identity; ZEN_LEAD_IDENTITY is zen-lead-exec's, not ours.
        let identity = cli
            .identity
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty())
            .or_else(|| {
                hostname()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
            })
            .ok_or(ConfigError::ResolveIdentity)?;
        Ok(Self {
            namespace: cli.namespace,
            identity,
            pod_uid: zen_lead::identity::pod_uid(env),
            metrics_addr: cli.metrics_addr,
            log_format: cli.log_format,
            timing,
            write_concurrency: cli.write_concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let cli =
            Cli::try_parse_from(std::iter::once("zen-lead-controller").chain(args.iter().copied()))
                .expect("parses");
        Config::from_cli(cli, |_| None, || Some("host-1\n".into()))
    }

    #[test]
    fn defaults_and_flags() {
        // The test process may carry POD_NAMESPACE / POD_NAME; pass every flag explicitly where
        // it matters.
        let config = parse(&[
            "--namespace",
            "ops",
            "--identity",
            "ctl-0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert_eq!(config.namespace, "ops");
        assert_eq!(config.identity, "ctl-0");
        assert_eq!(config.timing, Timing::default());
        assert_eq!(config.write_concurrency, DEFAULT_WRITE_CONCURRENCY);
        let config = parse(&[
            "--identity",
            " ",
            "--lease-duration",
            "4s",
            "--renew-deadline",
            "2s",
            "--retry-period",
            "1s",
            "--write-concurrency",
            "8",
        ])
        .unwrap();
        assert_eq!(config.write_concurrency, 8);
        assert_eq!(
            config.identity, "host-1",
            "an empty identity falls back to the hostname"
        );
        assert_eq!(config.timing.lease_duration, Duration::from_secs(4));
    }

    #[test]
    fn a_write_concurrency_of_zero_is_refused() {
        let cli = Cli::try_parse_from(["zen-lead-controller", "--write-concurrency", "0"]);
        assert!(cli.is_err());
    }

    #[test]
    fn bad_timings_are_refused() {
        let error = parse(&[
            "--identity",
            "a",
            "--lease-duration",
            "5s",
            "--renew-deadline",
            "6s",
        ])
        .unwrap_err();
        assert!(error.to_string().contains("must be less than"), "{error}");
    }
}
