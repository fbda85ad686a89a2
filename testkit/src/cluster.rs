//! The narrow view of the server that the in-process controllers (`workloads`) and the process
//! kubelet use: read, create, rewrite and delete objects by resource, and follow the change
//! stream. Nothing else of the server's internals is reachable through it.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::app::App;
use crate::errors::ApiError;
use crate::store::{Mutation, StoreEvent};

/// The resources the controllers and the kubelet touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `v1` pods.
    Pods,
    /// `v1` configmaps (for `envFrom` and `configMapKeyRef`).
    ConfigMaps,
    /// `v1` secrets (for `envFrom` and `secretKeyRef`).
    Secrets,
    /// `apps/v1` deployments.
    Deployments,
    /// `apps/v1` replicasets.
    ReplicaSets,
    /// `apps/v1` statefulsets.
    StatefulSets,
    /// `batch/v1` jobs.
    Jobs,
    /// `batch/v1` cronjobs.
    CronJobs,
}

impl Resource {
    /// `(group, version, plural)`.
    pub fn gvr(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Pods => ("", "v1", "pods"),
            Self::ConfigMaps => ("", "v1", "configmaps"),
            Self::Secrets => ("", "v1", "secrets"),
            Self::Deployments => ("apps", "v1", "deployments"),
            Self::ReplicaSets => ("apps", "v1", "replicasets"),
            Self::StatefulSets => ("apps", "v1", "statefulsets"),
            Self::Jobs => ("batch", "v1", "jobs"),
            Self::CronJobs => ("batch", "v1", "cronjobs"),
        }
    }

    /// The store key, `group/plural`.
    pub fn key(self) -> String {
        let (group, _, plural) = self.gvr();
        format!("{group}/{plural}")
    }

    /// The resource a store key names, if it is one of these.
    pub fn from_key(key: &str) -> Option<Self> {
        // Called for every change the controllers see: no allocation.
        Some(match key {
            "/pods" => Self::Pods,
            "/configmaps" => Self::ConfigMaps,
            "/secrets" => Self::Secrets,
            "apps/deployments" => Self::Deployments,
            "apps/replicasets" => Self::ReplicaSets,
            "apps/statefulsets" => Self::StatefulSets,
            "batch/jobs" => Self::Jobs,
            "batch/cronjobs" => Self::CronJobs,
            _ => return None,
        })
    }

    /// `apiVersion` of its objects.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Pods | Self::ConfigMaps | Self::Secrets => "v1",
            Self::Deployments | Self::ReplicaSets | Self::StatefulSets => "apps/v1",
            Self::Jobs | Self::CronJobs => "batch/v1",
        }
    }
}

/// A handle on the server's objects for in-process actors.
#[derive(Debug, Clone)]
pub struct Cluster {
    app: Arc<App>,
}

impl Cluster {
    /// The view of `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }

    /// One object.
    pub fn get(&self, res: Resource, ns: &str, name: &str) -> Option<Value> {
        self.app.store.get(&res.key(), ns, name)
    }

    /// The objects of one resource, in one namespace or all.
    pub fn list(&self, res: Resource, ns: Option<&str>) -> Vec<Value> {
        self.app.store.list(&res.key(), ns, None).0
    }

    /// Creates an object as a client would (defaults, uid, generateName, managedFields).
    pub fn create(&self, res: Resource, ns: &str, obj: Value) -> Result<Value, ApiError> {
        let (group, version, plural) = res.gvr();
        crate::handlers::create_object(&self.app, group, version, plural, ns, obj)
    }

    /// Rewrites the object with `f` (spec, metadata and status alike, as a controller's update
    /// and status writes together would); nothing happens when `uid` is given and differs, when
    /// the object is gone, or when `f` changes nothing. Returns the stored object, if any.
    pub fn update(
        &self,
        res: Resource,
        ns: &str,
        name: &str,
        uid: Option<&str>,
        f: impl FnOnce(&mut Value),
    ) -> Result<Option<Value>, ApiError> {
        let mut stored = None;
        self.app
            .store
            .mutate(&res.key(), ns, name, |cur| {
                let Some(cur) = cur else {
                    return Ok(Mutation::Noop(Value::Null));
                };
                if uid.is_some_and(|u| {
                    cur.pointer("/metadata/uid").and_then(Value::as_str) != Some(u)
                }) {
                    return Ok(Mutation::Noop(Value::Null));
                }
                let mut obj = cur.clone();
                f(&mut obj);
                if obj == *cur {
                    stored = Some(obj.clone());
                    return Ok(Mutation::Noop(obj));
                }
                Ok(Mutation::Update(obj))
            })
            .map(|v| if v.is_null() { stored } else { Some(v) })
    }

    /// Deletes an object as a client would (grace periods, finalizers, background propagation).
    pub fn delete(&self, res: Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        let (group, version, plural) = res.gvr();
        let ty = self
            .app
            .registry()
            .lookup(group, version, plural)
            .ok_or_else(ApiError::path_not_found)?;
        crate::delete::delete_object(
            &self.app,
            &ty,
            ns,
            name,
            None,
            Some("Background"),
            (None, None),
            false,
        )
    }

    /// A terminating pod's containers stopped: it is removed now (finalizers permitting).
    pub fn pod_stopped(&self, ns: &str, name: &str, uid: &str) {
        crate::delete::finalize_pod(&self.app, &Resource::Pods.key(), ns, name, uid);
    }

    /// Every change from now on.
    pub fn changes(&self) -> broadcast::Receiver<Arc<StoreEvent>> {
        self.app.store.subscribe()
    }

    /// The simulated kubelet, for pods that no process kubelet runs.
    pub fn simulated_kubelet(&self) -> crate::Kubelet {
        crate::Kubelet::new(self.app.clone())
    }

    /// The containers' output files the `pods/log` subresource serves.
    pub fn pod_logs(&self) -> crate::pod_logs::PodLogs {
        self.app.pod_logs.clone()
    }

    /// Whether requests need a bearer token (auth mode).
    pub fn auth(&self) -> bool {
        self.app.auth
    }

    /// A bearer token that authenticates as service account `ns/name` (auth mode).
    pub fn service_account_token(&self, ns: &str, name: &str) -> String {
        let token = format!("testkit-sa-{ns}-{name}");
        self.app.tokens.add_service_account(&token, ns, name);
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for r in [
            Resource::Pods,
            Resource::ConfigMaps,
            Resource::Secrets,
            Resource::Deployments,
            Resource::ReplicaSets,
            Resource::StatefulSets,
            Resource::Jobs,
            Resource::CronJobs,
        ] {
            assert_eq!(Resource::from_key(&r.key()), Some(r));
        }
        assert_eq!(Resource::from_key("coordination.k8s.io/leases"), None);
    }
}
