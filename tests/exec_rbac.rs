//! RBAC, black-box against the testkit API server with auth: a service account without the
//! workload role gets one line and exit 77 and the child never runs; the role in
//! `config/rbac/` bound as in `examples/rbac.yaml` is enough to run. Over TLS, so the
//! kubeconfig's CA data is exercised too.

mod exec_support;

use std::path::{Path, PathBuf};

use exec_support::*;

const SA_TOKEN: &str = "report-sa-token";

/// The auth server, and a kubeconfig for the `default/report` service account.
fn setup(scratch: &Scratch) -> (ApiServer, PathBuf) {
    let api = ApiServer::start_with_auth();
    api.server
        .tokens()
        .add_service_account(SA_TOKEN, "default", "report");
    let text =
        zen_lead_testkit::kubeconfig::render(api.server.url(), api.server.ca_pem(), Some(SA_TOKEN));
    let path = scratch.path("sa-kubeconfig");
    zen_lead_testkit::kubeconfig::write(&path, &text).expect("write kubeconfig");
    (api, path)
}

fn run_as_sa(scratch: &Scratch, kubeconfig: &Path, pool: &str, timings: &[&str]) -> Wrapper {
    let marker = scratch.path(&format!("{pool}-ran"));
    Launch::new(kubeconfig, scratch.path(&format!("{pool}.stderr")))
        .args(["--pool", pool, "--identity", "report-0"])
        .args(timings.iter().copied())
        .args(["--", "sh", "-c"])
        .args([format!("touch {}", marker.display())])
        .spawn()
}

#[test]
fn rbac_denial_is_one_line_exit_77_and_the_child_never_runs() {
    let scratch = Scratch::new("rbac-deny");
    let (_api, kubeconfig) = setup(&scratch);
    // Default timings: the LeaderPolicy read is denied first.
    // Timings given: the Lease itself is denied.
    for (pool, timings) in [("denied-policy", &[][..]), ("denied-lease", &FAST[..])] {
        let mut w = run_as_sa(&scratch, &kubeconfig, pool, timings);
        assert_eq!(w.exit_code(), 77, "{pool}: {}", w.stderr());
        let stderr = w.stderr();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{pool}: one line, got {stderr:?}");
        assert!(
            lines[0].starts_with("zen-lead-exec: ") && lines[0].contains("permission denied"),
            "{pool}: {stderr}"
        );
        assert!(
            !scratch.path(&format!("{pool}-ran")).exists(),
            "{pool}: child ran"
        );
    }
}

#[test]
fn the_workload_role_from_config_rbac_is_enough() {
    let scratch = Scratch::new("rbac-ok");
    let (api, kubeconfig) = setup(&scratch);
    for file in ["config/rbac/", "examples/rbac.yaml"] {
        let out = api
            .kubectl()
            .args(["apply", "-f"])
            .arg(repo_path(file))
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl apply -f {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (pool, timings) in [("allowed-policy", &[][..]), ("allowed-lease", &FAST[..])] {
        let mut w = run_as_sa(&scratch, &kubeconfig, pool, timings);
        assert_eq!(w.exit_code(), 0, "{pool}: {}", w.stderr());
        assert!(
            scratch.path(&format!("{pool}-ran")).exists(),
            "{pool}: child did not run"
        );
    }
}
