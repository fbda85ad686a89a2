//! Figure 4: what `zen-lead-exec` adds in front of a command. No peer has a wrapper, so the
//! comparison is with running the command directly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};
use zen_lead_testkit::TestServer;

use crate::Settings;
use crate::contender::NAMESPACE;

/// The argument that makes this binary print its start time and exit (the measured child).
pub const STAMP_ARG: &str = "stamp";

/// Measuring the wrapper failed.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// Reading CLOCK_MONOTONIC failed.
    #[error("reading CLOCK_MONOTONIC")]
    Clock(#[source] nix::Error),
    /// Locating this binary (the measured child) failed.
    #[error("locating the bench binary")]
    CurrentExe(#[source] std::io::Error),
    /// `cargo build` for a binary of the main workspace could not run or failed.
    #[error("building {0} with cargo: {1}")]
    Build(String, String),
    /// The binary does not exist.
    #[error("{0} does not exist")]
    MissingBinary(PathBuf),
    /// A command could not be started.
    #[error("running {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// The child's stamp was not a number.
    #[error("reading the child's stamp {0:?}")]
    Stamp(String),
    /// The wrapper's `/proc` status could not be read.
    #[error("reading /proc/{pid}/status")]
    ProcStatus {
        /// The wrapper.
        pid: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A field was missing from `/proc/PID/status`.
    #[error("no {field} in /proc/{pid}/status")]
    ProcField {
        /// The wrapper.
        pid: u32,
        /// The field.
        field: &'static str,
    },
    /// The wrapper did not start its child.
    #[error("the wrapper did not start its child within 30 s")]
    NoChild,
    /// The measuring task died.
    #[error("the measuring task failed")]
    Task(#[source] tokio::task::JoinError),
}

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
pub fn monotonic_nanos() -> Result<u128, MeasureError> {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).map_err(MeasureError::Clock)?;
    Ok(t.tv_sec() as u128 * 1_000_000_000 + t.tv_nsec() as u128)
}

/// Measures the wrapper against the server (pool `exec-bench`, left empty between runs).
pub async fn measure(
    server: &TestServer,
    settings: &Settings,
    bin: &Path,
) -> Result<ExecOverhead, MeasureError> {
    let bin = bin.to_path_buf();
    let kubeconfig = server.kubeconfig_path().to_path_buf();
    let me = std::env::current_exe().map_err(MeasureError::CurrentExe)?;
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
                .map_err(|_| MeasureError::MissingBinary(bin.clone()))?
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
    .map_err(MeasureError::Task)?
}

fn program(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// Runs `cmd` to the end; fails unless it exits 0.
fn output(cmd: &mut Command) -> Result<std::process::Output, MeasureError> {
    let out = cmd.output().map_err(|source| MeasureError::Spawn {
        program: program(cmd),
        source,
    })?;
    if !out.status.success() {
        return Err(MeasureError::Failed {
            program: program(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Spawn to the child's stamp: the child prints CLOCK_MONOTONIC first thing in `main`.
fn run_stamp(mut cmd: Command) -> Result<Duration, MeasureError> {
    let start = monotonic_nanos()?;
    let out = output(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stamp: u128 = text.parse().map_err(|_| MeasureError::Stamp(text))?;
    Ok(Duration::from_nanos(
        stamp.saturating_sub(start).try_into().unwrap_or(u64::MAX),
    ))
}

fn run_total(mut cmd: Command) -> Result<Duration, MeasureError> {
    let start = Instant::now();
    output(cmd.stdout(Stdio::null()).stderr(Stdio::piped()))?;
    Ok(start.elapsed())
}

/// VmRSS and VmHWM of the wrapper once its child is running.
fn wrapper_rss(mut cmd: Command) -> Result<(u64, u64), MeasureError> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| MeasureError::Spawn {
            program: program(&cmd),
            source,
        })?;
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
            break Err(MeasureError::NoChild);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if result.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    result
}

fn read_status(pid: u32) -> Result<(u64, u64), MeasureError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|source| MeasureError::ProcStatus { pid, source })?;
    let field = |field: &'static str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(MeasureError::ProcField { pid, field })
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
pub fn ensure_binary(bin: Option<&Path>) -> Result<PathBuf, MeasureError> {
    ensure_workspace_binary(bin, "zen-lead-exec")
}

/// The binary given, or else `name` of the main workspace, built (or found up to date) into its
/// `target/release/` with `cargo build --release --workspace --bins`: the documented build, so
/// that its feature set matches and nothing is built twice.
pub fn ensure_workspace_binary(bin: Option<&Path>, name: &str) -> Result<PathBuf, MeasureError> {
    let bin = match bin {
        Some(bin) => bin.to_path_buf(),
        None => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            tracing::info!("building {name} (release)");
            let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["build", "--quiet", "--release", "--workspace", "--bins"])
                .arg("--manifest-path")
                .arg(root.join("Cargo.toml"))
                .env_remove("CARGO_TARGET_DIR")
                .status()
                .map_err(|e| MeasureError::Build(name.to_string(), e.to_string()))?;
            if !status.success() {
                return Err(MeasureError::Build(name.to_string(), status.to_string()));
            }
            root.join("target/release").join(name)
        }
    };
    if !bin.exists() {
        return Err(MeasureError::MissingBinary(bin));
    }
    Ok(bin)
}
