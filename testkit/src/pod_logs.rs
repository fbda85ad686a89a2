//! The `pods/log` subresource (`kubectl logs POD [-c C] [-p] [-f] [--tail N]`): containers'
//! output files, registered by the process kubelet. Pods it does not run (simulated ones) have
//! empty logs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;

use crate::app::{self, Response};
use crate::cluster::{Cluster, Resource};
use crate::errors::ApiError;

/// One container's output: a file per run (the last is the current one).
#[derive(Debug, Clone, Default)]
struct ContainerLogs {
    runs: Vec<PathBuf>,
    running: bool,
}

/// The output files of every container the process kubelet ran, by pod UID.
#[derive(Debug, Clone, Default)]
pub struct PodLogs {
    inner: Arc<Mutex<HashMap<String, HashMap<String, ContainerLogs>>>>,
}

impl PodLogs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, ContainerLogs>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new run of `container` in pod `uid` writes to `path`.
    pub fn started(&self, uid: &str, container: &str, path: PathBuf) {
        let mut inner = self.lock();
        let logs = inner
            .entry(uid.to_string())
            .or_default()
            .entry(container.to_string())
            .or_default();
        logs.runs.push(path);
        logs.running = true;
    }

    /// The current run of `container` in pod `uid` ended.
    pub fn ended(&self, uid: &str, container: &str) {
        if let Some(logs) = self.lock().get_mut(uid).and_then(|p| p.get_mut(container)) {
            logs.running = false;
        }
    }

    /// The pod is gone: its logs are forgotten.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    fn file(&self, uid: &str, container: &str, previous: bool) -> Option<(PathBuf, bool)> {
        let inner = self.lock();
        let logs = inner.get(uid)?.get(container)?;
        let skip = usize::from(previous);
        let path = logs.runs.iter().rev().nth(skip)?.clone();
        Some((path, logs.running && !previous))
    }

    fn running(&self, uid: &str, container: &str) -> bool {
        self.lock()
            .get(uid)
            .and_then(|p| p.get(container))
            .is_some_and(|l| l.running)
    }
}

fn container_names(pod: &Value) -> Vec<String> {
    ["/spec/initContainers", "/spec/containers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn tail(text: &[u8], lines: Option<usize>) -> &[u8] {
    let Some(n) = lines else { return text };
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    if n == 0 { &[] } else { text }
}

/// Serves `GET .../pods/NAME/log`.
pub fn serve(
    cluster: &Cluster,
    logs: &PodLogs,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Response {
    match select(cluster, logs, ns, name, query) {
        Ok(resp) => resp,
        Err(e) => app::error(&e),
    }
}

fn select(
    cluster: &Cluster,
    logs: &PodLogs,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let pod = cluster
        .get(Resource::Pods, ns, name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let names = container_names(&pod);
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None => {
            let main: Vec<&String> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .filter_map(|n| names.iter().find(|x| *x == n))
                .collect();
            match main.as_slice() {
                [one] => (*one).clone(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        main.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    )));
                }
            }
        }
    };
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let previous = crate::router::flag(query, "previous");
    let follow = crate::router::flag(query, "follow");
    let tail_lines = query.get("tailLines").and_then(|t| t.parse().ok());
    let Some((path, running)) = logs.file(&uid, &container, previous) else {
        if previous {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        return Ok(text_response(app::full(Bytes::new())));
    };
    let text = std::fs::read(&path).unwrap_or_default();
    let first = Bytes::copy_from_slice(tail(&text, tail_lines));
    if !(follow && running) {
        return Ok(text_response(app::full(first)));
    }
    // Follow: send what is there, then what is appended, until the run ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    let logs = logs.clone();
    let mut offset = text.len();
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Ok(Frame::data(first))).await.is_err() {
            return;
        }
        loop {
            let still_running = logs.running(&uid, &container);
            let text = std::fs::read(&path).unwrap_or_default();
            if text.len() > offset {
                let chunk = Bytes::copy_from_slice(&text[offset..]);
                offset = text.len();
                if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                    return;
                }
            }
            if !still_running {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
    Ok(text_response(StreamBody::new(stream).boxed()))
}

fn text_response(body: app::Body) -> Response {
    http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(body)
        .unwrap_or_else(|_| http::Response::new(app::full(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", Some(2)), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", Some(1)), b"c");
        assert_eq!(tail(b"a\nb\n", Some(5)), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", None), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", Some(0)), b"");
    }
}
