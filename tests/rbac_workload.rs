//! The `zen-lead-workload` ClusterRole and the `zen-lead-gate` Role are least privilege, proven
//! both ways (docs/RBAC.md): on a testkit API server in auth mode, with `zen-lead-exec` running
//! under a ServiceAccount token bound only by `config/rbac/`, `examples/rbac.yaml` and
//! `deploy/30-gate-role.yaml`, the whole role is enough; and without any one of its rules, the
//! scenario fails with exit 77.

mod exec_support;
mod rbac_support;

use std::path::{Path, PathBuf};

use exec_support::*;
use rbac_support::{Role, apply};

const SA_TOKEN: &str = "report-sa-token";

/// A server in auth mode with the CRD and `examples/rbac.yaml` (the binding of
/// `zen-lead-workload` to `default/report`) applied by the admin, and `role` as the
/// `zen-lead-workload` ClusterRole. Returns it and a kubeconfig for `default/report`.
fn server_with_role(scratch: &Scratch, role: &Role) -> (ApiServer, PathBuf) {
    let api = ApiServer::start_with_auth();
    api.server
        .tokens()
        .add_service_account(SA_TOKEN, "default", "report");
    for file in ["config/crd/bases/", "examples/rbac.yaml"] {
        apply(api.kubeconfig(), &repo_path(file));
    }
    apply(
        api.kubeconfig(),
        &role.write(scratch.path("workload-role.yaml")),
    );
    let policy = scratch.path("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: coordination.kube-zen.io/v1alpha1\nkind: LeaderPolicy\nmetadata:\n  name: report\n  namespace: default\nspec:\n  leaseDurationSeconds: 4\n  renewDeadlineSeconds: 2\n  retryPeriodSeconds: 1\n",
    )
    .expect("write the policy");
    apply(api.kubeconfig(), &policy);
    let text =
        zen_lead_testkit::kubeconfig::render(api.server.url(), api.server.ca_pem(), Some(SA_TOKEN));
    let path = scratch.path("sa-kubeconfig");
    zen_lead_testkit::kubeconfig::write(&path, &text).expect("write kubeconfig");
    (api, path)
}

/// What a workload does with the role: `zen-lead-exec` reads the pool's LeaderPolicy (its
/// timings), leads through the Lease, runs its command and releases. Ok if the command ran and
/// the wrapper exited 0; else the exit code and stderr.
fn exec_scenario(scratch: &Scratch, kubeconfig: &Path) -> Result<(), String> {
    let marker = scratch.path("report-ran");
    let mut w = Launch::new(kubeconfig, scratch.path("report.stderr"))
        .args([
            "--pool",
            "report",
            "--identity",
            "report-0",
            "--kill-grace",
            "500ms",
        ])
        .args(["--", "sh", "-c"])
        .args([format!("touch {}", marker.display())])
        .spawn();
    let code = w.exit_code();
    if code == 0 && marker.exists() {
        Ok(())
    } else {
        Err(format!(
            "exit {code}, command ran: {}, stderr: {}",
            marker.exists(),
            w.stderr().trim()
        ))
    }
}

/// Runs the table: the role as committed must be enough for `scenario`; without any one rule,
/// `scenario` must fail with exit 77 and the permission-denied line.
fn every_rule_is_needed(
    role: &Role,
    setup: impl Fn(&Scratch, &Role) -> (ApiServer, PathBuf),
    scenario: impl Fn(&Scratch, &Path) -> Result<(), String>,
) {
    let rules = role.rules().len();
    assert!(rules >= 1, "the role has no rules");
    // Row `None`: the role as committed; row `Some(i)`: without rule i.
    for row in std::iter::once(None).chain((0..rules).map(Some)) {
        let scratch = Scratch::new("rbac-table");
        let applied = row.map_or_else(|| role.clone(), |i| role.without(i));
        let (_api, kubeconfig) = setup(&scratch, &applied);
        let outcome = scenario(&scratch, &kubeconfig);
        match row {
            None => outcome.unwrap_or_else(|e| panic!("the whole role must be enough: {e}")),
            Some(i) => {
                let error = outcome.err().unwrap_or_else(|| {
                    panic!(
                        "without rule {i} ({}) the scenario still works: the rule is not needed",
                        role.describe(i)
                    )
                });
                assert!(
                    error.starts_with("exit 77,") && error.contains("permission denied"),
                    "without rule {i} ({}): {error}",
                    role.describe(i)
                );
            }
        }
    }
}

/// A server in auth mode as [`server_with_role`] with the whole workload role, the controller's
/// namespace and a live controller Lease, and `gate` as the `zen-lead-gate` Role of
/// `deploy/30-gate-role.yaml` with its RoleBinding.
fn server_with_gate_role(scratch: &Scratch, gate: &Role) -> (ApiServer, PathBuf) {
    let (api, kubeconfig) = server_with_role(scratch, &Role::load("workload_clusterrole.yaml"));
    api.write_controller_lease(std::time::Duration::ZERO, 60);
    apply(
        api.kubeconfig(),
        &gate.write(scratch.path("gate-role.yaml")),
    );
    let binding = Role::load_kind("deploy/30-gate-role.yaml", "RoleBinding");
    apply(
        api.kubeconfig(),
        &binding.write(scratch.path("gate-binding.yaml")),
    );
    (api, kubeconfig)
}

/// What a gate does with the roles: reads the controller's Lease, leads through the pool's
/// Lease and hands it to the controller. Ok if it exited 0 having handed over.
fn gate_scenario(scratch: &Scratch, kubeconfig: &Path) -> Result<(), String> {
    let mut w = Launch::new(kubeconfig, scratch.path("gate.stderr"))
        .args(["gate", "--pool", "report", "--identity", "report-0"])
        .spawn();
    match w.exit_code() {
        0 => Ok(()),
        code => Err(format!("exit {code}, stderr: {}", w.stderr().trim())),
    }
}

#[test]
fn gate_role_is_enough_and_every_rule_is_needed() {
    let role = Role::load_kind("deploy/30-gate-role.yaml", "Role");
    every_rule_is_needed(&role, server_with_gate_role, |scratch, kubeconfig| {
        gate_scenario(scratch, kubeconfig).map_err(|e| {
            // The line names the one permission to grant.
            assert!(
                !e.starts_with("exit 77")
                    || e.contains(
                        "grant get on leases/zen-lead-controller in namespace zen-lead-system"
                    ),
                "{e}"
            );
            e
        })
    });
}

#[test]
fn workload_role_is_enough_and_every_rule_is_needed() {
    let role = Role::load("workload_clusterrole.yaml");
    let rules = role.rules().len();
    assert!(rules >= 2, "the workload role has {rules} rules");
    every_rule_is_needed(&role, server_with_role, exec_scenario);
}
