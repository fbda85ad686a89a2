//! The pod projection: the few fields of a Pod the controller reads, and the candidate filter
//! (docs/ARCHITECTURE.md, "The controller").
//!
//! The reflector stores [`PodView`]s, not Pods: each annotated pod is projected on arrival to
//! the few plain values the pure modules read, so the controller's memory grows with the number
//! of annotated pods, by a few hundred bytes each, not with the size of their specs. Other pods
//! are dropped on arrival.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::runtime::reflector::Lookup;
use kube::runtime::watcher;
use zen_lead::api::IdentityStrategy;

/// Annotation naming the pod's pool (the `LeaderPolicy` name).
pub const ANNOTATION_POOL: &str = "zen-lead/pool";
/// Annotation that makes the pod a candidate: `"true"`.
pub const ANNOTATION_JOIN: &str = "zen-lead/join";
/// Annotation with a custom identity (`identityStrategy: custom`).
pub const ANNOTATION_IDENTITY: &str = "zen-lead/identity";
/// Annotation and label with the role the controller writes.
pub const ROLE: &str = "zen-lead/role";
/// Label with the pool the controller writes.
pub const LABEL_POOL: &str = "zen-lead/pool";
/// The env var a custom identity may come from, when set literally in the pod spec.
pub const ENV_IDENTITY: &str = zen_lead::identity::ENV_IDENTITY;

/// The pod's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not yet running (or unknown).
    Pending,
    /// Running.
    Running,
    /// Every container exited 0 and will not restart.
    Succeeded,
    /// A container failed and will not restart.
    Failed,
}

impl Phase {
    fn parse(phase: Option<&str>) -> Self {
        match phase {
            Some("Running") => Self::Running,
            Some("Succeeded") => Self::Succeeded,
            Some("Failed") => Self::Failed,
            _ => Self::Pending,
        }
    }

    /// `Succeeded` or `Failed`: the pod's containers have stopped for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// The phase as Kubernetes writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// One container's restart count and whether it is terminated now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    /// The container name.
    pub name: String,
    /// `restartCount`.
    pub restart_count: i32,
    /// `state.terminated` is set.
    pub terminated: bool,
}

impl ContainerView {
    /// How far the container is in its life, as a number that never goes down: each instance
    /// counts two steps, running (`2 × restartCount`) then terminated (`+ 1`).
    pub fn progress(&self) -> u64 {
        u64::try_from(self.restart_count).unwrap_or(0) * 2 + u64::from(self.terminated)
    }
}

/// The controller's projection of one annotated pod, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Pod name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Pod UID.
    pub uid: String,
    /// `resourceVersion` (numeric; 0 when unknown).
    pub resource_version: u64,
    /// `zen-lead/pool`.
    pub pool: Option<String>,
    /// `zen-lead/join: "true"`.
    pub join: bool,
    /// `zen-lead/identity`.
    pub identity_annotation: Option<String>,
    /// A literal `ZEN_LEAD_IDENTITY` value in the pod spec (the first container that sets one).
    pub identity_env: Option<String>,
    /// The `zen-lead/role` annotation as last written.
    pub role_annotation: Option<String>,
    /// The `zen-lead/role` label as last written.
    pub role_label: Option<String>,
    /// The `zen-lead/pool` label as last written.
    pub pool_label: Option<String>,
    /// Phase.
    pub phase: Phase,
    /// When the Ready condition last became `True`; `None` when the pod is not Ready.
    pub ready_since: Option<jiff::Timestamp>,
    /// Regular containers (not init containers).
    pub containers: Vec<ContainerView>,
    /// `deletionTimestamp` is set.
    pub terminating: bool,
    /// `deletionGracePeriodSeconds` while terminating.
    pub deletion_grace_seconds: Option<i64>,
    /// An init container runs `zen-lead-exec gate` (docs/EXEC.md, gate mode).
    pub gated: bool,
    /// `creationTimestamp`, the tie-breaker of last resort for a Ready pod without a timestamp.
    pub created: Option<jiff::Timestamp>,
}

impl PodView {
    /// Whether the pod is a candidate of a pool: annotated with it, joined, not terminating
    /// (docs/PATTERNS.md).
    pub fn is_candidate(&self) -> bool {
        self.pool.is_some() && self.join && !self.terminating
    }

    /// Whether the pod can lead now: a candidate that is Running and Ready.
    pub fn is_ready(&self) -> bool {
        self.is_candidate() && self.phase == Phase::Running && self.ready_since.is_some()
    }

    /// The pod's identity under `strategy`; `None` when a custom identity is missing.
    pub fn identity(&self, strategy: IdentityStrategy) -> Option<&str> {
        match strategy {
            IdentityStrategy::Pod => Some(self.name.as_str()),
            IdentityStrategy::Custom => self
                .identity_annotation
                .as_deref()
                .or(self.identity_env.as_deref()),
        }
    }

    /// Each container's [`ContainerView::progress`], by container name.
    pub fn progress(&self) -> BTreeMap<String, u64> {
        self.containers
            .iter()
            .map(|c| (c.name.clone(), c.progress()))
            .collect()
    }

    /// The projection of a Pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let annotation = |key: &str| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key)).cloned();
        let status = pod.status.as_ref();
        let ready_since = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .filter(|c| c.status == "True")
            .map(|c| {
                c.last_transition_time
                    .as_ref()
                    .map(|t| t.0)
                    .or(meta.creation_timestamp.as_ref().map(|t| t.0))
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            });
        let containers = status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| ContainerView {
                        name: c.name.clone(),
                        restart_count: c.restart_count,
                        terminated: c.state.as_ref().is_some_and(|s| s.terminated.is_some()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let spec = pod.spec.as_ref();
        Self {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            pool: annotation(ANNOTATION_POOL),
            join: annotation(ANNOTATION_JOIN).is_some_and(|v| v == "true"),
            identity_annotation: annotation(ANNOTATION_IDENTITY),
            identity_env: spec.and_then(|s| literal_identity(&s.containers)),
            role_annotation: annotation(ROLE),
            role_label: label(ROLE),
            pool_label: label(LABEL_POOL),
            phase: Phase::parse(status.and_then(|s| s.phase.as_deref())),
            ready_since,
            containers,
            terminating: meta.deletion_timestamp.is_some(),
            deletion_grace_seconds: meta.deletion_grace_period_seconds,
            gated: spec
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|cs| cs.iter().any(runs_gate)),
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
        }
    }
}

fn literal_identity(containers: &[Container]) -> Option<String> {
    containers.iter().find_map(|c| {
        c.env.as_ref()?.iter().find_map(|e| {
            (e.name == ENV_IDENTITY && e.value_from.is_none())
                .then(|| e.value.clone())
                .flatten()
                .filter(|v| !v.trim().is_empty())
        })
    })
}

/// Whether a container runs `zen-lead-exec gate`: the image or the command names
/// `zen-lead-exec`, and its first argument is `gate`.
fn runs_gate(container: &Container) -> bool {
    let command = container.command.as_deref().unwrap_or_default();
    let args = container.args.as_deref().unwrap_or_default();
    let names_exec = |s: &String| s.rsplit('/').next().is_some_and(|b| b == "zen-lead-exec");
    let image_is_exec = container
        .image
        .as_deref()
        .is_some_and(|i| i.contains("zen-lead-exec"));
    // `command: [/zen-lead-exec, gate, ...]`, or `args: [gate, ...]` with the image's entrypoint.
    let first_arg = match command.split_first() {
        Some((exe, rest)) if names_exec(exe) => rest.first().or(args.first()),
        Some(_) => None,
        None if image_is_exec => args.first(),
        None => None,
    };
    first_arg.is_some_and(|a| a == "gate")
}

/// Whether a pod carries the pool annotation (the only pods the controller keeps).
pub fn is_annotated(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_POOL))
        .is_some_and(|p| !p.is_empty())
}

/// Projects a pod watch event: annotated pods become their [`PodView`]; any other pod becomes a
/// deletion, so the store never keeps it and a pod that loses its annotation leaves the store.
/// Returns `None` for events that carry nothing to store.
pub fn project(event: watcher::Event<Pod>) -> Option<watcher::Event<PodView>> {
    use watcher::Event;
    match event {
        Event::Apply(pod) if is_annotated(&pod) => Some(Event::Apply(PodView::from_pod(&pod))),
        Event::Apply(pod) | Event::Delete(pod) => Some(Event::Delete(PodView::from_pod(&pod))),
        Event::InitApply(pod) if is_annotated(&pod) => {
            Some(Event::InitApply(PodView::from_pod(&pod)))
        }
        Event::InitApply(_) => None,
        Event::Init => Some(Event::Init),
        Event::InitDone => Some(Event::InitDone),
    }
}

/// The reflector stores [`PodView`]s, keyed like the Pods they project.
impl Lookup for PodView {
    type DynamicType = ();

    fn kind((): &()) -> Cow<'_, str> {
        Pod::KIND.into()
    }

    fn group((): &()) -> Cow<'_, str> {
        Pod::GROUP.into()
    }

    fn version((): &()) -> Cow<'_, str> {
        Pod::VERSION.into()
    }

    fn plural((): &()) -> Cow<'_, str> {
        Pod::URL_PATH_SEGMENT.into()
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(self.name.as_str().into())
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        Some(self.namespace.as_str().into())
    }

    fn resource_version(&self) -> Option<Cow<'_, str>> {
        Some(self.resource_version.to_string().into())
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        Some(self.uid.as_str().into())
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builder-style pod views for the table tests.
    use super::*;

    /// A candidate of pool `pool` named `name`, Running but not Ready.
    pub fn candidate(name: &str) -> PodView {
        PodView {
            name: name.into(),
            namespace: "ns".into(),
            uid: format!("uid-{name}"),
            resource_version: 1,
            pool: Some("pool".into()),
            join: true,
            identity_annotation: None,
            identity_env: None,
            role_annotation: None,
            role_label: None,
            pool_label: None,
            phase: Phase::Running,
            ready_since: None,
            containers: vec![ContainerView {
                name: "main".into(),
                restart_count: 0,
                terminated: false,
            }],
            terminating: false,
            deletion_grace_seconds: None,
            gated: false,
            created: None,
        }
    }

    /// Timestamps for fixtures: `ts(10)` is ten seconds after a fixed instant.
    pub fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + secs).expect("in range")
    }

    impl PodView {
        /// Ready since `ts(secs)`.
        pub fn ready(mut self, secs: i64) -> Self {
            self.ready_since = Some(ts(secs));
            self
        }
        /// With this UID.
        pub fn uid(mut self, uid: &str) -> Self {
            self.uid = uid.into();
            self
        }
        /// In this phase.
        pub fn phase(mut self, phase: Phase) -> Self {
            self.phase = phase;
            if phase.is_terminal() {
                // As the kubelet reports a finished pod.
                self.ready_since = None;
                for c in &mut self.containers {
                    c.terminated = true;
                }
            }
            self
        }
        /// Terminating with a grace period.
        pub fn terminating(mut self, grace: i64) -> Self {
            self.terminating = true;
            self.deletion_grace_seconds = Some(grace);
            self
        }
        /// Its container restarted `n` times; `terminated` now or not.
        pub fn restarts(mut self, n: i32, terminated: bool) -> Self {
            self.containers[0].restart_count = n;
            self.containers[0].terminated = terminated;
            self
        }
        /// Gated (an init container runs `zen-lead-exec gate`).
        pub fn gated(mut self) -> Self {
            self.gated = true;
            self
        }
        /// With roles already written.
        pub fn role(mut self, role: &str) -> Self {
            self.role_annotation = Some(role.into());
            self.role_label = Some(role.into());
            self.pool_label = Some("pool".into());
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::ObjectRef;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a pod")
    }

    fn full_pod() -> Pod {
        pod(json!({
            "metadata": {
                "name": "web-1", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                "annotations": {"zen-lead/pool": "web", "zen-lead/join": "true",
                                "kubectl.kubernetes.io/last-applied-configuration": "{...big...}"},
                "labels": {"app": "web", "zen-lead/role": "leader"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs"}]
            },
            "spec": {
                "initContainers": [{"name": "zen-lead-gate", "image": "ghcr.io/kube-zen/zen-lead-exec:0.1.0", "args": ["gate", "--pool=web"]}],
                "containers": [{"name": "app", "image": "app", "env": [
                    {"name": "OTHER", "value": "x"},
                    {"name": "ZEN_LEAD_IDENTITY", "value": "web-primary"}
                ]}]
            },
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}
                ],
                "containerStatuses": [{"name": "app", "image": "app", "imageID": "", "ready": true, "restartCount": 2,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:04Z"}}}]
            }
        }))
    }

    #[test]
    fn the_view_reads_the_fields_the_controller_needs() {
        let view = PodView::from_pod(&full_pod());
        assert!(view.gated);
        assert_eq!(view.identity_env.as_deref(), Some("web-primary"));
        assert_eq!(view.containers[0].restart_count, 2);
        assert_eq!(
            view.ready_since,
            Some("2026-01-01T00:00:05Z".parse().unwrap())
        );
        assert_eq!(view.role_label.as_deref(), Some("leader"));
        assert_eq!(view.pool.as_deref(), Some("web"));
    }

    #[test]
    fn the_store_keys_a_view_like_its_pod() {
        let pod = full_pod();
        let view = PodView::from_pod(&pod);
        let by_view = Lookup::to_object_ref(&view, ());
        let by_pod = ObjectRef::<PodView>::new(pod.metadata.name.as_deref().unwrap())
            .within(pod.metadata.namespace.as_deref().unwrap());
        assert_eq!(by_view, by_pod);
        assert_eq!(by_view.extra.uid.as_deref(), pod.metadata.uid.as_deref());
    }

    #[test]
    fn gate_detection() {
        let c = |value: serde_json::Value| -> Container { serde_json::from_value(value).unwrap() };
        let cases = [
            (
                json!({"name": "g", "image": "zen-lead-exec:1", "args": ["gate"]}),
                true,
            ),
            (
                json!({"name": "g", "image": "x", "command": ["/zen-lead-exec", "gate", "--pool=p"]}),
                true,
            ),
            (
                json!({"name": "g", "image": "x", "command": ["/zen-lead-exec"], "args": ["gate"]}),
                true,
            ),
            (
                json!({"name": "g", "image": "zen-lead-exec:1", "args": ["--pool=p", "--", "gate"]}),
                false,
            ),
            (
                json!({"name": "g", "image": "busybox", "args": ["gate"]}),
                false,
            ),
            (
                json!({"name": "g", "image": "x", "command": ["sh", "-c", "gate"]}),
                false,
            ),
        ];
        for (container, expect) in cases {
            assert_eq!(runs_gate(&c(container.clone())), expect, "{container}");
        }
    }

    #[test]
    fn candidate_filter_and_identities() {
        use fixtures::candidate;
        let mut c = candidate("a");
        assert!(c.is_candidate() && !c.is_ready());
        c = c.ready(1);
        assert!(c.is_ready());
        assert_eq!(c.identity(IdentityStrategy::Pod), Some("a"));
        assert_eq!(c.identity(IdentityStrategy::Custom), None);
        c.identity_env = Some("from-env".into());
        assert_eq!(c.identity(IdentityStrategy::Custom), Some("from-env"));
        c.identity_annotation = Some("from-annotation".into());
        assert_eq!(
            c.identity(IdentityStrategy::Custom),
            Some("from-annotation")
        );
        assert!(!candidate("b").ready(1).terminating(30).is_candidate());
        let mut unjoined = candidate("c").ready(1);
        unjoined.join = false;
        assert!(!unjoined.is_candidate());
        assert!(!candidate("d").ready(1).phase(Phase::Failed).is_ready());
    }

    #[test]
    fn unannotated_pods_are_dropped_on_arrival() {
        use watcher::Event;
        let mut other = full_pod();
        other.metadata.annotations = None;
        assert!(project(Event::InitApply(other.clone())).is_none());
        assert!(matches!(
            project(Event::Apply(other)),
            Some(Event::Delete(_))
        ));
        assert!(matches!(
            project(Event::Apply(full_pod())),
            Some(Event::Apply(view)) if view == PodView::from_pod(&full_pod())
        ));
    }
}
