//! PATCH semantics: JSON patch, merge patch, strategic merge patch and server-side apply.
//!
//! Pure functions on JSON values; the HTTP layer decodes the body and stores the result.

pub mod apply;
pub mod json;
pub mod keys;
pub mod managed_fields;
pub mod merge;
pub mod options;
pub mod strategic;

use serde_json::Value;

use crate::errors::ApiError;

/// The patch types the API server accepts, keyed by request `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`: built-in kinds only.
    StrategicMerge,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
}

impl PatchType {
    /// Parses a request `Content-Type` (parameters such as `; charset=utf-8` are ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// What a patch targets: used for strategic-merge list keys and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// API group, `""` for core.
    pub group: &'a str,
    /// Kind, e.g. `Pod`.
    pub kind: &'a str,
    /// Plural resource, e.g. `pods`.
    pub resource: &'a str,
    /// Object name.
    pub name: &'a str,
    /// True for custom resources, which reject strategic merge patch with 415 as the real
    /// server does.
    pub is_custom: bool,
}

/// Applies a JSON, merge or strategic-merge patch `body` to `current` and returns the new object.
/// Errors: 400 for an undecodable patch, 422 for a failed JSON-patch `test`/path,
/// 415 for strategic merge on a custom resource.
pub fn patch(
    ty: PatchType,
    target: &Target<'_>,
    current: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    match ty {
        PatchType::Json => json::apply(current, body),
        PatchType::Merge => merge::apply(current, body),
        PatchType::StrategicMerge => strategic::apply(target, current, body),
        // Apply has its own entry point because it needs the manager and force flag.
        PatchType::Apply => Err(ApiError::internal(
            "server-side apply must go through patch::server_side_apply",
        )),
    }
}

/// Server-side apply of `body` (YAML or JSON) by `manager` to `current` (None: create).
/// Maintains `metadata.managedFields` (operation `Apply`, `fieldsV1`), reports ownership
/// conflicts with another manager as 409 unless `force`, and removes fields the manager
/// applied before and no longer applies (when no other manager owns them).
pub fn server_side_apply(
    target: &Target<'_>,
    current: Option<&Value>,
    body: &[u8],
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    apply::server_side_apply_to(target, current, body, manager, force, "")
}

/// [`server_side_apply`] through a subresource (`status`): the `Apply` entry in
/// `managedFields` carries `subresource`, and conflicts are judged against it.
pub fn server_side_apply_subresource(
    target: &Target<'_>,
    current: &Value,
    body: &[u8],
    manager: &str,
    force: bool,
    subresource: &str,
) -> Result<Value, ApiError> {
    apply::server_side_apply_to(target, Some(current), body, manager, force, subresource)
}

/// Records an `Update` (non-apply) write by `manager` in `metadata.managedFields` of `new`,
/// taking ownership of the fields that changed from `old`. Call after create/update/patch.
pub fn track_update(old: Option<&Value>, new: &mut Value, manager: &str, subresource: &str) {
    managed_fields::track_update(old, new, manager, subresource)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_and_dispatch() {
        let target = Target {
            group: "",
            kind: "ConfigMap",
            resource: "configmaps",
            name: "c",
            is_custom: false,
        };
        let cur = json!({"metadata": {"name": "c", "finalizers": ["a"]}, "data": {"k": "v"}});
        let cases = [
            (
                "application/json-patch+json",
                r#"[{"op":"remove","path":"/data/k"}]"#,
                json!({}),
            ),
            (
                "application/merge-patch+json; charset=utf-8",
                r#"{"data":{"x":"y"}}"#,
                json!({"k": "v", "x": "y"}),
            ),
            (
                "application/strategic-merge-patch+json",
                r#"{"data":{"k":null}}"#,
                json!({}),
            ),
        ];
        for (ct, body, data) in cases {
            let ty = PatchType::from_content_type(ct).unwrap();
            let out = patch(ty, &target, &cur, body.as_bytes()).unwrap();
            assert_eq!(out["data"], data, "{ct}");
        }
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert_eq!(
            patch(PatchType::Apply, &target, &cur, b"{}")
                .unwrap_err()
                .code,
            500
        );
        // Strategic merge keeps finalizers as a merged set; merge patch replaces the list.
        for (ty, finalizers) in [
            (PatchType::StrategicMerge, json!(["a", "b"])),
            (PatchType::Merge, json!(["b"])),
        ] {
            let out = patch(ty, &target, &cur, br#"{"metadata":{"finalizers":["b"]}}"#).unwrap();
            assert_eq!(out["metadata"]["finalizers"], finalizers, "{ty:?}");
        }
    }
}
