//! `zen-lead-testkit bench`: list/watch throughput and watch event latency.

use std::time::Duration;

/// The benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The server did not start.
    #[error("starting the server")]
    Start(#[source] crate::StartError),
}

/// Runs the benchmark and returns the report table.
pub async fn run(_objects: usize, _watchers: usize, _max: Duration) -> Result<String, BenchError> {
    Ok(String::new())
}
