//! The `kube::Client` zen-lead talks to the API server with.
//!
//! Built from the default config (kubeconfig, or in-cluster) with bounded connect/write timeouts,
//! no built-in retries (the elector retries itself, within its deadline), and a user agent
//! `zen-lead/<version> (<identity>)` that the testkit can count requests and inject faults by.

use std::time::Duration;

use http::HeaderValue;
use http::header::USER_AGENT;

/// Connect timeout: a dead API server endpoint is noticed well within the default deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Write timeout for a request body.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Building the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No kubeconfig and no in-cluster config could be loaded.
    #[error("cannot load a kubeconfig or in-cluster config: set KUBECONFIG or run in a pod")]
    InferConfig(#[source] kube::config::InferConfigError),
    /// The config could not be turned into a client (e.g. bad TLS material).
    #[error("cannot build the Kubernetes client from its config")]
    BuildClient(#[source] kube::Error),
}

/// The user agent for `identity`: `zen-lead/<version> (<identity>)`.
pub fn user_agent(identity: &str) -> String {
    format!("zen-lead/{} ({identity})", env!("CARGO_PKG_VERSION"))
}

/// Applies zen-lead's transport settings and user agent to a config.
pub fn configure(mut config: kube::Config, identity: &str) -> kube::Config {
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.write_timeout = Some(WRITE_TIMEOUT);
    // No client-wide read timeout: it would cut quiet watches. Every non-watch request gets a
    // timeout no longer than the time left to the holder's deadline instead, and an idle watch
    // is abandoned by the elector (see `lease::driver`), so a dead connection is dropped from the
    // pool rather than reused.
    config.read_timeout = None;
    // kube's own retries of 429/503 would spend the holder's deadline without its knowledge.
    config.default_retry = false;
    let agent = user_agent(identity);
    let value = HeaderValue::from_str(&agent).unwrap_or_else(|_| {
        HeaderValue::from_static(concat!("zen-lead/", env!("CARGO_PKG_VERSION")))
    });
    config.headers.retain(|(name, _)| name != USER_AGENT);
    config.headers.push((USER_AGENT, value));
    config
}

/// Builds a client from a config, with zen-lead's settings.
pub fn from_config(config: kube::Config, identity: &str) -> Result<kube::Client, ClientError> {
    kube::Client::try_from(configure(config, identity)).map_err(ClientError::BuildClient)
}

/// Builds a client from the default config (`KUBECONFIG`/`~/.kube/config`, or in-cluster).
pub async fn infer(identity: &str) -> Result<kube::Client, ClientError> {
    let config = kube::Config::infer()
        .await
        .map_err(ClientError::InferConfig)?;
    from_config(config, identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_version_and_identity() {
        assert_eq!(
            user_agent("pod-a"),
            format!("zen-lead/{} (pod-a)", env!("CARGO_PKG_VERSION"))
        );
        let config = configure(
            kube::Config::new("http://127.0.0.1:1".parse().unwrap()),
            "pod-a",
        );
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(n, _)| n == USER_AGENT)
            .collect();
        assert_eq!(agents.len(), 1);
        assert!(!config.default_retry);
    }
}
