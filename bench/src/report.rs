//! The Markdown tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::Settings;
use crate::contender::{Contender, kle_poll, zen_timing};
use crate::exec::ExecOverhead;
use crate::scenario::{Latencies, PoolRequests};

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

/// The report's opening: the setup of every contender.
pub fn header(settings: &Settings) -> String {
    let mut out = String::from(
        "# zen-lead vs peer crates\n\nOne run, one in-process testkit API server (HTTP on 127.0.0.1). How each library is driven:\n\n| library | settings |\n|---|---|\n",
    );
    for c in Contender::ALL {
        let _ = writeln!(out, "| {c} | {} |", c.settings(settings.lease_duration));
    }
    out.push('\n');
    out
}

fn latency_table(
    out: &mut String,
    results: &BTreeMap<&'static str, (Contender, Latencies)>,
    bound: impl Fn(Contender) -> String,
) {
    out.push_str(
        "| library | rounds | p50 | max | min | expected bound |\n|---|---|---|---|---|---|\n",
    );
    for c in Contender::ALL {
        let Some((_, l)) = results.get(c.slug()) else {
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
            bound(c)
        );
    }
    out.push('\n');
}

/// Figure 1.
pub fn handover(
    settings: &Settings,
    results: &BTreeMap<&'static str, (Contender, Latencies)>,
) -> String {
    let lease = settings.lease_duration;
    let mut out = format!(
        "## 1. Graceful handover latency\n\nTwo candidates; the holder releases the way its library documents; time from the release call to the standby leading. Lease {} s; the standby had {} s to settle, plus a fraction of the lease duration that differs each round, so the release falls at different points of the renew and poll cycles.\n\n",
        lease.as_secs(),
        settings.settle.as_secs()
    );
    latency_table(&mut out, results, |c| match c {
        Contender::ZenLead => "one watch event".into(),
        Contender::KubeLeaderElection => format!(
            "next poll (≤ {} s) + 1 s TTL of the stepped-down record",
            kle_poll(lease).as_secs()
        ),
        Contender::KubeLeaseManager => {
            format!("standby sleeps to the old expiry: ≤ {} s", lease.as_secs())
        }
    });
    out
}

/// Figure 2.
pub fn failover(
    settings: &Settings,
    results: &BTreeMap<&'static str, (Contender, Latencies)>,
) -> String {
    let lease = settings.lease_duration;
    let t = zen_timing(lease);
    let mut out = format!(
        "## 2. Crash failover latency (no controller)\n\nThe holder stops without releasing (task aborted, handle dropped); time until a standby leads. Lease {} s; the crash falls at a different point of the renew cycle each round, as in figure 1. The controller's early handover on evidence of death (PROTOCOL.md §8) is not measured here.\n\n",
        lease.as_secs()
    );
    latency_table(&mut out, results, |c| match c {
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
    });
    out
}

/// Figure 3.
pub fn requests(settings: &Settings, results: &[PoolRequests]) -> String {
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
pub fn exec(r: &ExecOverhead) -> String {
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
