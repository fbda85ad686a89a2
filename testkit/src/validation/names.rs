//! Object names as kube-apiserver checks them: which rule each resource uses, and the messages
//! of apimachinery's `IsDNS1123Subdomain`, `IsDNS1123Label`, `IsDNS1035Label` and
//! `IsValidPathSegmentName`.

use crate::errors::Cause;
use crate::registry::ResourceType;

/// The rule a resource's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds, custom resources included.
    Subdomain,
    /// RFC 1123 label: namespaces.
    Label,
    /// RFC 1035 label: services.
    Dns1035Label,
    /// Anything usable as one URL path segment: RBAC kinds.
    PathSegment,
}

/// The name rule of `ty`.
pub fn rule_for(ty: &ResourceType) -> NameRule {
    match (ty.group.as_str(), ty.plural.as_str()) {
        ("", "namespaces") => NameRule::Label,
        ("", "services") => NameRule::Dns1035Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

const LABEL_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

fn label_chars_ok(s: &str, first_alpha: bool) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    let first_ok = if first_alpha {
        first.is_ascii_lowercase()
    } else {
        first.is_ascii_lowercase() || first.is_ascii_digit()
    };
    first_ok
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The problems of `name` under `rule` (empty when it is valid), as apimachinery words them.
pub fn problems(rule: NameRule, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    match rule {
        NameRule::Subdomain => {
            if name.len() > SUBDOMAIN_MAX {
                out.push(format!("must be no more than {SUBDOMAIN_MAX} characters"));
            }
            if !name.split('.').all(|part| label_chars_ok(part, false)) {
                out.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into());
            }
        }
        NameRule::Label => {
            if name.len() > LABEL_MAX {
                out.push(format!("must be no more than {LABEL_MAX} characters"));
            }
            if !label_chars_ok(name, false) {
                out.push("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into());
            }
        }
        NameRule::Dns1035Label => {
            if name.len() > LABEL_MAX {
                out.push(format!("must be no more than {LABEL_MAX} characters"));
            }
            if !label_chars_ok(name, true) {
                out.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".into());
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                out.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    out.push(format!("may not contain '{bad}'"));
                }
            }
        }
    }
    out
}

/// The `metadata.name` causes for a new object named `name` of type `ty`.
pub fn name_causes(ty: &ResourceType, name: &str) -> Vec<Cause> {
    problems(rule_for(ty), name)
        .into_iter()
        .map(|p| Cause::invalid("metadata.name", format!("Invalid value: {name:?}: {p}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        for (rule, name, ok) in [
            (NameRule::Subdomain, "a.b-c.d9", true),
            (NameRule::Subdomain, "Bad_Name", false),
            (NameRule::Subdomain, "-a", false),
            (NameRule::Subdomain, "a..b", false),
            (NameRule::Label, "with.dot", false),
            (NameRule::Label, "ns-1", true),
            (NameRule::Dns1035Label, "1abc", false),
            (NameRule::Dns1035Label, "svc", true),
            (NameRule::PathSegment, "system:controller:x", true),
            (NameRule::PathSegment, "a/b", false),
            (NameRule::PathSegment, "..", false),
        ] {
            assert_eq!(problems(rule, name).is_empty(), ok, "{rule:?} {name}");
        }
        assert_eq!(problems(NameRule::Label, &"a".repeat(64)).len(), 1);
    }
}
