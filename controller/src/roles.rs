//! The role patches of a pool's pods (docs/API.md, "Roles"): annotation `zen-lead/role` and labels
//! `zen-lead/pool` and `zen-lead/role`, written in one patch per pod, only when something changed,
//! and demotions before the promotion, so that a Service selecting the leader never has two
//! endpoints.

use serde_json::{Value, json};

use crate::pods::{LABEL_POOL, PodView, ROLE};

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The pod named by a live Lease.
    Leader,
    /// Every other candidate.
    Follower,
}

impl Role {
    /// The annotation and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leader => "leader",
            Self::Follower => "follower",
        }
    }
}

/// One pod's role patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    /// The pod name.
    pub pod: String,
    /// The pod UID (the patch is only meant for this pod).
    pub uid: String,
    /// The role written.
    pub role: Role,
}

impl RoleChange {
    /// The merge patch body.
    pub fn patch(&self, pool: &str) -> Value {
        json!({
            "metadata": {
                "annotations": {ROLE: self.role.as_str()},
                "labels": {LABEL_POOL: pool, ROLE: self.role.as_str()},
            }
        })
    }
}

/// Whether a pod takes part in the pool's roles: annotated with the pool and joined, including
/// a terminating or finished pod, so that an old leader is demoted however it left.
pub fn is_member(pod: &PodView, pool: &str) -> bool {
    pod.pool.as_deref() == Some(pool) && pod.join
}

fn shows(pod: &PodView, pool: &str, role: Role) -> bool {
    pod.role_annotation.as_deref() == Some(role.as_str())
        && pod.role_label.as_deref() == Some(role.as_str())
        && pod.pool_label.as_deref() == Some(pool)
}

fn follower(pod: &PodView) -> RoleChange {
    RoleChange {
        pod: pod.name.clone(),
        uid: pod.uid.clone(),
        role: Role::Follower,
    }
}

/// The patches that bring the pool's pods to `leader` (a pod UID, or nobody): demotions first,
/// then the promotion. In steady state, pods already right get no patch. Before a promotion,
/// every other member is demoted unless this replica wrote `follower` on it itself
/// (`wrote_follower`, by pod UID): a stale pod store may show `follower` on a pod that another
/// controller replica labelled `leader`.
pub fn changes<'a>(
    pods: impl IntoIterator<Item = &'a PodView>,
    pool: &str,
    leader: Option<&str>,
    wrote_follower: impl Fn(&str) -> bool,
) -> Vec<RoleChange> {
    let members: Vec<&PodView> = pods.into_iter().filter(|p| is_member(p, pool)).collect();
    let promote: Vec<RoleChange> = members
        .iter()
        .filter(|p| Some(p.uid.as_str()) == leader && !shows(p, pool, Role::Leader))
        .map(|p| RoleChange {
            pod: p.name.clone(),
            uid: p.uid.clone(),
            role: Role::Leader,
        })
        .collect();
    let mut changes = demotions(
        members.iter().copied(),
        pool,
        leader,
        !promote.is_empty(),
        wrote_follower,
    );
    changes.extend(promote);
    changes
}

/// The demotions before the Lease names `keep` (a pod UID): every other member, unless this
/// replica wrote `follower` on it itself (see [`changes`]).
pub fn demotions_before<'a>(
    pods: impl IntoIterator<Item = &'a PodView>,
    pool: &str,
    keep: &str,
    wrote_follower: impl Fn(&str) -> bool,
) -> Vec<RoleChange> {
    let members = pods.into_iter().filter(|p| is_member(p, pool));
    demotions(members, pool, Some(keep), true, wrote_follower)
}

fn demotions<'a>(
    members: impl Iterator<Item = &'a PodView>,
    pool: &str,
    leader: Option<&str>,
    promoting: bool,
    wrote_follower: impl Fn(&str) -> bool,
) -> Vec<RoleChange> {
    let mut demote: Vec<RoleChange> = members
        .filter(|p| Some(p.uid.as_str()) != leader)
        .filter(|p| {
            !shows(p, pool, Role::Follower) || (promoting && !wrote_follower(p.uid.as_str()))
        })
        .map(follower)
        .collect();
    demote.sort_by(|a, b| a.pod.cmp(&b.pod));
    demote
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::fixtures::candidate;

    fn summary(changes: &[RoleChange]) -> Vec<(String, &'static str)> {
        changes
            .iter()
            .map(|c| (c.pod.clone(), c.role.as_str()))
            .collect()
    }

    #[test]
    fn roles_table() {
        let fresh = [candidate("a").ready(0), candidate("b").ready(1)];
        let settled = [
            candidate("a").ready(0).role("leader"),
            candidate("b").ready(1).role("follower"),
        ];
        let moved = [
            candidate("a").role("leader").terminating(30),
            candidate("b").ready(1).role("follower"),
            candidate("c").ready(2).role("follower"),
        ];
        let mut stale_label = candidate("a").ready(0).role("leader");
        stale_label.role_label = Some("follower".into());
        let mut other_pool = candidate("x").ready(0);
        other_pool.pool = Some("other".into());
        let mut unjoined = candidate("y").ready(0);
        unjoined.join = false;
        type Case<'a> = (
            &'a str,
            Vec<PodView>,
            Option<&'a str>,
            Vec<(&'a str, &'a str)>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "first election labels everyone",
                fresh.to_vec(),
                Some("uid-a"),
                vec![("b", "follower"), ("a", "leader")],
            ),
            (
                "nothing changed, nothing written",
                settled.to_vec(),
                Some("uid-a"),
                vec![],
            ),
            (
                "the old leader (terminating) is demoted before the new one is promoted",
                moved.to_vec(),
                Some("uid-c"),
                vec![("a", "follower"), ("c", "leader")],
            ),
            (
                "nobody leads: the leader is demoted",
                settled.to_vec(),
                None,
                vec![("a", "follower")],
            ),
            (
                "a label edited by hand is written back",
                vec![stale_label],
                Some("uid-a"),
                vec![("a", "leader")],
            ),
            (
                "other pools and unjoined pods are left alone",
                vec![other_pool, unjoined],
                None,
                vec![],
            ),
        ];
        for (name, pods, leader, expect) in cases {
            let got = changes(&pods, "pool", leader, |_| true);
            let expect: Vec<(String, &str)> = expect
                .into_iter()
                .map(|(p, r)| (p.to_string(), r))
                .collect();
            assert_eq!(summary(&got), expect, "case: {name}");
        }
    }

    #[test]
    fn a_promotion_demotes_every_member_this_replica_did_not_write_follower_on() {
        // The store is stale: "a" shows follower, but another replica may have labelled it leader.
        let stale = [
            candidate("a").ready(0).role("follower"),
            candidate("b").ready(1).role("follower"),
            candidate("c").ready(2).role("follower"),
        ];
        let nothing_written = |_: &str| false;
        assert_eq!(
            summary(&changes(&stale, "pool", Some("uid-c"), nothing_written)),
            vec![
                ("a".to_string(), "follower"),
                ("b".to_string(), "follower"),
                ("c".to_string(), "leader")
            ]
        );
        // What this replica wrote itself is trusted.
        let wrote_b = |uid: &str| uid == "uid-b";
        assert_eq!(
            summary(&changes(&stale, "pool", Some("uid-c"), wrote_b)),
            vec![("a".to_string(), "follower"), ("c".to_string(), "leader")]
        );
        assert_eq!(
            summary(&demotions_before(&stale, "pool", "uid-c", wrote_b)),
            vec![("a".to_string(), "follower")]
        );
        // Steady state (the leader already shows leader): writes only on change.
        let settled = [
            candidate("a").ready(0).role("follower"),
            candidate("c").ready(2).role("leader"),
        ];
        assert!(changes(&settled, "pool", Some("uid-c"), nothing_written).is_empty());
    }

    #[test]
    fn the_patch_writes_annotation_and_both_labels() {
        let change = RoleChange {
            pod: "a".into(),
            uid: "u".into(),
            role: Role::Leader,
        };
        assert_eq!(
            change.patch("web"),
            json!({"metadata": {"annotations": {"zen-lead/role": "leader"},
                                "labels": {"zen-lead/pool": "web", "zen-lead/role": "leader"}}})
        );
    }
}
