//! The single-active checker across a controller failover: two `zen-lead-controller` replicas,
//! three `zen-lead-exec` heartbeat replicas in pods of the testkit's kubelet simulation. The
//! leading controller is SIGKILLed; then the exec holder crashes and its pod reports the
//! container restarted. The new controller must hand the pool over on that evidence (the pool's
//! lease is 120 s, longer than any wait here, so expiry cannot be what moves it), and no two
//! children may ever run at once.

mod controller_support;
mod exec_support;

use std::time::Duration;

use controller_support::ControllerProcess;
use exec_support::*;
use serde_json::json;

const POOL: &str = "ha-exec";

/// The controller replica holding `zen-lead-controller`, once one does.
fn controller_holder(pool: &Pool) -> String {
    let mut holder = None;
    eventually("a controller replica to lead", || {
        holder = pool
            .api
            .lease_in(CONTROLLER_NS, CONTROLLER_LEASE)
            .and_then(|r| r.holder);
        holder.is_some()
    });
    holder.expect("holder")
}

/// Waits until the pool's Lease has been renewed `n` more times.
fn renewals(pool: &Pool, n: usize) {
    let mut seen = Vec::new();
    eventually(&format!("{n} renewals of the pool's Lease"), || {
        let rv = pool.api.lease(POOL).and_then(|r| r.resource_version);
        if seen.last() != Some(&rv) {
            seen.push(rv);
        }
        seen.len() > n
    });
}

#[test]
fn exec_holder_handed_over_on_evidence_by_the_controller_that_took_over() {
    let pool = Pool::new(POOL);
    let api = &pool.api;
    api.kubectl_ok(&[
        "apply",
        "-f",
        &repo_path("config/crd/bases/").to_string_lossy(),
    ]);
    api.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/leaderpolicies.coordination.kube-zen.io",
    ]);
    api.controller_namespace();
    let policy = pool.scratch.path("policy.yaml");
    std::fs::write(&policy, controller_support::policy_yaml(POOL, 120, 100, 2)).expect("write");
    api.kubectl_ok(&["apply", "-f", &policy.to_string_lossy()]);

    let mut controllers: Vec<ControllerProcess> = ["ctl-a", "ctl-b"]
        .iter()
        .map(|identity| {
            controller_support::launch(
                api.kubeconfig(),
                identity,
                pool.scratch.path(&format!("{identity}.log")),
            )
            .spawn()
            .expect("start zen-lead-controller")
        })
        .collect();

    // Three exec pods: each wrapper runs as its pod (name and UID, as the downward API gives).
    let mut wrappers: Vec<(String, Wrapper)> = ["exec-0", "exec-1", "exec-2"]
        .iter()
        .map(|name| {
            let pod = api
                .server
                .kubelet()
                .run_pod(
                    "default",
                    json!({"metadata": {
                        "name": name,
                        "annotations": {"zen-lead/pool": POOL, "zen-lead/join": "true"},
                    }}),
                )
                .expect("run pod");
            let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
            let wrapper = api
                .launch(&pool.scratch, name)
                .args(["--pool", POOL])
                .env("POD_NAME", *name)
                .env("POD_NAMESPACE", "default")
                .env("POD_UID", uid)
                .env("HB", pool.hb.to_string_lossy())
                .arg_path(&pool.scratch.path("hb.sh"))
                .spawn();
            (name.to_string(), wrapper)
        })
        .collect();
    let first = pool.wait_for_term_after(0, 5);

    // SIGKILL of the leading controller: the other replica takes over its own Lease.
    let leading = controller_holder(&pool);
    let index = controllers
        .iter()
        .position(|c| c.identity == leading)
        .expect("the holder is one of ours");
    let killed = controllers.remove(index);
    killed
        .signal(nix::sys::signal::Signal::SIGKILL)
        .expect("SIGKILL the leading controller");
    eventually("the standby controller to lead", || {
        api.lease_in(CONTROLLER_NS, CONTROLLER_LEASE)
            .and_then(|r| r.holder)
            .is_some_and(|h| h != leading)
    });
    // The new leader has seen the holder renew (its baseline for the restart evidence).
    renewals(&pool, 2);

    // The exec holder crashes; its pod reports the container restarted.
    let (_, holder) = wrappers
        .iter_mut()
        .find(|(name, _)| *name == first.identity)
        .expect("the holder is one of the pods");
    holder.kill_all();
    api.server
        .kubelet()
        .restart_container("default", &first.identity, None)
        .expect("report the restart");

    // Handed over on evidence: the lease is 120 s, and this waits at most EVENTUALLY (60 s).
    pool.wait_for_successor(&first, 5);
    let terms = pool.check();
    assert!(terms.len() >= 2, "two terms ran: {terms:?}");
    let out = api
        .kubectl()
        .args([
            "get",
            "events",
            "--field-selector",
            "reason=Failover",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ])
        .output()
        .expect("kubectl");
    let failover = String::from_utf8_lossy(&out.stdout);
    assert!(
        failover.contains(&format!(
            "moved to {} on evidence",
            terms[terms.len() - 1].identity
        )),
        "a Failover Event says the pool moved to the successor on evidence: {failover:?}\n{}",
        controllers[0].log_text()
    );
    drop(wrappers);
    for mut controller in controllers {
        controller.stop(Duration::from_secs(20));
    }
    drop(killed);
}
