//! The controller's own leadership (docs/ARCHITECTURE.md, "Operations"): replicas elect through
//! the library's [`Elector`] on the Lease `zen-lead-controller` in the controller's namespace.
//! Only the leader writes; every replica keeps its caches warm.
//!
//! A write asks for a [`Permit`] first. A permit is refused once the elector's renew deadline has
//! passed, even if the elector task never said so (it may be starved), and it carries the
//! deadline, so that a write in flight is abandoned at the deadline: a controller that loses its
//! own Lease stops writing before another replica can start (docs/PROTOCOL.md §4).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{Instrument, info, warn};
use zen_lead::clock::BootInstant;
use zen_lead::lease::{ElectionConfig, Elector, LeaderState};

/// The name of the controller's own Lease (gates read it to see that the controller is alive).
pub const LEASE_NAME: &str = zen_lead::api::CONTROLLER_LEASE;

/// This replica does not lead (or its renew deadline has passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this controller replica does not hold the zen-lead-controller Lease")]
pub struct NotLeader;

/// Leave to write until `deadline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// The instant this replica leads no more unless its own Lease is renewed.
    pub deadline: BootInstant,
}

impl Permit {
    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.remaining()
    }
}

/// A handle on this replica's leadership.
#[derive(Debug, Clone)]
pub struct Leadership {
    deadline: watch::Receiver<Option<BootInstant>>,
    /// How many times this replica started leading: what it remembers writing is only
    /// trusted within one tenure (another replica may have written in between).
    tenure: Arc<AtomicU64>,
}

impl Leadership {
    /// A leadership that always leads until `deadline` changes: for tests and for a single
    /// replica that needs no election.
    pub fn fixed(deadline: watch::Receiver<Option<BootInstant>>) -> Self {
        Self {
            deadline,
            tenure: Arc::default(),
        }
    }

    /// The current tenure: it changes each time this replica starts leading.
    pub fn tenure(&self) -> u64 {
        self.tenure.load(Ordering::SeqCst)
    }

    /// Leave to write, if this replica leads and its deadline has not passed.
    pub fn permit(&self) -> Result<Permit, NotLeader> {
        match *self.deadline.borrow() {
            Some(deadline) if !deadline.has_passed() => Ok(Permit { deadline }),
            _ => Err(NotLeader),
        }
    }

    /// Whether this replica leads now.
    pub fn is_leading(&self) -> bool {
        self.permit().is_ok()
    }

    /// Starts campaigning for the controller's Lease; campaigns again after losing it. Each
    /// time this replica starts leading, `started` gets a message (to reconcile every pool).
    /// Returns the handle and the campaign task, which releases the Lease when `shutdown`
    /// fires.
    pub fn spawn(
        client: kube::Client,
        config: ElectionConfig,
        started: mpsc::UnboundedSender<()>,
        mut shutdown: watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let tenure = Arc::new(AtomicU64::new(0));
        let tenure_out = Arc::clone(&tenure);
        let span = tracing::info_span!("leadership", identity = %config.candidate.identity);
        let task = tokio::spawn(
            async move {
                let mut failures = 0u32;
                loop {
                    let mut elector = Elector::spawn(client.clone(), config.clone());
                    let mut state = elector.state();
                    let mut led = false;
                    let stop = loop {
                        let current = state.borrow_and_update().clone();
                        match current {
                            LeaderState::Leading { deadline, .. } => {
                                if !led {
                                    // Before the first permit of this tenure.
                                    tenure.fetch_add(1, Ordering::SeqCst);
                                }
                                tx.send_replace(Some(deadline));
                                if !led {
                                    led = true;
                                    failures = 0;
                                    info!("leading: this replica writes");
                                    let _ = started.send(());
                                }
                            }
                            LeaderState::Lost { reason } => {
                                tx.send_replace(None);
                                warn!(?reason, "lost the controller Lease: stopped writing");
                                break false;
                            }
                            LeaderState::Starting | LeaderState::Following { .. } => {
                                tx.send_replace(None);
                            }
                        }
                        tokio::select! {
                            changed = state.changed() => if changed.is_err() { break false },
                            _ = shutdown.changed() => break true,
                        }
                    };
                    // Nothing may write from here on, whatever the elector does next.
                    tx.send_replace(None);
                    if stop {
                        if led && let Err(error) = elector.release().await {
                            warn!(%error, "releasing the controller Lease failed; it expires");
                        }
                        return;
                    }
                    if let Some(error) = elector.failure().await {
                        warn!(%error, "the controller election failed; campaigning again");
                    }
                    drop(elector);
                    failures += 1;
                    let pause = config.timing.retry_period * failures.min(5);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
            .instrument(span),
        );
        (
            Self {
                deadline: rx,
                tenure: tenure_out,
            },
            task,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permit_ends_at_the_deadline() {
        let (tx, rx) = watch::channel(None);
        let leadership = Leadership::fixed(rx);
        assert_eq!(leadership.permit(), Err(NotLeader));
        let later = BootInstant::now() + Duration::from_secs(60);
        tx.send_replace(Some(later));
        assert_eq!(leadership.permit(), Ok(Permit { deadline: later }));
        // A deadline in the past refuses even though nobody said "lost".
        tx.send_replace(Some(BootInstant::now() - Duration::from_secs(1)));
        assert!(!leadership.is_leading());
    }
}
