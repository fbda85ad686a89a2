//! Figure 5, safety under faults: per library and fault, repeated rounds of two candidate
//! processes; in each, the longest time both believed they led ([`crate::beliefs`]) and
//! whether a term repeated or went backwards ([`crate::terms`]). Every round of every fault
//! and library runs at once, each on its own pool.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{DeleteParams, PostParams};
use zen_lead::lease::record;

use crate::Bench;
use crate::beliefs::{self, Overlap};
use crate::candidate::Candidate;
use crate::contender::{Contender, NAMESPACE};
use crate::scenario::{LEADS_NOW, phase, start};
use crate::terms::{self, TermCheck};
use crate::wire::now_nanos;

/// A fault the holder meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The holder's requests hang and its watches go silent (testkit blackhole of its
    /// User-Agent) until a successor has led for a while; then the partition heals.
    Partition,
    /// The holder's processes get SIGSTOP until a successor has led for a while (past the
    /// lease), then SIGCONT.
    Pause,
    /// Two candidates start at the same instant on an expired Lease left by a dead holder.
    Race,
    /// The Lease is deleted while held.
    LeaseDeleted,
}

impl Fault {
    /// Every fault, in table order.
    pub const ALL: [Fault; 4] = [
        Fault::Partition,
        Fault::Pause,
        Fault::Race,
        Fault::LeaseDeleted,
    ];

    /// The row suffix in `--json` and the pool prefix.
    pub fn slug(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::Pause => "pause",
            Fault::Race => "race",
            Fault::LeaseDeleted => "lease_deleted",
        }
    }

    /// The row title.
    pub fn title(self) -> &'static str {
        match self {
            Fault::Partition => "holder partitioned from the API server",
            Fault::Pause => "holder paused (SIGSTOP) past its lease, then SIGCONT",
            Fault::Race => "two candidates, one expired Lease, the same instant",
            Fault::LeaseDeleted => "Lease deleted while held",
        }
    }
}

/// One round.
#[derive(Debug, Clone, Default)]
pub struct Round {
    /// When both believed they led.
    pub overlap: Overlap,
    /// The pool's terms.
    pub terms: TermCheck,
    /// How many candidates still believed they led when the round ended.
    pub leading_at_end: usize,
    /// Why the round is incomplete, if it is.
    pub error: Option<String>,
}

/// Samples further apart than this are two intervals: a gap this long is a paused process
/// (a pause lasts a lease), not a slow sampler.
const MAX_GAP: Duration = Duration::from_secs(1);

/// How long the pipes of killed candidates are read before their samples are taken.
pub(crate) const DRAIN: Duration = Duration::from_millis(1500);

/// How long a pause lasts once the successor leads. A paused process samples nothing, so a
/// longer pause would not change what it believes after SIGCONT.
const PAUSE_AFTER_SUCCESSOR: Duration = Duration::from_secs(2);

/// How long a partition lasts once the successor leads, in lease durations: a holder that
/// keeps believing while cut off shows it for the whole of this time, so the figure says how
/// such a library grows with the partition rather than where a shorter one would cut it.
const PARTITION_AFTER_SUCCESSOR_LEASES: u32 = 1;

/// The term the dead holder's Lease carries in the race, so that a term which fails to pass
/// it shows.
const GHOST_TERM: i32 = 5;

/// Runs every round of every fault for every contender.
pub async fn run(bench: &Bench<'_>) -> BTreeMap<(Fault, Contender), Vec<Round>> {
    let mut jobs = Vec::new();
    for fault in Fault::ALL {
        for &contender in &bench.contenders {
            for round in 0..bench.settings.safety_rounds {
                jobs.push((fault, contender, round));
            }
        }
    }
    let results = join_all(jobs.iter().map(|&(fault, contender, round)| async move {
        let r = one(bench, fault, contender, round).await;
        tracing::info!(
            fault = fault.slug(),
            %contender,
            round,
            overlap = ?r.overlap.longest,
            seen = r.overlap.seen,
            repeated = r.terms.repeated,
            backwards = r.terms.backwards,
            leading_at_end = r.leading_at_end,
            error = r.error.as_deref().unwrap_or(""),
            "safety round"
        );
        ((fault, contender), r)
    }))
    .await;
    let mut out: BTreeMap<(Fault, Contender), Vec<Round>> = BTreeMap::new();
    for (key, r) in results {
        out.entry(key).or_default().push(r);
    }
    out
}

async fn one(bench: &Bench<'_>, fault: Fault, contender: Contender, round: usize) -> Round {
    let pool = format!(
        "{}-{}-{round}",
        fault.slug().replace('_', "-"),
        contender.slug()
    );
    let mut candidates: Vec<Candidate> = Vec::new();
    let began = now_nanos();
    let mut fault_at = None;
    let error = drive(
        bench,
        fault,
        contender,
        round,
        &pool,
        &mut candidates,
        &mut fault_at,
    )
    .await
    .err();
    // Stop everyone, then let the readers drain the pipes: on a loaded machine the samples
    // reach this process late, and the last second of a round would otherwise be missing.
    let end = now_nanos();
    for c in &mut candidates {
        c.kill();
    }
    tokio::time::sleep(DRAIN).await;
    let recent = end.saturating_sub(LEADS_NOW.as_nanos() as u64);
    let leading_at_end = candidates
        .iter()
        .filter(|c| c.samples().iter().any(|t| *t >= recent))
        .count();
    let intervals: Vec<_> = candidates
        .iter()
        .map(|c| beliefs::intervals(&c.samples(), MAX_GAP))
        .collect();
    let history = bench.histories.of(&pool);
    let r = Round {
        overlap: beliefs::overlap(&intervals),
        terms: terms::check(&terms::acquisitions(&history)),
        leading_at_end,
        error,
    };
    write_trace(
        bench,
        &pool,
        began,
        fault_at,
        &candidates,
        &intervals,
        &history,
        &r,
    );
    r
}

/// A round's beliefs (seconds from the round's start) and Lease history, next to the
/// candidates' logs, for reading a figure back to its cause.
#[allow(clippy::too_many_arguments)]
fn write_trace(
    bench: &Bench<'_>,
    pool: &str,
    began: u64,
    fault_at: Option<u64>,
    candidates: &[Candidate],
    intervals: &[Vec<beliefs::Interval>],
    history: &[terms::LeaseEvent],
    r: &Round,
) {
    use std::fmt::Write as _;
    let s = |t: u64| t.saturating_sub(began) as f64 / 1e9;
    let mut out = format!("pool {pool}\n{r:?}\n");
    if let Some(t) = fault_at {
        let _ = writeln!(out, "fault at {:.3} s", s(t));
    }
    for (c, ivs) in candidates.iter().zip(intervals) {
        let _ = write!(out, "{} believed:", c.identity);
        for i in ivs {
            let _ = write!(out, " {:.3}–{:.3}", s(i.start), s(i.end));
        }
        out.push('\n');
    }
    for e in history {
        let _ = writeln!(out, "lease: {e:?}");
    }
    let path = bench.launcher.logs.join(format!("{pool}.round.txt"));
    if let Err(error) = std::fs::write(&path, out) {
        tracing::debug!(%error, path = %path.display(), "writing the round trace");
    }
}

/// The round itself; `candidates` is filled as they start, so that the caller can always
/// stop them and read their samples.
async fn drive(
    bench: &Bench<'_>,
    fault: Fault,
    contender: Contender,
    round: usize,
    pool: &str,
    candidates: &mut Vec<Candidate>,
    fault_at: &mut Option<u64>,
) -> Result<(), String> {
    let settings = bench.settings;
    let limit = crate::wait_limit(settings);
    // After the fault ends: long enough for a holder that keeps believing until its renew
    // deadline (the Python client's: lease − 2 s) plus a retry, and for a polling peer's next
    // poll.
    let observe = settings.lease_duration + Duration::from_secs(5);
    if fault == Fault::Race {
        ghost(bench, pool).await?;
        for i in 0..2 {
            let c = bench
                .launcher
                .spawn(contender, pool, &format!("{pool}-{i}"))
                .await
                .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
            candidates.push(c);
        }
        // Both set up; `go` to both at once.
        *fault_at = Some(now_nanos());
        let (a, b) = candidates.split_at_mut(1);
        let (ra, rb) = futures::join!(a[0].go(), b[0].go());
        ra.and(rb).map_err(|e| e.to_string())?;
        tokio::time::sleep(observe + settings.lease_duration / 3).await;
        return Ok(());
    }
    candidates.push(start(bench, contender, pool, &format!("{pool}-0")).await?);
    if candidates[0].wait_leading(0, limit).await.is_none() {
        return Err(format!("the first candidate did not lead within {limit:?}"));
    }
    candidates.push(start(bench, contender, pool, &format!("{pool}-1")).await?);
    // Settle, then meet the fault at a different point of the renew cycle each round.
    tokio::time::sleep(settings.settle + settings.lease_duration.mul_f64(phase(round))).await;
    if !candidates[0].leads_now(LEADS_NOW) || candidates[1].leads_now(LEADS_NOW) {
        return Err("the holder lost the lease before the fault".into());
    }
    let at = now_nanos();
    *fault_at = Some(at);
    match fault {
        Fault::Partition => {
            let agent = candidates[0].user_agent();
            bench.server.faults().blackhole(Some(&agent), true);
            let led = candidates[1].wait_leading(at, limit).await;
            if led.is_some() {
                tokio::time::sleep(settings.lease_duration * PARTITION_AFTER_SUCCESSOR_LEASES)
                    .await;
            }
            bench.server.faults().blackhole(Some(&agent), false);
            if led.is_none() {
                return Err(format!(
                    "no successor led within {limit:?} of the partition"
                ));
            }
        }
        Fault::Pause => {
            candidates[0].pause();
            let led = candidates[1].wait_leading(at, limit).await;
            if led.is_some() {
                tokio::time::sleep(PAUSE_AFTER_SUCCESSOR).await;
            }
            candidates[0].resume();
            if led.is_none() {
                return Err(format!("no successor led within {limit:?} of the pause"));
            }
        }
        Fault::LeaseDeleted => {
            let api: kube::Api<Lease> = kube::Api::namespaced(bench.admin.clone(), NAMESPACE);
            api.delete(pool, &DeleteParams::default())
                .await
                .map_err(|e| format!("deleting the Lease: {e}"))?;
        }
        Fault::Race => {}
    }
    tokio::time::sleep(observe).await;
    Ok(())
}

/// A Lease left by a holder that died long ago: held, expired by its `renewTime` ten lease
/// durations back, with zen-lead's labels so that zen-lead treats it as its own.
async fn ghost(bench: &Bench<'_>, pool: &str) -> Result<(), String> {
    let lease = bench.settings.lease_duration;
    let long_ago = k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(lease.as_secs() as i64 * 10);
    let time = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(long_ago);
    let body: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": pool,
            "labels": {
                (record::LABEL_MANAGED_BY): record::MANAGED_BY,
                (record::LABEL_POOL): pool,
            },
        },
        "spec": {
            "holderIdentity": format!("{pool}-dead"),
            "leaseDurationSeconds": lease.as_secs(),
            "acquireTime": time,
            "renewTime": time,
            "leaseTransitions": GHOST_TERM,
        },
    }))
    .map_err(|e| e.to_string())?;
    let api: kube::Api<Lease> = kube::Api::namespaced(bench.admin.clone(), NAMESPACE);
    api.create(&PostParams::default(), &body)
        .await
        .map_err(|e| format!("creating the expired Lease: {e}"))?;
    Ok(())
}
