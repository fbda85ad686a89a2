//! zen-lead-testkit: a Kubernetes API server emulator for tests, benchmarks and the local demo.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::coordination::v1::Lease;
//! use kube::Api;
//! use zen_lead_testkit::TestServer;
//!
//! let server = TestServer::start().await?;              // http://127.0.0.1:<free port>
//! let client = server.client_as("my-test/1.0")?;          // User-Agent = client identity
//! let leases: Api<Lease> = Api::namespaced(client, "default");
//! server.faults().latency(Some("my-test/1.0"), std::time::Duration::from_millis(50));
//! let pod = server.kubelet().run_pod("default", serde_json::json!({"metadata": {"name": "p"}}))?;
//! assert_eq!(server.accounting().count("my-test/1.0", "list"), 0);
//! // `kubectl --kubeconfig server.kubeconfig_path() get pods` works too.
//! # drop((leases, pod)); Ok(()) }
//! ```
//!
//! Builder options: [`TestServer::builder`] (`auth`, `tls`, `retained_events`,
//! `bookmark_interval`, `process_kubelet`, `resolve`). Workload controllers (Deployments,
//! StatefulSets, Jobs, CronJobs) always run; with `process_kubelet(true)` pods' containers run as
//! local processes. Dropping the server stops it, its controllers and every container process.
//! See `docs/TESTKIT.md`.
#![forbid(unsafe_code)]
// ApiError mirrors metav1.Status field by field; boxing it would buy nothing in an emulator.
#![allow(clippy::result_large_err)]

pub mod accounting;
pub mod admin;
pub mod app;
pub mod auth;
pub mod bench;
pub mod cluster;
pub mod controller_bench;
pub mod controller_process;
pub mod convert;
pub mod crd;
pub mod delete;
pub mod demo;
pub mod discovery;
pub mod errors;
pub mod faults;
pub mod handlers;
pub mod heartbeat;
pub mod kubeconfig;
pub mod kubelet;
pub mod openapi;
pub mod patch;
pub mod pod_logs;
pub mod pod_status;
pub mod printers;
pub mod process_kubelet;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod reviews;
pub mod router;
pub mod scale;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod strategy;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use accounting::Accounting;
pub use auth::{ADMIN_TOKEN, Tokens};
pub use faults::{FaultSpec, Faults};
pub use kubelet::Kubelet;

/// Starting the server failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding the listen address failed.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Generating TLS material failed.
    #[error("generating TLS certificates")]
    Tls(#[source] tls::TlsError),
    /// The process kubelet cannot run here.
    #[error(
        "the process kubelet needs `{}` (util-linux) to set the parent-death signal",
        process_kubelet::PDEATHSIG_LAUNCHER
    )]
    ProcessKubelet,
    /// Writing the kubeconfig failed.
    #[error("writing the kubeconfig {path}")]
    Kubeconfig {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Building a kube client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration was rejected.
    #[error("building a kube client config")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// kube refused the config.
    #[error("building a kube client")]
    Client(#[source] kube::Error),
}

/// Options for [`TestServer`].
#[derive(Debug, Clone)]
pub struct Builder {
    addr: SocketAddr,
    auth: bool,
    tls: bool,
    retained: usize,
    bookmark_interval: Duration,
    kubeconfig: Option<PathBuf>,
    process_kubelet: bool,
    resolve: Vec<(String, String)>,
    controllers: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            auth: false,
            tls: false,
            retained: 10_000,
            bookmark_interval: Duration::from_secs(5),
            kubeconfig: None,
            process_kubelet: false,
            resolve: Vec::new(),
            controllers: true,
        }
    }
}

impl Builder {
    /// Listen address (default `127.0.0.1:0`).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Require bearer tokens and evaluate RBAC.
    pub fn auth(mut self, on: bool) -> Self {
        self.auth = on;
        self
    }

    /// Serve HTTPS with a generated CA.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// How many events the watch history keeps (older versions get 410 Gone).
    pub fn retained_events(mut self, n: usize) -> Self {
        self.retained = n;
        self
    }

    /// How often watches that allow bookmarks get one.
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Where to write the kubeconfig (default: a fresh temporary directory).
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// Run pods' containers as local processes (see `docs/TESTKIT.md`); without it pods are
    /// simulated.
    pub fn process_kubelet(mut self, on: bool) -> Self {
        self.process_kubelet = on;
        self
    }

    /// Run the workload controllers (default on). Off, the server is a kube-apiserver without a
    /// controller manager: a test may then write workloads' status by hand without racing them.
    pub fn controllers(mut self, on: bool) -> Self {
        self.controllers = on;
        self
    }

    /// With the process kubelet: an argv element equal to `from` (a command path, or the image
    /// of a container without a command) runs `to` instead. Repeatable.
    pub fn resolve(mut self, from: impl Into<String>, to: impl Into<PathBuf>) -> Self {
        let to: PathBuf = to.into();
        // Containers run in their pod's directory: a relative path means relative to here.
        let to = std::path::absolute(&to).unwrap_or(to);
        self.resolve
            .push((from.into(), to.to_string_lossy().into_owned()));
        self
    }

    /// Starts the server.
    pub async fn start(self) -> Result<TestServer, StartError> {
        if self.process_kubelet && !process_kubelet::launcher_available() {
            return Err(StartError::ProcessKubelet);
        }
        let app = app::App::new(self.auth, self.retained, self.bookmark_interval);
        let tls = if self.tls {
            Some(tls::generate().map_err(StartError::Tls)?)
        } else {
            None
        };
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let running = server::start(app.clone(), self.addr, tls)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.addr,
                source,
            })?;
        let (path, temp_dir) = match self.kubeconfig {
            Some(p) => (p, None),
            None => {
                let dir =
                    std::env::temp_dir().join(format!("zen-lead-testkit-{}", uuid::Uuid::new_v4()));
                (dir.join("kubeconfig"), Some(dir))
            }
        };
        let text = kubeconfig::render(
            &running.url,
            ca_pem.as_deref(),
            self.auth.then_some(ADMIN_TOKEN),
        );
        kubeconfig::write(&path, &text).map_err(|source| StartError::Kubeconfig {
            path: path.clone(),
            source,
        })?;
        let cluster = cluster::Cluster::new(app.clone());
        let runner = if self.process_kubelet {
            workloads::Runner::Processes
        } else {
            workloads::Runner::Simulated
        };
        let process_kubelet = self.process_kubelet.then(|| {
            let config = process_kubelet::Config {
                resolve: self.resolve.clone(),
                server_url: running.url.clone(),
                ca_pem: ca_pem.clone(),
            };
            let root = std::env::temp_dir()
                .join(format!("zen-lead-testkit-pods-{}", uuid::Uuid::new_v4()));
            process_kubelet::ProcessKubelet::start(
                cluster.clone(),
                cluster.pod_logs(),
                config,
                root,
            )
        });
        let workloads = self
            .controllers
            .then(|| workloads::Workloads::start(cluster, runner));
        Ok(TestServer {
            process_kubelet,
            _workloads: workloads,
            app,
            running,
            ca_pem,
            kubeconfig: path,
            temp_dir,
        })
    }
}

/// A running API server emulator; dropping it stops the server.
#[derive(Debug)]
pub struct TestServer {
    // Dropped first: no container process outlives the server.
    process_kubelet: Option<process_kubelet::ProcessKubelet>,
    _workloads: Option<workloads::Workloads>,
    app: Arc<app::App>,
    running: server::Running,
    ca_pem: Option<String>,
    kubeconfig: PathBuf,
    temp_dir: Option<PathBuf>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl TestServer {
    /// Starts a plain-HTTP server without auth on a free loopback port.
    pub async fn start() -> Result<Self, StartError> {
        Builder::default().start().await
    }

    /// Options.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `http://127.0.0.1:PORT` (or https).
    pub fn url(&self) -> &str {
        &self.running.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// The admin endpoint base, e.g. `http://127.0.0.1:PORT/testkit/`.
    pub fn admin_url(&self) -> String {
        format!("{}{}", self.running.url, admin::PREFIX)
    }

    /// The kubeconfig written for this server (context namespace `default`; admin token in
    /// auth mode; CA data in TLS mode).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The CA certificate (PEM) in TLS mode.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kube config for this server with `user_agent` as client identity and, in auth mode,
    /// `token` (the admin token if None).
    pub fn config(
        &self,
        user_agent: &str,
        token: Option<&str>,
    ) -> Result<kube::Config, ClientError> {
        let uri: http::Uri = self
            .url()
            .parse()
            .map_err(|e| ClientError::Config(Box::new(e)))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        if let Some(pem) = &self.ca_pem {
            config.root_cert = Some(vec![kubeconfig::pem_to_der(pem)]);
        }
        if self.app.auth || token.is_some() {
            let token = token.unwrap_or(ADMIN_TOKEN);
            config.auth_info = serde_json::from_value(serde_json::json!({"token": token}))
                .map_err(|e| ClientError::Config(Box::new(e)))?;
        }
        let ua = http::HeaderValue::from_str(user_agent)
            .map_err(|e| ClientError::Config(Box::new(e)))?;
        config.headers.push((http::header::USER_AGENT, ua));
        Ok(config)
    }

    /// A client with identity `testkit-client`.
    pub fn client(&self) -> Result<kube::Client, ClientError> {
        self.client_as("testkit-client")
    }

    /// A client with `user_agent` as its identity for faults and accounting.
    pub fn client_as(&self, user_agent: &str) -> Result<kube::Client, ClientError> {
        kube::Client::try_from(self.config(user_agent, None)?).map_err(ClientError::Client)
    }

    /// A client authenticating with `token` (auth mode).
    pub fn client_with_token(
        &self,
        user_agent: &str,
        token: &str,
    ) -> Result<kube::Client, ClientError> {
        kube::Client::try_from(self.config(user_agent, Some(token))?).map_err(ClientError::Client)
    }

    /// The kubelet simulation.
    pub fn kubelet(&self) -> Kubelet {
        Kubelet::new(self.app.clone())
    }

    /// Fault controls.
    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    /// Request counters.
    pub fn accounting(&self) -> &Accounting {
        &self.app.accounting
    }

    /// The token table (auth mode).
    pub fn tokens(&self) -> &Tokens {
        &self.app.tokens
    }

    /// Whether pods run as local processes.
    pub fn runs_processes(&self) -> bool {
        self.process_kubelet.is_some()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.app.store.current_rv()
    }
}
