//! Object storage: one global resourceVersion counter and a bounded event history for watches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::errors::ApiError;

/// Kind of a stored change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventKind {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history until compacted.
#[derive(Debug, Clone)]
pub struct StoreEvent {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// Type key, `group/plural`.
    pub key: String,
    /// Namespace, `""` for cluster-scoped.
    pub namespace: String,
    /// What happened.
    pub kind: EventKind,
    /// The object after the change (for a delete: its last state, with the delete's rv).
    pub object: Value,
    /// The object before the change, to tell selector transitions apart.
    pub old: Option<Value>,
}

/// What a mutation closure decided.
#[derive(Debug)]
pub enum Mutation {
    /// Store a new object (its resourceVersion is assigned by the store).
    Create(Value),
    /// Replace the object.
    Update(Value),
    /// Remove the object; the value is its final state.
    Delete(Value),
    /// Change nothing and answer with this value.
    Noop(Value),
}

/// A watch could not start because the requested version is compacted away.
#[derive(Debug, Clone, Copy)]
pub struct Compacted {
    /// The oldest resourceVersion a watch may still start from.
    pub oldest: u64,
}

type Objects = BTreeMap<(String, String), Value>;

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// The objects.
    pub items: Vec<Value>,
    /// Matching objects after the page.
    pub remaining: u64,
    /// The store's resourceVersion at the time of the list.
    pub rv: u64,
}

#[derive(Debug)]
struct Inner {
    rv: u64,
    objects: HashMap<String, Objects>,
    history: VecDeque<Arc<StoreEvent>>,
    retained: usize,
    /// Events with `rv <= compacted` are gone.
    compacted: u64,
}

/// The object store shared by every request.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<StoreEvent>>,
}

/// Capacity of the live event channel; a watcher that falls this far behind is closed and
/// resumes from its last resourceVersion, as a slow watcher of the real server would.
const LIVE_CAPACITY: usize = 65_536;

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

impl Store {
    /// An empty store that keeps the last `retained` events for watches.
    pub fn new(retained: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                retained: retained.max(1),
                compacted: 0,
            }),
            events: broadcast::channel(LIVE_CAPACITY).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is one insert), so
        // a poisoned lock is safe to keep using.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, key: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(key)
            .and_then(|o| o.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// Objects of one type (in one namespace, or all when `ns` is None), in key order, starting
    /// after `after` (a `(namespace, name)` continue position), and the current resourceVersion.
    pub fn list(
        &self,
        key: &str,
        ns: Option<&str>,
        after: Option<&(String, String)>,
    ) -> (Vec<Value>, u64) {
        let page = self.list_page(key, ns, after, |_| true, None);
        (page.items, page.rv)
    }

    /// Like [`Store::list`], keeping only objects that pass `keep`, at most `limit` of them;
    /// counts the matching objects left over without copying them.
    pub fn list_page(
        &self,
        key: &str,
        ns: Option<&str>,
        after: Option<&(String, String)>,
        keep: impl Fn(&Value) -> bool,
        limit: Option<usize>,
    ) -> Page {
        let inner = self.lock();
        let mut page = Page {
            items: Vec::new(),
            remaining: 0,
            rv: inner.rv,
        };
        let Some(objs) = inner.objects.get(key) else {
            return page;
        };
        use std::ops::Bound;
        // Keys sort by namespace first, so one namespace is one contiguous range.
        let lower = match (after, ns) {
            (Some(pos), _) => Bound::Excluded(pos.clone()),
            (None, Some(n)) => Bound::Included((n.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        for ((ons, _), v) in objs.range::<(String, String), _>((lower, Bound::Unbounded)) {
            if let Some(n) = ns {
                if ons.as_str() > n {
                    break;
                }
                if ons != n {
                    continue;
                }
            }
            if !keep(v) {
                continue;
            }
            if limit.is_some_and(|l| page.items.len() >= l) {
                page.remaining += 1;
            } else {
                page.items.push(v.clone());
            }
        }
        page
    }

    /// Atomically: the objects of one type (for synthetic ADDED events) and a live receiver
    /// from exactly that state.
    pub fn snapshot_and_watch(
        &self,
        key: &str,
        ns: Option<&str>,
    ) -> (Vec<Value>, broadcast::Receiver<Arc<StoreEvent>>, u64) {
        let inner = self.lock();
        let rx = self.events.subscribe();
        let mut items = Vec::new();
        if let Some(objs) = inner.objects.get(key) {
            for ((ons, _), v) in objs {
                if ns.is_none_or(|n| n == ons) {
                    items.push(v.clone());
                }
            }
        }
        (items, rx, inner.rv)
    }

    /// Reads, decides and writes one object atomically. `f` sees the current object (if any).
    pub fn mutate<F>(&self, key: &str, ns: &str, name: &str, f: F) -> Result<Value, ApiError>
    where
        F: FnOnce(Option<&Value>) -> Result<Mutation, ApiError>,
    {
        let mut inner = self.lock();
        let id = (ns.to_string(), name.to_string());
        let current = inner.objects.get(key).and_then(|o| o.get(&id)).cloned();
        let mutation = f(current.as_ref())?;
        let (kind, mut obj) = match mutation {
            Mutation::Noop(v) => return Ok(v),
            Mutation::Create(v) => (EventKind::Added, v),
            Mutation::Update(v) => (EventKind::Modified, v),
            Mutation::Delete(v) => (EventKind::Deleted, v),
        };
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut obj, rv);
        let objs = inner.objects.entry(key.to_string()).or_default();
        if kind == EventKind::Deleted {
            objs.remove(&id);
        } else {
            objs.insert(id, obj.clone());
        }
        let event = Arc::new(StoreEvent {
            rv,
            key: key.to_string(),
            namespace: ns.to_string(),
            kind,
            object: obj.clone(),
            old: current,
        });
        inner.history.push_back(event.clone());
        while inner.history.len() > inner.retained {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        // Sent under the lock so that a watch subscribing under the lock sees no gap and no
        // duplicate between history and live events. No receivers is not an error here.
        let _ = self.events.send(event);
        Ok(obj)
    }

    /// Every stored `(key, namespace, name)` of objects in namespace `ns` (for namespace
    /// deletion).
    pub fn names_in_namespace(&self, ns: &str) -> Vec<(String, String)> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (key, objs) in &inner.objects {
            for (ons, name) in objs.keys() {
                if ons == ns {
                    out.push((key.clone(), name.clone()));
                }
            }
        }
        out
    }

    /// Every stored `(namespace, name)` of one type.
    pub fn names_of(&self, key: &str) -> Vec<(String, String)> {
        self.lock()
            .objects
            .get(key)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object of every type, for ownerReference garbage collection: `(key, object)`.
    pub fn all_objects(&self) -> Vec<(String, Value)> {
        let inner = self.lock();
        inner
            .objects
            .iter()
            .flat_map(|(k, objs)| objs.values().map(move |v| (k.clone(), v.clone())))
            .collect()
    }

    /// Starts a watch after `from`: the retained events newer than `from`, and a receiver for
    /// the live ones. `None` means "from now".
    #[allow(clippy::type_complexity)]
    pub fn watch_from(
        &self,
        from: Option<u64>,
    ) -> Result<
        (
            Vec<Arc<StoreEvent>>,
            broadcast::Receiver<Arc<StoreEvent>>,
            u64,
        ),
        Compacted,
    > {
        let inner = self.lock();
        let rx = self.events.subscribe();
        let Some(from) = from else {
            return Ok((Vec::new(), rx, inner.rv));
        };
        if from < inner.compacted {
            return Err(Compacted {
                oldest: inner.compacted,
            });
        }
        let start = inner.history.partition_point(|e| e.rv <= from);
        let backlog = inner.history.range(start..).cloned().collect();
        Ok((backlog, rx, inner.rv))
    }

    /// A receiver for every change from now on (for in-process controllers).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoreEvent>> {
        self.events.subscribe()
    }

    /// Whether a list or continue at `rv` is still served (not compacted).
    pub fn is_compacted(&self, rv: u64) -> bool {
        rv < self.lock().compacted
    }

    /// Forgets every past event: watches from any earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        // Bumping the counter makes even the newest version a client holds "too old".
        inner.rv += 1;
        inner.compacted = inner.rv;
    }

    /// Changes how many events are retained.
    pub fn set_retained(&self, retained: usize) {
        let mut inner = self.lock();
        inner.retained = retained.max(1);
        while inner.history.len() > inner.retained {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}})
    }

    #[test]
    fn versions_grow_and_history_compacts() {
        let store = Store::new(2);
        for n in ["a", "b", "c"] {
            store
                .mutate("/pods", "ns", n, |_| Ok(Mutation::Create(obj(n))))
                .expect("create");
        }
        let rv = store.current_rv();
        let (backlog, _, _) = store.watch_from(Some(rv - 2)).expect("retained");
        assert_eq!(backlog.len(), 2);
        assert!(store.watch_from(Some(rv - 3)).is_err());
        store.compact();
        assert!(store.watch_from(Some(rv)).is_err());
        let (items, list_rv) = store.list("/pods", Some("ns"), None);
        assert_eq!(items.len(), 3);
        assert!(store.watch_from(Some(list_rv)).is_ok());
    }
}
