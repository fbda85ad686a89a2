//! What the wrapper asks of the API server before it campaigns: the client, the namespace and
//! the pool's `LeaderPolicy` timings.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::api::{IdentityStrategy, LeaderPolicy};
use crate::client::ClientError;
use crate::lease::Timing;
use crate::lease::record::LeaseRecord;

/// The service account's namespace file, present in every pod with a mounted token.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// How long to wait for the LeaderPolicy read: it decides only the default timings.
const POLICY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure to prepare the API connection.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Neither a kubeconfig nor an in-cluster config could be loaded.
    #[error(
        "cannot load a kubeconfig ({reason}): set KUBECONFIG to a readable kubeconfig, or run in a pod with a service account"
    )]
    LoadKubeconfig {
        /// The kubeconfig loader's message.
        reason: String,
    },
    /// The loaded configuration does not make a client (bad TLS data, bad URL).
    #[error("cannot build an API client from the kubeconfig: {reason}")]
    BuildClient {
        /// The client builder's message.
        reason: String,
    },
    /// The LeaderPolicy read was denied.
    #[error(
        "permission denied reading LeaderPolicy {namespace}/{pool}: {message} (grant the zen-lead-workload role from config/rbac/ to this service account)"
    )]
    ReadPolicyForbidden {
        /// Pool.
        pool: String,
        /// Namespace.
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// The API server did not answer the LeaderPolicy read.
    #[error("API server unreachable reading LeaderPolicy {namespace}/{pool}: {reason}")]
    ReadPolicyUnreachable {
        /// Pool.
        pool: String,
        /// Namespace.
        namespace: String,
        /// The transport's message.
        reason: String,
    },
}

/// Loads the kubeconfig (`KUBECONFIG`, `~/.kube/config`, else in-cluster) and builds the
/// client with zen-lead's timeouts and a user agent naming `identity`.
pub async fn client(identity: &str) -> Result<kube::Client, ApiError> {
    crate::client::infer(identity).await.map_err(|e| match e {
        ClientError::InferConfig(e) => ApiError::LoadKubeconfig {
            reason: super::one_line(&e),
        },
        ClientError::BuildClient(e) => ApiError::BuildClient {
            reason: super::one_line(&e),
        },
    })
}

/// The namespace: the flag, then the pod's (`POD_NAMESPACE`, the service account file), then
/// the kubeconfig's.
pub fn namespace(flag: Option<&str>, client: &kube::Client) -> String {
    let from_env = std::env::var("POD_NAMESPACE").ok();
    let from_file = || std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok();
    [flag.map(str::to_owned), from_env]
        .into_iter()
        .flatten()
        .map(|n| n.trim().to_owned())
        .find(|n| !n.is_empty())
        .or_else(|| {
            from_file()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| client.default_namespace().to_owned())
}

/// What the wrapper takes from the pool's LeaderPolicy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySettings {
    /// `leaseDurationSeconds`, `renewDeadlineSeconds`, `retryPeriodSeconds`.
    pub timing: Timing,
    /// `identityStrategy`.
    pub identity_strategy: IdentityStrategy,
}

/// The pool's LeaderPolicy settings; `None` when it does not exist (or the CRD is not
/// installed). Denial and an unreachable API server are errors: the campaign would fail the
/// same way, and saying so before it is clearer.
pub async fn policy(
    client: &kube::Client,
    namespace: &str,
    pool: &str,
) -> Result<Option<PolicySettings>, ApiError> {
    let api: Api<LeaderPolicy> = Api::namespaced(client.clone(), namespace);
    let unreachable = |reason: String| ApiError::ReadPolicyUnreachable {
        pool: pool.to_owned(),
        namespace: namespace.to_owned(),
        reason,
    };
    let read = tokio::time::timeout(POLICY_READ_TIMEOUT, api.get_opt(pool))
        .await
        .map_err(|_| unreachable(format!("no answer within {POLICY_READ_TIMEOUT:?}")))?;
    match read {
        Ok(Some(policy)) => {
            let spec = &policy.spec;
            let secs = |v: i32| Duration::from_secs(u64::try_from(v).unwrap_or(0));
            tracing::debug!(pool, namespace, ?spec, "settings from LeaderPolicy");
            Ok(Some(PolicySettings {
                timing: Timing {
                    lease_duration: secs(spec.lease_duration_seconds),
                    renew_deadline: secs(spec.renew_deadline_seconds),
                    retry_period: secs(spec.retry_period_seconds),
                },
                identity_strategy: spec.identity_strategy,
            }))
        }
        Ok(None) => {
            tracing::debug!(pool, namespace, "no LeaderPolicy; default timings");
            Ok(None)
        }
        Err(kube::Error::Api(status)) if status.code == 401 || status.code == 403 => {
            Err(ApiError::ReadPolicyForbidden {
                pool: pool.to_owned(),
                namespace: namespace.to_owned(),
                message: status.message.clone(),
            })
        }
        Err(kube::Error::Api(status)) => {
            // 404 for the resource type itself (CRD not installed) and other answers: the API
            // server is there; the policy just cannot supply timings.
            tracing::debug!(pool, namespace, code = status.code, message = %status.message, "LeaderPolicy not readable; default timings");
            Ok(None)
        }
        Err(e) => Err(unreachable(super::one_line(&e))),
    }
}

/// How the pool's recorded holder looks, by the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderLooks {
    /// Renewed within its lease duration (or the Lease cannot be read).
    Alive,
    /// `renewTime + leaseDurationSeconds` is past, or its finished `--min-hold` has ended: the
    /// record's lease duration.
    Stale(Duration),
    /// The Lease no longer names that holder (it moved on, perhaps to this very candidate).
    Changed,
}

/// How `holder`, the pool's recorded holder, looks by the wall clock.
///
/// Only a hint for `--on-follower skip|fail`: a CronJob copy skips at once when the holder looks
/// alive, but waits for the elector's own (BOOTTIME) expiry judgement when the holder crashed
/// without releasing, so that one crash does not make every later run skip. Never used to take
/// the lease (docs/PROTOCOL.md §2).
pub async fn holder_looks(
    client: &kube::Client,
    namespace: &str,
    pool: &str,
    holder: &str,
) -> HolderLooks {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let lease = match tokio::time::timeout(POLICY_READ_TIMEOUT, api.get_opt(pool)).await {
        Ok(Ok(Some(lease))) => lease,
        Ok(Ok(None)) => return HolderLooks::Changed,
        _ => return HolderLooks::Alive,
    };
    let record = LeaseRecord::from_lease(&lease);
    if record.holder.as_deref() != Some(holder) {
        return HolderLooks::Changed;
    }
    looks(&record, jiff::Timestamp::now())
}

fn looks(record: &LeaseRecord, now: jiff::Timestamp) -> HolderLooks {
    let Some(seconds) = record
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
    else {
        return HolderLooks::Alive;
    };
    let duration = Duration::from_secs(seconds);
    if record.min_hold_release().is_some_and(|until| until <= now) {
        return HolderLooks::Stale(duration);
    }
    let expires = record
        .renew_time
        .or(record.acquire_time)
        .zip(jiff::SignedDuration::try_from(duration).ok())
        .and_then(|(renewed, d)| renewed.checked_add(d).ok());
    match expires {
        Some(expires) if expires < now => HolderLooks::Stale(duration),
        _ => HolderLooks::Alive,
    }
}
