//! One candidate of each library behind a common handle: leadership as a `watch<bool>`, a
//! graceful release and a crash, each done the way the library's documentation says.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zen_lead::lease::{Candidate, ElectionConfig, Elector, LeaderState, Timing};
use zen_lead_testkit::TestServer;

/// The namespace every pool lives in.
pub const NAMESPACE: &str = "default";

/// A leader-election library under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// zen-lead's own elector (`zen_lead::lease::Elector`).
    ZenLead,
    /// `kube-leader-election` (`LeaseLock`, polled).
    KubeLeaderElection,
    /// `kube-lease-manager` (`LeaseManager::watch`).
    KubeLeaseManager,
}

impl Contender {
    /// All contenders, zen-lead first.
    pub const ALL: [Contender; 3] = [
        Contender::ZenLead,
        Contender::KubeLeaderElection,
        Contender::KubeLeaseManager,
    ];

    /// A short name for pool and client names.
    pub fn slug(self) -> &'static str {
        match self {
            Contender::ZenLead => "zen",
            Contender::KubeLeaderElection => "kle",
            Contender::KubeLeaseManager => "klm",
        }
    }

    /// How it is driven, for the report.
    pub fn settings(self, lease: Duration) -> String {
        let secs = lease.as_secs();
        match self {
            Contender::ZenLead => format!(
                "lease {secs} s, renew deadline {}, retry {} (its defaults at 15 s); followers watch",
                crate::report::setting(zen_timing(lease).renew_deadline),
                crate::report::setting(zen_timing(lease).retry_period)
            ),
            Contender::KubeLeaderElection => format!(
                "lease_ttl {secs} s, try_acquire_or_renew every {} (ttl/3, as its docs advise); standbys poll the same way",
                crate::report::setting(kle_poll(lease))
            ),
            Contender::KubeLeaseManager => format!(
                "duration {secs} s, grace {} s (default); watch() task; followers sleep to expiry",
                kube_lease_manager::DEFAULT_LEASE_GRACE_SECONDS
            ),
        }
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Contender::ZenLead => "zen-lead 0.1.0",
            Contender::KubeLeaderElection => "kube-leader-election 0.44",
            Contender::KubeLeaseManager => "kube-lease-manager 0.13",
        })
    }
}

/// zen-lead's timing for a lease duration: its defaults are 15 s / 10 s / 2 s, scaled alike
/// for other durations.
pub fn zen_timing(lease: Duration) -> Timing {
    Timing {
        lease_duration: lease,
        renew_deadline: lease * 2 / 3,
        retry_period: lease * 2 / 15,
    }
}

/// kube-leader-election's documentation: "if `lease_ttl` is set to 15 seconds, one should
/// renew it every 5 seconds". Standbys use the same loop.
pub fn kle_poll(lease: Duration) -> Duration {
    lease / 3
}

/// Starting a candidate failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No client could be built for the testkit server.
    #[error("building a client for {identity}")]
    Client {
        /// The candidate.
        identity: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// kube-lease-manager could not set up its Lease.
    #[error("starting kube-lease-manager for {identity}")]
    LeaseManager {
        /// The candidate.
        identity: String,
        /// The cause.
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
}

/// A running candidate.
pub struct Handle {
    /// Its identity (also its client's user agent, or part of it for zen-lead).
    pub identity: String,
    leading: watch::Receiver<bool>,
    inner: Inner,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("identity", &self.identity)
            .field("leading", &*self.leading.borrow())
            .finish_non_exhaustive()
    }
}

enum Inner {
    Zen {
        elector: Elector,
        forward: JoinHandle<()>,
    },
    Kle {
        lock: Arc<kube_leader_election::LeaseLock>,
        task: JoinHandle<()>,
    },
    Klm {
        task: JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
    },
}

impl Handle {
    /// Starts a candidate of `contender` for `pool`.
    pub async fn spawn(
        server: &TestServer,
        contender: Contender,
        pool: &str,
        identity: &str,
        lease: Duration,
    ) -> Result<Self, SpawnError> {
        let client_error = |source: Box<dyn std::error::Error + Send + Sync>| SpawnError::Client {
            identity: identity.to_string(),
            source,
        };
        match contender {
            Contender::ZenLead => {
                let config = server
                    .config(identity, None)
                    .map_err(|e| client_error(Box::new(e)))?;
                let client = zen_lead::client::from_config(config, identity)
                    .map_err(|e| client_error(Box::new(e)))?;
                let elector = Elector::spawn(
                    client,
                    ElectionConfig {
                        pool: pool.to_string(),
                        namespace: NAMESPACE.to_string(),
                        candidate: Candidate {
                            identity: identity.to_string(),
                            pod_uid: None,
                            session: zen_lead::identity::new_session(),
                        },
                        timing: zen_timing(lease),
                        min_hold: None,
                    },
                );
                let (tx, leading) = watch::channel(false);
                let mut state = elector.state();
                let forward = tokio::spawn(async move {
                    loop {
                        let now = matches!(*state.borrow_and_update(), LeaderState::Leading { .. });
                        tx.send_replace(now);
                        if state.changed().await.is_err() {
                            tx.send_replace(false);
                            return;
                        }
                    }
                });
                Ok(Self {
                    identity: identity.to_string(),
                    leading,
                    inner: Inner::Zen { elector, forward },
                })
            }
            Contender::KubeLeaderElection => {
                let client = kube4_client(server, identity).map_err(client_error)?;
                let lock = Arc::new(kube_leader_election::LeaseLock::new(
                    client,
                    NAMESPACE,
                    kube_leader_election::LeaseLockParams {
                        lease_name: pool.to_string(),
                        holder_id: identity.to_string(),
                        lease_ttl: lease,
                    },
                ));
                let (tx, leading) = watch::channel(false);
                let poll = kle_poll(lease);
                let task = tokio::spawn({
                    let lock = lock.clone();
                    let identity = identity.to_string();
                    async move {
                        loop {
                            match lock.try_acquire_or_renew().await {
                                Ok(kube_leader_election::LeaseLockResult::Acquired(_)) => {
                                    tx.send_replace(true);
                                }
                                Ok(kube_leader_election::LeaseLockResult::NotAcquired(_)) => {
                                    tx.send_replace(false);
                                }
                                Err(error) => {
                                    // The crate's own loop (its examples) logs and tries again.
                                    tracing::debug!(%identity, %error, "try_acquire_or_renew failed");
                                }
                            }
                            tokio::time::sleep(poll).await;
                        }
                    }
                });
                Ok(Self {
                    identity: identity.to_string(),
                    leading,
                    inner: Inner::Kle { lock, task },
                })
            }
            Contender::KubeLeaseManager => {
                let config = server
                    .config(identity, None)
                    .map_err(|e| client_error(Box::new(e)))?;
                let client =
                    kube::Client::try_from(config).map_err(|e| client_error(Box::new(e)))?;
                let manager = LeaseManagerBuilder::new(client, pool)
                    .with_namespace(NAMESPACE)
                    .with_identity(identity)
                    .with_duration(lease.as_secs())
                    .build()
                    .await
                    .map_err(|source| SpawnError::LeaseManager {
                        identity: identity.to_string(),
                        source,
                    })?;
                let (leading, task) = manager.watch().await;
                Ok(Self {
                    identity: identity.to_string(),
                    leading,
                    inner: Inner::Klm { task },
                })
            }
        }
    }

    /// Whether it leads now.
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits until it leads (or its library gave up).
    pub async fn wait_leading(&self) -> bool {
        let mut rx = self.leading.clone();
        rx.wait_for(|l| *l).await.is_ok()
    }

    /// Gives leadership up the way the library documents: zen-lead `Elector::release`,
    /// kube-leader-election `step_down` (after stopping the renew loop), kube-lease-manager by
    /// closing the `watch()` channel, after which its task releases the lease and ends.
    pub async fn release(self) {
        match self.inner {
            Inner::Zen { elector, forward } => {
                if let Err(error) = elector.release().await {
                    tracing::warn!(identity = %self.identity, %error, "zen-lead release failed");
                }
                forward.abort();
            }
            Inner::Kle { lock, task } => {
                task.abort();
                let _ = task.await;
                if let Err(error) = lock.step_down().await {
                    tracing::warn!(identity = %self.identity, %error, "step_down failed");
                }
            }
            Inner::Klm { task } => {
                drop(self.leading);
                match task.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(identity = %self.identity, %error, "lease manager release failed");
                    }
                    Err(error) => {
                        tracing::warn!(identity = %self.identity, %error, "lease manager task failed");
                    }
                }
            }
        }
    }

    /// Stops without releasing, as a crashed process would: the lease is left held.
    pub fn crash(self) {
        match self.inner {
            // Dropping the handle aborts the elector task without a release.
            Inner::Zen { elector, forward } => {
                drop(elector);
                forward.abort();
            }
            Inner::Kle { task, .. } => task.abort(),
            // Abort before the channel closes, or the task would release on its way out.
            Inner::Klm { task } => task.abort(),
        }
    }
}

/// A kube 4 client (kube-leader-election's kube) for the testkit server, with `user_agent` as
/// its identity for the server's accounting.
fn kube4_client(
    server: &TestServer,
    user_agent: &str,
) -> Result<kube4::Client, Box<dyn std::error::Error + Send + Sync>> {
    let uri: http::Uri = server.url().parse()?;
    let mut config = kube4::Config::new(uri);
    config.default_namespace = NAMESPACE.into();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(user_agent)?,
    ));
    Ok(kube4::Client::try_from(config)?)
}
