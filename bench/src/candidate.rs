//! One candidate as a process of its own, started by the benchmark: zen-lead-exec wrapping
//! `zen-lead-bench __sample`, `zen-lead-bench __candidate` for a Rust peer crate, or the Python
//! client's script. Each can be released the way its library documents, killed, paused with
//! SIGSTOP and resumed, and partitioned by its User-Agent; its belief samples are collected.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;

use crate::contender::{Contender, NAMESPACE, python_timing, zen_timing};
use crate::peer::{CANDIDATE_ARG, SAMPLE_ARG};
use crate::python::PythonPeer;
use crate::wire::{Line, now_nanos};

/// What every candidate process needs: where the server is and which programs to run.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The API server's URL.
    pub url: String,
    /// A kubeconfig for it (zen-lead-exec, Python).
    pub kubeconfig: PathBuf,
    /// This benchmark's binary (the peer candidates and the sampling command).
    pub me: PathBuf,
    /// The zen-lead-exec binary.
    pub exec_bin: PathBuf,
    /// The zen-lead-controller binary, when the evidence figure runs.
    pub controller_bin: Option<PathBuf>,
    /// The Python peer, when Python is available.
    pub python: Option<PythonPeer>,
    /// Lease duration for every library.
    pub lease: Duration,
    /// Where each candidate's stderr goes, one file per candidate.
    pub logs: PathBuf,
}

/// Starting or driving a candidate failed.
#[derive(Debug, thiserror::Error)]
pub enum CandidateError {
    /// The process could not be started.
    #[error("starting {identity}")]
    Spawn {
        /// The candidate.
        identity: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It did not report `ready`.
    #[error("{identity} did not get ready within {limit:?} (see its log {log})")]
    NotReady {
        /// The candidate.
        identity: String,
        /// How long it had.
        limit: Duration,
        /// Its stderr.
        log: String,
    },
    /// Python is not available.
    #[error("the Python peer is not set up")]
    NoPython,
    /// Writing to its stdin failed.
    #[error("sending {command:?} to {identity}")]
    Send {
        /// The candidate.
        identity: String,
        /// The line.
        command: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A candidate process.
#[derive(Debug)]
pub struct Candidate {
    /// The library.
    pub contender: Contender,
    /// Its holder identity.
    pub identity: String,
    pending: Option<Command>,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    samples: Arc<Mutex<Vec<u64>>>,
    latest: watch::Receiver<u64>,
    latest_tx: Option<watch::Sender<u64>>,
    log: PathBuf,
}

impl Launcher {
    /// Prepares a candidate of `contender` for `pool`. Peers are started and set up (clients
    /// built, Python imported) and wait for [`Candidate::go`]; zen-lead-exec starts at `go`.
    pub async fn spawn(
        &self,
        contender: Contender,
        pool: &str,
        identity: &str,
    ) -> Result<Candidate, CandidateError> {
        self.spawn_with_env(contender, pool, identity, &[]).await
    }

    /// Like [`Launcher::spawn`], with extra environment variables (a pod's `POD_UID`).
    pub async fn spawn_with_env(
        &self,
        contender: Contender,
        pool: &str,
        identity: &str,
        env: &[(&str, &str)],
    ) -> Result<Candidate, CandidateError> {
        // A second process of the same identity (a restarted container) gets a log of its own.
        let log = (0..)
            .map(|n| match n {
                0 => self.logs.join(format!("{identity}.log")),
                n => self.logs.join(format!("{identity}.{n}.log")),
            })
            .find(|p| !p.exists())
            .unwrap_or_else(|| self.logs.join(format!("{identity}.log")));
        let stderr = std::fs::File::create(&log).map_err(|source| CandidateError::Spawn {
            identity: identity.to_string(),
            source,
        })?;
        let mut cmd = match contender {
            Contender::ZenLead => {
                let t = zen_timing(self.lease);
                let ms = |d: Duration| format!("{}ms", d.as_millis());
                let mut c = Command::new(&self.exec_bin);
                c.env("KUBECONFIG", &self.kubeconfig)
                    .args([
                        "--pool",
                        pool,
                        "--namespace",
                        NAMESPACE,
                        "--identity",
                        identity,
                    ])
                    .args(["--lease-duration", &ms(t.lease_duration)])
                    .args(["--renew-deadline", &ms(t.renew_deadline)])
                    .args(["--retry-period", &ms(t.retry_period)])
                    .arg("--")
                    .arg(&self.me)
                    .arg(SAMPLE_ARG)
                    .stdin(Stdio::null());
                c
            }
            Contender::KubeLeaderElection | Contender::KubeLeaseManager => {
                let mut c = Command::new(&self.me);
                c.arg(CANDIDATE_ARG)
                    .args(["--library", contender.slug(), "--url", &self.url])
                    .args(["--pool", pool, "--identity", identity])
                    .args(["--lease-ms", &self.lease.as_millis().to_string()])
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::piped());
                c
            }
            Contender::PythonKubernetes => {
                let py = self.python.as_ref().ok_or(CandidateError::NoPython)?;
                let t = python_timing(self.lease);
                let mut c = Command::new(&py.python);
                c.arg(&py.script)
                    .arg(&self.kubeconfig)
                    .args([pool, identity])
                    .args(
                        [t.lease_duration, t.renew_deadline, t.retry_period]
                            .map(|d| d.as_secs().to_string()),
                    )
                    .env("PYTHONUNBUFFERED", "1")
                    .stdin(Stdio::piped());
                c
            }
        };
        cmd.envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        let (latest_tx, latest) = watch::channel(0);
        let mut candidate = Candidate {
            contender,
            identity: identity.to_string(),
            pending: Some(cmd),
            child: None,
            stdin: None,
            samples: Arc::new(Mutex::new(Vec::new())),
            latest,
            latest_tx: Some(latest_tx),
            log,
        };
        if contender != Contender::ZenLead {
            let mut ready = candidate.start()?;
            let limit = Duration::from_secs(120);
            let ok = tokio::time::timeout(limit, ready.wait_for(|r| *r))
                .await
                .is_ok_and(|r| r.is_ok());
            if !ok {
                return Err(CandidateError::NotReady {
                    identity: identity.to_string(),
                    limit,
                    log: candidate.log.display().to_string(),
                });
            }
        }
        Ok(candidate)
    }
}

impl Candidate {
    /// Starts the pending process and the task that reads its lines; the receiver turns true
    /// at `ready`.
    fn start(&mut self) -> Result<watch::Receiver<bool>, CandidateError> {
        let (ready_tx, ready) = watch::channel(false);
        let Some(mut cmd) = self.pending.take() else {
            return Ok(ready);
        };
        let mut child = cmd.spawn().map_err(|source| CandidateError::Spawn {
            identity: self.identity.clone(),
            source,
        })?;
        self.stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.child = Some(child);
        let samples = self.samples.clone();
        let latest_tx = self.latest_tx.take();
        tokio::spawn(async move {
            let (Some(stdout), Some(latest_tx)) = (stdout, latest_tx) else {
                return;
            };
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match Line::parse(&line) {
                    Some(Line::Ready) => {
                        ready_tx.send_replace(true);
                    }
                    Some(Line::Sample { at, .. }) => {
                        if let Ok(mut s) = samples.lock() {
                            s.push(at);
                        }
                        latest_tx.send_replace(at);
                    }
                    Some(Line::Released) | None => {}
                }
            }
        });
        Ok(ready)
    }

    /// Starts the election: `go` for a waiting peer, the wrapper itself for zen-lead.
    pub async fn go(&mut self) -> Result<(), CandidateError> {
        if self.contender == Contender::ZenLead {
            self.start()?;
            return Ok(());
        }
        self.send("go").await
    }

    async fn send(&mut self, command: &'static str) -> Result<(), CandidateError> {
        let identity = self.identity.clone();
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        let line = format!("{command}\n");
        stdin
            .write_all(line.as_bytes())
            .await
            .and(stdin.flush().await)
            .map_err(|source| CandidateError::Send {
                identity,
                command,
                source,
            })
    }

    /// The User-Agent its requests carry, which the server's faults key on.
    pub fn user_agent(&self) -> String {
        match self.contender {
            Contender::ZenLead => zen_lead::client::user_agent(&self.identity),
            _ => self.identity.clone(),
        }
    }

    /// The first sample at or after `after` (CLOCK_MONOTONIC nanoseconds), waiting up to
    /// `limit` for it.
    pub async fn wait_leading(&self, after: u64, limit: Duration) -> Option<u64> {
        let mut latest = self.latest.clone();
        tokio::time::timeout(limit, latest.wait_for(|t| *t > 0 && *t >= after))
            .await
            .ok()?
            .ok()?;
        let samples = self.samples.lock().ok()?;
        samples.iter().copied().find(|t| *t >= after)
    }

    /// Whether it sampled a belief within the last `within`.
    pub fn leads_now(&self, within: Duration) -> bool {
        let last = *self.latest.borrow();
        last > 0 && now_nanos().saturating_sub(last) <= within.as_nanos() as u64
    }

    /// Every belief sample so far.
    pub fn samples(&self) -> Vec<u64> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Gives leadership up the way its library documents (returns once asked, not once done):
    /// zen-lead-exec gets SIGTERM (its command stops, then it releases); a Rust peer is told
    /// to release; the Python client has no release call, so its process ends (SIGTERM).
    pub async fn release(&mut self) -> Result<(), CandidateError> {
        match self.contender {
            Contender::ZenLead | Contender::PythonKubernetes => {
                self.signal_top(Signal::SIGTERM);
                Ok(())
            }
            _ => self.send("release").await,
        }
    }

    /// SIGKILL to the process and everything under it: a crash that releases nothing.
    pub fn kill(&mut self) {
        for pid in self.tree() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }

    /// SIGSTOP to the process and everything under it, the top first.
    pub fn pause(&self) {
        for pid in self.tree() {
            let _ = kill(pid, Signal::SIGSTOP);
        }
    }

    /// SIGCONT to everything under the process first, then to the process itself: a resumed
    /// command gets to run before its wrapper can stop it (the order least kind to zen-lead).
    pub fn resume(&self) {
        for pid in self.tree().into_iter().rev() {
            let _ = kill(pid, Signal::SIGCONT);
        }
    }

    /// Each process of its tree with its state (`R`, `S`, `T`, `Z`, ...), for error messages.
    pub fn describe_tree(&self) -> String {
        let states: Vec<String> = self
            .tree()
            .into_iter()
            .map(|pid| {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::trim)
                        .unwrap_or("?")
                        .to_string()
                };
                format!(
                    "{pid} {} {} ign {} blk {}",
                    field("Name:"),
                    field("State:"),
                    field("SigIgn:"),
                    field("SigBlk:")
                )
            })
            .collect();
        states.join("; ")
    }

    fn signal_top(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, signal);
        }
    }

    fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(Child::id)
            .and_then(|p| i32::try_from(p).ok())
            .map(Pid::from_raw)
    }

    /// The process and its descendants, parents before children.
    fn tree(&self) -> Vec<Pid> {
        let mut out: Vec<Pid> = self.pid().into_iter().collect();
        let mut i = 0;
        while i < out.len() {
            let pid = out[i].as_raw();
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten();
            for task in tasks {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                out.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse().ok())
                        .map(Pid::from_raw),
                );
            }
            i += 1;
        }
        out
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        self.kill();
    }
}
