//! RBAC evaluation and kube-apiserver's 403 messages.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use zen_lead_testkit::rbac::{Attributes, RbacSnapshot, UserInfo, authorize, forbidden_message};

fn user(name: &str, groups: &[&str]) -> UserInfo {
    let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    groups.push("system:authenticated".into());
    UserInfo {
        username: name.into(),
        groups,
    }
}

fn sa(ns: &str, name: &str) -> UserInfo {
    user(
        &format!("system:serviceaccount:{ns}:{name}"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{ns}"),
        ],
    )
}

/// (API group, resource) of the kinds the tables ask about.
type Kind<'a> = (&'a str, &'a str);
const LEASES: Kind = ("coordination.k8s.io", "leases");
const POLICIES: Kind = ("coordination.kube-zen.io", "leaderpolicies");
const PODS: Kind = ("", "pods");

fn req(verb: &str, (group, resource): Kind, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        non_resource_path: None,
    }
}

fn path(verb: &str, p: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        non_resource_path: Some(p.into()),
        ..Default::default()
    }
}

fn role(kind: &str, ns: &str, name: &str, rules: Value) -> Value {
    let mut meta = json!({"name": name});
    if !ns.is_empty() {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": rules})
}

fn binding(
    kind: &str,
    ns: &str,
    name: &str,
    role_kind: &str,
    role: &str,
    subjects: Value,
) -> Value {
    let mut meta = json!({"name": name});
    if !ns.is_empty() {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": subjects})
}

fn snapshot() -> RbacSnapshot {
    RbacSnapshot {
        roles: vec![
            role(
                "Role",
                "default",
                "lease-writer",
                json!([
                    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch", "create", "update", "patch"]},
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["only-this"]}
                ]),
            ),
            role(
                "Role",
                "other",
                "lease-writer",
                json!([
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
                ]),
            ),
        ],
        cluster_roles: vec![
            role(
                "ClusterRole",
                "",
                "controller",
                json!([
                    {"apiGroups": ["coordination.kube-zen.io"], "resources": ["leaderpolicies"], "verbs": ["get", "list", "watch"]},
                    {"apiGroups": ["coordination.kube-zen.io"], "resources": ["leaderpolicies/status"], "verbs": ["update", "patch"]},
                    {"apiGroups": [""], "resources": ["*/log"], "verbs": ["get"]},
                    {"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]}
                ]),
            ),
            role(
                "ClusterRole",
                "",
                "pod-reader",
                json!([
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
                ]),
            ),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "aggregate"},
                   "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "part", "labels": {"agg": "yes"}},
                   "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["delete"]}]}),
        ],
        role_bindings: vec![
            binding(
                "RoleBinding",
                "default",
                "app-leases",
                "Role",
                "lease-writer",
                json!([{"kind": "ServiceAccount", "name": "app"}]),
            ),
            binding(
                "RoleBinding",
                "default",
                "alice-pods",
                "ClusterRole",
                "pod-reader",
                json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]),
            ),
            // Binding in "default" that names a Role only existing in "other": grants nothing.
            binding(
                "RoleBinding",
                "default",
                "dangling",
                "Role",
                "missing",
                json!([{"kind": "Group", "name": "devs"}]),
            ),
        ],
        cluster_role_bindings: vec![
            binding(
                "ClusterRoleBinding",
                "",
                "controller",
                "ClusterRole",
                "controller",
                json!([{"kind": "ServiceAccount", "name": "zen-lead", "namespace": "zen-lead-system"}]),
            ),
            binding(
                "ClusterRoleBinding",
                "",
                "devs-agg",
                "ClusterRole",
                "aggregate",
                json!([{"kind": "Group", "name": "devs"}]),
            ),
        ],
    }
}

#[test]
fn authorization_table() {
    let rbac = snapshot();
    let app = sa("default", "app");
    let ctrl = sa("zen-lead-system", "zen-lead");
    let alice = user("alice", &[]);
    let dev = user("bob", &["devs"]);
    let admin = UserInfo {
        username: "admin".into(),
        groups: vec!["system:masters".into()],
    };
    let other_app = sa("other", "app");
    let anonymous = UserInfo {
        username: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
    };
    let cases: Vec<(&UserInfo, Attributes, bool)> = vec![
        (&app, req("update", LEASES, "", "default", "p"), true),
        (&app, req("list", LEASES, "", "default", ""), true),
        (&app, req("delete", LEASES, "", "default", "p"), false),
        (&app, req("update", LEASES, "", "other", "p"), false),
        (&app, req("update", LEASES, "", "", ""), false),
        (&app, req("get", PODS, "", "default", "only-this"), true),
        (&app, req("get", PODS, "", "default", "another"), false),
        (&app, req("list", PODS, "", "default", ""), false),
        (&other_app, req("update", LEASES, "", "default", "p"), false),
        (&ctrl, req("watch", POLICIES, "", "any", ""), true),
        (&ctrl, req("list", POLICIES, "", "", ""), true),
        (&ctrl, req("patch", POLICIES, "status", "ns", "p"), true),
        (&ctrl, req("patch", POLICIES, "", "ns", "p"), false),
        (&ctrl, req("get", PODS, "log", "ns", "p"), true),
        (&ctrl, req("get", PODS, "", "ns", "p"), false),
        (&ctrl, path("get", "/metrics"), true),
        (&ctrl, path("get", "/debug/pprof/heap"), true),
        (&ctrl, path("post", "/metrics"), false),
        (&alice, req("list", PODS, "", "default", ""), true),
        (&alice, req("list", PODS, "", "kube-system", ""), false),
        (&alice, path("get", "/metrics"), false),
        (&alice, path("get", "/apis/apps/v1"), true),
        (&alice, path("get", "/version"), true),
        (
            &alice,
            req(
                "create",
                ("authorization.k8s.io", "selfsubjectaccessreviews"),
                "",
                "",
                "",
            ),
            true,
        ),
        (&dev, req("delete", ("batch", "jobs"), "", "x", "j"), true),
        (&dev, req("get", ("batch", "jobs"), "", "x", "j"), false),
        (
            &admin,
            req("deletecollection", ("", "secrets"), "", "kube-system", ""),
            true,
        ),
        (&anonymous, path("get", "/api"), false),
    ];
    for (u, attrs, want) in cases {
        assert_eq!(
            authorize(u, &attrs, &rbac),
            want,
            "{} {attrs:?}",
            u.username
        );
    }
}

#[test]
fn forbidden_messages_match_kube_apiserver() {
    let app = sa("default", "app");
    let cases = vec![
        (
            req("update", LEASES, "", "default", "p"),
            r#"leases.coordination.k8s.io "p" is forbidden: User "system:serviceaccount:default:app" cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "default""#,
        ),
        (
            req("list", PODS, "", "default", ""),
            r#"pods is forbidden: User "system:serviceaccount:default:app" cannot list resource "pods" in API group "" in the namespace "default""#,
        ),
        (
            req("list", POLICIES, "", "", ""),
            r#"leaderpolicies.coordination.kube-zen.io is forbidden: User "system:serviceaccount:default:app" cannot list resource "leaderpolicies" in API group "coordination.kube-zen.io" at the cluster scope"#,
        ),
        (
            req("get", ("", "namespaces"), "", "", "kube-system"),
            r#"namespaces "kube-system" is forbidden: User "system:serviceaccount:default:app" cannot get resource "namespaces" in API group "" at the cluster scope"#,
        ),
        (
            req("patch", POLICIES, "status", "default", "p"),
            r#"leaderpolicies.coordination.kube-zen.io "p" is forbidden: User "system:serviceaccount:default:app" cannot patch resource "leaderpolicies/status" in API group "coordination.kube-zen.io" in the namespace "default""#,
        ),
        (
            path("get", "/metrics"),
            r#"forbidden: User "system:serviceaccount:default:app" cannot get path "/metrics""#,
        ),
    ];
    for (attrs, want) in cases {
        assert_eq!(forbidden_message(&app, &attrs), want);
    }
}
