//! The `kube::Client` zen-lead talks to the API server with.
//!
//! Built from the default config (kubeconfig, or in-cluster) with a bounded connect timeout, TCP
//! keep-alive probes and a short pool idle timeout (so that a connection whose peer vanished is
//! noticed and not reused: the class of failure behind kubernetes/kubernetes#125530), no built-in
//! retries (the elector retries itself, within its deadline), and a user agent
//! `zen-lead/<version> (<identity>)` that the testkit can count requests and inject faults by.

use std::time::Duration;

use http::HeaderValue;
use http::header::USER_AGENT;
use hyper_util::client::legacy::connect::HttpConnector;
use kube::client::ConfigExt;

/// Connect timeout: a dead API server endpoint is noticed well within the default deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Write timeout for a request body (used when kube's own stack is used, behind a proxy).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before the first TCP keep-alive probe.
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// Interval between TCP keep-alive probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the kernel declares the connection dead (15 s + 3 × 5 s = 30 s).
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// Pooled connections idle longer than this are closed rather than reused: shorter than the
/// idle timeouts of common load balancers and NAT tables, which drop connections silently.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Building the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No kubeconfig and no in-cluster config could be loaded.
    #[error("cannot load a kubeconfig or in-cluster config: set KUBECONFIG or run in a pod")]
    InferConfig(#[source] LoadConfigError),
    /// The config could not be turned into a client (e.g. bad TLS material).
    #[error("cannot build the Kubernetes client from its config")]
    BuildClient(#[source] kube::Error),
}

/// Why no config could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadConfigError {
    /// Neither the kubeconfig nor the in-cluster config loaded.
    #[error(transparent)]
    Infer(kube::config::InferConfigError),
    /// With neither `KUBECONFIG` nor `HOME` set only the in-cluster config is tried.
    #[error("no KUBECONFIG, no HOME, and not in a pod ({0})")]
    InClusterOnly(kube::config::InClusterError),
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
    let config = configure(config, identity);
    if config.proxy_url.is_some() {
        // kube's own stack knows the proxy protocols; it lacks only the keep-alive settings.
        return kube::Client::try_from(config).map_err(ClientError::BuildClient);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_keepalive(Some(TCP_KEEPALIVE_IDLE));
    http.set_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL));
    http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    let https = config
        .rustls_https_connector_with_connector(http)
        .map_err(ClientError::BuildClient)?;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(ClientError::BuildClient)?)
        .layer(
            config
                .extra_headers_layer()
                .map_err(ClientError::BuildClient)?,
        )
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// Builds a client from the default config (`KUBECONFIG`/`~/.kube/config`, or in-cluster).
pub async fn infer(identity: &str) -> Result<kube::Client, ClientError> {
    let config = if std::env::var_os("KUBECONFIG").is_none() && std::env::var_os("HOME").is_none() {
        // Without HOME, kube would look `~` up in the user database (getpwuid_r). A static glibc
        // binary (images/README.md) cannot load the host's NSS modules and crashes there, for
        // example as a uid without a passwd entry in an empty environment. Only the in-cluster
        // config is left to try.
        kube::Config::incluster()
            .map_err(|e| ClientError::InferConfig(LoadConfigError::InClusterOnly(e)))?
    } else {
        kube::Config::infer()
            .await
            .map_err(|e| ClientError::InferConfig(LoadConfigError::Infer(e)))?
    };
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
