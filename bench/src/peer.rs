//! The candidate processes the benchmark starts (its own binary, re-invoked): one Rust peer
//! crate candidate (`__candidate`), or the command zen-lead-exec wraps (`__sample`). Each
//! reports what its library tells it on stdout ([`crate::wire`]), so the benchmark can stop,
//! pause or partition it like any process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::watch;

use crate::contender::{Contender, NAMESPACE, kle_poll};
use crate::wire::{SAMPLE_EVERY, emit, emit_sample};

/// The hidden subcommand that runs one peer candidate.
pub const CANDIDATE_ARG: &str = "__candidate";
/// The hidden subcommand zen-lead-exec runs as its command: samples while it runs.
pub const SAMPLE_ARG: &str = "__sample";

/// Arguments of a peer candidate.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = CANDIDATE_ARG)]
pub struct CandidateArgs {
    /// `kle` or `klm`.
    #[arg(long)]
    pub library: String,
    /// The API server.
    #[arg(long)]
    pub url: String,
    /// The pool (Lease name).
    #[arg(long)]
    pub pool: String,
    /// The holder identity, also the client's User-Agent.
    #[arg(long)]
    pub identity: String,
    /// Lease duration in milliseconds.
    #[arg(long)]
    pub lease_ms: u64,
}

/// A peer candidate failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Not a Rust peer crate.
    #[error("unknown library {0:?} (kle or klm)")]
    Library(String),
    /// No client could be built.
    #[error("building a client for {identity}")]
    Client {
        /// The candidate.
        identity: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// kube-lease-manager could not set up its Lease.
    #[error("starting kube-lease-manager for {identity}")]
    LeaseManager {
        /// The candidate.
        identity: String,
        /// The cause.
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}

/// The command zen-lead-exec wraps: a sample every [`SAMPLE_EVERY`] while it runs, with the
/// term zen-lead handed it (`ZEN_LEAD_TERM`), until it is stopped.
pub fn sample_forever() -> ! {
    let term = std::env::var("ZEN_LEAD_TERM")
        .ok()
        .and_then(|t| t.parse::<i64>().ok());
    loop {
        emit_sample(term);
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// Runs one peer candidate until stdin closes or a release completes.
pub async fn run(args: CandidateArgs) -> Result<(), PeerError> {
    let contender = Contender::from_slug(&args.library)
        .filter(|c| {
            matches!(
                c,
                Contender::KubeLeaderElection | Contender::KubeLeaseManager
            )
        })
        .ok_or_else(|| PeerError::Library(args.library.clone()))?;
    let lease = Duration::from_millis(args.lease_ms);
    let client_error = |source: Box<dyn std::error::Error + Send + Sync>| PeerError::Client {
        identity: args.identity.clone(),
        source,
    };
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    // Clients first, so that `go` starts the library itself and nothing else.
    let lib = match contender {
        Contender::KubeLeaderElection => {
            Lib::Kle(kube4_client(&args.url, &args.identity).map_err(client_error)?)
        }
        _ => Lib::Klm(kube5_client(&args.url, &args.identity).map_err(client_error)?),
    };
    emit("ready");
    match stdin.next_line().await {
        Ok(Some(line)) if line.trim() == "go" => {}
        _ => return Ok(()),
    }
    let running = match lib {
        Lib::Kle(client) => start_kle(client, &args, lease),
        Lib::Klm(client) => start_klm(client, &args, lease).await?,
    };
    loop {
        match stdin.next_line().await {
            Ok(Some(line)) if line.trim() == "release" => {
                running.release(&args.identity).await;
                emit("released");
                return Ok(());
            }
            Ok(Some(_)) => {}
            // The benchmark is gone: stop as a crash would, without releasing.
            _ => return Ok(()),
        }
    }
}

enum Lib {
    Kle(kube4::Client),
    Klm(kube::Client),
}

/// A started library candidate, with what it believes: `believed` is the application's copy
/// of the library's state, which the sampler reads.
struct Running {
    lib: RunningLib,
    /// Forwards the library's state into `believed`; it holds the library's receiver.
    forward: tokio::task::JoinHandle<()>,
    believed: Arc<AtomicBool>,
}

enum RunningLib {
    Kle {
        lock: Arc<kube_leader_election::LeaseLock>,
        task: tokio::task::JoinHandle<()>,
    },
    Klm {
        task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
    },
}

impl Running {
    fn new(lib: RunningLib, leading: watch::Receiver<bool>) -> Self {
        let believed = Arc::new(AtomicBool::new(false));
        sample_while(believed.clone());
        let forward = tokio::spawn({
            let believed = believed.clone();
            let mut leading = leading;
            async move {
                loop {
                    let now = *leading.borrow_and_update();
                    believed.store(now, Ordering::SeqCst);
                    if now {
                        emit_sample(None);
                    }
                    if leading.changed().await.is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            lib,
            forward,
            believed,
        }
    }

    /// Gives leadership up the way the library documents, the application first ceasing to
    /// act as leader: kube-leader-election `step_down` (after stopping the renew loop),
    /// kube-lease-manager by closing the `watch()` channel (every receiver dropped), after
    /// which its task releases the lease and ends.
    async fn release(self, identity: &str) {
        self.believed.store(false, Ordering::SeqCst);
        self.forward.abort();
        let _ = self.forward.await;
        match self.lib {
            RunningLib::Kle { lock, task } => {
                task.abort();
                let _ = task.await;
                if let Err(error) = lock.step_down().await {
                    tracing::warn!(%identity, %error, "step_down failed");
                }
            }
            RunningLib::Klm { task } => match task.await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%identity, %error, "lease manager release failed");
                }
                Err(error) => tracing::warn!(%identity, %error, "lease manager task failed"),
            },
        }
    }
}

/// kube-leader-election offers one call and leaves the loop to the application; this is the
/// loop its docs describe: every `lease_ttl / 3`, leading is what the last call returned.
fn start_kle(client: kube4::Client, args: &CandidateArgs, lease: Duration) -> Running {
    let lock = Arc::new(kube_leader_election::LeaseLock::new(
        client,
        NAMESPACE,
        kube_leader_election::LeaseLockParams {
            lease_name: args.pool.clone(),
            holder_id: args.identity.clone(),
            lease_ttl: lease,
        },
    ));
    let (tx, leading) = watch::channel(false);
    let poll = kle_poll(lease);
    let identity = args.identity.clone();
    let task = tokio::spawn({
        let lock = lock.clone();
        async move {
            loop {
                match lock.try_acquire_or_renew().await {
                    Ok(kube_leader_election::LeaseLockResult::Acquired(_)) => {
                        tx.send_replace(true);
                    }
                    Ok(kube_leader_election::LeaseLockResult::NotAcquired(_)) => {
                        tx.send_replace(false);
                    }
                    Err(error) => {
                        // The crate's own loop (its examples) logs and tries again.
                        tracing::debug!(%identity, %error, "try_acquire_or_renew failed");
                    }
                }
                tokio::time::sleep(poll).await;
            }
        }
    });
    Running::new(RunningLib::Kle { lock, task }, leading)
}

async fn start_klm(
    client: kube::Client,
    args: &CandidateArgs,
    lease: Duration,
) -> Result<Running, PeerError> {
    let manager = LeaseManagerBuilder::new(client, &args.pool)
        .with_namespace(NAMESPACE)
        .with_identity(&args.identity)
        .with_duration(lease.as_secs())
        .build()
        .await
        .map_err(|source| PeerError::LeaseManager {
            identity: args.identity.clone(),
            source,
        })?;
    let (leading, task) = manager.watch().await;
    Ok(Running::new(RunningLib::Klm { task }, leading))
}

/// Samples the application's belief every [`SAMPLE_EVERY`] from a thread of its own, so a
/// busy runtime does not hide it (the forwarding task also samples at once when it turns true).
fn sample_while(believed: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        loop {
            if believed.load(Ordering::SeqCst) {
                emit_sample(None);
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
    });
}

/// A kube 5 client (kube-lease-manager's kube) with `user_agent` as its identity.
fn kube5_client(
    url: &str,
    user_agent: &str,
) -> Result<kube::Client, Box<dyn std::error::Error + Send + Sync>> {
    let mut config = kube::Config::new(url.parse()?);
    config.default_namespace = NAMESPACE.into();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(user_agent)?,
    ));
    Ok(kube::Client::try_from(config)?)
}

/// A kube 4 client (kube-leader-election's kube) with `user_agent` as its identity.
fn kube4_client(
    url: &str,
    user_agent: &str,
) -> Result<kube4::Client, Box<dyn std::error::Error + Send + Sync>> {
    let mut config = kube4::Config::new(url.parse()?);
    config.default_namespace = NAMESPACE.into();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(user_agent)?,
    ));
    Ok(kube4::Client::try_from(config)?)
}
