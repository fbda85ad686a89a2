//! The election figures: graceful handover, crash failover and requests per pool. Each runs
//! every contender at once, on its own pools, on the same server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::{join_all, select_all};
use zen_lead_testkit::TestServer;

use crate::Settings;
use crate::contender::{Contender, Handle};

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

/// Figure 1: the holder releases; time until the standby leads.
pub async fn handover(
    server: &TestServer,
    settings: &Settings,
) -> BTreeMap<&'static str, (Contender, Latencies)> {
    rounds_all(server, settings, Exit::Release, settings.handover_rounds).await
}

/// Figure 2: the holder stops without releasing; time until a standby leads.
pub async fn failover(
    server: &TestServer,
    settings: &Settings,
) -> BTreeMap<&'static str, (Contender, Latencies)> {
    rounds_all(server, settings, Exit::Crash, settings.failover_rounds).await
}

async fn rounds_all(
    server: &TestServer,
    settings: &Settings,
    exit: Exit,
    rounds: usize,
) -> BTreeMap<&'static str, (Contender, Latencies)> {
    let runs = Contender::ALL.map(|c| async move {
        let mut latencies = Latencies::default();
        if let Err(error) = rounds_one(server, settings, c, exit, rounds, &mut latencies).await {
            latencies.error = Some(error);
        }
        (c.slug(), (c, latencies))
    });
    join_all(runs).await.into_iter().collect()
}

/// Two candidates: the holder leaves, the standby must lead; a fresh standby joins; repeat.
async fn rounds_one(
    server: &TestServer,
    settings: &Settings,
    contender: Contender,
    exit: Exit,
    rounds: usize,
    latencies: &mut Latencies,
) -> Result<(), String> {
    let tag = match exit {
        Exit::Release => "handover",
        Exit::Crash => "failover",
    };
    let pool = format!("{tag}-{}", contender.slug());
    let limit = crate::wait_limit(settings);
    let spawn = |n: usize| {
        let pool = pool.clone();
        async move {
            let identity = format!("{pool}-{n}");
            Handle::spawn(server, contender, &pool, &identity, settings.lease_duration)
                .await
                .map_err(|e| format!("{e:#}"))
        }
    };
    let mut holder = spawn(0).await?;
    if !wait(limit, holder.wait_leading()).await {
        return Err(format!("the first candidate did not lead within {limit:?}"));
    }
    for round in 0..rounds {
        let standby = spawn(round + 1).await?;
        // Let the standby reach its steady state (first read, watch open, or poll done), then
        // leave at a different phase of the renew and poll cycles each round: a fixed delay
        // would catch a polling standby at the same point of its cycle every time.
        tokio::time::sleep(settings.settle + settings.lease_duration.mul_f64(phase(round))).await;
        if standby.is_leading() || !holder.is_leading() {
            return Err(format!(
                "round {round}: the holder lost the lease before it was asked to leave"
            ));
        }
        let start = Instant::now();
        match exit {
            Exit::Release => holder.release().await,
            Exit::Crash => holder.crash(),
        }
        if !wait(limit, standby.wait_leading()).await {
            standby.crash();
            return Err(format!(
                "round {round}: the standby did not lead within {limit:?}"
            ));
        }
        let took = start.elapsed();
        tracing::info!(%contender, tag, round, ?took, "standby leads");
        latencies.samples.push(took);
        holder = standby;
    }
    holder.crash();
    Ok(())
}

/// A fraction in [0, 1) for round `round`, spread evenly over the rounds (golden-ratio
/// sequence) and the same in every run.
fn phase(round: usize) -> f64 {
    ((round as f64 + 1.0) * 0.618_033_988_749_895).fract()
}

async fn wait(limit: Duration, f: impl Future<Output = bool>) -> bool {
    tokio::time::timeout(limit, f).await.unwrap_or(false)
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

/// Figure 3: `n` candidates per pool, every contender and every `n` at once; requests counted
/// by the server per client over a steady-state window.
pub async fn requests(server: &TestServer, settings: &Settings) -> Vec<PoolRequests> {
    let limit = crate::wait_limit(settings);
    let mut pools = Vec::new();
    for contender in Contender::ALL {
        for &n in &settings.candidates {
            pools.push((contender, n));
        }
    }
    let started = join_all(pools.iter().map(|&(contender, n)| async move {
        let pool = format!("rps-{}-{n}", contender.slug());
        let mut handles = Vec::new();
        for i in 0..n {
            let identity = format!("{pool}-c{i}");
            match Handle::spawn(server, contender, &pool, &identity, settings.lease_duration).await
            {
                Ok(h) => handles.push(h),
                Err(e) => return (pool, handles, Some(format!("{e:#}"))),
            }
        }
        let any = select_all(handles.iter().map(|h| Box::pin(h.wait_leading())));
        let error = match tokio::time::timeout(limit, any).await {
            Ok(_) => None,
            Err(_) => Some(format!("nobody led within {limit:?}")),
        };
        (pool, handles, error)
    }))
    .await;
    // Steady state: every follower has made its first read or opened its watch, and the peers'
    // startup requests (create, first reads) fall before the window.
    tokio::time::sleep(settings.settle).await;
    let before = server.accounting().snapshot();
    tokio::time::sleep(settings.window).await;
    let after = server.accounting().snapshot();
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
        for h in handles {
            h.crash();
        }
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
