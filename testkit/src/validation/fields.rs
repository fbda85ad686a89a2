//! The fields a built-in kind knows: a body is decoded into its k8s-openapi type, as
//! kube-apiserver decodes it into its Go type. A wrongly typed field is a decoding error, and
//! a field the type does not have is reported so that it can be dropped (with a warning) or
//! refused (`fieldValidation=Strict`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::registry::ResourceType;

/// Decodes `obj` as `K` and returns it encoded again.
fn round_trip<K: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, String> {
    let typed: K = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The typed decoding of a kind's client view, when the kind has a k8s-openapi type here.
fn typed(ty: &ResourceType, view: &Value) -> Option<Result<Value, String>> {
    use k8s_openapi::api::{apps, batch, coordination, core, events, rbac};
    Some(match (ty.group.as_str(), ty.kind.as_str()) {
        ("coordination.k8s.io", "Lease") => round_trip::<coordination::v1::Lease>(view),
        ("", "Event") => round_trip::<core::v1::Event>(view),
        ("events.k8s.io", "Event") => round_trip::<events::v1::Event>(view),
        ("", "ConfigMap") => round_trip::<core::v1::ConfigMap>(view),
        ("", "Secret") => round_trip::<core::v1::Secret>(view),
        ("", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(view),
        ("", "Pod") => round_trip::<core::v1::Pod>(view),
        ("", "Service") => round_trip::<core::v1::Service>(view),
        ("apps", "Deployment") => round_trip::<apps::v1::Deployment>(view),
        ("apps", "ReplicaSet") => round_trip::<apps::v1::ReplicaSet>(view),
        ("apps", "StatefulSet") => round_trip::<apps::v1::StatefulSet>(view),
        ("apps", "DaemonSet") => round_trip::<apps::v1::DaemonSet>(view),
        ("batch", "Job") => round_trip::<batch::v1::Job>(view),
        ("batch", "CronJob") => round_trip::<batch::v1::CronJob>(view),
        ("rbac.authorization.k8s.io", "Role") => round_trip::<rbac::v1::Role>(view),
        ("rbac.authorization.k8s.io", "ClusterRole") => round_trip::<rbac::v1::ClusterRole>(view),
        ("rbac.authorization.k8s.io", "RoleBinding") => round_trip::<rbac::v1::RoleBinding>(view),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            round_trip::<rbac::v1::ClusterRoleBinding>(view)
        }
        _ => return None,
    })
}

/// Paths of `input` that `known` (its typed round trip) lost; null values are not fields.
fn lost(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (name, v) in i {
                let child = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                match k.get(name) {
                    Some(kv) => lost(v, kv, &child, out),
                    None if v.is_null() => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (v, kv)) in i.iter().zip(k).enumerate() {
                lost(v, kv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Removes one dotted path (with `[n]` indexes) from `v`.
fn remove(v: &mut Value, path: &str) {
    let mut cur = v;
    let mut segments: Vec<&str> = path.split('.').collect();
    let Some(last) = segments.pop() else { return };
    for seg in segments {
        let (name, index) = split_index(seg);
        let Some(next) = cur.get_mut(name) else {
            return;
        };
        cur = match index {
            Some(i) => match next.get_mut(i) {
                Some(item) => item,
                None => return,
            },
            None => next,
        };
    }
    let (name, index) = split_index(last);
    match index {
        Some(i) => {
            if let Some(item) = cur.get_mut(name).and_then(|a| a.get_mut(i)) {
                *item = Value::Null;
            }
        }
        None => {
            if let Some(o) = cur.as_object_mut() {
                o.remove(name);
            }
        }
    }
}

fn split_index(seg: &str) -> (&str, Option<usize>) {
    match seg.split_once('[') {
        Some((name, rest)) => (name, rest.trim_end_matches(']').parse().ok()),
        None => (seg, None),
    }
}

/// Decodes a built-in's client view: Err is the decoding error (a wrong type); Ok lists the
/// unknown fields, already removed from `view`.
pub fn prune_unknown(ty: &ResourceType, view: &mut Value) -> Result<Vec<String>, String> {
    let Some(result) = typed(ty, view) else {
        return Ok(Vec::new());
    };
    let known = match result {
        Ok(known) => known,
        // Go decodes a missing required field as its zero value and leaves it to validation;
        // the typed form cannot, so such a body is not judged here.
        Err(e) if e.starts_with("missing field") => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut unknown = Vec::new();
    lost(view, &known, "", &mut unknown);
    for path in &unknown {
        remove(view, path);
    }
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_lease_fields_are_found_and_removed() {
        let reg = crate::registry::Registry::builtins();
        let ty = reg
            .lookup("coordination.k8s.io", "v1", "leases")
            .expect("leases");
        let mut lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "l", "junk": 1, "labels": null},
            "spec": {"holderIdentity": "a", "bogus": {"x": 1}}, "extra": true});
        let mut unknown = prune_unknown(&ty, &mut lease).expect("decodes");
        unknown.sort();
        assert_eq!(unknown, ["extra", "metadata.junk", "spec.bogus"]);
        assert_eq!(lease["spec"], json!({"holderIdentity": "a"}));
        let mut bad = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": "15"}});
        assert!(prune_unknown(&ty, &mut bad).is_err());
        let reg_ty = reg.lookup("", "v1", "events").expect("events");
        let mut no_involved =
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}});
        assert_eq!(prune_unknown(&reg_ty, &mut no_involved), Ok(Vec::new()));
    }
}
