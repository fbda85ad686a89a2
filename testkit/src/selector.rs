//! Label and field selectors as kube-apiserver parses them.

use serde_json::Value;

use crate::errors::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::Eq(v), Some(x)) => v == x,
            (Op::Eq(_), None) => false,
            // As in kube-apiserver, `!=` matches objects without the key.
            (Op::NotEq(v), x) => x != Some(v.as_str()),
            (Op::In(vs), Some(x)) => vs.iter().any(|v| v == x),
            (Op::In(_), None) => false,
            (Op::NotIn(vs), x) => x.is_none_or(|x| !vs.iter().any(|v| v == x)),
            (Op::Exists, x) => x.is_some(),
            (Op::NotExists, x) => x.is_none(),
        }
    }
}

/// A parsed label selector (`a=b,c!=d,e in (f,g),!h`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(rest: &str, raw: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: found '{rest}', expected: '(' in \"{raw}\""
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(raw) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement {
                    key: key.trim().into(),
                    op: Op::NotExists,
                }
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::NotEq(v.trim().into()),
                }
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq(v.trim().into()),
                }
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq(v.trim().into()),
                }
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::NotIn(set_values(rest, raw)?),
                }
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::In(set_values(rest, raw)?),
                }
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
            {
                Requirement {
                    key: part.into(),
                    op: Op::Exists,
                }
            } else {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: invalid label selector \"{raw}\""
                )));
            };
            reqs.push(req);
        }
        Ok(Self { reqs })
    }

    /// Whether `obj`'s labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.reqs
            .iter()
            .all(|r| r.matches(labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str)))
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

/// A parsed field selector (`metadata.name=x,status.phase!=Running`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<Requirement>,
}

/// The fields kube-apiserver supports in field selectors for `kind`.
fn supported(kind: &str, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace")
        || (kind == "Pod"
            && matches!(
                field,
                "status.phase" | "spec.nodeName" | "spec.restartPolicy" | "status.podIP"
            ))
        || (kind == "Event"
            && matches!(
                field,
                "involvedObject.kind"
                    | "involvedObject.name"
                    | "involvedObject.namespace"
                    | "involvedObject.uid"
                    | "involvedObject.apiVersion"
                    | "involvedObject.resourceVersion"
                    | "involvedObject.fieldPath"
                    | "reason"
                    | "reportingComponent"
                    | "source"
                    | "type"
            ))
        || (kind == "Secret" && field == "type")
}

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter; unsupported fields are a 400 as on the real
    /// server.
    pub fn parse(raw: &str, kind: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in raw.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (key, op) = if let Some((k, v)) = part.split_once("!=") {
                (k, Op::NotEq(v.into()))
            } else if let Some((k, v)) = part.split_once("==") {
                (k, Op::Eq(v.into()))
            } else if let Some((k, v)) = part.split_once('=') {
                (k, Op::Eq(v.into()))
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{raw}'; can't understand '{part}'"
                )));
            };
            let key = key.trim();
            if !supported(kind, key) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {key}"
                )));
            }
            reqs.push(Requirement {
                key: key.into(),
                op,
            });
        }
        Ok(Self { reqs })
    }

    /// Whether `obj` matches.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|r| {
            // An Event's `source` selects on its component, as kube's field set has it.
            let key = if r.key == "source" {
                "source.component"
            } else {
                r.key.as_str()
            };
            let pointer = format!("/{}", key.replace('.', "/"));
            let value = obj.pointer(&pointer).and_then(Value::as_str);
            // Unset string fields compare as "" on the real server.
            r.matches(Some(value.unwrap_or("")))
        })
    }

    /// The `metadata.name=` value when the selector pins one name (watch of a single object).
    pub fn pinned_name(&self) -> Option<&str> {
        self.reqs.iter().find_map(|r| match (&r.key[..], &r.op) {
            ("metadata.name", Op::Eq(v)) => Some(v.as_str()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_operators() {
        let obj = pod(json!({"app": "web", "tier": "fe"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("missing!=x", true),
            ("app=web,tier=be", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).expect("parses").matches(&obj),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn field_selectors_and_unsupported_fields() {
        let obj = pod(json!({}));
        let sel = FieldSelector::parse("status.phase=Running,metadata.name=p", "Pod").expect("ok");
        assert!(sel.matches(&obj));
        assert_eq!(sel.pinned_name(), Some("p"));
        // An unset nodeName compares as "", so `spec.nodeName!=` selects unscheduled pods out.
        assert!(
            !FieldSelector::parse("spec.nodeName!=", "Pod")
                .expect("ok")
                .matches(&obj)
        );
        let err = FieldSelector::parse("spec.foo=1", "Lease").expect_err("unsupported");
        assert_eq!(err.code, 400);
    }
}
