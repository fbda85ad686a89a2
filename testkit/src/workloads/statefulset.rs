//! StatefulSet → pods `<sts>-0` … `<sts>-N-1`. With the default `OrderedReady` policy a pod is
//! created only once every lower ordinal is Running and Ready, and scale-down removes the
//! highest ordinal first; `Parallel` creates and removes them all at once. A deleted pod comes
//! back under the same name with a new UID. A new template replaces the pods from the highest
//! ordinal down, one at a time (`RollingUpdate`; `OnDelete` leaves them).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Ctx, PodName, create_pod, deleting, int_at, is_ready, meta, owned, owner_reference, phase,
    template_hash,
};
use crate::cluster::Resource;
use crate::errors::ApiError;

const REVISION_LABEL: &str = "controller-revision-hash";

fn ordinal(sts: &str, pod: &Value) -> Option<usize> {
    meta(pod, "name")
        .strip_prefix(sts)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn revision_of(pod: &Value) -> &str {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(REVISION_LABEL))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Creates, replaces and removes the StatefulSet's pods and writes its status.
pub(crate) fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(sts) = ctx.cluster.get(Resource::StatefulSets, ns, name) else {
        return Ok(());
    };
    if deleting(&sts) {
        return Ok(());
    }
    let uid = meta(&sts, "uid").to_string();
    if sts.pointer("/spec/updateStrategy").is_none()
        || sts.pointer("/spec/podManagementPolicy").is_none()
    {
        // kube-apiserver's defaults, which `kubectl rollout status` depends on.
        ctx.cluster
            .update(Resource::StatefulSets, ns, name, Some(&uid), |obj| {
                let spec = &mut obj["spec"];
                if spec.get("updateStrategy").is_none() {
                    spec["updateStrategy"] =
                        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
                }
                if spec.get("podManagementPolicy").is_none() {
                    spec["podManagementPolicy"] = json!("OrderedReady");
                }
            })?;
        return Ok(());
    }
    let replicas = int_at(&sts, "/spec/replicas", 1).max(0) as usize;
    let parallel = sts
        .pointer("/spec/podManagementPolicy")
        .and_then(Value::as_str)
        == Some("Parallel");
    let on_delete = sts
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete");
    let template = sts.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let revision = format!("{name}-{}", template_hash(&template));
    let service = sts
        .pointer("/spec/serviceName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let pods: BTreeMap<usize, Value> = owned(ctx, Resource::Pods, ns, &uid)
        .into_iter()
        .filter_map(|p| Some((ordinal(name, &p)?, p)))
        .collect();
    let healthy = |p: &Value| !deleting(p) && phase(p) == "Running" && is_ready(p);

    // Scale up (and replace failed or deleted pods), lowest ordinal first.
    for i in 0..replicas {
        match pods.get(&i) {
            None => {
                let pod_name = format!("{name}-{i}");
                let mut t = template.clone();
                t["spec"]["hostname"] = json!(pod_name);
                if !service.is_empty() {
                    t["spec"]["subdomain"] = json!(service);
                }
                let index = i.to_string();
                create_pod(
                    ctx,
                    ns,
                    &t,
                    PodName::Exact(&pod_name),
                    owner_reference(&sts, Resource::StatefulSets, "StatefulSet"),
                    &[
                        (REVISION_LABEL, &revision),
                        ("statefulset.kubernetes.io/pod-name", &pod_name),
                        ("apps.kubernetes.io/pod-index", &index),
                    ],
                    &[],
                )?;
                if !parallel {
                    break;
                }
            }
            Some(p) if matches!(phase(p), "Failed" | "Succeeded") && !deleting(p) => {
                ctx.cluster.delete(Resource::Pods, ns, meta(p, "name"))?;
                if !parallel {
                    break;
                }
            }
            Some(p) if !parallel && !healthy(p) => break,
            Some(_) => {}
        }
    }
    // Scale down, highest ordinal first.
    let extra: Vec<&Value> = pods.range(replicas..).rev().map(|(_, p)| p).collect();
    let all_healthy = pods.values().all(healthy);
    for p in extra.iter().filter(|p| !deleting(p)) {
        if !parallel && !all_healthy {
            break;
        }
        ctx.cluster.delete(Resource::Pods, ns, meta(p, "name"))?;
        if !parallel {
            break;
        }
    }
    // Rolling update: once every pod is healthy, replace the highest outdated one.
    let in_range: Vec<&Value> = pods.range(..replicas).map(|(_, p)| p).collect();
    if !on_delete
        && in_range.len() == replicas
        && in_range.iter().all(|p| healthy(p))
        && let Some(old) = in_range.iter().rev().find(|p| revision_of(p) != revision)
    {
        ctx.cluster.delete(Resource::Pods, ns, meta(old, "name"))?;
    }
    let current: Vec<&Value> = pods.values().filter(|p| !deleting(p)).collect();
    let ready = current.iter().filter(|p| is_ready(p)).count();
    let updated = current
        .iter()
        .filter(|p| revision_of(p) == revision)
        .count();
    let current_revision = if updated == current.len() {
        revision.clone()
    } else {
        current
            .iter()
            .map(|p| revision_of(p))
            .find(|r| *r != revision)
            .unwrap_or(&revision)
            .to_string()
    };
    let generation = sts.pointer("/metadata/generation").cloned();
    ctx.cluster
        .update(Resource::StatefulSets, ns, name, Some(&uid), |obj| {
            obj["status"] = json!({
                "observedGeneration": generation,
                "replicas": current.len(),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "currentReplicas": if current_revision == revision { updated } else { current.len() - updated },
                "updatedReplicas": updated,
                "currentRevision": current_revision,
                "updateRevision": revision,
                "collisionCount": 0,
            });
        })?;
    Ok(())
}
