//! Strategic merge patch for the built-in kinds.
//!
//! Follows apimachinery's `strategicpatch` for the directives kubectl sends: `$patch`
//! (`replace`, `delete`, `merge`), `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>`. Lists merge by the keys in [`super::keys`]; other lists
//! are replaced; `null` deletes.

use serde_json::{Map, Value};

use super::{Target, keys};
use crate::errors::ApiError;

/// The patch types a custom resource accepts, as the CRD handler lists them.
const CUSTOM_RESOURCE_PATCH_TYPES: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

/// Applies a strategic merge patch. Custom resources reject it with 415, as the real server's
/// CRD handler does.
pub fn apply(target: &Target<'_>, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    if target.is_custom {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: {CUSTOM_RESOURCE_PATCH_TYPES}"
        )));
    }
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal non-object strategic merge patch into Go value of type map[string]interface {}",
        ));
    };
    let mut doc = current.clone();
    match &mut doc {
        Value::Object(obj) => merge_map(obj, &patch)?,
        _ => {
            return Err(ApiError::bad_request(
                "the object to patch is not a JSON object",
            ));
        }
    }
    Ok(doc)
}

fn directive_error(message: String) -> ApiError {
    ApiError::bad_request(message)
}

/// Merges `patch` into `orig`.
fn merge_map(orig: &mut Map<String, Value>, patch: &Map<String, Value>) -> Result<(), ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *orig = without_directives(patch);
            return Ok(());
        }
        Some("delete") => {
            orig.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(directive_error(format!(
                "Unknown patch type: {other} in map: {}",
                Value::Object(patch.clone())
            )));
        }
    }
    // Values to delete from primitive lists come first, so a value both deleted and re-added
    // in the same patch survives.
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let Some(drop) = v.as_array() else {
                return Err(directive_error(format!(
                    "invalid value for {k}: must be a list"
                )));
            };
            if let Some(Value::Array(items)) = orig.get_mut(list) {
                items.retain(|i| !drop.contains(i));
            }
        }
    }
    for (k, v) in patch {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                orig.remove(k);
            }
            Value::Object(p) => {
                let directive = p.get("$patch").and_then(Value::as_str);
                if directive == Some("delete") {
                    orig.remove(k);
                    continue;
                }
                match orig.get_mut(k) {
                    Some(Value::Object(o)) => merge_map(o, p)?,
                    _ => {
                        let mut fresh = Map::new();
                        merge_map(&mut fresh, p)?;
                        orig.insert(k.clone(), Value::Object(fresh));
                    }
                }
            }
            Value::Array(items) => {
                let merged = match orig.remove(k) {
                    Some(Value::Array(o)) => merge_list(k, o, items)?,
                    _ => merge_list(k, Vec::new(), items)?,
                };
                orig.insert(k.clone(), Value::Array(merged));
            }
            other => {
                orig.insert(k.clone(), other.clone());
            }
        }
    }
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix("$setElementOrder/")
            && let (Some(order), Some(Value::Array(items))) = (v.as_array(), orig.get_mut(list))
        {
            reorder(list, items, order);
        }
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let Some(retain) = retain.as_array() else {
            return Err(directive_error(
                "invalid value for $retainKeys: must be a list".into(),
            ));
        };
        orig.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
    Ok(())
}

fn without_directives(patch: &Map<String, Value>) -> Map<String, Value> {
    patch
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Merges the patch list `items` into the original list `orig` of field `field`.
fn merge_list(field: &str, orig: Vec<Value>, items: &[Value]) -> Result<Vec<Value>, ApiError> {
    // A `{"$patch": "replace"}` element replaces the whole list with the other elements.
    let replace = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace {
        return Ok(items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect());
    }
    let all = orig.iter().chain(items.iter()).cloned().collect::<Vec<_>>();
    if let Some(key) = keys::merge_key(field, &all) {
        let mut out = orig;
        for item in items {
            let Some(p) = item.as_object() else {
                return Err(directive_error(format!(
                    "merging an object in json but data type is not map, field: {field}"
                )));
            };
            let Some(key_value) = p.get(key) else {
                // kube-apiserver passes this error through uninterpreted: a 500.
                return Err(ApiError::internal(format!(
                    "map: {} does not contain declared merge key: {key}",
                    go_map(p)
                )));
            };
            let pos = out.iter().position(|o| o.get(key) == Some(key_value));
            match p.get("$patch").and_then(Value::as_str) {
                Some("delete") => {
                    if let Some(pos) = pos {
                        out.remove(pos);
                    }
                }
                _ => match pos.map(|pos| &mut out[pos]) {
                    Some(Value::Object(o)) => merge_map(o, p)?,
                    _ => {
                        let mut fresh = Map::new();
                        merge_map(&mut fresh, p)?;
                        out.push(Value::Object(fresh));
                    }
                },
            }
        }
        return Ok(out);
    }
    if keys::is_primitive_merge_list(field) {
        let mut out = orig;
        for item in items {
            if !out.contains(item) {
                out.push(item.clone());
            }
        }
        return Ok(out);
    }
    Ok(items.to_vec())
}

/// Go's `%v` of a `map[string]interface{}`: `map[image:x name:y]`, keys sorted.
fn go_map(m: &Map<String, Value>) -> String {
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}:{s}"),
            other => format!("{k}:{other}"),
        })
        .collect();
    format!("map[{}]", parts.join(" "))
}

/// Orders `items` as `order` lists them (by merge key or value); others keep their place after.
fn reorder(field: &str, items: &mut Vec<Value>, order: &[Value]) {
    let key = keys::merge_key(field, items);
    let id = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let mut rest: Vec<Value> = std::mem::take(items);
    let mut out = Vec::new();
    for o in order {
        let want = id(o);
        if let Some(pos) = rest.iter().position(|i| id(i) == want) {
            out.push(rest.remove(pos));
        }
    }
    out.extend(rest);
    *items = out;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_target() -> Target<'static> {
        Target {
            group: "",
            kind: "Pod",
            resource: "pods",
            name: "p",
            is_custom: false,
        }
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x/one", "x/two"],
                         "ownerReferences": [{"uid": "u1", "name": "rs"}]},
            "spec": {
                "containers": [
                    {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80, "name": "http"}], "args": ["--x"]},
                    {"name": "side", "image": "side:1"}
                ],
                "volumes": [{"name": "v1", "emptyDir": {}}],
                "tolerations": [{"key": "k1"}]
            },
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}
        })
    }

    fn run(patch: Value) -> Value {
        apply(&pod_target(), &pod(), patch.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn merges_lists_by_key_and_replaces_others() {
        let out = run(json!({"spec": {
            "containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}], "args": ["--y"]},
                           {"name": "new", "image": "new:1"}],
            "tolerations": [{"key": "k2"}]
        }}));
        let c = &out["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 3);
        assert_eq!(c[0]["image"], "app:2");
        assert_eq!(
            c[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
        assert_eq!(
            c[0]["args"],
            json!(["--y"]),
            "lists without merge key are replaced"
        );
        assert_eq!(
            c[0]["ports"],
            json!([{"containerPort": 80, "name": "http"}])
        );
        assert_eq!(c[1]["name"], "side");
        assert_eq!(c[2]["name"], "new");
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "k2"}]));
    }

    #[test]
    fn table() {
        let cases = vec![
            (
                json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
                "/metadata/labels",
                json!({"b": "2", "c": "3"}),
            ),
            (
                json!({"metadata": {"finalizers": ["x/three", "x/one"]}}),
                "/metadata/finalizers",
                json!(["x/one", "x/two", "x/three"]),
            ),
            (
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x/one"]}}),
                "/metadata/finalizers",
                json!(["x/two"]),
            ),
            (
                json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}}}),
                "/metadata/labels",
                json!({"z": "9"}),
            ),
            (
                json!({"metadata": {"labels": {"$patch": "delete"}}}),
                "/metadata/labels",
                Value::Null,
            ),
            (
                json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
                "/spec/containers/0/name",
                json!("app"),
            ),
            (
                json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
                "/spec/containers/1",
                Value::Null,
            ),
            (
                json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}}),
                "/spec/containers",
                json!([{"name": "only", "image": "o"}]),
            ),
            (
                json!({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}]}}),
                "/spec/containers/0/name",
                json!("side"),
            ),
            (
                json!({"spec": {"volumes": [{"name": "v1", "configMap": {"name": "c"}, "$retainKeys": ["configMap", "name"]}]}}),
                "/spec/volumes/0",
                json!({"name": "v1", "configMap": {"name": "c"}}),
            ),
            (
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                "/status/conditions",
                json!([{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]),
            ),
            (
                json!({"metadata": {"ownerReferences": [{"uid": "u2", "name": "other"}]}}),
                "/metadata/ownerReferences",
                json!([{"uid": "u1", "name": "rs"}, {"uid": "u2", "name": "other"}]),
            ),
            (
                json!({"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 443}]}]}}),
                "/spec/containers/0/ports",
                json!([{"containerPort": 80, "name": "http"}, {"containerPort": 443}]),
            ),
            (json!({"spec": null}), "/spec", Value::Null),
        ];
        for (patch, pointer, want) in cases {
            let out = run(patch.clone());
            assert_eq!(
                out.pointer(pointer).cloned().unwrap_or(Value::Null),
                want,
                "{patch}"
            );
        }
    }

    #[test]
    fn errors() {
        let bad = |body: &str| apply(&pod_target(), &pod(), body.as_bytes()).unwrap_err();
        assert_eq!(bad("{").code, 400);
        assert_eq!(bad("[]").code, 400);
        let no_key = bad(r#"{"spec": {"containers": [{"image": "no-name"}]}}"#);
        assert_eq!(no_key.code, 500);
        assert_eq!(
            no_key.message,
            "Internal error occurred: map: map[image:no-name] does not contain declared merge key: name"
        );
        assert_eq!(bad(r#"{"metadata": {"$patch": "frob"}}"#).code, 400);
        let custom = Target {
            group: "coordination.kube-zen.io",
            kind: "LeaderPolicy",
            resource: "leaderpolicies",
            name: "p",
            is_custom: true,
        };
        let err = apply(&custom, &json!({}), b"{}").unwrap_err();
        assert_eq!(err.code, 415);
        assert_eq!(err.reason, "UnsupportedMediaType");
        assert_eq!(
            err.message,
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        );
    }
}
