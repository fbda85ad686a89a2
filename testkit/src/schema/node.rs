//! Navigating schema nodes and building kube-apiserver field paths.

use serde_json::Value;

/// The schema of property `name` of an object schema, if declared.
pub fn property<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    schema.get("properties")?.get(name)
}

/// The schema of map values (`additionalProperties` as a schema), if any.
pub fn additional(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|a| a.is_object())
}

/// The schema of array items, if any.
pub fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|i| i.is_object())
}

/// True when `x-kubernetes-<flag>` is set to true on `schema`.
pub fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// `type` of the node, or "" when none.
pub fn ty(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

/// `parent.child`, or `child` at the root.
pub fn child_path(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// `parent[i]`.
pub fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// `parent[key]`.
pub fn key_path(parent: &str, key: &str) -> String {
    format!("{parent}[{key}]")
}

/// Escapes one JSON pointer token.
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
