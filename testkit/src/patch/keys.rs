//! Which lists of the built-in kinds merge by key, which are sets, and which are atomic.
//!
//! Looked up by field name: our kinds never reuse these names with another meaning, and it
//! spares carrying the full built-in OpenAPI schema.

use serde_json::Value;

/// How a list merges (strategic merge patch) and how its items are tracked (managed fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    /// Items are identified by these key fields (`patchMergeKey` / `listMapKeys`).
    Map(Vec<&'static str>),
    /// Items are primitive and unique (`finalizers`).
    Set,
    /// The list is replaced as a whole.
    Atomic,
}

/// The strategic-merge merge key for a list field, if it has one.
pub fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        // Container ports merge on containerPort, Service ports on port.
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// True for lists of primitives with `patchStrategy: merge`.
pub fn is_primitive_merge_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// How the list `field` with `items` is tracked.
pub fn list_kind(field: &str, items: &[Value]) -> ListKind {
    if let Some(key) = merge_key(field, items) {
        return ListKind::Map(vec![key]);
    }
    if is_primitive_merge_list(field) {
        return ListKind::Set;
    }
    ListKind::Atomic
}
