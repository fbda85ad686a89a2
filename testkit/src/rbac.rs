//! RBAC evaluation from stored Role/ClusterRole/RoleBinding/ClusterRoleBinding objects.
//!
//! CONTRACT (owned by the testkit-semantics work): signatures are fixed, bodies are filled in.

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

/// Whether `user` may do `attrs`. `system:masters` may do anything.
pub fn authorize(_user: &UserInfo, _attrs: &Attributes, _rbac: &RbacSnapshot) -> bool {
    todo!("testkit-semantics")
}

/// kube-apiserver's 403 message, e.g.
/// `leases.coordination.k8s.io "p" is forbidden: User "system:serviceaccount:default:app" cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "default"`.
pub fn forbidden_message(_user: &UserInfo, _attrs: &Attributes) -> String {
    todo!("testkit-semantics")
}
