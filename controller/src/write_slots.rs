//! The API writes in flight at once (`--write-concurrency`): one fair bound shared by every
//! reconcile and Event (docs/ARCHITECTURE.md, "The controller").
//!
//! Reconciles themselves are not bounded, so no pool waits for a free reconcile. Their writes
//! queue here first come, first served: a burst of thousands of pools does not open a
//! connection per write, and every pool, its renewal included, gets its turn in order. A write
//! gives up its place, queued or in flight, at its time limit.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// The bound: clones share it.
#[derive(Debug, Clone)]
pub struct WriteSlots(Arc<Semaphore>);

impl WriteSlots {
    /// At most `slots` writes at once (at least one).
    pub fn new(slots: u16) -> Self {
        Self(Arc::new(Semaphore::new(usize::from(slots.max(1)))))
    }

    /// Runs `write` once a slot is free; `None` when `limit` passes first, waiting or writing.
    pub async fn run<T>(&self, limit: Duration, write: impl Future<Output = T>) -> Option<T> {
        tokio::time::timeout(limit, async {
            // The semaphore is never closed; a write without a slot would still be bounded by
            // `limit`.
            let _slot = self.0.acquire().await;
            write.await
        })
        .await
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn at_most_the_bound_runs_at_once_and_all_finish() {
        let slots = WriteSlots::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let writes = (0..8).map(|_| {
            let (slots, running, most) = (slots.clone(), running.clone(), most.clone());
            async move {
                slots
                    .run(Duration::from_secs(30), async {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }
        });
        let done = futures::future::join_all(writes).await;
        assert!(done.iter().all(Option::is_some));
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_write_waiting_past_its_limit_gives_up_and_a_hung_one_frees_its_slot() {
        let slots = WriteSlots::new(1);
        let hung = slots.run(Duration::from_millis(50), std::future::pending::<()>());
        assert_eq!(hung.await, None);
        // The slot the hung write held is free again.
        assert_eq!(
            slots.run(Duration::from_secs(5), async { 7 }).await,
            Some(7)
        );
        // A write queued behind one that holds the slot past the waiter's limit gives up.
        let holder = slots.clone();
        let held = tokio::spawn(async move {
            holder
                .run(
                    Duration::from_secs(5),
                    tokio::time::sleep(Duration::from_millis(300)),
                )
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            slots.run(Duration::from_millis(50), async { 1 }).await,
            None
        );
        assert!(held.await.expect("join").is_some());
    }
}
