//! Structural defaulting with apiextensions semantics.

use serde_json::Value;

use super::node;

/// Applies defaults below `schema` to `value`: a property with a `default` that is absent
/// (or null while not nullable) gets it; then every present value is defaulted in turn, so
/// defaults nest, but only into objects that exist.
pub fn apply(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(obj) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    let nullable = node::flag(prop, "nullable");
                    let present = obj.get(name);
                    let absent = match present {
                        None => true,
                        Some(Value::Null) => !nullable,
                        Some(_) => false,
                    };
                    if absent {
                        match prop.get("default") {
                            Some(default) => {
                                obj.insert(name.clone(), default.clone());
                            }
                            // A null for a non-nullable field is pruned before defaulting.
                            None if present.is_some() => {
                                obj.remove(name);
                            }
                            None => {}
                        }
                    }
                }
                for (name, child) in obj.iter_mut() {
                    if let Some(prop) = props.get(name) {
                        apply(prop, child);
                    }
                }
            } else if let Some(add) = node::additional(schema) {
                for child in obj.values_mut() {
                    apply(add, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node::items(schema) {
                for item in items {
                    apply(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "default": {}, "properties": {
                "a": {"type": "integer", "default": 15},
                "b": {"type": "string", "default": "pod"},
                "n": {"type": "string", "nullable": true, "default": "x"},
                "inner": {"type": "object", "properties": {"c": {"type": "integer", "default": 1}}},
                "list": {"type": "array", "items": {"type": "object", "properties": {
                    "d": {"type": "boolean", "default": true}}}},
                "map": {"type": "object", "additionalProperties": {"type": "object",
                    "properties": {"e": {"type": "integer", "default": 2}}}}
            }}
        }})
    }

    #[test]
    fn table() {
        let cases = vec![
            (json!({}), json!({"spec": {"a": 15, "b": "pod", "n": "x"}})),
            (
                json!({"spec": {"a": 3}}),
                json!({"spec": {"a": 3, "b": "pod", "n": "x"}}),
            ),
            (
                json!({"spec": {"a": null, "n": null}}),
                json!({"spec": {"a": 15, "b": "pod", "n": null}}),
            ),
            (
                json!({"spec": {"inner": {}, "list": [{}, {"d": false}], "map": {"k": {}}}}),
                json!({"spec": {"a": 15, "b": "pod", "n": "x", "inner": {"c": 1},
                    "list": [{"d": true}, {"d": false}], "map": {"k": {"e": 2}}}}),
            ),
        ];
        for (mut input, want) in cases {
            let orig = input.clone();
            apply(&schema(), &mut input);
            assert_eq!(input, want, "{orig}");
        }
    }

    #[test]
    fn absent_objects_without_default_stay_absent() {
        let mut v = json!({"spec": {}});
        apply(&schema(), &mut v);
        assert!(v["spec"].get("inner").is_none());
    }
}
