//! Whether zen-lead-controller is alive, judged from its own Lease, for the gate
//! (docs/EXEC.md, Gate mode): a gate hands the pool's lease to the controller to renew, so
//! without a live controller it must not hand over.
//!
//! The controller's Lease is alive when it exists, has a holder and is fresh. Fresh means its
//! `renewTime` is within its `leaseDurationSeconds` of the API server's clock, read from the
//! `Date` header of the very answer that carried the Lease (the node's wall clock is never
//! used). When that cannot be judged, or the Lease looks stale (the controller's clock may lag
//! the server's), the gate watches the Lease for up to one lease duration, measured on
//! CLOCK_BOOTTIME: a renewal seen is proof of life, none is a dead controller.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;

use crate::clock::BootInstant;
use crate::lease::record::LeaseRecord;
use crate::lease::server_clock;

/// How long one read of the controller's Lease may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Date` header counts whole seconds and is rounded down: the server's clock may be up to
/// this far past it.
const DATE_RESOLUTION: Duration = Duration::from_secs(1);

/// A `renewTime` this far past the server's clock means the controller's clock runs ahead,
/// so freshness cannot be judged by the clocks.
const MAX_AHEAD: Duration = Duration::from_secs(2);

/// The watch for a renewal lasts the Lease's duration, at most this long.
const MAX_RENEWAL_WAIT: Duration = Duration::from_secs(60);

/// The watch for a renewal lasts this long when the Lease names no duration.
const DEFAULT_RENEWAL_WAIT: Duration = Duration::from_secs(15);

/// How often the Lease is read again while watching for a renewal (only `get` is granted).
const POLL: Duration = Duration::from_millis(500);

/// The controller's Lease: `--controller-namespace`/`--controller-lease`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerLease {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Default for ControllerLease {
    fn default() -> Self {
        Self {
            namespace: crate::api::CONTROLLER_NAMESPACE.to_owned(),
            name: crate::api::CONTROLLER_LEASE.to_owned(),
        }
    }
}

impl std::fmt::Display for ControllerLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why the controller's Lease does not show a live controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// There is no such Lease (nor perhaps its namespace): the controller is not installed.
    Missing,
    /// The Lease has no holder: the last replica released it and none runs.
    NoHolder,
    /// `renewTime` is further behind the server's clock than the lease duration.
    Stale {
        /// How far behind, at least.
        age: Duration,
    },
    /// `renewTime` is ahead of the server's clock: the clocks cannot tell.
    Ahead,
    /// The Lease has no `renewTime`, or the answer no `Date`: the clocks cannot tell.
    NoClock,
}

/// What one reading of the controller's Lease says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Held and fresh by the API server's clock.
    Alive,
    /// Not alive, whatever a watch would show.
    Dead(Why),
    /// Alive only if it is seen renewed within its lease duration.
    WatchForRenewal(Why),
}

/// Judges one reading: the Lease (`None`: not found) and the server's clock when it was read.
pub fn judge(record: Option<&LeaseRecord>, server_now: Option<jiff::Timestamp>) -> Verdict {
    let Some(record) = record else {
        return Verdict::Dead(Why::Missing);
    };
    if record.holder.is_none() {
        return Verdict::Dead(Why::NoHolder);
    }
    let (Some(renewed), Some(now), Some(duration)) =
        (record.renew_time, server_now, lease_duration(record))
    else {
        return Verdict::WatchForRenewal(Why::NoClock);
    };
    let behind = now.duration_since(renewed);
    match Duration::try_from(behind) {
        // renewTime at or before the server's reading.
        Ok(age) if age + DATE_RESOLUTION <= duration => Verdict::Alive,
        Ok(age) => Verdict::WatchForRenewal(Why::Stale { age }),
        // renewTime after the reading, which a `Date` rounded down can explain up to a point.
        Err(_) => match Duration::try_from(behind.abs()) {
            Ok(ahead) if ahead <= MAX_AHEAD => Verdict::Alive,
            _ => Verdict::WatchForRenewal(Why::Ahead),
        },
    }
}

/// Whether `later` shows a renewal of the Lease seen as `first`: still held, and renewed after.
pub fn renewed(first: &LeaseRecord, later: &LeaseRecord) -> bool {
    later.holder.is_some()
        && later.resource_version != first.resource_version
        && later.renew_time.is_some()
        && later.renew_time > first.renew_time
}

fn lease_duration(record: &LeaseRecord) -> Option<Duration> {
    record
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

/// How long to watch a Lease for a renewal.
fn renewal_wait(record: &LeaseRecord) -> Duration {
    lease_duration(record).map_or(DEFAULT_RENEWAL_WAIT, |d| d.min(MAX_RENEWAL_WAIT))
}

/// The controller is not alive, or its Lease cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AliveError {
    /// The Lease shows no live controller.
    #[error(
        "zen-lead-controller is not running: {}; the gate hands the pool's lease to the controller to renew, so install or start zen-lead-controller (docs/INSTALL.md; --controller-namespace and --controller-lease name where its Lease is), or run the command under `zen-lead-exec -- CMD` instead of the gate",
        describe(.lease, *.why, *.watched)
    )]
    NotAlive {
        /// The controller's Lease.
        lease: ControllerLease,
        /// Why.
        why: Why,
        /// How long it was watched for a renewal, if it was.
        watched: Option<Duration>,
    },
    /// Reading the Lease was denied.
    #[error(
        "permission denied reading Lease {lease} (the gate checks that zen-lead-controller is alive): {message} (grant get on leases/{name} in namespace {namespace}: kubectl apply -f deploy/, which binds the Role zen-lead-gate)",
        name = .lease.name,
        namespace = .lease.namespace
    )]
    Forbidden {
        /// The controller's Lease.
        lease: ControllerLease,
        /// The API server's message.
        message: String,
    },
    /// The API server did not answer, or answered with an error.
    #[error("API server unreachable reading Lease {lease}: {reason}")]
    Unreachable {
        /// The controller's Lease.
        lease: ControllerLease,
        /// What went wrong.
        reason: String,
    },
}

fn describe(lease: &ControllerLease, why: Why, watched: Option<Duration>) -> String {
    let what = match why {
        Why::Missing => format!("there is no Lease {lease}"),
        Why::NoHolder => format!("Lease {lease} has no holder (no replica leads)"),
        Why::Stale { age } => format!(
            "Lease {lease} was last renewed {} ago by the API server's clock, longer than its lease duration",
            humantime::format_duration(Duration::from_secs(age.as_secs()))
        ),
        Why::Ahead => format!("Lease {lease} has a renewTime ahead of the API server's clock"),
        Why::NoClock => format!("Lease {lease} cannot be judged by the clocks"),
    };
    match watched {
        Some(wait) => format!(
            "{what}, and it was not renewed within {}",
            humantime::format_duration(wait)
        ),
        None => what,
    }
}

/// One reading: the Lease (`None`: not found) and the server's clock from the same answer.
struct Reading {
    record: Option<LeaseRecord>,
    server_now: Option<jiff::Timestamp>,
}

/// Checks that the controller whose Lease is `lease` is alive.
pub async fn check(client: &kube::Client, lease: &ControllerLease) -> Result<(), AliveError> {
    let first = read(client, lease).await?;
    let why = match judge(first.record.as_ref(), first.server_now) {
        Verdict::Alive => {
            tracing::debug!(%lease, "zen-lead-controller is alive");
            return Ok(());
        }
        Verdict::Dead(why) => {
            return Err(AliveError::NotAlive {
                lease: lease.clone(),
                why,
                watched: None,
            });
        }
        Verdict::WatchForRenewal(why) => why,
    };
    let Some(seen) = first.record else {
        return Err(not_alive(lease, Why::Missing, None));
    };
    let wait = renewal_wait(&seen);
    tracing::info!(%lease, ?why, wait = %humantime::format_duration(wait), "the controller's Lease looks stale; watching it for a renewal");
    let give_up = BootInstant::now() + wait;
    while !give_up.has_passed() {
        tokio::time::sleep(POLL.min(give_up.remaining())).await;
        let next = read(client, lease).await?;
        match next.record {
            None => return Err(not_alive(lease, Why::Missing, None)),
            Some(record) if record.holder.is_none() => {
                return Err(not_alive(lease, Why::NoHolder, None));
            }
            Some(record) if renewed(&seen, &record) => {
                tracing::debug!(%lease, "saw the controller renew its Lease");
                return Ok(());
            }
            Some(_) => {}
        }
    }
    Err(not_alive(lease, why, Some(wait)))
}

fn not_alive(lease: &ControllerLease, why: Why, watched: Option<Duration>) -> AliveError {
    AliveError::NotAlive {
        lease: lease.clone(),
        why,
        watched,
    }
}

/// One GET of the Lease, keeping the answer's `Date`.
async fn read(client: &kube::Client, lease: &ControllerLease) -> Result<Reading, AliveError> {
    let unreachable = |reason: String| AliveError::Unreachable {
        lease: lease.clone(),
        reason,
    };
    let path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
        lease.namespace, lease.name
    );
    let request = http::Request::get(path)
        .body(Body::empty())
        .map_err(|e| unreachable(e.to_string()))?;
    let answer = tokio::time::timeout(READ_TIMEOUT, async {
        let response = client.send(request).await?;
        let status = response.status();
        let date = response
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(server_clock::parse_date);
        let body = response.into_body().collect_bytes().await?;
        Ok::<_, kube::Error>((status, date, body))
    })
    .await
    .map_err(|_| unreachable(format!("no answer within {READ_TIMEOUT:?}")))?
    .map_err(|e| unreachable(super::one_line(&e)))?;
    let (status, server_now, body) = answer;
    let message = || {
        serde_json::from_slice::<kube::core::Status>(&body)
            .map(|s| s.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_owned())
    };
    match status.as_u16() {
        200 => {
            let found: Lease = serde_json::from_slice(&body)
                .map_err(|e| unreachable(format!("unreadable Lease: {e}")))?;
            Ok(Reading {
                record: Some(LeaseRecord::from_lease(&found)),
                server_now,
            })
        }
        404 => Ok(Reading {
            record: None,
            server_now,
        }),
        401 | 403 => Err(AliveError::Forbidden {
            lease: lease.clone(),
            message: message(),
        }),
        code => Err(unreachable(format!("HTTP {code}: {}", message()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    fn record(holder: Option<&str>, renewed: Option<i64>, duration: Option<i32>) -> LeaseRecord {
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "zen-lead-controller", "resourceVersion": "7"},
            "spec": {
                "holderIdentity": holder,
                "renewTime": renewed.map(|s| at(s).to_string()),
                "leaseDurationSeconds": duration,
            },
        }))
        .expect("lease");
        LeaseRecord::from_lease(&lease)
    }

    #[test]
    fn freshness_is_judged_on_the_api_servers_clock() {
        let held = |renewed| record(Some("ctl-0"), Some(renewed), Some(15));
        let cases: &[(&str, Option<LeaseRecord>, Option<i64>, Verdict)] = &[
            ("no Lease", None, Some(0), Verdict::Dead(Why::Missing)),
            (
                "released",
                Some(record(None, Some(0), Some(15))),
                Some(0),
                Verdict::Dead(Why::NoHolder),
            ),
            (
                "no holder and no clock",
                Some(record(None, None, None)),
                None,
                Verdict::Dead(Why::NoHolder),
            ),
            ("renewed just now", Some(held(0)), Some(0), Verdict::Alive),
            ("renewed 2s ago", Some(held(0)), Some(2), Verdict::Alive),
            // The Date may be up to a second behind the server's clock: 14s may be 15s.
            ("renewed 14s ago", Some(held(0)), Some(14), Verdict::Alive),
            (
                "renewed 15s ago",
                Some(held(0)),
                Some(15),
                Verdict::WatchForRenewal(Why::Stale {
                    age: Duration::from_secs(15),
                }),
            ),
            (
                "renewed an hour ago",
                Some(held(0)),
                Some(3600),
                Verdict::WatchForRenewal(Why::Stale {
                    age: Duration::from_secs(3600),
                }),
            ),
            // A renewal within the Date's rounding looks slightly ahead.
            ("renewed 1s ahead", Some(held(1)), Some(0), Verdict::Alive),
            (
                "renewed 30s ahead: the controller's clock runs fast",
                Some(held(30)),
                Some(0),
                Verdict::WatchForRenewal(Why::Ahead),
            ),
            (
                "no Date header",
                Some(held(0)),
                None,
                Verdict::WatchForRenewal(Why::NoClock),
            ),
            (
                "no renewTime",
                Some(record(Some("ctl-0"), None, Some(15))),
                Some(0),
                Verdict::WatchForRenewal(Why::NoClock),
            ),
            (
                "no lease duration",
                Some(record(Some("ctl-0"), Some(0), None)),
                Some(0),
                Verdict::WatchForRenewal(Why::NoClock),
            ),
        ];
        for (name, record, now, want) in cases {
            assert_eq!(judge(record.as_ref(), now.map(at)), *want, "{name}");
        }
    }

    #[test]
    fn a_renewal_needs_a_newer_write_that_still_holds() {
        let first = record(Some("ctl-0"), Some(0), Some(15));
        let mut later = record(Some("ctl-0"), Some(2), Some(15));
        // The same resourceVersion is the same write.
        assert!(!renewed(&first, &later));
        later.resource_version = Some("8".into());
        assert!(renewed(&first, &later));
        // A standby that took over renews too.
        let mut standby = record(Some("ctl-1"), Some(20), Some(15));
        standby.resource_version = Some("9".into());
        assert!(renewed(&first, &standby));
        let mut released = record(None, Some(3), Some(15));
        released.resource_version = Some("9".into());
        assert!(!renewed(&first, &released));
        let mut older = record(Some("ctl-0"), Some(-5), Some(15));
        older.resource_version = Some("9".into());
        assert!(!renewed(&first, &older));
    }

    #[test]
    fn the_watch_lasts_one_lease_duration_within_bounds() {
        assert_eq!(
            renewal_wait(&record(Some("c"), Some(0), Some(4))),
            Duration::from_secs(4)
        );
        assert_eq!(
            renewal_wait(&record(Some("c"), Some(0), Some(3600))),
            MAX_RENEWAL_WAIT
        );
        assert_eq!(
            renewal_wait(&record(Some("c"), Some(0), None)),
            DEFAULT_RENEWAL_WAIT
        );
    }

    #[test]
    fn errors_are_one_line_and_say_what_to_fix() {
        let lease = ControllerLease::default();
        let error = not_alive(&lease, Why::Missing, None);
        let text = error.to_string();
        assert!(!text.contains('\n'));
        assert!(text.contains("there is no Lease zen-lead-system/zen-lead-controller"));
        assert!(text.contains("docs/INSTALL.md") && text.contains("zen-lead-exec -- CMD"));
        let stale = not_alive(
            &lease,
            Why::Stale {
                age: Duration::from_millis(90_500),
            },
            Some(Duration::from_secs(15)),
        );
        assert!(
            stale
                .to_string()
                .contains("last renewed 1m 30s ago by the API server's clock, longer than its lease duration, and it was not renewed within 15s"),
            "{stale}"
        );
        let denied = AliveError::Forbidden {
            lease,
            message: "no".into(),
        };
        assert!(
            denied
                .to_string()
                .contains("grant get on leases/zen-lead-controller in namespace zen-lead-system"),
            "{denied}"
        );
    }
}
