//! `zen-lead-exec gate` checks that zen-lead-controller is alive before it hands over
//! (docs/EXEC.md, Gate mode), black-box against the testkit API server: without a controller, or
//! with a stale controller Lease, it exits 81 and hands nothing over; a controller that dies
//! while the gate waits gets nothing either, and the gate's release lets a successor lead at
//! once; with the real controller running, the gate exits 0 and the controller renews.

mod controller_support;
mod exec_support;

use std::time::Duration;

use nix::sys::signal::Signal;
use zen_lead::lease::record::Renewer;

use exec_support::*;

/// A gate for `pool` as `identity`, with the fast timings and `extra` flags.
fn gate(api: &ApiServer, scratch: &Scratch, pool: &str, identity: &str, extra: &[&str]) -> Wrapper {
    api.launch(scratch, identity)
        .args(["gate", "--pool", pool, "--identity", identity])
        .args(FAST_TIMINGS)
        .args(extra.iter().copied())
        .spawn()
}

fn delete_controller_lease(api: &ApiServer) {
    api.kubectl_ok(&["-n", CONTROLLER_NS, "delete", "lease", CONTROLLER_LEASE]);
}

/// The one stderr line of a refused gate.
fn refusal(w: &Wrapper) -> String {
    let stderr = w.stderr();
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("zen-lead-exec: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"))
        .to_string();
    assert!(
        line.contains("zen-lead-controller is not running")
            && line.contains("docs/INSTALL.md")
            && line.contains("zen-lead-exec -- CMD"),
        "the line says what to fix: {line}"
    );
    line
}

#[test]
fn gate_without_a_controller_exits_81_before_taking_the_lease() {
    let api = ApiServer::start();
    let scratch = Scratch::new("gate-no-controller");
    api.controller_namespace();
    let mut w = gate(&api, &scratch, "nightly", "pod-a", &[]);
    assert_eq!(w.exit_code(), 81, "{}", w.stderr());
    let line = refusal(&w);
    assert!(
        line.contains("there is no Lease zen-lead-system/zen-lead-controller"),
        "{line}"
    );
    assert_eq!(
        w.stderr().lines().count(),
        1,
        "one line on stderr: {}",
        w.stderr()
    );
    assert!(
        api.lease("nightly").is_none(),
        "the gate took the pool's lease"
    );
}

#[test]
fn gate_with_a_stale_controller_lease_refuses() {
    let api = ApiServer::start();
    let scratch = Scratch::new("gate-stale");
    // A controller that died an hour ago without releasing.
    api.write_controller_lease(Duration::from_secs(3600), 2);
    let mut w = gate(&api, &scratch, "nightly", "pod-a", &[]);
    assert_eq!(w.exit_code(), 81, "{}", w.stderr());
    let line = refusal(&w);
    assert!(
        line.contains("was last renewed 59m") || line.contains("was last renewed 1h"),
        "{line}"
    );
    assert!(
        line.contains("longer than its lease duration, and it was not renewed within 2s"),
        "{line}"
    );
    assert!(
        api.lease("nightly").is_none(),
        "the gate took the pool's lease"
    );
}

#[test]
fn gate_whose_controller_dies_while_it_waits_releases_at_once_with_the_marker() {
    let api = ApiServer::start();
    let scratch = Scratch::new("gate-dies");
    api.write_controller_lease(Duration::ZERO, 60);
    let mut holder = api
        .launch(&scratch, "holder")
        .args(["--pool", "nightly", "--identity", "holder"])
        .args(FAST)
        .args(["--", "sleep", "600"])
        .spawn();
    eventually("the holder to lead", || {
        api.lease("nightly").and_then(|r| r.holder).as_deref() == Some("holder")
    });
    // The first check passes; then the gate waits for the lease. Its min-hold must not keep the
    // lease held once it refuses: nothing ran.
    let mut w = gate(&api, &scratch, "nightly", "pod-a", &["--min-hold", "10m"]);
    eventually("the gate to wait for the holder", || {
        w.stderr().contains("another replica leads")
    });
    delete_controller_lease(&api);
    holder.signal(Signal::SIGTERM);
    holder.exit_code();
    assert_eq!(w.exit_code(), 81, "{}", w.stderr());
    let line = refusal(&w);
    assert!(line.contains("there is no Lease"), "{line}");
    assert!(
        w.stderr()
            .contains("released the pool's lease; nothing ran"),
        "{}",
        w.stderr()
    );
    let record = api.lease("nightly").expect("lease");
    assert_eq!(record.holder, None, "not handed over: {record:?}");
    assert_eq!(record.renewer, Renewer::SelfRenewing, "{record:?}");
    assert_eq!(
        record.released_term,
        Some(record.term),
        "released with the marker: {record:?}"
    );
    assert_eq!(record.min_hold_until, None, "{record:?}");
    // The marker lets a successor lead at once, well within one lease duration (4s).
    let ran = scratch.path("successor-ran");
    let mut next = api
        .launch(&scratch, "next")
        .args(["--pool", "nightly", "--identity", "next"])
        .args(FAST)
        .args(["--on-follower", "fail", "--wait-timeout", "2s"])
        .args(["--", "touch"])
        .args([ran.as_os_str()])
        .spawn();
    assert_eq!(next.exit_code(), 0, "{}", next.stderr());
    assert!(ran.exists(), "the successor ran");
}

#[test]
fn gate_with_a_running_controller_hands_over_and_the_controller_renews() {
    let api = ApiServer::start();
    let scratch = Scratch::new("gate-controller");
    api.controller_namespace();
    api.kubectl_ok(&[
        "apply",
        "-f",
        &repo_path("config/crd/bases/").to_string_lossy(),
    ]);
    api.apply(&controller_support::policy_yaml("nightly", 4, 2, 1));
    let mut controller: controller_support::ControllerProcess =
        controller_support::launch(api.kubeconfig(), "ctl-0", scratch.path("controller.log"))
            .spawn()
            .expect("start the controller");
    api.rt
        .block_on(controller.wait_ready(EVENTUALLY))
        .expect("the controller is ready");
    controller_support::eventually(EVENTUALLY, "the controller to lead", || {
        api.lease_in(CONTROLLER_NS, CONTROLLER_LEASE)
            .and_then(|r| r.holder)
    });
    let uid = controller_support::candidate_pod(&api.server, "nightly", "pod-g");
    let mut w = api
        .launch(&scratch, "pod-g")
        .args(["gate", "--pool", "nightly", "--identity", "pod-g"])
        .args(FAST_TIMINGS)
        .env("POD_UID", uid)
        .spawn();
    assert_eq!(
        w.exit_code(),
        0,
        "{}\n{}",
        w.stderr(),
        controller.log_text()
    );
    let handed = api.lease("nightly").expect("lease");
    assert_eq!(handed.holder.as_deref(), Some("pod-g"));
    assert_eq!(handed.renewer, Renewer::Controller);
    // The controller renews, past the lease duration, for the same holder and term.
    let mut last = handed.clone();
    controller_support::eventually(EVENTUALLY, "the controller renews the pool's lease", || {
        last = api.lease("nightly").expect("lease");
        (last.renew_time > handed.renew_time).then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    let later = api.lease("nightly").expect("lease");
    assert_eq!(
        (later.holder.as_deref(), later.term),
        (Some("pod-g"), handed.term),
        "{}",
        controller.log_text()
    );
    assert!(later.renew_time > last.renew_time, "still renewed");
}
