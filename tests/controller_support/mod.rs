//! Helpers for black-box tests that run the real `zen-lead-controller` binary beside
//! `zen-lead-exec` against the testkit API server: locating the binary, starting replicas,
//! pods from the testkit's kubelet simulation, and reading what a user reads.
//!
//! The controller is another package of the workspace, so Cargo gives these tests no
//! `CARGO_BIN_EXE_` path for it: `cargo test --workspace` builds it into the same target
//! directory (the controller's own integration tests need it), and [`exe`] finds it there and
//! refuses a binary older than its sources.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use zen_lead_testkit::TestServer;
pub use zen_lead_testkit::controller_process::{ControllerProcess, Launch};

/// The controller's own Lease timings in tests: short, so an HA failover takes seconds.
pub const OWN_LEASE: [&str; 6] = [
    "--lease-duration",
    "4s",
    "--renew-deadline",
    "2s",
    "--retry-period",
    "500ms",
];

/// The `zen-lead-controller` binary of this build, checked to be newer than its sources.
pub fn exe() -> PathBuf {
    let tests = std::env::current_exe().expect("the test executable");
    // target/<profile>/deps/<test> -> target/<profile>/zen-lead-controller
    let profile_dir = tests
        .parent()
        .and_then(Path::parent)
        .expect("the target profile directory");
    let binary = profile_dir.join("zen-lead-controller");
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: `cargo test --workspace` builds it; for one test file run `cargo build -p zen-lead-controller` first",
                binary.display()
            )
        });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sources in ["controller/src", "src"] {
        if let Some(newest) = newest(&root.join(sources)) {
            assert!(
                newest <= built,
                "{} is older than {sources}/: rebuild it with `cargo build -p zen-lead-controller` (or run `cargo test --workspace`)",
                binary.display()
            );
        }
    }
    binary
}

fn newest(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            self::newest(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(time);
    }
    newest
}

/// A controller replica against the server of `kubeconfig`, with the short own-Lease timings,
/// logging into `log`.
pub fn launch(kubeconfig: &Path, identity: &str, log: PathBuf) -> Launch {
    Launch {
        exe: exe(),
        kubeconfig: kubeconfig.to_path_buf(),
        identity: identity.into(),
        log,
        rust_log: "info,kube=warn".into(),
        args: OWN_LEASE.iter().map(|s| s.to_string()).collect(),
    }
}

/// A Running, Ready candidate pod of `pool` in `default`; returns its UID.
pub fn candidate_pod(server: &TestServer, pool: &str, name: &str) -> String {
    let pod = server
        .kubelet()
        .run_pod(
            "default",
            json!({"metadata": {
                "name": name,
                "annotations": {"zen-lead/pool": pool, "zen-lead/join": "true"},
            }}),
        )
        .unwrap_or_else(|e| panic!("run pod {name}: {e:?}"));
    pod.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("pod uid")
        .to_string()
}

/// A LeaderPolicy manifest for `pool` in `default` with the given timings (seconds).
pub fn policy_yaml(pool: &str, lease: u32, renew: u32, retry: u32) -> String {
    format!(
        "apiVersion: coordination.kube-zen.io/v1alpha1\nkind: LeaderPolicy\nmetadata:\n  name: {pool}\n  namespace: default\nspec:\n  leaseDurationSeconds: {lease}\n  renewDeadlineSeconds: {renew}\n  retryPeriodSeconds: {retry}\n"
    )
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` naming `what`.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
