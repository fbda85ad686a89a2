//! zen-lead-bench: zen-lead side by side with the Rust peer crates `kube-leader-election` and
//! `kube-lease-manager`, in one run, on one testkit API server (docs/BENCHMARKS.md).
//!
//! Figures: graceful handover latency, crash failover latency, API requests per second per pool
//! by number of candidates, and the overhead of the `zen-lead-exec` wrapper.

pub mod contender;
pub mod exec;
pub mod report;
pub mod scenario;

use std::path::PathBuf;
use std::time::Duration;

use zen_lead_testkit::TestServer;

/// What to run and for how long.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lease duration for every contender (the peers' TTL / duration).
    pub lease_duration: Duration,
    /// Graceful handover rounds per contender.
    pub handover_rounds: usize,
    /// Crash failover rounds per contender.
    pub failover_rounds: usize,
    /// Candidate counts for the request-rate figure.
    pub candidates: Vec<usize>,
    /// Steady-state window over which requests are counted.
    pub window: Duration,
    /// How long a new standby is left to settle before the holder is released or crashed.
    pub settle: Duration,
    /// Runs of each wrapper measurement.
    pub exec_runs: usize,
    /// The `zen-lead-exec` binary; by default the root package's release build.
    pub exec_bin: Option<PathBuf>,
    /// Which figures to measure.
    pub figures: Figures,
}

/// Which figures to measure.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Figure 1.
    pub handover: bool,
    /// Figure 2.
    pub failover: bool,
    /// Figure 3.
    pub requests: bool,
    /// Figure 4.
    pub exec: bool,
}

/// The benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The testkit API server did not start.
    #[error("starting the testkit API server")]
    Start(#[source] zen_lead_testkit::StartError),
    /// The wrapper figure failed.
    #[error("measuring the zen-lead-exec overhead")]
    Exec(#[source] exec::MeasureError),
}

/// Runs the selected figures against one in-process API server and returns the Markdown report.
pub async fn run(settings: &Settings) -> Result<String, RunError> {
    let server = TestServer::start().await.map_err(RunError::Start)?;
    let mut out = report::header(settings);
    if settings.figures.handover {
        tracing::info!("figure 1: graceful handover");
        let results = scenario::handover(&server, settings).await;
        out.push_str(&report::handover(settings, &results));
    }
    if settings.figures.failover {
        tracing::info!("figure 2: crash failover");
        let results = scenario::failover(&server, settings).await;
        out.push_str(&report::failover(settings, &results));
    }
    if settings.figures.requests {
        tracing::info!("figure 3: requests per pool");
        let results = scenario::requests(&server, settings).await;
        out.push_str(&report::requests(settings, &results));
    }
    if settings.figures.exec {
        tracing::info!("figure 4: wrapper overhead");
        let results = exec::measure(&server, settings)
            .await
            .map_err(RunError::Exec)?;
        out.push_str(&report::exec(&results));
    }
    Ok(out)
}

/// The limit for any one "eventually" wait: generous, so a loaded machine shows up as a slow
/// figure rather than a missing one.
pub(crate) fn wait_limit(settings: &Settings) -> Duration {
    settings.lease_duration * 4 + Duration::from_secs(30)
}
