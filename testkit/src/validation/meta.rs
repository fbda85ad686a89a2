//! ObjectMeta rules every object follows on every write (apimachinery's `ValidateLabels`,
//! `ValidateAnnotations`, `IsQualifiedName`, `IsValidLabelValue`).

use serde_json::Value;

use super::names::{NameRule, problems};
use crate::errors::Cause;

const NAME_PART_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
/// The most bytes all annotations of one object may take.
const ANNOTATIONS_MAX: usize = 256 * 1024;

const QUALIFIED_NAME: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn name_part_ok(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The problems of a qualified name (`[prefix/]name`), as `IsQualifiedName` words them.
pub fn qualified_name_problems(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (prefix, name) = match value.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            out.push("prefix part must be non-empty".into());
        } else {
            out.extend(
                problems(NameRule::Subdomain, prefix)
                    .into_iter()
                    .map(|p| format!("prefix part {p}")),
            );
        }
        if name.contains('/') {
            out.clear();
            out.push(format!("{QUALIFIED_NAME} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
            return out;
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".into());
    } else if name.len() > NAME_PART_MAX {
        out.push(format!(
            "name part must be no more than {NAME_PART_MAX} characters"
        ));
    }
    if !name.is_empty() && !name_part_ok(name) {
        out.push(QUALIFIED_NAME.into());
    }
    out
}

fn label_value_problems(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        out.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !value.is_empty() && !name_part_ok(value) {
        out.push(LABEL_VALUE.into());
    }
    out
}

/// The causes of invalid labels and annotations of `obj`.
pub fn causes(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let invalid = |field: &str, value: &str, msg: String| {
        Cause::invalid(field, format!("Invalid value: {value:?}: {msg}"))
    };
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            for p in qualified_name_problems(k) {
                out.push(invalid("metadata.labels", k, p));
            }
            let v = v.as_str().unwrap_or("");
            for p in label_value_problems(v) {
                out.push(invalid("metadata.labels", v, p));
            }
        }
    }
    if let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (k, v) in annotations {
            for p in qualified_name_problems(&k.to_lowercase()) {
                out.push(invalid("metadata.annotations", k, p));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > ANNOTATIONS_MAX {
            out.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: format!("Too long: must have at most {ANNOTATIONS_MAX} bytes"),
                field: "metadata.annotations".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_annotations() {
        let ok = json!({"metadata": {"labels": {"zen-lead.kube-zen.io/role": "leader", "a": "", "A_b.c": "X-1"},
                                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}});
        assert!(causes(&ok).is_empty());
        for bad in [
            json!({"labels": {"role": "a/b"}}),
            json!({"labels": {"-role": "a"}}),
            json!({"labels": {"Bad.Prefix/x": "a"}}),
            json!({"labels": {"x": "a".repeat(64)}}),
            json!({"annotations": {"bad key": "x"}}),
            json!({"annotations": {"a/b/c": "x"}}),
        ] {
            assert_eq!(causes(&json!({"metadata": bad})).len(), 1, "{bad}");
        }
    }
}
