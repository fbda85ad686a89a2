//! Per-resource facts of kube-apiserver's registry strategies that change what a verb does.

use crate::registry::ResourceType;

/// Whether a PUT of a missing object creates it (`AllowCreateOnUpdate`): Leases, Events,
/// Endpoints, EndpointSlices and the RBAC kinds do; everything else answers 404.
pub fn allows_create_on_update(ty: &ResourceType) -> bool {
    matches!(
        (ty.group.as_str(), ty.plural.as_str()),
        ("coordination.k8s.io", "leases")
            | ("" | "events.k8s.io", "events")
            | ("", "endpoints")
            | ("discovery.k8s.io", "endpointslices")
            | ("rbac.authorization.k8s.io", _)
    )
}

/// Whether a DELETE that removes the object answers with the object (`ReturnDeletedObject`)
/// rather than a `Status`: pods and service accounts do, and namespaces answer with the
/// namespace they finalize.
pub fn returns_deleted_object(ty: &ResourceType) -> bool {
    ty.group.is_empty()
        && matches!(
            ty.plural.as_str(),
            "pods" | "serviceaccounts" | "namespaces"
        )
}
