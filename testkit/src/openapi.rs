//! `/openapi/v3` (and an empty `/openapi/v2`), as much as `kubectl apply` and `kubectl explain` need.
//!
//! CONTRACT (owned by the testkit-semantics work): signatures are fixed, bodies are filled in.

use serde_json::Value;

/// One served resource, as the OpenAPI documents describe it.
#[derive(Debug, Clone)]
pub struct OpenApiResource {
    /// API group, `""` for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource.
    pub plural: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// The CRD's `openAPIV3Schema` for custom resources; None for built-ins.
    pub schema: Option<Value>,
}

/// `GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}, ...}}`.
pub fn v3_root(_resources: &[OpenApiResource]) -> Value {
    todo!("testkit-semantics")
}

/// `GET /openapi/v3/apis/{group}/{version}` (or `api/v1`): paths for each resource, with the
/// `fieldValidation` query parameter on PATCH, and component schemas tagged with
/// `x-kubernetes-group-version-kind`. `gv_path` is `api/v1` or `apis/GROUP/VERSION`.
pub fn v3_group_version(_gv_path: &str, _resources: &[OpenApiResource]) -> Option<Value> {
    todo!("testkit-semantics")
}

/// `GET /openapi/v2`: an empty protobuf document (zero bytes), so that kubectl's client-side
/// validation finds no schema and defers to the server.
pub fn v2_protobuf() -> Vec<u8> {
    Vec::new()
}
