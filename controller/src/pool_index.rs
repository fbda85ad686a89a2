//! The annotated pods by pool: the reflector's store of [`PodView`]s, and an index beside it,
//! kept from the same watch events, so a reconcile reads its own pool's pods instead of scanning
//! every pod in the cluster (docs/ARCHITECTURE.md, "The controller").
//!
//! The index only names pods; the store stays the truth. [`PoolPods::of`] looks every name up
//! in the store and keeps the pods whose view is in the pool, so a name the index still holds
//! for a pod that has gone, or moved to another pool, is harmless. The index sees each event
//! just before the store does: a pod enters the pool's view once the store has it, and leaves
//! it with its deletion event.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::pods::PodView;

/// A pool: namespace and `LeaderPolicy` name.
type PoolKey = (String, String);
/// A pod: namespace and name.
type PodKey = (String, String);

/// The annotated pods, and which pool each belongs to.
#[derive(Clone)]
pub struct PoolPods {
    store: Store<PodView>,
    index: PoolIndex,
}

impl PoolPods {
    /// The pods of `store`, found through `index`, which must see every event of the stream
    /// that fills the store.
    pub fn new(store: Store<PodView>, index: PoolIndex) -> Self {
        Self { store, index }
    }

    /// The pool's pods, in name order.
    pub fn of(&self, namespace: &str, pool: &str) -> Vec<PodView> {
        self.index
            .names(namespace, pool)
            .iter()
            .filter_map(|name| self.store.get(&ObjectRef::new(name).within(namespace)))
            .filter(|pod| pod.pool.as_deref() == Some(pool))
            .map(|pod| (*pod).clone())
            .collect()
    }
}

impl std::fmt::Debug for PoolPods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolPods").finish_non_exhaustive()
    }
}

/// The pod names of each pool, shared by the watch stream and the reconciles.
#[derive(Clone, Default)]
pub struct PoolIndex {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    members: Members,
    /// A re-list in progress: the members it has listed so far, swapped in at its end, as the
    /// reflector swaps its store.
    relist: Option<Members>,
}

#[derive(Default)]
struct Members {
    names: HashMap<PoolKey, BTreeSet<String>>,
    pool_of: HashMap<PodKey, String>,
}

impl Members {
    /// Files the pod under its pool, or drops it when it names none.
    fn apply(&mut self, pod: &PodView) {
        let key = (pod.namespace.clone(), pod.name.clone());
        match &pod.pool {
            Some(pool) if self.pool_of.get(&key) == Some(pool) => {}
            Some(pool) => {
                self.remove(&key);
                self.names
                    .entry((key.0.clone(), pool.clone()))
                    .or_default()
                    .insert(key.1.clone());
                self.pool_of.insert(key, pool.clone());
            }
            None => self.remove(&key),
        }
    }

    fn remove(&mut self, pod: &PodKey) {
        let Some(pool) = self.pool_of.remove(pod) else {
            return;
        };
        let key = (pod.0.clone(), pool);
        if let Some(names) = self.names.get_mut(&key) {
            names.remove(&pod.1);
            if names.is_empty() {
                self.names.remove(&key);
            }
        }
    }
}

impl PoolIndex {
    /// Follows one event of the pod watch.
    pub fn observe(&self, event: &watcher::Event<PodView>) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(pod) => inner.members.apply(pod),
            watcher::Event::Delete(pod) => inner
                .members
                .remove(&(pod.namespace.clone(), pod.name.clone())),
            watcher::Event::Init => inner.relist = Some(Members::default()),
            watcher::Event::InitApply(pod) => inner.relist.get_or_insert_default().apply(pod),
            watcher::Event::InitDone => {
                if let Some(listed) = inner.relist.take() {
                    inner.members = listed;
                }
            }
        }
    }

    /// The names of the pods filed under the pool, in name order.
    fn names(&self, namespace: &str, pool: &str) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .members
            .names
            .get(&(namespace.to_owned(), pool.to_owned()))
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for PoolIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolIndex").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::fixtures::candidate;
    use kube::runtime::reflector;

    fn pod(namespace: &str, name: &str, pool: Option<&str>) -> PodView {
        let mut pod = candidate(name);
        pod.namespace = namespace.into();
        pod.pool = pool.map(Into::into);
        pod
    }

    #[test]
    fn pods_are_filed_by_namespace_and_pool() {
        let index = PoolIndex::default();
        index.observe(&watcher::Event::Apply(pod("a", "b-1", Some("p"))));
        index.observe(&watcher::Event::Apply(pod("a", "a-1", Some("p"))));
        index.observe(&watcher::Event::Apply(pod("other", "c-1", Some("p"))));
        index.observe(&watcher::Event::Apply(pod("a", "d-1", Some("q"))));
        assert_eq!(index.names("a", "p"), ["a-1", "b-1"]);
        assert_eq!(index.names("other", "p"), ["c-1"]);
        assert_eq!(index.names("a", "q"), ["d-1"]);
        assert!(index.names("a", "none").is_empty());
    }

    #[test]
    fn a_pod_that_changes_pool_or_loses_it_moves_or_leaves() {
        let index = PoolIndex::default();
        index.observe(&watcher::Event::Apply(pod("a", "x", Some("p"))));
        index.observe(&watcher::Event::Apply(pod("a", "x", Some("q"))));
        assert!(index.names("a", "p").is_empty());
        assert_eq!(index.names("a", "q"), ["x"]);
        index.observe(&watcher::Event::Apply(pod("a", "x", None)));
        assert!(index.names("a", "q").is_empty());
        index.observe(&watcher::Event::Apply(pod("a", "x", Some("q"))));
        index.observe(&watcher::Event::Delete(pod("a", "x", Some("q"))));
        assert!(index.names("a", "q").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_members_at_its_end() {
        let index = PoolIndex::default();
        index.observe(&watcher::Event::Apply(pod("a", "gone", Some("p"))));
        index.observe(&watcher::Event::Apply(pod("a", "kept", Some("p"))));
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(pod("a", "kept", Some("p"))));
        index.observe(&watcher::Event::InitApply(pod("a", "new", Some("p"))));
        // Until the re-list ends, the members are the old ones, as in the store.
        assert_eq!(index.names("a", "p"), ["gone", "kept"]);
        index.observe(&watcher::Event::InitDone);
        assert_eq!(index.names("a", "p"), ["kept", "new"]);
    }

    #[test]
    fn a_pool_reads_its_pods_from_the_store_as_the_events_fill_both() {
        let (store, mut writer) = reflector::store::<PodView>();
        let index = PoolIndex::default();
        let pods = PoolPods::new(store, index.clone());
        let mut apply = |event: watcher::Event<PodView>| {
            index.observe(&event);
            writer.apply_watcher_event(&event);
        };
        apply(watcher::Event::Apply(pod("a", "one", Some("p"))));
        apply(watcher::Event::Apply(pod("a", "two", Some("p"))));
        apply(watcher::Event::Apply(pod("a", "three", Some("q"))));
        let names = |list: Vec<PodView>| list.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names(pods.of("a", "p")), ["one", "two"]);
        apply(watcher::Event::Delete(pod("a", "one", Some("p"))));
        apply(watcher::Event::Apply(pod("a", "three", Some("p"))));
        assert_eq!(names(pods.of("a", "p")), ["three", "two"]);
        assert!(pods.of("a", "q").is_empty());
        assert!(pods.of("b", "p").is_empty());
    }
}
