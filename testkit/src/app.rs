//! The state every request shares, and the HTTP response helpers.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use serde_json::Value;

use crate::accounting::Accounting;
use crate::auth::Tokens;
use crate::errors::ApiError;
use crate::faults::Faults;
use crate::registry::Registry;
use crate::store::Store;

/// A response body: whole JSON or a watch stream.
pub type Body = BoxBody<Bytes, Infallible>;
/// An HTTP response.
pub type Response = http::Response<Body>;

/// Shared server state.
#[derive(Debug)]
pub struct App {
    /// Objects and history.
    pub store: Store,
    /// Served types.
    pub registry: RwLock<Registry>,
    /// Fault controls.
    pub faults: Faults,
    /// Request counters.
    pub accounting: Accounting,
    /// Token table (used when `auth` is on).
    pub tokens: Tokens,
    /// Whether requests must carry a known bearer token and pass RBAC.
    pub auth: bool,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// The base URL (set once listening), for discovery's serverAddress.
    pub url: OnceLock<String>,
    /// Tasks waiting to remove gracefully deleted pods.
    pub tasks: Tasks,
    /// Containers' output files (the `pods/log` subresource).
    pub pod_logs: crate::pod_logs::PodLogs,
}

/// Spawned background tasks (watch streams, grace-period timers), aborted on drop.
#[derive(Debug, Default)]
pub struct Tasks(std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>);

impl Tasks {
    /// Spawns `fut` and keeps its handle.
    pub fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut);
        let mut tasks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in self
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

impl App {
    /// Fresh state with the built-in types and the default namespaces.
    pub fn new(auth: bool, retained: usize, bookmark_interval: Duration) -> Arc<Self> {
        let app = Arc::new(Self {
            store: Store::new(retained),
            registry: RwLock::new(Registry::builtins()),
            faults: Faults::default(),
            accounting: Accounting::default(),
            tokens: Tokens::default(),
            auth,
            bookmark_interval,
            url: OnceLock::new(),
            tasks: Default::default(),
            pod_logs: Default::default(),
        });
        let weak = Arc::downgrade(&app);
        let _ = app
            .faults
            .compact_hook
            .set(crate::faults::CompactHook(Box::new(move || {
                if let Some(app) = weak.upgrade() {
                    app.store.compact();
                }
            })));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns},
            });
            // Creating a fresh namespace in an empty store cannot conflict.
            let _ = crate::handlers::create_object(&app, "", "v1", "namespaces", "", obj);
        }
        app
    }

    /// The registry, for reading.
    pub fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The registry, for writing.
    pub fn registry_mut(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A full body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON response.
pub fn json(code: u16, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .unwrap_or_else(|_| http::Response::new(full(Bytes::new())))
}

/// A `Status` error response.
pub fn error(err: &ApiError) -> Response {
    let mut resp = json(err.code, &err.to_status());
    if let Some(secs) = err.retry_after_seconds
        && let Ok(v) = http::HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    resp
}

/// The current time as metav1.Time (second precision).
pub fn now_time() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

/// `now + secs` as metav1.Time.
pub fn time_in(secs: i64) -> String {
    let now = jiff::Timestamp::now().as_second() + secs;
    jiff::Timestamp::from_second(now)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
