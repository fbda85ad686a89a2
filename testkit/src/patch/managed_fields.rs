//! `metadata.managedFields`: field sets in `FieldsV1` notation and their bookkeeping.
//!
//! A [`FieldSet`] is the tree structured-merge-diff serialises as `fieldsV1`:
//! `f:<name>` for object fields, `k:{"name":"x"}` for keyed list items, `v:<json>` for
//! set-list items, and `.` when the node itself (not only its children) is a member.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::keys;

/// A set of field paths, as a tree keyed by path elements (`f:spec`, `k:{...}`, `v:...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Whether the node itself is a member (`.` in `fieldsV1`, or a leaf `{}`).
    pub itself: bool,
    /// Children by path element.
    pub children: BTreeMap<String, FieldSet>,
}

/// Metadata fields the server sets: nobody manages them (structured-merge-diff strips them).
const STRIPPED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

/// Object fields that are free-form maps: the map itself is a member (`.`), as for Go maps.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "matchLabels",
    "data",
    "binaryData",
    "stringData",
    "nodeSelector",
    "selector",
    "limits",
    "requests",
];

impl FieldSet {
    /// A leaf member.
    pub fn leaf() -> Self {
        Self {
            itself: true,
            children: BTreeMap::new(),
        }
    }

    /// True when the set has no member at all.
    pub fn is_empty(&self) -> bool {
        !self.itself && self.children.values().all(FieldSet::is_empty)
    }

    /// Parses a `fieldsV1` object; anything unexpected is treated as a leaf.
    pub fn from_fields_v1(v: &Value) -> Self {
        let mut set = FieldSet::default();
        match v.as_object() {
            Some(obj) if obj.is_empty() => set.itself = true,
            Some(obj) => {
                for (k, child) in obj {
                    if k == "." {
                        set.itself = true;
                    } else {
                        set.children
                            .insert(k.clone(), FieldSet::from_fields_v1(child));
                    }
                }
            }
            None => set.itself = true,
        }
        set
    }

    /// Renders the set as a `fieldsV1` object.
    pub fn to_fields_v1(&self) -> Value {
        let mut obj = Map::new();
        let children: Vec<_> = self
            .children
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .collect();
        if self.itself && !children.is_empty() {
            obj.insert(".".into(), json!({}));
        }
        for (k, c) in children {
            obj.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(obj)
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.itself |= other.itself;
        for (k, c) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    /// `self \ other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            itself: self.itself && !other.itself,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let rest = match other.children.get(k) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(k.clone(), rest);
            }
        }
        out
    }

    /// `self ∩ other`.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            itself: self.itself && other.itself,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let both = c.intersection(o);
                if !both.is_empty() {
                    out.children.insert(k.clone(), both);
                }
            }
        }
        out
    }

    /// Member paths in dotted form (`.spec.replicas`, `.spec.containers[name="a"].image`), sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_paths(String::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: String, out: &mut Vec<String>) {
        if self.itself && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            c.collect_paths(format!("{prefix}{}", element_display(k)), out);
        }
    }
}

/// How structured-merge-diff prints one path element in conflict messages.
fn element_display(element: &str) -> String {
    if let Some(name) = element.strip_prefix("f:") {
        format!(".{name}")
    } else if let Some(key) = element.strip_prefix("k:") {
        let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
        let inner: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("[{}]", inner.join(","))
    } else if let Some(v) = element.strip_prefix("v:") {
        format!("[={v}]")
    } else if let Some(i) = element.strip_prefix("i:") {
        format!("[{i}]")
    } else {
        element.to_string()
    }
}

/// The path element of a keyed list item: `k:{"name":"x"}` with keys in sorted order.
pub fn key_element(item: &Value, key_fields: &[&str]) -> Option<String> {
    let mut key = Map::new();
    for f in key_fields {
        key.insert((*f).to_string(), item.get(*f)?.clone());
    }
    // serde_json's Map keeps sorted order, matching the real server's output.
    Some(format!("k:{}", Value::Object(key)))
}

/// The path element of a set-list item: `v:"x"`.
pub fn value_element(item: &Value) -> String {
    format!("v:{item}")
}

/// All fields present in `obj` (an apply configuration or a stored object), stripped of the
/// server-managed metadata.
pub fn set_of_object(obj: &Value) -> FieldSet {
    let mut set = set_of_value("", obj, true, false);
    strip(&mut set);
    set.itself = false;
    set
}

/// The set an apply configuration claims: like [`set_of_object`], but maps and lists are not
/// members themselves when they have members (structured-merge-diff's `ToFieldSet`; only
/// list items keep their `.`).
pub fn applied_set(obj: &Value) -> FieldSet {
    let mut set = set_of_object(obj);
    drop_container_members(&mut set);
    set
}

fn drop_container_members(set: &mut FieldSet) {
    for (element, child) in set.children.iter_mut() {
        if element.starts_with("f:") && !child.children.is_empty() {
            child.itself = false;
        }
        drop_container_members(child);
    }
}

fn strip(set: &mut FieldSet) {
    set.children.remove("f:apiVersion");
    set.children.remove("f:kind");
    if let Some(meta) = set.children.get_mut("f:metadata") {
        meta.itself = false;
        for f in STRIPPED_METADATA {
            meta.children.remove(&format!("f:{f}"));
        }
    }
    set.children.retain(|_, c| !c.is_empty());
}

/// The field set of `v` found under field `name`. `root` marks the top-level object.
/// `custom`: the object is a custom resource, whose new objects and lists are members
/// themselves (`.`), as structured-merge-diff tracks CRD schemas.
fn set_of_value(name: &str, v: &Value, root: bool, custom: bool) -> FieldSet {
    match v {
        Value::Object(obj) => {
            let mut set = FieldSet {
                itself: !root && (custom || obj.is_empty() || MAP_FIELDS.contains(&name)),
                children: BTreeMap::new(),
            };
            for (k, child) in obj {
                set.children
                    .insert(format!("f:{k}"), set_of_value(k, child, false, custom));
            }
            set
        }
        Value::Array(items) => set_of_list(name, items, custom),
        _ => FieldSet::leaf(),
    }
}

fn set_of_list(name: &str, items: &[Value], custom: bool) -> FieldSet {
    match keys::list_kind(name, items) {
        keys::ListKind::Map(key_fields) => {
            // Associative lists are tracked by their items only, as structured-merge-diff does.
            let mut set = FieldSet {
                itself: custom || items.is_empty(),
                children: BTreeMap::new(),
            };
            for item in items {
                let Some(element) = key_element(item, &key_fields) else {
                    return FieldSet::leaf();
                };
                let mut child = set_of_value("", item, false, custom);
                child.itself = true;
                set.children.insert(element, child);
            }
            set
        }
        keys::ListKind::Set => {
            let mut set = FieldSet::leaf();
            for item in items {
                set.children.insert(value_element(item), FieldSet::leaf());
            }
            set
        }
        keys::ListKind::Atomic => FieldSet::leaf(),
    }
}

/// The fields of `new` that are absent from or different in `old`.
pub fn changed_fields(old: &Value, new: &Value, custom: bool) -> FieldSet {
    let mut set = changed_value("", old, new, custom);
    strip(&mut set);
    set.itself = false;
    set
}

fn changed_value(name: &str, old: &Value, new: &Value, custom: bool) -> FieldSet {
    if old == new {
        return FieldSet::default();
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut set = FieldSet::default();
            for (k, nv) in n {
                let child = match o.get(k) {
                    Some(ov) => changed_value(k, ov, nv, custom),
                    None => set_of_value(k, nv, false, custom),
                };
                if !child.is_empty() {
                    set.children.insert(format!("f:{k}"), child);
                }
            }
            set
        }
        (Value::Array(o), Value::Array(n)) => match keys::list_kind(name, n) {
            keys::ListKind::Map(key_fields) => {
                let mut set = FieldSet::default();
                for item in n {
                    let Some(element) = key_element(item, &key_fields) else {
                        return FieldSet::leaf();
                    };
                    let previous = o
                        .iter()
                        .find(|oi| key_element(oi, &key_fields).as_deref() == Some(&element));
                    let child = match previous {
                        Some(prev) => changed_value("", prev, item, custom),
                        None => {
                            let mut c = set_of_value("", item, false, custom);
                            c.itself = true;
                            c
                        }
                    };
                    if !child.is_empty() {
                        set.children.insert(element, child);
                    }
                }
                set
            }
            keys::ListKind::Set => {
                let mut set = FieldSet::default();
                for item in n {
                    if !o.contains(item) {
                        set.children.insert(value_element(item), FieldSet::leaf());
                    }
                }
                set
            }
            keys::ListKind::Atomic => FieldSet::leaf(),
        },
        _ => set_of_value(name, new, false, custom),
    }
}

/// RFC 3339 time with second precision, as `metav1.Time` serialises.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

/// One parsed `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `manager`.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `apiVersion` of the object when written.
    pub api_version: String,
    /// `time`.
    pub time: String,
    /// `subresource`, empty for the main resource.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl Entry {
    /// Parses one entry of `metadata.managedFields`.
    pub fn from_json(v: &Value) -> Self {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Self {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            time: s("time"),
            subresource: s("subresource"),
            fields: v
                .get("fieldsV1")
                .map(FieldSet::from_fields_v1)
                .unwrap_or_default(),
        }
    }

    /// Renders the entry as the API server does.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("manager".into(), json!(self.manager));
        obj.insert("operation".into(), json!(self.operation));
        obj.insert("apiVersion".into(), json!(self.api_version));
        obj.insert("time".into(), json!(self.time));
        obj.insert("fieldsType".into(), json!("FieldsV1"));
        obj.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            obj.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(obj)
    }

    fn same_slot(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// The entries of `obj`'s `metadata.managedFields`.
pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Entry::from_json).collect())
        .unwrap_or_default()
}

/// Writes `entries` (dropping empty ones) to `obj`'s `metadata.managedFields`.
pub fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| e.to_json())
        .collect();
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Who writes: one `managedFields` slot is (manager, operation, subresource).
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// Field manager name.
    pub manager: &'a str,
    /// `Apply` or `Update`.
    pub operation: &'a str,
    /// Subresource, empty for the main resource.
    pub subresource: &'a str,
    /// `apiVersion` of the written object.
    pub api_version: &'a str,
}

/// Records a write by `writer` owning `owned`: added to (or, with `replace`, replacing) the
/// writer's entry and taken away from every other entry; `removed` fields leave all sets.
pub fn record(
    entries: &mut Vec<Entry>,
    writer: &Writer<'_>,
    owned: &FieldSet,
    removed: &FieldSet,
    replace: bool,
) {
    let time = now_rfc3339();
    let mut found = false;
    for e in entries.iter_mut() {
        if e.same_slot(writer.manager, writer.operation, writer.subresource) {
            found = true;
            let base = if replace {
                owned.clone()
            } else {
                e.fields.union(owned)
            };
            e.fields = base.difference(removed);
            e.time = time.clone();
            e.api_version = writer.api_version.to_string();
        } else {
            e.fields = e.fields.difference(owned).difference(removed);
        }
    }
    if !found {
        entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: writer.operation.to_string(),
            api_version: writer.api_version.to_string(),
            time,
            subresource: writer.subresource.to_string(),
            fields: owned.difference(removed),
        });
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Whether `obj` is a custom resource, judged by its API group: built-in groups have no dot
/// or end in `.k8s.io`.
fn is_custom(obj: &Value) -> bool {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    match api_version.rsplit_once('/') {
        Some((group, _)) => group.contains('.') && !group.ends_with(".k8s.io"),
        None => false,
    }
}

/// See [`super::track_update`].
pub fn track_update(old: Option<&Value>, new: &mut Value, manager: &str, subresource: &str) {
    let mut entries = match old {
        // Managed fields a client sends are ignored on update unless they differ; keeping the
        // stored ones is what the server does for clients that echo them back.
        Some(old) => read_entries(old),
        None => Vec::new(),
    };
    if old.is_none() {
        // On create the client may send managedFields; the server keeps well-formed ones.
        entries = read_entries(new);
    }
    let mut old_clean = old.cloned().unwrap_or_else(|| json!({}));
    let mut new_clean = new.clone();
    for v in [&mut old_clean, &mut new_clean] {
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    }
    let changed = changed_fields(&old_clean, &new_clean, is_custom(new));
    let removed = set_of_object(&old_clean).difference(&set_of_object(&new_clean));
    let api_version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !changed.is_empty() || !removed.is_empty() {
        let writer = Writer {
            manager,
            operation: "Update",
            subresource,
            api_version: &api_version,
        };
        record(&mut entries, &writer, &changed, &removed, false);
    }
    write_entries(new, entries);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn manager_fields(obj: &Value, manager: &str) -> Option<Value> {
        obj["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager)
            .map(|e| e["fieldsV1"].clone())
    }

    #[test]
    fn create_records_all_fields_in_fields_v1_notation() {
        let mut obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "default", "uid": "u", "labels": {"app": "x"},
                         "finalizers": ["a/b"]},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "c", "image": "nginx", "env": [{"name": "A", "value": "1"}]}
            ]}}}
        });
        track_update(None, &mut obj, "kubectl-create", "");
        let entry = &obj["metadata"]["managedFields"][0];
        assert_eq!(entry["manager"], "kubectl-create");
        assert_eq!(entry["operation"], "Update");
        assert_eq!(entry["apiVersion"], "apps/v1");
        assert_eq!(entry["fieldsType"], "FieldsV1");
        assert!(entry.get("subresource").is_none());
        assert!(entry["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            entry["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}, "f:finalizers": {".": {}, "v:\"a/b\"": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {},
                        "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}}}
                }}}}
            })
        );
    }

    #[test]
    fn update_moves_changed_fields_and_drops_removed_ones() {
        let mut v1 = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        track_update(None, &mut v1, "creator", "");
        let mut v2 = v1.clone();
        v2["metadata"]["labels"]["a"] = json!("changed");
        v2["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("b");
        track_update(Some(&v1), &mut v2, "editor", "");
        assert_eq!(
            manager_fields(&v2, "creator").unwrap(),
            json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {}}})
        );
        assert_eq!(
            manager_fields(&v2, "editor").unwrap(),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}})
        );
    }

    #[test]
    fn custom_resources_mark_new_objects_and_lists_as_members() {
        let mut obj = json!({"apiVersion": "coordination.kube-zen.io/v1alpha1", "kind": "LeaderPolicy",
            "metadata": {"name": "p"}, "spec": {"leaseDurationSeconds": 15},
            "status": {"conditions": [{"type": "Valid", "status": "True"}]}});
        track_update(None, &mut obj, "m", "");
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {".": {}, "f:leaseDurationSeconds": {}},
                   "f:status": {".": {}, "f:conditions": {".": {},
                       "k:{\"type\":\"Valid\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
        );
    }

    #[test]
    fn status_subresource_entry_is_separate() {
        let mut v1 =
            json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"x": 1}});
        track_update(None, &mut v1, "m", "");
        let mut v2 = v1.clone();
        v2["status"] = json!({"phase": "Stable"});
        track_update(Some(&v1), &mut v2, "m", "status");
        let entries = v2["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["subresource"], "status");
        assert_eq!(entries[1]["fieldsV1"], json!({"f:status": {"f:phase": {}}}));
    }

    #[test]
    fn no_change_keeps_entries_untouched() {
        let mut v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        track_update(None, &mut v1, "a", "");
        let mut v2 = v1.clone();
        track_update(Some(&v1), &mut v2, "b", "");
        assert_eq!(
            v1["metadata"]["managedFields"],
            v2["metadata"]["managedFields"]
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:x": {}}});
        assert_eq!(FieldSet::from_fields_v1(&v).to_fields_v1(), v);
    }

    #[test]
    fn paths_render_like_structured_merge_diff() {
        let set = FieldSet::from_fields_v1(&json!({"f:spec": {"f:replicas": {},
            "f:containers": {"k:{\"name\":\"c\"}": {"f:image": {}}}}}));
        assert_eq!(
            set.paths(),
            vec![".spec.containers[name=\"c\"].image", ".spec.replicas"]
        );
    }
}
