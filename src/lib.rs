//! zen-lead: leader election as a service for Kubernetes.
//!
//! The protocol library shared by `zen-lead-exec` and `zen-lead-controller`: the Lease protocol
//! (docs/PROTOCOL.md), the `LeaderPolicy` API types, identity and timing rules.

pub mod api;
pub mod client;
pub mod clock;
pub mod exec;
pub mod identity;
pub mod lease;
pub mod timing;
