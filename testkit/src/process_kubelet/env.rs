//! A container's environment as the kubelet builds it: literals, downward-API `fieldRef`s,
//! ConfigMap and Secret references, and `$(VAR)` expansion in values, command and args.

use std::collections::BTreeMap;

use serde_json::Value;

/// Looks up ConfigMaps and Secrets (`data` values; Secrets' decoded from base64).
pub trait Sources {
    /// `key` of ConfigMap `name`.
    fn config_map(&self, name: &str, key: &str) -> Option<String>;
    /// `key` of Secret `name`.
    fn secret(&self, name: &str, key: &str) -> Option<String>;
    /// Every key of ConfigMap (`secret` false) or Secret `name`.
    fn all(&self, name: &str, secret: bool) -> Vec<(String, String)>;
}

/// Why an env var cannot be built (the container does not start, as `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A `fieldRef` the kubelet does not support.
    #[error("unsupported fieldPath {0:?}")]
    FieldPath(String),
    /// A referenced ConfigMap/Secret key that is missing and not optional.
    #[error("couldn't find key {key} in {kind} {name}")]
    MissingKey {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The key.
        key: String,
    },
}

/// The value of a downward-API field path of `pod`.
pub fn field_path(pod: &Value, path: &str) -> Result<String, EnvError> {
    let s = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let keyed = |prefix: &str, map: &str| {
        let key = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(
            pod.pointer(map)
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    Ok(match path {
        "metadata.name" => s("/metadata/name"),
        "metadata.namespace" => s("/metadata/namespace"),
        "metadata.uid" => s("/metadata/uid"),
        "spec.nodeName" => s("/spec/nodeName"),
        "spec.serviceAccountName" => s("/spec/serviceAccountName"),
        "status.podIP" => s("/status/podIP"),
        "status.hostIP" => s("/status/hostIP"),
        "metadata.labels" => format_map(pod.pointer("/metadata/labels")),
        "metadata.annotations" => format_map(pod.pointer("/metadata/annotations")),
        other => keyed("metadata.annotations", "/metadata/annotations")
            .or_else(|| keyed("metadata.labels", "/metadata/labels"))
            .ok_or_else(|| EnvError::FieldPath(other.to_string()))?,
    })
}

/// A labels/annotations map as the downward API writes it: `key="value"` lines, sorted, with the
/// value quoted as Go's `%q` does.
pub fn format_map(map: Option<&Value>) -> String {
    let Some(m) = map.and_then(Value::as_object) else {
        return String::new();
    };
    let sorted: BTreeMap<&String, &Value> = m.iter().collect();
    sorted
        .into_iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap_or("");
            // A JSON string literal matches Go's %q for the printable text labels hold.
            format!("{k}={}", serde_json::to_string(v).unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `$(VAR)` from `env`; `$$` is a literal `$`, and unknown references stay as written.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's env from `envFrom` then `env`, in order, each value expanded against the
/// ones before it (on top of `base`).
pub fn container_env(
    pod: &Value,
    container: &Value,
    base: &[(String, String)],
    sources: &dyn Sources,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = base.to_vec();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(x, _)| *x != k);
        env.push((k, v));
    };
    for from in container
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = from.get("prefix").and_then(Value::as_str).unwrap_or("");
        for (secret, field) in [(false, "configMapRef"), (true, "secretRef")] {
            if let Some(name) = from
                .pointer(&format!("/{field}/name"))
                .and_then(Value::as_str)
            {
                for (k, v) in sources.all(name, secret) {
                    set(&mut env, format!("{prefix}{k}"), v);
                }
            }
        }
    }
    for var in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = var.get("name").and_then(Value::as_str) else {
            continue;
        };
        let value = if let Some(v) = var.get("value").and_then(Value::as_str) {
            expand(v, &env)
        } else if let Some(from) = var.get("valueFrom") {
            match value_from(pod, from, sources)? {
                Some(v) => v,
                None => continue,
            }
        } else {
            String::new()
        };
        set(&mut env, name.to_string(), value);
    }
    Ok(env)
}

fn value_from(
    pod: &Value,
    from: &Value,
    sources: &dyn Sources,
) -> Result<Option<String>, EnvError> {
    if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
        return field_path(pod, path).map(Some);
    }
    for (kind, field, secret) in [
        ("ConfigMap", "configMapKeyRef", false),
        ("Secret", "secretKeyRef", true),
    ] {
        let Some(r) = from.get(field) else { continue };
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let key = r.get("key").and_then(Value::as_str).unwrap_or("");
        let found = if secret {
            sources.secret(name, key)
        } else {
            sources.config_map(name, key)
        };
        return match found {
            Some(v) => Ok(Some(v)),
            None if r.get("optional") == Some(&Value::Bool(true)) => Ok(None),
            None => Err(EnvError::MissingKey {
                kind,
                name: name.to_string(),
                key: key.to_string(),
            }),
        };
    }
    // resourceFieldRef: no resources are accounted here.
    Ok(Some(String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct NoSources;
    impl Sources for NoSources {
        fn config_map(&self, name: &str, key: &str) -> Option<String> {
            (name == "cm" && key == "k").then(|| "from-cm".to_string())
        }
        fn secret(&self, _: &str, _: &str) -> Option<String> {
            None
        }
        fn all(&self, _: &str, _: bool) -> Vec<(String, String)> {
            vec![("A".into(), "1".into())]
        }
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u-1",
                "labels": {"app": "x", "tier": "b"},
                "annotations": {"zen-lead/pool": "pool-a"}},
               "spec": {"nodeName": "node"}})
    }

    #[test]
    fn expansion_follows_the_kubelet_rules() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$(B)", &env), "$(B)");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$A and $", &env), "$A and $");
        assert_eq!(expand("$(A", &env), "$(A");
    }

    #[test]
    fn field_refs_and_order() {
        let c = json!({"envFrom": [{"configMapRef": {"name": "all"}, "prefix": "P_"}],
            "env": [
            {"name": "POOL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['zen-lead/pool']"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}},
            {"name": "BOTH", "value": "$(POOL)/$(NODE)"},
        ]});
        let env = container_env(&pod(), &c, &[], &NoSources).expect("env");
        let get = |k: &str| env.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(get("P_A"), Some("1"));
        assert_eq!(get("POOL"), Some("pool-a"));
        assert_eq!(get("APP"), Some("x"));
        assert_eq!(get("NODE"), Some("node"));
        assert_eq!(get("UID"), Some("u-1"));
        assert_eq!(get("CM"), Some("from-cm"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("BOTH"), Some("pool-a/node"));
        let missing = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]});
        assert!(container_env(&pod(), &missing, &[], &NoSources).is_err());
    }

    #[test]
    fn labels_file_format() {
        assert_eq!(
            format_map(pod().pointer("/metadata/labels")),
            "app=\"x\"\ntier=\"b\""
        );
    }
}
