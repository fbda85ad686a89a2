//! `zen-lead-bench`: prints the zen-lead vs peers tables (Markdown) on stdout, and with
//! `--json PATH` writes the figures as JSON.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use zen_lead_bench::{Figures, Settings, exec, peer};

/// zen-lead side by side with kube-leader-election, kube-lease-manager and the Python
/// client's leader election on one testkit API server. Default arguments take about six
/// minutes; `--quick` about four.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Every figure with fewer rounds, figures 1 and 2 at the same time (about 3 minutes).
    #[arg(long)]
    quick: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Lease duration for every library, in seconds.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Graceful handover rounds per library (default 5, quick 2).
    #[arg(long)]
    handover_rounds: Option<usize>,
    /// Crash failover rounds per library, and per kind of evidence (default 3, quick 2).
    #[arg(long)]
    failover_rounds: Option<usize>,
    /// Rounds per fault and library in the safety figure (default 5, quick 2).
    #[arg(long)]
    safety_rounds: Option<usize>,
    /// Candidate counts for the request-rate figure.
    #[arg(long, value_delimiter = ',', default_value = "1,3,10")]
    candidates: Vec<usize>,
    /// Steady-state window for the request-rate figure, in seconds.
    #[arg(long, default_value_t = 20)]
    window_seconds: u64,
    /// Time a new standby gets to settle before the holder leaves, in seconds.
    #[arg(long, default_value_t = 3)]
    settle_seconds: u64,
    /// Runs of each wrapper measurement (default 10, quick 5).
    #[arg(long)]
    exec_runs: Option<usize>,
    /// The zen-lead-exec binary (default: build the root package's release binary).
    #[arg(long)]
    exec_bin: Option<PathBuf>,
    /// The zen-lead-controller binary (default: build the main workspace's release binary).
    #[arg(long)]
    controller_bin: Option<PathBuf>,
    /// Leave out the Python peer (otherwise a virtualenv is created with `kubernetes>=37`).
    #[arg(long)]
    no_python: bool,
    /// Only these figures (default all).
    #[arg(long, value_delimiter = ',', value_parser = ["handover", "failover", "requests", "exec", "safety", "evidence"])]
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
    match std::env::args().nth(1).as_deref() {
        // The wrapper-overhead child: report the time first thing and leave.
        Some(exec::STAMP_ARG) => {
            println!("{}", exec::monotonic_nanos()?);
            return Ok(());
        }
        // The command zen-lead-exec wraps in the election figures.
        Some(peer::SAMPLE_ARG) => peer::sample_forever(),
        Some(peer::CANDIDATE_ARG) => {
            logging("warn");
            let args = peer::CandidateArgs::parse_from(std::env::args().skip(1));
            let runtime = tokio::runtime::Runtime::new()?;
            return Ok(runtime.block_on(peer::run(args))?);
        }
        _ => {}
    }
    let args = Args::parse();
    logging("zen_lead_bench=info,warn");
    let on = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let q = |quick: usize, full: usize| if args.quick { quick } else { full };
    let settings = Settings {
        lease_duration: Duration::from_secs(args.lease_seconds.max(4)),
        handover_rounds: args.handover_rounds.unwrap_or(q(2, 5)),
        failover_rounds: args.failover_rounds.unwrap_or(q(2, 3)),
        safety_rounds: args.safety_rounds.unwrap_or(q(2, 5)),
        candidates: args.candidates.clone(),
        window: Duration::from_secs(args.window_seconds.max(1)),
        settle: Duration::from_secs(args.settle_seconds),
        exec_runs: args.exec_runs.unwrap_or(q(5, 10)),
        exec_bin: args.exec_bin.clone(),
        controller_bin: args.controller_bin.clone(),
        python: !args.no_python,
        concurrent: args.quick,
        figures: Figures {
            handover: on("handover"),
            failover: on("failover"),
            requests: on("requests"),
            exec: on("exec"),
            safety: on("safety"),
            evidence: on("evidence"),
        },
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let started = std::time::Instant::now();
    let output = runtime.block_on(zen_lead_bench::run(&settings))?;
    print!("{}", output.markdown);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&output.json)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "zen-lead-bench: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
