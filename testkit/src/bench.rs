//! `zen-lead-testkit bench`: create/list/watch throughput and watch event latency, with the
//! kube client over loopback HTTP against an in-process server.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::TestServer;

/// The benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The server did not start.
    #[error("starting the server")]
    Start(#[source] crate::StartError),
    /// No client could be built.
    #[error("building a client")]
    Client(#[source] crate::ClientError),
    /// A request failed.
    #[error("{phase} request failed")]
    Request {
        /// Which phase.
        phase: &'static str,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The run exceeded its time bound.
    #[error("the benchmark exceeded {0:?}")]
    Timeout(Duration),
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark and returns the report table. Bounded by `max`.
pub async fn run(objects: usize, watchers: usize, max: Duration) -> Result<String, BenchError> {
    tokio::time::timeout(max, run_inner(objects, watchers))
        .await
        .map_err(|_| BenchError::Timeout(max))?
}

async fn run_inner(objects: usize, watchers: usize) -> Result<String, BenchError> {
    let server = TestServer::start().await.map_err(BenchError::Start)?;
    let client = server.client_as("bench").map_err(BenchError::Client)?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "zen-lead-testkit bench: {objects} objects, {watchers} watchers, loopback HTTP, kube client"
    );
    let _ = writeln!(
        out,
        "{:<28} {:>10} {:>12} {:>14}",
        "phase", "ops", "seconds", "ops/s"
    );
    let row = |out: &mut String, name: &str, n: u64, d: Duration| {
        let _ = writeln!(
            out,
            "{name:<28} {n:>10} {:>12.3} {:>14.1}",
            d.as_secs_f64(),
            rate(n, d)
        );
    };

    // Create.
    let start = Instant::now();
    let results: Vec<Result<ConfigMap, kube::Error>> = stream::iter(0..objects)
        .map(|i| {
            let cms = cms.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("obj-{i:06}"), "labels": {"bench": "yes"}},
                    "data": {"i": i.to_string()},
                }))
                .unwrap_or_default();
                cms.create(&PostParams::default(), &cm).await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r.map_err(|source| BenchError::Request {
            phase: "create",
            source,
        })?;
    }
    row(&mut out, "create", objects as u64, start.elapsed());

    // Full lists.
    let lists = 5u64;
    let start = Instant::now();
    let mut rv = String::new();
    for _ in 0..lists {
        let list =
            cms.list(&ListParams::default())
                .await
                .map_err(|source| BenchError::Request {
                    phase: "list",
                    source,
                })?;
        rv = list.metadata.resource_version.unwrap_or_default();
    }
    let took = start.elapsed();
    row(&mut out, "list (all objects)", lists, took);
    row(&mut out, "  objects listed", lists * objects as u64, took);

    // Paginated list.
    let start = Instant::now();
    let mut pages = 0u64;
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = cms.list(&lp).await.map_err(|source| BenchError::Request {
            phase: "paginated list",
            source,
        })?;
        pages += 1;
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    row(&mut out, "list pages (limit=500)", pages, start.elapsed());

    // Watchers: each watches the namespace from the list's resourceVersion.
    let epoch = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let delivered = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut streams = Vec::with_capacity(watchers);
    for w in 0..watchers {
        let client = server
            .client_as(&format!("bench-watcher-{w}"))
            .map_err(BenchError::Client)?;
        let api: Api<ConfigMap> = Api::default_namespaced(client);
        let s = api
            .watch(&WatchParams::default().timeout(290), &rv)
            .await
            .map_err(|source| BenchError::Request {
                phase: "watch",
                source,
            })?;
        streams.push(s.boxed());
    }
    row(&mut out, "watch opened", watchers as u64, start.elapsed());
    let updates = 50usize;
    let expected = (updates * watchers) as u64;
    let mut tasks = Vec::new();
    for mut s in streams {
        let (latencies, delivered) = (latencies.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while mine.len() < updates {
                match s.try_next().await {
                    Ok(Some(WatchEvent::Modified(cm))) => {
                        let sent = cm
                            .data
                            .as_ref()
                            .and_then(|d| d.get("sent_us"))
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                        let now = epoch.elapsed().as_micros() as u64;
                        mine.push(now.saturating_sub(sent));
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            if let Ok(mut l) = latencies.lock() {
                l.extend(mine);
            }
        }));
    }
    let start = Instant::now();
    for u in 0..updates {
        let mut cm = cms
            .get(&format!("obj-{:06}", u % objects.max(1)))
            .await
            .map_err(|source| BenchError::Request {
                phase: "get",
                source,
            })?;
        cm.data
            .get_or_insert_with(Default::default)
            .insert("sent_us".into(), epoch.elapsed().as_micros().to_string());
        cms.replace(
            &format!("obj-{:06}", u % objects.max(1)),
            &PostParams::default(),
            &cm,
        )
        .await
        .map_err(|source| BenchError::Request {
            phase: "update",
            source,
        })?;
    }
    for t in tasks {
        let _ = t.await;
    }
    let took = start.elapsed();
    row(&mut out, "updates (fanned out)", updates as u64, took);
    row(
        &mut out,
        "watch events delivered",
        delivered.load(Ordering::Relaxed),
        took,
    );
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let _ = writeln!(
        out,
        "watch event latency (us): p50 {} p90 {} p99 {} max {} ({} of {} events)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
        lat.len(),
        expected
    );
    Ok(out)
}
