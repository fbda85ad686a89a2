//! examples/annotation-only.yaml end to end: the Deployment applied verbatim to the testkit's
//! process kubelet, the real `zen-lead-controller` electing for its pods, and the app reading
//! its role from the downward-API volume the example mounts.

mod controller_support;
mod examples_support;
mod exec_support;

use std::time::{Duration, Instant};

use controller_support::ControllerProcess;
use examples_support::{ExampleRun, Resolves};
use exec_support::EVENTUALLY;

const IMAGE: &str = "registry.example.com/my-app:1.0.0";

/// The pods labelled `zen-lead/role=leader` and `follower`.
fn roles(run: &ExampleRun) -> (Vec<String>, Vec<String>) {
    let pods = |role: &str| -> Vec<String> {
        run.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            &format!("app=my-app,zen-lead/role={role}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    };
    (pods("leader"), pods("follower"))
}

/// Samples the roles until `done` answers; panics if two pods are ever labelled leader.
fn watch_roles(run: &ExampleRun, what: &str, mut done: impl FnMut(&[String]) -> bool) -> String {
    let until = Instant::now() + EVENTUALLY;
    loop {
        let (leaders, followers) = roles(run);
        assert!(
            leaders.len() <= 1,
            "two pods labelled leader at once: {leaders:?}"
        );
        if leaders.len() == 1 && followers.len() == 2 && done(&leaders) {
            return leaders[0].clone();
        }
        assert!(
            Instant::now() < until,
            "not within {EVENTUALLY:?}: {what} (leaders {leaders:?}, followers {followers:?})\n{}",
            run.logs("app=my-app")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn annotation_only_example_elects_one_pod_and_fails_over_when_it_is_deleted() {
    let run = ExampleRun::start("annotation-only", |scratch| {
        // The app the image would carry: it reads its role from the downward-API volume (the
        // process kubelet keeps it in the pod's directory, `$HOME/volumes/NAME/`) and notes
        // every time it sees itself leader.
        let seen = scratch.path("seen-leader");
        let app = scratch.script(
            "my-app",
            &format!(
                "#!/bin/sh\nwhile true; do\n  if grep -q 'zen-lead/role=\"leader\"' \"$HOME/volumes/podinfo/annotations\" 2>/dev/null; then echo \"$HOSTNAME\" >> {}; fi\n  sleep 0.2\ndone\n",
                seen.display()
            ),
        );
        Resolves::default().and(IMAGE, app)
    });
    run.kubectl_ok(&["apply", "-f", "deploy/00-namespace.yaml"]);
    let mut controller: ControllerProcess = controller_support::launch(
        run.api.kubeconfig(),
        "ctl-example",
        run.scratch.path("controller.log"),
    )
    .spawn()
    .expect("start zen-lead-controller");
    run.apply_example("annotation-only.yaml");
    let pods = run.wait_running("app=my-app", 3);

    let first = watch_roles(&run, "one leader and two followers", |_| true);
    assert!(pods.contains(&first), "{first} is one of {pods:?}");
    let holder = run.kubectl_ok(&[
        "get",
        "lp",
        "my-pool",
        "-o",
        "jsonpath={.status.currentHolder.name} {.status.phase}",
    ]);
    assert_eq!(holder, format!("{first} Stable"));
    // The app in the leader's pod sees its role through the volume, and only that one does.
    let seen = run.scratch.path("seen-leader");
    exec_support::eventually("the leader's app reads its role from the volume", || {
        std::fs::read_to_string(&seen).is_ok_and(|t| t.lines().any(|l| l == first))
    });
    let seen_by: std::collections::BTreeSet<String> = std::fs::read_to_string(&seen)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        seen_by.len(),
        1,
        "only the leader's app saw leader: {seen_by:?}"
    );

    // The leader's pod is deleted: the controller names a successor, never two at once, and
    // the Deployment's replacement joins as a follower.
    run.kubectl_ok(&["delete", "pod", &first, "--wait=false"]);
    let second = watch_roles(&run, "a successor", |leaders| leaders[0] != first);
    assert_ne!(second, first);
    let term = run.kubectl_ok(&["get", "lp", "my-pool", "-o", "jsonpath={.status.term}"]);
    assert_eq!(term, "2", "the successor's term");
    assert!(
        controller.stop(Duration::from_secs(20)).is_some(),
        "the controller stops on SIGTERM\n{}",
        controller.log_text()
    );
}
