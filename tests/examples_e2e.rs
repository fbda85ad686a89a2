//! The examples run end to end: applied verbatim with kubectl to the testkit's process kubelet,
//! which runs the built `zen-lead-exec` where the manifests name `/zen-lead-exec`.

mod controller_support;
mod examples_support;
mod exec_support;

use examples_support::{ExampleRun, Resolves};
use exec_support::*;

/// Waits until a term above `after` has beaten `beats` times; returns it.
fn wait_for_term_after(
    hb: &std::path::Path,
    after: u64,
    beats: usize,
    run: &ExampleRun,
) -> Interval {
    let mut found = None;
    let until = std::time::Instant::now() + EVENTUALLY;
    while std::time::Instant::now() < until {
        let text = std::fs::read_to_string(hb).unwrap_or_default();
        if let Some(last) = intervals(&text).last().cloned() {
            let n = text
                .lines()
                .filter(|l| l.starts_with(&format!("{},beat,", last.term)))
                .count();
            if last.term > after && n >= beats {
                return last;
            }
            found = Some(last);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "no term after {after} ran (last seen {found:?})\n{}",
        run.logs("app=sync-daemon")
    );
}

/// examples/standby-daemon.yaml: three zen-lead-exec replicas, one daemon at a time, and a
/// successor when the leader's pod is deleted.
#[test]
fn standby_daemon_example_runs_one_leader_and_hands_over_on_pod_delete() {
    // With RBAC: the pods run as the `report` service account of examples/rbac.yaml.
    let run = ExampleRun::start_with("standby-daemon", true, |scratch| {
        let hb_script = scratch.script("hb.sh", zen_lead_testkit::heartbeat::SCRIPT);
        let hb = scratch.path("heartbeats");
        // The daemon the image would carry: the heartbeat child, writing to this run's file.
        let daemon = scratch.script(
            "sync-daemon",
            &format!(
                "#!/bin/sh\nHB={} exec /bin/sh {}\n",
                hb.display(),
                hb_script.display()
            ),
        );
        Resolves::with_exec().and("/usr/local/bin/sync-daemon", daemon)
    });
    let hb = run.scratch.path("heartbeats");
    run.apply_example("standby-daemon.yaml");
    let pods = run.wait_running("app=sync-daemon", 3);
    let first = wait_for_term_after(&hb, 0, 5, &run);
    assert!(
        pods.contains(&first.identity),
        "the leader {} is one of the pods {pods:?}",
        first.identity
    );
    let holder = run.api.lease("sync-daemon").and_then(|r| r.holder);
    assert_eq!(holder.as_deref(), Some(first.identity.as_str()));
    // The standbys wait: one term only so far, and all three pods still run.
    assert_eq!(
        intervals(&std::fs::read_to_string(&hb).unwrap_or_default()).len(),
        1
    );
    run.kubectl_ok(&["delete", "pod", &first.identity, "--wait=false"]);
    let second = wait_for_term_after(&hb, first.term, 5, &run);
    assert_ne!(second.identity, first.identity, "a standby took over");
    check_single_active(&std::fs::read_to_string(&hb).unwrap_or_default());
    // The Deployment replaced the deleted pod.
    run.wait_running("app=sync-daemon", 3);
}

/// examples/cronjob-skip.yaml: one schedule tick started several times over (here three
/// `kubectl create job --from=cronjob/...` at once) runs the report once; the other copies
/// skip and complete too.
#[test]
fn cronjob_skip_example_one_tick_many_copies_one_run() {
    let run = ExampleRun::start_with("cronjob-skip", true, |scratch| {
        let runs = scratch.path("runs");
        let report = scratch.script(
            "report",
            &format!(
                "#!/bin/sh\necho \"$POD_NAME\" >> {}\nsleep 2\n",
                runs.display()
            ),
        );
        Resolves::with_exec().and("/app/report", report)
    });
    run.apply_example("cronjob-skip.yaml");
    run.suspend_cronjob("nightly-report");
    let copies = ["tick-a", "tick-b", "tick-c"];
    run.create_jobs_at_once("nightly-report", &copies);
    for job in copies {
        run.wait_job_complete(job);
    }
    let runs = std::fs::read_to_string(run.scratch.path("runs")).unwrap_or_default();
    assert_eq!(
        runs.lines().count(),
        1,
        "exactly one copy runs the report: {runs:?}\n{}",
        run.logs("job-name")
    );
}

/// The job's final condition: `Complete` or `Failed`, once it has one; `Pruned` once the
/// CronJob's history limit (`failedJobsHistoryLimit` defaults to 1) has deleted it, which
/// happens only to finished Jobs.
fn job_outcome(run: &ExampleRun, job: &str) -> Option<String> {
    let out = run.kubectl(&[
        "get",
        &format!("job/{job}"),
        "-o",
        "jsonpath={range .status.conditions[*]}{.type}={.status}{\"\\n\"}{end}",
    ]);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("NotFound"),
            "kubectl get job/{job}: {stderr}"
        );
        return Some("Pruned".into());
    }
    let conditions = String::from_utf8_lossy(&out.stdout);
    ["Complete", "Failed"]
        .into_iter()
        .find(|c| conditions.lines().any(|l| l == format!("{c}=True")))
        .map(str::to_string)
}

/// examples/cronjob-gate.yaml with the real zen-lead-controller: one tick started three times
/// over runs the export once (the other copies' gates fail, and their Jobs do not retry them);
/// the controller releases when that run's pod succeeds, so the next run leads at once.
#[test]
fn cronjob_gate_example_one_tick_many_copies_one_run_then_the_next_run_leads() {
    let run = ExampleRun::start_with("cronjob-gate", true, |scratch| {
        let runs = scratch.path("runs");
        // The image's own entrypoint: a run long enough that every copy's gate starts meanwhile.
        let export = scratch.script(
            "billing-export",
            &format!(
                "#!/bin/sh\necho start >> {runs}\nsleep 8\necho end >> {runs}\n",
                runs = runs.display()
            ),
        );
        Resolves::with_exec().and("registry.example.com/billing-export:3.1.0", export)
    });
    // The controller's namespace and the gates' Role from deploy/; the controller itself runs
    // as a local process (its Deployment would need the image).
    run.kubectl_ok(&["apply", "-f", "deploy/00-namespace.yaml"]);
    run.kubectl_ok(&["apply", "-f", "deploy/30-gate-role.yaml"]);
    let mut controller: controller_support::ControllerProcess = controller_support::launch(
        run.api.kubeconfig(),
        "ctl-0",
        run.scratch.path("controller.log"),
    )
    .spawn()
    .expect("start the controller");
    run.api
        .rt
        .block_on(controller.wait_ready(EVENTUALLY))
        .expect("the controller is ready");
    controller_support::eventually(EVENTUALLY, "the controller to lead", || {
        run.api
            .lease_in(CONTROLLER_NS, CONTROLLER_LEASE)
            .and_then(|r| r.holder)
    });
    run.apply_example("cronjob-gate.yaml");
    run.suspend_cronjob("billing-export");

    let copies = ["tick-a", "tick-b", "tick-c"];
    run.create_jobs_at_once("billing-export", &copies);
    let outcomes: Vec<String> = copies
        .iter()
        .map(|job| {
            controller_support::eventually(EVENTUALLY, &format!("job {job} to finish"), || {
                job_outcome(&run, job)
            })
        })
        .collect();
    let runs = std::fs::read_to_string(run.scratch.path("runs")).unwrap_or_default();
    let context = format!(
        "{outcomes:?} {runs:?}\n{}\n{}",
        run.logs("job-name"),
        controller.log_text()
    );
    assert_eq!(
        runs, "start\nend\n",
        "exactly one copy ran the export: {context}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| *o == "Complete").count(),
        1,
        "one copy completes, the others fail their gate (and may be pruned): {context}"
    );
    // The run's pod succeeded, so the controller released: the next run leads at once.
    let record = run.api.lease("billing-export").expect("the pool's lease");
    assert_eq!(record.holder, None, "released after the run: {record:?}");
    run.kubectl_ok(&[
        "create",
        "job",
        "--from=cronjob/billing-export",
        "tick-next",
    ]);
    run.wait_job_complete("tick-next");
    let runs = std::fs::read_to_string(run.scratch.path("runs")).unwrap_or_default();
    assert_eq!(
        runs,
        "start\nend\nstart\nend\n",
        "the next run ran after the first: {}",
        controller.log_text()
    );
}
