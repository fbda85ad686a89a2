//! Helpers shared by the `exec_*` black-box tests: run the real `zen-lead-exec` binary (alone or
//! as PID 1 under `unshare --pid --fork`) against the testkit API server, and check heartbeats.
#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// The binary under test.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_zen-lead-exec")
}

/// Fast timings that satisfy `renewDeadline + killGrace < leaseDuration`.
pub const FAST: [&str; 8] = [
    "--lease-duration",
    "4s",
    "--renew-deadline",
    "2s",
    "--retry-period",
    "500ms",
    "--kill-grace",
    "1s",
];

/// [`FAST`] without the kill grace, for the gate (which runs no command to stop).
pub const FAST_TIMINGS: [&str; 6] = [
    "--lease-duration",
    "4s",
    "--renew-deadline",
    "2s",
    "--retry-period",
    "500ms",
];

/// The controller's namespace and own Lease (`deploy/`).
pub const CONTROLLER_NS: &str = "zen-lead-system";
pub const CONTROLLER_LEASE: &str = "zen-lead-controller";

/// The generous limit for "eventually" conditions on a loaded 2-core machine.
pub const EVENTUALLY: Duration = Duration::from_secs(60);

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("zen-lead-exec-{tag}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    /// A path inside.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes an executable shell script and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(name);
        std::fs::write(&path, body).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether PID-namespace tests can run here.
pub fn unshare_available() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Skips the calling test (returns true) with a clear message when unshare is missing. Under
/// CI (the env var `CI` is set, as `.ci/run` does) a missing `unshare` fails the test instead:
/// a skip there would hide that the PID 1 duties went untested.
pub fn skip_without_unshare() -> bool {
    match skip_or_fail(unshare_available(), std::env::var_os("CI").is_some()) {
        Ok(skip) => skip,
        Err(why) => panic!("{why}"),
    }
}

/// Whether to skip (`Ok(true)`), run (`Ok(false)`) or fail (`Err`) a test that needs
/// `unshare`, given whether it is `available` and whether this is `ci`.
pub fn skip_or_fail(available: bool, ci: bool) -> Result<bool, String> {
    let why = "`unshare --pid --fork` is not available (it needs util-linux and root)";
    match (available, ci) {
        (true, _) => Ok(false),
        (false, true) => Err(format!(
            "{why}, and CI is set: the PID 1 tests must run in CI"
        )),
        (false, false) => {
            eprintln!("SKIPPED: {why}; with CI set this is a failure");
            Ok(true)
        }
    }
}

/// A running wrapper process; killed (its whole process group) on drop.
#[derive(Debug)]
pub struct Wrapper {
    child: Option<Child>,
    /// The pid of `zen-lead-exec` itself (inside a PID namespace it is PID 1 there).
    pub pid: Pid,
    pub stderr_path: PathBuf,
}

/// How to start a wrapper.
#[derive(Debug, Clone)]
pub struct Launch {
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub pid1: bool,
    pub stderr_path: PathBuf,
}

impl Launch {
    /// `zen-lead-exec ARGS` with `KUBECONFIG` and stderr captured in `stderr_path`.
    pub fn new(kubeconfig: &Path, stderr_path: PathBuf) -> Self {
        Self {
            args: Vec::new(),
            env: vec![(
                "KUBECONFIG".into(),
                kubeconfig.to_string_lossy().into_owned(),
            )],
            pid1: false,
            stderr_path,
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an env var.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs as PID 1 of a new PID namespace.
    pub fn pid1(self) -> Self {
        self.pid1_when(true)
    }

    /// Runs as PID 1 of a new PID namespace if `on`, else as a plain child of the test.
    pub fn pid1_when(mut self, on: bool) -> Self {
        self.pid1 = on;
        self
    }

    /// Starts the process.
    pub fn spawn(self) -> Wrapper {
        let mut cmd = if self.pid1 {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--kill-child"]).arg(exe());
            c
        } else {
            Command::new(exe())
        };
        let stderr = std::fs::File::create(&self.stderr_path).expect("stderr file");
        cmd.args(&self.args)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("RUST_LOG")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .env_remove("POD_UID");
        // Hermetic: no setting leaks in from the environment the tests run in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ZEN_LEAD_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        let child = cmd.spawn().expect("spawn zen-lead-exec");
        let outer = Pid::from_raw(child.id() as i32);
        let pid = if self.pid1 {
            wait_for_only_child(outer).unwrap_or(outer)
        } else {
            outer
        };
        Wrapper {
            child: Some(child),
            pid,
            stderr_path: self.stderr_path,
        }
    }
}

/// The single child of `parent` (unshare's forked PID 1), once it exists.
fn wait_for_only_child(parent: Pid) -> Option<Pid> {
    let until = Instant::now() + EVENTUALLY;
    while Instant::now() < until {
        let kids = children_of(parent);
        if let Some(first) = kids.first() {
            return Some(*first);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Host pids whose parent is `parent`.
pub fn children_of(parent: Pid) -> Vec<Pid> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == parent.as_raw())
        .map(|p| Pid::from_raw(p.pid))
        .collect()
}

/// Every descendant of `root` on the host (not `root` itself).
pub fn descendants(root: Pid) -> Vec<Pid> {
    let procs = processes();
    let mut found = vec![root.as_raw()];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(procs.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    found.into_iter().skip(1).map(Pid::from_raw).collect()
}

/// One line of /proc/PID/stat.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
    pub pgrp: i32,
}

/// Every process on the host.
pub fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may contain spaces: fields start after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            let pgrp = fields.next()?.parse().ok()?;
            Some(Proc {
                pid,
                ppid,
                state,
                pgrp,
            })
        })
        .collect()
}

impl Wrapper {
    /// Sends a signal to zen-lead-exec itself.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid, signal).expect("signal wrapper");
    }

    /// Waits for the process (unshare passes the exit status of PID 1 on) up to `limit`.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        let child = self.child.as_mut()?;
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits (EVENTUALLY) and returns the exit code; panics with stderr when it does not end.
    pub fn exit_code(&mut self) -> i32 {
        match self.wait_timeout(EVENTUALLY) {
            Some(status) => status.code().unwrap_or_else(|| {
                panic!("wrapper killed by a signal: {status:?}\n{}", self.stderr())
            }),
            None => panic!("wrapper did not exit\n{}", self.stderr()),
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Captured stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILLs the whole process group (and with it, for PID 1, the whole namespace) and every
    /// descendant (the wrapper's child leads a process group of its own).
    pub fn kill_all(&mut self) {
        if let Some(mut child) = self.child.take() {
            let outer = Pid::from_raw(child.id() as i32);
            for pid in descendants(outer) {
                let _ = kill(pid, Signal::SIGKILL);
            }
            let _ = killpg(outer, Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Polls `cond` until true or EVENTUALLY passes.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + EVENTUALLY;
    while Instant::now() < until {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

pub use zen_lead_testkit::heartbeat::Interval;

/// Parses a heartbeat file into per-term intervals; panics on a malformed file.
pub fn intervals(text: &str) -> Vec<Interval> {
    zen_lead_testkit::heartbeat::intervals(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The single-active checker (see `zen_lead_testkit::heartbeat`); panics when it fails.
pub fn check_single_active(text: &str) -> Vec<Interval> {
    zen_lead_testkit::heartbeat::check_single_active(text).unwrap_or_else(|e| panic!("{e}"))
}

/// `path` (relative to the repository root) as an absolute path.
pub fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The testkit API server, kept running on its own runtime while a sync test drives processes.
pub struct ApiServer {
    // Declared first: dropped (stopped) before its runtime.
    pub server: zen_lead_testkit::TestServer,
    pub rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.server.url())
            .finish()
    }
}

impl ApiServer {
    /// Starts a plain-HTTP server on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(zen_lead_testkit::TestServer::builder())
    }

    /// Starts an HTTPS server that requires bearer tokens and evaluates RBAC (kubectl sends
    /// tokens only over TLS).
    pub fn start_with_auth() -> Self {
        Self::start_with(zen_lead_testkit::TestServer::builder().auth(true).tls(true))
    }

    /// Starts a server from `builder` (auth, TLS, the process kubelet, ...).
    pub fn start_with(builder: zen_lead_testkit::Builder) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(builder.start()).expect("start testkit server");
        Self { server, rt }
    }

    /// Its kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        self.server.kubeconfig_path()
    }

    /// A launch of `zen-lead-exec` against this server, stderr in `scratch`.
    pub fn launch(&self, scratch: &Scratch, name: &str) -> Launch {
        Launch::new(self.kubeconfig(), scratch.path(&format!("{name}.stderr")))
    }

    /// A `kubectl` command against this server; add the subcommand and run it.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(self.kubeconfig());
        command
    }

    /// The pool's Lease record, if it exists.
    pub fn lease(&self, pool: &str) -> Option<zen_lead::lease::record::LeaseRecord> {
        self.lease_in("default", pool)
    }

    /// The Lease `namespace/name`'s record, if it exists.
    pub fn lease_in(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<zen_lead::lease::record::LeaseRecord> {
        use k8s_openapi::api::coordination::v1::Lease;
        let _runtime = self.rt.enter();
        let client = self.server.client().expect("client");
        self.rt.block_on(async {
            let api: kube::Api<Lease> = kube::Api::namespaced(client, namespace);
            api.get_opt(name)
                .await
                .expect("get lease")
                .map(|l| zen_lead::lease::record::LeaseRecord::from_lease(&l))
        })
    }

    /// The client identity (User-Agent) zen-lead-exec uses for `identity`.
    pub fn agent(identity: &str) -> String {
        zen_lead::client::user_agent(identity)
    }

    /// The controller's namespace, as the install creates it (`deploy/00-namespace.yaml`).
    pub fn controller_namespace(&self) {
        self.kubectl_ok(&[
            "apply",
            "-f",
            &repo_path("deploy/00-namespace.yaml").to_string_lossy(),
        ]);
    }

    /// Writes the controller's own Lease (creating its namespace) as a controller replica
    /// `ctl-0` would have, last renewed `ago` before now, with `duration` seconds.
    pub fn write_controller_lease(&self, ago: Duration, duration: i32) {
        use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
        self.controller_namespace();
        let renewed =
            jiff::Timestamp::now() - jiff::SignedDuration::try_from(ago).expect("duration");
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(CONTROLLER_LEASE.into()),
                namespace: Some(CONTROLLER_NS.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("ctl-0".into()),
                acquire_time: Some(MicroTime(renewed)),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
        };
        let _runtime = self.rt.enter();
        let client = self.server.client().expect("client");
        self.rt.block_on(async {
            let leases: kube::Api<Lease> = kube::Api::namespaced(client, CONTROLLER_NS);
            leases
                .create(&kube::api::PostParams::default(), &lease)
                .await
                .expect("create the controller's Lease");
        });
    }

    /// Partitions (or heals) one replica from the API server.
    pub fn blackhole(&self, identity: &str, on: bool) {
        self.server
            .faults()
            .blackhole(Some(&Self::agent(identity)), on);
    }
}

impl Launch {
    /// Adds `--` and a program path with no arguments.
    pub fn arg_path(self, program: &Path) -> Self {
        let program = program.as_os_str().to_owned();
        self.args([OsString::from("--"), program])
    }
}

/// What a fencing-aware sink would accept: in file (arrival) order, a line is accepted only if
/// its term is not below the highest term already seen. Returns (accepted text, rejected count).
pub fn fence(text: &str) -> (String, usize) {
    let mut highest = 0u64;
    let mut accepted = String::new();
    let mut rejected = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let term: u64 = line
            .split(',')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("bad heartbeat line {line:?}"));
        if term < highest {
            rejected += 1;
            continue;
        }
        highest = term;
        accepted.push_str(line);
        accepted.push('\n');
    }
    (accepted, rejected)
}

/// One pool of heartbeat replicas against its own testkit API server: children append
/// `term,start|beat|stop,nanos,identity` lines to one shared file for the single-active checker.
pub struct Pool {
    pub api: ApiServer,
    pub scratch: Scratch,
    pub name: String,
    pub hb: PathBuf,
}

impl Pool {
    pub fn new(name: &str) -> Self {
        let scratch = Scratch::new(name);
        let hb = scratch.path("heartbeats");
        let _ = scratch.script("hb.sh", zen_lead_testkit::heartbeat::SCRIPT);
        Self {
            api: ApiServer::start(),
            scratch,
            name: name.to_owned(),
            hb,
        }
    }

    /// A heartbeat replica with `identity` and extra flags.
    pub fn replica(&self, identity: &str, extra: &[&str], pid1: bool) -> Wrapper {
        self.api
            .launch(&self.scratch, identity)
            .args(["--pool", self.name.as_str(), "--identity", identity])
            .args(FAST)
            .args(extra.iter().copied())
            .env("HB", self.hb.to_string_lossy())
            .arg_path(&self.scratch.path("hb.sh"))
            .pid1_when(pid1)
            .spawn()
    }

    /// `n` heartbeat replicas `r0`, `r1`, … with no extra flags.
    pub fn replicas(&self, n: usize, pid1: bool) -> Vec<Wrapper> {
        (0..n)
            .map(|i| self.replica(&format!("r{i}"), &[], pid1))
            .collect()
    }

    pub fn heartbeats(&self) -> String {
        std::fs::read_to_string(&self.hb).unwrap_or_default()
    }

    pub fn terms(&self) -> Vec<Interval> {
        intervals(&self.heartbeats())
    }

    pub fn holder(&self) -> Option<String> {
        self.api.lease(&self.name).and_then(|r| r.holder)
    }

    /// Waits until the child of a term above `after` has beaten `beats` times; returns it.
    pub fn wait_for_term_after(&self, after: u64, beats: usize) -> Interval {
        let mut found = None;
        eventually(&format!("a child of a term after {after} to run"), || {
            let text = self.heartbeats();
            let Some(last) = intervals(&text).last().cloned() else {
                return false;
            };
            let n = text
                .lines()
                .filter(|l| l.starts_with(&format!("{},beat,", last.term)))
                .count();
            let ok = last.term > after && n >= beats;
            found = Some(last);
            ok
        });
        found.expect("a term")
    }

    /// Waits until a child of a term after `first`'s has beaten `beats` times, and checks that
    /// another replica runs it.
    pub fn wait_for_successor(&self, first: &Interval, beats: usize) {
        let second = self.wait_for_term_after(first.term, beats);
        assert_ne!(first.identity, second.identity);
    }

    /// Waits for the first running leader; returns its identity.
    pub fn wait_for_running_leader(&self, beats: usize) -> String {
        self.wait_for_term_after(0, beats).identity
    }

    pub fn check(&self) -> Vec<Interval> {
        check_single_active(&self.heartbeats())
    }
}

/// Wall-clock nanoseconds, as the heartbeats record them.
pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

/// `N` of identity `rN`.
pub fn index_of(identity: &str) -> usize {
    identity.trim_start_matches('r').parse().expect("rN")
}

impl ApiServer {
    /// `kubectl apply -f -` of `yaml`, retried until the server accepts it (a CRD is served only
    /// once established).
    pub fn apply(&self, yaml: &str) {
        eventually("kubectl apply to succeed", || {
            self.kubectl()
                .args(["apply", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().expect("stdin").write_all(yaml.as_bytes())?;
                    c.wait()
                })
                .is_ok_and(|s| s.success())
        });
    }

    /// Runs `kubectl ARGS` and panics with its stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) {
        let out = self.kubectl().args(args).output().expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
