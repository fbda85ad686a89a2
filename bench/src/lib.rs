//! zen-lead-bench: zen-lead side by side with the Rust peer crates `kube-leader-election` and
//! `kube-lease-manager` and the official Python client's `kubernetes.leaderelection`, in one
//! run, on one testkit API server (docs/BENCHMARKS.md).
//!
//! Figures: graceful handover latency, crash failover latency, API requests per second per pool
//! by number of candidates, the overhead of the `zen-lead-exec` wrapper, safety under faults
//! (two leaders at once, repeated terms), and zen-lead's failover on evidence of death with
//! `zen-lead-controller` running. Every candidate is a process of its own.

pub mod beliefs;
pub mod candidate;
pub mod contender;
pub mod evidence;
pub mod exec;
pub mod leases;
pub mod peer;
pub mod python;
pub mod report;
pub mod safety;
pub mod scenario;
pub mod terms;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

use zen_lead_testkit::TestServer;

use crate::candidate::Launcher;
use crate::contender::Contender;
use crate::leases::Histories;
use crate::report::Results;

/// What to run and for how long.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lease duration for every contender (the peers' TTL / duration).
    pub lease_duration: Duration,
    /// Graceful handover rounds per contender.
    pub handover_rounds: usize,
    /// Crash failover rounds per contender.
    pub failover_rounds: usize,
    /// Rounds per fault and contender in the safety figure.
    pub safety_rounds: usize,
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
    /// The `zen-lead-controller` binary; by default the main workspace's release build.
    pub controller_bin: Option<PathBuf>,
    /// Whether to set up and run the Python peer.
    pub python: bool,
    /// Run figures 1 and 2 at the same time (quick mode) instead of one after the other.
    pub concurrent: bool,
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
    /// Figure 5.
    pub safety: bool,
    /// Figure 6.
    pub evidence: bool,
}

/// The benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The testkit API server did not start.
    #[error("starting the testkit API server")]
    Start(#[source] zen_lead_testkit::StartError),
    /// No client for the server.
    #[error("building the benchmark's own client")]
    Client(#[source] zen_lead_testkit::ClientError),
    /// zen-lead-exec is not available.
    #[error("preparing zen-lead-exec")]
    ExecBinary(#[source] exec::MeasureError),
    /// zen-lead-controller is not available.
    #[error("preparing zen-lead-controller (or leave out the evidence figure: --only ...)")]
    ControllerBinary(#[source] exec::MeasureError),
    /// The log directory could not be made.
    #[error("creating {0}")]
    Logs(PathBuf, #[source] std::io::Error),
    /// This binary could not be located.
    #[error("locating the bench binary")]
    CurrentExe(#[source] std::io::Error),
    /// The wrapper figure failed.
    #[error("measuring the zen-lead-exec overhead")]
    Exec(#[source] exec::MeasureError),
}

/// Everything a figure needs: the server, the settings, how to start candidates.
pub struct Bench<'a> {
    /// The in-process API server.
    pub server: &'a TestServer,
    /// What to run.
    pub settings: &'a Settings,
    /// Starts candidate processes.
    pub launcher: Launcher,
    /// Every Lease's history.
    pub histories: Histories,
    /// A client for the benchmark's own writes (the race's expired Lease, the deletion).
    pub admin: kube::Client,
    /// The libraries measured (the Python peer only when Python is available).
    pub contenders: Vec<Contender>,
    /// Why a library is missing, if one is.
    pub missing: Vec<(Contender, String)>,
}

impl std::fmt::Debug for Bench<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bench")
            .field("settings", self.settings)
            .field("contenders", &self.contenders)
            .finish_non_exhaustive()
    }
}

/// The report: Markdown for people, JSON for tools.
#[derive(Debug, Clone)]
pub struct Output {
    /// The tables.
    pub markdown: String,
    /// `{"libraries": [...], "rows": {"<row>": {"<library>": <number>}}}`.
    pub json: serde_json::Value,
}

/// Runs the selected figures against one in-process API server.
pub async fn run(settings: &Settings) -> Result<Output, RunError> {
    let server = TestServer::start().await.map_err(RunError::Start)?;
    let exec_bin =
        exec::ensure_binary(settings.exec_bin.as_deref()).map_err(RunError::ExecBinary)?;
    let controller_bin = if settings.figures.evidence {
        Some(
            exec::ensure_workspace_binary(
                settings.controller_bin.as_deref(),
                "zen-lead-controller",
            )
            .map_err(RunError::ControllerBinary)?,
        )
    } else {
        None
    };
    let mut missing = Vec::new();
    let python = if settings.python {
        match python::ensure() {
            Ok(p) => Some(p),
            Err(error) => {
                eprintln!("zen-lead-bench: no python-kubernetes column: {error}");
                missing.push((Contender::PythonKubernetes, error.to_string()));
                None
            }
        }
    } else {
        missing.push((Contender::PythonKubernetes, "--no-python".to_string()));
        None
    };
    let contenders = Contender::ALL
        .into_iter()
        .filter(|c| *c != Contender::PythonKubernetes || python.is_some())
        .collect();
    let logs = std::env::temp_dir().join(format!("zen-lead-bench-{}", std::process::id()));
    std::fs::create_dir_all(&logs).map_err(|e| RunError::Logs(logs.clone(), e))?;
    eprintln!("zen-lead-bench: candidate logs in {}", logs.display());
    let bench = Bench {
        server: &server,
        settings,
        launcher: Launcher {
            url: server.url().to_string(),
            kubeconfig: server.kubeconfig_path().to_path_buf(),
            me: std::env::current_exe().map_err(RunError::CurrentExe)?,
            exec_bin,
            controller_bin,
            python,
            lease: settings.lease_duration,
            logs,
        },
        histories: Histories::watch(
            server
                .client_as(leases::OBSERVER)
                .map_err(RunError::Client)?,
        ),
        admin: server
            .client_as("zen-lead-bench-admin")
            .map_err(RunError::Client)?,
        contenders,
        missing,
    };
    let f = settings.figures;
    let mut results = Results::default();
    if settings.concurrent {
        tracing::info!("figures 1 and 2 at once");
        (results.handover, results.failover) = tokio::join!(
            when(f.handover, scenario::handover(&bench)),
            when(f.failover, scenario::failover(&bench)),
        );
    } else {
        tracing::info!("figure 1: graceful handover");
        results.handover = when(f.handover, scenario::handover(&bench)).await;
        tracing::info!("figure 2: crash failover");
        results.failover = when(f.failover, scenario::failover(&bench)).await;
    }
    tracing::info!("figure 3: requests per pool");
    results.requests = when(f.requests, scenario::requests(&bench)).await;
    tracing::info!("figure 5: safety under faults");
    results.safety = when(f.safety, safety::run(&bench)).await;
    tracing::info!("figure 6: failover on evidence of death");
    results.evidence = when(f.evidence, evidence::run(&bench)).await;
    if f.exec {
        tracing::info!("figure 4: wrapper overhead");
        results.exec = Some(
            exec::measure(&server, settings, &bench.launcher.exec_bin)
                .await
                .map_err(RunError::Exec)?,
        );
    }
    Ok(Output {
        markdown: report::markdown(&bench, &results),
        json: report::json(&bench, &results),
    })
}

async fn when<T>(on: bool, f: impl Future<Output = T>) -> Option<T> {
    if on { Some(f.await) } else { None }
}

/// The limit for any one "eventually" wait: generous, so a loaded machine shows up as a slow
/// figure rather than a missing one.
pub(crate) fn wait_limit(settings: &Settings) -> Duration {
    settings.lease_duration * 4 + Duration::from_secs(30)
}
