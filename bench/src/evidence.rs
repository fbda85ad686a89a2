//! Figure 6, failover on evidence of death (zen-lead only): zen-lead-exec candidates in pods of
//! the testkit's kubelet simulation, with `zen-lead-controller` running as a process. The
//! holder's processes get SIGKILL (nothing is released) and the kubelet reports it one of three
//! ways: the container restarted, the pod deleted, or the pod's phase `Failed`. Each is run on a
//! pool the controller manages (a LeaderPolicy, candidate pods) and on the same setup it does not
//! (no LeaderPolicy, pods without the pool annotation), which behaves as if there were no
//! controller: the standby waits for the Lease to expire (docs/PROTOCOL.md §8).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt as _;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use zen_lead::api::LeaderPolicy;
use zen_lead_testkit::controller_process::{ControllerProcess, Launch};

use crate::Bench;
use crate::beliefs::{self, Overlap};
use crate::candidate::Candidate;
use crate::contender::{Contender, NAMESPACE, zen_timing};
use crate::scenario::{LEADS_NOW, phase};
use crate::terms::{self, TermCheck};
use crate::wire::now_nanos;

/// How the kubelet reports the holder's crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The container restarted (`restartCount` + 1); its new process starts as a candidate
    /// with the same identity.
    Restarted,
    /// The pod is deleted gracefully, and removed once the kubelet sees its containers stopped.
    Deleted,
    /// The pod's phase becomes `Failed`.
    Failed,
}

impl Kind {
    /// Every kind, in table order.
    pub const ALL: [Kind; 3] = [Kind::Restarted, Kind::Deleted, Kind::Failed];

    /// The row suffix in `--json` and the pool prefix.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Restarted => "pod_restarted",
            Kind::Deleted => "pod_deleted",
            Kind::Failed => "pod_failed",
        }
    }

    /// The row title.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Restarted => "the holder's container restarts",
            Kind::Deleted => "the holder's pod is deleted",
            Kind::Failed => "the holder's pod phase becomes Failed",
        }
    }
}

/// Whether the controller manages the round's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Managed {
    /// A LeaderPolicy and candidate pods: the controller acts on the evidence.
    Controller,
    /// No LeaderPolicy, pods without the pool annotation: as without a controller.
    NoController,
}

impl Managed {
    /// Both, in table order.
    pub const ALL: [Managed; 2] = [Managed::Controller, Managed::NoController];

    fn slug(self) -> &'static str {
        match self {
            Managed::Controller => "ctl",
            Managed::NoController => "none",
        }
    }
}

/// One round.
#[derive(Debug, Clone, Default)]
pub struct Round {
    /// From the SIGKILL to the first sample of a successor.
    pub took: Option<Duration>,
    /// Who led after the crash.
    pub successor: Option<String>,
    /// When two candidates believed they led at once.
    pub overlap: Overlap,
    /// The pool's terms.
    pub terms: TermCheck,
    /// Why the round is incomplete, if it is.
    pub error: Option<String>,
}

/// Every round, or why the figure could not run.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Rounds per kind and management.
    pub rounds: BTreeMap<(Kind, Managed), Vec<Round>>,
    /// Why nothing was measured, if nothing was.
    pub error: Option<String>,
}

impl Results {
    /// The latencies of the completed rounds of `kinds` with `managed`.
    pub fn latencies(&self, kinds: &[Kind], managed: Managed) -> Vec<Duration> {
        kinds
            .iter()
            .filter_map(|k| self.rounds.get(&(*k, managed)))
            .flatten()
            .filter_map(|r| r.took)
            .collect()
    }
}

/// How long after the graceful deletion the kubelet removes the pod whose containers are
/// already gone (its sync loop runs every second).
pub const KUBELET_REMOVES_AFTER: Duration = Duration::from_secs(1);

/// The identity (and so the User-Agent) of the controller.
const CONTROLLER: &str = "zen-lead-bench-controller";

/// Runs every round of every kind, managed and not, at once, with one controller process.
pub async fn run(bench: &Bench<'_>) -> Results {
    let mut out = Results::default();
    let mut controller = match setup(bench).await {
        Ok(c) => c,
        Err(error) => {
            out.error = Some(error);
            return out;
        }
    };
    let mut jobs = Vec::new();
    for kind in Kind::ALL {
        for managed in Managed::ALL {
            for round in 0..bench.settings.failover_rounds {
                jobs.push((kind, managed, round));
            }
        }
    }
    let results = join_all(jobs.iter().map(|&(kind, managed, round)| async move {
        let r = one(bench, kind, managed, round).await;
        tracing::info!(
            kind = kind.slug(),
            ?managed,
            round,
            took = ?r.took,
            successor = r.successor.as_deref().unwrap_or(""),
            overlap = ?r.overlap.longest,
            repeated = r.terms.repeated,
            backwards = r.terms.backwards,
            error = r.error.as_deref().unwrap_or(""),
            "evidence round"
        );
        ((kind, managed), r)
    }))
    .await;
    for (key, r) in results {
        out.rounds.entry(key).or_default().push(r);
    }
    controller.stop(Duration::from_secs(10));
    out
}

/// The LeaderPolicy CRD, the controller's namespace, and the controller, leading its own
/// Lease.
async fn setup(bench: &Bench<'_>) -> Result<ControllerProcess, String> {
    let crds: Api<CustomResourceDefinition> = Api::all(bench.admin.clone());
    create_once(
        crds.create(&PostParams::default(), &LeaderPolicy::crd())
            .await,
    )
    .map_err(|e| format!("installing the LeaderPolicy CRD: {e}"))?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "zen-lead-system"}}))
        .map_err(|e| e.to_string())?;
    create_once(
        Api::<Namespace>::all(bench.admin.clone())
            .create(&PostParams::default(), &ns)
            .await,
    )
    .map_err(|e| format!("creating the namespace zen-lead-system: {e}"))?;
    let exe = bench
        .launcher
        .controller_bin
        .clone()
        .ok_or("zen-lead-controller is not available")?;
    let mut controller = Launch {
        exe,
        kubeconfig: bench.launcher.kubeconfig.clone(),
        identity: CONTROLLER.into(),
        log: bench.launcher.logs.join("zen-lead-controller.log"),
        rust_log: "info".into(),
        args: Vec::new(),
    }
    .spawn()
    .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    controller
        .wait_metrics(Duration::from_secs(60), "leading its own Lease", |text| {
            text.lines()
                .any(|l| l.starts_with("zen_lead_controller_leading 1"))
        })
        .await
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    Ok(controller)
}

/// A create that may find the object there already (a second figure run on the same server).
fn create_once<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The round's pool (LeaderPolicy, Lease, and the prefix of its pod names).
fn pool_name(kind: Kind, managed: Managed, round: usize) -> String {
    format!(
        "ev-{}-{}-{round}",
        kind.slug().replace('_', "-"),
        managed.slug()
    )
}

async fn one(bench: &Bench<'_>, kind: Kind, managed: Managed, round: usize) -> Round {
    let pool = pool_name(kind, managed, round);
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut out = Round::default();
    if let Err(error) = drive(
        bench,
        kind,
        managed,
        round,
        &pool,
        &mut candidates,
        &mut out,
    )
    .await
    {
        out.error = Some(error);
    }
    for c in &mut candidates {
        c.kill();
    }
    tokio::time::sleep(crate::safety::DRAIN).await;
    let intervals: Vec<_> = candidates
        .iter()
        .map(|c| beliefs::intervals(&c.samples(), Duration::from_secs(1)))
        .collect();
    out.overlap = beliefs::overlap(&intervals);
    out.terms = terms::check(&terms::acquisitions(&bench.histories.of(&pool)));
    out
}

/// The round; `candidates` is filled as they start, so that the caller can always stop them.
async fn drive(
    bench: &Bench<'_>,
    kind: Kind,
    managed: Managed,
    round: usize,
    pool: &str,
    candidates: &mut Vec<Candidate>,
    out: &mut Round,
) -> Result<(), String> {
    let settings = bench.settings;
    let limit = crate::wait_limit(settings);
    if managed == Managed::Controller {
        policy(bench, pool).await?;
    }
    let holder = format!("{pool}-a");
    let standby = format!("{pool}-b");
    let holder_uid = run_pod(bench, pool, &holder, managed)?;
    candidates.push(start(bench, pool, &holder, &holder_uid).await?);
    if candidates[0].wait_leading(0, limit).await.is_none() {
        return Err(format!("the first candidate did not lead within {limit:?}"));
    }
    let standby_uid = run_pod(bench, pool, &standby, managed)?;
    candidates.push(start(bench, pool, &standby, &standby_uid).await?);
    // Settle (the controller sees renewals: its restart-count baseline), then crash at a
    // different point of the renew cycle each round, as in figure 2.
    tokio::time::sleep(settings.settle + settings.lease_duration.mul_f64(phase(round))).await;
    if !candidates[0].leads_now(LEADS_NOW) || candidates[1].leads_now(LEADS_NOW) {
        return Err("the holder lost the lease before the crash".into());
    }
    let at = now_nanos();
    candidates[0].kill();
    let kubelet = bench.server.kubelet();
    match kind {
        Kind::Restarted => {
            kubelet
                .restart_container(NAMESPACE, &holder, None)
                .map_err(|e| format!("restarting the container: {e}"))?;
            // The restarted container runs the wrapper again, as a new candidate.
            candidates.push(start(bench, pool, &holder, &holder_uid).await?);
        }
        Kind::Deleted => {
            let pods: Api<Pod> = Api::namespaced(bench.admin.clone(), NAMESPACE);
            pods.delete(&holder, &DeleteParams::default().grace_period(30))
                .await
                .map_err(|e| format!("deleting the pod: {e}"))?;
            tokio::time::sleep(KUBELET_REMOVES_AFTER).await;
            kubelet
                .containers_stopped(NAMESPACE, &holder)
                .map_err(|e| format!("removing the pod: {e}"))?;
        }
        Kind::Failed => {
            kubelet
                .set_phase(NAMESPACE, &holder, "Failed")
                .map_err(|e| format!("setting the phase: {e}"))?;
        }
    }
    let waits = candidates[1..]
        .iter()
        .map(|c| Box::pin(async move { (c.wait_leading(at, limit).await, c) }));
    let ((led, who), _, _) = futures::future::select_all(waits).await;
    let Some(led) = led else {
        return Err(format!("no successor led within {limit:?} of the crash"));
    };
    out.took = Some(Duration::from_nanos(led.saturating_sub(at)));
    out.successor = Some(if who.identity == holder {
        format!("{holder} (restarted)")
    } else {
        who.identity.clone()
    });
    // Watch a little longer: a second believer after the handover shows in the overlap.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// A zen-lead-exec candidate in pod `name` (its identity; `POD_UID` as the downward API gives
/// it), campaigning.
async fn start(bench: &Bench<'_>, pool: &str, name: &str, uid: &str) -> Result<Candidate, String> {
    let mut c = bench
        .launcher
        .spawn_with_env(Contender::ZenLead, pool, name, &[("POD_UID", uid)])
        .await
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    c.go()
        .await
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    Ok(c)
}

/// A Running, Ready pod named `name`; a candidate of `pool` when the controller manages it.
/// Returns its UID.
fn run_pod(bench: &Bench<'_>, pool: &str, name: &str, managed: Managed) -> Result<String, String> {
    let metadata = match managed {
        Managed::Controller => json!({
            "name": name,
            "annotations": {"zen-lead/pool": pool, "zen-lead/join": "true"},
        }),
        Managed::NoController => json!({"name": name}),
    };
    let pod = bench
        .server
        .kubelet()
        .run_pod(NAMESPACE, json!({ "metadata": metadata }))
        .map_err(|e| format!("running pod {name}: {e}"))?;
    pod.pointer("/metadata/uid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("pod {name} has no uid"))
}

/// The pool's LeaderPolicy, with the timings the candidates run with (whole seconds).
async fn policy(bench: &Bench<'_>, pool: &str) -> Result<(), String> {
    let t = zen_timing(bench.settings.lease_duration);
    let secs = |d: Duration| d.as_secs().max(1);
    let policy: LeaderPolicy = serde_json::from_value(json!({
        "apiVersion": "coordination.kube-zen.io/v1alpha1",
        "kind": "LeaderPolicy",
        "metadata": {"name": pool, "namespace": NAMESPACE},
        "spec": {
            "leaseDurationSeconds": secs(t.lease_duration),
            "renewDeadlineSeconds": secs(t.renew_deadline),
            "retryPeriodSeconds": secs(t.retry_period),
        },
    }))
    .map_err(|e| e.to_string())?;
    Api::<LeaderPolicy>::namespaced(bench.admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &policy)
        .await
        .map_err(|e| format!("creating the LeaderPolicy: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn took(ms: u64) -> Round {
        Round {
            took: Some(Duration::from_millis(ms)),
            ..Round::default()
        }
    }

    #[test]
    fn latencies_take_completed_rounds_of_the_kinds_asked() {
        let mut r = Results::default();
        r.rounds.insert(
            (Kind::Restarted, Managed::Controller),
            vec![took(30), Round::default()],
        );
        r.rounds
            .insert((Kind::Failed, Managed::Controller), vec![took(20)]);
        r.rounds
            .insert((Kind::Failed, Managed::NoController), vec![took(14_000)]);
        let ms = |v: Vec<Duration>| v.iter().map(|d| d.as_millis()).collect::<Vec<_>>();
        assert_eq!(ms(r.latencies(&Kind::ALL, Managed::Controller)), [30, 20]);
        assert_eq!(
            ms(r.latencies(&[Kind::Failed], Managed::NoController)),
            [14_000]
        );
        assert!(
            r.latencies(&[Kind::Deleted], Managed::Controller)
                .is_empty()
        );
    }

    #[test]
    fn pool_and_pod_names_are_dns_labels_and_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in Kind::ALL {
            for managed in Managed::ALL {
                for round in 0..10 {
                    let pod = format!("{}-b", pool_name(kind, managed, round));
                    assert!(pod.len() <= 63, "{pod}");
                    assert!(
                        pod.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                        "{pod}"
                    );
                    assert!(seen.insert(pod));
                }
            }
        }
    }
}
