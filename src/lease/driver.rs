//! The elector task: observes the pool's Lease (list + watch, no polling: docs/PROTOCOL.md §6), keeps the
//! local expiry timer on BOOTTIME, makes conditional writes (PROTOCOL.md §1), renews, steps down, releases.
//!
//! The decisions themselves are made by [`super::decision::decide`]; this module only performs
//! I/O and feeds the decision core with observations and clock readings.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, debug};

use super::decision::{Decision, Input, Leadership, decide};
use super::record::{self, Holder, LeaseRecord, RecordKey, TermOverflow};
use super::server_clock::{self, ServerTime};
use super::{ElectionConfig, LeaderState, LeaseError, LostReason};
use crate::api::LeaderPolicy;
use crate::clock::BootInstant;

/// Longest single sleep: after a suspend (CLOCK_MONOTONIC stops, BOOTTIME does not) the loop
/// re-reads BOOTTIME within this much monotonic time.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Server-side timeout of one watch request; the watch is then resumed from its last version.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// A watch that delivers nothing (not even its own end) for this long is assumed dead.
const WATCH_IDLE: Duration = Duration::from_secs(WATCH_TIMEOUT_SECS as u64 + 30);
/// First retry delay after a failed request.
const BACKOFF_BASE: Duration = Duration::from_millis(200);

/// A request from the [`super::Elector`] handle.
#[derive(Debug)]
pub(crate) enum Command {
    /// Release; `honour_hold: false` ignores `min_hold` (nothing ran, nothing to de-duplicate).
    Release {
        reply: oneshot::Sender<Result<(), LeaseError>>,
        honour_hold: bool,
    },
    HandToController(oneshot::Sender<Result<u64, LeaseError>>),
}

/// What the observer task saw.
#[derive(Debug)]
enum Observed {
    /// The Lease (or its absence) from a list, with the list's resource version: replaces
    /// whatever we had unless what we had is newer (our own write may have overtaken the list).
    Listed {
        lease: Option<Lease>,
        version: Option<String>,
    },
    /// A watch event: applied only if newer than what we have.
    Changed(Lease),
    /// A watch `DELETED` event.
    Deleted { resource_version: Option<String> },
    /// A request failed (observer retries by itself); kept to report unreachability.
    Failed(kube::Error),
    /// A failure that cannot heal.
    Fatal(LeaseError),
}

/// How a failed request is handled.
enum Failure {
    /// Someone else wrote first, or the object is gone: observe again.
    Stale,
    /// Retry after a backoff.
    Retry,
    /// Cannot heal.
    Fatal(LeaseError),
}

fn classify(config: &ElectionConfig, error: kube::Error) -> (Failure, Option<kube::Error>) {
    match &error {
        kube::Error::Api(status) => match status.code {
            409 | 404 => (Failure::Stale, None),
            401 | 403 => (
                Failure::Fatal(LeaseError::Forbidden {
                    pool: config.pool.clone(),
                    namespace: config.namespace.clone(),
                    message: status.message.clone(),
                }),
                None,
            ),
            400 | 405 | 422 => (
                Failure::Fatal(LeaseError::Api {
                    pool: config.pool.clone(),
                    namespace: config.namespace.clone(),
                    source: error,
                }),
                None,
            ),
            _ => (Failure::Retry, Some(error)),
        },
        _ => (Failure::Retry, Some(error)),
    }
}

/// Exponential backoff capped at `cap`, with jitter in [50 %, 100 %] so that candidates that
/// failed together do not retry together.
pub(crate) fn backoff(failures: u32, cap: Duration) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let full = exp.min(cap).max(Duration::from_millis(10));
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    full.mul_f64(fraction)
}

/// Whether resource version `new` is older than or equal to `current` (both numeric, as every
/// API server we know writes them). Non-numeric versions are never judged stale.
fn not_newer(new: Option<&str>, current: Option<&str>) -> bool {
    match (
        new.and_then(|v| v.parse::<u64>().ok()),
        current.and_then(|v| v.parse::<u64>().ok()),
    ) {
        (Some(new), Some(current)) => new <= current,
        _ => false,
    }
}

/// Whether resource version `new` is strictly older than `current` (both numeric).
fn older(new: Option<&str>, current: Option<&str>) -> bool {
    match (
        new.and_then(|v| v.parse::<u64>().ok()),
        current.and_then(|v| v.parse::<u64>().ok()),
    ) {
        (Some(new), Some(current)) => new < current,
        _ => false,
    }
}

/// Sleeps until `until` on BOOTTIME, in bounded steps.
async fn sleep_until(until: BootInstant) {
    tokio::time::sleep(until.remaining().min(MAX_SLEEP)).await;
}

/// The observer: list, then watch from the list's version; resume on a normal end, list again on
/// errors, 410 Gone and idle (dead) connections.
async fn observe(
    api: Api<Lease>,
    config: ElectionConfig,
    tx: mpsc::Sender<Observed>,
    request_timeout: Duration,
) {
    let selector = format!("metadata.name={}", config.pool);
    let mut failures = 0u32;
    loop {
        if failures > 0 {
            tokio::time::sleep(backoff(failures, config.timing.retry_period)).await;
        }
        let list = tokio::time::timeout(
            request_timeout,
            api.list(&ListParams::default().fields(&selector)),
        )
        .await;
        let list = match list {
            Ok(Ok(list)) => list,
            Ok(Err(error)) => {
                debug!(?error, "listing the lease failed");
                failures += 1;
                let observed = match classify(&config, error) {
                    (Failure::Fatal(fatal), _) => {
                        let _ = tx.send(Observed::Fatal(fatal)).await;
                        return;
                    }
                    (_, Some(error)) => Observed::Failed(error),
                    (_, None) => continue,
                };
                if tx.send(observed).await.is_err() {
                    return;
                }
                continue;
            }
            Err(_) => {
                debug!("listing the lease timed out");
                failures += 1;
                continue;
            }
        };
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        let list_version = list.metadata.resource_version.clone();
        if tx
            .send(Observed::Listed {
                lease: list.items.into_iter().next(),
                version: list_version,
            })
            .await
            .is_err()
        {
            return;
        }
        failures = 0;
        // Watch until an error asks for a fresh list.
        'watch: loop {
            let params = WatchParams::default()
                .fields(&selector)
                .timeout(WATCH_TIMEOUT_SECS);
            let stream =
                match tokio::time::timeout(request_timeout, api.watch(&params, &version)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        debug!(?error, "starting the lease watch failed");
                        if let (Failure::Fatal(fatal), _) = classify(&config, error) {
                            let _ = tx.send(Observed::Fatal(fatal)).await;
                            return;
                        }
                        failures += 1;
                        break 'watch;
                    }
                    Err(_) => {
                        failures += 1;
                        break 'watch;
                    }
                };
            let mut stream = std::pin::pin!(stream);
            let started = tokio::time::Instant::now();
            loop {
                let event = match tokio::time::timeout(WATCH_IDLE, stream.try_next()).await {
                    Err(_) => {
                        debug!("lease watch idle for too long; assuming a dead connection");
                        break 'watch;
                    }
                    Ok(Err(error)) => {
                        debug!(?error, "lease watch failed");
                        failures += 1;
                        break 'watch;
                    }
                    // The server ended the watch (timeoutSeconds): resume from `version`,
                    // backing off if it ends watches as soon as they start.
                    Ok(Ok(None)) => {
                        if started.elapsed() < Duration::from_secs(1) {
                            failures += 1;
                            tokio::time::sleep(backoff(failures, config.timing.retry_period)).await;
                        } else {
                            failures = 0;
                        }
                        continue 'watch;
                    }
                    Ok(Ok(Some(event))) => event,
                };
                let observed = match event {
                    WatchEvent::Added(lease) | WatchEvent::Modified(lease) => {
                        version = lease.metadata.resource_version.clone().unwrap_or(version);
                        Observed::Changed(lease)
                    }
                    WatchEvent::Deleted(lease) => {
                        version = lease.metadata.resource_version.clone().unwrap_or(version);
                        Observed::Deleted {
                            resource_version: lease.metadata.resource_version,
                        }
                    }
                    WatchEvent::Bookmark(bookmark) => {
                        version = bookmark.metadata.resource_version;
                        continue;
                    }
                    WatchEvent::Error(status) => {
                        // 410 Gone: our version was compacted away; list again at once.
                        debug!(code = status.code, message = %status.message, "lease watch error event");
                        // Counted even for 410, so that a server answering only 410 is not
                        // hammered; the first relist after one is still almost immediate.
                        failures += 1;
                        break 'watch;
                    }
                };
                if tx.send(observed).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// What kind of write the driver makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Create { term: u64 },
    Acquire { term: u64 },
    TakeOver,
    Renew,
}

/// The elector task's state.
pub(crate) struct Driver {
    client: kube::Client,
    api: Api<Lease>,
    policies: Api<LeaderPolicy>,
    config: ElectionConfig,
    state: watch::Sender<LeaderState>,
    /// The latest observed Lease; `None` when absent.
    observed: Option<Lease>,
    record: Option<LeaseRecord>,
    key: Option<RecordKey>,
    first_seen: BootInstant,
    leading: Option<Leadership>,
    /// When we sent the write that acquired the lease (for `min_hold`).
    acquired_at: Option<BootInstant>,
    high_water: Option<u64>,
    /// The lease duration of the last record seen, kept when the Lease vanishes (PROTOCOL.md §2).
    last_lease_duration: Option<Duration>,
    /// For a finished holder's min-hold record: when the hold ends on our clock, once judged
    /// (from the API server's clock, PROTOCOL.md §5).
    hold_ends: Option<BootInstant>,
    failures: u32,
    /// No write before this instant (backoff after a failure).
    retry_at: Option<BootInstant>,
}

impl Driver {
    pub(crate) fn new(
        client: kube::Client,
        config: ElectionConfig,
        state: watch::Sender<LeaderState>,
    ) -> Self {
        Self {
            api: Api::namespaced(client.clone(), &config.namespace),
            policies: Api::namespaced(client.clone(), &config.namespace),
            client,
            config,
            state,
            observed: None,
            record: None,
            key: None,
            first_seen: BootInstant::now(),
            leading: None,
            acquired_at: None,
            high_water: None,
            last_lease_duration: None,
            hold_ends: None,
            failures: 0,
            retry_at: None,
        }
    }

    fn current_version(&self) -> Option<&str> {
        self.observed
            .as_ref()
            .and_then(|l| l.metadata.resource_version.as_deref())
    }

    fn holder(&self) -> Holder {
        Holder::candidate(&self.config.candidate)
    }

    /// Longest a single request may take: never past the holder's deadline, and never more
    /// than half the renew deadline, so that a request stuck on a dead connection leaves time
    /// for a second attempt on a fresh one before the deadline.
    fn request_timeout(&self) -> Duration {
        let cap = self.config.timing.renew_deadline / 2;
        match self.leading {
            Some(leading) => leading.deadline(&self.config.timing).remaining().min(cap),
            None => cap,
        }
    }

    /// Takes in an observation. Watch events older than what we hold are ignored, so a
    /// late event from before our own write cannot make us step down.
    fn apply(&mut self, lease: Option<Lease>, authoritative: bool) {
        if !authoritative {
            let new = lease
                .as_ref()
                .and_then(|l| l.metadata.resource_version.as_deref());
            let current = self
                .observed
                .as_ref()
                .and_then(|l| l.metadata.resource_version.as_deref());
            if not_newer(new, current) {
                return;
            }
        }
        let record = lease.as_ref().map(LeaseRecord::from_lease);
        if let Some(record) = &record {
            // PROTOCOL.md §3: without a controller's high-water mark, the highest term we saw is still a
            // floor for a Lease that is deleted and recreated.
            self.high_water = self.high_water.max(Some(record.term));
            // PROTOCOL.md §2: a Lease deleted after this is waited out for this duration.
            self.last_lease_duration =
                Some(record.lease_duration(self.config.timing.lease_duration));
        }
        let key = record.as_ref().map(LeaseRecord::key);
        if key != self.key || self.record.is_none() != record.is_none() {
            // PROTOCOL.md §2: a changed record restarts the local expiry timer.
            self.first_seen = BootInstant::now();
            self.key = key;
            self.hold_ends = None;
        }
        debug!(
            holder = ?record.as_ref().and_then(|r| r.holder.as_deref()),
            term = ?record.as_ref().map(|r| r.term),
            resource_version = ?lease.as_ref().and_then(|l| l.metadata.resource_version.as_deref()),
            "observed lease"
        );
        self.record = record;
        self.observed = lease;
        // An unmanaged Lease is a conflict (decided next), not a holder to follow.
        let managed = self.record.as_ref().is_none_or(|r| r.managed);
        if self.leading.is_none() && managed {
            let holder = self.record.as_ref().and_then(|r| r.holder.clone());
            self.state.send_if_modified(|state| {
                let next = LeaderState::Following { holder };
                let changed = *state != next;
                *state = next;
                changed
            });
        }
    }

    fn handle(
        &mut self,
        observed: Observed,
        last_error: &mut Option<kube::Error>,
    ) -> Result<(), LeaseError> {
        match observed {
            Observed::Listed { lease, version } => {
                let listed = lease
                    .as_ref()
                    .and_then(|l| l.metadata.resource_version.clone())
                    .or(version);
                if !older(listed.as_deref(), self.current_version()) {
                    self.apply(lease, true);
                }
            }
            Observed::Changed(lease) => self.apply(Some(lease), false),
            Observed::Deleted { resource_version } => {
                if !not_newer(resource_version.as_deref(), self.current_version()) {
                    self.apply(None, true);
                }
            }
            Observed::Failed(error) => *last_error = Some(error),
            Observed::Fatal(error) => return Err(error),
        }
        Ok(())
    }

    /// Reads the pool's high-water term from `LeaderPolicy` status (docs/PROTOCOL.md §3), if readable.
    async fn read_high_water(&mut self) {
        let timeout = self.request_timeout();
        match tokio::time::timeout(timeout, self.policies.get_opt(&self.config.pool)).await {
            Ok(Ok(Some(policy))) => {
                let term = policy
                    .status
                    .and_then(|s| s.term)
                    .and_then(|t| u64::try_from(t).ok());
                if term.is_some() {
                    self.high_water = self.high_water.max(term);
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => debug!(?error, "cannot read the LeaderPolicy high-water term"),
            Err(_) => debug!("reading the LeaderPolicy high-water term timed out"),
        }
    }

    /// Re-reads the Lease after a conflict.
    async fn refresh(&mut self) -> Result<(), LeaseError> {
        let timeout = self.request_timeout();
        match tokio::time::timeout(timeout, self.api.get_opt(&self.config.pool)).await {
            Ok(Ok(lease)) => {
                self.apply(lease, true);
                Ok(())
            }
            Ok(Err(error)) => match classify(&self.config, error) {
                (Failure::Fatal(fatal), _) => Err(fatal),
                _ => {
                    self.fail();
                    Ok(())
                }
            },
            Err(_) => {
                self.fail();
                Ok(())
            }
        }
    }

    fn fail(&mut self) {
        self.failures += 1;
        self.retry_at =
            Some(BootInstant::now() + backoff(self.failures, self.config.timing.retry_period));
    }

    fn publish_leading(&self) {
        if let Some(leading) = self.leading {
            let _ = self.state.send(LeaderState::Leading {
                term: leading.term,
                deadline: leading.deadline(&self.config.timing),
            });
        }
    }

    /// One conditional write (PROTOCOL.md §1).
    async fn write(&mut self, kind: Write) -> Result<(), LeaseError> {
        let timing = self.config.timing;
        let now = jiff::Timestamp::now();
        let holder = self.holder();
        let pool = self.config.pool.as_str();
        let body = match (kind, &self.observed) {
            (Write::Create { term }, _) => record::create(
                &self.config.namespace,
                pool,
                &holder,
                now,
                timing.lease_duration,
                term,
            ),
            (Write::Acquire { term }, Some(observed)) => {
                record::acquire(observed, pool, &holder, now, timing.lease_duration, term)
            }
            (Write::TakeOver | Write::Renew, Some(observed)) => Ok(record::renew(
                observed,
                pool,
                &holder,
                now,
                timing.lease_duration,
            )),
            (_, None) => return Ok(()),
        };
        let body = body.map_err(|overflow| self.term_overflow(overflow))?;
        let timeout = self.request_timeout();
        // The deadline is measured from this instant: it must be a real reading, since
        // `BootInstant::FAILED` here would put the deadline at the end of time.
        let send = BootInstant::try_now().map_err(|source| self.clock_failed(source))?;
        let params = PostParams::default();
        let result = tokio::time::timeout(timeout, async {
            match kind {
                Write::Create { .. } => self.api.create(&params, &body).await,
                _ => self.api.replace(pool, &params, &body).await,
            }
        })
        .await;
        match result {
            Ok(Ok(lease)) => {
                let term = LeaseRecord::from_lease(&lease).term;
                if self.leading.is_none() {
                    debug!(?kind, term, "acquired the lease");
                    self.acquired_at = Some(send);
                }
                self.leading = Some(Leadership {
                    term,
                    last_success_send: send,
                });
                self.failures = 0;
                self.retry_at = None;
                self.apply(Some(lease), true);
                self.publish_leading();
                Ok(())
            }
            Ok(Err(error)) => match classify(&self.config, error) {
                (Failure::Stale, _) => {
                    debug!(?kind, "conditional write lost; observing again");
                    let used = body.metadata.resource_version.clone();
                    self.refresh().await?;
                    if used.is_some() && self.current_version() == used.as_deref() {
                        // The server refused a write on the version it still shows: back off
                        // rather than spin.
                        self.fail();
                    }
                    Ok(())
                }
                (Failure::Retry, error) => {
                    debug!(?kind, ?error, "lease write failed; retrying");
                    self.fail();
                    Ok(())
                }
                (Failure::Fatal(fatal), _) => Err(fatal),
            },
            Err(_) => {
                debug!(?kind, ?timeout, "lease write timed out");
                self.fail();
                Ok(())
            }
        }
    }

    fn lost(&mut self, reason: LostReason) {
        if self.leading.take().is_some() {
            // Published as `Lost`: the consumer reports it.
            debug!(?reason, "lost the lease");
            let _ = self.state.send(LeaderState::Lost { reason });
        }
    }

    /// Whether we still lead: deadline not passed and the record still names our session.
    fn still_leading(&self) -> bool {
        let input = self.input(BootInstant::now());
        self.leading.is_some() && matches!(decide(&input), Decision::Renew { .. })
    }

    fn input(&self, now: BootInstant) -> Input<'_> {
        Input {
            record: self.record.as_ref(),
            first_seen: self.first_seen,
            candidate: &self.config.candidate,
            leading: self.leading,
            high_water_term: self.high_water,
            last_lease_duration: self.last_lease_duration,
            hold_ends: self.hold_ends,
            timing: self.config.timing,
            now,
        }
    }

    fn clock_failed(&self, source: crate::clock::ClockError) -> LeaseError {
        LeaseError::Clock {
            pool: self.config.pool.clone(),
            namespace: self.config.namespace.clone(),
            source,
        }
    }

    fn term_overflow(&self, source: TermOverflow) -> LeaseError {
        LeaseError::TermOverflow {
            pool: self.config.pool.clone(),
            namespace: self.config.namespace.clone(),
            source,
        }
    }

    /// The API server's clock, or the node's wall clock when it cannot be read (PROTOCOL.md §5).
    async fn server_time(&self) -> ServerTime {
        let read = server_clock::read(
            &self.client,
            &self.config.namespace,
            &self.config.pool,
            self.request_timeout(),
        )
        .await;
        read.unwrap_or_else(|| {
            debug!(
                "the API server's clock is not readable; judging the min-hold on the node's clock"
            );
            ServerTime::local_wall_clock()
        })
    }

    /// PROTOCOL.md §5: for a finished holder's min-hold record, judge once when the hold ends.
    async fn judge_min_hold(&mut self) {
        let Some(hold_until) = self.record.as_ref().and_then(LeaseRecord::min_hold_release) else {
            return;
        };
        if self.hold_ends.is_some() || self.leading.is_some() {
            return;
        }
        let clock = self.server_time().await;
        let ends = clock.local_instant(hold_until);
        debug!(%hold_until, server_now = %clock.server, "judged the end of the min-hold");
        self.hold_ends = Some(ends);
    }

    /// Writes `body(observed)` conditionally until it succeeds, we no longer lead, or the
    /// deadline passes. Returns whether it was written.
    async fn final_write(
        &mut self,
        what: &str,
        body: impl Fn(&Lease) -> Lease,
    ) -> Result<bool, LeaseError> {
        while self.still_leading() {
            if let Some(retry_at) = self.retry_at.filter(|at| !at.has_passed()) {
                sleep_until(retry_at).await;
                continue;
            }
            let Some(observed) = &self.observed else {
                return Ok(false);
            };
            let lease = body(observed);
            let timeout = self.request_timeout();
            let result = tokio::time::timeout(
                timeout,
                self.api
                    .replace(&self.config.pool, &PostParams::default(), &lease),
            )
            .await;
            match result {
                Ok(Ok(lease)) => {
                    debug!(what, "final lease write done");
                    self.apply(Some(lease), true);
                    return Ok(true);
                }
                Ok(Err(error)) => match classify(&self.config, error) {
                    (Failure::Stale, _) => self.refresh().await?,
                    (Failure::Retry, _) => self.fail(),
                    (Failure::Fatal(fatal), _) => return Err(fatal),
                },
                Err(_) => self.fail(),
            }
        }
        Ok(false)
    }

    /// PROTOCOL.md §5: empty the holder in one conditional write, or with `min_hold` (when honoured) keep
    /// it held until `acquireTime + min_hold`.
    async fn release(&mut self, honour_hold: bool) -> Result<(), LeaseError> {
        if self.leading.is_none() {
            return Ok(());
        }
        let hold = if honour_hold {
            self.min_hold_until().await
        } else {
            None
        };
        let pool = self.config.pool.clone();
        let written = self
            .final_write("release", |observed| {
                let now = jiff::Timestamp::now();
                match hold {
                    None => record::release(observed, &pool, now),
                    Some((until, remaining)) => {
                        record::release_with_min_hold(observed, &pool, now, until, remaining)
                    }
                }
            })
            .await?;
        if !written {
            debug!("could not release the lease before the deadline; it expires on its own");
        }
        self.leading = None;
        let holder = self.record.as_ref().and_then(|r| r.holder.clone());
        let _ = self.state.send(LeaderState::Following { holder });
        Ok(())
    }

    /// The end of this term's `--min-hold` on the API server's clock, and the hold left on our
    /// clock; `None` when there is none left. The hold is measured on BOOTTIME from when we sent
    /// the acquisition, and placed on the server's clock with one reading of its `Date` (PROTOCOL.md §5).
    async fn min_hold_until(&self) -> Option<(jiff::Timestamp, Duration)> {
        let (min_hold, acquired_at) = self.config.min_hold.zip(self.acquired_at)?;
        let remaining = (acquired_at + min_hold).remaining();
        if remaining.is_zero() {
            return None;
        }
        let clock = self.server_time().await;
        // Read again: the clock reading took time out of the hold.
        let remaining = (acquired_at + min_hold).remaining();
        let until = jiff::SignedDuration::try_from(remaining)
            .ok()
            .and_then(|r| clock.now().checked_add(r).ok())?;
        Some((until, remaining))
    }

    /// Gate mode: mark the lease `renewer: controller` and stop renewing.
    async fn hand_to_controller(&mut self) -> Result<u64, LeaseError> {
        let Some(term) = self.leading.map(|l| l.term) else {
            return Err(self.stopped());
        };
        let hold = self.min_hold_until().await.map(|(until, _)| until);
        let pool = self.config.pool.clone();
        let written = self
            .final_write("hand to controller", |observed| {
                record::hand_to_controller(observed, &pool, jiff::Timestamp::now(), hold)
            })
            .await?;
        self.leading = None;
        let holder = self.record.as_ref().and_then(|r| r.holder.clone());
        let _ = self.state.send(LeaderState::Following { holder });
        if written {
            Ok(term)
        } else {
            Err(self.stopped())
        }
    }

    fn stopped(&self) -> LeaseError {
        LeaseError::Stopped {
            pool: self.config.pool.clone(),
            namespace: self.config.namespace.clone(),
        }
    }

    /// Runs the elector until it loses, is told to stop, or fails.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
    ) -> Result<(), LeaseError> {
        let (tx, mut rx) = mpsc::channel(16);
        let observer = tokio::spawn(
            observe(
                self.api.clone(),
                self.config.clone(),
                tx,
                self.config.timing.renew_deadline,
            )
            .in_current_span(),
        );
        // Stop the observer whichever way we leave.
        let _observer = AbortOnDrop(observer);
        let result = self.campaign(&mut rx, &mut commands).await;
        if let Err(error) = &result {
            // Returned to the caller, who reports it (STYLE: libraries log at debug).
            debug!(%error, "elector stopped");
            // A holder that cannot go on must stop its work now rather than at the deadline.
            self.lost(LostReason::RenewDeadline);
        }
        result
    }

    async fn first_observation(
        &mut self,
        rx: &mut mpsc::Receiver<Observed>,
    ) -> Result<(), LeaseError> {
        let give_up = BootInstant::now() + self.config.timing.lease_duration;
        let mut last_error = None;
        loop {
            tokio::select! {
                observed = rx.recv() => {
                    let Some(observed) = observed else { return Err(self.stopped()) };
                    let listed = matches!(observed, Observed::Listed { .. });
                    self.handle(observed, &mut last_error)?;
                    if listed {
                        return Ok(());
                    }
                }
                () = sleep_until(give_up) => {
                    if give_up.has_passed() {
                        let source = last_error.unwrap_or_else(|| kube::Error::Service(
                            "no answer from the API server".into(),
                        ));
                        return Err(LeaseError::Unreachable {
                            pool: self.config.pool.clone(),
                            namespace: self.config.namespace.clone(),
                            source,
                        });
                    }
                }
            }
        }
    }

    async fn campaign(
        &mut self,
        rx: &mut mpsc::Receiver<Observed>,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Result<(), LeaseError> {
        self.read_high_water().await;
        self.first_observation(rx).await?;
        let mut last_error = None;
        loop {
            self.judge_min_hold().await;
            // A clock that cannot be read judges nothing: stop (docs/PROTOCOL.md §2).
            let now = BootInstant::try_now().map_err(|source| self.clock_failed(source))?;
            let decision = decide(&self.input(now));
            let gate = self.retry_at.filter(|at| *at > now);
            let wake = match decision {
                Decision::Lost(reason) => {
                    self.lost(reason);
                    return Ok(());
                }
                Decision::Conflict => {
                    let holder = self.record.as_ref().and_then(|r| r.holder.clone());
                    self.lost(LostReason::Superseded {
                        holder: holder.unwrap_or_default(),
                    });
                    debug!("the pool's lease exists but is not managed by zen-lead");
                    return Err(LeaseError::Unmanaged {
                        pool: self.config.pool.clone(),
                        namespace: self.config.namespace.clone(),
                    });
                }
                Decision::Create { .. } | Decision::Acquire { .. } | Decision::TakeOver { .. }
                    if gate.is_some() =>
                {
                    gate
                }
                Decision::Create { term } => {
                    // The controller may have raised the high-water mark since we last looked;
                    // if so, decide again with it (a known mark also means waiting, PROTOCOL.md §2).
                    let before = self.high_water;
                    self.read_high_water().await;
                    if self.high_water == before {
                        self.write(Write::Create { term }).await?;
                    }
                    continue;
                }
                Decision::Acquire { term } => {
                    self.write(Write::Acquire { term }).await?;
                    continue;
                }
                Decision::TakeOver { .. } => {
                    self.write(Write::TakeOver).await?;
                    continue;
                }
                Decision::Renew { at } => {
                    let at = gate.map_or(at, |gate| gate.max(at));
                    if at <= now {
                        self.write(Write::Renew).await?;
                        continue;
                    }
                    Some(at)
                }
                Decision::Wait { until } => Some(until),
                Decision::TermExhausted(overflow) => {
                    return Err(self.term_overflow(overflow));
                }
            };
            // A holder also wakes at its deadline, to step down on time.
            let deadline = self.leading.map(|l| l.deadline(&self.config.timing));
            let wake = match (wake, deadline) {
                (Some(w), Some(d)) => w.min(d),
                (w, d) => w.or(d).unwrap_or_else(|| now + MAX_SLEEP),
            };
            tokio::select! {
                observed = rx.recv() => match observed {
                    Some(observed) => self.handle(observed, &mut last_error)?,
                    None => return Err(self.stopped()),
                },
                command = commands.recv() => match command {
                    Some(Command::Release { reply, honour_hold }) => {
                        let result = self.release(honour_hold).await;
                        let failed = result.as_ref().err().map(ToString::to_string);
                        let _ = reply.send(result);
                        if let Some(message) = failed {
                            debug!(%message, "release failed");
                        }
                        return Ok(());
                    }
                    Some(Command::HandToController(reply)) => {
                        let _ = reply.send(self.hand_to_controller().await);
                        return Ok(());
                    }
                    // The handle was dropped: nobody consumes our state any more.
                    None => return Ok(()),
                },
                () = sleep_until(wake) => {}
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Spawns the elector task in a span naming the pool and identity.
pub(crate) fn spawn(
    client: kube::Client,
    config: ElectionConfig,
    state: watch::Sender<LeaderState>,
    commands: mpsc::Receiver<Command>,
    term_floor: u64,
) -> tokio::task::JoinHandle<Result<(), LeaseError>> {
    let span = tracing::debug_span!(
        "elector",
        pool = %config.pool,
        namespace = %config.namespace,
        identity = %config.candidate.identity,
    );
    let mut driver = Driver::new(client, config, state);
    driver.high_water = (term_floor > 0).then_some(term_floor);
    tokio::spawn(driver.run(commands).instrument(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(2);
        for failures in 1..30 {
            let d = backoff(failures, cap);
            assert!(d <= cap, "{failures}: {d:?}");
            assert!(d >= Duration::from_millis(5), "{failures}: {d:?}");
        }
        assert!(backoff(1, cap) <= BACKOFF_BASE);
        assert!(backoff(20, cap) >= cap / 2);
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("msg", "Reason")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn errors_that_cannot_heal_are_not_retried() {
        let config = ElectionConfig {
            pool: "p".into(),
            namespace: "ns".into(),
            candidate: super::super::Candidate {
                identity: "a".into(),
                pod_uid: None,
                session: "s".into(),
            },
            timing: super::super::Timing::default(),
            min_hold: None,
        };
        let kind = |code| match classify(&config, api_error(code)).0 {
            Failure::Stale => "stale",
            Failure::Retry => "retry",
            Failure::Fatal(LeaseError::Forbidden { .. }) => "forbidden",
            Failure::Fatal(LeaseError::Api { .. }) => "api",
            Failure::Fatal(_) => "other",
        };
        assert_eq!(kind(401), "forbidden");
        assert_eq!(kind(403), "forbidden");
        assert_eq!(kind(422), "api");
        assert_eq!(kind(409), "stale");
        assert_eq!(kind(404), "stale");
        for code in [429, 500, 502, 503, 504] {
            assert_eq!(kind(code), "retry", "{code}");
        }
        let transport = kube::Error::Service("connection reset".into());
        assert!(matches!(classify(&config, transport).0, Failure::Retry));
    }

    #[test]
    fn resource_versions_order_numerically() {
        assert!(not_newer(Some("9"), Some("10")));
        assert!(not_newer(Some("10"), Some("10")));
        assert!(!not_newer(Some("11"), Some("10")));
        assert!(!not_newer(Some("abc"), Some("10")));
        assert!(!not_newer(Some("1"), None));
        assert!(older(Some("9"), Some("10")));
        assert!(!older(Some("10"), Some("10")));
        assert!(!older(None, Some("10")));
    }
}
