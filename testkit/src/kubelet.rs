//! The kubelet simulation: pods that run, become ready, change phase and stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

use crate::app::{self, App};
use crate::errors::ApiError;
use crate::handlers;
use crate::store::Mutation;

/// The node every simulated pod runs on.
pub const NODE_NAME: &str = "testkit-node";

/// Drives pod status the way a kubelet would.
#[derive(Debug, Clone)]
pub struct Kubelet {
    app: Arc<App>,
}

static NEXT_IP: AtomicU32 = AtomicU32::new(2);

fn condition(t: &str, status: bool, now: &str) -> Value {
    json!({"type": t, "status": if status {"True"} else {"False"}, "lastProbeTime": null, "lastTransitionTime": now})
}

fn container_statuses(pod: &Value, ready: bool, state: Value) -> Vec<Value> {
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or("main");
                    json!({
                        "name": name,
                        "image": c.get("image").cloned().unwrap_or(json!("")),
                        "imageID": "",
                        "containerID": format!("testkit://{uid}-{name}"),
                        "ready": ready,
                        "started": state.get("running").is_some(),
                        "restartCount": 0,
                        "state": state,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Kubelet {
    /// The kubelet of `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    fn write_status(
        &self,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        self.app.store.mutate("/pods", ns, name, |cur| {
            let Some(cur) = cur else {
                return Err(ApiError::not_found("", "pods", name));
            };
            let mut pod = cur.clone();
            f(&mut pod);
            Ok(if pod == *cur {
                Mutation::Noop(pod)
            } else {
                Mutation::Update(pod)
            })
        })
    }

    /// Creates `pod` in `ns` bound to the simulated node, already Running and Ready.
    pub fn run_pod(&self, ns: &str, mut pod: Value) -> Result<Value, ApiError> {
        if !pod.get("spec").is_some_and(Value::is_object) {
            pod["spec"] = json!({"containers": [{"name": "main", "image": "busybox"}]});
        }
        pod["spec"]["nodeName"] = json!(NODE_NAME);
        let created = handlers::create_object(&self.app, "", "v1", "pods", ns, pod)?;
        let name = created
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.start(ns, &name)
    }

    /// Marks an existing pod Running and Ready (binding it to the simulated node).
    pub fn start(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
        let ip = format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 1);
        let now = app::now_time();
        self.write_status(ns, name, |pod| {
            pod["spec"]["nodeName"] = json!(NODE_NAME);
            let statuses = container_statuses(pod, true, json!({"running": {"startedAt": now}}));
            pod["status"] = json!({
                "phase": "Running",
                "conditions": [
                    condition("PodReadyToStartContainers", true, &now),
                    condition("Initialized", true, &now),
                    condition("Ready", true, &now),
                    condition("ContainersReady", true, &now),
                    condition("PodScheduled", true, &now),
                ],
                "hostIP": "10.0.0.1",
                "hostIPs": [{"ip": "10.0.0.1"}],
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": now,
                "containerStatuses": statuses,
                "qosClass": "BestEffort",
            });
        })
    }

    /// Flips the pod's readiness (Ready and ContainersReady conditions, container `ready`).
    pub fn set_ready(&self, ns: &str, name: &str, ready: bool) -> Result<Value, ApiError> {
        let now = app::now_time();
        self.write_status(ns, name, |pod| {
            if let Some(conds) = pod
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for c in conds.iter_mut() {
                    if matches!(c["type"].as_str(), Some("Ready" | "ContainersReady")) {
                        let s = if ready { "True" } else { "False" };
                        if c["status"] != s {
                            c["status"] = json!(s);
                            c["lastTransitionTime"] = json!(now);
                        }
                    }
                }
            }
            if let Some(cs) = pod
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut)
            {
                for c in cs.iter_mut() {
                    c["ready"] = json!(ready);
                }
            }
        })
    }

    /// Sets `status.phase` (`Succeeded`/`Failed` also terminate the containers).
    pub fn set_phase(&self, ns: &str, name: &str, phase: &str) -> Result<Value, ApiError> {
        let now = app::now_time();
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let exit = if phase == "Failed" { 1 } else { 0 };
        self.write_status(ns, name, |pod| {
            pod["status"]["phase"] = json!(phase);
            if terminal {
                let state = json!({"terminated": {"exitCode": exit, "reason": if exit == 0 {"Completed"} else {"Error"}, "finishedAt": now}});
                let statuses = container_statuses(pod, false, state);
                pod["status"]["containerStatuses"] = json!(statuses);
                if let Some(conds) = pod.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
                    for c in conds.iter_mut() {
                        if matches!(c["type"].as_str(), Some("Ready" | "ContainersReady")) {
                            c["status"] = json!("False");
                        }
                    }
                }
            }
        })
    }

    /// A container crashed and was restarted, as a kubelet reports it: `restartCount` + 1,
    /// `lastState.terminated` (exit code 137), `state.running` again since now. With `None`,
    /// every container restarts. The Ready condition stays True but its `lastTransitionTime`
    /// moves to now, as after the readiness probe passes again.
    pub fn restart_container(
        &self,
        ns: &str,
        name: &str,
        container: Option<&str>,
    ) -> Result<Value, ApiError> {
        let now = app::now_time();
        self.write_status(ns, name, |pod| {
            if let Some(cs) = pod
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut)
            {
                for c in cs.iter_mut() {
                    if container.is_some_and(|n| c["name"] != n) {
                        continue;
                    }
                    let count = c["restartCount"].as_i64().unwrap_or(0) + 1;
                    let started = c
                        .pointer("/state/running/startedAt")
                        .cloned()
                        .unwrap_or(json!(now));
                    c["restartCount"] = json!(count);
                    c["lastState"] = json!({"terminated": {
                        "exitCode": 137, "reason": "Error", "startedAt": started, "finishedAt": now,
                    }});
                    c["state"] = json!({"running": {"startedAt": now}});
                    c["started"] = json!(true);
                }
            }
            if let Some(conds) = pod
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for c in conds.iter_mut() {
                    if matches!(c["type"].as_str(), Some("Ready" | "ContainersReady")) {
                        c["lastTransitionTime"] = json!(now);
                    }
                }
            }
        })
    }

    /// The pod's containers stopped: as a kubelet ends a deleted pod, it first reports every
    /// container terminated (not Ready), then a terminating pod is removed now (finalizers
    /// permitting).
    pub fn containers_stopped(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        let now = app::now_time();
        let pod = self.write_status(ns, name, |pod| {
            if pod.pointer("/metadata/deletionTimestamp").is_none() {
                return;
            }
            if let Some(cs) = pod
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut)
            {
                for c in cs.iter_mut() {
                    if c.pointer("/state/terminated").is_some() {
                        continue;
                    }
                    let started = c
                        .pointer("/state/running/startedAt")
                        .cloned()
                        .unwrap_or(json!(now));
                    c["state"] = json!({"terminated": {
                        "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now,
                    }});
                    c["ready"] = json!(false);
                    c["started"] = json!(false);
                }
            }
            if let Some(conds) = pod
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for c in conds.iter_mut() {
                    if matches!(c["type"].as_str(), Some("Ready" | "ContainersReady"))
                        && c["status"] != "False"
                    {
                        c["status"] = json!("False");
                        c["lastTransitionTime"] = json!(now);
                    }
                }
            }
        })?;
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        crate::delete::finalize_pod(&self.app, "/pods", ns, name, uid);
        Ok(())
    }
}
