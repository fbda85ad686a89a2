//! Minimal workload controllers, so that `kubectl apply` of a Deployment, StatefulSet, Job or
//! CronJob produces pods from its template the way a cluster does (names, owner references,
//! labels, scale, status, schedules). Garbage collection of the pods when their owner goes is the
//! server's own (ownerReference propagation in `delete`).
//!
//! One task follows the store's change stream: a change to a workload, or to an object it owns,
//! reconciles that workload; a one-second tick drives CronJob schedules, Job deadlines and Job back-off. The
//! controllers see the server only through [`Cluster`]. Dropping [`Workloads`] stops them.
//!
//! They run inside the server and read the store directly, not through kube-runtime over HTTP:
//! so they are not counted in accounting and injected faults (which model what clients see) do
//! not slow them down.

mod cronjob;
mod deployment;
mod job;
mod replicaset;
mod statefulset;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::cluster::{Cluster, Resource};
use crate::errors::ApiError;

/// Who runs the pods the controllers create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// The simulated kubelet: a pod is Running and Ready at once, and a Job's pod then
    /// Succeeded (its containers "exit 0" at once).
    Simulated,
    /// The process kubelet binds and runs every new pod; the controllers leave them alone.
    Processes,
}

/// The running controllers; dropping this stops them.
#[derive(Debug)]
pub struct Workloads {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Workloads {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Workloads {
    /// Starts the controllers (inside a tokio runtime).
    pub fn start(cluster: Cluster, runner: Runner) -> Self {
        let ctx = Ctx { cluster, runner };
        let task = tokio::spawn(run(ctx));
        Self { task }
    }
}

/// What every reconcile gets.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) cluster: Cluster,
    pub(crate) runner: Runner,
}

/// A workload to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    res: Resource,
    ns: String,
    name: String,
}

async fn run(ctx: Ctx) {
    let mut changes = ctx.cluster.changes();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut queue = BTreeSet::new();
    // Whatever existed before the controllers started.
    resync(&ctx, &mut queue);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(event) => {
                    simulated_stop(&ctx, &event.key, &event.object);
                    keys_for(&event.key, &event.object, &mut queue);
                }
                Err(RecvError::Lagged(_)) => resync(&ctx, &mut queue),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                // Time alone moves schedules and Job deadlines.
                for obj in ctx.cluster.list(Resource::CronJobs, None) {
                    push(&mut queue, Resource::CronJobs, &obj);
                }
                for obj in ctx.cluster.list(Resource::Jobs, None) {
                    if job::waits_for_time(&obj) {
                        push(&mut queue, Resource::Jobs, &obj);
                    }
                }
            }
        }
        // Take everything that is already waiting, then reconcile each workload once.
        loop {
            match changes.try_recv() {
                Ok(event) => {
                    simulated_stop(&ctx, &event.key, &event.object);
                    keys_for(&event.key, &event.object, &mut queue);
                }
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                    resync(&ctx, &mut queue)
                }
                Err(_) => break,
            }
        }
        while let Some(key) = queue.pop_first() {
            let result = match key.res {
                Resource::Deployments => deployment::reconcile(&ctx, &key.ns, &key.name),
                Resource::ReplicaSets => replicaset::reconcile(&ctx, &key.ns, &key.name),
                Resource::StatefulSets => statefulset::reconcile(&ctx, &key.ns, &key.name),
                Resource::Jobs => job::reconcile(&ctx, &key.ns, &key.name),
                Resource::CronJobs => cronjob::reconcile(&ctx, &key.ns, &key.name),
                _ => Ok(()),
            };
            if let Err(error) = result {
                tracing::debug!(?error, kind = ?key.res, ns = %key.ns, name = %key.name, "reconcile failed");
            }
        }
    }
}

/// With the simulated kubelet, the containers of a pod a workload owns stop at once when the
/// pod is deleted (as containers that exit on SIGTERM do), so the pod goes without waiting out
/// its grace period. Pods made by hand keep the simulation's explicit `containers_stopped`.
fn simulated_stop(ctx: &Ctx, store_key: &str, obj: &Value) {
    if ctx.runner == Runner::Simulated
        && Resource::from_key(store_key) == Some(Resource::Pods)
        && deleting(obj)
        && controller_ref(obj).is_some()
    {
        ctx.cluster
            .pod_stopped(meta(obj, "namespace"), meta(obj, "name"), meta(obj, "uid"));
    }
}

fn resync(ctx: &Ctx, queue: &mut BTreeSet<Key>) {
    for res in [
        Resource::Deployments,
        Resource::ReplicaSets,
        Resource::StatefulSets,
        Resource::Jobs,
        Resource::CronJobs,
    ] {
        for obj in ctx.cluster.list(res, None) {
            push(queue, res, &obj);
        }
    }
}

fn push(queue: &mut BTreeSet<Key>, res: Resource, obj: &Value) {
    queue.insert(Key {
        res,
        ns: meta(obj, "namespace").to_string(),
        name: meta(obj, "name").to_string(),
    });
}

/// The workloads a change concerns: the object itself if it is one, and its controller.
fn keys_for(store_key: &str, obj: &Value, queue: &mut BTreeSet<Key>) {
    let Some(res) = Resource::from_key(store_key) else {
        return;
    };
    if matches!(
        res,
        Resource::Deployments
            | Resource::ReplicaSets
            | Resource::StatefulSets
            | Resource::Jobs
            | Resource::CronJobs
    ) {
        push(queue, res, obj);
    }
    if let Some(owner) = controller_ref(obj) {
        let owner_res = match owner.kind.as_str() {
            "Deployment" => Resource::Deployments,
            "ReplicaSet" => Resource::ReplicaSets,
            "StatefulSet" => Resource::StatefulSets,
            "Job" => Resource::Jobs,
            "CronJob" => Resource::CronJobs,
            _ => return,
        };
        queue.insert(Key {
            res: owner_res,
            ns: meta(obj, "namespace").to_string(),
            name: owner.name,
        });
    }
}

/// A metadata string field, `""` when absent.
pub(crate) fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The owner reference with `controller: true`.
#[derive(Debug, Clone)]
pub(crate) struct ControllerRef {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) uid: String,
}

pub(crate) fn controller_ref(obj: &Value) -> Option<ControllerRef> {
    let refs = obj.pointer("/metadata/ownerReferences")?.as_array()?;
    let r = refs
        .iter()
        .find(|r| r.get("controller") == Some(&json!(true)))?;
    Some(ControllerRef {
        kind: r.get("kind")?.as_str()?.to_string(),
        name: r.get("name")?.as_str()?.to_string(),
        uid: r.get("uid")?.as_str()?.to_string(),
    })
}

/// The objects of `res` in `ns` whose controller is the object with `uid`.
pub(crate) fn owned(ctx: &Ctx, res: Resource, ns: &str, uid: &str) -> Vec<Value> {
    ctx.cluster
        .list(res, Some(ns))
        .into_iter()
        .filter(|o| controller_ref(o).is_some_and(|r| r.uid == uid))
        .collect()
}

/// The controller owner reference a controller puts on what it creates.
pub(crate) fn owner_reference(owner: &Value, res: Resource, kind: &str) -> Value {
    json!({
        "apiVersion": res.api_version(),
        "kind": kind,
        "name": meta(owner, "name"),
        "uid": meta(owner, "uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether the object is being deleted.
pub(crate) fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// The pod's phase.
pub(crate) fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

/// A pod that counts as a replica: not being deleted and not finished.
pub(crate) fn is_active(pod: &Value) -> bool {
    !deleting(pod) && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// A pod whose Ready condition is True.
pub(crate) fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// An integer field with a default.
pub(crate) fn int_at(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// A pod from `template`, named `name` (or generated from `generate_name`), owned by `owner`,
/// with `labels` added to the template's. Returns the created pod.
pub(crate) fn create_pod(
    ctx: &Ctx,
    ns: &str,
    template: &Value,
    name: PodName<'_>,
    owner: Value,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Result<Value, ApiError> {
    let mut meta_obj = template
        .get("metadata")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    for (field, pairs) in [("labels", labels), ("annotations", annotations)] {
        if !pairs.is_empty() && !meta_obj.get(field).is_some_and(Value::is_object) {
            meta_obj[field] = json!({});
        }
        for (k, v) in pairs {
            meta_obj[field][*k] = json!(v);
        }
    }
    match name {
        PodName::Exact(n) => meta_obj["name"] = json!(n),
        PodName::Generate(prefix) => meta_obj["generateName"] = json!(prefix),
    }
    meta_obj["namespace"] = json!(ns);
    meta_obj["ownerReferences"] = json!([owner]);
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta_obj,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    let created = ctx.cluster.create(Resource::Pods, ns, pod)?;
    if ctx.runner == Runner::Simulated {
        let kubelet = ctx.cluster.simulated_kubelet();
        let name = meta(&created, "name");
        kubelet.start(ns, name)?;
        let restart = created
            .pointer("/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Always");
        if restart != "Always" {
            // A run-to-completion pod: its simulated containers exit 0 at once.
            kubelet.set_phase(ns, name, "Succeeded")?;
        }
    }
    Ok(created)
}

/// How a created pod is named.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PodName<'a> {
    /// This name (StatefulSet ordinals).
    Exact(&'a str),
    /// `generateName` with this prefix.
    Generate(&'a str),
}

/// kube's `rand.SafeEncodeString`: a string made only of characters that cannot spell words.
pub(crate) fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// The hash of a pod template as `pod-template-hash`/`controller-revision-hash` show it: the
/// FNV-1a hash of its JSON, safe-encoded.
pub(crate) fn template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    safe_encode(&hash.to_string())
}

/// A condition, keeping the old one's timestamps when its status and reason did not change (so
/// that an unchanged status is a no-op write).
pub(crate) fn condition(
    old: &Value,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    with_update_time: bool,
) -> Value {
    let status = if status { "True" } else { "False" };
    let previous = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let now = crate::app::now_time();
    let transition = previous
        .filter(|c| c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    let update = previous
        .filter(|c| c["status"] == status && c["reason"] == reason)
        .and_then(|c| c.get("lastUpdateTime").cloned())
        .unwrap_or_else(|| json!(now));
    let mut c = json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    });
    if with_update_time {
        c["lastUpdateTime"] = update;
    } else {
        c["lastProbeTime"] = Value::Null;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_safe() {
        let t = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}});
        let h = template_hash(&t);
        assert_eq!(h, template_hash(&t.clone()));
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(
            h.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
        let other = json!({"metadata": {"labels": {"app": "b"}}, "spec": {"containers": []}});
        assert_ne!(h, template_hash(&other));
    }

    #[test]
    fn keys_for_maps_a_pod_to_its_controller() {
        let pod = json!({"metadata": {"namespace": "ns", "name": "web-abc-x",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "uid": "u", "controller": true}]}});
        let mut queue = BTreeSet::new();
        keys_for("/pods", &pod, &mut queue);
        let keys: Vec<_> = queue.into_iter().collect();
        assert_eq!(
            keys,
            vec![Key {
                res: Resource::ReplicaSets,
                ns: "ns".into(),
                name: "web-abc".into()
            }]
        );
    }
}
