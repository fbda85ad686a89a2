//! Requests counted by client identity (User-Agent) and verb.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Request counters, shared by the server, the Rust API and the admin endpoint.
#[derive(Debug, Clone, Default)]
pub struct Accounting {
    counts: Arc<Mutex<BTreeMap<String, BTreeMap<String, u64>>>>,
}

impl Accounting {
    /// Counts one request.
    pub fn record(&self, client: &str, verb: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts
            .entry(client.to_string())
            .or_default()
            .entry(verb.to_string())
            .or_default() += 1;
    }

    /// How many `verb` requests `client` made.
    pub fn count(&self, client: &str, verb: &str) -> u64 {
        self.snapshot()
            .get(client)
            .and_then(|v| v.get(verb))
            .copied()
            .unwrap_or(0)
    }

    /// All requests of `client`, any verb.
    pub fn total(&self, client: &str) -> u64 {
        self.snapshot()
            .get(client)
            .map(|v| v.values().sum())
            .unwrap_or(0)
    }

    /// `client -> verb -> count`.
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets every count.
    pub fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
