//! The pure election choice of one pool (docs/ARCHITECTURE.md, "The controller"): how the
//! record's holder is doing, judged from its pod, and which candidate is Ready the longest.
//!
//! The next Lease write is then decided by the library's controller-side decision,
//! [`zen_lead::lease::steward::decide`], from these plain values: the Lease protocol has one
//! implementation, in `src/lease/`.

use std::time::Duration;

use zen_lead::api::IdentityStrategy;
use zen_lead::clock::BootInstant;
use zen_lead::lease::record::{LeaseRecord, Renewer};
use zen_lead::lease::steward;

use crate::evidence::Evidence;
use crate::pods::PodView;

/// The candidate the controller names as holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor {
    /// The pod name.
    pub name: String,
    /// The pod UID.
    pub uid: String,
    /// The identity written as `holderIdentity`.
    pub identity: String,
}

/// How the controller judges the record's holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderState {
    /// Nobody holds the Lease (absent, or an empty holder).
    Vacant,
    /// The holder works. `renew`: the controller renews for it (`renewer: controller`).
    Alive {
        /// Whether the controller renews this holder.
        renew: bool,
    },
    /// The holder is not dead, but it does not lead for the controller either: its Lease runs
    /// out and is not renewed.
    Stopped(Stopped),
    /// There is evidence that the holder's containers have stopped.
    Dead(Evidence),
}

impl HolderState {
    /// The holder as the library's controller-side decision sees it.
    pub fn steward(self) -> steward::Holder {
        match self {
            Self::Vacant => steward::Holder::Vacant,
            Self::Alive { renew } => steward::Holder::Alive { renew },
            Self::Stopped(_) => steward::Holder::Stopped,
            Self::Dead(_) => steward::Holder::Dead,
        }
    }
}

/// Why a controller-renewed holder is not renewed any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Its pod is not Ready.
    NotReady,
    /// Its pod is terminating.
    Terminating,
    /// Its pod is not seen (force-deleted, or never annotated).
    Missing,
}

/// Judges the holder from its record, its pod and the evidence.
pub fn holder_state(
    record: Option<&LeaseRecord>,
    holder_pod: Option<&PodView>,
    evidence: Option<Evidence>,
) -> HolderState {
    let Some(record) = record.filter(|r| r.is_held()) else {
        return HolderState::Vacant;
    };
    if let Some(evidence) = evidence {
        return HolderState::Dead(evidence);
    }
    match (record.renewer, holder_pod) {
        // zen-lead-exec renews for itself; only its record tells whether it works.
        (Renewer::SelfRenewing, _) => HolderState::Alive { renew: false },
        (Renewer::Controller, None) => HolderState::Stopped(Stopped::Missing),
        // A gated pod holds until it finishes (docs/EXEC.md, gate mode): its main containers run
        // after the gate, whether Ready or not, and while they drain on deletion.
        (Renewer::Controller, Some(pod)) if pod.gated => HolderState::Alive { renew: true },
        (Renewer::Controller, Some(pod)) if pod.terminating => {
            HolderState::Stopped(Stopped::Terminating)
        }
        (Renewer::Controller, Some(pod)) if pod.is_ready() => HolderState::Alive { renew: true },
        (Renewer::Controller, Some(_)) => HolderState::Stopped(Stopped::NotReady),
    }
}

/// The candidate Ready the longest, ties broken by name (docs/PROTOCOL.md §8); never the pod
/// with `exclude_uid` (a dead holder), never one without an identity.
pub fn successor<'a>(
    pods: impl IntoIterator<Item = &'a PodView>,
    strategy: IdentityStrategy,
    exclude_uid: Option<&str>,
) -> Option<Successor> {
    pods.into_iter()
        .filter(|p| p.is_ready() && Some(p.uid.as_str()) != exclude_uid)
        .filter_map(|p| p.identity(strategy).map(|id| (p, id)))
        .min_by(|(a, _), (b, _)| (a.ready_since, &a.name).cmp(&(b.ready_since, &b.name)))
        .map(|(p, identity)| Successor {
            name: p.name.clone(),
            uid: p.uid.clone(),
            identity: identity.to_owned(),
        })
}

/// When a record that nobody renews expires on the controller's clock: for status and the role
/// of a holder whose lease ran out.
pub fn expires_at(
    record: &LeaseRecord,
    first_seen: BootInstant,
    fallback: Duration,
) -> BootInstant {
    first_seen + record.lease_duration(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::Phase;
    use crate::pods::fixtures::candidate;

    fn record(holder: Option<&str>, renewer: Renewer, term: u64) -> LeaseRecord {
        LeaseRecord {
            resource_version: Some("1".into()),
            managed: true,
            holder: holder.map(Into::into),
            holder_uid: holder.map(|h| format!("uid-{h}")),
            session: None,
            renewer,
            acquire_time: None,
            renew_time: None,
            lease_duration_seconds: Some(15),
            term,
            negative_term: None,
            released_term: None,
            min_hold_until: None,
        }
    }

    #[test]
    fn holder_state_table() {
        let ctl = record(Some("a"), Renewer::Controller, 3);
        let own = record(Some("a"), Renewer::SelfRenewing, 3);
        let ready = candidate("a").ready(0);
        let not_ready = candidate("a");
        let terminating = candidate("a").ready(0).terminating(30);
        let gated_not_ready = candidate("a").gated();
        let cases = [
            ("no record", None, None, None, HolderState::Vacant),
            (
                "empty holder",
                Some(record(None, Renewer::SelfRenewing, 3)),
                None,
                None,
                HolderState::Vacant,
            ),
            (
                "evidence wins",
                Some(ctl.clone()),
                Some(&ready),
                Some(Evidence::UidChanged),
                HolderState::Dead(Evidence::UidChanged),
            ),
            (
                "controller renews a Ready holder",
                Some(ctl.clone()),
                Some(&ready),
                None,
                HolderState::Alive { renew: true },
            ),
            (
                "NotReady stops renewal at once",
                Some(ctl.clone()),
                Some(&not_ready),
                None,
                HolderState::Stopped(Stopped::NotReady),
            ),
            (
                "terminating stops renewal",
                Some(ctl.clone()),
                Some(&terminating),
                None,
                HolderState::Stopped(Stopped::Terminating),
            ),
            (
                "a missing pod is not renewed",
                Some(ctl.clone()),
                None,
                None,
                HolderState::Stopped(Stopped::Missing),
            ),
            (
                "a gated pod is renewed until it finishes, Ready or not",
                Some(ctl.clone()),
                Some(&gated_not_ready),
                None,
                HolderState::Alive { renew: true },
            ),
            (
                "zen-lead-exec renews for itself, Ready or not",
                Some(own.clone()),
                Some(&not_ready),
                None,
                HolderState::Alive { renew: false },
            ),
            (
                "zen-lead-exec without a visible pod",
                Some(own),
                None,
                None,
                HolderState::Alive { renew: false },
            ),
        ];
        for (name, record, pod, evidence, expect) in cases {
            assert_eq!(
                holder_state(record.as_ref(), pod, evidence),
                expect,
                "case: {name}"
            );
        }
    }

    #[test]
    fn successor_is_ready_the_longest_then_by_name() {
        let pods = [
            candidate("c").ready(5),
            candidate("b").ready(3),
            candidate("a").ready(3),
            candidate("old").ready(1).terminating(30),
            candidate("failed").phase(Phase::Failed),
            candidate("waiting"),
        ];
        let pick = |exclude: Option<&str>| {
            successor(&pods, IdentityStrategy::Pod, exclude).map(|s| s.name)
        };
        assert_eq!(pick(None).as_deref(), Some("a"));
        assert_eq!(pick(Some("uid-a")).as_deref(), Some("b"));
        assert_eq!(successor(&pods[5..], IdentityStrategy::Pod, None), None);
        // A custom pool skips a candidate without an identity.
        let mut with_id = candidate("z").ready(9);
        with_id.identity_annotation = Some("zed".into());
        let custom = [candidate("a").ready(0), with_id];
        let chosen = successor(&custom, IdentityStrategy::Custom, None).unwrap();
        assert_eq!(
            (chosen.name.as_str(), chosen.identity.as_str()),
            ("z", "zed")
        );
    }
}
