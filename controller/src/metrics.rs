//! Prometheus metrics and the health endpoints (docs/ARCHITECTURE.md, "Operations"):
//! `/metrics`, `/healthz` (the process is up) and `/readyz` (the caches are synced), served on
//! `--metrics-addr`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::debug;

/// Labels of a per-pool series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// The pool's namespace.
    pub namespace: String,
    /// The pool (LeaderPolicy) name.
    pub pool: String,
}

impl PoolLabels {
    /// The labels of `namespace/pool`.
    pub fn new(namespace: &str, pool: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            pool: pool.to_owned(),
        }
    }
}

/// Labels of a leadership transition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// The pool's namespace.
    pub namespace: String,
    /// The pool.
    pub pool: String,
    /// `new`, `release`, `expiry` or `evidence`.
    pub reason: String,
}

/// Labels of a failed Lease write.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The pool's namespace.
    pub namespace: String,
    /// The pool.
    pub pool: String,
    /// `create`, `acquire`, `renew` or `release`.
    pub operation: String,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The error's label (`ReconcileError::label`).
    pub error: String,
}

fn failover_histogram() -> Histogram {
    // 50 ms .. ~100 s: evidence handovers are sub-second, expiries take a lease duration.
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

/// The controller's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Leadership transitions by reason.
    pub transitions: Family<TransitionLabels, Counter>,
    /// Seconds from the controller seeing a pool lose its live holder to a new live holder.
    pub failover_seconds: Family<PoolLabels, Histogram, fn() -> Histogram>,
    /// Candidates per pool.
    pub candidates: Family<PoolLabels, Gauge>,
    /// Ready candidates per pool.
    pub ready_candidates: Family<PoolLabels, Gauge>,
    /// 1 when the pool has a live holder.
    pub leader_present: Family<PoolLabels, Gauge>,
    /// Failed reconciles by error label.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration.
    pub reconcile_duration: Histogram,
    /// Failed Lease writes (409 conflicts excluded: they are the protocol working).
    pub lease_write_errors: Family<WriteLabels, Counter>,
    /// 1 while this replica holds the controller's own Lease.
    pub leading: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("zen_lead");
        let transitions = Family::default();
        let failover_seconds =
            Family::<PoolLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                failover_histogram,
            );
        let candidates = Family::default();
        let ready_candidates = Family::default();
        let leader_present = Family::default();
        let reconcile_errors = Family::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let lease_write_errors = Family::default();
        let leading = Gauge::default();
        registry.register(
            "transitions",
            "Leadership transitions, by reason (new, release, expiry, evidence)",
            transitions.clone(),
        );
        registry.register(
            "failover_seconds",
            "Seconds from a pool losing its live holder to a new live holder",
            failover_seconds.clone(),
        );
        registry.register("candidates", "Candidate pods per pool", candidates.clone());
        registry.register(
            "ready_candidates",
            "Ready candidate pods per pool",
            ready_candidates.clone(),
        );
        registry.register(
            "leader_present",
            "1 when the pool has a live holder",
            leader_present.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by error",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one pool reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "lease_write_errors",
            "Failed Lease writes, by operation (conflicts excluded)",
            lease_write_errors.clone(),
        );
        registry.register(
            "controller_leading",
            "1 while this replica holds the controller's own Lease",
            leading.clone(),
        );
        Self {
            registry,
            transitions,
            failover_seconds,
            candidates,
            ready_candidates,
            leader_present,
            reconcile_errors,
            reconcile_duration,
            lease_write_errors,
            leading,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Forgets a pool's gauges (its LeaderPolicy is gone).
    pub fn forget_pool(&self, labels: &PoolLabels) {
        self.candidates.remove(labels);
        self.ready_candidates.remove(labels);
        self.leader_present.remove(labels);
    }
}

/// Liveness and readiness.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks the caches synced.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether the caches are synced.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

fn route(request: &Request<Incoming>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    let text = "text/plain; charset=utf-8";
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, text, "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" | "/livez" => respond(StatusCode::OK, text, "ok\n".into()),
        "/readyz" if health.is_ready() => respond(StatusCode::OK, text, "ok\n".into()),
        "/readyz" => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            text,
            "caches not synced yet\n".into(),
        ),
        _ => respond(StatusCode::NOT_FOUND, text, "not found\n".into()),
    }
}

/// Binds `addr`; the returned future serves until dropped.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let server = async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    debug!(%error, "accepting a metrics connection failed");
                    continue;
                }
            };
            let (metrics, health) = (metrics.clone(), health.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = route(&request, &metrics, &health);
                    async move { Ok::<_, Infallible>(response) }
                });
                if let Err(error) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(%error, "metrics connection ended");
                }
            });
        }
    };
    Ok((bound, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_with_its_labels() {
        let m = Metrics::new();
        let pool = PoolLabels::new("ns", "web");
        m.candidates.get_or_create(&pool).set(3);
        m.ready_candidates.get_or_create(&pool).set(2);
        m.leader_present.get_or_create(&pool).set(1);
        m.transitions
            .get_or_create(&TransitionLabels {
                namespace: "ns".into(),
                pool: "web".into(),
                reason: "evidence".into(),
            })
            .inc();
        m.failover_seconds.get_or_create(&pool).observe(0.2);
        m.reconcile_errors
            .get_or_create(&ErrorLabels {
                error: "kube".into(),
            })
            .inc();
        m.reconcile_duration.observe(0.001);
        m.lease_write_errors
            .get_or_create(&WriteLabels {
                namespace: "ns".into(),
                pool: "web".into(),
                operation: "renew".into(),
            })
            .inc();
        m.leading.set(1);
        let text = m.encode();
        for line in [
            r#"zen_lead_candidates{namespace="ns",pool="web"} 3"#,
            r#"zen_lead_ready_candidates{namespace="ns",pool="web"} 2"#,
            r#"zen_lead_leader_present{namespace="ns",pool="web"} 1"#,
            r#"zen_lead_transitions_total{namespace="ns",pool="web",reason="evidence"} 1"#,
            r#"zen_lead_failover_seconds_count{namespace="ns",pool="web"} 1"#,
            r#"zen_lead_reconcile_errors_total{error="kube"} 1"#,
            "zen_lead_reconcile_duration_seconds_count 1",
            r#"zen_lead_lease_write_errors_total{namespace="ns",pool="web",operation="renew"} 1"#,
            "zen_lead_controller_leading 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        m.forget_pool(&pool);
        assert!(!m.encode().contains(r#"zen_lead_candidates{namespace="ns""#));
    }
}
