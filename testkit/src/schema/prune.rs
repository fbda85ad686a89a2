//! Pruning of unknown fields.

use serde_json::Value;

use super::node;

/// Fields of an embedded resource (and of the root) that are always kept.
const RESOURCE_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// Prunes `obj` (a whole custom resource) against `schema`; returns the dropped paths.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut dropped = Vec::new();
    walk(schema, obj, "", true, &mut dropped);
    dropped
}

fn walk(schema: &Value, value: &mut Value, path: &str, resource: bool, dropped: &mut Vec<String>) {
    match value {
        Value::Object(obj) => {
            let preserve = node::flag(schema, "x-kubernetes-preserve-unknown-fields");
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = node::additional(schema);
            let open = schema
                .get("additionalProperties")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut remove = Vec::new();
            for (name, child) in obj.iter_mut() {
                let child_path = node::child_path(path, name);
                if resource && name == "metadata" {
                    // ObjectMeta is pruned by its own Go type on the real server, never by
                    // the CRD schema; we keep it whole.
                    continue;
                }
                if let Some(prop) = props.and_then(|p| p.get(name)) {
                    let embedded = node::flag(prop, "x-kubernetes-embedded-resource");
                    walk(prop, child, &child_path, embedded, dropped);
                } else if let Some(add) = additional {
                    walk(add, child, &node::key_path(path, name), false, dropped);
                } else if resource && RESOURCE_FIELDS.contains(&name.as_str()) {
                    // apiVersion and kind of a resource are always kept.
                } else if !preserve && !open {
                    remove.push(name.clone());
                    dropped.push(child_path);
                }
            }
            for name in remove {
                obj.remove(&name);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node::items(schema) {
                let embedded = node::flag(item_schema, "x-kubernetes-embedded-resource");
                for (i, item) in items.iter_mut().enumerate() {
                    walk(
                        item_schema,
                        item,
                        &node::index_path(path, i),
                        embedded,
                        dropped,
                    );
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
            "spec": {"type": "object", "properties": {
                "a": {"type": "integer"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {"known": {"type": "object", "properties": {"k": {"type": "string"}}}}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                    "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}},
                "list": {"type": "array", "items": {"type": "object", "properties": {"i": {"type": "integer"}}}},
                "map": {"type": "object", "additionalProperties": {"type": "string"}}
            }},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
        }})
    }

    #[test]
    fn table() {
        let cases = vec![
            (
                json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"a": 1, "zzz": 2}, "junk": 1}),
                json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"a": 1}}),
                vec!["junk", "spec.zzz"],
            ),
            (
                json!({"spec": {"free": {"anything": {"deep": 1}, "known": {"k": "v", "drop": 1}}}}),
                json!({"spec": {"free": {"anything": {"deep": 1}, "known": {"k": "v"}}}}),
                vec!["spec.free.known.drop"],
            ),
            (
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1},
                    "spec": {"x": "y", "bad": 1}, "other": 2}}}),
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1},
                    "spec": {"x": "y"}}}}),
                vec!["spec.template.other", "spec.template.spec.bad"],
            ),
            (
                json!({"spec": {"list": [{"i": 1, "j": 2}], "map": {"k": "v"}}, "status": {"phase": "x", "bogus": true}}),
                json!({"spec": {"list": [{"i": 1}], "map": {"k": "v"}}, "status": {"phase": "x"}}),
                vec!["spec.list[0].j", "status.bogus"],
            ),
        ];
        for (mut input, want, dropped) in cases {
            let orig = input.clone();
            let mut got = prune(&schema(), &mut input);
            got.sort();
            assert_eq!(input, want, "{orig}");
            assert_eq!(got, dropped, "{orig}");
        }
    }
}
