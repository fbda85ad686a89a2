//! Figure 4: what `zen-lead-exec` adds in front of a command. No peer has a wrapper, so the
//! comparison is with running the command directly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::time::{ClockId, clock_gettime};
use zen_lead_testkit::TestServer;

use crate::Settings;
use crate::contender::NAMESPACE;

/// The argument that makes this binary print its start time and exit (the measured child).
pub const STAMP_ARG: &str = "stamp";

/// What the wrapper costs.
#[derive(Debug, Clone)]
pub struct ExecOverhead {
    /// Spawn to the child's first instruction (its `main`), run directly; one per run.
    pub direct_start: Vec<Duration>,
    /// The same through `zen-lead-exec` with an empty lease.
    pub wrapped_start: Vec<Duration>,
    /// Whole run of `true`, directly.
    pub direct_total: Vec<Duration>,
    /// Whole run of `zen-lead-exec -- true` (includes acquiring and releasing the lease).
    pub wrapped_total: Vec<Duration>,
    /// Wrapper resident set while its child runs (kB).
    pub rss_kb: u64,
    /// Wrapper peak resident set (kB).
    pub hwm_kb: u64,
    /// Size of the release binary (bytes).
    pub binary_bytes: u64,
    /// Whether the binary has no symbol table.
    pub stripped: bool,
    /// The binary measured.
    pub binary: PathBuf,
}

/// Nanoseconds on CLOCK_MONOTONIC, which every process on the machine shares.
pub fn monotonic_nanos() -> anyhow::Result<u128> {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).context("clock_gettime")?;
    Ok(t.tv_sec() as u128 * 1_000_000_000 + t.tv_nsec() as u128)
}

/// Measures the wrapper against the server (pool `exec-bench`, left empty between runs).
pub async fn measure(server: &TestServer, settings: &Settings) -> anyhow::Result<ExecOverhead> {
    let bin = ensure_binary(settings.exec_bin.as_deref())?;
    let kubeconfig = server.kubeconfig_path().to_path_buf();
    let me = std::env::current_exe().context("locating the bench binary")?;
    let runs = settings.exec_runs.max(1);
    tokio::task::spawn_blocking(move || {
        let wrapper = |cmd: &[&Path]| {
            let mut c = Command::new(&bin);
            c.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("KUBECONFIG", &kubeconfig)
                .args(["--pool", "exec-bench", "--namespace", NAMESPACE])
                .args(["--identity", "exec-bench-0", "--"])
                .args(cmd);
            c
        };
        let true_bin = Path::new("true");
        // Warm-up: creates the Lease (then released, so every measured run finds it empty) and
        // pages the binaries in.
        run_total(wrapper(&[true_bin]))?;
        run_total(Command::new(true_bin))?;
        let mut out = ExecOverhead {
            direct_start: Vec::new(),
            wrapped_start: Vec::new(),
            direct_total: Vec::new(),
            wrapped_total: Vec::new(),
            rss_kb: 0,
            hwm_kb: 0,
            binary_bytes: std::fs::metadata(&bin)
                .with_context(|| format!("reading {}", bin.display()))?
                .len(),
            stripped: is_stripped(&bin),
            binary: bin.clone(),
        };
        for _ in 0..runs {
            let mut direct = Command::new(&me);
            direct.arg(STAMP_ARG);
            out.direct_start.push(run_stamp(direct)?);
            out.wrapped_start
                .push(run_stamp(wrapper(&[me.as_path(), Path::new(STAMP_ARG)]))?);
            out.direct_total.push(run_total(Command::new(true_bin))?);
            out.wrapped_total.push(run_total(wrapper(&[true_bin]))?);
        }
        let (rss, hwm) = wrapper_rss(wrapper(&[Path::new("sleep"), Path::new("3")]))?;
        out.rss_kb = rss;
        out.hwm_kb = hwm;
        Ok(out)
    })
    .await
    .context("the wrapper measurement task failed")?
}

/// Spawn to the child's stamp: the child prints CLOCK_MONOTONIC first thing in `main`.
fn run_stamp(mut cmd: Command) -> anyhow::Result<Duration> {
    let start = monotonic_nanos()?;
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("running the stamp child")?;
    anyhow::ensure!(
        out.status.success(),
        "{:?} failed: {}; {}",
        cmd.get_program(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let stamp: u128 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("reading the child's stamp")?;
    Ok(Duration::from_nanos(
        stamp.saturating_sub(start).try_into().unwrap_or(u64::MAX),
    ))
}

fn run_total(mut cmd: Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    let took = start.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "{:?} failed: {}; {}",
        cmd.get_program(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(took)
}

/// VmRSS and VmHWM of the wrapper once its child is running.
fn wrapper_rss(mut cmd: Command) -> anyhow::Result<(u64, u64)> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the wrapper")?;
    let pid = child.id();
    let children = format!("/proc/{pid}/task/{pid}/children");
    let started = Instant::now();
    let result = loop {
        let running = std::fs::read_to_string(&children).unwrap_or_default();
        if !running.trim().is_empty() {
            // Let the wrapper settle into its steady state (renewing, waiting for the child).
            std::thread::sleep(Duration::from_millis(1000));
            break read_status(pid);
        }
        if started.elapsed() > Duration::from_secs(30) {
            break Err(anyhow::anyhow!(
                "the wrapper did not start its child within 30 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if result.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    result
}

fn read_status(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading the wrapper's /proc status")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// An ELF file without a `.symtab` section has been stripped.
fn is_stripped(bin: &Path) -> bool {
    std::fs::read(bin)
        .map(|bytes| !bytes.windows(8).any(|w| w == b".symtab\0"))
        .unwrap_or(false)
}

/// The binary given, or else `zen-lead-exec` built (or found up to date) with the root
/// package's release profile, which is the one shipped.
fn ensure_binary(bin: Option<&Path>) -> anyhow::Result<PathBuf> {
    let bin = match bin {
        Some(bin) => bin.to_path_buf(),
        None => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            tracing::info!("building zen-lead-exec (release)");
            let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["build", "--quiet", "--release", "--bin", "zen-lead-exec"])
                .arg("--manifest-path")
                .arg(root.join("Cargo.toml"))
                .env_remove("CARGO_TARGET_DIR")
                .status()
                .context("running cargo build for zen-lead-exec")?;
            anyhow::ensure!(status.success(), "building zen-lead-exec failed: {status}");
            root.join("target/release/zen-lead-exec")
        }
    };
    anyhow::ensure!(bin.exists(), "{} does not exist", bin.display());
    Ok(bin)
}
