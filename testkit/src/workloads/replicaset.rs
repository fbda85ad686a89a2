//! ReplicaSet → pods `<rs>-<suffix>`: as many active pods as `spec.replicas`, and the
//! replica counts in status.

use serde_json::{Value, json};

use super::{
    Ctx, PodName, create_pod, deleting, int_at, is_active, is_ready, meta, owned, owner_reference,
};
use crate::cluster::Resource;
use crate::errors::ApiError;

/// Brings the ReplicaSet's pods to its replica count and writes its status.
pub(crate) fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(rs) = ctx.cluster.get(Resource::ReplicaSets, ns, name) else {
        return Ok(());
    };
    if deleting(&rs) {
        return Ok(());
    }
    let uid = meta(&rs, "uid").to_string();
    let desired = int_at(&rs, "/spec/replicas", 1).max(0) as usize;
    let mut active: Vec<Value> = owned(ctx, Resource::Pods, ns, &uid)
        .into_iter()
        .filter(is_active)
        .collect();
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    while active.len() < desired {
        let owner = owner_reference(&rs, Resource::ReplicaSets, "ReplicaSet");
        let pod = create_pod(
            ctx,
            ns,
            &template,
            PodName::Generate(&format!("{name}-")),
            owner,
            &[],
            &[],
        )?;
        active.push(pod);
    }
    if active.len() > desired {
        // Not-ready pods go first, then the newest (as the ReplicaSet controller ranks them).
        active.sort_by(|a, b| {
            is_ready(a)
                .cmp(&is_ready(b))
                .then_with(|| meta(b, "creationTimestamp").cmp(meta(a, "creationTimestamp")))
        });
        for pod in active.drain(..active.len() - desired) {
            ctx.cluster.delete(Resource::Pods, ns, meta(&pod, "name"))?;
        }
    }
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let generation = rs.pointer("/metadata/generation").cloned();
    ctx.cluster
        .update(Resource::ReplicaSets, ns, name, Some(&uid), |obj| {
            obj["status"] = json!({
                "replicas": active.len(),
                "fullyLabeledReplicas": active.len(),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": generation,
            });
        })?;
    Ok(())
}
