//! The `LeaderPolicy` API types (docs/API.md): `coordination.kube-zen.io/v1alpha1`.
//!
//! The single source of the CRD: `zen-lead-crdgen` prints it into `config/crd/bases/`, and a test
//! fails when the committed YAML drifts from this code.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::lease::record::Renewer;

/// API group of `LeaderPolicy`.
pub const GROUP: &str = "coordination.kube-zen.io";
/// API version of `LeaderPolicy`.
pub const VERSION: &str = "v1alpha1";

/// Default namespace of zen-lead-controller, where its own Lease lives (`deploy/`).
pub const CONTROLLER_NAMESPACE: &str = "zen-lead-system";
/// The name of zen-lead-controller's own Lease: a gate checks it before handing over.
pub const CONTROLLER_LEASE: &str = "zen-lead-controller";

/// Condition type: whether the pool has an elected leader.
pub const CONDITION_LEADER_ELECTED: &str = "LeaderElected";
/// Condition type: whether the spec passes the timing rules.
pub const CONDITION_VALID: &str = "Valid";

/// A pool of candidates of which exactly one leads. The name is the pool name, and the pool's
/// Lease has the same name and namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "coordination.kube-zen.io",
    version = "v1alpha1",
    kind = "LeaderPolicy",
    plural = "leaderpolicies",
    singular = "leaderpolicy",
    shortname = "lp",
    namespaced,
    status = "LeaderPolicyStatus",
    printcolumn = r#"{"name":"Leader","type":"string","jsonPath":".status.currentHolder.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Candidates","type":"integer","jsonPath":".status.candidates"}"#,
    printcolumn = r#"{"name":"Term","type":"integer","jsonPath":".status.term"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("self.renewDeadlineSeconds < self.leaseDurationSeconds").message("renewDeadlineSeconds must be less than leaseDurationSeconds: lower the renew deadline or raise the lease duration"),
    validation = Rule::new("self.renewDeadlineSeconds * 5 > self.retryPeriodSeconds * 6").message("renewDeadlineSeconds must be greater than 1.2 x retryPeriodSeconds: raise the renew deadline or lower the retry period")
)]
#[serde(rename_all = "camelCase")]
pub struct LeaderPolicySpec {
    /// Seconds a Lease record must stay unchanged before another candidate may take it.
    #[serde(default = "default_lease_duration_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub lease_duration_seconds: i32,
    /// Seconds without a successful renewal after which the holder leads no more.
    #[serde(default = "default_renew_deadline_seconds")]
    #[schemars(range(min = 1, max = 3599))]
    pub renew_deadline_seconds: i32,
    /// Seconds between renewals and retries.
    #[serde(default = "default_retry_period_seconds")]
    #[schemars(range(min = 1, max = 3599))]
    pub retry_period_seconds: i32,
    /// How a candidate's identity is chosen.
    #[serde(default)]
    pub identity_strategy: IdentityStrategy,
    /// What followers do.
    #[serde(default)]
    pub follower_mode: FollowerMode,
}

impl Default for LeaderPolicySpec {
    fn default() -> Self {
        Self {
            lease_duration_seconds: default_lease_duration_seconds(),
            renew_deadline_seconds: default_renew_deadline_seconds(),
            retry_period_seconds: default_retry_period_seconds(),
            identity_strategy: IdentityStrategy::default(),
            follower_mode: FollowerMode::default(),
        }
    }
}

fn default_lease_duration_seconds() -> i32 {
    15
}
fn default_renew_deadline_seconds() -> i32 {
    10
}
fn default_retry_period_seconds() -> i32 {
    2
}

impl LeaderPolicySpec {
    /// The spec's timings checked against the rules of [`crate::timing`] (the CRD may have been
    /// installed without its CEL rules, so the controller checks again).
    pub fn timing(&self) -> Result<crate::lease::Timing, crate::timing::TimingError> {
        let secs = |v: i32| std::time::Duration::from_secs(u64::try_from(v).unwrap_or(0));
        crate::timing::validate(
            secs(self.lease_duration_seconds),
            secs(self.renew_deadline_seconds),
            secs(self.retry_period_seconds),
        )
    }
}

/// How a candidate's identity is chosen.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum IdentityStrategy {
    /// The pod name.
    #[default]
    Pod,
    /// `ZEN_LEAD_IDENTITY` in the pod, or the `zen-lead/identity` annotation.
    Custom,
}

/// What followers do.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum FollowerMode {
    /// Followers run and wait.
    #[default]
    Standby,
    /// Followers are scaled down (accepted; behaves as `standby` until built).
    ScaleDown,
}

/// Whether the pool has a live holder.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No live holder.
    Electing,
    /// A live holder.
    Stable,
}

/// The current holder of the pool's Lease.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CurrentHolder {
    /// The holder's pod name.
    pub name: String,
    /// The holder's pod UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The Lease `holderIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The Lease `acquireTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// Who renews the Lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewer: Option<Renewer>,
}

/// The observed state of a pool.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LeaderPolicyStatus {
    /// `Electing` when there is no live holder, `Stable` when there is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The current holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_holder: Option<CurrentHolder>,
    /// Number of candidate pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<i32>,
    /// Number of Ready candidate pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_candidates: Option<i32>,
    /// The highest term seen (high-water mark of the Lease's `leaseTransitions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<i64>,
    /// When the holder last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `LeaderElected` and `Valid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The CRD as YAML, as committed in `config/crd/bases/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&LeaderPolicy::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_defaults_fill_an_empty_spec() {
        let spec: LeaderPolicySpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec, LeaderPolicySpec::default());
        assert_eq!(spec.timing(), Ok(crate::lease::Timing::default()));
        let spec: LeaderPolicySpec =
            serde_json::from_str(r#"{"identityStrategy":"custom","followerMode":"scaleDown"}"#)
                .unwrap();
        assert_eq!(spec.identity_strategy, IdentityStrategy::Custom);
        assert_eq!(spec.follower_mode, FollowerMode::ScaleDown);
    }

    #[test]
    fn jsonpath_of_pattern_two_exists() {
        let status = LeaderPolicyStatus {
            current_holder: Some(CurrentHolder {
                name: "pod-a".into(),
                uid: None,
                identity: None,
                since: None,
                renewer: Some(Renewer::SelfRenewing),
            }),
            ..Default::default()
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["currentHolder"]["name"], "pod-a");
        assert_eq!(v["currentHolder"]["renewer"], "self");
    }
}
