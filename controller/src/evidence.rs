//! Evidence that a holder's containers have stopped (docs/PROTOCOL.md §8): the only reason the
//! controller may name a successor before the Lease expires.
//!
//! Pure: the holder's pod as the controller sees it now, and what it remembers from before.
//! Only the kubelet can say that a container's processes are gone, so every piece of evidence
//! rests on what the kubelet reported: a container terminated or restarted since the holder's
//! last renewal, or a terminal phase with every container terminated. A pod object that is gone
//! (deleted, or replaced by one with the same name and another UID) counts only when the
//! kubelet had already reported the holder's containers stopped: force deletion removes the
//! object while the containers may still run on their node, and a StatefulSet recreates the
//! name at once after it. NotReady is not evidence either: a NotReady pod's process may still
//! work. The pod garbage collector marks pods of vanished nodes `Failed` without any kubelet,
//! leaving their containers shown running: that is not evidence.

use std::collections::BTreeMap;

use crate::pods::{ContainerView, Phase, PodView};

/// Why the holder is known to have stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The pod reached `Succeeded` or `Failed`, and the kubelet reports every container
    /// terminated.
    Finished(Phase),
    /// The pod is gone, after the kubelet reported its containers stopped.
    DeletionCompleted,
    /// A pod with the holder's name now has another UID, and the kubelet had reported the old
    /// pod's containers stopped.
    UidChanged,
    /// Every container restarted or terminated since the holder's last renewal.
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

    /// Whether this evidence was read from the holder's pod itself (the kubelet's report), as
    /// opposed to the pod object being gone afterwards.
    pub fn seen_on_pod(self) -> bool {
        matches!(self, Self::Finished(_) | Self::ContainersRestarted)
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
    /// Since the holder's last renewal, the controller saw the kubelet report the holder pod's
    /// containers stopped (evidence [`Evidence::seen_on_pod`] on that very UID).
    pub stopped_seen: bool,
    /// The holder pod's containers ([`ContainerView::progress`]) when the controller saw the
    /// holder's last renewal.
    pub baseline: Option<&'a BTreeMap<String, u64>>,
}

/// Whether the container instance the holder may have run in when the baseline was taken has
/// ended. At the baseline a running container's holder ran in that instance or a later one, a
/// terminated one's only in a later one (the view may lag behind the renewal, so a terminated
/// instance at the baseline cannot be the one the holder renewed from).
fn stopped_since(container: &ContainerView, seen: u64) -> bool {
    let holder_instance_ended = if seen.is_multiple_of(2) {
        seen + 1
    } else {
        seen + 2
    };
    container.progress() >= holder_instance_ended
}

/// Judges the evidence; `None` when there is none.
pub fn judge(observation: &Observation<'_>) -> Option<Evidence> {
    match observation.holder_pod {
        Some(pod) => {
            // Every container, and at least one: a pod with no container status says nothing.
            let reported = !pod.containers.is_empty();
            if pod.phase.is_terminal() && reported && pod.containers.iter().all(|c| c.terminated) {
                return Some(Evidence::Finished(pod.phase));
            }
            let all_stopped = reported
                && pod.containers.iter().all(|c| {
                    observation
                        .baseline
                        .and_then(|b| b.get(&c.name))
                        .is_some_and(|&seen| stopped_since(c, seen))
                });
            all_stopped.then_some(Evidence::ContainersRestarted)
        }
        None if !observation.stopped_seen => None,
        None if observation.holder_uid.is_some() && observation.namesake.is_some() => {
            Some(Evidence::UidChanged)
        }
        None => Some(Evidence::DeletionCompleted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::fixtures::candidate;

    #[test]
    fn evidence_table() {
        let running = candidate("a").ready(0);
        let succeeded = candidate("a").phase(Phase::Succeeded);
        let failed = candidate("a").phase(Phase::Failed);
        // The pod garbage collector's `Failed` for a pod whose node vanished: no kubelet
        // reported the containers stopped.
        let mut collected = candidate("a");
        collected.phase = Phase::Failed;
        let restarted = candidate("a").ready(0).restarts(1, false);
        let terminated = candidate("a").restarts(0, true);
        let restarted_then_terminated = candidate("a").restarts(1, true);
        let twice = candidate("a").ready(0).restarts(2, false);
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
        let progress = |main: u64| -> BTreeMap<String, u64> {
            [("main".to_string(), main), ("sidecar".to_string(), 0)]
                .into_iter()
                .collect()
        };
        let at_renewal = progress(0);
        // The view at the renewal already showed the container terminated: the holder that
        // renewed runs in a later instance.
        let terminated_at_renewal = progress(1);
        let base = |pod| Observation {
            holder_pod: Some(pod),
            holder_uid: Some("uid-a"),
            baseline: Some(&at_renewal),
            ..Observation::default()
        };
        let gone = |stopped_seen| Observation {
            holder_pod: None,
            stopped_seen,
            ..base(&running)
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
                "phase Failed with a container still shown running is not evidence",
                Observation {
                    baseline: None,
                    ..base(&collected)
                },
                None,
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
                "a container terminated since the last renewal",
                base(&terminated),
                Some(Evidence::ContainersRestarted),
            ),
            (
                "a terminated container without a baseline proves nothing",
                Observation {
                    baseline: None,
                    ..base(&terminated)
                },
                None,
            ),
            (
                "terminated at the renewal and still terminated proves nothing",
                Observation {
                    baseline: Some(&terminated_at_renewal),
                    ..base(&terminated)
                },
                None,
            ),
            (
                "terminated at the renewal, running again: the holder may run in the new one",
                Observation {
                    baseline: Some(&terminated_at_renewal),
                    ..base(&restarted)
                },
                None,
            ),
            (
                "terminated at the renewal, and the next instance terminated too",
                Observation {
                    baseline: Some(&terminated_at_renewal),
                    ..base(&restarted_then_terminated)
                },
                Some(Evidence::ContainersRestarted),
            ),
            (
                "terminated at the renewal, restarted twice since",
                Observation {
                    baseline: Some(&terminated_at_renewal),
                    ..base(&twice)
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
                "gone after the kubelet reported the containers stopped",
                gone(true),
                Some(Evidence::DeletionCompleted),
            ),
            (
                "gone without a kubelet report (force deletion, graceful or not) is not evidence",
                gone(false),
                None,
            ),
            (
                "a pod with the holder's name and another UID, after the kubelet's report",
                Observation {
                    namesake: Some(&namesake),
                    ..gone(true)
                },
                Some(Evidence::UidChanged),
            ),
            (
                "a namesake without a kubelet report (a force-deleted StatefulSet pod) is not evidence",
                Observation {
                    namesake: Some(&namesake),
                    ..gone(false)
                },
                None,
            ),
            (
                "a namesake proves nothing more when the record has no UID",
                Observation {
                    namesake: Some(&namesake),
                    holder_uid: None,
                    ..gone(true)
                },
                Some(Evidence::DeletionCompleted),
            ),
        ];
        for (name, observation, expect) in cases {
            assert_eq!(judge(&observation), expect, "case: {name}");
        }
    }
}
