//! The Python peer: a virtualenv the benchmark creates (under `bench/target/python/`) with the
//! official `kubernetes` client (version 37 or later) installed from PyPI, and the candidate
//! script `bench/python/candidate.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The requirement installed into the virtualenv.
pub const REQUIREMENT: &str = "kubernetes>=37";

const SCRIPT: &str = include_str!("../python/candidate.py");

/// A ready Python peer.
#[derive(Debug, Clone)]
pub struct PythonPeer {
    /// The virtualenv's interpreter.
    pub python: PathBuf,
    /// The candidate script.
    pub script: PathBuf,
    /// The installed `kubernetes` version.
    pub version: String,
}

/// The Python peer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    /// No `python3` on PATH.
    #[error(
        "python3 was not found on PATH: the python-kubernetes column needs Python 3 with the venv module (Debian: apt-get install python3 python3-venv)"
    )]
    Missing,
    /// A setup command could not run or failed.
    #[error("{step} failed: {detail}")]
    Step {
        /// What was being done.
        step: String,
        /// Its output or error.
        detail: String,
    },
}

/// The virtualenv's directory.
pub fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/python")
}

/// Creates the virtualenv and installs the client when they are missing; reuses them
/// otherwise.
pub fn ensure() -> Result<PythonPeer, PythonError> {
    let dir = venv_dir();
    let python = dir.join("bin/python");
    let script = dir.join("zen_lead_bench_candidate.py");
    let step = |step: &str, detail: String| PythonError::Step {
        step: step.to_string(),
        detail,
    };
    if installed_version(&python).is_none() {
        if which("python3").is_none() {
            return Err(PythonError::Missing);
        }
        eprintln!(
            "zen-lead-bench: creating a Python virtualenv in {} and installing {REQUIREMENT:?} from PyPI",
            dir.display()
        );
        run(Command::new("python3").arg("-m").arg("venv").arg(&dir))
            .map_err(|d| step("python3 -m venv", d))?;
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(REQUIREMENT))
        .map_err(|d| step(&format!("pip install {REQUIREMENT}"), d))?;
    }
    let version = installed_version(&python)
        .ok_or_else(|| step("import kubernetes", "not importable after install".into()))?;
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 37 {
        return Err(step(
            "checking the kubernetes version",
            format!(
                "{version} is older than 37; remove {} to reinstall",
                dir.display()
            ),
        ));
    }
    std::fs::write(&script, SCRIPT)
        .map_err(|e| step("writing the candidate script", e.to_string()))?;
    Ok(PythonPeer {
        python,
        script,
        version,
    })
}

fn installed_version(python: &Path) -> Option<String> {
    if !python.exists() {
        return None;
    }
    let out = Command::new(python)
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
