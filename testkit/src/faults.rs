//! Faults injected on demand, globally or for one client identity (its User-Agent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

/// The faults applied to a request.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultSpec {
    /// Added latency before each request is served.
    pub latency_ms: u64,
    /// Fraction (0.0..=1.0) of requests answered with `error_code` instead. Deterministic: with
    /// 0.5 every second request fails.
    pub error_rate: f64,
    /// 500, 429 or 503.
    pub error_code: u16,
    /// Requests hang until the blackhole is lifted; open watches go silent meanwhile.
    pub blackhole: bool,
}

#[derive(Debug, Default)]
struct Inner {
    global: FaultSpec,
    by_client: HashMap<String, FaultSpec>,
    /// Error-rate accumulators per identity (`""` for global).
    acc: HashMap<String, f64>,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Serve it (after `latency`).
    Serve {
        /// Delay first.
        latency: Duration,
    },
    /// Answer with this error code (after `latency`).
    Fail {
        /// Delay first.
        latency: Duration,
        /// HTTP code.
        code: u16,
    },
}

/// Fault controls, shared by the server, the Rust API and the admin endpoint.
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
    /// Bumped on every change so that hanging requests and silent watches re-check.
    changed: Arc<watch::Sender<u64>>,
    /// Bumped to close every open watch.
    drop_watches: Arc<watch::Sender<u64>>,
    /// Bumped to drop every connection (restart).
    restart: Arc<watch::Sender<u64>>,
    /// Compacts the store (set by the server state that owns the store).
    pub(crate) compact_hook: Arc<std::sync::OnceLock<CompactHook>>,
}

/// The store's compaction, callable from the fault controls.
pub(crate) struct CompactHook(pub(crate) Box<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for CompactHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompactHook")
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
            drop_watches: Arc::new(watch::channel(0).0),
            restart: Arc::new(watch::channel(0).0),
            compact_hook: Arc::default(),
        }
    }
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|v| *v += 1);
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the faults for every client.
    pub fn set_global(&self, spec: FaultSpec) {
        self.lock().global = spec;
        bump(&self.changed);
    }

    /// Sets the faults for one client identity (User-Agent); overrides the global spec.
    pub fn set_for(&self, client: &str, spec: FaultSpec) {
        self.lock().by_client.insert(client.to_string(), spec);
        bump(&self.changed);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.global = FaultSpec::default();
        inner.by_client.clear();
        drop(inner);
        bump(&self.changed);
    }

    /// Adds latency to every request (or one client's).
    pub fn latency(&self, client: Option<&str>, latency: Duration) {
        self.edit(client, |s| s.latency_ms = latency.as_millis() as u64);
    }

    /// Fails a fraction of requests with `code` (500, 429 or 503).
    pub fn errors(&self, client: Option<&str>, code: u16, rate: f64) {
        self.edit(client, |s| {
            s.error_code = code;
            s.error_rate = rate.clamp(0.0, 1.0);
        });
    }

    /// Starts or ends a partition: requests hang, open watches go silent.
    pub fn blackhole(&self, client: Option<&str>, on: bool) {
        self.edit(client, |s| s.blackhole = on);
    }

    fn edit(&self, client: Option<&str>, f: impl FnOnce(&mut FaultSpec)) {
        let mut inner = self.lock();
        match client {
            Some(c) => f(inner.by_client.entry(c.to_string()).or_default()),
            None => f(&mut inner.global),
        }
        drop(inner);
        bump(&self.changed);
    }

    /// Closes every open watch now.
    pub fn drop_watches(&self) {
        bump(&self.drop_watches);
    }

    /// Forgets the event history: watches from any earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        if let Some(hook) = self.compact_hook.get() {
            (hook.0)();
        }
    }

    /// Drops every connection (state is kept; new connections are accepted again).
    pub fn restart(&self) {
        bump(&self.restart);
    }

    /// The spec in force for `client`.
    pub fn spec_for(&self, client: &str) -> FaultSpec {
        let inner = self.lock();
        inner
            .by_client
            .get(client)
            .cloned()
            .unwrap_or_else(|| inner.global.clone())
    }

    /// Decides a request's fate (and advances the error-rate accumulator).
    pub fn verdict(&self, client: &str) -> Verdict {
        let mut inner = self.lock();
        let (key, spec) = match inner.by_client.get(client) {
            Some(s) => (client.to_string(), s.clone()),
            None => (String::new(), inner.global.clone()),
        };
        let latency = Duration::from_millis(spec.latency_ms);
        if spec.error_rate > 0.0 {
            let acc = inner.acc.entry(key).or_insert(0.0);
            *acc += spec.error_rate;
            if *acc >= 1.0 - 1e-9 {
                *acc -= 1.0;
                return Verdict::Fail {
                    latency,
                    code: spec.error_code,
                };
            }
        }
        Verdict::Serve { latency }
    }

    /// Waits while `client` is blackholed.
    pub async fn wait_blackhole(&self, client: &str) {
        let mut rx = self.changed.subscribe();
        while self.spec_for(client).blackhole {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// A receiver that changes whenever faults change.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A receiver that changes when all watches must close.
    pub fn subscribe_drop_watches(&self) -> watch::Receiver<u64> {
        self.drop_watches.subscribe()
    }

    /// A receiver that changes on restart.
    pub fn subscribe_restart(&self) -> watch::Receiver<u64> {
        self.restart.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_is_deterministic_and_per_client() {
        let f = Faults::default();
        f.errors(Some("a"), 503, 0.5);
        let fails = (0..10)
            .filter(|_| matches!(f.verdict("a"), Verdict::Fail { code: 503, .. }))
            .count();
        assert_eq!(fails, 5);
        assert!(matches!(f.verdict("b"), Verdict::Serve { .. }));
    }
}
