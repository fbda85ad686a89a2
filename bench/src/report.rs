//! The Markdown tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::contender::{Contender, kle_poll, python_timing, zen_timing};
use crate::evidence::{self, Kind, Managed};
use crate::exec::ExecOverhead;
use crate::safety::{Fault, Round};
use crate::scenario::{Latencies, PerContender, PoolRequests};
use crate::terms::TermCheck;
use crate::{Bench, Settings};

/// Every figure measured in a run.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Figure 1.
    pub handover: Option<PerContender<Latencies>>,
    /// Figure 2.
    pub failover: Option<PerContender<Latencies>>,
    /// Figure 3.
    pub requests: Option<Vec<PoolRequests>>,
    /// Figure 4.
    pub exec: Option<ExecOverhead>,
    /// Figure 5.
    pub safety: Option<BTreeMap<(Fault, Contender), Vec<Round>>>,
    /// Figure 6.
    pub evidence: Option<evidence::Results>,
}

/// The value at quantile `q` (nearest rank) of `samples`.
pub fn quantile(samples: &[Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Seconds with two decimals, or milliseconds below one second.
fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        millis(d)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// A setting: `15 s`, `0.8 s`.
pub fn setting(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The whole Markdown report.
pub fn markdown(bench: &Bench<'_>, results: &Results) -> String {
    let settings = bench.settings;
    let mut out = header(bench);
    if let Some(r) = &results.handover {
        out.push_str(&handover(bench, r));
    }
    if let Some(r) = &results.failover {
        out.push_str(&failover(bench, r));
    }
    if let Some(r) = &results.requests {
        out.push_str(&requests(settings, r));
    }
    if let Some(r) = &results.exec {
        out.push_str(&exec(r));
    }
    if let Some(r) = &results.safety {
        out.push_str(&safety(bench, r));
    }
    if let Some(r) = &results.evidence {
        out.push_str(&evidence_figure(bench, r));
    }
    out.push_str(&summary(bench, results));
    out
}

/// The report's opening: the setup of every contender.
fn header(bench: &Bench<'_>) -> String {
    let mut out = String::from(
        "# zen-lead vs peers\n\nOne run, one in-process testkit API server (HTTP on 127.0.0.1); every candidate is a process of its own. How each library is driven:\n\n| library | settings |\n|---|---|\n",
    );
    for c in &bench.contenders {
        let _ = writeln!(
            out,
            "| {c} | {} |",
            c.settings(bench.settings.lease_duration)
        );
    }
    for (c, why) in &bench.missing {
        let _ = writeln!(out, "| {c} | not measured: {why} |");
    }
    out.push('\n');
    out
}

fn latency_table(
    out: &mut String,
    bench: &Bench<'_>,
    results: &PerContender<Latencies>,
    bound: impl Fn(Contender) -> String,
) {
    out.push_str(
        "| library | rounds | p50 | max | min | expected bound |\n|---|---|---|---|---|---|\n",
    );
    for c in &bench.contenders {
        let Some(l) = results.get(c) else {
            continue;
        };
        let cell = |q: f64| quantile(&l.samples, q).map_or_else(|| "—".to_string(), secs);
        let mut rounds = l.samples.len().to_string();
        if let Some(e) = &l.error {
            let _ = write!(rounds, " (stopped: {e})");
        }
        let min = l
            .samples
            .iter()
            .min()
            .map_or_else(|| "—".to_string(), |d| secs(*d));
        let _ = writeln!(
            out,
            "| {c} | {rounds} | {} | {} | {min} | {} |",
            cell(0.5),
            cell(1.0),
            bound(*c)
        );
    }
    out.push('\n');
}

/// Figure 1.
fn handover(bench: &Bench<'_>, results: &PerContender<Latencies>) -> String {
    let settings = bench.settings;
    let lease = settings.lease_duration;
    let mut out = format!(
        "## 1. Graceful handover latency\n\nTwo candidates; the holder releases the way its library documents; time from the release call to the standby's first belief sample (for zen-lead, its wrapped command's first sample). Lease {} s; the standby had {} s to settle, plus a fraction of the lease duration that differs each round, so the release falls at different points of the renew and poll cycles.\n\n",
        lease.as_secs(),
        settings.settle.as_secs()
    );
    latency_table(&mut out, bench, results, |c| match c {
        Contender::ZenLead => "one watch event (+ the command's start)".into(),
        Contender::KubeLeaderElection => format!(
            "next poll (≤ {} s) + 1 s TTL of the stepped-down record",
            kle_poll(lease).as_secs()
        ),
        Contender::KubeLeaseManager => {
            format!("standby sleeps to the old expiry: ≤ {} s", lease.as_secs())
        }
        Contender::PythonKubernetes => format!(
            "no release call: as a crash, ≤ lease + retry ({} s)",
            (lease + python_timing(lease).retry_period).as_secs()
        ),
    });
    out
}

/// Figure 2.
fn failover(bench: &Bench<'_>, results: &PerContender<Latencies>) -> String {
    let lease = bench.settings.lease_duration;
    let t = zen_timing(lease);
    let mut out = format!(
        "## 2. Crash failover latency (no controller)\n\nThe holder's processes get SIGKILL (nothing is released); time until a standby leads. Lease {} s; the crash falls at a different point of the renew cycle each round, as in figure 1. The controller's handover on evidence of death (PROTOCOL.md §8) is figure 6.\n\n",
        lease.as_secs()
    );
    latency_table(&mut out, bench, results, |c| match c {
        Contender::ZenLead => format!(
            "≤ lease ({}) after the last renewal seen; renewals every {}, so ≈ {} to {}",
            setting(lease),
            setting(t.retry_period),
            setting(lease - t.retry_period),
            setting(lease)
        ),
        Contender::KubeLeaderElection => format!(
            "renewTime + ttl on the standby's wall clock, seen at its next poll: ≤ {} s",
            (lease + kle_poll(lease)).as_secs()
        ),
        Contender::KubeLeaseManager => format!(
            "renewTime + duration on the wall clock, + 0.1–1 s: ≤ {} s",
            lease.as_secs() + 1
        ),
        Contender::PythonKubernetes => format!(
            "lease after the record last changed, seen at the next retry: ≤ {} s",
            (lease + python_timing(lease).retry_period).as_secs()
        ),
    });
    out
}

/// Figure 3.
fn requests(settings: &Settings, results: &[PoolRequests]) -> String {
    let verbs = ["get", "list", "watch", "create", "update", "patch"];
    let mut out = format!(
        "## 3. API requests per second per pool\n\nSteady state: all pools at once, requests counted by the server per client over {} s (after {} s to settle). A watch is counted once, when it is opened; zen-lead's followers each hold one open watch.\n\n| library | candidates | total req/s |",
        settings.window.as_secs(),
        settings.settle.as_secs()
    );
    for v in verbs {
        let _ = write!(out, " {v}/s |");
    }
    out.push_str(" other/s |\n|---|---|---|");
    for _ in 0..=verbs.len() {
        out.push_str("---|");
    }
    out.push('\n');
    for r in results {
        let rate = |n: u64| format!("{:.2}", n as f64 / r.window.as_secs_f64().max(1e-9));
        let total: u64 = r.by_verb.values().sum();
        let mut line = format!("| {} | {} | {} |", r.contender, r.candidates, rate(total));
        if let Some(e) = &r.error {
            let _ = write!(line, " ({e}) ");
        }
        for v in verbs {
            let _ = write!(line, " {} |", rate(r.by_verb.get(v).copied().unwrap_or(0)));
        }
        let other: u64 = r
            .by_verb
            .iter()
            .filter(|(v, _)| !verbs.contains(&v.as_str()))
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(out, "{line} {} |", rate(other));
    }
    out.push('\n');
    out
}

/// Figure 4.
fn exec(r: &ExecOverhead) -> String {
    let med = |s: &[Duration]| quantile(s, 0.5).unwrap_or_default();
    let added_start = med(&r.wrapped_start).saturating_sub(med(&r.direct_start));
    let added_total = med(&r.wrapped_total).saturating_sub(med(&r.direct_total));
    let mut out = format!(
        "## 4. Wrapper overhead of zen-lead-exec\n\nNo peer has a wrapper: the comparison is with running the command directly. Medians of {} runs; the lease is empty (released by the previous run), so the wrapper acquires at once. The peer crates cannot do this (n/a).\n\n| measure | direct | zen-lead-exec | added |\n|---|---|---|---|\n",
        r.direct_start.len()
    );
    let _ = writeln!(
        out,
        "| spawn → child's first instruction | {} | {} | {} |",
        millis(med(&r.direct_start)),
        millis(med(&r.wrapped_start)),
        millis(added_start)
    );
    let _ = writeln!(
        out,
        "| whole run of `true` (wrapper: acquire, run, release) | {} | {} | {} |",
        millis(med(&r.direct_total)),
        millis(med(&r.wrapped_total)),
        millis(added_total)
    );
    let _ = writeln!(
        out,
        "| wrapper RSS while the child runs (peak) | — | {} kB ({} kB) | {} kB |",
        r.rss_kb, r.hwm_kb, r.rss_kb
    );
    let _ = writeln!(
        out,
        "| binary size (`target/release/zen-lead-exec`, {}) | — | {:.2} MiB | {:.2} MiB |",
        if r.stripped {
            "stripped"
        } else {
            "NOT stripped"
        },
        r.binary_bytes as f64 / (1024.0 * 1024.0),
        r.binary_bytes as f64 / (1024.0 * 1024.0)
    );
    out.push('\n');
    out
}

/// Figure 5.
fn safety(bench: &Bench<'_>, results: &BTreeMap<(Fault, Contender), Vec<Round>>) -> String {
    let lease = bench.settings.lease_duration;
    let mut out = format!(
        "## 5. Safety under faults\n\nPer fault and library, rounds of two candidate processes on a fresh pool (all rounds at once). Each candidate writes a sample every 5 ms while its library tells it that it leads (for zen-lead: while its wrapped command runs); a gap of over 1 s (a paused process samples nothing) splits its belief. **Two leaders** is the longest stretch in which both candidates' beliefs overlap; a round counts in the second column when they were ever seen at one instant, even for 0 ms. **Terms** come from the Lease's own history (the benchmark watches it): each new holder's `leaseTransitions`, counted when it equals (repeated) or is below (backwards) the highest term before it. The partition lasts until the standby leads plus one lease duration ({} s), the pause until the standby leads plus 2 s; every round then watches {} s more. **Leading at the end** counts the rounds' candidates that still believed they led when the round ended (1 per round is a settled pool; 0, nobody leads). Lease {} s.\n\n| fault | library | rounds | rounds with two leaders | two leaders, longest | two leaders, p50 of rounds | terms repeated / backwards (acquisitions) | leading at the end |\n|---|---|---|---|---|---|---|---|\n",
        lease.as_secs(),
        (lease + std::time::Duration::from_secs(5)).as_secs(),
        lease.as_secs()
    );
    for fault in Fault::ALL {
        for c in &bench.contenders {
            let Some(rounds) = results.get(&(fault, *c)) else {
                continue;
            };
            let longest: Vec<Duration> = rounds.iter().map(|r| r.overlap.longest).collect();
            let seen = rounds.iter().filter(|r| r.overlap.seen).count();
            let mut terms = TermCheck::default();
            for r in rounds {
                terms.add(r.terms);
            }
            let errors: Vec<&str> = rounds.iter().filter_map(|r| r.error.as_deref()).collect();
            let mut n = rounds.len().to_string();
            if !errors.is_empty() {
                let _ = write!(n, " ({} incomplete: {})", errors.len(), errors.join("; "));
            }
            let cell = |q: f64| quantile(&longest, q).map_or_else(|| "—".to_string(), secs);
            let at_end: Vec<String> = rounds
                .iter()
                .map(|r| r.leading_at_end.to_string())
                .collect();
            let _ = writeln!(
                out,
                "| {} | {c} | {n} | {seen} | {} | {} | {} / {} ({}) | {} |",
                fault.title(),
                cell(1.0),
                cell(0.5),
                terms.repeated,
                terms.backwards,
                terms.acquisitions,
                at_end.join(", ")
            );
        }
    }
    out.push('\n');
    out
}

/// Figure 6.
fn evidence_figure(bench: &Bench<'_>, r: &evidence::Results) -> String {
    let lease = bench.settings.lease_duration;
    let mut out = format!(
        "## 6. Failover on evidence of death (zen-lead-controller)\n\nzen-lead only: two `zen-lead-exec` candidates in pods of the testkit's kubelet simulation (`POD_UID` set, as the downward API sets it), `zen-lead-controller` running as a process. The holder's processes get SIGKILL (nothing is released) and the kubelet reports it; time from the SIGKILL to a successor's first sample. **restarts**: `restartCount` + 1, and the container's new process campaigns again with the same identity; **deleted**: a graceful deletion, and {} later the kubelet removes the pod (its containers are already gone); **Failed**: the pod's phase. Each against the same crash on a pool the controller does not manage (no LeaderPolicy, pods not annotated), which is as if there were no controller. Lease {} s; the crash falls at a different point of the renew cycle each round. Two leaders and terms as in figure 5.\n\n",
        setting(evidence::KUBELET_REMOVES_AFTER),
        lease.as_secs()
    );
    if let Some(e) = &r.error {
        let _ = writeln!(out, "Not measured: {e}\n");
        return out;
    }
    out.push_str("| evidence | controller | rounds | p50 | max | min | two leaders, longest | terms repeated / backwards (acquisitions) | expected bound |\n|---|---|---|---|---|---|---|---|---|\n");
    for kind in Kind::ALL {
        for managed in Managed::ALL {
            let Some(rounds) = r.rounds.get(&(kind, managed)) else {
                continue;
            };
            let took: Vec<Duration> = rounds.iter().filter_map(|x| x.took).collect();
            let cell = |q: f64| quantile(&took, q).map_or_else(|| "—".to_string(), secs);
            let errors: Vec<&str> = rounds.iter().filter_map(|x| x.error.as_deref()).collect();
            let mut n = took.len().to_string();
            if !errors.is_empty() {
                let _ = write!(n, " ({} incomplete: {})", errors.len(), errors.join("; "));
            }
            let mut terms = TermCheck::default();
            for x in rounds {
                terms.add(x.terms);
            }
            let overlap = rounds
                .iter()
                .map(|x| x.overlap.longest)
                .max()
                .unwrap_or_default();
            let seen = rounds.iter().any(|x| x.overlap.seen);
            let bound = match (managed, kind) {
                (Managed::Controller, Kind::Deleted) => format!(
                    "{} (the kubelet) + the controller's reaction",
                    setting(evidence::KUBELET_REMOVES_AFTER)
                ),
                (Managed::Controller, _) => "the controller's reaction (watch events)".to_string(),
                (Managed::NoController, _) => {
                    format!(
                        "expiry: ≤ lease ({}) after the last renewal",
                        setting(lease)
                    )
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} | {n} | {} | {} | {} | {} | {} / {} ({}) | {bound} |",
                kind.title(),
                match managed {
                    Managed::Controller => "running",
                    Managed::NoController => "none",
                },
                cell(0.5),
                cell(1.0),
                cell(0.0),
                if seen {
                    secs(overlap)
                } else {
                    "none".to_string()
                },
                terms.repeated,
                terms.backwards,
                terms.acquisitions,
            );
        }
    }
    out.push('\n');
    out
}

/// A figure in the summary and the JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    /// A duration.
    Time(Duration),
    /// A count.
    Count(usize),
    /// A rate per second.
    Rate(f64),
}

impl Value {
    fn json(self) -> serde_json::Value {
        match self {
            Value::Time(d) => serde_json::json!((d.as_secs_f64() * 10_000.0).round() / 10.0),
            Value::Count(n) => serde_json::json!(n),
            Value::Rate(r) => serde_json::json!((r * 1000.0).round() / 1000.0),
        }
    }

    fn cell(self) -> String {
        match self {
            Value::Time(d) => secs(d),
            Value::Count(n) => n.to_string(),
            Value::Rate(r) => format!("{r:.2}"),
        }
    }
}

/// One summary row: its JSON name, its label, a value per library.
type Row = (String, String, BTreeMap<Contender, Value>);

fn rows(bench: &Bench<'_>, results: &Results) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    let p50 = |r: &PerContender<Latencies>| -> BTreeMap<Contender, Value> {
        r.iter()
            .filter_map(|(c, l)| quantile(&l.samples, 0.5).map(|d| (*c, Value::Time(d))))
            .collect()
    };
    if let Some(r) = &results.handover {
        out.push((
            "graceful_handover_p50_ms".into(),
            format!(
                "graceful handover, p50 of {}",
                bench.settings.handover_rounds
            ),
            p50(r),
        ));
    }
    if let Some(r) = &results.failover {
        out.push((
            "crash_failover_p50_ms".into(),
            format!(
                "crash failover (no controller), p50 of {}",
                bench.settings.failover_rounds
            ),
            p50(r),
        ));
    }
    if let Some(r) = results.evidence.as_ref().filter(|r| r.error.is_none()) {
        let zen = |samples: Vec<Duration>| -> BTreeMap<Contender, Value> {
            quantile(&samples, 0.5)
                .map(|d| (Contender::ZenLead, Value::Time(d)))
                .into_iter()
                .collect()
        };
        let n = bench.settings.failover_rounds;
        out.push((
            "evidence_failover_p50_ms".into(),
            format!(
                "failover on evidence of death (controller), p50 of {} kinds × {n}",
                Kind::ALL.len()
            ),
            zen(r.latencies(&Kind::ALL, Managed::Controller)),
        ));
        for kind in Kind::ALL {
            out.push((
                format!("evidence_failover_p50_ms_{}", kind.slug()),
                format!("… {}", kind.title()),
                zen(r.latencies(&[kind], Managed::Controller)),
            ));
        }
        for kind in Kind::ALL {
            out.push((
                format!("evidence_no_controller_p50_ms_{}", kind.slug()),
                format!("… {}, no controller", kind.title()),
                zen(r.latencies(&[kind], Managed::NoController)),
            ));
        }
    }
    if let Some(r) = &results.safety {
        let fold =
            |faults: &[Fault], f: &dyn Fn(&[&Round]) -> Value| -> BTreeMap<Contender, Value> {
                bench
                    .contenders
                    .iter()
                    .filter_map(|c| {
                        let rounds: Vec<&Round> = faults
                            .iter()
                            .filter_map(|fault| r.get(&(*fault, *c)))
                            .flatten()
                            .collect();
                        (!rounds.is_empty()).then(|| (*c, f(&rounds)))
                    })
                    .collect()
            };
        let longest = |rounds: &[&Round]| {
            Value::Time(
                rounds
                    .iter()
                    .map(|r| r.overlap.longest)
                    .max()
                    .unwrap_or_default(),
            )
        };
        let seen =
            |rounds: &[&Round]| Value::Count(rounds.iter().filter(|r| r.overlap.seen).count());
        let bad = |rounds: &[&Round]| Value::Count(rounds.iter().map(|r| r.terms.bad()).sum());
        let n = bench.settings.safety_rounds;
        out.push((
            "dual_leader_max_ms".into(),
            format!("two leaders at once, longest (4 faults × {n} rounds)"),
            fold(&Fault::ALL, &longest),
        ));
        for fault in Fault::ALL {
            out.push((
                format!("dual_leader_max_ms_{}", fault.slug()),
                format!("… {}", fault.title()),
                fold(&[fault], &longest),
            ));
        }
        out.push((
            "dual_leader_rounds".into(),
            format!("rounds with two leaders seen at once (of {})", 4 * n),
            fold(&Fault::ALL, &seen),
        ));
        out.push((
            "term_repeats".into(),
            "terms repeated or gone backwards".into(),
            fold(&Fault::ALL, &bad),
        ));
        for fault in Fault::ALL {
            out.push((
                format!("term_repeats_{}", fault.slug()),
                format!("… {}", fault.title()),
                fold(&[fault], &bad),
            ));
        }
    }
    if let Some(r) = &results.requests {
        for &n in &bench.settings.candidates {
            out.push((
                format!("requests_per_s_{n}_candidates"),
                format!("API requests/s per pool, {n} candidates"),
                r.iter()
                    .filter(|p| p.candidates == n && p.error.is_none())
                    .map(|p| (p.contender, Value::Rate(p.per_second())))
                    .collect(),
            ));
        }
    }
    out
}

/// The summary: one row per figure, one column per library.
fn summary(bench: &Bench<'_>, results: &Results) -> String {
    let mut out = String::from("## Summary\n\n| figure |");
    for c in &bench.contenders {
        let _ = write!(out, " {c} |");
    }
    out.push_str("\n|---|");
    for _ in &bench.contenders {
        out.push_str("---:|");
    }
    out.push('\n');
    for (_, label, values) in rows(bench, results) {
        let _ = write!(out, "| {label} |");
        for c in &bench.contenders {
            let _ = write!(
                out,
                " {} |",
                values.get(c).map_or_else(|| "—".to_string(), |v| v.cell())
            );
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

/// `{"libraries": [...], "rows": {"<row>": {"<library>": <number>}}}`.
pub fn json(bench: &Bench<'_>, results: &Results) -> serde_json::Value {
    let libraries: Vec<&str> = bench.contenders.iter().map(|c| c.json_name()).collect();
    let mut rows_out = serde_json::Map::new();
    for (name, _, values) in rows(bench, results) {
        let row: serde_json::Map<String, serde_json::Value> = values
            .into_iter()
            .map(|(c, v)| (c.json_name().to_string(), v.json()))
            .collect();
        rows_out.insert(name, serde_json::Value::Object(row));
    }
    serde_json::json!({ "libraries": libraries, "rows": rows_out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let s = ms(&[40, 10, 30, 20]);
        assert_eq!(quantile(&s, 0.5), Some(Duration::from_millis(20)));
        assert_eq!(quantile(&s, 1.0), Some(Duration::from_millis(40)));
        assert_eq!(quantile(&s, 0.0), Some(Duration::from_millis(10)));
        assert_eq!(quantile(&ms(&[7]), 0.5), Some(Duration::from_millis(7)));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(secs(Duration::from_millis(3)), "3.0 ms");
        assert_eq!(secs(Duration::from_millis(12_345)), "12.35 s");
        assert_eq!(setting(Duration::from_millis(800)), "0.8 s");
        assert_eq!(setting(Duration::from_secs(15)), "15 s");
    }
}
