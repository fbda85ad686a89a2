//! The speed figures: graceful handover, crash failover and requests per pool. Each runs
//! every contender at once, on its own pools, on the same server, every candidate a process.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::{join_all, select_all};

use crate::Bench;
use crate::candidate::Candidate;
use crate::contender::Contender;
use crate::wire::now_nanos;

/// Latencies of one contender, or why they are missing.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    /// One sample per completed round.
    pub samples: Vec<Duration>,
    /// What went wrong, if a round did not complete.
    pub error: Option<String>,
}

/// How a holder leaves in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Release,
    Crash,
}

/// Results per contender.
pub type PerContender<T> = BTreeMap<Contender, T>;

/// Figure 1: the holder releases; time until the standby leads.
pub async fn handover(bench: &Bench<'_>) -> PerContender<Latencies> {
    rounds_all(bench, Exit::Release, bench.settings.handover_rounds).await
}

/// Figure 2: the holder stops without releasing; time until a standby leads.
pub async fn failover(bench: &Bench<'_>) -> PerContender<Latencies> {
    rounds_all(bench, Exit::Crash, bench.settings.failover_rounds).await
}

async fn rounds_all(bench: &Bench<'_>, exit: Exit, rounds: usize) -> PerContender<Latencies> {
    let runs = bench.contenders.iter().map(|&c| async move {
        let mut latencies = Latencies::default();
        if let Err(error) = rounds_one(bench, c, exit, rounds, &mut latencies).await {
            latencies.error = Some(error);
        }
        (c, latencies)
    });
    join_all(runs).await.into_iter().collect()
}

/// Starts a candidate and lets it campaign.
pub(crate) async fn start(
    bench: &Bench<'_>,
    contender: Contender,
    pool: &str,
    identity: &str,
) -> Result<Candidate, String> {
    let mut c = bench
        .launcher
        .spawn(contender, pool, identity)
        .await
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    c.go()
        .await
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    Ok(c)
}

/// Two candidates: the holder leaves, the standby must lead; a fresh standby joins; repeat.
async fn rounds_one(
    bench: &Bench<'_>,
    contender: Contender,
    exit: Exit,
    rounds: usize,
    latencies: &mut Latencies,
) -> Result<(), String> {
    let settings = bench.settings;
    let tag = match exit {
        Exit::Release => "handover",
        Exit::Crash => "failover",
    };
    let pool = format!("{tag}-{}", contender.slug());
    let limit = crate::wait_limit(settings);
    let mut holder = start(bench, contender, &pool, &format!("{pool}-0")).await?;
    if holder.wait_leading(0, limit).await.is_none() {
        return Err(format!("the first candidate did not lead within {limit:?}"));
    }
    for round in 0..rounds {
        let standby = start(bench, contender, &pool, &format!("{pool}-{}", round + 1)).await?;
        // Let the standby reach its steady state (first read, watch open, or poll done), then
        // leave at a different phase of the renew and poll cycles each round: a fixed delay
        // would catch a polling standby at the same point of its cycle every time.
        tokio::time::sleep(settings.settle + settings.lease_duration.mul_f64(phase(round))).await;
        if standby.leads_now(LEADS_NOW) || !holder.leads_now(LEADS_NOW) {
            return Err(format!(
                "round {round}: the holder lost the lease before it was asked to leave"
            ));
        }
        let start = now_nanos();
        match exit {
            Exit::Release => holder.release().await.map_err(|e| e.to_string())?,
            Exit::Crash => holder.kill(),
        }
        let Some(led) = standby.wait_leading(start, limit).await else {
            return Err(format!(
                "round {round}: the standby did not lead within {limit:?} (holder: {})",
                holder.describe_tree()
            ));
        };
        let took = Duration::from_nanos(led.saturating_sub(start));
        tracing::info!(%contender, tag, round, ?took, "standby leads");
        latencies.samples.push(took);
        holder.kill();
        holder = standby;
    }
    Ok(())
}

/// A leading candidate samples every few milliseconds; this much silence means it does not
/// lead now (or is paused).
pub(crate) const LEADS_NOW: Duration = Duration::from_millis(300);

/// A fraction in [0, 1) for round `round`, spread evenly over the rounds (golden-ratio
/// sequence) and the same in every run.
pub(crate) fn phase(round: usize) -> f64 {
    ((round as f64 + 1.0) * 0.618_033_988_749_895).fract()
}

/// Requests of one pool over the window.
#[derive(Debug, Clone)]
pub struct PoolRequests {
    /// The library.
    pub contender: Contender,
    /// Number of candidates.
    pub candidates: usize,
    /// Requests per verb over the window.
    pub by_verb: BTreeMap<String, u64>,
    /// The window.
    pub window: Duration,
    /// Why the pool has no figure, if it has none.
    pub error: Option<String>,
}

impl PoolRequests {
    /// All requests per second.
    pub fn per_second(&self) -> f64 {
        self.by_verb.values().sum::<u64>() as f64 / self.window.as_secs_f64().max(1e-9)
    }
}

/// Figure 3: `n` candidates per pool, every contender and every `n` at once; requests counted
/// by the server per client over a steady-state window.
pub async fn requests(bench: &Bench<'_>) -> Vec<PoolRequests> {
    let settings = bench.settings;
    let limit = crate::wait_limit(settings);
    let mut pools = Vec::new();
    for &contender in &bench.contenders {
        for &n in &settings.candidates {
            pools.push((contender, n));
        }
    }
    let started = join_all(pools.iter().map(|&(contender, n)| async move {
        let pool = format!("rps-{}-{n}", contender.slug());
        let mut handles = Vec::new();
        for i in 0..n {
            match start(bench, contender, &pool, &format!("{pool}-c{i}")).await {
                Ok(h) => handles.push(h),
                Err(e) => return (pool, handles, Some(e)),
            }
        }
        let any = select_all(handles.iter().map(|h| Box::pin(h.wait_leading(0, limit))));
        let error = match tokio::time::timeout(limit, any).await {
            Ok((Some(_), _, _)) => None,
            _ => Some(format!("nobody led within {limit:?}")),
        };
        (pool, handles, error)
    }))
    .await;
    // Steady state: every follower has made its first read or opened its watch, and the peers'
    // startup requests (create, first reads) fall before the window.
    tokio::time::sleep(settings.settle).await;
    let before = bench.server.accounting().snapshot();
    tokio::time::sleep(settings.window).await;
    let after = bench.server.accounting().snapshot();
    let mut out = Vec::new();
    for ((contender, n), (pool, handles, error)) in pools.into_iter().zip(started) {
        let mut by_verb: BTreeMap<String, u64> = BTreeMap::new();
        // Clients are named after their candidate (zen-lead's user agent contains it).
        let prefix = format!("{pool}-c");
        for (client, verbs) in &after {
            if !client.contains(&prefix) {
                continue;
            }
            for (verb, count) in verbs {
                let earlier = before
                    .get(client)
                    .and_then(|v| v.get(verb))
                    .copied()
                    .unwrap_or(0);
                *by_verb.entry(verb.clone()).or_default() += count - earlier;
            }
        }
        drop(handles);
        out.push(PoolRequests {
            contender,
            candidates: n,
            by_verb,
            window: settings.window,
            error,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_over_the_cycle() {
        let mut p: Vec<f64> = (0..5).map(phase).collect();
        assert!(p.iter().all(|x| (0.0..1.0).contains(x)));
        p.sort_by(f64::total_cmp);
        // Five rounds release at five well separated points of the cycle.
        assert!(p.windows(2).all(|w| w[1] - w[0] > 0.1), "{p:?}");
    }
}
