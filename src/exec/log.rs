//! Logging to stderr: the level from `RUST_LOG`, text or JSON.
//!
//! Without `RUST_LOG`, everything logs at `info`. The Lease library logs what it returns (a 403,
//! an unmanaged lease, a lost lease) only at debug: the supervisor gets it back as an error or a
//! state and reports it once, as the one line a person reads.
//!
//! Logging never blocks the wrapper (docs/PROTOCOL.md §4): lines go through a bounded queue to a
//! writer thread, and when stderr stops being read (a stalled log collector) and the queue is
//! full, new lines are dropped rather than waited for.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use super::config::LogFormat;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Lines kept while stderr is not read; more are dropped.
const QUEUED_LINES: usize = 1024;

/// Keeps the writer thread; dropping it flushes what is queued, waiting at most a second.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard").finish_non_exhaustive()
    }
}

/// Installs the global subscriber. A second call installs nothing.
pub fn init(format: LogFormat) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("zen-lead-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}
