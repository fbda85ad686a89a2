//! zen-lead-controller: the shared controller (docs/ARCHITECTURE.md, "The controller").
//!
//! It elects for annotation-only pods, renews for gated pods, hands over on evidence of death
//! (docs/PROTOCOL.md §8), and writes pod roles, `LeaderPolicy` status, Events and metrics.
//!
//! Pure decisions take plain values: [`pods`] (the projection), [`evidence`], [`election`],
//! [`status`], [`roles`]; [`pool_index`] finds a pool's pods. [`reconcile`] is the only module that writes; [`run`] wires the
//! reflectors, the kube-runtime `Controller`, the controller's own [`leadership`], [`events`]
//! and the [`metrics`] server.

pub mod config;
pub mod election;
pub mod events;
pub mod evidence;
pub mod leadership;
pub mod metrics;
pub mod pods;
pub mod pool_index;
pub mod reconcile;
pub mod roles;
pub mod run;
pub mod status;
pub mod synced;
pub mod write_slots;

pub use run::run;
