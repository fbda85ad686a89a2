//! The resource types the server serves: the built-ins and those registered by CRDs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::schema::Schema;

/// One served resource type (all versions share one storage, as with CRDs' `None` conversion).
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, `""` for core.
    pub group: String,
    /// Served versions; the first is the storage (preferred) version.
    pub versions: Vec<String>,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// `ListKind`, e.g. `PodList`.
    pub list_kind: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (`all`, ...).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Has a `status` subresource.
    pub status_subresource: bool,
    /// Only `create` is served (SelfSubjectAccessReview and friends).
    pub create_only: bool,
    /// Served by a CRD.
    pub is_custom: bool,
    /// Compiled CRD schema per version.
    pub schemas: BTreeMap<String, Arc<Schema>>,
    /// Raw `openAPIV3Schema` per version, for the OpenAPI documents.
    pub raw_schemas: BTreeMap<String, Value>,
    /// `additionalPrinterColumns` per version (CRDs), for Table output.
    pub printer_columns: BTreeMap<String, Vec<Value>>,
    /// Storage shared with another type (events.k8s.io Events live with core Events).
    pub storage: Option<String>,
    /// The `scale` subresource, if served.
    pub scale: Option<crate::scale::ScalePaths>,
}

impl ResourceType {
    fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.into(),
            versions: vec![version.into()],
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced,
            status_subresource: false,
            create_only: false,
            is_custom: false,
            schemas: BTreeMap::new(),
            raw_schemas: BTreeMap::new(),
            printer_columns: BTreeMap::new(),
            storage: None,
            scale: None,
        }
    }

    fn scalable(mut self) -> Self {
        self.scale = Some(crate::scale::ScalePaths::workload());
        self
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    fn create_only(mut self) -> Self {
        self.create_only = true;
        self
    }

    fn all(mut self) -> Self {
        self.categories = vec!["all".into()];
        self
    }

    /// The storage key shared by every version: `group/plural` (or the shared storage).
    pub fn key(&self) -> String {
        self.storage.clone().unwrap_or_else(|| self.type_key())
    }

    /// The registry key: `group/plural`.
    pub fn type_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `apiVersion` for `version`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The verbs this type serves, as discovery lists them.
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.create_only {
            vec!["create"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }
}

/// All served resource types, looked up by group/version/plural.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: BTreeMap<String, Arc<ResourceType>>,
}

impl Registry {
    /// The built-in types.
    pub fn builtins() -> Self {
        let list = vec![
            ResourceType::builtin("", "v1", "Namespace", "namespaces", false)
                .short(&["ns"])
                .status(),
            ResourceType::builtin("", "v1", "Pod", "pods", true)
                .short(&["po"])
                .status()
                .all(),
            ResourceType::builtin("", "v1", "Event", "events", true).short(&["ev"]),
            ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true).short(&["cm"]),
            ResourceType::builtin("", "v1", "Secret", "secrets", true),
            ResourceType::builtin("", "v1", "ServiceAccount", "serviceaccounts", true)
                .short(&["sa"]),
            ResourceType::builtin("", "v1", "Service", "services", true)
                .short(&["svc"])
                .status()
                .all(),
            ResourceType::builtin("", "v1", "Endpoints", "endpoints", true).short(&["ep"]),
            ResourceType::builtin("", "v1", "Node", "nodes", false)
                .short(&["no"])
                .status(),
            {
                let mut t = ResourceType::builtin("events.k8s.io", "v1", "Event", "events", true)
                    .short(&["ev"]);
                t.storage = Some("/events".into());
                t
            },
            ResourceType::builtin("coordination.k8s.io", "v1", "Lease", "leases", true),
            ResourceType::builtin(
                "discovery.k8s.io",
                "v1",
                "EndpointSlice",
                "endpointslices",
                true,
            ),
            ResourceType::builtin("apps", "v1", "Deployment", "deployments", true)
                .short(&["deploy"])
                .scalable()
                .status()
                .all(),
            ResourceType::builtin("apps", "v1", "ReplicaSet", "replicasets", true)
                .short(&["rs"])
                .scalable()
                .status()
                .all(),
            ResourceType::builtin("apps", "v1", "StatefulSet", "statefulsets", true)
                .short(&["sts"])
                .scalable()
                .status()
                .all(),
            ResourceType::builtin("apps", "v1", "DaemonSet", "daemonsets", true)
                .short(&["ds"])
                .status()
                .all(),
            ResourceType::builtin("batch", "v1", "Job", "jobs", true)
                .status()
                .all(),
            ResourceType::builtin("batch", "v1", "CronJob", "cronjobs", true)
                .short(&["cj"])
                .status()
                .all(),
            ResourceType::builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
                false,
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "RoleBinding",
                "rolebindings",
                true,
            ),
            ResourceType::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
            ),
            ResourceType::builtin(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
            )
            .short(&["crd", "crds"])
            .status(),
            {
                let mut t = ResourceType::builtin(
                    "authorization.k8s.io",
                    "v1",
                    "SelfSubjectAccessReview",
                    "selfsubjectaccessreviews",
                    false,
                );
                t.create_only = true;
                t
            },
            ResourceType::builtin(
                "authorization.k8s.io",
                "v1",
                "SelfSubjectRulesReview",
                "selfsubjectrulesreviews",
                false,
            )
            .create_only(),
            ResourceType::builtin(
                "authentication.k8s.io",
                "v1",
                "SelfSubjectReview",
                "selfsubjectreviews",
                false,
            )
            .create_only(),
        ];
        let mut reg = Self::default();
        for t in list {
            reg.insert(t);
        }
        reg
    }

    /// Adds or replaces a type.
    pub fn insert(&mut self, t: ResourceType) {
        self.types.insert(t.type_key(), Arc::new(t));
    }

    /// Removes the type stored under `key` (a deleted CRD).
    pub fn remove(&mut self, key: &str) {
        self.types.remove(key);
    }

    /// The type serving `group/version/plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&format!("{group}/{plural}"))
            .filter(|t| t.versions.iter().any(|v| v == version))
            .cloned()
    }

    /// The type stored under `group/plural`.
    pub fn by_key(&self, key: &str) -> Option<Arc<ResourceType>> {
        self.types.get(key).cloned()
    }

    /// Every type, in key order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Groups with their versions (preferred first), core group first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.values() {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    for v in &t.versions {
                        if !versions.contains(v) {
                            versions.push(v.clone());
                        }
                    }
                }
                None => out.push((t.group.clone(), t.versions.clone())),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Builds the served type for a CustomResourceDefinition object, or explains why it cannot.
pub fn from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let group = s(spec.get("group")).ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let plural = s(names.get("plural")).ok_or("spec.names.plural is required")?;
    let kind = s(names.get("kind")).ok_or("spec.names.kind is required")?;
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut t = ResourceType::builtin(
        &group,
        "v1",
        &kind,
        &plural,
        s(spec.get("scope")).as_deref() != Some("Cluster"),
    );
    t.list_kind = s(names.get("listKind")).unwrap_or_else(|| format!("{kind}List"));
    t.singular = s(names.get("singular")).unwrap_or_else(|| kind.to_lowercase());
    t.short_names = strings(names.get("shortNames"));
    t.categories = strings(names.get("categories"));
    t.is_custom = true;
    t.versions.clear();
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is required")?;
    // The storage version is served first so that discovery prefers it.
    let mut ordered: Vec<&Value> = versions.iter().collect();
    ordered.sort_by_key(|v| v.get("storage").and_then(Value::as_bool) != Some(true));
    for v in ordered {
        let index = versions
            .iter()
            .position(|x| std::ptr::eq(x, v))
            .unwrap_or(0);
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = s(v.get("name")).ok_or("spec.versions[].name is required")?;
        if v.pointer("/subresources/status").is_some() {
            t.status_subresource = true;
        }
        if let Some(sc) = v.pointer("/subresources/scale") {
            let path = |k: &str| sc.get(k).and_then(Value::as_str).map(str::to_string);
            t.scale = Some(crate::scale::ScalePaths {
                spec_replicas: path("specReplicasPath").unwrap_or_else(|| ".spec.replicas".into()),
                status_replicas: path("statusReplicasPath")
                    .unwrap_or_else(|| ".status.replicas".into()),
                label_selector: path("labelSelectorPath"),
            });
        }
        if let Some(raw) = v.pointer("/schema/openAPIV3Schema") {
            let schema =
                Schema::compile(raw).map_err(|e| format!("spec.versions[{index}].schema.{e}"))?;
            t.schemas.insert(name.clone(), Arc::new(schema));
            t.raw_schemas.insert(name.clone(), raw.clone());
        }
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            t.printer_columns.insert(name.clone(), cols.clone());
        }
        t.versions.push(name);
    }
    if t.versions.is_empty() {
        return Err("spec.versions: at least one version must be served".into());
    }
    Ok(t)
}
