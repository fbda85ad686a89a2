//! `zen-lead-bench`: prints the zen-lead vs peer crates tables (Markdown) on stdout.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use zen_lead_bench::{Figures, Settings, exec};

/// zen-lead side by side with kube-leader-election and kube-lease-manager on one testkit API
/// server. Default arguments take about four minutes.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Lease duration for every library, in seconds.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Graceful handover rounds per library.
    #[arg(long, default_value_t = 5)]
    handover_rounds: usize,
    /// Crash failover rounds per library.
    #[arg(long, default_value_t = 3)]
    failover_rounds: usize,
    /// Candidate counts for the request-rate figure.
    #[arg(long, value_delimiter = ',', default_value = "1,3,10")]
    candidates: Vec<usize>,
    /// Steady-state window for the request-rate figure, in seconds.
    #[arg(long, default_value_t = 20)]
    window_seconds: u64,
    /// Time a new standby gets to settle before the holder leaves, in seconds.
    #[arg(long, default_value_t = 3)]
    settle_seconds: u64,
    /// Runs of each wrapper measurement.
    #[arg(long, default_value_t = 10)]
    exec_runs: usize,
    /// The zen-lead-exec binary (default: build the root package's release binary).
    #[arg(long)]
    exec_bin: Option<PathBuf>,
    /// Only these figures (default all).
    #[arg(long, value_delimiter = ',', value_parser = ["handover", "failover", "requests", "exec"])]
    only: Vec<String>,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zen-lead-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // The wrapper-overhead child: report the time first thing and leave.
    if std::env::args().nth(1).as_deref() == Some(exec::STAMP_ARG) {
        println!("{}", exec::monotonic_nanos()?);
        return Ok(());
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "zen_lead_bench=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let on = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let settings = Settings {
        lease_duration: Duration::from_secs(args.lease_seconds.max(1)),
        handover_rounds: args.handover_rounds,
        failover_rounds: args.failover_rounds,
        candidates: args.candidates.clone(),
        window: Duration::from_secs(args.window_seconds.max(1)),
        settle: Duration::from_secs(args.settle_seconds),
        exec_runs: args.exec_runs,
        exec_bin: args.exec_bin.clone(),
        figures: Figures {
            handover: on("handover"),
            failover: on("failover"),
            requests: on("requests"),
            exec: on("exec"),
        },
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(zen_lead_bench::run(&settings))?;
    print!("{report}");
    Ok(())
}
