//! The reconciler of one pool: the only module that writes (docs/ARCHITECTURE.md, "The
//! controller").
//!
//! It reads the pool's pods and Lease from the reflector stores, asks the pure modules what to
//! do, and performs it in this order: demote, write the Lease (conditionally), write roles
//! (demotions before the promotion), write the status, publish Events. Nothing is written unless
//! this replica holds the controller's own Lease ([`crate::leadership`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};
use tracing::{debug, info, warn};
use zen_lead::api::{LeaderPolicy, LeaderPolicyStatus};
use zen_lead::clock::BootInstant;
use zen_lead::lease::Timing;
use zen_lead::lease::record::{self, Holder, LeaseRecord, RecordKey, Renewer};
use zen_lead::lease::steward::{self, Cause, Step};

use crate::election::{self, HolderState, Successor};
use crate::events::{Events, Subject, reason as event};
use crate::evidence::{self, Evidence};
use crate::leadership::{Leadership, NotLeader, Permit};
use crate::metrics::{ErrorLabels, Metrics, PoolLabels, TransitionLabels, WriteLabels};
use crate::pods::PodView;
use crate::pool_index::PoolPods;
use crate::roles::{self, Role};
use crate::status;
use crate::synced::Synced;
use crate::write_slots::WriteSlots;

/// Longest wait before a pool is looked at again when nothing is due: a safety net against a
/// lost watch event, not a resync.
const IDLE_RECHECK: Duration = Duration::from_secs(300);
/// Retry delay after a lost conditional write (someone else wrote first).
const CONFLICT_RETRY: Duration = Duration::from_millis(200);
/// Longest wait for the read that tells whether a Lease in the way is another tool's.
const FOREIGN_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a Lease found to be another tool's is believed before it is looked at again (the
/// Lease watch only sees zen-lead's Leases, so its deletion sends no event).
const FOREIGN_RECHECK: Duration = Duration::from_secs(30);

/// A reconcile that failed; the pool is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A Lease write failed (not a conflict).
    #[error("writing the Lease {namespace}/{pool} ({operation}) failed")]
    WriteLease {
        /// Namespace.
        namespace: String,
        /// Pool.
        pool: String,
        /// `create`, `acquire`, `renew` or `release`.
        operation: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A role patch failed.
    #[error("writing the role of pod {namespace}/{pod} failed")]
    WriteRole {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The status patch failed.
    #[error("writing the status of LeaderPolicy {namespace}/{pool} failed")]
    WriteStatus {
        /// Namespace.
        namespace: String,
        /// Pool.
        pool: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A write did not finish before this replica's own renew deadline.
    #[error(
        "a write for pool {namespace}/{pool} did not finish before the controller's renew deadline"
    )]
    DeadlinePassed {
        /// Namespace.
        namespace: String,
        /// Pool.
        pool: String,
    },
    /// This replica stopped leading between two writes.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
}

impl ReconcileError {
    /// The metric label of the error.
    pub fn label(&self) -> String {
        let code = |source: &kube::Error| match source {
            kube::Error::Api(status) => status.code.to_string(),
            _ => "transport".to_string(),
        };
        match self {
            Self::WriteLease { source, .. } => format!("lease_write_{}", code(source)),
            Self::WriteRole { source, .. } => format!("role_write_{}", code(source)),
            Self::WriteStatus { source, .. } => format!("status_write_{}", code(source)),
            Self::DeadlinePassed { .. } => "deadline_passed".into(),
            Self::NotLeader(_) => "not_leader".into(),
        }
    }
}

/// What the controller remembers of one pool between reconciles.
#[derive(Debug, Default)]
struct PoolMemory {
    /// The record last seen (`Some(None)`: the Lease was absent), and since when.
    key: Option<Option<RecordKey>>,
    first_seen: Option<BootInstant>,
    /// The response of our last Lease write (newer than the store until the watch catches up).
    written: Option<Lease>,
    /// A Lease with the pool's name that zen-lead does not manage, and when it was read.
    foreign: Option<(Lease, Instant)>,
    /// Send time of our last successful write of the current record.
    last_renewal: Option<BootInstant>,
    /// The holder pod's containers at the holder's last renewal: (holder UID, progress).
    baseline: Option<(String, BTreeMap<String, u64>)>,
    /// Who the last record seen names, under which term ([`named`]).
    named: Option<Named>,
    /// The holder UID whose containers the kubelet reported stopped since the holder's last
    /// renewal (docs/PROTOCOL.md §8): only then is the pod object's disappearance evidence.
    stopped: Option<String>,
    /// The live holder last reported: (pod name, UID, term).
    leader: Option<(String, String, u64)>,
    /// The highest term seen on the pool's Lease in any watch event or write response: part
    /// of the high-water mark before `status.term` catches up (docs/PROTOCOL.md §3).
    max_term: Option<u64>,
    /// When the pool lost its live holder (for the failover histogram) and why.
    lost_at: Option<Instant>,
    /// The evidence last seen against the holder (the cause of the next transition).
    evidence: Option<Evidence>,
    /// The last `LeaderElected` reason reported by an Event.
    reported_reason: Option<String>,
    /// Pods already warned about (missing identity).
    warned: HashSet<String>,
    /// The Lease was absent after a holder was known: the last lease duration seen.
    last_lease_duration: Option<Duration>,
    /// Roles we wrote, by pod UID, with the resourceVersion of our write and the leadership
    /// tenure it was written in: the store may not show them yet, and a demotion must never be
    /// skipped because of a stale view.
    roles: HashMap<String, (Role, u64, u64)>,
}

/// Shared state of every reconcile.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// The annotated pods, by pool.
    pub pods: PoolPods,
    /// Managed Leases.
    pub leases: Store<Lease>,
    /// Whether this replica may write.
    pub leadership: Leadership,
    /// Events.
    pub events: Events,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Whether the caches hold their initial lists: nothing is written before.
    pub synced: Synced,
    /// The bound on API writes in flight: the one [`Context::events`] writes within.
    write_slots: WriteSlots,
    memory: Mutex<HashMap<(String, String), PoolMemory>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// A context over the given stores.
    pub fn new(
        client: kube::Client,
        pods: PoolPods,
        leases: Store<Lease>,
        leadership: Leadership,
        events: Events,
        metrics: Arc<Metrics>,
        synced: Synced,
    ) -> Self {
        let write_slots = events.write_slots().clone();
        Self {
            client,
            pods,
            leases,
            leadership,
            events,
            metrics,
            synced,
            write_slots,
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// Runs a write once a write slot is free, abandoning it, waiting or in flight, at the
    /// controller's own renew deadline.
    async fn bounded<T>(&self, permit: Permit, write: impl Future<Output = T>) -> Option<T> {
        self.write_slots.run(permit.remaining(), write).await
    }

    /// Notes the term of a zen-lead Lease seen in a watch event (or written), for the pool's
    /// high-water mark.
    pub fn saw_lease(&self, lease: &Lease) {
        let (Some(namespace), Some(pool)) = (&lease.metadata.namespace, &lease.metadata.name)
        else {
            return;
        };
        let record = LeaseRecord::from_lease(lease);
        if !record.managed {
            return;
        }
        let key = (namespace.clone(), pool.clone());
        self.with_memory(&key, |m| m.max_term = m.max_term.max(Some(record.term)));
    }

    fn with_memory<T>(&self, key: &(String, String), f: impl FnOnce(&mut PoolMemory) -> T) -> T {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(memory.entry(key.clone()).or_default())
    }
}

/// The pool's high-water mark (docs/PROTOCOL.md §3): `status.term`, the observed record's term,
/// and the highest term this replica saw on the Lease (`status.term` is written after the fact).
fn high_water(
    status_term: Option<i64>,
    record: Option<&LeaseRecord>,
    seen: Option<u64>,
) -> Option<u64> {
    status_term
        .and_then(|t| u64::try_from(t).ok())
        .max(record.map(|r| r.term))
        .max(seen)
}

fn resource_version(lease: &Lease) -> u64 {
    lease
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Drops the object's `managedFields`, which the controller never reads, before a store or the
/// pool memory keeps it. A write of such an object omits the field, and the API server keeps
/// its own.
pub fn drop_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// The newer of the store's Lease and our own last write.
fn newest(stored: Option<Lease>, written: Option<&Lease>) -> Option<Lease> {
    match (stored, written) {
        (Some(s), Some(w)) if resource_version(w) > resource_version(&s) => Some(w.clone()),
        (Some(s), _) => Some(s),
        // Absent in the store: a deletion (or a create of ours not yet seen, which then loses
        // its retry with 409 and is observed again).
        (None, _) => None,
    }
}

/// The pool's view: pods, record and the evidence, computed from plain values.
struct View {
    pods: Vec<PodView>,
    lease: Option<Lease>,
    record: Option<LeaseRecord>,
}

impl View {
    fn holder_pod(&self, strategy: zen_lead::api::IdentityStrategy) -> Option<&PodView> {
        let record = self.record.as_ref()?;
        let holder = record.holder.as_deref()?;
        match record.holder_uid.as_deref() {
            Some(uid) => self.pods.iter().find(|p| p.uid == uid),
            None => self
                .pods
                .iter()
                .find(|p| p.identity(strategy) == Some(holder)),
        }
    }

    fn namesake(&self, strategy: zen_lead::api::IdentityStrategy) -> Option<&PodView> {
        let record = self.record.as_ref()?;
        let holder = record.holder.as_deref()?;
        let uid = record.holder_uid.as_deref()?;
        self.pods
            .iter()
            .find(|p| p.uid != uid && (p.name == holder || p.identity(strategy) == Some(holder)))
    }
}

/// Who a record names, under which term: holder, pod UID, session, term.
type Named = (Option<String>, Option<String>, Option<String>, u64);

fn named(record: Option<&LeaseRecord>) -> Option<Named> {
    record.filter(|r| r.is_held()).map(|r| {
        (
            r.holder.clone(),
            r.holder_uid.clone(),
            r.session.clone(),
            r.term,
        )
    })
}

/// The evidence baseline (docs/PROTOCOL.md §8) at a newly seen record: the holder pod's
/// containers, taken only at a renewal (the record before named the same holder, session and
/// term), never at an acquisition. A holder that acquires from inside a container that has just
/// restarted would otherwise get a baseline from a pod view that predates the restart, and the
/// restart, reported a moment later, would pass for evidence against it.
fn baseline_at(
    before: Option<&Named>,
    now: Option<&Named>,
    pod: Option<&PodView>,
) -> Option<(String, BTreeMap<String, u64>)> {
    if now.is_none() || before != now {
        return None;
    }
    pod.map(|p| (p.uid.clone(), p.progress()))
}

fn holder_for(to: &Successor) -> Holder {
    Holder {
        identity: to.identity.clone(),
        pod_uid: Some(to.uid.clone()),
        session: None,
        renewer: Renewer::Controller,
    }
}

/// Reconciles one pool.
pub async fn reconcile(
    policy: Arc<LeaderPolicy>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile_pool(&policy, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// The retry policy of a failed reconcile: logged, counted, retried after a short backoff.
pub fn error_policy(
    policy: Arc<LeaderPolicy>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let pool = policy.metadata.name.as_deref().unwrap_or_default();
    let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            error: error.label(),
        })
        .inc();
    match error {
        ReconcileError::NotLeader(_) => debug!(pool, namespace, "not leading; write skipped"),
        _ => {
            warn!(pool, namespace, error = %zen_lead::exec::one_line(error), "reconcile failed; retrying")
        }
    }
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile_pool(policy: &LeaderPolicy, ctx: &Context) -> Result<Action, ReconcileError> {
    let pool = policy.metadata.name.clone().unwrap_or_default();
    let namespace = policy.metadata.namespace.clone().unwrap_or_default();
    let key = (namespace.clone(), pool.clone());
    let spec = &policy.spec;
    let strategy = spec.identity_strategy;
    let checked = spec.timing();
    let timing = checked.clone().unwrap_or_default();
    let now = BootInstant::now();

    let pods = ctx.pods.of(&namespace, &pool);
    let stored = ctx
        .leases
        .get(&ObjectRef::new(&pool).within(&namespace))
        .map(|l| (*l).clone());
    let lease = ctx.with_memory(&key, |m| {
        m.foreign = m
            .foreign
            .take()
            .filter(|(_, read)| stored.is_none() && read.elapsed() < FOREIGN_RECHECK);
        match &m.foreign {
            Some((foreign, _)) => Some(foreign.clone()),
            None => newest(stored, m.written.as_ref()),
        }
    });
    let mut pods = pods;
    ctx.with_memory(&key, |m| {
        m.roles.retain(|uid, _| pods.iter().any(|p| &p.uid == uid));
        for pod in &mut pods {
            if let Some((role, rv, _)) = m.roles.get(&pod.uid)
                && *rv > pod.resource_version
            {
                pod.role_annotation = Some(role.as_str().to_owned());
                pod.role_label = Some(role.as_str().to_owned());
                pod.pool_label = Some(pool.clone());
            }
        }
    });
    let mut view = View {
        record: lease.as_ref().map(LeaseRecord::from_lease),
        lease,
        pods,
    };

    // What changed since the last look: the record (the expiry timer restarts, the holder's
    // containers are the new baseline, and nothing is known stopped since this renewal).
    let holder_pod = view.holder_pod(strategy).cloned();
    let observed_key = view.record.as_ref().map(LeaseRecord::key);
    let (first_seen, last_renewal, baseline, stopped_seen, last_lease_duration) =
        ctx.with_memory(&key, |m| {
            if m.key.as_ref() != Some(&observed_key) {
                if observed_key.is_none()
                    && let Some(Some(_)) = &m.key
                {
                    m.last_lease_duration = Some(timing.lease_duration);
                }
                m.key = Some(observed_key.clone());
                m.first_seen = Some(now);
                m.last_renewal = None;
                let now_named = named(view.record.as_ref());
                m.baseline = baseline_at(m.named.as_ref(), now_named.as_ref(), holder_pod.as_ref());
                m.named = now_named;
                m.stopped = None;
            }
            let holder_uid = view.record.as_ref().and_then(|r| r.holder_uid.clone());
            let baseline = m
                .baseline
                .as_ref()
                .filter(|(uid, _)| Some(uid) == holder_uid.as_ref())
                .map(|(_, counts)| counts.clone());
            let stopped_seen = holder_uid.is_some() && m.stopped == holder_uid;
            (
                m.first_seen.unwrap_or(now),
                m.last_renewal,
                baseline,
                stopped_seen,
                m.last_lease_duration,
            )
        });

    let found_evidence = view.record.as_ref().filter(|r| r.is_held()).and_then(|r| {
        evidence::judge(&evidence::Observation {
            holder_pod: holder_pod.as_ref(),
            namesake: view.namesake(strategy),
            holder_uid: r.holder_uid.as_deref(),
            stopped_seen,
            baseline: baseline.as_ref(),
        })
    });
    if let (Some(evidence), Some(pod)) = (found_evidence, holder_pod.as_ref())
        && evidence.seen_on_pod()
    {
        // The kubelet's report, remembered for when the pod object is gone.
        ctx.with_memory(&key, |m| m.stopped = Some(pod.uid.clone()));
    }
    let holder = election::holder_state(view.record.as_ref(), holder_pod.as_ref(), found_evidence);
    let exclude = match holder {
        HolderState::Dead(_) => holder_pod.as_ref().map(|p| p.uid.as_str()),
        _ => None,
    };
    let successor = election::successor(&view.pods, strategy, exclude);
    let seen = ctx.with_memory(&key, |m| {
        m.max_term = m.max_term.max(view.record.as_ref().map(|r| r.term));
        m.max_term
    });
    let status_term = policy.status.as_ref().and_then(|s| s.term);
    let plan = steward::decide(&steward::Input {
        record: view.record.as_ref(),
        first_seen,
        holder: holder.steward(),
        successor: successor.is_some(),
        high_water: high_water(status_term, view.record.as_ref(), seen),
        last_lease_duration,
        last_renewal,
        timing,
        now,
        wall_now: jiff::Timestamp::now(),
    });
    ctx.with_memory(&key, |m| {
        if let Some(e) = found_evidence {
            m.evidence = Some(e);
        }
        // The failover clock starts when the controller first sees the live holder gone.
        if m.leader.is_some() && !matches!(holder, HolderState::Alive { .. }) {
            m.lost_at.get_or_insert_with(Instant::now);
        }
    });

    let labels = PoolLabels::new(&namespace, &pool);
    let candidates = view.pods.iter().filter(|p| p.is_candidate()).count();
    let ready = view.pods.iter().filter(|p| p.is_ready()).count();
    ctx.metrics
        .candidates
        .get_or_create(&labels)
        .set(i64::try_from(candidates).unwrap_or(i64::MAX));
    ctx.metrics
        .ready_candidates
        .get_or_create(&labels)
        .set(i64::try_from(ready).unwrap_or(i64::MAX));

    // A standby only keeps its memory warm. So does a leader whose caches are not complete yet:
    // a pod missing from an unsynced cache would read as a lost holder.
    if !ctx.leadership.is_leading() || !ctx.synced.all() {
        return Ok(requeue(&plan, now));
    }

    // 1. The Lease write, if any. Invalid timings elect nothing.
    let mut cause = None;
    let mut wrote = None;
    if checked.is_ok() {
        match write_lease(
            ctx,
            &view,
            &plan,
            successor.as_ref(),
            &pool,
            &namespace,
            &timing,
        )
        .await
        {
            Ok(Some((lease, sent, written_cause))) => {
                ctx.saw_lease(&lease);
                cause = written_cause;
                wrote = Some((lease, sent));
            }
            Ok(None) => {}
            Err(WriteOutcome::Conflict) => {
                ctx.with_memory(&key, |m| m.written = None);
                return Ok(Action::requeue(CONFLICT_RETRY));
            }
            Err(WriteOutcome::Foreign(foreign)) => {
                // Not zen-lead's: never taken over, reported at once (status and Event).
                ctx.with_memory(&key, |m| {
                    m.written = None;
                    m.foreign = Some((*foreign, Instant::now()));
                });
                return Ok(Action::requeue(Duration::from_millis(1)));
            }
            Err(WriteOutcome::Failed(error)) => return Err(*error),
        }
    }
    if let Some((lease, sent)) = wrote.clone() {
        let record = LeaseRecord::from_lease(&lease);
        let new_holder_pod = record
            .holder_uid
            .as_deref()
            .and_then(|uid| view.pods.iter().find(|p| p.uid == uid));
        ctx.with_memory(&key, |m| {
            m.key = Some(Some(record.key()));
            m.first_seen = Some(sent);
            m.last_renewal = Some(sent);
            let now_named = named(Some(&record));
            m.baseline = baseline_at(m.named.as_ref(), now_named.as_ref(), new_holder_pod);
            m.named = now_named;
            m.stopped = None;
            let mut written = lease.clone();
            drop_managed_fields(&mut written);
            m.written = Some(written);
        });
        view.record = Some(record);
        view.lease = Some(lease);
    }

    // 2. Who leads now, by the record as written.
    let holder_pod = view.holder_pod(strategy).cloned();
    let holder = match wrote {
        Some(_) => election::holder_state(view.record.as_ref(), holder_pod.as_ref(), None),
        None => holder,
    };
    let expired = match (&view.record, holder) {
        (Some(r), HolderState::Alive { renew: false } | HolderState::Stopped(_))
            if wrote.is_none() =>
        {
            now >= election::expires_at(r, first_seen, timing.lease_duration)
        }
        _ => false,
    };
    let conflict = plan == Step::Conflict;
    let missing: Vec<String> = match strategy {
        zen_lead::api::IdentityStrategy::Custom => view
            .pods
            .iter()
            .filter(|p| p.is_candidate() && p.identity(strategy).is_none())
            .map(|p| p.name.clone())
            .collect(),
        zen_lead::api::IdentityStrategy::Pod => Vec::new(),
    };
    let status_input = status::Input {
        generation: policy.metadata.generation,
        spec,
        timing: checked.as_ref().map(|_| ()),
        previous: policy.status.as_ref(),
        record: view.record.as_ref(),
        holder,
        expired,
        holder_pod: holder_pod.as_ref().map(|p| p.name.as_str()),
        candidates,
        ready,
        conflict,
        missing_identities: &missing,
        seen_term: ctx.with_memory(&key, |m| m.max_term),
        now: jiff::Timestamp::now(),
    };
    let live = status_input.live();
    let leader_uid = if live {
        holder_pod.as_ref().map(|p| p.uid.clone())
    } else {
        None
    };

    // 3. Roles: demotions first; the promotion only once every demotion is written.
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let written = wrote_follower(ctx, &key);
    let changes = roles::changes(&view.pods, &pool, leader_uid.as_deref(), |uid| {
        written.contains(uid)
    });
    for change in changes {
        let permit = ctx.leadership.permit()?;
        let patch = change.patch(&pool);
        let result = ctx
            .bounded(
                permit,
                api.patch(&change.pod, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await
            .ok_or_else(|| ReconcileError::DeadlinePassed {
                namespace: namespace.clone(),
                pool: pool.clone(),
            })?;
        match result {
            Ok(pod) => {
                remember_role(ctx, &key, &change.uid, change.role, &pod);
                debug!(
                    pool,
                    pod = change.pod,
                    role = change.role.as_str(),
                    "role written"
                );
            }
            // The pod is gone: nothing to label.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(ReconcileError::WriteRole {
                    namespace: namespace.clone(),
                    pod: change.pod.clone(),
                    source,
                });
            }
        }
        if change.role == Role::Leader {
            info!(pool, namespace, pod = change.pod, "leader role written");
        }
    }

    // 4. Status, only when it changed.
    let new_status = status::compute(&status_input);
    if policy.status.as_ref() != Some(&new_status) {
        let permit = ctx.leadership.permit()?;
        let body = status_patch(&new_status);
        let api: Api<LeaderPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
        let result = ctx
            .bounded(
                permit,
                api.patch_status(&pool, &PatchParams::default(), &Patch::Merge(&body)),
            )
            .await
            .ok_or_else(|| ReconcileError::DeadlinePassed {
                namespace: namespace.clone(),
                pool: pool.clone(),
            })?;
        match result {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(source) => {
                return Err(ReconcileError::WriteStatus {
                    namespace,
                    pool,
                    source,
                });
            }
        }
    }
    ctx.metrics
        .leader_present
        .get_or_create(&labels)
        .set(i64::from(live));

    // 5. Events and transition metrics.
    report(
        ctx,
        policy,
        &key,
        &view,
        holder_pod.as_ref().filter(|_| live),
        cause,
        found_evidence,
        &new_status,
        &missing,
    )
    .await;

    let next = wrote.map(|(_, sent)| sent + timing.retry_period);
    Ok(match next {
        Some(at) => Action::requeue(
            at.saturating_duration_since(now)
                .max(Duration::from_millis(50)),
        ),
        None => requeue(&plan, now),
    })
}

fn requeue(plan: &Step, now: BootInstant) -> Action {
    match plan {
        Step::Idle { recheck: Some(at) } => Action::requeue(
            at.saturating_duration_since(now)
                .max(Duration::from_millis(20))
                .min(IDLE_RECHECK),
        ),
        // Another tool's Lease sends no watch event when it goes away: look again.
        Step::Conflict => Action::requeue(FOREIGN_RECHECK),
        Step::Idle { recheck: None } | Step::TermExhausted(_) => Action::requeue(IDLE_RECHECK),
        // A write was due but not made (standby): look again soon, in case leadership comes.
        _ => Action::requeue(Duration::from_secs(1)),
    }
}

/// The merge patch that sets `status`, removing fields that are now absent.
fn status_patch(status: &LeaderPolicyStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(map) = value.as_object_mut() {
        for field in [
            "phase",
            "currentHolder",
            "candidates",
            "readyCandidates",
            "term",
            "lastTransitionTime",
            "observedGeneration",
            "conditions",
        ] {
            map.entry(field).or_insert(Value::Null);
        }
    }
    json!({ "status": value })
}

enum WriteOutcome {
    Conflict,
    /// The create found a Lease of the pool's name that zen-lead does not manage.
    Foreign(Box<Lease>),
    Failed(Box<ReconcileError>),
}

impl From<NotLeader> for WriteOutcome {
    fn from(error: NotLeader) -> Self {
        Self::Failed(Box::new(error.into()))
    }
}

/// Performs the plan's Lease write. Before a new holder is named, every other pod is demoted.
async fn write_lease(
    ctx: &Context,
    view: &View,
    plan: &Step,
    successor: Option<&Successor>,
    pool: &str,
    namespace: &str,
    timing: &Timing,
) -> Result<Option<(Lease, BootInstant, Option<Cause>)>, WriteOutcome> {
    let now = jiff::Timestamp::now();
    let overflow = |e: record::TermOverflow| {
        warn!(pool, namespace, error = %e, "no term is left for this pool's Lease; delete the Lease and reset the LeaderPolicy status term");
        Ok(None)
    };
    let (operation, body, cause, new_holder) = match (plan, &view.lease, successor) {
        (Step::Create { term }, _, Some(to)) => {
            match record::create(
                namespace,
                pool,
                &holder_for(to),
                now,
                timing.lease_duration,
                *term,
            ) {
                Ok(body) => ("create", body, Some(Cause::Vacant), Some(to)),
                Err(e) => return overflow(e),
            }
        }
        (Step::Acquire { term, cause }, Some(observed), Some(to)) => {
            match record::controller_handover(
                observed,
                pool,
                &to.identity,
                Some(&to.uid),
                now,
                timing.lease_duration,
                *term,
            ) {
                Ok(body) => ("acquire", body, Some(*cause), Some(to)),
                Err(e) => return overflow(e),
            }
        }
        (Step::Renew, Some(observed), _) => {
            let Some(record) = view.record.as_ref().filter(|r| r.is_held()) else {
                return Ok(None);
            };
            let holder = Holder {
                identity: record.holder.clone().unwrap_or_default(),
                pod_uid: record.holder_uid.clone(),
                session: None,
                renewer: Renewer::Controller,
            };
            (
                "renew",
                record::renew(observed, pool, &holder, now, timing.lease_duration),
                None,
                None,
            )
        }
        (Step::Release { hold }, Some(observed), _) => {
            let body = match hold {
                Some((until, remaining)) => {
                    record::release_with_min_hold(observed, pool, now, *until, *remaining)
                }
                None => record::release(observed, pool, now),
            };
            ("release", body, None, None)
        }
        (Step::TermExhausted(e), _, _) => return overflow(*e),
        _ => return Ok(None),
    };
    if let Some(to) = new_holder {
        // Ordering guarantee (docs/PATTERNS.md): the old leader is written follower before the
        // Lease names anyone else.
        demote_others(ctx, view, pool, namespace, &to.uid).await?;
    }
    let permit = ctx.leadership.permit()?;
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), namespace);
    let sent = BootInstant::now();
    let result = ctx
        .bounded(permit, async {
            if operation == "create" {
                api.create(&PostParams::default(), &body).await
            } else {
                api.replace(pool, &PostParams::default(), &body).await
            }
        })
        .await
        .ok_or_else(|| {
            WriteOutcome::Failed(Box::new(ReconcileError::DeadlinePassed {
                namespace: namespace.to_owned(),
                pool: pool.to_owned(),
            }))
        })?;
    match result {
        Ok(lease) => {
            let record = LeaseRecord::from_lease(&lease);
            debug!(pool, namespace, operation, term = record.term, holder = ?record.holder, "lease written");
            if operation != "renew" {
                info!(pool, namespace, operation, term = record.term, holder = ?record.holder, cause = ?cause.map(Cause::label), "lease written");
            }
            Ok(Some((lease, sent, cause)))
        }
        Err(kube::Error::Api(s)) if s.code == 409 && operation == "create" => {
            // The Lease watch sees only zen-lead's Leases: is this one another tool's?
            // A read that hangs is a conflict too: the pool is observed again shortly.
            match tokio::time::timeout(FOREIGN_READ_TIMEOUT, api.get_opt(pool)).await {
                Ok(Ok(Some(mut found))) if !LeaseRecord::from_lease(&found).managed => {
                    drop_managed_fields(&mut found);
                    debug!(
                        pool,
                        namespace,
                        "a Lease with the pool's name exists without app.kubernetes.io/managed-by=zen-lead; it is never taken over"
                    );
                    Err(WriteOutcome::Foreign(Box::new(found)))
                }
                _ => Err(WriteOutcome::Conflict),
            }
        }
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
            debug!(
                pool,
                operation, "conditional lease write lost; observing again"
            );
            Err(WriteOutcome::Conflict)
        }
        Err(source) => {
            ctx.metrics
                .lease_write_errors
                .get_or_create(&WriteLabels {
                    namespace: namespace.to_owned(),
                    pool: pool.to_owned(),
                    operation: operation.to_owned(),
                })
                .inc();
            Err(WriteOutcome::Failed(Box::new(ReconcileError::WriteLease {
                namespace: namespace.to_owned(),
                pool: pool.to_owned(),
                operation,
                source,
            })))
        }
    }
}

fn remember_role(ctx: &Context, key: &(String, String), uid: &str, role: Role, written: &Pod) {
    let rv = written
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let tenure = ctx.leadership.tenure();
    ctx.with_memory(key, |m| {
        m.roles.insert(uid.to_owned(), (role, rv, tenure));
    });
}

/// The pods of the pool this replica wrote `follower` on in its current tenure.
fn wrote_follower(ctx: &Context, key: &(String, String)) -> HashSet<String> {
    let tenure = ctx.leadership.tenure();
    ctx.with_memory(key, |m| {
        m.roles
            .iter()
            .filter(|(_, (role, _, t))| *role == Role::Follower && *t == tenure)
            .map(|(uid, _)| uid.clone())
            .collect()
    })
}

/// Writes `follower` on every pod of the pool that shows `leader` and is not `keep`.
async fn demote_others(
    ctx: &Context,
    view: &View,
    pool: &str,
    namespace: &str,
    keep: &str,
) -> Result<(), WriteOutcome> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let key = (namespace.to_owned(), pool.to_owned());
    let written = wrote_follower(ctx, &key);
    for change in roles::demotions_before(&view.pods, pool, keep, |uid| written.contains(uid)) {
        let permit = ctx.leadership.permit()?;
        let patch = change.patch(pool);
        match ctx
            .bounded(
                permit,
                api.patch(&change.pod, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await
        {
            Some(Ok(pod)) => remember_role(ctx, &key, &change.uid, Role::Follower, &pod),
            Some(Err(kube::Error::Api(s))) if s.code == 404 => {}
            Some(Err(source)) => {
                return Err(WriteOutcome::Failed(Box::new(ReconcileError::WriteRole {
                    namespace: namespace.to_owned(),
                    pod: change.pod.clone(),
                    source,
                })));
            }
            None => {
                return Err(WriteOutcome::Failed(Box::new(
                    ReconcileError::DeadlinePassed {
                        namespace: namespace.to_owned(),
                        pool: pool.to_owned(),
                    },
                )));
            }
        }
    }
    Ok(())
}

/// Events and transition metrics, from what changed since the last report.
#[allow(clippy::too_many_arguments)]
async fn report(
    ctx: &Context,
    policy: &LeaderPolicy,
    key: &(String, String),
    view: &View,
    leader: Option<&PodView>,
    cause: Option<Cause>,
    evidence_now: Option<Evidence>,
    status: &LeaderPolicyStatus,
    missing: &[String],
) {
    let (namespace, pool) = key;
    let term = view.record.as_ref().map_or(0, |r| r.term);
    let now_leader = leader.map(|p| (p.name.clone(), p.uid.clone(), term));
    let reason = status
        .conditions
        .iter()
        .find(|c| c.type_ == zen_lead::api::CONDITION_LEADER_ELECTED)
        .map(|c| (c.reason.clone(), c.message.clone()));
    let (before, lost_at, evidence, reported, newly_missing) = ctx.with_memory(key, |m| {
        let before = m.leader.clone();
        if before.is_some() && now_leader.is_none() && m.lost_at.is_none() {
            m.lost_at = Some(Instant::now());
        }
        let lost_at = if now_leader.is_some() && now_leader != before {
            m.lost_at.take()
        } else {
            None
        };
        let evidence = if now_leader != before && now_leader.is_some() {
            m.evidence.take()
        } else {
            None
        };
        m.leader = now_leader.clone();
        let reported = reason
            .as_ref()
            .filter(|(r, _)| m.reported_reason.as_ref() != Some(r))
            .cloned();
        m.reported_reason = reason.as_ref().map(|(r, _)| r.clone());
        let newly_missing: Vec<String> = missing
            .iter()
            .filter(|name| m.warned.insert((*name).clone()))
            .cloned()
            .collect();
        (before, lost_at, evidence, reported, newly_missing)
    });
    let policy_subject = Subject::policy(policy);
    let pod_subject = |name: &str| view.pods.iter().find(|p| p.name == name).map(Subject::pod);
    if before != now_leader {
        if let Some((old, _, old_term)) = &before {
            let mut subjects = vec![policy_subject.clone()];
            subjects.extend(pod_subject(old));
            ctx.events
                .publish(
                    &subjects,
                    false,
                    event::LEADER_LOST,
                    format!("{old} no longer leads pool {pool} (term {old_term})"),
                )
                .await;
        }
        if let Some((new, _, new_term)) = &now_leader {
            let mut subjects = vec![policy_subject.clone()];
            subjects.extend(pod_subject(new));
            ctx.events
                .publish(
                    &subjects,
                    false,
                    event::LEADER_ELECTED,
                    format!("{new} leads pool {pool} (term {new_term})"),
                )
                .await;
            let evidence = evidence_now.or(evidence);
            let why = match (cause, evidence) {
                (Some(c), _) => c,
                (None, Some(_)) => Cause::Evidence,
                (None, None) => Cause::Expiry,
            };
            let why = if before.is_none() && why == Cause::Expiry && lost_at.is_none() {
                Cause::Vacant
            } else {
                why
            };
            ctx.metrics
                .transitions
                .get_or_create(&TransitionLabels {
                    namespace: namespace.clone(),
                    pool: pool.clone(),
                    reason: why.label().to_owned(),
                })
                .inc();
            if let Some(lost_at) = lost_at {
                ctx.metrics
                    .failover_seconds
                    .get_or_create(&PoolLabels::new(namespace, pool))
                    .observe(lost_at.elapsed().as_secs_f64());
            }
            if before.is_some() || lost_at.is_some() {
                let detail = match (why, evidence) {
                    (Cause::Evidence, Some(e)) => format!("evidence ({})", e.label()),
                    (other, _) => other.label().to_owned(),
                };
                ctx.events
                    .publish(
                        &subjects,
                        false,
                        event::FAILOVER,
                        format!("leadership of pool {pool} moved to {new} on {detail}"),
                    )
                    .await;
            }
        }
    }
    if let Some((reason, message)) = reported {
        let published = match reason.as_str() {
            status::reason::NO_CANDIDATES | status::reason::NO_READY_CANDIDATES => {
                Some(event::NO_CANDIDATES)
            }
            // Failures a person must fix: the log, the condition, this Event and a metric label.
            status::reason::LEASE_CONFLICT => Some(event::LEASE_CONFLICT),
            status::reason::INVALID_TIMING => Some(event::INVALID_TIMING),
            _ => None,
        };
        if let Some(published) = published {
            if published != event::NO_CANDIDATES {
                warn!(
                    pool,
                    namespace,
                    reason = published,
                    message,
                    "the pool elects nothing"
                );
                ctx.metrics
                    .reconcile_errors
                    .get_or_create(&ErrorLabels {
                        error: match published {
                            event::LEASE_CONFLICT => "lease_conflict".into(),
                            _ => "invalid_timing".into(),
                        },
                    })
                    .inc();
            }
            ctx.events
                .publish(
                    std::slice::from_ref(&policy_subject),
                    true,
                    published,
                    message,
                )
                .await;
        }
    }
    for name in newly_missing {
        if let Some(subject) = pod_subject(&name) {
            ctx.events
                .publish(
                    &[subject],
                    true,
                    event::MISSING_IDENTITY,
                    format!(
                        "pool {pool} uses identityStrategy custom: set the zen-lead/identity annotation or a literal ZEN_LEAD_IDENTITY env"
                    ),
                )
                .await;
        }
    }
}

/// Warns about annotated pods whose pool has no LeaderPolicy: once per pod, when this replica
/// leads and its caches are synced. A pod seen while standing by is warned about once this
/// replica leads; a pod whose policy appeared in the meantime is not.
#[derive(Debug, Default)]
pub struct Orphans {
    warned: HashSet<String>,
    pending: HashMap<String, PodView>,
}

impl Orphans {
    /// Takes in a pod event.
    pub fn observe(&mut self, pod: PodView) {
        if pod.pool.is_some() && pod.join && !pod.terminating {
            if !self.warned.contains(&pod.uid) {
                self.pending.insert(pod.uid.clone(), pod);
            }
        } else {
            // Left the pool, or leaving: forget it (it is warned again if it comes back).
            self.warned.remove(&pod.uid);
            self.pending.remove(&pod.uid);
        }
    }

    /// Whether a pod waits to be judged.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The pending pods to warn about now, given whether a pod's pool has a policy; the rest
    /// stay pending while this replica cannot write. Pods with a policy are dropped.
    pub fn take_due(
        &mut self,
        can_write: bool,
        has_policy: impl Fn(&PodView) -> bool,
    ) -> Vec<PodView> {
        if !can_write {
            return Vec::new();
        }
        let mut due = Vec::new();
        for (uid, pod) in std::mem::take(&mut self.pending) {
            if !has_policy(&pod) {
                self.warned.insert(uid);
                due.push(pod);
            }
        }
        due.sort_by(|a, b| a.name.cmp(&b.name));
        due
    }

    /// Publishes the warnings that are due.
    pub async fn flush(&mut self, ctx: &Context, has_policy: impl Fn(&PodView) -> bool) {
        let can_write = ctx.synced.all() && ctx.leadership.is_leading();
        for pod in self.take_due(can_write, has_policy) {
            let pool = pod.pool.clone().unwrap_or_default();
            info!(
                pod = pod.name,
                namespace = pod.namespace,
                pool,
                "pod names a pool without a LeaderPolicy"
            );
            ctx.events
                .publish(
                    &[Subject::pod(&pod)],
                    true,
                    event::NO_LEADER_POLICY,
                    format!(
                        "no LeaderPolicy {pool} in namespace {}: the controller does not elect for this pod (zen-lead-exec works without one)",
                        pod.namespace
                    ),
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(rv: &str) -> Lease {
        let mut lease = Lease::default();
        lease.metadata.resource_version = Some(rv.into());
        lease
    }

    #[test]
    fn our_write_overrides_an_older_store_until_the_watch_catches_up() {
        let pick = |s: Option<&str>, w: Option<&str>| {
            newest(s.map(lease), w.map(lease).as_ref()).and_then(|l| l.metadata.resource_version)
        };
        assert_eq!(pick(Some("5"), Some("7")).as_deref(), Some("7"));
        assert_eq!(pick(Some("9"), Some("7")).as_deref(), Some("9"));
        assert_eq!(pick(Some("5"), None).as_deref(), Some("5"));
        assert_eq!(pick(None, Some("7")), None);
    }

    fn pod(name: &str, pool: Option<&str>) -> PodView {
        let mut pod = PodView::from_pod(&Pod::default());
        pod.name = name.into();
        pod.uid = format!("uid-{name}");
        pod.pool = pool.map(Into::into);
        pod.join = true;
        pod
    }

    #[test]
    fn an_orphan_is_warned_once_when_this_replica_can_write() {
        let mut orphans = Orphans::default();
        let none = |_: &PodView| false;
        orphans.observe(pod("a", Some("nowhere")));
        // Standing by (or caches not synced): nothing yet, the pod waits.
        assert!(orphans.take_due(false, none).is_empty());
        assert!(orphans.has_pending());
        // Leading: one warning.
        let names = |due: Vec<PodView>| due.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names(orphans.take_due(true, none)), ["a"]);
        // Later events of the same pod warn no more.
        orphans.observe(pod("a", Some("nowhere")));
        assert!(!orphans.has_pending());
        assert!(orphans.take_due(true, none).is_empty());
        // A pod that left and came back is warned again.
        orphans.observe(pod("a", None));
        orphans.observe(pod("a", Some("nowhere")));
        assert_eq!(names(orphans.take_due(true, none)), ["a"]);
    }

    #[test]
    fn a_pod_whose_policy_appeared_meanwhile_is_not_warned() {
        let mut orphans = Orphans::default();
        orphans.observe(pod("b", Some("late")));
        let mut terminating = pod("c", Some("nowhere"));
        terminating.terminating = true;
        orphans.observe(terminating);
        let due = orphans.take_due(true, |p: &PodView| p.pool.as_deref() == Some("late"));
        assert!(due.is_empty());
        assert!(!orphans.has_pending());
    }

    #[test]
    fn the_evidence_baseline_is_taken_at_renewals_only() {
        let pod = crate::pods::fixtures::candidate("a").ready(0);
        let a = |session: &str, term: u64| -> Option<Named> {
            Some((
                Some("a".into()),
                Some("uid-a".into()),
                Some(session.into()),
                term,
            ))
        };
        let taken = |before: Option<Named>, now: Option<Named>| {
            baseline_at(before.as_ref(), now.as_ref(), Some(&pod)).is_some()
        };
        assert!(taken(a("s1", 4), a("s1", 4)), "a renewal");
        assert!(!taken(None, a("s1", 4)), "the first record seen");
        assert!(!taken(a("s1", 4), a("s2", 5)), "a new holder process");
        assert!(!taken(a("s1", 4), a("s1", 5)), "a new term");
        assert!(!taken(a("s1", 4), None), "nobody holds");
        assert!(baseline_at(a("s1", 4).as_ref(), a("s1", 4).as_ref(), None).is_none());
    }

    #[test]
    fn the_high_water_mark_includes_every_term_seen_before_the_status_catches_up() {
        let record = |term| {
            let lease = Lease {
                spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                    lease_transitions: Some(term),
                    ..Default::default()
                }),
                ..Default::default()
            };
            LeaseRecord::from_lease(&lease)
        };
        // The Lease went to term 9, then was deleted and recreated at 1; status still says 3.
        assert_eq!(high_water(Some(3), Some(&record(1)), Some(9)), Some(9));
        assert_eq!(high_water(Some(3), None, Some(9)), Some(9));
        assert_eq!(high_water(Some(12), Some(&record(1)), Some(9)), Some(12));
        assert_eq!(high_water(None, Some(&record(4)), None), Some(4));
        assert_eq!(high_water(Some(-1), None, None), None);
    }

    #[test]
    fn status_patch_clears_absent_fields() {
        let patch = status_patch(&LeaderPolicyStatus::default());
        assert_eq!(patch["status"]["currentHolder"], Value::Null);
        assert!(
            patch["status"]
                .as_object()
                .unwrap()
                .contains_key("currentHolder")
        );
    }
}
