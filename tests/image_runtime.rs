//! `zen-lead-exec` runs the way its `FROM scratch` image runs it (images/README.md): with an
//! empty environment, from an empty read-only directory, as the image's non-root uid. It answers
//! `--version` and `--help`, and without a cluster fails with one line and exit 78 without
//! consulting the user database (a static glibc binary cannot load the host's NSS modules).
//! `images/check-static.sh` runs the same checks on the static release build.

mod exec_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use exec_support::{Scratch, exe};

/// The `USER` of the images' Dockerfiles.
const IMAGE_UID: &str = "65532";

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `env -i` from an empty directory with mode 0555, as uid 65532 with no
/// capabilities when the tests run as root.
fn run_bare(args: &[&str]) -> Outcome {
    let scratch = Scratch::new("image");
    let dir = scratch.path("empty");
    std::fs::create_dir(&dir).expect("create the empty directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).expect("chmod 0555");
    // /proc/self belongs to the effective uid of the process that reads it.
    let root = std::fs::metadata("/proc/self")
        .expect("stat /proc/self")
        .uid()
        == 0;
    let mut command = if root {
        let setpriv = Command::new("setpriv").arg("--version").output();
        if setpriv.is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "setpriv (util-linux) is required to run as uid {IMAGE_UID}"
            );
            eprintln!("SKIPPED the non-root part: setpriv (util-linux) is not installed");
            Command::new(exe())
        } else {
            let mut c = Command::new("setpriv");
            c.args(["--reuid", IMAGE_UID, "--regid", IMAGE_UID, "--clear-groups"])
                .args(["--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"])
                .arg(exe());
            c
        }
    } else {
        Command::new(exe())
    };
    let out = command
        .args(args)
        .env_clear()
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run zen-lead-exec");
    Outcome {
        code: out
            .status
            .code()
            .unwrap_or_else(|| panic!("{args:?} was killed by a signal: {:?}", out.status)),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn answers_version_and_help_with_an_empty_environment() {
    let version = run_bare(&["--version"]);
    assert_eq!(version.code, 0, "{}", version.stderr);
    assert_eq!(
        version.stdout.trim(),
        format!("zen-lead-exec {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run_bare(&["--help"]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    assert!(
        help.stdout.contains("Usage: zen-lead-exec"),
        "{}",
        help.stdout
    );
}

#[test]
fn without_a_cluster_fails_in_one_line_without_the_user_database() {
    let out = run_bare(&["--pool", "my-pool", "--", "true"]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", out.stderr);
    // Neither KUBECONFIG nor HOME: only the in-cluster config is tried, so no lookup of `~`
    // in the user database happens.
    assert!(
        lines[0].starts_with("zen-lead-exec: cannot load a kubeconfig")
            && lines[0].contains("no KUBECONFIG, no HOME, and not in a pod"),
        "{}",
        lines[0]
    );
}
