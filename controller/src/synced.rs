//! Whether the controller's caches (pods, managed Leases, LeaderPolicies) hold their initial
//! lists: nothing is written before they do, and `/readyz` waits for it.
//!
//! Readiness is taken from each watch stream's `InitDone`, not from kube-runtime's
//! `Store::wait_until_ready`: that future wakes only the last of several waiters, and the
//! `Controller`'s own runner already waits on the LeaderPolicy store, so a second waiter there
//! may never wake.

use kube::runtime::watcher;
use tokio::sync::watch;

/// The senders, one per cache, set by the streams that fill the caches.
#[derive(Debug)]
pub struct Marks {
    /// The pod cache.
    pub pods: watch::Sender<bool>,
    /// The managed-Lease cache.
    pub leases: watch::Sender<bool>,
    /// The LeaderPolicy cache.
    pub policies: watch::Sender<bool>,
}

/// A view of the three caches' readiness; cheap to clone.
#[derive(Debug, Clone)]
pub struct Synced {
    pods: watch::Receiver<bool>,
    leases: watch::Receiver<bool>,
    policies: watch::Receiver<bool>,
}

/// New marks, all unset, and their view.
pub fn channel() -> (Marks, Synced) {
    let (pods, pods_rx) = watch::channel(false);
    let (leases, leases_rx) = watch::channel(false);
    let (policies, policies_rx) = watch::channel(false);
    (
        Marks {
            pods,
            leases,
            policies,
        },
        Synced {
            pods: pods_rx,
            leases: leases_rx,
            policies: policies_rx,
        },
    )
}

/// An `inspect_ok` callback that sets `mark` at the stream's `InitDone`. Put it after the
/// reflector, which has stored the initial list by then.
pub fn on_init_done<K>(mark: watch::Sender<bool>) -> impl FnMut(&watcher::Event<K>) {
    move |event| {
        if matches!(event, watcher::Event::InitDone) {
            mark.send_replace(true);
        }
    }
}

impl Synced {
    /// Whether every cache holds its initial list.
    pub fn all(&self) -> bool {
        *self.pods.borrow() && *self.leases.borrow() && *self.policies.borrow()
    }

    /// Whether the LeaderPolicy cache holds its initial list.
    pub fn policies(&self) -> bool {
        *self.policies.borrow()
    }

    /// Waits until every cache holds its initial list; `false` if a stream ended before.
    pub async fn wait_all(&mut self) -> bool {
        self.pods.wait_for(|v| *v).await.is_ok()
            && self.leases.wait_for(|v| *v).await.is_ok()
            && self.policies.wait_for(|v| *v).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes() {
        let (marks, synced) = channel();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let mut s = synced.clone();
                tokio::spawn(async move { s.wait_all().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!synced.all());
        let mut pods = on_init_done::<()>(marks.pods);
        pods(&watcher::Event::Init);
        assert!(!synced.all());
        pods(&watcher::Event::InitDone);
        on_init_done::<()>(marks.leases)(&watcher::Event::InitDone);
        on_init_done::<()>(marks.policies)(&watcher::Event::InitDone);
        for waiter in waiters {
            assert!(waiter.await.unwrap());
        }
        assert!(synced.all() && synced.policies());
    }
}
