//! `zen-lead-testkit`: serve the API server emulator, run the demo, or benchmark the emulator
//! or zen-lead-controller.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// A Kubernetes API server emulator for zen-lead's tests, benchmarks and demo.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve until SIGTERM/SIGINT.
    Serve {
        /// Listen address (loopback; port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0", env = "ZEN_LEAD_TESTKIT_ADDR")]
        addr: SocketAddr,
        /// Where to write a kubeconfig for the server.
        #[arg(long, env = "ZEN_LEAD_TESTKIT_KUBECONFIG")]
        kubeconfig: PathBuf,
        /// Require bearer tokens and evaluate RBAC; the kubeconfig carries an admin token.
        #[arg(long)]
        auth: bool,
        /// A token file: lines `token,user[,group1;group2]` (user may be
        /// `system:serviceaccount:NS:NAME`).
        #[arg(long, requires = "auth")]
        token_file: Option<PathBuf>,
        /// Serve HTTPS with a generated CA (written into the kubeconfig).
        #[arg(long)]
        tls: bool,
        /// How many events the watch history keeps.
        #[arg(long, default_value_t = 10_000)]
        retained_events: usize,
        /// Run pods' containers as local processes (image ignored; command and args from the
        /// spec); without it pods are simulated.
        #[arg(long)]
        process_kubelet: bool,
        /// With --process-kubelet: run TO where a container's command or args say FROM (or
        /// where a container without a command has image FROM). Repeatable.
        #[arg(long, value_name = "FROM=TO", value_parser = parse_resolve, requires = "process_kubelet")]
        resolve: Vec<(String, PathBuf)>,
    },
    /// The local demo: this server, zen-lead-controller, three zen-lead-exec replicas and three
    /// annotation-only pods; handovers and failovers with measured times.
    Demo {
        /// The zen-lead-exec binary (default: next to this executable).
        #[arg(long)]
        exec: Option<PathBuf>,
        /// The zen-lead-controller binary (default: next to this executable).
        #[arg(long)]
        controller: Option<PathBuf>,
    },
    /// Measure zen-lead-controller: memory, convergence and steady-state requests at scale.
    BenchController {
        /// LeaderPolicies.
        #[arg(long, default_value_t = 1_000)]
        pools: usize,
        /// Annotation-only candidate pods per pool.
        #[arg(long, default_value_t = 5)]
        pods_per_pool: usize,
        /// Length of the steady-state window, in seconds.
        #[arg(long, default_value_t = 30)]
        steady_seconds: u64,
        /// Upper bound on convergence, in seconds.
        #[arg(long, default_value_t = 120)]
        max_seconds: u64,
        /// The zen-lead-controller binary (default: next to this executable).
        #[arg(long)]
        controller: Option<PathBuf>,
    },
    /// Measure list/watch throughput and watch latency (loopback only).
    Bench {
        /// Objects to create.
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// Concurrent watchers.
        #[arg(long, default_value_t = 1_000)]
        watchers: usize,
        /// Upper bound on the whole run, in seconds.
        #[arg(long, default_value_t = 120)]
        max_seconds: u64,
    },
}

fn parse_resolve(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => {
            Ok((from.to_string(), PathBuf::from(to)))
        }
        _ => Err(format!("expected FROM=TO, got {text:?}")),
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            addr,
            kubeconfig,
            auth,
            token_file,
            tls,
            retained_events,
            process_kubelet,
            resolve,
        } => {
            let mut builder = zen_lead_testkit::TestServer::builder()
                .addr(addr)
                .auth(auth)
                .tls(tls)
                .retained_events(retained_events)
                .kubeconfig(&kubeconfig)
                .process_kubelet(process_kubelet);
            for (from, to) in resolve {
                builder = builder.resolve(from, to);
            }
            let server = builder.start().await.context("starting the server")?;
            if let Some(path) = token_file {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                server
                    .tokens()
                    .load_file(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
            println!("listening on {}", server.url());
            println!("admin endpoint {}", server.admin_url());
            println!("kubeconfig {}", kubeconfig.display());
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("installing the SIGTERM handler")?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            drop(server);
            Ok(())
        }
        Command::Demo { exec, controller } => {
            zen_lead_testkit::demo::run(zen_lead_testkit::demo::Binaries { exec, controller }).await
        }
        Command::BenchController {
            pools,
            pods_per_pool,
            steady_seconds,
            max_seconds,
            controller,
        } => {
            let report = zen_lead_testkit::controller_bench::run(
                zen_lead_testkit::controller_bench::Options {
                    pools,
                    pods_per_pool,
                    steady: std::time::Duration::from_secs(steady_seconds),
                    converge_within: std::time::Duration::from_secs(max_seconds),
                    controller,
                },
            )
            .await
            .context("running the controller benchmark")?;
            print!("{report}");
            Ok(())
        }
        Command::Bench {
            objects,
            watchers,
            max_seconds,
        } => {
            let report = zen_lead_testkit::bench::run(
                objects,
                watchers,
                std::time::Duration::from_secs(max_seconds),
            )
            .await
            .context("running the benchmark")?;
            print!("{report}");
            Ok(())
        }
    }
}
