//! RBAC evaluation from stored Role/ClusterRole/RoleBinding/ClusterRoleBinding objects.

use serde_json::Value;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// `alice` or `system:serviceaccount:ns:name`.
    pub username: String,
    /// Groups, including `system:authenticated` (and `system:masters` for the admin).
    pub groups: Vec<String>,
}

/// What a request asks to do, as kube-apiserver's authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// API group, `""` for core.
    pub api_group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource, e.g. `status`; empty for none.
    pub subresource: String,
    /// Namespace; empty for cluster-scoped.
    pub namespace: String,
    /// Object name; empty for collections.
    pub name: String,
    /// For non-resource requests (`/version`, `/healthz`): the path.
    pub non_resource_path: Option<String>,
}

/// The RBAC objects in store at the time of the request.
#[derive(Debug, Clone, Default)]
pub struct RbacSnapshot {
    /// `rbac.authorization.k8s.io/v1` Roles (all namespaces).
    pub roles: Vec<Value>,
    /// ClusterRoles.
    pub cluster_roles: Vec<Value>,
    /// RoleBindings (all namespaces).
    pub role_bindings: Vec<Value>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<Value>,
}

/// Non-resource paths every authenticated user may GET on a real cluster, through the
/// bootstrap `system:discovery` and `system:public-info-viewer` bindings.
const DISCOVERY_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/openapi",
    "/openapi/*",
    "/version",
    "/version/",
    "/healthz",
    "/livez",
    "/readyz",
];

/// What the bootstrap `system:basic-user` role lets every authenticated user create.
const BASIC_USER: &[(&str, &str)] = &[
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
];

/// Whether `user` may do `attrs`. `system:masters` may do anything.
///
/// Besides the stored RBAC objects, the grants of the real bootstrap bindings that every
/// cluster has are built in: discovery paths for `system:authenticated`, and creating
/// `selfsubjectaccessreviews`/`selfsubjectrulesreviews` (`system:basic-user`).
pub fn authorize(user: &UserInfo, attrs: &Attributes, rbac: &RbacSnapshot) -> bool {
    if user.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    if bootstrap_allows(user, attrs) {
        return true;
    }
    for binding in &rbac.cluster_role_bindings {
        if binds(binding, user, "")
            && let Some(rules) = role_rules(binding, "", rbac)
            && rules.iter().any(|r| rule_allows(r, attrs))
        {
            return true;
        }
    }
    if attrs.non_resource_path.is_some() || attrs.namespace.is_empty() {
        return false;
    }
    for binding in &rbac.role_bindings {
        if str_at(binding, "/metadata/namespace") != attrs.namespace {
            continue;
        }
        if binds(binding, user, &attrs.namespace)
            && let Some(rules) = role_rules(binding, &attrs.namespace, rbac)
            && rules.iter().any(|r| rule_allows(r, attrs))
        {
            return true;
        }
    }
    false
}

fn bootstrap_allows(user: &UserInfo, attrs: &Attributes) -> bool {
    if !user.groups.iter().any(|g| g == "system:authenticated") {
        return false;
    }
    match &attrs.non_resource_path {
        Some(path) => attrs.verb == "get" && DISCOVERY_PATHS.iter().any(|p| url_matches(p, path)),
        None => {
            attrs.verb == "create"
                && BASIC_USER
                    .iter()
                    .any(|(g, r)| *g == attrs.api_group && *r == attrs.resource)
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether one of the binding's subjects is `user`. `namespace` is the RoleBinding's
/// namespace, the default for ServiceAccount subjects ("" for ClusterRoleBindings).
fn binds(binding: &Value, user: &UserInfo, namespace: &str) -> bool {
    let Some(subjects) = binding.get("subjects").and_then(Value::as_array) else {
        return false;
    };
    subjects.iter().any(|s| {
        let name = str_at(s, "/name");
        match str_at(s, "/kind") {
            "User" => user.username == name,
            "Group" => user.groups.iter().any(|g| g == name),
            "ServiceAccount" => {
                let ns = match str_at(s, "/namespace") {
                    "" => namespace,
                    ns => ns,
                };
                !ns.is_empty() && user.username == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

/// The rules of the binding's roleRef, None when the role does not exist.
fn role_rules(binding: &Value, namespace: &str, rbac: &RbacSnapshot) -> Option<Vec<Value>> {
    let name = str_at(binding, "/roleRef/name");
    match str_at(binding, "/roleRef/kind") {
        "ClusterRole" => {
            let role = rbac
                .cluster_roles
                .iter()
                .find(|r| str_at(r, "/metadata/name") == name)?;
            Some(cluster_role_rules(role, rbac))
        }
        "Role" if !namespace.is_empty() => {
            let role = rbac.roles.iter().find(|r| {
                str_at(r, "/metadata/name") == name && str_at(r, "/metadata/namespace") == namespace
            })?;
            Some(rules_of(role))
        }
        _ => None,
    }
}

fn rules_of(role: &Value) -> Vec<Value> {
    role.get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A ClusterRole's rules, plus those of the roles its `aggregationRule` selects (by
/// `matchLabels`), which the real server's aggregation controller would copy in.
fn cluster_role_rules(role: &Value, rbac: &RbacSnapshot) -> Vec<Value> {
    let mut rules = rules_of(role);
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array);
    for selector in selectors.into_iter().flatten() {
        let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) else {
            continue;
        };
        for other in &rbac.cluster_roles {
            let matches = labels
                .iter()
                .all(|(k, v)| other.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v));
            if matches && !std::ptr::eq(other, role) {
                rules.extend(rules_of(other));
            }
        }
    }
    rules
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let verbs = strings(rule, "verbs");
    if !verbs.iter().any(|v| v == "*" || *v == attrs.verb) {
        return false;
    }
    if let Some(path) = &attrs.non_resource_path {
        return strings(rule, "nonResourceURLs")
            .iter()
            .any(|u| url_matches(u, path));
    }
    let groups = strings(rule, "apiGroups");
    if !groups.iter().any(|g| g == "*" || *g == attrs.api_group) {
        return false;
    }
    let combined = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resource_ok = strings(rule, "resources").iter().any(|r| {
        r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty() && *r == format!("*/{}", attrs.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule, "resourceNames");
    names.is_empty() || names.contains(&attrs.name)
}

/// RBAC's nonResourceURL match: exact, `*`, or a prefix ending in `*`.
fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// kube-apiserver's 403 message, e.g.
/// `leases.coordination.k8s.io "p" is forbidden: User "system:serviceaccount:default:app" cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "default"`.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    let who = &user.username;
    if let Some(path) = &attrs.non_resource_path {
        return format!(
            "forbidden: User {who:?} cannot {} path {path:?}",
            attrs.verb
        );
    }
    let mut resource = attrs.resource.clone();
    if !attrs.subresource.is_empty() {
        resource = format!("{resource}/{}", attrs.subresource);
    }
    let reason = if attrs.namespace.is_empty() {
        format!(
            "User {who:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            attrs.verb, attrs.api_group
        )
    } else {
        format!(
            "User {who:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            attrs.verb, attrs.api_group, attrs.namespace
        )
    };
    let qualified = crate::errors::qualified(&attrs.api_group, &attrs.resource);
    if attrs.name.is_empty() {
        format!("{qualified} is forbidden: {reason}")
    } else {
        format!("{qualified} {:?} is forbidden: {reason}", attrs.name)
    }
}

/// The rules `user` holds in `namespace` (SelfSubjectRulesReview): `(resource rules,
/// non-resource rules)` as `PolicyRule`-shaped JSON, from the bindings that name the user and
/// the bootstrap grants every authenticated user has.
pub fn rules_for(
    user: &UserInfo,
    namespace: &str,
    rbac: &RbacSnapshot,
) -> (Vec<Value>, Vec<Value>) {
    let mut rules: Vec<Value> = Vec::new();
    if user.groups.iter().any(|g| g == "system:masters") {
        // The cluster-admin ClusterRole, bound to system:masters on every cluster.
        rules.push(serde_json::json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
        rules.push(serde_json::json!({"nonResourceURLs": ["*"], "verbs": ["*"]}));
    }
    if user.groups.iter().any(|g| g == "system:authenticated") {
        for (group, resource) in BASIC_USER {
            rules.push(serde_json::json!({"apiGroups": [group], "resources": [resource], "verbs": ["create"]}));
        }
        rules.push(serde_json::json!({"nonResourceURLs": DISCOVERY_PATHS, "verbs": ["get"]}));
    }
    for binding in &rbac.cluster_role_bindings {
        if binds(binding, user, "")
            && let Some(r) = role_rules(binding, "", rbac)
        {
            rules.extend(r);
        }
    }
    if !namespace.is_empty() {
        for binding in &rbac.role_bindings {
            if str_at(binding, "/metadata/namespace") == namespace
                && binds(binding, user, namespace)
                && let Some(r) = role_rules(binding, namespace, rbac)
            {
                rules.extend(r);
            }
        }
    }
    let (mut resource, mut non_resource) = (Vec::new(), Vec::new());
    for rule in rules {
        let verbs = strings(&rule, "verbs");
        if rule.get("nonResourceURLs").is_some() {
            non_resource.push(serde_json::json!({
                "verbs": verbs,
                "nonResourceURLs": strings(&rule, "nonResourceURLs"),
            }));
        }
        if rule.get("resources").is_some() {
            let mut r = serde_json::json!({
                "verbs": verbs,
                "apiGroups": strings(&rule, "apiGroups"),
                "resources": strings(&rule, "resources"),
            });
            let names = strings(&rule, "resourceNames");
            if !names.is_empty() {
                r["resourceNames"] = serde_json::json!(names);
            }
            resource.push(r);
        }
    }
    (resource, non_resource)
}
