//! `zen-lead-controller` as a child process, for the demo and the controller benchmark: found
//! next to this executable (both are built into the same `target/<profile>/`), talking to the
//! emulator through a kubeconfig like any client, and killed when dropped.
//!
//! The testkit runs the controller as a process instead of linking it: the controller's crate
//! depends on the protocol library, whose tests depend on the testkit.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starting or driving the controller process failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The binary is not where it was looked for.
    #[error(
        "{0} not found: build it first with `cargo build --release --workspace --bins`, or pass --controller PATH"
    )]
    NotFound(PathBuf),
    /// This executable's path is unknown.
    #[error("locating this executable")]
    CurrentExe(#[source] std::io::Error),
    /// A free port for its metrics could not be found.
    #[error("finding a free loopback port")]
    Port(#[source] std::io::Error),
    /// The log file could not be created.
    #[error("creating the controller log {path}")]
    Log {
        /// The log path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process did not start.
    #[error("starting {path}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It exited before it was ready.
    #[error("zen-lead-controller exited ({status}) before it was ready; see {log}")]
    Exited {
        /// How it exited.
        status: std::process::ExitStatus,
        /// Its log.
        log: PathBuf,
    },
    /// `/readyz` did not answer 200 in time.
    #[error("zen-lead-controller was not ready within {within:?}; see {log}")]
    NotReady {
        /// The bound.
        within: Duration,
        /// Its log.
        log: PathBuf,
    },
    /// `/metrics` did not show what was waited for.
    #[error("zen-lead-controller's /metrics did not show {what} within {within:?}; see {log}")]
    Metrics {
        /// What was waited for.
        what: &'static str,
        /// The bound.
        within: Duration,
        /// Its log.
        log: PathBuf,
    },
    /// A signal could not be sent.
    #[error("signalling zen-lead-controller")]
    Signal(#[source] nix::Error),
}

/// The `zen-lead-controller` binary: `explicit`, else next to this executable.
pub fn locate(explicit: Option<PathBuf>) -> Result<PathBuf, ControllerError> {
    let path = match explicit {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(ControllerError::CurrentExe)?
            .with_file_name("zen-lead-controller"),
    };
    if path.exists() {
        Ok(path)
    } else {
        Err(ControllerError::NotFound(path))
    }
}

/// How to start one controller replica.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The binary.
    pub exe: PathBuf,
    /// The kubeconfig it uses.
    pub kubeconfig: PathBuf,
    /// Its identity in its own election (and so its User-Agent).
    pub identity: String,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// `RUST_LOG` for it.
    pub rust_log: String,
    /// Extra arguments (e.g. its own Lease's timings).
    pub args: Vec<String>,
}

/// A running controller replica; SIGKILLed when dropped unless it has exited.
#[derive(Debug)]
pub struct ControllerProcess {
    child: Child,
    /// Its identity.
    pub identity: String,
    /// Its `/metrics`, `/healthz` and `/readyz` address.
    pub metrics: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
}

impl Launch {
    /// Starts the replica on a free loopback metrics port, its own Lease in `zen-lead-system`.
    pub fn spawn(&self) -> Result<ControllerProcess, ControllerError> {
        let metrics = free_port()?;
        let log = std::fs::File::create(&self.log).map_err(|source| ControllerError::Log {
            path: self.log.clone(),
            source,
        })?;
        let child = Command::new(&self.exe)
            .args([
                "--identity",
                &self.identity,
                "--namespace",
                "zen-lead-system",
            ])
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", &self.rust_log)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| ControllerError::Spawn {
                path: self.exe.clone(),
                source,
            })?;
        Ok(ControllerProcess {
            child,
            identity: self.identity.clone(),
            metrics,
            log: self.log.clone(),
        })
    }
}

impl ControllerProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200 (its caches are synced).
    pub async fn wait_ready(&mut self, within: Duration) -> Result<(), ControllerError> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ControllerError::Exited {
                    status,
                    log: self.log.clone(),
                });
            }
            if http_get(self.metrics, "/readyz").is_some_and(|(code, _)| code == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ControllerError::NotReady {
                    within,
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether `/readyz` answers 200 now.
    pub fn is_ready(&self) -> bool {
        http_get(self.metrics, "/readyz").is_some_and(|(code, _)| code == 200)
    }

    /// Waits until `/metrics` satisfies `done`.
    pub async fn wait_metrics(
        &mut self,
        within: Duration,
        what: &'static str,
        done: impl Fn(&str) -> bool,
    ) -> Result<(), ControllerError> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ControllerError::Exited {
                    status,
                    log: self.log.clone(),
                });
            }
            if self.metrics_text().is_some_and(|text| done(&text)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ControllerError::Metrics {
                    what,
                    within,
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of `/metrics`, if it answers.
    pub fn metrics_text(&self) -> Option<String> {
        http_get(self.metrics, "/metrics").map(|(_, body)| body)
    }

    /// Resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM` of /proc/PID/status).
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<u64>().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<(), ControllerError> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        nix::sys::signal::kill(pid, signal).map_err(ControllerError::Signal)
    }

    /// SIGTERM, then waits up to `within` for it to exit; its exit status if it did.
    pub fn stop(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free at the time of asking.
fn free_port() -> Result<SocketAddr, ControllerError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(ControllerError::Port)
}

/// A plain HTTP/1.0 GET on loopback: the status code and body, or `None` if nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Some((code, body))
}
