//! The Lease protocol (docs/PROTOCOL.md): one `coordination.k8s.io/v1` Lease per pool.
//!
//! The public API is the [`Elector`]: spawn it for a candidate, read its [`LeaderState`], release
//! or hand over when the work is done. `zen-lead-exec` and the controller both build on it.
//!
//! Submodules: `record` (the Lease as zen-lead reads and writes it),
//! `decision` (the pure decision core: observed record + BOOTTIME clock -> action),
//! `driver` (the async task: watch, conditional writes, renew, release),
//! `server_clock` (the API server's `Date`, for the end of a `--min-hold` and the freshness of
//! the controller's Lease),
//! `steward` (the controller's pure decision: acquire for a pod, renew for it, hand over on
//! evidence, release for a finished gated pod, built on `decision`).

pub mod decision;
mod driver;
pub mod record;
pub(crate) mod server_clock;
pub mod steward;

/// Jittered exponential backoff, for callers that retry a whole campaign.
pub(crate) use driver::backoff as outage_backoff;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::BootInstant;

/// The timing of one pool (docs/API.md, docs/PROTOCOL.md §4), already validated by [`crate::timing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a record must stay unchanged before another candidate may take it.
    pub lease_duration: Duration,
    /// A holder that has not renewed successfully for this long (from the send time of its last
    /// successful renewal) leads no more.
    pub renew_deadline: Duration,
    /// Renew / retry interval.
    pub retry_period: Duration,
}

/// Who this candidate is (docs/PROTOCOL.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `holderIdentity`: the pod name by default.
    pub identity: String,
    /// The pod UID, when known (`POD_UID`), written to the `zen-lead/holder-uid` annotation.
    pub pod_uid: Option<String>,
    /// A fresh id per process, written to the `zen-lead/session` annotation.
    pub session: String,
}

/// What to elect for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// The pool: the Lease and LeaderPolicy name.
    pub pool: String,
    /// The namespace of the pool.
    pub namespace: String,
    /// This candidate.
    pub candidate: Candidate,
    /// Timings.
    pub timing: Timing,
    /// `--min-hold`: on release, keep the lease held until `acquireTime + min_hold`.
    pub min_hold: Option<Duration>,
}

/// The elector's view of this candidate's role, published on a `watch` channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderState {
    /// Not yet observed the Lease.
    Starting,
    /// Someone else holds the lease (or nobody, and we are about to try).
    Following {
        /// The current holder identity, if any.
        holder: Option<String>,
    },
    /// We hold the lease.
    Leading {
        /// The term (`leaseTransitions` after our acquisition): the fencing token.
        term: u64,
        /// The instant we lead no more unless a renewal succeeds first:
        /// send time of the last successful write + `renew_deadline`. A consumer must
        /// stop work by this instant even if it hears nothing else from the elector.
        deadline: BootInstant,
    },
    /// We held the lease and lost it; the elector has stopped.
    Lost {
        /// Why.
        reason: LostReason,
    },
}

/// Why a holder leads no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// `renew_deadline` passed without a successful renewal (partition, API errors, pause).
    RenewDeadline,
    /// Another holder is recorded in the Lease.
    Superseded {
        /// The new holder.
        holder: String,
    },
    /// The Lease was deleted.
    Deleted,
}

/// Errors the elector cannot heal by retrying.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// 401/403 from the API server: fix RBAC or credentials.
    #[error("permission denied on lease {namespace}/{pool}: {message}")]
    Forbidden {
        /// Pool.
        pool: String,
        /// Namespace.
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// A Lease of that name exists without `app.kubernetes.io/managed-by=zen-lead`.
    #[error(
        "lease {namespace}/{pool} exists but is not managed by zen-lead; refusing to take it over"
    )]
    Unmanaged {
        /// Pool.
        pool: String,
        /// Namespace.
        namespace: String,
    },
    /// The API server could not be reached within the allowed time.
    #[error("API server unreachable for lease {namespace}/{pool}")]
    Unreachable {
        /// Pool.
        pool: String,
        /// Namespace.
        namespace: String,
        /// The last error.
        #[source]
        source: kube::Error,
    },
    /// The elector stopped (it lost the lease, was released, or its task ended) before it
    /// could do what was asked.
    #[error("the elector for lease {namespace}/{pool} has stopped")]
    Stopped {
        /// Pool.
        pool: String,
        /// Namespace.
        namespace: String,
    },
    /// The next term would pass the largest term a Lease can carry, or the Lease's term is
    /// negative (docs/PROTOCOL.md §3): the pool refuses to elect rather than repeat a term.
    #[error("lease {namespace}/{pool}: {source}")]
    TermOverflow {
        /// Pool.
        pool: String,
        /// Namespace.
        namespace: String,
        /// The refused term.
        #[source]
        source: record::TermOverflow,
    },
    /// No clock can be read, so no deadline or expiry can be judged (docs/PROTOCOL.md §2).
    #[error("lease {namespace}/{pool}: the clock failed")]
    Clock {
        /// Pool.
        pool: String,
        /// Namespace.
        namespace: String,
        /// The clock error.
        #[source]
        source: crate::clock::ClockError,
    },
    /// Any other API failure.
    #[error("lease {namespace}/{pool}: API request failed")]
    Api {
        /// Pool.
        pool: String,
        /// Namespace.
        namespace: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// Handle on a running elector task.
#[derive(Debug)]
pub struct Elector {
    state: watch::Receiver<LeaderState>,
    commands: mpsc::Sender<driver::Command>,
    task: Option<tokio::task::JoinHandle<Result<(), LeaseError>>>,
    failure: Option<LeaseError>,
    pool: String,
    namespace: String,
}

impl Elector {
    /// Starts campaigning: observes the pool's Lease (watch, no polling), acquires it when
    /// allowed, renews while leading, and publishes the state. Must be called within a Tokio
    /// runtime; dropping the handle stops the task without releasing.
    pub fn spawn(client: kube::Client, config: ElectionConfig) -> Self {
        Self::spawn_above(client, config, 0)
    }

    /// Like [`Elector::spawn`], for a process that already led the pool under `term` (e.g.
    /// `--rejoin`): a Lease it creates or acquires gets a term above `term`, even if the Lease
    /// was deleted and no `LeaderPolicy` high-water mark is readable (docs/PROTOCOL.md §3). A controller
    /// handover keeps the controller's term.
    pub fn spawn_above(client: kube::Client, config: ElectionConfig, term: u64) -> Self {
        let (state_tx, state) = watch::channel(LeaderState::Starting);
        let (commands, commands_rx) = mpsc::channel(1);
        let pool = config.pool.clone();
        let namespace = config.namespace.clone();
        let task = driver::spawn(client, config, state_tx, commands_rx, term);
        Self {
            state,
            commands,
            task: Some(task),
            failure: None,
            pool,
            namespace,
        }
    }

    /// The state channel.
    pub fn state(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    fn stopped(&self) -> LeaseError {
        LeaseError::Stopped {
            pool: self.pool.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// Waits for the task to end and keeps its error, if any.
    async fn join(&mut self) {
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => self.failure = Some(error),
                Err(join) => {
                    tracing::debug!(error = %join, "elector task ended abnormally");
                }
            }
        }
    }

    /// Waits until this candidate leads, the elector loses for good, or fails.
    /// Returns the term. Fails with a [`LeaseError`] that cannot heal (RBAC, unmanaged lease).
    pub async fn leading(&mut self) -> Result<u64, LeaseError> {
        loop {
            let state = self.state.borrow_and_update().clone();
            match state {
                LeaderState::Leading { term, .. } => return Ok(term),
                LeaderState::Lost { .. } => {
                    // `Lost` is the elector's last word: its task is ending. Report its error
                    // if it failed, else that it stopped.
                    self.join().await;
                    return Err(self.failure.take().unwrap_or_else(|| self.stopped()));
                }
                LeaderState::Starting | LeaderState::Following { .. } => {}
            }
            if self.state.changed().await.is_err() {
                // The task ended: report why.
                self.join().await;
                return Err(self.failure.take().unwrap_or_else(|| self.stopped()));
            }
        }
    }

    /// Stops campaigning. If leading: empties the holder in one conditional write (honouring
    /// `min_hold`), so that a standby takes over at once. Call only after the work has stopped.
    pub async fn release(self) -> Result<(), LeaseError> {
        self.release_with(true).await
    }

    /// Like [`Elector::release`], but at once, ignoring `min_hold`: for a term whose work never
    /// started, so that there is no run to de-duplicate and a successor may lead at once.
    pub async fn release_unused(self) -> Result<(), LeaseError> {
        self.release_with(false).await
    }

    async fn release_with(mut self, honour_hold: bool) -> Result<(), LeaseError> {
        let command = |reply| driver::Command::Release { reply, honour_hold };
        if let Some(result) = self.command(command).await {
            return result;
        }
        // The task had already stopped: nothing is held by us any more.
        match self.failure.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Gate mode (docs/EXEC.md): while leading, marks the Lease `renewer: controller` in one
    /// conditional write and stops renewing. Returns the term.
    pub async fn hand_to_controller(mut self) -> Result<u64, LeaseError> {
        if let Some(result) = self.command(driver::Command::HandToController).await {
            return result;
        }
        Err(self.failure.take().unwrap_or_else(|| self.stopped()))
    }

    /// Sends the task a last command and waits for the task to end. Returns the command's answer,
    /// or `None` if the task had already stopped without answering (its error, if any, is then
    /// in `self.failure`).
    async fn command<T>(
        &mut self,
        command: impl FnOnce(oneshot::Sender<Result<T, LeaseError>>) -> driver::Command,
    ) -> Option<Result<T, LeaseError>> {
        let (reply, answer) = oneshot::channel();
        let answered = match self.commands.send(command(reply)).await {
            Ok(()) => answer.await.ok(),
            Err(_) => None,
        };
        self.join().await;
        answered
    }

    /// Errors the elector hit that cannot heal, if it stopped because of one.
    pub async fn failure(&mut self) -> Option<LeaseError> {
        if self.task.as_ref().is_some_and(|t| t.is_finished()) {
            self.join().await;
        }
        self.failure.take()
    }
}
