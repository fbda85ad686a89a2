//! Who a candidate is (docs/PROTOCOL.md §7, docs/EXEC.md): identity, pod UID and a per-process session id.
//!
//! Resolution is a pure function over an env lookup so that the precedence is testable without
//! touching the process environment.

use crate::lease::Candidate;

/// Env var for an explicit identity (`identityStrategy: custom`).
pub const ENV_IDENTITY: &str = "ZEN_LEAD_IDENTITY";
/// Env var with the pod name (downward API `metadata.name`).
pub const ENV_POD_NAME: &str = "POD_NAME";
/// Env var with the pod UID (downward API `metadata.uid`).
pub const ENV_POD_UID: &str = "POD_UID";

/// Identity resolution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No explicit identity, no env var and no readable hostname.
    #[error(
        "cannot determine an identity: set --identity, ZEN_LEAD_IDENTITY or POD_NAME (no hostname available)"
    )]
    ResolveIdentity,
    /// The pool's LeaderPolicy asks for a custom identity and none was given: falling back to
    /// the pod name would silently break what the policy promises.
    #[error(
        "LeaderPolicy {pool} has identityStrategy: custom, but no identity was given: set --identity, or ZEN_LEAD_IDENTITY, or the pod annotation zen-lead/identity passed in as ZEN_LEAD_IDENTITY through the downward API (fieldRef metadata.annotations['zen-lead/identity'])"
    )]
    CustomIdentityMissing {
        /// The pool (`namespace/name`).
        pool: String,
    },
}

/// For `identityStrategy: custom` (docs/EXEC.md): the identity must be given explicitly, as the
/// flag or `ZEN_LEAD_IDENTITY` (which the downward API can fill from the pod's
/// `zen-lead/identity` annotation). Never the pod name or the hostname.
pub fn require_custom(
    explicit: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    pool: &str,
) -> Result<String, IdentityError> {
    match resolve_identity(explicit, env, || None) {
        Ok((identity, IdentitySource::Explicit | IdentitySource::IdentityEnv)) => Ok(identity),
        _ => Err(IdentityError::CustomIdentityMissing {
            pool: pool.to_owned(),
        }),
    }
}

/// Where the identity came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// `--identity`.
    Explicit,
    /// `ZEN_LEAD_IDENTITY`.
    IdentityEnv,
    /// `POD_NAME`.
    PodName,
    /// The hostname.
    Hostname,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Resolves the identity: `explicit`, then `ZEN_LEAD_IDENTITY`, then `POD_NAME`, then the
/// hostname. Empty or blank values count as unset, because a downward-API env var for a missing
/// annotation is the empty string.
pub fn resolve_identity(
    explicit: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    hostname: impl FnOnce() -> Option<String>,
) -> Result<(String, IdentitySource), IdentityError> {
    if let Some(v) = non_empty(explicit.map(str::to_owned)) {
        return Ok((v, IdentitySource::Explicit));
    }
    if let Some(v) = non_empty(env(ENV_IDENTITY)) {
        return Ok((v, IdentitySource::IdentityEnv));
    }
    if let Some(v) = non_empty(env(ENV_POD_NAME)) {
        return Ok((v, IdentitySource::PodName));
    }
    non_empty(hostname())
        .map(|v| (v, IdentitySource::Hostname))
        .ok_or(IdentityError::ResolveIdentity)
}

/// The pod UID from `POD_UID`, if set and not blank.
pub fn pod_uid(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    non_empty(env(ENV_POD_UID))
}

/// A fresh session id: one per process, so a restarted process with the same identity is told
/// apart from the one that held the lease.
pub fn new_session() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The kernel hostname (Linux), if readable.
pub fn system_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// The process environment as an env lookup for the functions above.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Candidate {
    /// Builds the candidate from an explicit identity (if any) and an env lookup, with a fresh
    /// session id.
    pub fn resolve(
        explicit: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        hostname: impl FnOnce() -> Option<String>,
    ) -> Result<Self, IdentityError> {
        let (identity, _) = resolve_identity(explicit, &env, hostname)?;
        Ok(Self {
            identity,
            pod_uid: pod_uid(&env),
            session: new_session(),
        })
    }

    /// [`Candidate::resolve`] with the process environment and the system hostname.
    pub fn from_process_env(explicit: Option<&str>) -> Result<Self, IdentityError> {
        Self::resolve(explicit, process_env, system_hostname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn host() -> Option<String> {
        Some("node-host\n".to_owned())
    }

    #[test]
    fn precedence() {
        let all = env_of(&[(ENV_IDENTITY, "custom"), (ENV_POD_NAME, "pod-0")]);
        assert_eq!(
            resolve_identity(Some("flag"), &all, host),
            Ok(("flag".to_owned(), IdentitySource::Explicit))
        );
        assert_eq!(
            resolve_identity(None, &all, host),
            Ok(("custom".to_owned(), IdentitySource::IdentityEnv))
        );
        let pod = env_of(&[(ENV_POD_NAME, "pod-0")]);
        assert_eq!(
            resolve_identity(None, &pod, host),
            Ok(("pod-0".to_owned(), IdentitySource::PodName))
        );
        assert_eq!(
            resolve_identity(None, env_of(&[]), host),
            Ok(("node-host".to_owned(), IdentitySource::Hostname))
        );
    }

    #[test]
    fn blank_values_count_as_unset() {
        let env = env_of(&[(ENV_IDENTITY, ""), (ENV_POD_NAME, "  ")]);
        assert_eq!(
            resolve_identity(Some(""), &env, host),
            Ok(("node-host".to_owned(), IdentitySource::Hostname))
        );
        assert_eq!(
            resolve_identity(None, &env, || None),
            Err(IdentityError::ResolveIdentity)
        );
        assert_eq!(pod_uid(env_of(&[(ENV_POD_UID, "")])), None);
    }

    #[test]
    fn custom_strategy_never_falls_back_to_the_pod_name() {
        let pod_only = env_of(&[(ENV_POD_NAME, "pod-0"), (ENV_IDENTITY, " ")]);
        let err = require_custom(None, &pod_only, "default/p").unwrap_err();
        assert_eq!(
            err,
            IdentityError::CustomIdentityMissing {
                pool: "default/p".into()
            }
        );
        let message = err.to_string();
        for way in ["--identity", "ZEN_LEAD_IDENTITY", "zen-lead/identity"] {
            assert!(message.contains(way), "{message}");
        }
        assert_eq!(
            require_custom(Some("flag-id"), &pod_only, "default/p"),
            Ok("flag-id".into())
        );
        let env = env_of(&[(ENV_POD_NAME, "pod-0"), (ENV_IDENTITY, "from-annotation")]);
        assert_eq!(
            require_custom(None, &env, "default/p"),
            Ok("from-annotation".into())
        );
    }

    #[test]
    fn candidate_gets_uid_and_a_fresh_session() {
        let env = env_of(&[(ENV_POD_NAME, "pod-0"), (ENV_POD_UID, "uid-1")]);
        let a = Candidate::resolve(None, &env, host).unwrap();
        let b = Candidate::resolve(None, &env, host).unwrap();
        assert_eq!(a.identity, "pod-0");
        assert_eq!(a.pod_uid.as_deref(), Some("uid-1"));
        assert_ne!(a.session, b.session);
        assert!(uuid::Uuid::parse_str(&a.session).is_ok());
    }
}
