//! OpenAPI v3 value validation with kube-apiserver's field errors.
//!
//! Messages follow kube-openapi's validation errors as apiextensions converts them to
//! `field.Error`s: `Invalid value: 0: spec.x in body should be greater than or equal to 1`.

use serde_json::Value;

use super::node;
use crate::errors::Cause;

/// Checks the parts of a schema that could fail at validation time (types, patterns).
pub fn check_schema(schema: &Value, path: &str) -> Result<(), String> {
    let ty = node::ty(schema);
    if !matches!(
        ty,
        "" | "object" | "array" | "string" | "integer" | "number" | "boolean"
    ) {
        return Err(format!("{path}.type: Unsupported value: \"{ty}\""));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::Regex::new(p)
    {
        return Err(format!("{path}.pattern: Invalid value: \"{p}\": {e}"));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            check_schema(prop, &format!("{path}.properties[{name}]"))?;
        }
    }
    if let Some(items) = node::items(schema) {
        check_schema(items, &format!("{path}.items"))?;
    }
    if let Some(add) = node::additional(schema) {
        check_schema(add, &format!("{path}.additionalProperties"))?;
    }
    Ok(())
}

/// Validates `value` against `schema`, appending causes.
pub fn validate(schema: &Value, value: &Value, causes: &mut Vec<Cause>) {
    walk(schema, value, "", causes);
}

/// Go's `%v`/`%q` rendering of a value inside a field error.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "\"null\"".into(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
    }
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Go's `%v` of a float64 bound: `1`, `1.5`.
fn bound(v: &Value) -> String {
    match v.as_f64() {
        Some(f) => format!("{f}"),
        None => v.to_string(),
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> Cause {
    Cause::invalid(
        path,
        format!("Invalid value: {}: {detail}", go_value(value)),
    )
}

fn type_invalid(path: &str, shown: &str, want: &str, found: &str) -> Cause {
    Cause {
        reason: "FieldValueTypeInvalid".into(),
        message: format!(
            "Invalid value: {shown:?}: {} in body must be of type {want}: {found:?}",
            path
        ),
        field: path.to_string(),
    }
}

fn type_ok(schema: &Value, value: &Value) -> bool {
    if node::flag(schema, "x-kubernetes-int-or-string") {
        return matches!(value, Value::String(_)) || value.is_i64() || value.is_u64();
    }
    match node::ty(schema) {
        "" => true,
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

/// The schema keywords that bound how many children an object or a list holds.
struct CountBounds {
    min: &'static str,
    max: &'static str,
    /// What the children are called in the too-few message.
    noun: &'static str,
}

const PROPERTY_BOUNDS: CountBounds = CountBounds {
    min: "minProperties",
    max: "maxProperties",
    noun: "properties",
};

const ITEM_BOUNDS: CountBounds = CountBounds {
    min: "minItems",
    max: "maxItems",
    noun: "items",
};

/// Checks `count` children of `value` against `bounds`. kube-apiserver says "items" in the
/// too-many message for objects too.
fn check_count(
    schema: &Value,
    bounds: &CountBounds,
    count: u64,
    path: &str,
    value: &Value,
    causes: &mut Vec<Cause>,
) {
    let noun = bounds.noun;
    if let Some(min) = schema.get(bounds.min).and_then(Value::as_u64)
        && count < min
    {
        causes.push(invalid(
            path,
            value,
            format!("{path} in body should have at least {min} {noun}"),
        ));
    }
    if let Some(max) = schema.get(bounds.max).and_then(Value::as_u64)
        && count > max
    {
        causes.push(Cause {
            reason: "FieldValueTooMany".into(),
            message: format!("Too many: {count}: must have at most {max} items"),
            field: path.to_string(),
        });
    }
}

fn walk(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        if !node::flag(schema, "nullable") && !node::ty(schema).is_empty() {
            // kube-openapi passes no data for null, so the message has no `: "..."` tail.
            causes.push(Cause {
                reason: "FieldValueTypeInvalid".into(),
                message: format!(
                    "Invalid value: \"null\": {path} in body must be of type {}",
                    node::ty(schema)
                ),
                field: path.to_string(),
            });
        }
        return;
    }
    if !type_ok(schema, value) {
        let want = if node::flag(schema, "x-kubernetes-int-or-string") {
            "integer,string"
        } else {
            node::ty(schema)
        };
        let found = type_name(value);
        causes.push(type_invalid(path, found, want, found));
        return;
    }
    let shown_path = path;

    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let values: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                go_value(value),
                values.join(", ")
            ),
            field: path.to_string(),
        });
    }

    if let Some(n) = number(value).filter(|_| value.is_number()) {
        let exclusive_min = node::flag(schema, "exclusiveMinimum");
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if exclusive_min && n <= min {
                causes.push(invalid(
                    path,
                    value,
                    format!(
                        "{shown_path} in body should be greater than {}",
                        bound(&schema["minimum"])
                    ),
                ));
            } else if !exclusive_min && n < min {
                causes.push(invalid(
                    path,
                    value,
                    format!(
                        "{shown_path} in body should be greater than or equal to {}",
                        bound(&schema["minimum"])
                    ),
                ));
            }
        }
        let exclusive_max = node::flag(schema, "exclusiveMaximum");
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if exclusive_max && n >= max {
                causes.push(invalid(
                    path,
                    value,
                    format!(
                        "{shown_path} in body should be less than {}",
                        bound(&schema["maximum"])
                    ),
                ));
            } else if !exclusive_max && n > max {
                causes.push(invalid(
                    path,
                    value,
                    format!(
                        "{shown_path} in body should be less than or equal to {}",
                        bound(&schema["maximum"])
                    ),
                ));
            }
        }
        if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
            && m > 0.0
            && (n / m).fract().abs() > f64::EPSILON
        {
            causes.push(invalid(
                path,
                value,
                format!(
                    "{shown_path} in body should be a multiple of {}",
                    bound(&schema["multipleOf"])
                ),
            ));
        }
    }

    if let Value::String(s) = value {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            causes.push(invalid(
                path,
                value,
                format!("{shown_path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            causes.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: format!("Too long: may not be longer than {max}"),
                field: path.to_string(),
            });
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && let Ok(re) = regex::Regex::new(p)
            && !re.is_match(s)
        {
            causes.push(invalid(
                path,
                value,
                format!("{shown_path} in body should match '{p}'"),
            ));
        }
        if let Some(format) = schema.get("format").and_then(Value::as_str)
            && !format_ok(format, s)
        {
            causes.push(type_invalid(path, s, format, s));
        }
    }
    if value.is_i64() || value.is_u64() {
        let fits = match schema.get("format").and_then(Value::as_str) {
            Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            Some("int64") => value.as_i64().is_some(),
            _ => true,
        };
        if !fits {
            let f = schema["format"].as_str().unwrap_or_default();
            causes.push(invalid(
                path,
                value,
                format!(
                    "{shown_path} in body must be of type {f}: {}",
                    go_value(value)
                ),
            ));
        }
    }

    match value {
        Value::Object(obj) => {
            let count = obj.len() as u64;
            check_count(schema, &PROPERTY_BOUNDS, count, path, value, causes);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        causes.push(Cause::required(node::child_path(path, r)));
                    }
                }
            }
            for (name, child) in obj {
                if let Some(prop) = node::property(schema, name) {
                    walk(prop, child, &node::child_path(path, name), causes);
                } else if let Some(add) = node::additional(schema) {
                    walk(add, child, &node::key_path(path, name), causes);
                }
            }
        }
        Value::Array(items) => {
            let count = items.len() as u64;
            check_count(schema, &ITEM_BOUNDS, count, path, value, causes);
            if node::flag(schema, "uniqueItems")
                && items
                    .iter()
                    .enumerate()
                    .any(|(i, a)| items[i + 1..].contains(a))
            {
                causes.push(invalid(
                    path,
                    value,
                    format!("{shown_path} in body shouldn't contain duplicates"),
                ));
            }
            if let Some(item_schema) = node::items(schema) {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, &node::index_path(path, i), causes);
                }
            }
        }
        _ => {}
    }
}

/// `x-kubernetes-list-type: map|set` invariants: no two items with the same keys / value.
pub fn list_invariants(schema: &Value, value: &Value, causes: &mut Vec<Cause>) {
    list_walk(schema, value, "", causes);
}

fn list_walk(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    match value {
        Value::Object(obj) => {
            for (name, child) in obj {
                if let Some(prop) = node::property(schema, name) {
                    list_walk(prop, child, &node::child_path(path, name), causes);
                } else if let Some(add) = node::additional(schema) {
                    list_walk(add, child, &node::key_path(path, name), causes);
                }
            }
        }
        Value::Array(items) => {
            let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                let earlier = &items[..i];
                let duplicate = match list_type {
                    Some("set") => earlier.contains(item),
                    Some("map") if !keys.is_empty() => earlier
                        .iter()
                        .any(|e| keys.iter().all(|k| e.get(*k) == item.get(*k))),
                    _ => false,
                };
                if duplicate {
                    let shown = match list_type {
                        Some("map") => {
                            let key: serde_json::Map<String, Value> = keys
                                .iter()
                                .filter_map(|k| item.get(*k).map(|v| ((*k).to_string(), v.clone())))
                                .collect();
                            format!("map[string]interface {{}}{}", Value::Object(key))
                        }
                        _ => go_value(item),
                    };
                    causes.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: {shown}"),
                        field: node::index_path(path, i),
                    });
                }
            }
            if let Some(item_schema) = node::items(schema) {
                for (i, item) in items.iter().enumerate() {
                    list_walk(item_schema, item, &node::index_path(path, i), causes);
                }
            }
        }
        _ => {}
    }
}

/// Loose checks of the string formats CRDs commonly use.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok(),
        "int32" => s.parse::<i32>().is_ok(),
        "int64" => s.parse::<i64>().is_ok(),
        "uuid" => uuid::Uuid::parse_str(s).is_ok(),
        _ => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
        "required": ["pool"],
        "properties": {
            "pool": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
            "leaseDurationSeconds": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 3600},
            "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1.5, "exclusiveMaximum": true},
            "identityStrategy": {"type": "string", "enum": ["pod", "custom"]},
            "enabled": {"type": "boolean"},
            "port": {"x-kubernetes-int-or-string": true},
            "maybe": {"type": "string", "nullable": true},
            "when": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "labels": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}
        }}}})
    }

    fn causes(spec: Value) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        validate(&schema(), &json!({"spec": spec}), &mut out);
        out.into_iter()
            .map(|c| (c.reason, c.field, c.message))
            .collect()
    }

    fn one(reason: &str, field: &str, message: &str) -> Vec<(String, String, String)> {
        vec![(reason.into(), field.into(), message.into())]
    }

    #[test]
    fn valid_object_has_no_causes() {
        let ok = json!({"pool": "abc", "leaseDurationSeconds": 15, "ratio": 0.5, "identityStrategy": "pod",
            "enabled": true, "port": "http", "maybe": null, "when": "2024-01-01T00:00:00Z",
            "tags": ["a"], "labels": {"a": "b"}});
        assert_eq!(causes(ok), vec![]);
        assert_eq!(causes(json!({"pool": "ab", "port": 8080})), vec![]);
    }

    #[test]
    fn table() {
        let inv = "FieldValueInvalid";
        let cases = vec![
            (json!({}), one("FieldValueRequired", "spec.pool", "Required value")),
            (
                json!({"pool": "ab", "leaseDurationSeconds": 0}),
                one(inv, "spec.leaseDurationSeconds",
                    "Invalid value: 0: spec.leaseDurationSeconds in body should be greater than or equal to 1"),
            ),
            (
                json!({"pool": "ab", "leaseDurationSeconds": 3601}),
                one(inv, "spec.leaseDurationSeconds",
                    "Invalid value: 3601: spec.leaseDurationSeconds in body should be less than or equal to 3600"),
            ),
            (
                json!({"pool": "ab", "leaseDurationSeconds": "15"}),
                one("FieldValueTypeInvalid", "spec.leaseDurationSeconds",
                    "Invalid value: \"string\": spec.leaseDurationSeconds in body must be of type integer: \"string\""),
            ),
            (
                json!({"pool": "ab", "leaseDurationSeconds": 1.5}),
                one("FieldValueTypeInvalid", "spec.leaseDurationSeconds",
                    "Invalid value: \"number\": spec.leaseDurationSeconds in body must be of type integer: \"number\""),
            ),
            (
                json!({"pool": "ab", "ratio": 0}),
                one(inv, "spec.ratio", "Invalid value: 0: spec.ratio in body should be greater than 0"),
            ),
            (
                json!({"pool": "ab", "ratio": 1.5}),
                one(inv, "spec.ratio", "Invalid value: 1.5: spec.ratio in body should be less than 1.5"),
            ),
            (
                json!({"pool": "ab", "identityStrategy": "x"}),
                one("FieldValueNotSupported", "spec.identityStrategy",
                    "Unsupported value: \"x\": supported values: \"pod\", \"custom\""),
            ),
            (
                json!({"pool": "a"}),
                one(inv, "spec.pool", "Invalid value: \"a\": spec.pool in body should be at least 2 chars long"),
            ),
            (
                json!({"pool": "abcdef"}),
                one("FieldValueTooLong", "spec.pool", "Too long: may not be longer than 5"),
            ),
            (
                json!({"pool": "AB"}),
                one(inv, "spec.pool", "Invalid value: \"AB\": spec.pool in body should match '^[a-z]+$'"),
            ),
            (
                json!({"pool": "ab", "enabled": "yes"}),
                one("FieldValueTypeInvalid", "spec.enabled",
                    "Invalid value: \"string\": spec.enabled in body must be of type boolean: \"string\""),
            ),
            (
                json!({"pool": "ab", "port": true}),
                one("FieldValueTypeInvalid", "spec.port",
                    "Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""),
            ),
            (
                json!({"pool": "ab", "enabled": null}),
                one("FieldValueTypeInvalid", "spec.enabled",
                    "Invalid value: \"null\": spec.enabled in body must be of type boolean"),
            ),
            (
                json!({"pool": "ab", "when": "yesterday"}),
                one("FieldValueTypeInvalid", "spec.when",
                    "Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\""),
            ),
            (
                json!({"pool": "ab", "tags": []}),
                one(inv, "spec.tags", "Invalid value: \"array\": spec.tags in body should have at least 1 items"),
            ),
            (
                json!({"pool": "ab", "tags": ["a", "b", "c"]}),
                one("FieldValueTooMany", "spec.tags", "Too many: 3: must have at most 2 items"),
            ),
            (
                json!({"pool": "ab", "tags": [1]}),
                one("FieldValueTypeInvalid", "spec.tags[0]",
                    "Invalid value: \"integer\": spec.tags[0] in body must be of type string: \"integer\""),
            ),
            (
                json!({"pool": "ab", "labels": {"a": "1", "b": "2"}}),
                one("FieldValueTooMany", "spec.labels", "Too many: 2: must have at most 1 items"),
            ),
            (
                json!({"pool": "ab", "leaseDurationSeconds": 4294967296i64}),
                vec![
                    (inv.into(), "spec.leaseDurationSeconds".into(),
                     "Invalid value: 4294967296: spec.leaseDurationSeconds in body should be less than or equal to 3600".into()),
                    (inv.into(), "spec.leaseDurationSeconds".into(),
                     "Invalid value: 4294967296: spec.leaseDurationSeconds in body must be of type int32: 4294967296".into()),
                ],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(causes(spec.clone()), want, "{spec}");
        }
    }

    #[test]
    fn bad_pattern_fails_schema_check() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}});
        assert!(
            check_schema(&s, "openAPIV3Schema")
                .unwrap_err()
                .contains("properties[a].pattern")
        );
        assert!(check_schema(&json!({"type": "frob"}), "x").is_err());
    }
}
