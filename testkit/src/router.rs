//! Request paths to `RequestInfo`, as kube-apiserver's RequestInfoFactory does it.

use std::collections::HashMap;

/// What a resource request addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// API group, `""` for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace, `""` if none.
    pub namespace: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource, `""` if none.
    pub subresource: String,
    /// Object name, `""` for collections.
    pub name: String,
}

/// Parses the query string into a map (last value wins).
pub fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Whether a query flag such as `watch` is set (`1`, `true`).
pub fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Parses a resource path; None for non-resource paths (`/version`, `/api`, discovery).
pub fn parse(
    method: &http::Method,
    path: &str,
    query: &HashMap<String, String>,
) -> Option<RequestInfo> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return None,
    };
    let mut info = RequestInfo {
        group: group.into(),
        version: version.into(),
        ..Default::default()
    };
    let mut rest: &[&str] = rest;
    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = rest[1].into();
        // `namespaces/NAME/status` and `namespaces/NAME/finalize` address the namespace itself.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if rest[0] == "namespaces" && rest.len() > 1 {
        // The namespace object: its name is the namespace segment.
        info.resource = "namespaces".into();
        info.name = rest[1].into();
        info.namespace = String::new();
        info.subresource = rest.get(2).copied().unwrap_or("").into();
    } else {
        info.resource = rest[0].into();
        info.name = rest.get(1).copied().unwrap_or("").into();
        info.subresource = rest.get(2).copied().unwrap_or("").into();
        if rest.len() > 3 {
            return None;
        }
    }
    let collection = info.name.is_empty();
    info.verb = match *method {
        // `?watch=1` on a named path is the deprecated single-object watch.
        http::Method::GET | http::Method::HEAD if flag(query, "watch") => "watch",
        http::Method::GET | http::Method::HEAD if collection => "list",
        http::Method::GET | http::Method::HEAD => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if collection => "deletecollection",
        http::Method::DELETE => "delete",
        _ => "unknown",
    }
    .into();
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn p(method: Method, path: &str, query: &str) -> RequestInfo {
        parse(&method, path, &query_map(Some(query))).expect("resource path")
    }

    #[test]
    fn paths() {
        let i = p(Method::GET, "/api/v1/namespaces/default/pods/a/status", "");
        assert_eq!(
            (
                &i.verb[..],
                &i.namespace[..],
                &i.resource[..],
                &i.name[..],
                &i.subresource[..]
            ),
            ("get", "default", "pods", "a", "status")
        );
        let i = p(
            Method::GET,
            "/apis/coordination.k8s.io/v1/leases",
            "watch=true",
        );
        assert_eq!(
            (&i.verb[..], &i.group[..], &i.namespace[..]),
            ("watch", "coordination.k8s.io", "")
        );
        let i = p(Method::DELETE, "/api/v1/namespaces/x", "");
        assert_eq!(
            (&i.verb[..], &i.resource[..], &i.name[..], &i.namespace[..]),
            ("delete", "namespaces", "x", "")
        );
        let i = p(Method::PUT, "/api/v1/namespaces/x/finalize", "");
        assert_eq!(
            (&i.resource[..], &i.name[..], &i.subresource[..]),
            ("namespaces", "x", "finalize")
        );
        let i = p(Method::DELETE, "/api/v1/namespaces/x/configmaps", "");
        assert_eq!(i.verb, "deletecollection");
        assert!(parse(&Method::GET, "/api/v1", &HashMap::new()).is_none());
    }
}
