//! Multi-process election suite: real `zen-lead-exec` replicas against the testkit API server.
//! Children append `term,start|beat|stop,nanos,identity` heartbeats to one shared file, and the
//! single-active checker runs at the end of every test: no two terms ever interleave.

mod exec_support;

use std::time::Duration;

use exec_support::*;
use nix::sys::signal::Signal;

#[test]
fn five_replicas_exactly_one_child_runs() {
    let pool = Pool::new("five");
    let mut replicas = pool.replicas(5, false);
    let leader = pool.wait_for_running_leader(20);
    assert_eq!(pool.holder().as_deref(), Some(leader.as_str()));
    let terms = pool.check();
    assert_eq!(terms.len(), 1, "one term only: {terms:?}");
    // Every replica is still up: the four followers wait.
    for w in &mut replicas {
        assert!(w.running(), "{}", w.stderr());
    }
    // Children run the script as `/bin/sh .../hb.sh` (the wrappers only name it as an
    // argument), each in its own process group: count the groups.
    let script = pool.scratch.path("hb.sh").to_string_lossy().into_owned();
    let mut groups: Vec<i32> = processes()
        .iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{}/cmdline", p.pid)).is_ok_and(|c| {
                let argv: Vec<&str> = c.split('\0').collect();
                argv.first().is_some_and(|a| a.ends_with("sh")) && argv.contains(&script.as_str())
            })
        })
        .map(|p| p.pgrp)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let hb_processes = groups.len();
    assert_eq!(hb_processes, 1, "exactly one child process runs");
    drop(replicas);
    pool.check();
}

#[test]
fn sigterm_to_the_leader_hands_over_after_its_child_is_gone() {
    let pool = Pool::new("handover");
    let mut replicas = pool.replicas(3, false);
    let first = pool.wait_for_term_after(0, 5);
    let old = &mut replicas[index_of(&first.identity)];
    old.signal(Signal::SIGTERM);
    // The child traps TERM and exits 0; the wrapper exits with its code.
    assert_eq!(old.exit_code(), 0, "{}", old.stderr());
    pool.wait_for_successor(&first, 5);
    let terms = pool.check();
    assert_eq!(terms.len(), 2, "{terms:?}");
    assert!(terms[1].term > terms[0].term);
    assert!(
        pool.heartbeats()
            .lines()
            .any(|l| l.starts_with(&format!("{},stop,", terms[0].term))),
        "the old child stopped cleanly"
    );
    drop(replicas);
    pool.check();
}

#[test]
fn sigkill_of_the_leaders_pid_namespace_successor_waits_for_the_lease() {
    if skip_without_unshare() {
        return;
    }
    let pool = Pool::new("sigkill");
    let mut replicas = pool.replicas(3, true);
    let first = pool.wait_for_term_after(0, 5);
    let killed_at = now_nanos();
    replicas[index_of(&first.identity)].kill_all();
    pool.wait_for_successor(&first, 1);
    let terms = pool.check();
    assert_eq!(terms.len(), 2, "{terms:?}");
    // The old child still ran at the kill, so the leader's last successful renewal was less
    // than the renew deadline (2s) before it; the successor must then see that record unchanged
    // for the lease duration (4s). So it starts at least 2s after the kill (less 250ms for the
    // wrapper's deadline check and the beat interval), however slow this machine is.
    let earliest = killed_at + Duration::from_millis(1750).as_nanos();
    assert!(
        terms[1].first >= earliest,
        "successor started {}ms after the kill, before the lease allowed",
        (terms[1].first - killed_at) / 1_000_000
    );
    drop(replicas);
    pool.check();
}

#[test]
fn partitioned_leader_stops_its_child_before_the_lease_can_expire() {
    let pool = Pool::new("partition");
    let mut replicas = pool.replicas(3, false);
    let first = pool.wait_for_term_after(0, 5);
    let cut_at = now_nanos();
    pool.api.blackhole(&first.identity, true);
    let old = &mut replicas[index_of(&first.identity)];
    assert_eq!(old.exit_code(), 80, "lease lost: {}", old.stderr());
    pool.wait_for_successor(&first, 1);
    let terms = pool.check();
    assert_eq!(terms.len(), 2, "{terms:?}");
    // Renew deadline 2s + kill grace 1s < lease 4s: the old child ended before anyone could
    // take over (its last renewal was no earlier than 500ms before the cut).
    let lease_end =
        cut_at - Duration::from_millis(500).as_nanos() + Duration::from_secs(4).as_nanos();
    assert!(
        terms[0].last < lease_end,
        "old child ran until {}ms after the cut",
        (terms[0].last - cut_at) / 1_000_000
    );
    pool.api.blackhole(&first.identity, false);
    drop(replicas);
    pool.check();
}

#[test]
fn api_error_bursts_shorter_than_the_deadline_do_not_step_down() {
    let pool = Pool::new("bursts");
    // A roomier deadline so that a burst fits well inside it on a loaded machine.
    let timing = [
        "--lease-duration",
        "12s",
        "--renew-deadline",
        "8s",
        "--retry-period",
        "500ms",
        "--kill-grace",
        "2s",
    ];
    let mut leader = pool
        .api
        .launch(&pool.scratch, "r0")
        .args(["--pool", "bursts", "--identity", "r0"])
        .args(timing)
        .env("HB", pool.hb.to_string_lossy())
        .arg_path(&pool.scratch.path("hb.sh"))
        .spawn();
    pool.wait_for_running_leader(3);
    let agent = ApiServer::agent("r0");
    for code in [500u16, 503, 429] {
        pool.api.server.faults().errors(Some(&agent), code, 1.0);
        std::thread::sleep(Duration::from_secs(2));
        pool.api.server.faults().clear();
        std::thread::sleep(Duration::from_secs(1));
    }
    // Half the requests failing, for longer than the deadline: renewals still get through.
    pool.api.server.faults().errors(Some(&agent), 500, 0.5);
    std::thread::sleep(Duration::from_secs(9));
    pool.api.server.faults().clear();
    let beats_before = pool.heartbeats().lines().count();
    eventually("the child to keep beating", || {
        pool.heartbeats().lines().count() > beats_before + 5
    });
    assert!(leader.running(), "{}", leader.stderr());
    let terms = pool.check();
    assert_eq!(terms.len(), 1, "no step-down: {terms:?}");
    assert!(
        !pool.heartbeats().contains(",stop,"),
        "the child was never stopped"
    );
    leader.signal(Signal::SIGTERM);
    assert_eq!(leader.exit_code(), 0, "{}", leader.stderr());
}

#[test]
fn cronjob_skip_with_min_hold_runs_once() {
    let pool = Pool::new("cron");
    let ran = pool.scratch.path("ran");
    let job = pool.scratch.script(
        "job.sh",
        &format!(
            "#!/bin/sh\necho \"$ZEN_LEAD_IDENTITY $ZEN_LEAD_TERM\" >> {}\n",
            ran.display()
        ),
    );
    let copy = |identity: &str| {
        pool.api
            .launch(&pool.scratch, identity)
            .args(["--pool", "cron", "--identity", identity])
            .args(FAST)
            .args(["--on-follower", "skip", "--min-hold", "60s"])
            .arg_path(&job)
            .spawn()
    };
    let mut copies: Vec<Wrapper> = (0..6).map(|i| copy(&format!("c{i}"))).collect();
    for w in &mut copies {
        assert_eq!(w.exit_code(), 0, "{}", w.stderr());
    }
    let runs = || {
        std::fs::read_to_string(&ran)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(runs(), 1, "exactly one copy ran");
    // Late copies within the minimum hold skip too.
    for i in 0..3 {
        let mut late = copy(&format!("late{i}"));
        assert_eq!(late.exit_code(), 0, "{}", late.stderr());
        assert!(late.stderr().contains("skipping"), "{}", late.stderr());
    }
    assert_eq!(runs(), 1, "late copies skipped");
}

#[test]
fn skip_waits_out_a_crashed_holder_instead_of_skipping_forever() {
    if skip_without_unshare() {
        return;
    }
    let pool = Pool::new("crashed");
    let mut crashed = pool.replica("old", &[], true);
    pool.wait_for_running_leader(2);
    crashed.kill_all();
    // The record now names a dead holder; once its renewTime is past, a skip copy must take
    // over (after its own lease-duration wait) and run.
    let ran = pool.scratch.path("ran");
    let job = pool.scratch.script(
        "job.sh",
        &format!("#!/bin/sh\necho ran >> {}\n", ran.display()),
    );
    std::thread::sleep(Duration::from_secs(5));
    let mut copy = pool
        .api
        .launch(&pool.scratch, "new")
        .args(["--pool", "crashed", "--identity", "new"])
        .args(FAST)
        .args(["--on-follower", "skip"])
        .arg_path(&job)
        .spawn();
    assert_eq!(copy.exit_code(), 0, "{}", copy.stderr());
    assert!(ran.exists(), "the copy ran: {}", copy.stderr());
    assert_eq!(pool.holder(), None, "released after the run");
}

#[test]
fn on_follower_fail_exits_79_and_wait_timeout_exits_75() {
    let pool = Pool::new("follow");
    let mut leader = pool.replica("r0", &[], false);
    pool.wait_for_running_leader(1);
    let mut fail = pool.replica("r1", &["--on-follower", "fail"], false);
    assert_eq!(fail.exit_code(), 79, "{}", fail.stderr());
    let mut timeout = pool.replica("r2", &["--wait-timeout", "2s"], false);
    assert_eq!(timeout.exit_code(), 75, "{}", timeout.stderr());
    assert_eq!(pool.terms().len(), 1);
    leader.signal(Signal::SIGTERM);
    assert_eq!(leader.exit_code(), 0);
    pool.check();
}

#[test]
fn rejoin_waits_again_after_losing_the_lease() {
    let pool = Pool::new("rejoin");
    let mut a = pool.replica("r0", &["--rejoin"], false);
    let first = pool.wait_for_term_after(0, 3);
    let mut b = pool.replica("r1", &[], false);
    pool.api.blackhole("r0", true);
    let second = pool.wait_for_term_after(first.term, 3);
    assert_eq!(second.identity, "r1");
    assert!(a.running(), "--rejoin keeps waiting: {}", a.stderr());
    pool.api.blackhole("r0", false);
    b.signal(Signal::SIGTERM);
    assert_eq!(b.exit_code(), 0, "{}", b.stderr());
    let third = pool.wait_for_term_after(second.term, 3);
    assert_eq!(third.identity, "r0");
    let terms = pool.check();
    assert_eq!(terms.len(), 3, "{terms:?}");
    a.signal(Signal::SIGTERM);
    assert_eq!(a.exit_code(), 0, "{}", a.stderr());
    pool.check();
}

#[test]
fn sigkill_of_the_wrapper_takes_its_child_down() {
    let pool = Pool::new("orphan");
    let mut w = pool.replica("r0", &[], false);
    pool.wait_for_running_leader(2);
    let wrapper = w.pid;
    let child = children_of(wrapper);
    assert_eq!(child.len(), 1, "one child");
    // If the wrapper failed its duty, do not leave the orphan behind.
    struct KillOnDrop(nix::unistd::Pid);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::killpg(self.0, Signal::SIGKILL);
        }
    }
    let _guard = KillOnDrop(child[0]);
    nix::sys::signal::kill(wrapper, Signal::SIGKILL).expect("kill");
    assert_eq!(
        w.wait_timeout(EVENTUALLY).and_then(|s| s.code()),
        None,
        "killed"
    );
    // The child must not run on without the lease: its parent-death signal is SIGKILL.
    eventually("the child to die with the wrapper", || {
        !std::path::Path::new(&format!("/proc/{}", child[0])).exists()
            || processes()
                .iter()
                .any(|p| p.pid == child[0].as_raw() && p.state == 'Z')
    });
}

#[test]
fn sigterm_while_waiting_exits_143_without_running() {
    let pool = Pool::new("standby");
    let mut leader = pool.replica("r0", &[], false);
    let first = pool.wait_for_term_after(0, 1);
    let mut standby = pool.replica("r1", &[], false);
    eventually("the standby to wait", || {
        standby.stderr().contains("waiting")
    });
    standby.signal(Signal::SIGTERM);
    assert_eq!(standby.exit_code(), 143, "{}", standby.stderr());
    assert_eq!(pool.holder().as_deref(), Some(first.identity.as_str()));
    leader.signal(Signal::SIGTERM);
    assert_eq!(leader.exit_code(), 0, "{}", leader.stderr());
    let terms = pool.check();
    assert_eq!(terms.len(), 1, "the standby never ran: {terms:?}");
}

#[test]
fn a_child_that_ignores_the_stop_signal_is_killed_after_the_grace() {
    let pool = Pool::new("stubborn");
    // Ignores SIGTERM: only SIGKILL after --kill-grace stops it.
    let stubborn = pool.scratch.script(
        "stubborn.sh",
        "#!/bin/sh\ntrap '' TERM\nhb() { echo \"$ZEN_LEAD_TERM,$1,$(date +%s%N),$ZEN_LEAD_IDENTITY\" >> \"$HB\"; }\nhb start\nwhile :; do hb beat; sleep 0.1; done\n",
    );
    let launch = |identity: &str| {
        pool.api
            .launch(&pool.scratch, identity)
            .args(["--pool", "stubborn", "--identity", identity])
            .args(FAST)
            .env("HB", pool.hb.to_string_lossy())
            .arg_path(&stubborn)
            .spawn()
    };
    let mut a = launch("r0");
    let first = pool.wait_for_term_after(0, 3);
    let mut b = launch("r1");
    let cut_at = now_nanos();
    pool.api.blackhole("r0", true);
    assert_eq!(a.exit_code(), 80, "{}", a.stderr());
    assert!(a.stderr().contains("SIGKILL"), "{}", a.stderr());
    let second = pool.wait_for_term_after(first.term, 1);
    assert_eq!(second.identity, "r1");
    let terms = pool.check();
    let lease_end =
        cut_at - Duration::from_millis(500).as_nanos() + Duration::from_secs(4).as_nanos();
    assert!(
        terms[0].last < lease_end,
        "the stubborn child outlived the lease"
    );
    pool.api.blackhole("r0", false);
    b.kill_all();
    pool.check();
}

#[test]
fn unmanaged_lease_is_refused_with_76() {
    use k8s_openapi::api::coordination::v1::Lease;
    let pool = Pool::new("unmanaged");
    {
        let _rt = pool.api.rt.enter();
        let client = pool.api.server.client().expect("client");
        pool.api.rt.block_on(async {
            let api: kube::Api<Lease> = kube::Api::namespaced(client, "default");
            let lease: Lease = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "unmanaged"},
                "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 15}
            }))
            .expect("lease");
            api.create(&Default::default(), &lease)
                .await
                .expect("create");
        });
    }
    let mut w = pool.replica("r0", &[], false);
    assert_eq!(w.exit_code(), 76, "{}", w.stderr());
    let stderr = w.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not managed by zen-lead"), "{stderr}");
    assert!(pool.heartbeats().is_empty(), "the child never ran");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let pool = Pool::new("json");
    let mut w = pool.replica("r0", &["--log-format", "json"], false);
    pool.wait_for_term_after(0, 1);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.stderr());
    let stderr = w.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 3, "{stderr}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(
            v.get("level").is_some() && v.get("message").is_some(),
            "{line}"
        );
    }
}

#[test]
fn sigstop_of_the_leader_past_the_lease_then_sigcont_stops_its_child() {
    if skip_without_unshare() {
        return;
    }
    let pool = Pool::new("paused");
    let mut replicas = pool.replicas(2, true);
    let first = pool.wait_for_term_after(0, 3);
    let old = index_of(&first.identity);
    let wrapper = replicas[old].pid;
    let child = children_of(wrapper);
    assert_eq!(child.len(), 1, "one child");
    let groups: Vec<i32> = processes()
        .iter()
        .filter(|p| p.pid == wrapper.as_raw() || p.pid == child[0].as_raw())
        .map(|p| p.pgrp)
        .collect();
    // Freeze the leader's whole container: the wrapper's group and its child's group.
    for g in &groups {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*g), Signal::SIGSTOP).expect("stop");
    }
    // Past its lease, the other replica takes over.
    pool.wait_for_successor(&first, 3);
    for g in &groups {
        // The child's group may be gone already: the wrapper, woken first, killed it.
        match nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*g), Signal::SIGCONT) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => panic!("cont: {error}"),
        }
    }
    // On waking, the old leader sees its deadline passed and stops its child.
    assert_eq!(replicas[old].exit_code(), 80, "{}", replicas[old].stderr());
    // A write the paused child makes in the instant after SIGCONT is what fencing is for: the
    // sink rejects it by term, and what it accepts never interleaves.
    let (accepted, _rejected) = fence(&pool.heartbeats());
    let terms = check_single_active(&accepted);
    assert_eq!(terms.len(), 2, "{terms:?}");
    drop(replicas);
    let (accepted, _) = fence(&pool.heartbeats());
    check_single_active(&accepted);
}

#[test]
fn namespace_comes_from_the_flag_then_pod_namespace_then_the_kubeconfig() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Namespace;
    let pool = Pool::new("ns");
    let _rt = pool.api.rt.enter();
    let client = pool.api.server.client().expect("client");
    pool.api.rt.block_on(async {
        let api: kube::Api<Namespace> = kube::Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "team-a"}}))
                .expect("ns");
        api.create(&Default::default(), &ns)
            .await
            .expect("create ns");
    });
    let out = pool.scratch.path("ns");
    let run = |pool_name: &str, args: &[&str], pod_ns: Option<&str>| {
        let mut launch = pool
            .api
            .launch(&pool.scratch, pool_name)
            .args(["--pool", pool_name, "--identity", "r0"])
            .args(FAST)
            .args(args.iter().copied());
        if let Some(ns) = pod_ns {
            launch = launch.env("POD_NAMESPACE", ns);
        }
        let script = format!("echo $ZEN_LEAD_NAMESPACE > {}", out.display());
        let mut w = launch.args(["--", "sh", "-c", script.as_str()]).spawn();
        assert_eq!(w.exit_code(), 0, "{}", w.stderr());
        std::fs::read_to_string(&out)
            .expect("out")
            .trim()
            .to_owned()
    };
    assert_eq!(run("from-kubeconfig", &[], None), "default");
    assert_eq!(run("from-pod", &[], Some("team-a")), "team-a");
    assert_eq!(
        run("from-flag", &["--namespace", "default"], Some("team-a")),
        "default"
    );
    let exists = |ns: &str, name: &str| {
        let api: kube::Api<Lease> = kube::Api::namespaced(client.clone(), ns);
        pool.api
            .rt
            .block_on(api.get_opt(name))
            .expect("get")
            .is_some()
    };
    assert!(exists("default", "from-kubeconfig"));
    assert!(exists("team-a", "from-pod"));
    assert!(!exists("default", "from-pod"));
    assert!(exists("default", "from-flag"));
}

#[test]
fn unset_timings_come_from_the_leader_policy() {
    let pool = Pool::new("policy");
    let out = pool
        .api
        .kubectl()
        .args(["apply", "-f"])
        .arg(repo_path("config/crd/bases/"))
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl apply the CRD: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 12s lease, 10s renew deadline: a 3s kill grace would let the child outlive the lease, so
    // the default shrinks to fit, and an explicit 3s is refused, naming where each number came
    // from.
    let policy = "apiVersion: coordination.kube-zen.io/v1alpha1\nkind: LeaderPolicy\nmetadata:\n  name: policy\n  namespace: default\nspec:\n  leaseDurationSeconds: 12\n  renewDeadlineSeconds: 10\n  retryPeriodSeconds: 2\n";
    // The CRD is served once established: retry the apply until it is.
    eventually("the LeaderPolicy to be accepted", || {
        pool.api
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(policy.as_bytes())?;
                c.wait()
            })
            .is_ok_and(|s| s.success())
    });
    let launch = |extra: &[&str]| {
        pool.api
            .launch(&pool.scratch, "r0")
            .args(["--pool", "policy", "--identity", "r0"])
            .args(extra.iter().copied())
            .args(["--", "true"])
            .spawn()
    };
    let mut refused = launch(&["--kill-grace", "3s"]);
    assert_eq!(refused.exit_code(), 78, "{}", refused.stderr());
    let stderr = refused.stderr();
    assert!(
        stderr.contains(
            "renewDeadlineSeconds of LeaderPolicy default/policy (10s) plus --kill-grace (3s) must be less than leaseDurationSeconds of LeaderPolicy default/policy (12s)"
        ),
        "{stderr}"
    );
    let mut shrunk = launch(&[]);
    assert_eq!(shrunk.exit_code(), 0, "{}", shrunk.stderr());
    // A shorter kill grace fits the policy; a flag overrides one policy value.
    let mut fits = launch(&["--kill-grace", "1s"]);
    assert_eq!(fits.exit_code(), 0, "{}", fits.stderr());
    let mut overridden = launch(&["--renew-deadline", "5s"]);
    assert_eq!(overridden.exit_code(), 0, "{}", overridden.stderr());
    assert_eq!(
        pool.api
            .lease("policy")
            .and_then(|r| r.lease_duration_seconds),
        Some(12),
        "the lease carries the policy's duration"
    );
}

/// Guards the SIGTERM contract under `--rejoin`: a wrapper told to terminate whose lease is then
/// lost stops its child and exits; it never goes back to waiting and starts the command again.
#[test]
fn sigterm_then_lease_loss_with_rejoin_exits_instead_of_rejoining() {
    let pool = Pool::new("term-rejoin");
    // Ignores SIGTERM, so that the wrapper is still leading after forwarding it.
    let stubborn = pool.scratch.script(
        "stubborn.sh",
        "#!/bin/sh\ntrap '' TERM\nhb() { echo \"$ZEN_LEAD_TERM,$1,$(date +%s%N),$ZEN_LEAD_IDENTITY\" >> \"$HB\"; }\nhb start\nwhile :; do hb beat; sleep 0.1; done\n",
    );
    let mut a = pool
        .api
        .launch(&pool.scratch, "r0")
        .args(["--pool", "term-rejoin", "--identity", "r0", "--rejoin"])
        .args(FAST)
        .env("HB", pool.hb.to_string_lossy())
        .arg_path(&stubborn)
        .spawn();
    let first = pool.wait_for_term_after(0, 3);
    a.signal(Signal::SIGTERM);
    eventually("the wrapper to forward SIGTERM", || {
        a.stderr().contains("forwarded")
    });
    pool.api.blackhole("r0", true);
    eventually("the stubborn child to be killed", || {
        a.stderr().contains("SIGKILL")
    });
    pool.api.blackhole("r0", false);
    // Without the fix the wrapper re-acquires its own record at once and runs a second child.
    let status = a.wait_timeout(Duration::from_secs(30));
    let terms = pool.check();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(80),
        "terms {terms:?}\n{}",
        a.stderr()
    );
    assert_eq!(terms.len(), 1, "{terms:?}");
    assert_eq!(terms[0].term, first.term);
}

/// Guards docs/PROTOCOL.md §5 (`--min-hold`): a copy that starts within the hold skips; a copy
/// that starts after the hold has ended runs at once instead of waiting out the hold again.
#[test]
fn min_hold_copy_within_the_hold_skips_and_one_after_it_runs_at_once() {
    let pool = Pool::new("nightly");
    let ran = pool.scratch.path("ran");
    let job = pool.scratch.script(
        "job.sh",
        &format!(
            "#!/bin/sh\necho \"$ZEN_LEAD_IDENTITY $ZEN_LEAD_TERM\" >> {}\n",
            ran.display()
        ),
    );
    let hold = Duration::from_secs(8);
    let copy = |identity: &str, extra: &[&str]| {
        pool.api
            .launch(&pool.scratch, identity)
            .args(["--pool", "nightly", "--identity", identity])
            .args(FAST)
            .args(["--on-follower", "skip", "--min-hold", "8s"])
            .args(extra.iter().copied())
            .arg_path(&job)
            .spawn()
    };
    let started = std::time::Instant::now();
    let mut first = copy("tick1", &[]);
    assert_eq!(first.exit_code(), 0, "{}", first.stderr());
    let runs = || {
        std::fs::read_to_string(&ran)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(runs(), 1);
    let mut within = copy("tick1-late", &[]);
    assert_eq!(within.exit_code(), 0, "{}", within.stderr());
    assert!(within.stderr().contains("skipping"), "{}", within.stderr());
    assert_eq!(runs(), 1, "a copy within the hold ran");
    // The next tick, after the hold. Waiting out the hold again (8s) would pass the
    // --wait-timeout and exit 75.
    std::thread::sleep((hold + Duration::from_secs(1)).saturating_sub(started.elapsed()));
    let mut next = copy("tick2", &["--wait-timeout", "6s"]);
    assert_eq!(next.exit_code(), 0, "{}", next.stderr());
    assert!(!next.stderr().contains("skipping"), "{}", next.stderr());
    assert_eq!(runs(), 2, "the copy after the hold did not run");
}

/// Guards docs/EXEC.md `--kill-grace`: the documented fast LeaderPolicy timings (10/7/2, and the
/// CRD-valid 6/4/1) run with no flags at all, the default kill grace shrinking to fit.
#[test]
fn fast_leader_policy_timings_run_with_no_flags() {
    let pool = Pool::new("fast");
    pool.api.kubectl_ok(&[
        "apply",
        "-f",
        &repo_path("config/crd/bases").to_string_lossy(),
    ]);
    for (name, lease, renew, retry) in [("fast-a", 10, 7, 2), ("fast-b", 6, 4, 1)] {
        pool.api.apply(&format!(
            "apiVersion: coordination.kube-zen.io/v1alpha1\nkind: LeaderPolicy\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  leaseDurationSeconds: {lease}\n  renewDeadlineSeconds: {renew}\n  retryPeriodSeconds: {retry}\n"
        ));
        let mut w = pool
            .api
            .launch(&pool.scratch, name)
            .args(["--pool", name, "--identity", "r0", "--", "true"])
            .spawn();
        assert_eq!(w.exit_code(), 0, "{name}: {}", w.stderr());
        assert_eq!(
            pool.api.lease(name).and_then(|r| r.lease_duration_seconds),
            Some(lease),
            "{name}: the lease carries the policy's duration"
        );
    }
}

/// Guards docs/EXEC.md `--identity`: with `identityStrategy: custom` and no identity given, the
/// wrapper exits 78 naming the three ways to give one, and never falls back to the pod name.
#[test]
fn custom_identity_strategy_requires_an_identity() {
    let pool = Pool::new("custom");
    pool.api.kubectl_ok(&[
        "apply",
        "-f",
        &repo_path("config/crd/bases").to_string_lossy(),
    ]);
    pool.api.apply("apiVersion: coordination.kube-zen.io/v1alpha1\nkind: LeaderPolicy\nmetadata:\n  name: custom\n  namespace: default\nspec:\n  identityStrategy: custom\n");
    let marker = pool.scratch.path("ran");
    let touch = format!("touch {}", marker.display());
    let launch = |name: &str| {
        pool.api
            .launch(&pool.scratch, name)
            .args(["--pool", "custom"])
            .env("POD_NAME", "pod-0")
            .args(["--", "sh", "-c", touch.as_str()])
    };
    let mut refused = launch("no-identity").spawn();
    assert_eq!(refused.exit_code(), 78, "{}", refused.stderr());
    let stderr = refused.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for way in ["--identity", "ZEN_LEAD_IDENTITY", "zen-lead/identity"] {
        assert!(stderr.contains(way), "{stderr}");
    }
    assert!(!marker.exists(), "the command ran");
    assert!(pool.api.lease("custom").is_none(), "it campaigned");
    let mut given = launch("identity")
        .env("ZEN_LEAD_IDENTITY", "worker-blue")
        .spawn();
    assert_eq!(given.exit_code(), 0, "{}", given.stderr());
    assert!(marker.exists(), "the command did not run");
    assert_eq!(
        pool.api.lease("custom").and_then(|r| r.released_term),
        Some(1),
        "released"
    );
}

/// Guards docs/EXEC.md (PID 1 duties): a wrapper that is not PID 1 warns once, before its
/// first child, that its command's descendants would outlive a SIGKILL of the wrapper.
#[test]
fn not_pid_1_warns_once() {
    let pool = Pool::new("not-pid1");
    let mut w = pool
        .api
        .launch(&pool.scratch, "r0")
        .args(["--pool", "not-pid1", "--identity", "r0"])
        .args(FAST)
        .args(["--", "true"])
        .spawn();
    assert_eq!(w.exit_code(), 0, "{}", w.stderr());
    assert_eq!(w.stderr().matches("not PID 1").count(), 1, "{}", w.stderr());
}
