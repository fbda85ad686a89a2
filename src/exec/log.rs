//! Logging to stderr: the level from `RUST_LOG`, text or JSON.
//!
//! Without `RUST_LOG`, everything logs at `info`. The Lease library logs what it returns (a 403,
//! an unmanaged lease, a lost lease) only at debug: the supervisor gets it back as an error or a
//! state and reports it once, as the one line a person reads.

use tracing_subscriber::EnvFilter;

use super::config::LogFormat;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber. A second call is a no-op.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
