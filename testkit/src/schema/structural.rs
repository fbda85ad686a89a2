//! Structural schemas: the rules apiextensions-apiserver checks before it serves a CRD
//! version. Every specified field has a `type` (unless it is int-or-string or keeps unknown
//! fields), arrays have `items`, and the root is an object.

use serde_json::Value;

use super::node;

/// The first rule `schema` breaks, as `field: message` (e.g.
/// `openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified
/// object fields`).
pub fn check(schema: &Value, path: &str) -> Result<(), String> {
    match node::ty(schema) {
        "" => Err(format!(
            "{path}.type: Required value: must not be empty at the root"
        )),
        "object" => walk(schema, path),
        other => Err(format!(
            "{path}.type: Invalid value: {other:?}: must be object at the root"
        )),
    }
}

fn typed_or_exempt(schema: &Value, path: &str, what: &str) -> Result<(), String> {
    let exempt = node::flag(schema, "x-kubernetes-int-or-string")
        || node::flag(schema, "x-kubernetes-preserve-unknown-fields");
    if node::ty(schema).is_empty() && !exempt {
        return Err(format!(
            "{path}.type: Required value: must not be empty for specified {what}"
        ));
    }
    walk(schema, path)
}

fn walk(schema: &Value, path: &str) -> Result<(), String> {
    if node::ty(schema) == "array" && node::items(schema).is_none() {
        return Err(format!("{path}.items: Required value: must be specified"));
    }
    if schema.get("properties").is_some() && node::additional(schema).is_some() {
        return Err(format!(
            "{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ));
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, sub) in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if sub.get("type").is_some() {
                return Err(format!(
                    "{path}.{key}[{i}].type: Forbidden: must be empty to be structural"
                ));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            typed_or_exempt(prop, &format!("{path}.properties[{name}]"), "object fields")?;
        }
    }
    if let Some(items) = node::items(schema) {
        typed_or_exempt(items, &format!("{path}.items"), "array items")?;
    }
    if let Some(add) = node::additional(schema) {
        typed_or_exempt(
            add,
            &format!("{path}.additionalProperties"),
            "object fields",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        for (schema, want) in [
            (
                json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "n": {"x-kubernetes-int-or-string": true}, "free": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}, "l": {"type": "array", "items": {"type": "string"}}}}}}),
                None,
            ),
            (
                json!({"properties": {}}),
                Some("s.type: Required value: must not be empty at the root"),
            ),
            (
                json!({"type": "object", "properties": {"spec": {"properties": {}}}}),
                Some(
                    "s.properties[spec].type: Required value: must not be empty for specified object fields",
                ),
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array"}}}),
                Some("s.properties[l].items: Required value: must be specified"),
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}}}),
                Some(
                    "s.properties[l].items.type: Required value: must not be empty for specified array items",
                ),
            ),
        ] {
            assert_eq!(check(&schema, "s").err().as_deref(), want, "{schema}");
        }
    }
}
