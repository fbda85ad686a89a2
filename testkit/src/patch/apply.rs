//! Server-side apply: field ownership, conflicts, forced takeover and removal of fields a
//! manager stopped applying, on top of the `fieldsV1` sets of [`super::managed_fields`].
//!
//! Lists merge as structured-merge-diff merges them for the built-in kinds (associative lists
//! by key, `finalizers` as a set, other lists atomic); see [`super::keys`].

use serde_json::{Map, Value, json};

use super::Target;
use super::keys::{self, ListKind};
use super::managed_fields::{
    Entry, FieldSet, applied_set, key_element, now_rfc3339, read_entries, set_of_object,
    value_element, write_entries,
};
use crate::errors::{ApiError, Cause};

/// The manager the real server charges with every field of an object that was never applied
/// nor tracked before the first apply.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Server-side apply through `subresource` (`status`, or `""` for the main resource): the
/// manager's `Apply` entry is recorded with that subresource, as the real server does.
pub fn server_side_apply_to(
    target: &Target<'_>,
    current: Option<&Value>,
    body: &[u8],
    manager: &str,
    force: bool,
    subresource: &str,
) -> Result<Value, ApiError> {
    let mut patch: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    let Some(patch_obj) = patch.as_object_mut() else {
        return Err(ApiError::bad_request(
            "error decoding YAML: the apply configuration must be an object",
        ));
    };
    if let Some(Value::Object(meta)) = patch_obj.get_mut("metadata") {
        // Clients may not set the server's bookkeeping through an apply configuration. A
        // resourceVersion stays: it is a precondition the caller checks against the store.
        meta.remove("managedFields");
    }
    check_identity(target, current, &patch)?;

    let mut live = match current {
        Some(c) => c.clone(),
        None => {
            let mut fresh =
                json!({"apiVersion": patch["apiVersion"], "kind": patch["kind"], "metadata": {}});
            fresh["metadata"]["name"] = json!(target.name);
            fresh
        }
    };
    let api_version = patch["apiVersion"].as_str().unwrap_or("").to_string();

    let mut entries = read_entries(&live);
    let entries_before = entries.clone();
    if current.is_some() && entries.is_empty() {
        let mut stripped = live.clone();
        if let Some(meta) = stripped.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let fields = set_of_object(&stripped);
        if !fields.is_empty() {
            entries.push(Entry {
                manager: BEFORE_FIRST_APPLY.into(),
                operation: "Update".into(),
                api_version: live["apiVersion"].as_str().unwrap_or("").to_string(),
                time: now_rfc3339(),
                subresource: String::new(),
                fields,
            });
        }
    }
    let applied = applied_set(&without_nulls(&patch));
    let is_mine =
        |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource == subresource;

    // Conflicts: fields another manager owns whose value this apply would change.
    let mut conflicts: Vec<(usize, String)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if is_mine(e) {
            continue;
        }
        let mut paths = Vec::new();
        find_conflicts(
            &applied,
            &e.fields,
            Some(&live),
            Some(&patch),
            "",
            &mut paths,
        );
        conflicts.extend(paths.into_iter().map(|p| (i, p)));
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(target, &entries, &conflicts));
    }

    let previous = entries
        .iter()
        .find(|e| is_mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    merge_value("", &mut live, &patch);

    // Ownership moves on force: the conflicting fields leave their old managers.
    let mut losers: Vec<usize> = conflicts.iter().map(|(i, _)| *i).collect();
    losers.dedup();
    for i in losers {
        let owned = entries[i].fields.clone();
        entries[i].fields = owned.difference(&applied_leaves_in(&applied, &owned));
    }
    let others = entries
        .iter()
        .filter(|e| !is_mine(e))
        .fold(FieldSet::default(), |acc, e| acc.union(&e.fields));
    let removed = previous.difference(&applied).difference(&others);
    remove_fields(&mut live, &removed);

    entries.retain(|e| !is_mine(e));
    entries.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version,
        time: now_rfc3339(),
        subresource: subresource.to_string(),
        fields: applied,
    });
    // An apply that changes neither the object nor any ownership is a no-op: the real server
    // keeps the entry's time then, so the caller sees an unchanged object.
    if let Some(current) = current
        && same_fields(&entries, &entries_before)
        && without_managed_fields(&live) == without_managed_fields(current)
    {
        return Ok(current.clone());
    }
    write_entries(&mut live, entries);
    Ok(live)
}

/// apiVersion and kind must be those of the target, and the name that of the URL.
fn check_identity(
    target: &Target<'_>,
    current: Option<&Value>,
    patch: &Value,
) -> Result<(), ApiError> {
    let api_version = patch["apiVersion"].as_str().unwrap_or("");
    let kind = patch["kind"].as_str().unwrap_or("");
    if api_version.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(
            "error decoding YAML: Object 'Kind' is missing or 'apiVersion' is missing in the apply configuration",
        ));
    }
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let expected_version = current
        .and_then(|c| c["apiVersion"].as_str())
        .map(String::from);
    if group != target.group
        || expected_version
            .as_deref()
            .is_some_and(|v| v != api_version)
    {
        let expected = expected_version.unwrap_or_else(|| format!("{}/<version>", target.group));
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {api_version}, expected: {expected}"
        )));
    }
    if kind != target.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the apply patch ({kind}) does not match the kind of the resource ({})",
            target.kind
        )));
    }
    if let Some(name) = patch.pointer("/metadata/name").and_then(Value::as_str)
        && name != target.name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            target.name
        )));
    }
    Ok(())
}

fn same_fields(a: &[Entry], b: &[Entry]) -> bool {
    let key = |e: &Entry| {
        (
            e.manager.clone(),
            e.operation.clone(),
            e.subresource.clone(),
            e.api_version.clone(),
            e.fields.to_fields_v1().to_string(),
        )
    };
    let mut a: Vec<_> = a.iter().filter(|e| !e.fields.is_empty()).map(key).collect();
    let mut b: Vec<_> = b.iter().filter(|e| !e.fields.is_empty()).map(key).collect();
    a.sort();
    b.sort();
    a == b
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(obj) => Value::Object(
            obj.iter()
                .filter(|(_, c)| !c.is_null())
                .map(|(k, c)| (k.clone(), without_nulls(c)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The child of `v` named by one path element.
fn child<'a>(v: Option<&'a Value>, element: &str) -> Option<&'a Value> {
    let v = v?;
    if let Some(name) = element.strip_prefix("f:") {
        return v.get(name);
    }
    let items = v.as_array()?;
    if let Some(key) = element.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items
            .iter()
            .find(|i| key.iter().all(|(k, kv)| i.get(k) == Some(kv)));
    }
    if let Some(value) = element.strip_prefix("v:") {
        let value: Value = serde_json::from_str(value).ok()?;
        return items.iter().find(|i| **i == value);
    }
    None
}

/// Paths (structured-merge-diff notation) that `applied` and `owned` share, where the applied
/// value differs from the live one.
fn find_conflicts(
    applied: &FieldSet,
    owned: &FieldSet,
    live: Option<&Value>,
    patch: Option<&Value>,
    prefix: &str,
    out: &mut Vec<String>,
) {
    for (element, a) in &applied.children {
        let Some(o) = owned.children.get(element) else {
            continue;
        };
        let path = format!("{prefix}{}", display(element));
        let live_child = child(live, element);
        let patch_child = child(patch, element);
        if a.children.is_empty() {
            if a.itself && o.itself && live_child != patch_child {
                out.push(path);
            }
        } else {
            find_conflicts(a, o, live_child, patch_child, &path, out);
        }
    }
}

/// The leaves of `applied` that `owned` also has: what a forced apply takes over.
fn applied_leaves_in(applied: &FieldSet, owned: &FieldSet) -> FieldSet {
    let mut out = FieldSet::default();
    for (element, a) in &applied.children {
        if let Some(o) = owned.children.get(element) {
            let sub = if a.children.is_empty() {
                if a.itself && o.itself {
                    FieldSet::leaf()
                } else {
                    FieldSet::default()
                }
            } else {
                applied_leaves_in(a, o)
            };
            if !sub.is_empty() {
                out.children.insert(element.clone(), sub);
            }
        }
    }
    out
}

fn display(element: &str) -> String {
    let set = FieldSet {
        itself: false,
        children: [(element.to_string(), FieldSet::leaf())]
            .into_iter()
            .collect(),
    };
    set.paths().into_iter().next().unwrap_or_default()
}

fn conflict_error(
    target: &Target<'_>,
    entries: &[Entry],
    conflicts: &[(usize, String)],
) -> ApiError {
    let who = |i: usize| {
        let e = &entries[i];
        let mut s = format!("{:?}", e.manager);
        if !e.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", e.subresource);
        }
        if e.operation == "Update" {
            s = format!("{s} using {}", e.api_version);
        }
        s
    };
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(i, path)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {}", who(*i)),
            field: path.clone(),
        })
        .collect();
    let message = if let [(i, path)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {path}",
            who(*i)
        )
    } else {
        let mut by_manager: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
        for (i, path) in conflicts {
            by_manager.entry(who(*i)).or_default().push(path);
        }
        let mut lines = Vec::new();
        for (m, paths) in by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let mut err = ApiError::apply_conflict(target.group, target.resource, target.name, causes);
    err.message = message;
    err
}

/// Merges an apply configuration into the live object.
fn merge_value(field: &str, live: &mut Value, patch: &Value) {
    match (live, patch) {
        (Value::Object(l), Value::Object(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    l.remove(k);
                    continue;
                }
                match l.get_mut(k) {
                    Some(lv) => merge_value(k, lv, pv),
                    None => {
                        l.insert(k.clone(), without_nulls(pv));
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(p)) => match keys::list_kind(field, p) {
            ListKind::Map(key_fields) => {
                for item in p {
                    let pos = key_element(item, &key_fields).and_then(|k| {
                        l.iter()
                            .position(|li| key_element(li, &key_fields).as_deref() == Some(&k))
                    });
                    match pos {
                        Some(pos) => merge_value("", &mut l[pos], item),
                        None => l.push(without_nulls(item)),
                    }
                }
            }
            ListKind::Set => {
                for item in p {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            ListKind::Atomic => *l = p.clone(),
        },
        (l, p) => *l = without_nulls(p),
    }
}

/// Removes the members of `removed` from `v` (containers only once nothing else is left).
fn remove_fields(v: &mut Value, removed: &FieldSet) {
    for (element, sub) in &removed.children {
        match v {
            Value::Object(obj) => {
                let Some(name) = element.strip_prefix("f:") else {
                    continue;
                };
                let Some(c) = obj.get_mut(name) else { continue };
                let was_empty = c.as_object().is_some_and(Map::is_empty);
                remove_fields(c, sub);
                // A map emptied by the removal goes too, as Go's omitempty drops it.
                let emptied = !was_empty && c.as_object().is_some_and(Map::is_empty);
                if (sub.itself && removable(c)) || emptied {
                    obj.remove(name);
                }
            }
            Value::Array(items) => {
                let pos = items.iter().position(|i| {
                    if let Some(key) = element.strip_prefix("k:") {
                        let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
                        !key.is_empty() && key.iter().all(|(k, kv)| i.get(k) == Some(kv))
                    } else {
                        value_element(i) == *element
                    }
                });
                let Some(pos) = pos else { continue };
                if element.starts_with("v:") {
                    items.remove(pos);
                    continue;
                }
                remove_fields(&mut items[pos], sub);
                if sub.itself {
                    items.remove(pos);
                }
            }
            _ => {}
        }
    }
}

/// Scalars and atomic values go; objects go only once emptied.
fn removable(v: &Value) -> bool {
    match v {
        Value::Object(obj) => obj.is_empty(),
        _ => true,
    }
}
