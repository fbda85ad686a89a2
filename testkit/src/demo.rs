//! The local demo (README command 1): the API server emulator, zen-lead-controller, three
//! `zen-lead-exec` replicas each with its pod, and a pool of three annotation-only pods. It
//! shows a graceful handover, a crash whose pod dies (failover on the controller's evidence), a
//! crash without evidence (failover on expiry) and an annotation-only failover, with measured
//! times, and what `kubectl` shows a user at each step.
//!
//! Every actor is a separate OS process talking HTTP to the emulator, exactly as in a cluster;
//! the demo only starts them, kills them, plays the kubelet (through the emulator's admin
//! endpoint) and reads what `kubectl` reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::controller_process::{self, ControllerProcess, Launch};
use crate::heartbeat::{self, Interval};

/// The LeaderPolicy CRD, as committed.
const CRD_YAML: &str =
    include_str!("../../config/crd/bases/coordination.kube-zen.io_leaderpolicies.yaml");

/// Two pools with short timings, so that the expiry failover takes seconds:
/// renewDeadline 4 s + killGrace 1 s < leaseDuration 6 s.
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
---
apiVersion: coordination.kube-zen.io/v1alpha1
kind: LeaderPolicy
metadata:
  name: workers
  namespace: default
spec:
  leaseDurationSeconds: 6
  renewDeadlineSeconds: 4
  retryPeriodSeconds: 1
";

const REPLICAS: [&str; 3] = ["replica-a", "replica-b", "replica-c"];
const WORKERS: [&str; 3] = ["worker-0", "worker-1", "worker-2"];
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
    server_addr: SocketAddr,
    /// Pod UIDs of the exec replicas, by name.
    pod_uids: BTreeMap<String, String>,
    replicas: BTreeMap<String, Process>,
    controller: Option<ControllerProcess>,
    // Declared last: dropped after the replicas and the controller, so they can release.
    _server: Process,
}

/// Where the binaries the demo runs are.
#[derive(Debug, Clone, Default)]
pub struct Binaries {
    /// `zen-lead-exec` (default: next to this executable).
    pub exec: Option<PathBuf>,
    /// `zen-lead-controller` (default: next to this executable).
    pub controller: Option<PathBuf>,
}

/// Runs the demo.
pub async fn run(binaries: Binaries) -> anyhow::Result<()> {
    let exec = match binaries.exec {
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
    let controller = controller_process::locate(binaries.controller)?;
    let started = Instant::now();
    let mut demo = Demo::start(exec, controller).await?;
    let outcome = demo.script(started).await;
    demo.stop();
    outcome
}

impl Demo {
    async fn start(exec: PathBuf, controller: PathBuf) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("zen-lead-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let kubeconfig = dir.join("kubeconfig");
        let heartbeats = dir.join("heartbeats.log");
        std::fs::write(&heartbeats, "").context("creating the heartbeat log")?;

        step("Starting the API server emulator (zen-lead-testkit serve)");
        let (server, server_addr) = start_server(&kubeconfig)?;

        step("Installing the LeaderPolicy CRD and two pools with kubectl");
        std::fs::write(dir.join("crd.yaml"), CRD_YAML).context("writing the CRD")?;
        std::fs::write(dir.join("policies.yaml"), POLICY_YAML).context("writing the policies")?;
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
        show(
            &kubeconfig,
            &["apply", "-f", &path_str(&dir.join("policies.yaml"))?],
        )?;

        step("Starting zen-lead-controller (its own Lease in zen-lead-system)");
        kubectl(&kubeconfig, &["create", "namespace", "zen-lead-system"])?;
        let mut process = Launch {
            exe: controller,
            kubeconfig: kubeconfig.clone(),
            identity: "zen-lead-controller-0".into(),
            log: dir.join("controller.log"),
            rust_log: "info".into(),
            args: Vec::new(),
        }
        .spawn()?;
        process.wait_ready(GIVE_UP).await?;
        println!(
            "  ready: /metrics, /healthz, /readyz on http://{}",
            process.metrics
        );

        Ok(Self {
            replicas: BTreeMap::new(),
            pod_uids: BTreeMap::new(),
            controller: Some(process),
            _server: server,
            server_addr,
            dir,
            kubeconfig,
            heartbeats,
            exec,
        })
    }

    async fn script(&mut self, started: Instant) -> anyhow::Result<()> {
        step("Three pods, each running zen-lead-exec around `sh -c <heartbeat loop>`");
        for name in REPLICAS {
            let pod = self.run_pod(name, "demo")?;
            let uid = pod
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .context("the created pod has no uid")?
                .to_string();
            self.pod_uids.insert(name.to_string(), uid);
        }
        for name in REPLICAS {
            let process = self.start_replica(name, true)?;
            self.replicas.insert(name.to_string(), process);
        }
        let first = self.wait_for_start(0).await?;
        println!("  {} leads, term {}", first.identity, first.term);
        self.wait_for_roles("demo", &first.identity).await?;
        show(&self.kubeconfig, &["get", "lp", "demo"])?;
        show_roles(&self.kubeconfig, "demo")?;
        // Let the leader work for a moment, so the heartbeat log has something to check.
        tokio::time::sleep(Duration::from_secs(1)).await;

        step(
            "Graceful handover: SIGTERM to the leader's zen-lead-exec (it stops its child, then releases)",
        );
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
        // The kubelet restarts the container that exited; it comes back as a follower.
        self.restart_replica(&first.identity).await?;

        step(&format!(
            "Crash whose pod dies: SIGKILL {}'s zen-lead-exec and child; the kubelet reports the restart",
            second.identity
        ));
        // Restart evidence counts against restarts since the holder's last renewal that the
        // controller saw (docs/PROTOCOL.md §8): let the new holder renew first.
        self.wait_for_renewals("demo", 2).await?;
        let evidence_from = Instant::now();
        self.kill_replica(&second.identity)?;
        self.admin_post(&format!("kubelet/pods/default/{}/restart", second.identity))?;
        let third = self.wait_for_start(second.term).await?;
        let evidence = evidence_from.elapsed();
        println!(
            "  {} leads, term {}, {} ms after the kill ({})",
            third.identity,
            third.term,
            evidence.as_millis(),
            self.failover_cause(&third.identity)?
        );
        self.show_lease("demo")?;
        self.restart_replica(&second.identity).await?;

        step(&format!(
            "Crash without evidence: SIGKILL {}'s zen-lead-exec and child; its pod stays Running",
            third.identity
        ));
        let expiry_from = Instant::now();
        self.kill_replica(&third.identity)?;
        let fourth = self.wait_for_start(third.term).await?;
        let expiry = expiry_from.elapsed();
        println!(
            "  {} leads, term {}, {} ms after the kill (the lease expired)",
            fourth.identity,
            fourth.term,
            expiry.as_millis()
        );
        self.wait_for_roles("demo", &fourth.identity).await?;
        show(&self.kubeconfig, &["get", "lp", "demo"])?;
        show_roles(&self.kubeconfig, "demo")?;

        step("Annotation-only pods: three pods with the two annotations, no zen-lead-exec");
        println!("  annotations: zen-lead/pool: workers, zen-lead/join: \"true\"");
        for name in WORKERS {
            self.run_pod(name, "workers")?;
        }
        let worker = self.wait_for_holder("workers", None).await?;
        self.wait_for_roles("workers", &worker).await?;
        show(&self.kubeconfig, &["get", "lp", "workers"])?;
        show_roles(&self.kubeconfig, "workers")?;

        step(&format!(
            "Deleting the leader pod {worker}: its containers stop, the deletion completes"
        ));
        let deleted_from = Instant::now();
        kubectl(
            &self.kubeconfig,
            &["delete", "pod", &worker, "--wait=false"],
        )?;
        // As a kubelet ends a deleted pod: it reports the containers terminated, then the
        // object goes. The report is the evidence; the object's disappearance alone is not.
        self.admin_post(&format!("kubelet/pods/default/{worker}/phase?phase=Failed"))?;
        let successor = self.wait_for_holder("workers", Some(&worker)).await?;
        let deleted = deleted_from.elapsed();
        self.admin_post(&format!("kubelet/pods/default/{worker}/stopped"))?;
        self.wait_for_roles("workers", &successor).await?;
        println!(
            "  {successor} leads, {} ms after the delete ({})",
            deleted.as_millis(),
            self.failover_cause(&successor)?
        );
        show(&self.kubeconfig, &["get", "lp"])?;
        show_roles(&self.kubeconfig, "workers")?;

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
        let _ = writeln!(table, "  {:<34} {:>10}  bound", "event", "measured");
        let mut row = |event: &str, took: Duration, bound: &str| {
            let _ = writeln!(table, "  {event:<34} {:>7} ms  {bound}", took.as_millis());
        };
        row(
            "graceful handover",
            graceful,
            "one watch event after the old child exited",
        );
        row(
            "crash, pod restarted (evidence)",
            evidence,
            "the controller's reaction to the restart, then one watch event",
        );
        row(
            "crash, no evidence (expiry)",
            expiry,
            "leaseDuration (6 s) after the last renewal seen",
        );
        row(
            "annotation-only, pod deleted",
            deleted,
            "the controller's reaction to the deletion",
        );
        print!("{table}");
        println!(
            "  whole demo: {:.1} s; files (logs, heartbeats): {}",
            started.elapsed().as_secs_f64(),
            self.dir.display()
        );
        Ok(())
    }

    /// A Running, Ready pod in `default`, candidate of `pool` (as the kubelet reports it).
    fn run_pod(&self, name: &str, pool: &str) -> anyhow::Result<Value> {
        let pod = json!({
            "metadata": {
                "name": name,
                "annotations": {"zen-lead/pool": pool, "zen-lead/join": "true"},
            },
        });
        self.admin_post_json("kubelet/pods/default", &pod)
    }

    /// Starts `zen-lead-exec` in the pod `name`, with the env its pod spec would give it.
    fn start_replica(&self, name: &str, print: bool) -> anyhow::Result<Process> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .context("opening a replica log")?;
        let uid = self
            .pod_uids
            .get(name)
            .with_context(|| format!("no pod for {name}"))?;
        let args = [
            "--pool",
            "demo",
            "--kill-grace",
            "1s",
            "--",
            "sh",
            "-c",
            heartbeat::SCRIPT,
        ];
        if print {
            println!(
                "  POD_NAME={name} POD_NAMESPACE=default POD_UID={uid} {} --pool demo --kill-grace 1s -- sh -c \"$HEARTBEAT\"",
                self.exec.display()
            );
        }
        let child = Command::new(&self.exec)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", "default")
            .env("POD_UID", uid)
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

    /// The kubelet restarts a container that exited: the same pod, a new process.
    async fn restart_replica(&mut self, name: &str) -> anyhow::Result<()> {
        if let Some(mut old) = self.replicas.remove(name) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(old.child.try_wait(), Ok(None)) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let process = self.start_replica(name, false)?;
        self.replicas.insert(name.to_string(), process);
        println!("  {name}: its container restarted; it follows");
        Ok(())
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

    /// Waits until the pool's status names a holder other than `not`; returns it.
    async fn wait_for_holder(&self, pool: &str, not: Option<&str>) -> anyhow::Result<String> {
        let deadline = Instant::now() + GIVE_UP;
        loop {
            let holder = kubectl(
                &self.kubeconfig,
                &[
                    "get",
                    "lp",
                    pool,
                    "-o",
                    "jsonpath={.status.currentHolder.name}",
                ],
            )?;
            if !holder.is_empty() && Some(holder.as_str()) != not {
                return Ok(holder);
            }
            if Instant::now() > deadline {
                bail!(
                    "pool {pool} got no new holder within {GIVE_UP:?}; see {}",
                    self.dir.join("controller.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the controller has written `leader` on `leader` and `follower` on every other
    /// candidate of `pool`, and the pool's status names `leader`.
    async fn wait_for_roles(&self, pool: &str, leader: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + GIVE_UP;
        loop {
            let roles = kubectl(
                &self.kubeconfig,
                &[
                    "get",
                    "pods",
                    "-l",
                    &format!("zen-lead/pool={pool}"),
                    "-o",
                    "jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.zen-lead/role} {end}",
                ],
            )?;
            let holder = kubectl(
                &self.kubeconfig,
                &[
                    "get",
                    "lp",
                    pool,
                    "-o",
                    "jsonpath={.status.currentHolder.name}",
                ],
            )?;
            let pairs: Vec<(&str, &str)> = roles
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .collect();
            let settled = holder == leader
                && pairs.iter().any(|(name, _)| *name == leader)
                && pairs.iter().all(|(name, role)| {
                    *role
                        == if *name == leader {
                            "leader"
                        } else {
                            "follower"
                        }
                });
            if settled {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the controller did not write {pool}'s roles for leader {leader} within {GIVE_UP:?} (status: {holder:?}, roles: {roles}); see {}",
                    self.dir.join("controller.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the pool's Lease has been written `n` more times (renewals).
    async fn wait_for_renewals(&self, pool: &str, n: usize) -> anyhow::Result<()> {
        let version = || {
            kubectl(
                &self.kubeconfig,
                &[
                    "get",
                    "lease",
                    pool,
                    "-o",
                    "jsonpath={.metadata.resourceVersion}",
                ],
            )
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = vec![version()?];
        while seen.len() <= n {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the Lease {pool} was not renewed {n} times within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = version()?;
            if seen.last() != Some(&now) {
                seen.push(now);
            }
        }
        Ok(())
    }

    /// What moved the pool to `leader`, from the controller's `Failover` Event.
    fn failover_cause(&self, leader: &str) -> anyhow::Result<&'static str> {
        let messages = kubectl(
            &self.kubeconfig,
            &[
                "get",
                "events",
                "--field-selector",
                "reason=Failover",
                "-o",
                "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
            ],
        )?;
        Ok(
            if messages.contains(&format!("moved to {leader} on evidence")) {
                "the controller handed over on evidence"
            } else {
                "no evidence reached the controller in time: the lease expired"
            },
        )
    }

    fn show_lease(&self, pool: &str) -> anyhow::Result<()> {
        let out = kubectl(
            &self.kubeconfig,
            &[
                "get",
                "lease",
                pool,
                "-o",
                "jsonpath={.spec.holderIdentity} term={.spec.leaseTransitions} renewer={.metadata.annotations.zen-lead/renewer}",
            ],
        )?;
        println!("  kubectl get lease {pool}: {out}");
        Ok(())
    }

    fn admin_post(&self, path: &str) -> anyhow::Result<Value> {
        admin(self.server_addr, path, None)
    }

    fn admin_post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        admin(self.server_addr, path, Some(body))
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
        if let Some(mut controller) = self.controller.take() {
            controller.stop(Duration::from_secs(10));
        }
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

fn start_server(kubeconfig: &Path) -> anyhow::Result<(Process, SocketAddr)> {
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
            let addr: SocketAddr = url
                .trim_start_matches("http://")
                .parse()
                .with_context(|| format!("the server's address {url}"))?;
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((process, addr));
        }
    }
    bail!("zen-lead-testkit serve exited before it was ready")
}

/// A POST to the emulator's admin endpoint (the demo's kubelet); the JSON answer.
fn admin(addr: SocketAddr, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("connecting to {addr} (admin)"))?;
    write!(
        stream,
        "POST /testkit/{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .context("sending an admin request")?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .context("reading an admin answer")?;
    let (head, payload) = response
        .split_once("\r\n\r\n")
        .context("a malformed admin answer")?;
    let ok = head
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    if !ok {
        bail!(
            "admin POST /testkit/{path}: {}: {payload}",
            head.lines().next().unwrap_or_default()
        );
    }
    serde_json::from_str(payload).with_context(|| format!("admin POST /testkit/{path}: {payload}"))
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

/// Runs kubectl and prints the command and its output, as a user would see them.
fn show(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = kubectl(kubeconfig, args)?;
    println!("  $ kubectl {}", args.join(" "));
    for line in out.lines() {
        println!("  {line}");
    }
    Ok(())
}

/// `kubectl get pods` of a pool with the role column.
fn show_roles(kubeconfig: &Path, pool: &str) -> anyhow::Result<()> {
    show(
        kubeconfig,
        &[
            "get",
            "pods",
            "-l",
            &format!("zen-lead/pool={pool}"),
            "-L",
            "zen-lead/role",
        ],
    )
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
