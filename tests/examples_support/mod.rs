//! Running `examples/` end to end: the testkit with its process kubelet, the install manifests
//! (`config/crd/bases/`, `config/rbac/`, `examples/rbac.yaml`), and an example applied verbatim
//! with `--resolve` mapping the paths its containers name to the built `zen-lead-exec` and to
//! local stand-ins for the workloads' own programs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;

use crate::exec_support::{ApiServer, EVENTUALLY, Scratch, eventually, exe, repo_path};

/// One example's run: the server, a scratch directory and the resolve map in use.
#[derive(Debug)]
pub struct ExampleRun {
    pub api: ApiServer,
    pub scratch: Scratch,
}

/// What to start the server with.
#[derive(Debug, Default)]
pub struct Resolves(Vec<(String, PathBuf)>);

impl Resolves {
    /// `/zen-lead-exec` (and the release image's name, for init containers that rely on its
    /// entrypoint) resolve to the built binary.
    pub fn with_exec() -> Self {
        Self(vec![
            ("/zen-lead-exec".into(), PathBuf::from(exe())),
            (
                "ghcr.io/kube-zen/zen-lead-exec:0.1.0".into(),
                PathBuf::from(exe()),
            ),
        ])
    }

    /// `from` resolves to `to` too.
    pub fn and(mut self, from: &str, to: PathBuf) -> Self {
        self.0.push((from.into(), to));
        self
    }
}

impl ExampleRun {
    /// Starts the process-kubelet server with `resolves` (built by `stand_ins` in the run's
    /// scratch directory) and installs the CRD and the RBAC manifests.
    pub fn start(tag: &str, stand_ins: impl FnOnce(&Scratch) -> Resolves) -> Self {
        Self::start_with(tag, false, stand_ins)
    }

    /// Like [`ExampleRun::start`]; with `rbac`, the server requires tokens (over TLS) and
    /// evaluates RBAC, and each pod authenticates as its own service account, so the example's
    /// RBAC manifests are what lets it work.
    pub fn start_with(tag: &str, rbac: bool, stand_ins: impl FnOnce(&Scratch) -> Resolves) -> Self {
        let scratch = Scratch::new(tag);
        let mut builder = zen_lead_testkit::TestServer::builder()
            .process_kubelet(true)
            .auth(rbac)
            .tls(rbac);
        for (from, to) in stand_ins(&scratch).0 {
            builder = builder.resolve(from, to);
        }
        let run = Self {
            api: ApiServer::start_with(builder),
            scratch,
        };
        run.kubectl_ok(&["apply", "-f", "config/crd/bases/"]);
        run.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/leaderpolicies.coordination.kube-zen.io",
        ]);
        run.kubectl_ok(&["apply", "-f", "config/rbac/"]);
        run.kubectl_ok(&["apply", "-f", "examples/rbac.yaml"]);
        run
    }

    /// Runs kubectl in the repository root.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.api
            .kubectl()
            .args(args)
            .current_dir(repo_path(""))
            .output()
            .expect("run kubectl (it must be on the PATH)")
    }

    /// Runs kubectl and asserts success; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f examples/NAME` (verbatim).
    pub fn apply_example(&self, name: &str) {
        self.kubectl_ok(&["apply", "-f", &format!("examples/{name}")]);
    }

    /// Suspends CronJob `name`: a test that triggers runs by hand (`kubectl create job
    /// --from=cronjob/...`, which a suspended CronJob still allows) must not also get the
    /// schedule's own ticks, which come on the wall clock.
    pub fn suspend_cronjob(&self, name: &str) {
        self.kubectl_ok(&[
            "patch",
            "cronjob",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":true}}"#,
        ]);
    }

    /// `kubectl create job --from=cronjob/CRONJOB JOB` for every job at the same moment, as
    /// copies of one schedule tick would start; returns once every Job is created.
    pub fn create_jobs_at_once(&self, cronjob: &str, jobs: &[&str]) {
        let from = format!("--from=cronjob/{cronjob}");
        let mut started: Vec<std::process::Child> = jobs
            .iter()
            .map(|job| {
                self.api
                    .kubectl()
                    .args(["create", "job", &from, job])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("kubectl create job")
            })
            .collect();
        for child in &mut started {
            assert!(child.wait().expect("kubectl").success());
        }
    }

    /// Names of the pods matching `selector` that are not being deleted.
    pub fn live_pods(&self, selector: &str) -> Vec<String> {
        self.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp} {.status.phase}{\"\\n\"}{end}",
        ])
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            // name, empty deletionTimestamp, phase
            (parts.len() == 3 && parts[1].is_empty() && parts[2] == "Running")
                .then(|| parts[0].to_string())
        })
        .collect()
    }

    /// Waits until `n` pods matching `selector` run.
    pub fn wait_running(&self, selector: &str, n: usize) -> Vec<String> {
        let mut pods = Vec::new();
        eventually(&format!("{n} running pods {selector}"), || {
            pods = self.live_pods(selector);
            pods.len() == n
        });
        pods
    }

    /// The logs of every container of every pod matching `selector`, for failure messages.
    pub fn logs(&self, selector: &str) -> String {
        let out = self.kubectl(&[
            "logs",
            "-l",
            selector,
            "--all-containers",
            "--prefix",
            "--tail=40",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits for `kubectl wait --for=condition=complete job/NAME`.
    pub fn wait_job_complete(&self, job: &str) {
        let timeout = format!("--timeout={}s", EVENTUALLY.as_secs());
        let out = self.kubectl(&[
            "wait",
            "--for=condition=complete",
            &format!("job/{job}"),
            &timeout,
        ]);
        assert!(
            out.status.success(),
            "job {job} did not complete: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs(&format!("job-name={job}"))
        );
    }
}
