//! The `scale` subresource (`autoscaling/v1` Scale) of workloads and CRDs with
//! `subresources.scale`, as `kubectl scale` uses it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::App;
use crate::errors::ApiError;
use crate::handlers::{Call, finish_update, meta_str};
use crate::patch::{self, PatchType, Target};
use crate::registry::ResourceType;

/// Where a type keeps its replica counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// e.g. `.status.replicas`.
    pub status_replicas: String,
    /// e.g. `.status.selector` (a string) for CRDs; None: built-ins derive it from
    /// `.spec.selector.matchLabels`.
    pub label_selector: Option<String>,
}

impl ScalePaths {
    /// The built-in workloads' paths.
    pub fn workload() -> Self {
        Self {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: None,
        }
    }
}

fn pointer(path: &str) -> String {
    format!("/{}", path.trim_start_matches('.').replace('.', "/"))
}

fn selector(obj: &Value, paths: &ScalePaths) -> String {
    if let Some(p) = &paths.label_selector {
        return obj
            .pointer(&pointer(p))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    obj.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The Scale view of `obj`.
pub fn to_scale(obj: &Value, paths: &ScalePaths) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let keep = [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ];
    let meta: serde_json::Map<String, Value> = meta
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj.pointer(&pointer(&paths.spec_replicas)).cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer(&pointer(&paths.status_replicas)).cloned().unwrap_or(json!(0)),
            "selector": selector(obj, paths),
        },
    })
}

fn set_replicas(obj: &mut Value, paths: &ScalePaths, replicas: Value) {
    let ptr = pointer(&paths.spec_replicas);
    let mut parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = obj;
    for p in parts {
        if !cur.get(p).is_some_and(Value::is_object) {
            cur[p] = json!({});
        }
        cur = &mut cur[p];
    }
    cur[last] = replicas;
}

/// Serves get, update and patch of `.../scale`.
pub fn serve(
    app: &Arc<App>,
    ty: &ResourceType,
    call: &Call<'_>,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let info = call.info;
    let paths = ty.scale.clone().ok_or_else(ApiError::path_not_found)?;
    let not_found = || ApiError::not_found(&ty.group, &ty.plural, &info.name);
    if info.verb == "get" {
        let obj = app
            .store
            .get(&ty.key(), &info.namespace, &info.name)
            .ok_or_else(not_found)?;
        return Ok(to_scale(&obj, &paths));
    }
    let patch_type = match info.verb.as_str() {
        "update" => None,
        "patch" => Some(
            PatchType::from_content_type(call.content_type).ok_or_else(|| {
                ApiError::unsupported_media_type("the body of the request was in an unknown format")
            })?,
        ),
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let manager = query
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| call.default_manager.clone());
    let mut warnings = Vec::new();
    let stored = app
        .store
        .mutate(&ty.key(), &info.namespace, &info.name, |current| {
            let current = current.ok_or_else(not_found)?;
            let view = to_scale(current, &paths);
            // Patches apply to the Scale view, so they are judged as autoscaling/v1 Scale.
            let target = Target {
                group: "autoscaling",
                kind: "Scale",
                resource: &ty.plural,
                name: &info.name,
                is_custom: false,
            };
            let scale: Value = match patch_type {
                None => serde_json::from_slice(call.body)
                    .map_err(|e| ApiError::bad_request(format!("decoding Scale: {e}")))?,
                Some(PatchType::Apply) => patch::server_side_apply(
                    &target,
                    Some(&view),
                    call.body,
                    &manager,
                    crate::router::flag(query, "force"),
                )?,
                Some(pt) => patch::patch(pt, &target, &view, call.body)?,
            };
            if let Some(rv) = meta_str(&scale, "resourceVersion").filter(|r| !r.is_empty())
                && Some(rv) != meta_str(current, "resourceVersion")
            {
                return Err(ApiError::conflict(&ty.group, &ty.plural, &info.name));
            }
            let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            let mut new = current.clone();
            set_replicas(&mut new, &paths, replicas);
            finish_update(
                ty,
                &info.version,
                "",
                current,
                new,
                query,
                Some(&manager),
                &mut warnings,
            )
        })?;
    Ok(to_scale(&stored, &paths))
}
