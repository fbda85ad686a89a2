//! `zen-lead-controller` runs the way its `FROM scratch` image runs it (images/README.md): with
//! an empty environment, from an empty read-only directory, as the image's non-root uid. It
//! answers `--version` and `--help`; without a cluster it fails with one line and exit 1; given
//! only `KUBECONFIG` for a testkit API server it takes its own Lease and exits 0 on SIGTERM.
//! `images/check-static.sh` runs the same checks on the static release build.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

/// The `USER` of images/controller.Dockerfile.
const IMAGE_UID: &str = "65532";

/// A fresh directory with mode 0755, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "zen-lead-controller-image-{}-{}",
            std::process::id(),
            nonce()
        ));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self(dir)
    }

    /// An empty directory with mode 0555 inside it.
    fn empty_dir(&self) -> PathBuf {
        let dir = self.0.join("empty");
        std::fs::create_dir(&dir).expect("create the empty directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nonce() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// The controller with `env -i` plus `env`, from `dir`, as uid 65532 with no capabilities when
/// the tests run as root.
fn bare(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Command {
    // /proc/self belongs to the effective uid of the process that reads it.
    let root = std::fs::metadata("/proc/self")
        .expect("stat /proc/self")
        .uid()
        == 0;
    let exe = env!("CARGO_BIN_EXE_zen-lead-controller");
    let mut command = if root && Command::new("setpriv").arg("--version").output().is_ok() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", IMAGE_UID, "--regid", IMAGE_UID, "--clear-groups"])
            .args(["--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"])
            .arg(exe);
        c
    } else {
        assert!(
            !root || std::env::var_os("CI").is_none(),
            "setpriv (util-linux) is required to run as uid {IMAGE_UID}"
        );
        if root {
            eprintln!("SKIPPED the non-root part: setpriv (util-linux) is not installed");
        }
        Command::new(exe)
    };
    command
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null());
    command
}

fn run_bare(args: &[&str]) -> (i32, String, String) {
    let scratch = Scratch::new();
    let out = bare(&scratch.empty_dir(), &[], args)
        .output()
        .expect("run zen-lead-controller");
    (
        out.status
            .code()
            .unwrap_or_else(|| panic!("{args:?} was killed by a signal: {:?}", out.status)),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn answers_version_and_help_with_an_empty_environment() {
    let (code, stdout, stderr) = run_bare(&["--version"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("zen-lead-controller {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, stdout, stderr) = run_bare(&["--help"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Usage: zen-lead-controller"), "{stdout}");
}

#[test]
fn without_a_cluster_fails_in_one_line() {
    let (code, _, stderr) = run_bare(&["--identity", "image", "--metrics-addr", "127.0.0.1:0"]);
    assert_eq!(code, 1, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(
        lines[0].starts_with("zen-lead-controller: cannot load a kubeconfig"),
        "{}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_a_kubeconfig_it_takes_its_own_lease_and_exits_0_on_sigterm() {
    let server = support::server().await;
    let scratch = Scratch::new();
    let kubeconfig = scratch.0.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        zen_lead_testkit::kubeconfig::render(server.url(), None, None),
    )
    .expect("write the kubeconfig");
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let child = bare(
        &scratch.empty_dir(),
        &[("KUBECONFIG", &kubeconfig)],
        &["--identity", "image", "--metrics-addr", "127.0.0.1:0"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start zen-lead-controller");
    let leases: Api<Lease> = Api::namespaced(server.client().expect("client"), "zen-lead-system");
    support::eventually(support::EVENTUALLY, "its own Lease held", || async {
        let lease = leases.get_opt("zen-lead-controller").await.ok()??;
        (lease.spec?.holder_identity.as_deref() == Some("image")).then_some(())
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    // It released its own Lease on the way out.
    let lease = leases
        .get("zen-lead-controller")
        .await
        .expect("the own Lease");
    assert_ne!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("image")
    );
}
