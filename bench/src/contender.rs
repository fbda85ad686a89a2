//! The leader-election libraries under test, their names and how each is driven.

use std::fmt;
use std::time::Duration;

use zen_lead::lease::Timing;

/// The namespace every pool lives in.
pub const NAMESPACE: &str = "default";

/// A leader-election library under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contender {
    /// zen-lead: `zen-lead-exec` wrapping a command.
    ZenLead,
    /// `kube-leader-election` (`LeaseLock`, polled).
    KubeLeaderElection,
    /// `kube-lease-manager` (`LeaseManager::watch`).
    KubeLeaseManager,
    /// The official Python client's `kubernetes.leaderelection` with `LeaseLock`.
    PythonKubernetes,
}

impl Contender {
    /// All contenders, zen-lead first.
    pub const ALL: [Contender; 4] = [
        Contender::ZenLead,
        Contender::KubeLeaderElection,
        Contender::KubeLeaseManager,
        Contender::PythonKubernetes,
    ];

    /// A short name for pool and client names.
    pub fn slug(self) -> &'static str {
        match self {
            Contender::ZenLead => "zen",
            Contender::KubeLeaderElection => "kle",
            Contender::KubeLeaseManager => "klm",
            Contender::PythonKubernetes => "py",
        }
    }

    /// The name in `--json` output.
    pub fn json_name(self) -> &'static str {
        match self {
            Contender::ZenLead => "zen-lead",
            Contender::KubeLeaderElection => "kube-leader-election",
            Contender::KubeLeaseManager => "kube-lease-manager",
            Contender::PythonKubernetes => "python-kubernetes",
        }
    }

    /// The contender with this slug.
    pub fn from_slug(slug: &str) -> Option<Contender> {
        Contender::ALL.into_iter().find(|c| c.slug() == slug)
    }

    /// How it is driven, for the report.
    pub fn settings(self, lease: Duration) -> String {
        let secs = lease.as_secs();
        match self {
            Contender::ZenLead => format!(
                "`zen-lead-exec` wrapping a sampling command; lease {secs} s, renew deadline {}, retry {}, kill grace 3 s (its defaults at 15 s); followers watch",
                crate::report::setting(zen_timing(lease).renew_deadline),
                crate::report::setting(zen_timing(lease).retry_period)
            ),
            Contender::KubeLeaderElection => format!(
                "lease_ttl {secs} s, try_acquire_or_renew every {} (ttl/3, as its docs advise); standbys poll the same way",
                crate::report::setting(kle_poll(lease))
            ),
            Contender::KubeLeaseManager => format!(
                "duration {secs} s, grace {} s (default); watch() task; followers sleep to expiry",
                kube_lease_manager::DEFAULT_LEASE_GRACE_SECONDS
            ),
            Contender::PythonKubernetes => {
                let t = python_timing(lease);
                format!(
                    "`LeaderElection(Config(LeaseLock, ..)).run()` as in its example, lease_duration {secs} s, renew_deadline {}, retry_period {} (the example's 17/15/5 with the common lease)",
                    crate::report::setting(t.renew_deadline),
                    crate::report::setting(t.retry_period)
                )
            }
        }
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Contender::ZenLead => "zen-lead 0.1.0",
            Contender::KubeLeaderElection => "kube-leader-election 0.44",
            Contender::KubeLeaseManager => "kube-lease-manager 0.13",
            Contender::PythonKubernetes => "python kubernetes 37",
        })
    }
}

/// zen-lead's timing for a lease duration: its defaults are 15 s / 10 s / 2 s, scaled alike
/// for other durations.
pub fn zen_timing(lease: Duration) -> Timing {
    Timing {
        lease_duration: lease,
        renew_deadline: lease * 2 / 3,
        retry_period: lease * 2 / 15,
    }
}

/// kube-leader-election's documentation: "if `lease_ttl` is set to 15 seconds, one should
/// renew it every 5 seconds". Standbys use the same loop.
pub fn kle_poll(lease: Duration) -> Duration {
    lease / 3
}

/// The Python client's example uses lease 17 s, renew deadline 15 s, retry 5 s: the renew
/// deadline 2 s under the lease and a 5 s retry, kept with the common lease duration (whole
/// seconds; its `Config` needs `renew_deadline > 1.2 × retry_period`).
pub fn python_timing(lease: Duration) -> Timing {
    let lease_s = lease.as_secs().max(4);
    let renew = lease_s - 2;
    let retry = 5.min((renew * 5 / 6).saturating_sub(1)).max(1);
    Timing {
        lease_duration: Duration::from_secs(lease_s),
        renew_deadline: Duration::from_secs(renew),
        retry_period: Duration::from_secs(retry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_timing_keeps_the_example_shape_and_its_config_rules() {
        let t = python_timing(Duration::from_secs(15));
        assert_eq!(t.renew_deadline, Duration::from_secs(13));
        assert_eq!(t.retry_period, Duration::from_secs(5));
        for lease in 4..60 {
            let t = python_timing(Duration::from_secs(lease));
            assert!(t.lease_duration > t.renew_deadline);
            assert!(t.renew_deadline.as_secs_f64() > 1.2 * t.retry_period.as_secs_f64());
            assert!(t.retry_period >= Duration::from_secs(1));
        }
    }

    #[test]
    fn slugs_round_trip() {
        for c in Contender::ALL {
            assert_eq!(Contender::from_slug(c.slug()), Some(c));
        }
    }
}
