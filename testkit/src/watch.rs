//! Watch streams: backlog from the history, then live events, with bookmarks, timeouts,
//! selector transitions, 410 Gone and the watch faults.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::app::{self, App, Response};
use crate::errors::ApiError;
use crate::handlers::{Selectors, present, resolve};
use crate::registry::ResourceType;
use crate::router::{RequestInfo, flag};
use crate::store::{EventKind, StoreEvent};

/// What one watch delivers.
struct Filter {
    ty: Arc<ResourceType>,
    version: String,
    namespace: String,
    name: Option<String>,
    selectors: Selectors,
    table: bool,
    partial: bool,
    query: HashMap<String, String>,
}

impl Filter {
    /// The event this store change becomes for this watch, if any.
    fn translate(&self, ev: &StoreEvent) -> Option<(&'static str, Value)> {
        if ev.key != self.ty.key() || (!self.namespace.is_empty() && ev.namespace != self.namespace)
        {
            return None;
        }
        let name_of = |v: &Value| {
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if let Some(n) = &self.name
            && name_of(&ev.object).as_deref() != Some(n)
        {
            return None;
        }
        let now = self.selectors.matches(&ev.object);
        let before = ev.old.as_ref().is_some_and(|o| self.selectors.matches(o));
        let kind = match ev.kind {
            EventKind::Added if now => "ADDED",
            EventKind::Modified if now && before => "MODIFIED",
            EventKind::Modified if now => "ADDED",
            EventKind::Modified if before => "DELETED",
            EventKind::Deleted if now || before => "DELETED",
            _ => return None,
        };
        Some((kind, self.render(ev.object.clone())))
    }

    fn render(&self, obj: Value) -> Value {
        let obj = present(obj, &self.ty, &self.version);
        if self.table {
            crate::table::to_table(&self.ty, &self.version, &obj, &self.query)
        } else if self.partial {
            crate::table::to_partial(&obj)
        } else {
            obj
        }
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Serves `?watch=1`.
pub async fn serve(
    app: &Arc<App>,
    info: &RequestInfo,
    query: &HashMap<String, String>,
    accept: &str,
    client: &str,
) -> Response {
    match start(app, info, query, accept, client) {
        Ok(resp) => resp,
        Err(e) => app::error(&e),
    }
}

fn start(
    app: &Arc<App>,
    info: &RequestInfo,
    query: &HashMap<String, String>,
    accept: &str,
    client: &str,
) -> Result<Response, ApiError> {
    let ty = resolve(app, info)?;
    if ty.create_only {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let selectors = Selectors::parse(query, &ty)?;
    let filter = Filter {
        name: (!info.name.is_empty())
            .then(|| info.name.clone())
            .or_else(|| selectors.fields.pinned_name().map(str::to_string)),
        ty: ty.clone(),
        version: info.version.clone(),
        namespace: info.namespace.clone(),
        selectors,
        table: crate::table::wants_table(accept),
        partial: crate::table::wants_partial(accept),
        query: query.clone(),
    };
    let rv = query
        .get("resourceVersion")
        .filter(|r| !r.is_empty())
        .cloned();
    let from = match rv.as_deref() {
        None | Some("0") => None,
        Some(r) => Some(
            r.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {r}")))?,
        ),
    };
    if flag(query, "sendInitialEvents") {
        return Err(ApiError::bad_request(
            "sendInitialEvents is not supported by the testkit server",
        ));
    }
    let bookmarks = flag(query, "allowWatchBookmarks");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        // kube-apiserver picks a random timeout in [min-request-timeout, 2x] (30-60 min).
        .unwrap_or(Duration::from_secs(1800));
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    let ns = (!info.namespace.is_empty()).then_some(info.namespace.as_str());
    let started = match from {
        Some(_) => app
            .store
            .watch_from(from)
            .map(|(b, rx, rv)| (Vec::new(), b, rx, rv)),
        None => {
            let (snapshot, rx, rv) = app.store.snapshot_and_watch(&ty.key(), ns);
            Ok((snapshot, Vec::new(), rx, rv))
        }
    };
    let app2 = app.clone();
    let client = client.to_string();
    let task = async move {
        let (snapshot, backlog, live, current) = match started {
            Ok(s) => s,
            Err(c) => {
                let status = ApiError::gone(format!(
                    "too old resource version: {} ({})",
                    from.unwrap_or(0),
                    c.oldest
                ))
                .to_status();
                let _ = tx.send(Ok(Frame::data(line("ERROR", &status)))).await;
                return;
            }
        };
        run(
            app2, filter, snapshot, backlog, live, current, bookmarks, timeout, client, tx,
        )
        .await;
    };
    use tracing::Instrument;
    let span = tracing::debug_span!("watch", resource = %ty.plural, namespace = %info.namespace);
    app.tasks.spawn(task.instrument(span));
    let body = StreamBody::new(tokio_stream_from(rx)).boxed();
    Ok(http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("Transfer-Encoding", "chunked")
        .body(body)
        .unwrap_or_else(|_| http::Response::new(app::full(Bytes::new()))))
}

/// An mpsc receiver as a `Stream`.
fn tokio_stream_from<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

#[allow(clippy::too_many_arguments)]
async fn run(
    app: Arc<App>,
    filter: Filter,
    snapshot: Vec<Value>,
    backlog: Vec<Arc<StoreEvent>>,
    mut live: broadcast::Receiver<Arc<StoreEvent>>,
    current: u64,
    bookmarks: bool,
    timeout: Duration,
    client: String,
    tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
) {
    let mut drop_rx = app.faults.subscribe_drop_watches();
    drop_rx.mark_unchanged();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut last_rv = current;
    let send = |kind: &str, obj: &Value| {
        let bytes = line(kind, obj);
        let tx = tx.clone();
        async move { tx.send(Ok(Frame::data(bytes))).await.is_ok() }
    };
    // "From now" with synthetic ADDED events for everything that matches, as the real server
    // does for an unset (or "0") resourceVersion.
    for obj in snapshot {
        if filter
            .name
            .as_deref()
            .is_some_and(|n| obj.pointer("/metadata/name").and_then(Value::as_str) != Some(n))
        {
            continue;
        }
        if filter.selectors.matches(&obj) && !send("ADDED", &filter.render(obj)).await {
            return;
        }
    }
    for ev in backlog {
        last_rv = ev.rv;
        if let Some((kind, obj)) = filter.translate(&ev)
            && !send(kind, &obj).await
        {
            return;
        }
    }
    let mut ticker = tokio::time::interval(app.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = drop_rx.changed() => return,
            _ = tx.closed() => return,
            _ = ticker.tick(), if bookmarks => {
                app.faults.wait_blackhole(&client).await;
                let obj = json!({
                    "kind": filter.ty.kind,
                    "apiVersion": filter.ty.api_version(&filter.version),
                    "metadata": {"resourceVersion": last_rv.to_string()},
                });
                if !send("BOOKMARK", &obj).await { return; }
            }
            ev = live.recv() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    // Too slow: close, the client resumes from its last resourceVersion.
                    Err(_) => return,
                };
                // A partitioned client hears nothing until the partition heals.
                tokio::select! {
                    _ = app.faults.wait_blackhole(&client) => {}
                    _ = drop_rx.changed() => return,
                }
                last_rv = ev.rv;
                if let Some((kind, obj)) = filter.translate(&ev)
                    && !send(kind, &obj).await
                {
                    return;
                }
            }
        }
    }
}
