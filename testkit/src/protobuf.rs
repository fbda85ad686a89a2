//! Decoding of the few protobuf request bodies kubectl sends with its typed clients
//! (`kubectl auth can-i`, `kubectl create configmap|secret|namespace`). Responses are always
//! JSON, which those clients also accept.

use serde_json::{Map, Value, json};

use crate::errors::ApiError;

/// The `Content-Type` kubectl's typed clients use.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Debug)]
enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

/// `(field number, value)` pairs of one message.
fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => {
                varint(buf, &mut pos)?;
                Field::Varint
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                let bytes = &buf[pos..end];
                pos = end;
                Field::Bytes(bytes)
            }
            1 => {
                pos += 8;
                Field::Varint
            }
            5 => {
                pos += 4;
                Field::Varint
            }
            _ => return None,
        };
        out.push((num, f));
    }
    Some(out)
}

fn string(f: &Field<'_>) -> String {
    match f {
        Field::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Field::Varint => String::new(),
    }
}

fn message<'a>(f: &Field<'a>) -> &'a [u8] {
    match f {
        Field::Bytes(b) => b,
        Field::Varint => &[],
    }
}

/// A `map<string, string>` entry (key = 1, value = 2); `bytes_as_base64` for `map<string, bytes>`.
fn map_entry(buf: &[u8], map: &mut Map<String, Value>, bytes_as_base64: bool) {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, f) in fields(buf).unwrap_or_default() {
        match n {
            1 => key = string(&f),
            2 if bytes_as_base64 => {
                use base64::Engine;
                value = json!(base64::engine::general_purpose::STANDARD.encode(message(&f)));
            }
            2 => value = json!(string(&f)),
            _ => {}
        }
    }
    map.insert(key, value);
}

/// `ObjectMeta`: the fields a create sends.
fn object_meta(buf: &[u8]) -> Value {
    let mut meta = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for (n, f) in fields(buf).unwrap_or_default() {
        match n {
            1 => {
                meta.insert("name".into(), json!(string(&f)));
            }
            2 => {
                meta.insert("generateName".into(), json!(string(&f)));
            }
            3 => {
                meta.insert("namespace".into(), json!(string(&f)));
            }
            6 => {
                meta.insert("resourceVersion".into(), json!(string(&f)));
            }
            11 => map_entry(message(&f), &mut labels, false),
            12 => map_entry(message(&f), &mut annotations, false),
            14 => finalizers.push(json!(string(&f))),
            _ => {}
        }
    }
    meta.retain(|_, v| v.as_str().is_none_or(|s| !s.is_empty()));
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Value::Object(meta)
}

fn attributes(buf: &[u8], names: &[(u64, &str)]) -> Value {
    let mut out = Map::new();
    for (n, f) in fields(buf).unwrap_or_default() {
        if let Some((_, name)) = names.iter().find(|(k, _)| *k == n) {
            out.insert((*name).into(), json!(string(&f)));
        }
    }
    Value::Object(out)
}

/// A message of string fields: `(number, name, repeated)`.
fn strings(buf: &[u8], names: &[(u64, &str, bool)]) -> Value {
    let mut out = Map::new();
    for (n, f) in fields(buf).unwrap_or_default() {
        if let Some((_, name, repeated)) = names.iter().find(|(k, _, _)| *k == n) {
            if *repeated {
                let entry = out.entry((*name).to_string()).or_insert_with(|| json!([]));
                if let Some(a) = entry.as_array_mut() {
                    a.push(json!(string(&f)));
                }
            } else if !string(&f).is_empty() {
                // Go's JSON omits empty optional strings (`omitempty`).
                out.insert((*name).into(), json!(string(&f)));
            }
        }
    }
    Value::Object(out)
}

const POLICY_RULE: &[(u64, &str, bool)] = &[
    (1, "verbs", true),
    (2, "apiGroups", true),
    (3, "resources", true),
    (4, "resourceNames", true),
    (5, "nonResourceURLs", true),
];
const SUBJECT: &[(u64, &str, bool)] = &[
    (1, "kind", false),
    (2, "apiGroup", false),
    (3, "name", false),
    (4, "namespace", false),
];
const ROLE_REF: &[(u64, &str, bool)] = &[
    (1, "apiGroup", false),
    (2, "kind", false),
    (3, "name", false),
];

fn typed(kind: &str, raw: &[u8]) -> Option<Value> {
    let fs = fields(raw)?;
    let mut obj = Map::new();
    match kind {
        "SelfSubjectAccessReview" => {
            let mut spec = Map::new();
            for (n, f) in &fs {
                match n {
                    1 => {
                        obj.insert("metadata".into(), object_meta(message(f)));
                    }
                    2 => {
                        for (sn, sf) in fields(message(f))? {
                            match sn {
                                1 => {
                                    spec.insert(
                                        "resourceAttributes".into(),
                                        attributes(
                                            message(&sf),
                                            &[
                                                (1, "namespace"),
                                                (2, "verb"),
                                                (3, "group"),
                                                (4, "version"),
                                                (5, "resource"),
                                                (6, "subresource"),
                                                (7, "name"),
                                            ],
                                        ),
                                    );
                                }
                                2 => {
                                    spec.insert(
                                        "nonResourceAttributes".into(),
                                        attributes(message(&sf), &[(1, "path"), (2, "verb")]),
                                    );
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            obj.insert("spec".into(), Value::Object(spec));
        }
        "SelfSubjectRulesReview" | "SelfSubjectReview" => {
            for (n, f) in &fs {
                match (kind, n) {
                    (_, 1) => {
                        obj.insert("metadata".into(), object_meta(message(f)));
                    }
                    ("SelfSubjectRulesReview", 2) => {
                        obj.insert("spec".into(), attributes(message(f), &[(1, "namespace")]));
                    }
                    _ => {}
                }
            }
        }
        "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount" => {
            let (mut data, mut binary, mut string_data) = (Map::new(), Map::new(), Map::new());
            for (n, f) in &fs {
                match (kind, n) {
                    (_, 1) => {
                        obj.insert("metadata".into(), object_meta(message(f)));
                    }
                    ("ConfigMap", 2) => map_entry(message(f), &mut data, false),
                    ("ConfigMap", 3) => map_entry(message(f), &mut binary, true),
                    ("Secret", 2) => map_entry(message(f), &mut data, true),
                    ("Secret", 3) => {
                        obj.insert("type".into(), json!(string(f)));
                    }
                    ("Secret", 4) => map_entry(message(f), &mut string_data, false),
                    _ => {}
                }
            }
            if !data.is_empty() {
                obj.insert("data".into(), Value::Object(data));
            }
            if !binary.is_empty() {
                obj.insert("binaryData".into(), Value::Object(binary));
            }
            if !string_data.is_empty() {
                obj.insert("stringData".into(), Value::Object(string_data));
            }
        }
        "Role" | "ClusterRole" => {
            let mut rules = Vec::new();
            for (n, f) in &fs {
                match n {
                    1 => {
                        obj.insert("metadata".into(), object_meta(message(f)));
                    }
                    2 => rules.push(strings(message(f), POLICY_RULE)),
                    _ => {}
                }
            }
            obj.insert("rules".into(), Value::Array(rules));
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let mut subjects = Vec::new();
            for (n, f) in &fs {
                match n {
                    1 => {
                        obj.insert("metadata".into(), object_meta(message(f)));
                    }
                    2 => subjects.push(strings(message(f), SUBJECT)),
                    3 => {
                        obj.insert("roleRef".into(), strings(message(f), ROLE_REF));
                    }
                    _ => {}
                }
            }
            obj.insert("subjects".into(), Value::Array(subjects));
        }
        _ => return None,
    }
    Some(Value::Object(obj))
}

/// Decodes a protobuf request body (`k8s\0` + `runtime.Unknown`) into JSON.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let unsupported = |what: &str| {
        ApiError::unsupported_media_type(format!(
            "the testkit server decodes protobuf only for SelfSubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview, ConfigMap, Secret, Namespace, ServiceAccount and RBAC kinds ({what}); send application/json"
        ))
    };
    let rest = body
        .strip_prefix(b"k8s\x00")
        .ok_or_else(|| unsupported("missing the k8s envelope"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(rest).ok_or_else(|| unsupported("bad envelope"))? {
        match n {
            1 => {
                for (tn, tf) in fields(message(&f)).unwrap_or_default() {
                    match tn {
                        1 => api_version = string(&tf),
                        2 => kind = string(&tf),
                        _ => {}
                    }
                }
            }
            2 => raw = message(&f),
            _ => {}
        }
    }
    let mut obj = typed(&kind, raw).ok_or_else(|| unsupported(&kind))?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_self_subject_access_review() {
        let attrs = [field(1, b"default"), field(2, b"create"), field(5, b"pods")].concat();
        let spec = field(1, &attrs);
        let raw = field(2, &spec);
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [b"k8s\x00".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let v = decode(&body).expect("decodes");
        assert_eq!(v["kind"], "SelfSubjectAccessReview");
        assert_eq!(v["spec"]["resourceAttributes"]["verb"], "create");
        assert_eq!(v["spec"]["resourceAttributes"]["resource"], "pods");
        assert_eq!(v["spec"]["resourceAttributes"]["namespace"], "default");
    }

    #[test]
    fn decodes_a_role_binding_without_empty_fields() {
        let subject = [
            field(1, b"ServiceAccount"),
            field(2, b""),
            field(3, b"bot"),
            field(4, b"default"),
        ]
        .concat();
        let role_ref = [
            field(1, b"rbac.authorization.k8s.io"),
            field(2, b"Role"),
            field(3, b"r"),
        ]
        .concat();
        let meta = [field(1, b"rb"), field(2, b"")].concat();
        let raw = [field(1, &meta), field(2, &subject), field(3, &role_ref)].concat();
        let type_meta = [
            field(1, b"rbac.authorization.k8s.io/v1"),
            field(2, b"RoleBinding"),
        ]
        .concat();
        let body = [b"k8s\x00".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let v = decode(&body).expect("decodes");
        assert_eq!(v["metadata"], json!({"name": "rb"}));
        assert_eq!(
            v["subjects"],
            json!([{"kind": "ServiceAccount", "name": "bot", "namespace": "default"}])
        );
        assert_eq!(v["roleRef"]["name"], "r");
    }
}
