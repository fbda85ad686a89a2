//! Wiring (docs/ARCHITECTURE.md, "The controller"): the reflectors of pods (kept as their
//! projection, indexed by pool), managed Leases and LeaderPolicies; the kube-runtime
//! `Controller` that reconciles one pool at a time, triggered by its objects and by
//! `Action::requeue` at its next deadline; the write slots; the controller's own leadership; the
//! metrics server.

use std::future::ready;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};
use tokio_stream_shim::UnboundedReceiverStream;
use tracing::{info, warn};
use zen_lead::api::LeaderPolicy;
use zen_lead::lease::record::{LABEL_MANAGED_BY, MANAGED_BY};
use zen_lead::lease::{Candidate, ElectionConfig};

use crate::config::Config;
use crate::events::Events;
use crate::leadership::{self, Leadership};
use crate::metrics::{self, Health, Metrics};
use crate::pods::{self, PodView};
use crate::pool_index::{PoolIndex, PoolPods};
use crate::reconcile::{self, Context, Orphans};
use crate::synced::{self, on_init_done};
use crate::write_slots::WriteSlots;

/// The controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No kubeconfig or in-cluster config.
    #[error(transparent)]
    Client(#[from] zen_lead::client::ClientError),
    /// The metrics address could not be bound.
    #[error("cannot listen on --metrics-addr {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

mod tokio_stream_shim {
    //! An unbounded receiver as a `Stream`, for `reconcile_all_on`.
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc::UnboundedReceiver;

    /// The stream.
    pub struct UnboundedReceiverStream<T>(pub UnboundedReceiver<T>);

    impl<T> futures::Stream for UnboundedReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

/// Runs the controller until `shutdown` resolves (then releases its own Lease).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let client = zen_lead::client::infer(&config.identity).await?;
    run_with_client(config, client, shutdown).await
}

/// [`run`] with a given client.
pub async fn run_with_client(
    config: Config,
    client: kube::Client,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let (addr, server) = metrics::serve(config.metrics_addr, metrics.clone(), health.clone())
        .await
        .map_err(|source| RunError::Bind {
            addr: config.metrics_addr,
            source,
        })?;
    info!(%addr, identity = %config.identity, namespace = %config.namespace, "serving /metrics, /healthz, /readyz");
    let server = tokio::spawn(server);

    let (stop_tx, stop_rx) = watch::channel(false);
    let (started_tx, started_rx) = mpsc::unbounded_channel();
    let (leadership, campaign) = Leadership::spawn(
        client.clone(),
        ElectionConfig {
            pool: leadership::LEASE_NAME.into(),
            namespace: config.namespace.clone(),
            candidate: Candidate {
                identity: config.identity.clone(),
                pod_uid: config.pod_uid.clone(),
                session: zen_lead::identity::new_session(),
            },
            timing: config.timing,
            min_hold: None,
        },
        started_tx.clone(),
        stop_rx,
    );
    {
        let metrics = metrics.clone();
        let leading = leadership.clone();
        tokio::spawn(async move {
            // The gauge follows the permit (which also ends at a silent deadline); a coarse
            // poll is enough for a metric.
            loop {
                metrics.leading.set(i64::from(leading.is_leading()));
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        });
    }

    let (marks, synced) = synced::channel();
    // Pods, kept as their projection; the pool index sees each event just before the store.
    let (pod_reader, pod_writer) = reflector::store::<PodView>();
    let pool_index = PoolIndex::default();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .try_filter_map(|event| ready(Ok(pods::project(event))))
        .inspect_ok({
            let pool_index = pool_index.clone();
            move |event| pool_index.observe(event)
        });
    let pod_stream = reflector::reflector(pod_writer, pod_stream)
        .inspect_ok(on_init_done(marks.pods))
        .touched_objects();

    let (lease_reader, lease_writer) = reflector::store::<Lease>();
    let lease_stream = watcher(
        Api::<Lease>::all(client.clone()),
        watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")),
    )
    .default_backoff()
    .map_ok(|event| event.modify(reconcile::drop_managed_fields));
    let lease_stream = reflector::reflector(lease_writer, lease_stream)
        .inspect_ok(on_init_done(marks.leases))
        .touched_objects();

    let (policies, policy_writer) = reflector::store::<LeaderPolicy>();
    let policy_stream = watcher(
        Api::<LeaderPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map_ok(|event| event.modify(reconcile::drop_managed_fields));
    let policy_stream = reflector::reflector(policy_writer, policy_stream)
        .inspect_ok(on_init_done(marks.policies))
        .applied_objects();
    let controller = Controller::for_stream(policy_stream, policies.clone());

    let events = Events::new(
        client.clone(),
        &config.identity,
        WriteSlots::new(config.write_concurrency),
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        PoolPods::new(pod_reader, pool_index),
        lease_reader.clone(),
        leadership.clone(),
        events,
        metrics.clone(),
        synced.clone(),
    ));

    // Annotated pods of a pool without a LeaderPolicy get a Warning, from the same pod events
    // that trigger reconciles. A warning waits until the caches are synced and this replica
    // leads; it is checked against the policies again when it is sent.
    let (orphan_tx, mut orphan_rx) = mpsc::unbounded_channel::<PodView>();
    {
        let ctx = ctx.clone();
        let policies = policies.clone();
        tokio::spawn(async move {
            let mut orphans = Orphans::default();
            let has_policy = |pod: &PodView| {
                pod.pool.as_ref().is_some_and(|pool| {
                    policies
                        .get(&ObjectRef::new(pool).within(&pod.namespace))
                        .is_some()
                })
            };
            loop {
                // Pending warnings wait; look again each second until they are sent.
                let pod = if orphans.has_pending() {
                    match tokio::time::timeout(std::time::Duration::from_secs(1), orphan_rx.recv())
                        .await
                    {
                        Ok(pod) => pod,
                        Err(_) => {
                            orphans.flush(&ctx, has_policy).await;
                            continue;
                        }
                    }
                } else {
                    orphan_rx.recv().await
                };
                let Some(pod) = pod else { return };
                orphans.observe(pod);
                orphans.flush(&ctx, has_policy).await;
            }
        });
    }

    {
        let health = health.clone();
        let mut synced = synced.clone();
        let started_tx = started_tx.clone();
        tokio::spawn(async move {
            if synced.wait_all().await {
                info!("caches synced: ready");
                health.set_ready();
                // Pools seen before the caches were complete were not written: look again.
                let _ = started_tx.send(());
            }
        });
    }

    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            info!("shutting down");
            let _ = stop_tx.send(true);
        });
    }
    let lease_ctx = ctx.clone();
    let mut stopping = stop_tx.subscribe();
    let stop = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    controller
        .reconcile_on(pod_stream.filter_map(move |view| {
            let target = match view {
                Ok(view) => {
                    let target = view
                        .pool
                        .as_ref()
                        .map(|pool| ObjectRef::new(pool).within(&view.namespace));
                    let _ = orphan_tx.send(view);
                    target
                }
                Err(error) => {
                    warn!(%error, "pod watch error");
                    None
                }
            };
            ready(target)
        }))
        .watches_stream(lease_stream, move |lease: Lease| {
            lease_ctx.saw_lease(&lease);
            let name = lease.metadata.name?;
            let namespace = lease.metadata.namespace?;
            Some(ObjectRef::new(&name).within(&namespace))
        })
        .reconcile_all_on(UnboundedReceiverStream(started_rx))
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| {
            if let Err(error) = result {
                match error {
                    kube::runtime::controller::Error::ReconcilerFailed(..)
                    | kube::runtime::controller::Error::ObjectNotFound(..) => {}
                    other => warn!(error = %other, "controller stream error"),
                }
            }
            ready(())
        })
        .await;
    // The Controller has stopped: no reconcile writes any more. Release the own Lease.
    let _ = stop_tx.send(true);
    if let Err(error) = campaign.await {
        warn!(%error, "the leadership task ended abnormally");
    }
    server.abort();
    Ok(())
}
