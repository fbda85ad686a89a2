//! The benchmark's own watch on every Lease of the namespace: each pool's history, as the
//! server wrote it, for the term check ([`crate::terms`]). Its client is never faulted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::contender::NAMESPACE;
use crate::terms::LeaseEvent;

/// The User-Agent of the benchmark's observer client.
pub const OBSERVER: &str = "zen-lead-bench-observer";

/// Every pool's Lease history since the observer started.
#[derive(Debug, Clone, Default)]
pub struct Histories {
    inner: Arc<Mutex<HashMap<String, Vec<LeaseEvent>>>>,
}

impl Histories {
    /// Starts watching the namespace's Leases with `client`; the task ends with the runtime.
    pub fn watch(client: kube::Client) -> Self {
        let out = Self::default();
        let inner = out.inner.clone();
        let api: kube::Api<Lease> = kube::Api::namespaced(client, NAMESPACE);
        tokio::spawn(async move {
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = events.next().await {
                let (lease, e) = match event {
                    Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) => {
                        let e = record(&l);
                        (l, e)
                    }
                    Ok(watcher::Event::Delete(l)) => (l, LeaseEvent::Deleted),
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                    Err(error) => {
                        tracing::debug!(%error, "lease watch");
                        continue;
                    }
                };
                let Some(name) = lease.metadata.name else {
                    continue;
                };
                if let Ok(mut map) = inner.lock() {
                    map.entry(name).or_default().push(e);
                }
            }
        });
        out
    }

    /// The history of `pool` so far.
    pub fn of(&self, pool: &str) -> Vec<LeaseEvent> {
        self.inner
            .lock()
            .ok()
            .and_then(|m| m.get(pool).cloned())
            .unwrap_or_default()
    }
}

fn record(lease: &Lease) -> LeaseEvent {
    let spec = lease.spec.as_ref();
    LeaseEvent::Record {
        holder: spec.and_then(|s| s.holder_identity.clone()),
        transitions: spec.and_then(|s| s.lease_transitions),
    }
}
