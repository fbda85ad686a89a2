//! Deployment → ReplicaSet `<deploy>-<pod-template-hash>` per template, and the status that
//! `kubectl rollout status` reads. A new template gets a new ReplicaSet with every replica at
//! once while the old ones are scaled to zero (no surge/unavailability pacing).

use serde_json::{Value, json};

use super::{Ctx, condition, deleting, int_at, meta, owned, owner_reference, template_hash};
use crate::cluster::Resource;
use crate::errors::ApiError;

const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision(obj: &Value) -> i64 {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Creates or scales the Deployment's ReplicaSets and writes its status.
pub(crate) fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(deploy) = ctx.cluster.get(Resource::Deployments, ns, name) else {
        return Ok(());
    };
    if deleting(&deploy) {
        return Ok(());
    }
    let uid = meta(&deploy, "uid").to_string();
    let replicas = int_at(&deploy, "/spec/replicas", 1).max(0);
    let mut template = deploy
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(json!({}));
    let hash = template_hash(&template);
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let rs_name = format!("{name}-{hash}");
    let sets = owned(ctx, Resource::ReplicaSets, ns, &uid);
    let current = sets.iter().find(|rs| meta(rs, "name") == rs_name).cloned();
    let new_rs = match current {
        Some(rs) => {
            let rev = revision(&rs);
            ctx.cluster
                .update(Resource::ReplicaSets, ns, &rs_name, None, |obj| {
                    obj["spec"]["replicas"] = json!(replicas);
                })?
                .map(|rs| (rs, rev))
        }
        None => {
            let rev = sets.iter().map(revision).max().unwrap_or(0) + 1;
            let mut selector = deploy
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or(json!({}));
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let labels = template["metadata"]["labels"].clone();
            let rs = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {
                        REVISION: rev.to_string(),
                        "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                        "deployment.kubernetes.io/max-replicas": replicas.to_string(),
                    },
                    "ownerReferences": [owner_reference(&deploy, Resource::Deployments, "Deployment")],
                },
                "spec": {
                    "replicas": replicas,
                    "minReadySeconds": deploy.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
                    "selector": selector,
                    "template": template,
                },
            });
            Some((ctx.cluster.create(Resource::ReplicaSets, ns, rs)?, rev))
        }
    };
    let mut total = (0, 0, 0);
    for rs in sets.iter().filter(|rs| meta(rs, "name") != rs_name) {
        if int_at(rs, "/spec/replicas", 0) != 0 {
            ctx.cluster
                .update(Resource::ReplicaSets, ns, meta(rs, "name"), None, |obj| {
                    obj["spec"]["replicas"] = json!(0);
                })?;
        }
        total.0 += int_at(rs, "/status/replicas", 0);
        total.1 += int_at(rs, "/status/readyReplicas", 0);
        total.2 += int_at(rs, "/status/availableReplicas", 0);
    }
    let (new_rs, rev) = new_rs.unwrap_or((json!({}), 0));
    let updated = int_at(&new_rs, "/status/replicas", 0);
    let all = total.0 + updated;
    let ready = total.1 + int_at(&new_rs, "/status/readyReplicas", 0);
    let available = total.2 + int_at(&new_rs, "/status/availableReplicas", 0);
    // The default maxUnavailable, 25% rounded down.
    let min_available = replicas - replicas / 4;
    let complete = updated == replicas && all == replicas && available == replicas;
    let (progress_reason, progress_message) = if complete {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    let generation = deploy.pointer("/metadata/generation").cloned();
    ctx.cluster
        .update(Resource::Deployments, ns, name, Some(&uid), |obj| {
            let available_ok = available >= min_available;
            let conditions = vec![
                condition(
                    obj,
                    "Available",
                    available_ok,
                    if available_ok {
                        "MinimumReplicasAvailable"
                    } else {
                        "MinimumReplicasUnavailable"
                    },
                    if available_ok {
                        "Deployment has minimum availability."
                    } else {
                        "Deployment does not have minimum availability."
                    },
                    true,
                ),
                condition(
                    obj,
                    "Progressing",
                    true,
                    progress_reason,
                    &progress_message,
                    true,
                ),
            ];
            let mut status = json!({
                "observedGeneration": generation,
                "replicas": all,
                "updatedReplicas": updated,
                "readyReplicas": ready,
                "availableReplicas": available,
                "conditions": conditions,
            });
            if all - available > 0 {
                status["unavailableReplicas"] = json!(all - available);
            }
            obj["status"] = status;
            if rev > 0 {
                obj["metadata"]["annotations"][REVISION] = json!(rev.to_string());
            }
        })?;
    Ok(())
}
