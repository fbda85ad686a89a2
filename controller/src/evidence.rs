//! Evidence that a holder's containers have stopped (docs/PROTOCOL.md §8): the only reason the
//! controller may name a successor before the Lease expires.
//!
//! Pure: the holder's pod as the controller sees it now, and what it remembers from before.
//! Force deletion and NotReady are deliberately not evidence: a force-deleted pod's containers
//! may still run on its node, and a NotReady pod's process may still work.

use std::collections::BTreeMap;

use crate::pods::{Phase, PodView};

/// Why the holder is known to have stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The pod reached `Succeeded` or `Failed`.
    Finished(Phase),
    /// The pod is gone, after its graceful termination was observed.
    DeletionCompleted,
    /// A pod with the holder's name now has another UID.
    UidChanged,
    /// Every container restarted or is terminated since the holder's last renewal.
    ContainersRestarted,
}

impl Evidence {
    /// A short label for Events, logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Finished(Phase::Succeeded) => "PodSucceeded",
            Self::Finished(_) => "PodFailed",
            Self::DeletionCompleted => "PodDeleted",
            Self::UidChanged => "PodReplaced",
            Self::ContainersRestarted => "ContainersRestarted",
        }
    }
}

/// What the controller sees of the record's holder.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observation<'a> {
    /// The pod the record names (by its `zen-lead/holder-uid`, or by identity without one).
    pub holder_pod: Option<&'a PodView>,
    /// A pod with the holder's identity but another UID than the record's.
    pub namesake: Option<&'a PodView>,
    /// The record's holder UID.
    pub holder_uid: Option<&'a str>,
    /// The controller saw the holder pod terminating with a grace period.
    pub graceful_termination_seen: bool,
    /// The holder pod's restart counts when the controller saw the holder's last renewal.
    pub baseline: Option<&'a BTreeMap<String, i32>>,
}

/// Judges the evidence; `None` when there is none.
pub fn judge(observation: &Observation<'_>) -> Option<Evidence> {
    match observation.holder_pod {
        Some(pod) => {
            if pod.phase.is_terminal() {
                return Some(Evidence::Finished(pod.phase));
            }
            // Every container, and at least one: a pod with no container status yet says nothing.
            let all_stopped = !pod.containers.is_empty()
                && pod.containers.iter().all(|c| {
                    c.terminated
                        || observation
                            .baseline
                            .and_then(|b| b.get(&c.name))
                            .is_some_and(|&seen| c.restart_count > seen)
                });
            all_stopped.then_some(Evidence::ContainersRestarted)
        }
        None if observation.graceful_termination_seen => Some(Evidence::DeletionCompleted),
        None if observation.holder_uid.is_some() && observation.namesake.is_some() => {
            Some(Evidence::UidChanged)
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::ContainerView;
    use crate::pods::fixtures::candidate;

    #[test]
    fn evidence_table() {
        let running = candidate("a").ready(0);
        let succeeded = candidate("a").phase(Phase::Succeeded);
        let failed = candidate("a").phase(Phase::Failed);
        let restarted = candidate("a").ready(0).restarts(1, false);
        let terminated = candidate("a").restarts(0, true);
        let mut two = candidate("a").ready(0).restarts(1, false);
        two.containers.push(ContainerView {
            name: "sidecar".into(),
            restart_count: 0,
            terminated: false,
        });
        let mut two_both = two.clone();
        two_both.containers[1].terminated = true;
        let mut no_status = candidate("a");
        no_status.containers.clear();
        let namesake = candidate("a").uid("uid-new").ready(5);
        let baseline: BTreeMap<String, i32> = [("main".to_string(), 0), ("sidecar".to_string(), 0)]
            .into_iter()
            .collect();
        let base = |pod| Observation {
            holder_pod: Some(pod),
            holder_uid: Some("uid-a"),
            baseline: Some(&baseline),
            ..Observation::default()
        };
        let cases: Vec<(&str, Observation<'_>, Option<Evidence>)> = vec![
            ("a running Ready holder", base(&running), None),
            (
                "phase Succeeded",
                base(&succeeded),
                Some(Evidence::Finished(Phase::Succeeded)),
            ),
            (
                "phase Failed",
                base(&failed),
                Some(Evidence::Finished(Phase::Failed)),
            ),
            (
                "a higher restart count than at the last renewal",
                base(&restarted),
                Some(Evidence::ContainersRestarted),
            ),
            (
                "a restart without a baseline proves nothing",
                Observation {
                    baseline: None,
                    ..base(&restarted)
                },
                None,
            ),
            (
                "a container terminated now",
                Observation {
                    baseline: None,
                    ..base(&terminated)
                },
                Some(Evidence::ContainersRestarted),
            ),
            (
                "one of two containers restarted is not enough",
                base(&two),
                None,
            ),
            (
                "one restarted and one terminated is every container",
                base(&two_both),
                Some(Evidence::ContainersRestarted),
            ),
            ("no container status yet", base(&no_status), None),
            (
                "deletion completed after graceful termination",
                Observation {
                    holder_pod: None,
                    graceful_termination_seen: true,
                    ..base(&running)
                },
                Some(Evidence::DeletionCompleted),
            ),
            (
                "force deletion (gone, never seen terminating) is not evidence",
                Observation {
                    holder_pod: None,
                    ..base(&running)
                },
                None,
            ),
            (
                "a pod with the holder's name and another UID",
                Observation {
                    holder_pod: None,
                    namesake: Some(&namesake),
                    ..base(&running)
                },
                Some(Evidence::UidChanged),
            ),
            (
                "a namesake proves nothing when the record has no UID",
                Observation {
                    holder_pod: None,
                    namesake: Some(&namesake),
                    holder_uid: None,
                    ..base(&running)
                },
                None,
            ),
        ];
        for (name, observation, expect) in cases {
            assert_eq!(judge(&observation), expect, "case: {name}");
        }
    }
}
