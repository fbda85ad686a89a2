//! The local demo (README command 1): the API server emulator and three `zen-lead-exec` replicas
//! as real processes, a graceful handover and a crash failover, with measured times.
//!
//! Every actor is a separate OS process talking HTTP to the emulator, exactly as in a cluster;
//! the demo only starts them, kills them and reads the Lease. A new actor (the controller) is
//! one more [`Process`] started in [`Demo::start`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::heartbeat::{self, Interval};

/// The LeaderPolicy CRD, as committed.
const CRD_YAML: &str =
    include_str!("../../config/crd/bases/coordination.kube-zen.io_leaderpolicies.yaml");

/// Short timings so the crash failover takes seconds: renewDeadline 4s + killGrace 1s < 6s.
const POLICY_YAML: &str = "\
apiVersion: coordination.kube-zen.io/v1alpha1
kind: LeaderPolicy
metadata:
  name: demo
  namespace: default
spec:
  leaseDurationSeconds: 6
  renewDeadlineSeconds: 4
  retryPeriodSeconds: 1
";

const REPLICAS: [&str; 3] = ["replica-a", "replica-b", "replica-c"];
const GIVE_UP: Duration = Duration::from_secs(60);

/// A child process that is killed when dropped.
#[derive(Debug)]
struct Process {
    name: String,
    child: Child,
}

impl Process {
    fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).context("pid")?);
        nix::sys::signal::kill(pid, signal).with_context(|| format!("signalling {}", self.name))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running demo.
#[derive(Debug)]
struct Demo {
    dir: PathBuf,
    kubeconfig: PathBuf,
    heartbeats: PathBuf,
    exec: PathBuf,
    replicas: BTreeMap<String, Process>,
    // Declared last: dropped after the replicas, so they can release on the way out.
    _server: Process,
}

/// Runs the demo; `exec` is the `zen-lead-exec` binary (default: next to this executable).
pub async fn run(exec: Option<PathBuf>) -> anyhow::Result<()> {
    let exec = match exec {
        Some(path) => path,
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name("zen-lead-exec"),
    };
    if !exec.exists() {
        bail!(
            "{} not found: build it first with `cargo build --release --workspace --bins`, or pass --exec PATH",
            exec.display()
        );
    }
    let mut demo = Demo::start(exec)?;
    let outcome = demo.script().await;
    demo.stop();
    outcome
}

impl Demo {
    fn start(exec: PathBuf) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("zen-lead-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let kubeconfig = dir.join("kubeconfig");
        let heartbeats = dir.join("heartbeats.log");
        std::fs::write(&heartbeats, "").context("creating the heartbeat log")?;

        step("Starting the API server emulator (zen-lead-testkit serve)");
        let server = start_server(&kubeconfig)?;

        step("Installing the LeaderPolicy CRD and a policy with kubectl");
        std::fs::write(dir.join("crd.yaml"), CRD_YAML).context("writing the CRD")?;
        std::fs::write(dir.join("policy.yaml"), POLICY_YAML).context("writing the policy")?;
        kubectl(
            &kubeconfig,
            &["apply", "-f", &path_str(&dir.join("crd.yaml"))?],
        )?;
        kubectl(
            &kubeconfig,
            &[
                "wait",
                "--for=condition=Established",
                "crd/leaderpolicies.coordination.kube-zen.io",
            ],
        )?;
        kubectl(
            &kubeconfig,
            &["apply", "-f", &path_str(&dir.join("policy.yaml"))?],
        )?;

        Ok(Self {
            replicas: BTreeMap::new(),
            _server: server,
            dir,
            kubeconfig,
            heartbeats,
            exec,
        })
    }

    async fn script(&mut self) -> anyhow::Result<()> {
        step("Starting three zen-lead-exec replicas of `sh -c <heartbeat loop>`");
        for name in REPLICAS {
            let process = self.start_replica(name)?;
            self.replicas.insert(name.to_string(), process);
        }
        let first = self.wait_for_start(0).await?;
        println!("  {} leads, term {}", first.identity, first.term);
        self.show_lease()?;
        // Let the leader work for a moment, so the heartbeat log has something to check.
        tokio::time::sleep(Duration::from_secs(2)).await;

        step(&format!(
            "Graceful handover: SIGTERM to {} (it stops its child, then releases the lease)",
            first.identity
        ));
        let graceful_from = Instant::now();
        self.replica(&first.identity)?
            .signal(nix::sys::signal::Signal::SIGTERM)?;
        let second = self.wait_for_start(first.term).await?;
        let graceful = graceful_from.elapsed();
        println!(
            "  {} leads, term {}, {} ms after the signal",
            second.identity,
            second.term,
            graceful.as_millis()
        );

        step(&format!(
            "Crash failover: SIGKILL to {} and its child (no release; the lease must expire)",
            second.identity
        ));
        let crash_from = Instant::now();
        self.kill_replica(&second.identity)?;
        let third = self.wait_for_start(second.term).await?;
        let crash = crash_from.elapsed();
        println!(
            "  {} leads, term {}, {} ms after the kill",
            third.identity,
            third.term,
            crash.as_millis()
        );
        self.show_lease()?;

        step("Checking the heartbeats: no two terms ever ran at once");
        let text = std::fs::read_to_string(&self.heartbeats)?;
        let terms = heartbeat::check_single_active(&text)?;
        println!(
            "  OK: {} records from {} terms, each term's first record after the previous term's last",
            text.lines().count(),
            terms.len()
        );

        step("Summary");
        let mut table = String::new();
        let _ = writeln!(table, "  {:<20} {:>10}  bound", "event", "measured");
        let _ = writeln!(
            table,
            "  {:<20} {:>7} ms  one watch event after the old child exited",
            "graceful handover",
            graceful.as_millis()
        );
        let _ = writeln!(
            table,
            "  {:<20} {:>7} ms  leaseDuration (6 s) after the last renewal seen",
            "crash failover",
            crash.as_millis()
        );
        print!("{table}");
        println!("  files: {}", self.dir.display());
        Ok(())
    }

    fn start_replica(&self, name: &str) -> anyhow::Result<Process> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))
            .context("creating a replica log")?;
        let child = Command::new(&self.exec)
            .args([
                "--pool",
                "demo",
                "--namespace",
                "default",
                "--identity",
                name,
            ])
            .args(["--kill-grace", "1s", "--", "sh", "-c", heartbeat::SCRIPT])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HB", &self.heartbeats)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cloning a log handle")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.exec.display()))?;
        Ok(Process {
            name: name.to_string(),
            child,
        })
    }

    fn replica(&self, name: &str) -> anyhow::Result<&Process> {
        self.replicas
            .get(name)
            .with_context(|| format!("no replica named {name}"))
    }

    /// SIGKILL the wrapper and its child's process group, as a node crash would.
    fn kill_replica(&mut self, name: &str) -> anyhow::Result<()> {
        let process = self.replica(name)?;
        let wrapper = nix::unistd::Pid::from_raw(i32::try_from(process.child.id())?);
        // The child leads its own process group: find it before the wrapper dies.
        let children = child_pids(wrapper);
        process.signal(nix::sys::signal::Signal::SIGKILL)?;
        for pid in children {
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        }
        self.replicas.remove(name);
        Ok(())
    }

    /// Waits for a child to start with a term above `after`.
    async fn wait_for_start(&self, after: u64) -> anyhow::Result<Interval> {
        let deadline = Instant::now() + GIVE_UP;
        loop {
            let text =
                std::fs::read_to_string(&self.heartbeats).context("reading the heartbeat log")?;
            if let Some(started) = heartbeat::intervals(&text)?
                .into_iter()
                .find(|i| i.term > after)
            {
                return Ok(started);
            }
            if Instant::now() > deadline {
                bail!(
                    "no replica started work within {GIVE_UP:?}; see the logs in {}",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn show_lease(&self) -> anyhow::Result<()> {
        let out = kubectl(
            &self.kubeconfig,
            &[
                "get",
                "lease",
                "demo",
                "-o",
                "jsonpath={.spec.holderIdentity} term={.spec.leaseTransitions} renewer={.metadata.annotations.zen-lead/renewer}",
            ],
        )?;
        println!("  kubectl get lease demo: {out}");
        Ok(())
    }

    fn stop(&mut self) {
        for process in self.replicas.values() {
            let _ = process.signal(nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for process in self.replicas.values_mut() {
            while Instant::now() < deadline {
                if matches!(process.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.replicas.clear();
    }
}

fn step(what: &str) {
    println!("\n==> {what}");
}

fn path_str(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn start_server(kubeconfig: &Path) -> anyhow::Result<Process> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut child = Command::new(exe)
        .args(["serve", "--addr", "127.0.0.1:0", "--kubeconfig"])
        .arg(kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting zen-lead-testkit serve")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let process = Process {
        name: "zen-lead-testkit serve".into(),
        child,
    };
    for line in lines.by_ref() {
        let line = line.context("reading the server's output")?;
        if let Some(url) = line.strip_prefix("listening on ") {
            println!("  {url}");
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(process);
        }
    }
    bail!("zen-lead-testkit serve exited before it was ready")
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .context("running kubectl (is it on the PATH?)")?;
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Direct children of `parent`, from /proc.
fn child_pids(parent: nix::unistd::Pid) -> Vec<nix::unistd::Pid> {
    let path = format!("/proc/{parent}/task/{parent}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .map(nix::unistd::Pid::from_raw)
        .collect()
}
