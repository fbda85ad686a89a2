//! `/openapi/v3` (and an empty `/openapi/v2`), as much as `kubectl apply` and `kubectl explain` need.
//!
//! CONTRACT (owned by the testkit-semantics work): signatures are fixed, bodies are filled in.
//!
//! kubectl 1.32 reads these documents twice during `apply`:
//! - `QueryParamVerifierV3` finds the PATCH operation tagged with the object's
//!   `x-kubernetes-group-version-kind` and looks for a `fieldValidation` query parameter on it;
//!   when present, kubectl leaves validation to the server (`fieldValidation=Strict`).
//! - the client-side apply patcher uses the OpenAPI v3 schema for a strategic merge patch only
//!   when the PATCH request body lists `application/strategic-merge-patch+json`. We never list
//!   it, so kubectl falls back to its compiled-in types for built-ins (exact patch metadata)
//!   and to a JSON merge patch for custom resources, as against a real cluster.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

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

/// `api/v1` or `apis/GROUP/VERSION`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The component name kube-apiserver uses for a kind's schema.
pub fn component_name(group: &str, version: &str, kind: &str) -> String {
    let package = match group {
        "" => format!("io.k8s.api.core.{version}"),
        "apiextensions.k8s.io" => {
            format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}")
        }
        g if g.ends_with(".k8s.io") || !g.contains('.') => {
            let first = g.split('.').next().unwrap_or(g);
            format!("io.k8s.api.{first}.{version}")
        }
        g => {
            let reversed: Vec<&str> = g.split('.').rev().collect();
            format!("{}.{version}", reversed.join("."))
        }
    };
    format!("{package}.{kind}")
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";

/// `GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}, ...}}`.
pub fn v3_root(resources: &[OpenApiResource]) -> Value {
    let mut gvs: BTreeMap<String, ()> = BTreeMap::new();
    for r in resources {
        gvs.insert(gv_path(&r.group, &r.version), ());
    }
    let mut paths = Map::new();
    for gv in gvs.keys() {
        // The hash changes with the document, so kubectl's disk cache never serves a stale one.
        let doc = v3_group_version(gv, resources).unwrap_or(Value::Null);
        let mut hasher = DefaultHasher::new();
        doc.to_string().hash(&mut hasher);
        let hash = format!("{:016X}", hasher.finish());
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}")}),
        );
    }
    json!({ "paths": paths })
}

/// `GET /openapi/v3/apis/{group}/{version}` (or `api/v1`): paths for each resource, with the
/// `fieldValidation` query parameter on PATCH, and component schemas tagged with
/// `x-kubernetes-group-version-kind`. `gv_path` is `api/v1` or `apis/GROUP/VERSION`.
pub fn v3_group_version(gv_path_wanted: &str, resources: &[OpenApiResource]) -> Option<Value> {
    let wanted = gv_path_wanted.trim_matches('/');
    let served: Vec<&OpenApiResource> = resources
        .iter()
        .filter(|r| gv_path(&r.group, &r.version) == wanted)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in served {
        let name = component_name(&r.group, &r.version, &r.kind);
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let schema_ref = json!({"$ref": format!("#/components/schemas/{name}")});
        let prefix = if r.namespaced {
            format!("/{wanted}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("/{wanted}/{}", r.plural)
        };
        let mut path_params = Vec::new();
        if r.namespaced {
            path_params.push(path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        paths.insert(
            prefix.clone(),
            json!({
                "get": operation("list", &r.kind, &gvk, &schema_ref, vec![]),
                "post": with_body(
                    operation("post", &r.kind, &gvk, &schema_ref, write_params()),
                    json!({"application/json": {"schema": schema_ref}, "application/yaml": {"schema": schema_ref}}),
                ),
                "parameters": path_params,
            }),
        );
        let mut item_params = vec![path_param("name", &format!("name of the {}", r.kind))];
        if r.namespaced {
            item_params.push(path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        let patch_ref = json!({"$ref": format!("#/components/schemas/{PATCH}")});
        let mut patch_params = write_params();
        patch_params.push(query_param(
            "force",
            "boolean",
            "Force is going to \"force\" Apply requests.",
        ));
        paths.insert(
            format!("{prefix}/{{name}}"),
            json!({
                "get": operation("get", &r.kind, &gvk, &schema_ref, vec![]),
                "put": with_body(
                    operation("put", &r.kind, &gvk, &schema_ref, write_params()),
                    json!({"application/json": {"schema": schema_ref}, "application/yaml": {"schema": schema_ref}}),
                ),
                "patch": with_body(
                    operation("patch", &r.kind, &gvk, &schema_ref, patch_params),
                    json!({
                        "application/json-patch+json": {"schema": patch_ref},
                        "application/merge-patch+json": {"schema": patch_ref},
                        "application/apply-patch+yaml": {"schema": patch_ref},
                    }),
                ),
                "delete": operation("delete", &r.kind, &gvk, &json!({"$ref": format!("#/components/schemas/{STATUS}")}), vec![]),
                "parameters": item_params,
            }),
        );
        schemas.insert(name, kind_schema(r, &gvk));
    }
    schemas.insert(
        OBJECT_META.into(),
        json!({"description": "ObjectMeta is metadata that all persisted resources must have.",
               "type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    );
    schemas.insert(
        PATCH.into(),
        json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
               "type": "object"}),
    );
    schemas.insert(
        STATUS.into(),
        json!({"description": "Status is a return value for calls that don't return other objects.",
               "type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    );
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn query_param(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
           "schema": {"type": ty, "uniqueItems": true}})
}

/// The query parameters of create, update and patch.
fn write_params() -> Vec<Value> {
    vec![
        query_param(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted.",
        ),
        query_param(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query_param(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
        ),
    ]
}

fn operation(
    action: &str,
    kind: &str,
    gvk: &Value,
    response: &Value,
    parameters: Vec<Value>,
) -> Value {
    let mut op = json!({
        "description": format!("{action} the specified {kind}"),
        "operationId": format!("{action}{kind}"),
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": response}}},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    op
}

fn with_body(mut op: Value, content: Value) -> Value {
    op["requestBody"] = json!({"content": content, "required": true});
    op
}

/// The kind's component schema: the CRD schema for custom resources (with `metadata`
/// pointing at ObjectMeta), a permissive object for built-ins.
fn kind_schema(r: &OpenApiResource, gvk: &Value) -> Value {
    let mut schema = match &r.schema {
        Some(s) => s.clone(),
        None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    };
    if let Some(obj) = schema.as_object_mut() {
        let props = obj.entry("properties").or_insert_with(|| json!({}));
        if let Some(props) = props.as_object_mut() {
            props.insert(
                "apiVersion".into(),
                json!({"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"}),
            );
            props.insert(
                "kind".into(),
                json!({"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"}),
            );
            props.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "default": {}}),
            );
        }
        obj.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        obj.entry("type").or_insert_with(|| json!("object"));
    }
    schema
}

/// `GET /openapi/v2`: an empty protobuf document (zero bytes), so that kubectl's client-side
/// validation finds no schema and defers to the server.
pub fn v2_protobuf() -> Vec<u8> {
    Vec::new()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn resources() -> Vec<OpenApiResource> {
        vec![
            OpenApiResource {
                group: "".into(),
                version: "v1".into(),
                kind: "Pod".into(),
                plural: "pods".into(),
                namespaced: true,
                schema: None,
            },
            OpenApiResource {
                group: "".into(),
                version: "v1".into(),
                kind: "Namespace".into(),
                plural: "namespaces".into(),
                namespaced: false,
                schema: None,
            },
            OpenApiResource {
                group: "coordination.kube-zen.io".into(),
                version: "v1alpha1".into(),
                kind: "LeaderPolicy".into(),
                plural: "leaderpolicies".into(),
                namespaced: true,
                schema: Some(
                    json!({"type": "object", "properties": {"spec": {"type": "object",
                    "properties": {"leaseDurationSeconds": {"type": "integer"}}}}}),
                ),
            },
        ]
    }

    /// kubectl's `supportsQueryParamV3`, transcribed: the PATCH op for the GVK must carry a
    /// `fieldValidation` query parameter.
    fn supports_field_validation(doc: &Value, group: &str, version: &str, kind: &str) -> bool {
        for path in doc["paths"].as_object().unwrap().values() {
            let Some(op) = path.get("patch") else {
                continue;
            };
            let gvk = &op["x-kubernetes-group-version-kind"];
            if gvk["group"] != group || gvk["version"] != version || gvk["kind"] != kind {
                continue;
            }
            return op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query");
        }
        false
    }

    #[test]
    fn root_lists_each_group_version_with_a_content_hash() {
        let root = v3_root(&resources());
        let paths = root["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 2);
        let url = paths["apis/coordination.kube-zen.io/v1alpha1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/coordination.kube-zen.io/v1alpha1?hash="));
        let mut fewer = resources();
        fewer.remove(0);
        let other = v3_root(&fewer);
        assert_ne!(
            root["paths"]["api/v1"]["serverRelativeURL"],
            other["paths"]["api/v1"]["serverRelativeURL"],
            "hash must follow the content"
        );
    }

    #[test]
    fn group_version_documents_support_field_validation() {
        let core = v3_group_version("api/v1", &resources()).unwrap();
        assert!(supports_field_validation(&core, "", "v1", "Pod"));
        assert!(supports_field_validation(&core, "", "v1", "Namespace"));
        assert!(!supports_field_validation(
            &core,
            "apps",
            "v1",
            "Deployment"
        ));
        assert!(
            core["paths"]
                .get("/api/v1/namespaces/{namespace}/pods/{name}")
                .is_some()
        );
        assert!(core["paths"].get("/api/v1/namespaces/{name}").is_some());
        let crd = v3_group_version("apis/coordination.kube-zen.io/v1alpha1", &resources()).unwrap();
        assert!(supports_field_validation(
            &crd,
            "coordination.kube-zen.io",
            "v1alpha1",
            "LeaderPolicy"
        ));
        assert!(v3_group_version("apis/apps/v1", &resources()).is_none());
    }

    #[test]
    fn patch_never_offers_strategic_merge_so_kubectl_uses_its_own_types() {
        let core = v3_group_version("api/v1", &resources()).unwrap();
        for path in core["paths"].as_object().unwrap().values() {
            if let Some(op) = path.get("patch") {
                assert!(
                    op["requestBody"]["content"]
                        .get("application/strategic-merge-patch+json")
                        .is_none()
                );
                assert!(
                    op["requestBody"]["content"]
                        .get("application/merge-patch+json")
                        .is_some()
                );
            }
        }
    }

    #[test]
    fn components_carry_gvk_and_crd_schema() {
        let crd = v3_group_version("apis/coordination.kube-zen.io/v1alpha1", &resources()).unwrap();
        let lp = &crd["components"]["schemas"]["io.kube-zen.coordination.v1alpha1.LeaderPolicy"];
        assert_eq!(
            lp["x-kubernetes-group-version-kind"],
            json!([{"group": "coordination.kube-zen.io", "version": "v1alpha1", "kind": "LeaderPolicy"}])
        );
        assert_eq!(
            lp["properties"]["spec"]["properties"]["leaseDurationSeconds"]["type"],
            "integer"
        );
        let core = v3_group_version("api/v1", &resources()).unwrap();
        assert_eq!(
            core["components"]["schemas"]["io.k8s.api.core.v1.Pod"]["type"],
            "object"
        );
        assert_eq!(
            component_name("coordination.k8s.io", "v1", "Lease"),
            "io.k8s.api.coordination.v1.Lease"
        );
        assert_eq!(
            component_name("apps", "v1", "Deployment"),
            "io.k8s.api.apps.v1.Deployment"
        );
    }
}
