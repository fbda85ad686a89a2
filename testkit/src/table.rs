//! `meta.k8s.io/v1` Table output for `kubectl get` (`Accept: application/json;as=Table;...`).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// Whether the client asked for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

/// Whether the client asked for `PartialObjectMetadata` (kube's metadata-only API).
pub fn wants_partial(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
}

/// Reduces an object (or a list) to `PartialObjectMetadata` (`...List`).
pub fn to_partial(value: &Value) -> Value {
    let one = |o: &Value| {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
        })
    };
    match value.get("items").and_then(Value::as_array) {
        Some(items) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": value.get("metadata").cloned().unwrap_or(json!({})),
            "items": items.iter().map(one).collect::<Vec<_>>(),
        }),
        None => one(value),
    }
}

/// A human age like kubectl's (`5s`, `3m`, `2h`, `4d`).
fn age(created: Option<&str>) -> String {
    let Some(ts) = created.and_then(|c| c.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - ts.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86_400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Evaluates a simple JSONPath (`.status.currentHolder.name`, `.spec.items[0].x`).
fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    for seg in path.trim_start_matches('.').split('.') {
        if seg.is_empty() {
            continue;
        }
        let (field, index) = match seg.split_once('[') {
            Some((f, rest)) => (f, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

fn cell(v: Option<&Value>, ty: &str) -> Value {
    match (v, ty) {
        (None, _) | (Some(Value::Null), _) => Value::Null,
        (Some(Value::String(s)), "date") => json!(age(Some(s))),
        (Some(Value::String(s)), _) => json!(s),
        (Some(other), _) => other.clone(),
    }
}

fn columns_and_cells(ty: &ResourceType, version: &str) -> (Vec<Value>, Vec<(String, String)>) {
    let col = |name: &str, t: &str, desc: &str| json!({"name": name, "type": t, "format": if name == "Name" {"name"} else {""}, "description": desc, "priority": 0});
    let mut defs = vec![col(
        "Name",
        "string",
        "Name must be unique within a namespace.",
    )];
    let mut paths = vec![(".metadata.name".to_string(), "string".to_string())];
    if let Some(cols) = ty.printer_columns.get(version) {
        let mut has_age = false;
        for c in cols {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            let t = c.get("type").and_then(Value::as_str).unwrap_or("string");
            let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or("");
            has_age |= path == ".metadata.creationTimestamp";
            let mut d = col(
                name,
                t,
                c.get("description").and_then(Value::as_str).unwrap_or(""),
            );
            d["priority"] = c.get("priority").cloned().unwrap_or(json!(0));
            defs.push(d);
            paths.push((path.to_string(), t.to_string()));
        }
        if !has_age && cols.is_empty() {
            defs.push(col("Age", "date", ""));
            paths.push((".metadata.creationTimestamp".into(), "date".into()));
        }
        return (defs, paths);
    }
    if ty.group.is_empty() && ty.plural == "pods" {
        defs.push(col("Ready", "string", ""));
        paths.push(("@ready".into(), "string".into()));
        defs.push(col("Status", "string", ""));
        paths.push((".status.phase".into(), "string".into()));
        defs.push(col("Restarts", "string", ""));
        paths.push(("@restarts".into(), "string".into()));
        defs.push(col("Age", "date", ""));
        paths.push((".metadata.creationTimestamp".into(), "date".into()));
        // Priority 1: shown by `-o wide`.
        for (name, path) in [("IP", "@podIP"), ("Node", "@nodeName")] {
            let mut d = col(name, "string", "");
            d["priority"] = json!(1);
            defs.push(d);
            paths.push((path.into(), "string".into()));
        }
        return (defs, paths);
    }
    defs.push(col("Age", "date", ""));
    paths.push((".metadata.creationTimestamp".into(), "date".into()));
    (defs, paths)
}

fn row(obj: &Value, paths: &[(String, String)], include_object: &str) -> Value {
    let cells: Vec<Value> = paths
        .iter()
        .map(|(p, t)| match p.as_str() {
            "@ready" => {
                let statuses = obj
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array);
                let total = obj
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let ready = statuses.map_or(0, |s| {
                    s.iter()
                        .filter(|c| c.get("ready") == Some(&json!(true)))
                        .count()
                });
                json!(format!("{ready}/{total}"))
            }
            // The pod printer of kube-apiserver prints "<none>" itself.
            "@podIP" | "@nodeName" => {
                let ptr = if p == "@podIP" {
                    "/status/podIP"
                } else {
                    "/spec/nodeName"
                };
                json!(obj.pointer(ptr).and_then(Value::as_str).unwrap_or("<none>"))
            }
            "@restarts" => json!(
                obj.pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .map_or(0, |s| s
                        .iter()
                        .filter_map(|c| c.get("restartCount")?.as_i64())
                        .sum::<i64>())
                    .to_string()
            ),
            _ => {
                let status = if obj.pointer("/metadata/deletionTimestamp").is_some()
                    && p == ".status.phase"
                {
                    Some(json!("Terminating"))
                } else {
                    None
                };
                status.unwrap_or_else(|| cell(json_path(obj, p), t))
            }
        })
        .collect();
    json!({"cells": cells, "object": row_object(obj, include_object)})
}

/// A row's `object` for `includeObject=None|Metadata|Object`.
pub(crate) fn row_object(obj: &Value, include_object: &str) -> Value {
    match include_object {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        }),
    }
}

/// Converts a get or list response into a Table.
pub fn to_table(
    ty: &ResourceType,
    version: &str,
    value: &Value,
    query: &HashMap<String, String>,
) -> Value {
    if let Some(table) = crate::printers::to_table(ty, value, query) {
        return table;
    }
    let (defs, paths) = columns_and_cells(ty, version);
    let include = query
        .get("includeObject")
        .map_or("Metadata", String::as_str);
    let (rows, meta) = match value.get("items").and_then(Value::as_array) {
        Some(items) => (
            items
                .iter()
                .map(|o| row(o, &paths, include))
                .collect::<Vec<_>>(),
            value.get("metadata").cloned().unwrap_or(json!({})),
        ),
        None => (
            vec![row(value, &paths, include)],
            json!({"resourceVersion": value.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}),
        ),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let v = json!({"status": {"currentHolder": {"name": "a"}, "xs": [{"y": 1}]}});
        assert_eq!(
            json_path(&v, ".status.currentHolder.name"),
            Some(&json!("a"))
        );
        assert_eq!(json_path(&v, ".status.xs[0].y"), Some(&json!(1)));
        assert_eq!(json_path(&v, ".status.nope"), None);
    }
}
