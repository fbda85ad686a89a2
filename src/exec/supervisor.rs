//! The straight sequence of `zen-lead-exec`: validate -> client -> timings -> campaign ->
//! (follower: wait / skip / fail) -> lead: run the child while the lease is held -> release.
//! The gate checks that the controller is alive before the campaign and again before it hands
//! renewal over; a dead controller gets nothing handed over.
//!
//! Invariant: the child runs only while this process holds the lease. Leadership ends at the
//! elector's `Leading.deadline`, and the stop thread ([`super::stopper`]) has the child dead by
//! `deadline + kill_grace`, which the timing rules keep below the lease duration, before anyone
//! else may acquire. Nothing in this async sequence can delay that thread.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::api::{self, ApiError, HolderLooks, PolicySettings};
use super::child::{self, ChildError, LeaseEnv};
use super::config::{Config, DEFAULT_KILL_GRACE, Fallback, Mode, OnFollower, TimingConfigError};
use super::controller_alive::{self, AliveError, ControllerLease};
use super::exit_code;
use super::pre_exec::InheritedSignals;
use super::reaper::{Leftovers, Reaper, ReaperError};
use super::signals::{self, Event, SignalsError};
use super::stopper::{StopPlan, Stopper};
use crate::api::IdentityStrategy;
use crate::clock::{BootInstant, ClockError};
use crate::identity::{self, IdentityError};
use crate::lease::{Candidate, ElectionConfig, Elector, LeaderState, LeaseError};

/// Longest a local deadline check can lag behind a suspend: timers sleep on CLOCK_MONOTONIC,
/// which stops during suspend, so they wake at least this often to read CLOCK_BOOTTIME.
const BOOTTIME_TICK: Duration = Duration::from_millis(100);

/// Extra time granted to the final release write beyond `min_hold`.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest pause between two campaigns of a `--rejoin` standby through an API outage.
const OUTAGE_BACKOFF_CAP: Duration = Duration::from_secs(30);

/// A failure that ends the wrapper with one of the documented codes.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The tokio runtime could not start.
    #[error("cannot start the async runtime")]
    StartRuntime(#[source] std::io::Error),
    /// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
    #[error(transparent)]
    BecomeSubreaper(#[from] ReaperError),
    /// Signal handling could not be installed.
    #[error(transparent)]
    InstallSignals(#[from] SignalsError),
    /// Client, namespace or LeaderPolicy.
    #[error(transparent)]
    PrepareApi(#[from] ApiError),
    /// No identity.
    #[error(transparent)]
    ResolveIdentity(#[from] IdentityError),
    /// The timings (flags over LeaderPolicy over defaults) break a rule.
    #[error(transparent)]
    ResolveTiming(#[from] TimingConfigError),
    /// No clock can be read: no deadline can be judged, so nothing may run.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// The stop thread could not start, so the child was killed at once.
    #[error("cannot start the stop thread; the child was killed")]
    ArmStopper(#[source] std::io::Error),
    /// The campaign failed in a way that cannot heal.
    #[error(transparent)]
    Campaign(#[from] LeaseError),
    /// `gate`: the controller is not alive, or its Lease cannot be read; nothing was handed over.
    #[error(transparent)]
    ControllerAlive(#[from] AliveError),
    /// `--wait-timeout` passed.
    #[error("did not become leader of pool {pool} within --wait-timeout {}", humantime::format_duration(*.waited))]
    WaitTimeout {
        /// Pool.
        pool: String,
        /// The timeout.
        waited: Duration,
    },
    /// Another replica leads and `--on-follower fail` was given.
    #[error("pool {pool} is led by {holder} and --on-follower is fail")]
    Follower {
        /// Pool.
        pool: String,
        /// The holder.
        holder: String,
    },
    /// The command could not be started.
    #[error(transparent)]
    SpawnChild(#[from] ChildError),
    /// A termination signal came while waiting for the API server, before anything ran.
    #[error("{0:?} while waiting for the API server; nothing ran")]
    Signalled(Signal),
    /// The signal thread stopped, so signals and the child's exit can no longer be observed.
    #[error("the signal thread stopped unexpectedly")]
    SignalThreadGone,
}

impl ExecError {
    /// The documented exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::StartRuntime(_)
            | Self::BecomeSubreaper(_)
            | Self::InstallSignals(_)
            | Self::Clock(_)
            | Self::ArmStopper(_) => exit_code::OS_ERROR,
            Self::PrepareApi(e) => match e {
                ApiError::LoadKubeconfig { .. } | ApiError::BuildClient { .. } => exit_code::CONFIG,
                ApiError::ReadPolicyForbidden { .. } => exit_code::PERMISSION_DENIED,
                ApiError::ReadPolicyUnreachable { .. } => exit_code::API_UNREACHABLE,
            },
            Self::ResolveIdentity(_) | Self::ResolveTiming(_) => exit_code::CONFIG,
            Self::Campaign(e) => lease_error_code(e),
            Self::ControllerAlive(e) => match e {
                AliveError::NotAlive { .. } => exit_code::NO_CONTROLLER,
                AliveError::Forbidden { .. } => exit_code::PERMISSION_DENIED,
                AliveError::Unreachable { .. } => exit_code::API_UNREACHABLE,
            },
            Self::WaitTimeout { .. } => exit_code::WAIT_TIMEOUT,
            Self::Follower { .. } => exit_code::FOLLOWER,
            Self::SpawnChild(e) => e.exit_code(),
            Self::Signalled(signal) => exit_code::for_signal(*signal as i32),
            Self::SignalThreadGone => exit_code::SOFTWARE,
        }
    }
}

fn lease_error_code(error: &LeaseError) -> u8 {
    match error {
        LeaseError::Forbidden { .. } => exit_code::PERMISSION_DENIED,
        LeaseError::Unmanaged { .. } => exit_code::UNMANAGED_LEASE,
        LeaseError::Unreachable { .. } | LeaseError::Api { .. } => exit_code::API_UNREACHABLE,
        LeaseError::Stopped { .. } => exit_code::SOFTWARE,
        LeaseError::TermOverflow { .. } => exit_code::CONFIG,
        LeaseError::Clock { .. } => exit_code::OS_ERROR,
    }
}

/// Runs the wrapper to completion and returns the process exit code.
pub fn run(config: Config) -> Result<u8, ExecError> {
    // Every deadline is judged on this clock: without it nothing may run.
    BootInstant::try_now()?;
    // Captured before any handler exists: this is what the child gets back.
    let inherited = InheritedSignals::capture();
    let reaper = Arc::new(Reaper::new());
    if Reaper::become_subreaper()? {
        tracing::debug!("child subreaper");
    }
    let events = signals::install(reaper.clone())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ExecError::StartRuntime)?;
    let supervisor = Supervisor {
        config,
        inherited,
        reaper,
        events,
        terminating: None,
        kill_grace: DEFAULT_KILL_GRACE,
    };
    runtime.block_on(supervisor.run())
}

struct Supervisor {
    config: Config,
    inherited: InheritedSignals,
    reaper: Arc<Reaper>,
    events: mpsc::UnboundedReceiver<Event>,
    /// A termination signal forwarded to the child: the wrapper was told to end, so a lost
    /// lease must not lead to `--rejoin`.
    terminating: Option<Signal>,
    /// The kill grace: `--kill-grace`, else the default shrunk to fit the timings.
    kill_grace: Duration,
}

/// How a campaign ended.
#[derive(Debug, PartialEq, Eq)]
enum Campaign {
    Leading(u64),
    /// It led, and lost again, before the child could start: the same as losing the lease
    /// while running (exit 80, or `--rejoin`), not an internal error.
    LostBeforeStart,
    Skipped {
        holder: String,
    },
    Signalled(Signal),
}

/// What the elector's answer to "are we leading?" means for the campaign.
fn campaign_result(leading: Result<u64, LeaseError>) -> Result<Campaign, ExecError> {
    match leading {
        Ok(term) => Ok(Campaign::Leading(term)),
        Err(LeaseError::Stopped { .. }) => Ok(Campaign::LostBeforeStart),
        Err(error) => Err(error.into()),
    }
}

/// How a term of leadership ended; the child is dead in both cases.
enum Term {
    ChildExited(WaitStatus),
    Lost,
}

impl Supervisor {
    async fn run(mut self) -> Result<u8, ExecError> {
        let mut candidate = Candidate::from_process_env(self.config.identity.as_deref())?;
        let client = api::client(&candidate.identity).await?;
        let namespace = api::namespace(self.config.namespace.as_deref(), &client);
        let policy_name = format!("{namespace}/{}", self.config.pool);
        let settings = self.read_policy(&client, &namespace).await?;
        if settings.is_some_and(|s| s.identity_strategy == IdentityStrategy::Custom) {
            candidate.identity = identity::require_custom(
                self.config.identity.as_deref(),
                identity::process_env,
                &policy_name,
            )?;
        }
        let fallback = match settings {
            Some(settings) => Fallback::Policy(&policy_name, settings.timing),
            None => Fallback::Defaults,
        };
        let (timing, kill_grace) = self
            .config
            .timing
            .resolve(fallback, self.config.kill_grace)?;
        self.kill_grace = kill_grace;
        let election = ElectionConfig {
            pool: self.config.pool.clone(),
            namespace: namespace.clone(),
            candidate,
            timing,
            min_hold: self.config.min_hold,
        };
        if let Mode::Gate(controller) = &self.config.mode {
            // Fail fast: a gate that cannot hand over must not take the pool's lease first.
            let controller = controller.clone();
            if let Some(signal) = self.controller_alive(&client, &controller).await? {
                return Ok(exit_code::for_signal(signal as i32));
            }
        }
        tracing::debug!(pool = %election.pool, %namespace, identity = %election.candidate.identity, ?timing, ?kill_grace, "campaigning");
        // The term this process last led under: a rejoin never goes below it (docs/PROTOCOL.md §3).
        let mut led_term = 0;
        let mut outages = 0;
        let mut warned_not_pid1 = false;
        loop {
            let mut elector = Elector::spawn_above(client.clone(), election.clone(), led_term);
            let term = match self.campaign(&mut elector, &client, &election).await {
                Ok(Campaign::Leading(term)) => term,
                Ok(Campaign::LostBeforeStart) => {
                    tracing::warn!(pool = %election.pool, "lease lost before the child started");
                    self.release(elector, &election).await;
                    if !self.config.rejoin {
                        return Ok(exit_code::LEASE_LOST);
                    }
                    continue;
                }
                Ok(Campaign::Skipped { holder }) => {
                    tracing::info!(pool = %election.pool, %holder, "another replica leads; skipping");
                    self.release(elector, &election).await;
                    return Ok(exit_code::SUCCESS);
                }
                Ok(Campaign::Signalled(signal)) => {
                    tracing::info!(?signal, "signalled before leading; exiting");
                    self.release(elector, &election).await;
                    return Ok(exit_code::for_signal(signal as i32));
                }
                Err(ExecError::Campaign(error)) if self.waits_through(&error) => {
                    drop(elector);
                    outages += 1;
                    let pause = crate::lease::outage_backoff(outages, OUTAGE_BACKOFF_CAP);
                    tracing::warn!(pool = %election.pool, error = %super::one_line(&error), retry_in = %humantime::format_duration(pause), "API server unreachable; waiting for it (--rejoin)");
                    if let Some(signal) = self.pause(pause).await? {
                        return Ok(exit_code::for_signal(signal as i32));
                    }
                    continue;
                }
                Err(error) => {
                    self.release(elector, &election).await;
                    return Err(error);
                }
            };
            outages = 0;
            tracing::info!(pool = %election.pool, term, "leading");
            let command = match &self.config.mode {
                Mode::Gate(controller) => {
                    // The controller may have died while this gate waited for the lease: check
                    // again, right before it becomes the only renewer.
                    let controller = controller.clone();
                    match self.controller_alive(&client, &controller).await {
                        Ok(None) => {}
                        Ok(Some(signal)) => {
                            self.release_unused(elector, &election).await;
                            return Ok(exit_code::for_signal(signal as i32));
                        }
                        Err(error) => {
                            // Nothing ran: release with the marker, so a successor leads at once.
                            self.release_unused(elector, &election).await;
                            return Err(error);
                        }
                    }
                    let term = match elector.hand_to_controller().await {
                        Ok(term) => term,
                        // Leading ended before the hand-over was written: nothing may run.
                        Err(LeaseError::Stopped { .. }) => {
                            tracing::warn!(pool = %election.pool, "lease lost before the hand-over to the controller");
                            return Ok(exit_code::LEASE_LOST);
                        }
                        Err(error) => return Err(error.into()),
                    };
                    tracing::info!(pool = %election.pool, term, "handed renewal to the controller");
                    return Ok(exit_code::SUCCESS);
                }
                Mode::Run(command) => command.clone(),
            };
            // `leading()` answers as soon as a Leading state was published; by now the deadline
            // in it may have passed (a late response, a pause). Never start work on it.
            let state = elector.state().borrow().clone();
            let Some((term, deadline)) = term_to_start(&state, BootInstant::now()) else {
                tracing::warn!(pool = %election.pool, ?state, "lease lost before the child started");
                self.release(elector, &election).await;
                if !self.config.rejoin {
                    return Ok(exit_code::LEASE_LOST);
                }
                continue;
            };
            let env = LeaseEnv {
                pool: election.pool.clone(),
                namespace: namespace.clone(),
                identity: election.candidate.identity.clone(),
                term,
            };
            if !warned_not_pid1 && nix::unistd::getpid().as_raw() != 1 {
                // docs/EXEC.md: said once, before the first child, where it matters.
                tracing::warn!(
                    "not PID 1: if zen-lead-exec itself is killed, the processes the command started keep running (the kernel stops them only when PID 1 of their PID namespace dies); run zen-lead-exec as the container's entrypoint"
                );
                warned_not_pid1 = true;
            }
            let pid = match child::spawn(&command, &env, &self.inherited, &self.reaper) {
                Ok(pid) => pid,
                Err(error) => {
                    self.release(elector, &election).await;
                    return Err(error.into());
                }
            };
            let plan = StopPlan {
                pid,
                group: self.config.signal_group,
                stop_signal: self.config.stop_signal,
                kill_grace: self.kill_grace,
            };
            let stopper = match Stopper::arm(plan, elector.state(), deadline) {
                Ok(stopper) => stopper,
                Err(error) => {
                    // Never run a child without its stop: kill it, and let the lease expire.
                    signals::kill_group(pid);
                    signals::forward(pid, Signal::SIGKILL, false);
                    return Err(ExecError::ArmStopper(error));
                }
            };
            led_term = led_term.max(term);
            tracing::info!(pid = pid.as_raw(), term, "child started");
            let outcome = self.lead(&elector, pid).await;
            stopper.disarm();
            // Whatever ended the term, no descendant of the child may outlive it, not even one
            // that left its process group: all are gone before the lease is released.
            signals::kill_group(pid);
            let leftovers = super::reaper::kill_leftovers().await;
            if leftovers.killed {
                tracing::info!("killed processes the child left behind");
            }
            // A clock that failed while the child ran has stopped it; now end with the error.
            BootInstant::try_now()?;
            let code = match outcome? {
                Term::ChildExited(status) => Some(exit_code::from_wait_status(status)),
                Term::Lost => None,
            };
            if !may_release(&leftovers) {
                // docs/PROTOCOL.md §5: what cannot be confirmed gone is not released; the lease
                // expires on its own while the survivor may still die. Nor is it rejoined.
                tracing::warn!(pool = %election.pool, pids = ?leftovers.surviving, "a process the child started survived SIGKILL; not releasing: the lease expires on its own");
                drop(elector);
                return Ok(code.unwrap_or(exit_code::LEASE_LOST));
            }
            match code {
                Some(code) => {
                    tracing::info!(code, "child exited; releasing");
                    self.release(elector, &election).await;
                    return Ok(code);
                }
                None => {
                    self.release(elector, &election).await;
                    if !self.config.rejoin || self.terminating.is_some() {
                        return Ok(exit_code::LEASE_LOST);
                    }
                    tracing::info!(pool = %election.pool, "rejoining");
                }
            }
        }
    }

    /// The pool's LeaderPolicy. With every timing given as a flag only `identityStrategy` is
    /// needed from it, so a failure to read it is not an error then. A `--rejoin` standby waits
    /// for an unreachable API server.
    async fn read_policy(
        &mut self,
        client: &kube::Client,
        namespace: &str,
    ) -> Result<Option<PolicySettings>, ExecError> {
        let mut outages = 0;
        loop {
            match api::policy(client, namespace, &self.config.pool).await {
                Ok(settings) => return Ok(settings),
                Err(error) if self.config.timing.complete() => {
                    tracing::debug!(error = %super::one_line(&error), "LeaderPolicy not readable; timings from the flags");
                    return Ok(None);
                }
                Err(error @ ApiError::ReadPolicyUnreachable { .. })
                    if self.config.rejoin && self.config.on_follower == OnFollower::Wait =>
                {
                    outages += 1;
                    let pause = crate::lease::outage_backoff(outages, OUTAGE_BACKOFF_CAP);
                    tracing::warn!(error = %super::one_line(&error), retry_in = %humantime::format_duration(pause), "API server unreachable; waiting for it (--rejoin)");
                    if let Some(signal) = self.pause(pause).await? {
                        return Err(ExecError::Signalled(signal));
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// A `--rejoin` standby keeps waiting through an API outage (docs/EXEC.md).
    fn waits_through(&self, error: &LeaseError) -> bool {
        self.config.rejoin
            && self.config.on_follower == OnFollower::Wait
            && matches!(error, LeaseError::Unreachable { .. })
    }

    /// Sleeps `pause` unless a termination signal comes first; returns it.
    async fn pause(&mut self, pause: Duration) -> Result<Option<Signal>, ExecError> {
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return Ok(None),
                event = self.events.recv() => match event {
                    Some(Event::Signal(signal)) if signals::is_termination(signal) => {
                        return Ok(Some(signal));
                    }
                    Some(event) => tracing::debug!(?event, "ignored while not leading"),
                    None => return Err(ExecError::SignalThreadGone),
                },
            }
        }
    }

    /// Campaigns until leading, following per `--on-follower`, a termination signal or the
    /// wait timeout.
    async fn campaign(
        &mut self,
        elector: &mut Elector,
        client: &kube::Client,
        election: &ElectionConfig,
    ) -> Result<Campaign, ExecError> {
        let pool = self.config.pool.clone();
        let mut state = elector.state();
        let timeout = self.config.wait_timeout;
        let give_up = async move {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(give_up);
        let mut announced = None;
        // skip/fail: when the holder looks dead, wait this long for the elector to take over.
        let mut stale_until: Option<(String, BootInstant)> = None;
        loop {
            let current = state.borrow_and_update().clone();
            if let LeaderState::Following {
                holder: Some(holder),
            } = current
            {
                let judged = stale_until.as_ref().is_some_and(|(h, _)| *h == holder);
                if self.config.on_follower != OnFollower::Wait && !judged {
                    match api::holder_looks(client, &election.namespace, &pool, &holder).await {
                        HolderLooks::Stale(record_duration) => {
                            let wait = record_duration + 2 * election.timing.retry_period;
                            tracing::info!(%pool, %holder, wait = %humantime::format_duration(wait), "holder looks expired; waiting for its lease to run out");
                            stale_until = Some((holder.clone(), BootInstant::now() + wait));
                        }
                        // Looks alive: follow at once.
                        HolderLooks::Alive => {
                            stale_until = Some((holder.clone(), BootInstant::now()));
                        }
                        // The record moved on (perhaps to us): judge again on the next state.
                        HolderLooks::Changed => {}
                    }
                }
                let follow_now = stale_until
                    .as_ref()
                    .is_some_and(|(_, until)| until.has_passed());
                // Never skip or fail once our own elector has taken the lease meanwhile.
                let follow_now =
                    follow_now && !matches!(*state.borrow(), LeaderState::Leading { .. });
                match self.config.on_follower {
                    OnFollower::Skip if follow_now => return Ok(Campaign::Skipped { holder }),
                    OnFollower::Fail if follow_now => {
                        return Err(ExecError::Follower { pool, holder });
                    }
                    _ => {
                        if announced.as_ref() != Some(&holder) {
                            tracing::info!(%pool, %holder, "waiting: another replica leads");
                            announced = Some(holder);
                        }
                    }
                }
            }
            let tick = stale_until
                .as_ref()
                .map(|(_, until)| *until)
                .filter(|until| !until.has_passed())
                .map_or(Duration::from_secs(3600), |until| {
                    until.remaining().min(BOOTTIME_TICK)
                });
            tokio::select! {
                leading = elector.leading() => return campaign_result(leading),
                changed = state.changed() => {
                    if changed.is_err() {
                        // The elector is gone; `leading` reports why.
                        return campaign_result(elector.leading().await);
                    }
                }
                event = self.events.recv() => match event {
                    Some(Event::Signal(signal)) if signals::is_termination(signal) => {
                        return Ok(Campaign::Signalled(signal));
                    }
                    Some(event) => tracing::debug!(?event, "ignored while not leading"),
                    None => return Err(ExecError::SignalThreadGone),
                },
                () = tokio::time::sleep(tick) => {}
                () = &mut give_up => {
                    return Err(ExecError::WaitTimeout { pool, waited: timeout.unwrap_or_default() });
                }
            }
        }
    }

    /// Supervises the child until it exits, forwarding signals. The stop itself (stop signal,
    /// SIGKILL) is the stop thread's; this only notes that leading ended, for the exit code.
    async fn lead(&mut self, elector: &Elector, pid: Pid) -> Result<Term, ExecError> {
        let mut state = elector.state();
        let group = self.config.signal_group;
        let mut lost = false;
        let mut deadline = None;
        loop {
            if !lost {
                match &*state.borrow_and_update() {
                    LeaderState::Leading { deadline: next, .. } => deadline = Some(*next),
                    other => {
                        lost = true;
                        tracing::warn!(pool = %self.config.pool, state = ?other, "lease lost; the child is being stopped");
                    }
                }
                if !lost && deadline.is_some_and(BootInstant::has_passed) {
                    lost = true;
                    tracing::warn!(pool = %self.config.pool, "renew deadline passed; the child is being stopped");
                }
            }
            let tick = match deadline {
                Some(d) if !lost => d.remaining().min(BOOTTIME_TICK),
                _ => BOOTTIME_TICK,
            };
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(Event::ChildExited(status)) => {
                        return Ok(if lost { Term::Lost } else { Term::ChildExited(status) });
                    }
                    Some(Event::Signal(signal)) => {
                        signals::forward(pid, signal, group);
                        if signals::is_termination(signal) {
                            self.terminating = Some(signal);
                            tracing::info!(?signal, "forwarded; keeping the lease until the child exits");
                        }
                    }
                    Some(Event::RealTime(number)) => signals::forward_real_time(pid, number, group),
                    None => return Err(ExecError::SignalThreadGone),
                },
                changed = state.changed(), if !lost => {
                    if changed.is_err() {
                        // The elector is gone: nothing renews any more.
                        lost = true;
                        tracing::warn!(pool = %self.config.pool, "the elector stopped; the child is being stopped");
                    }
                }
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// `gate`: checks that the controller is alive; a termination signal ends the check.
    async fn controller_alive(
        &mut self,
        client: &kube::Client,
        controller: &ControllerLease,
    ) -> Result<Option<Signal>, ExecError> {
        let check = controller_alive::check(client, controller);
        tokio::pin!(check);
        loop {
            tokio::select! {
                checked = &mut check => return checked.map(|()| None).map_err(Into::into),
                event = self.events.recv() => match event {
                    Some(Event::Signal(signal)) if signals::is_termination(signal) => {
                        return Ok(Some(signal));
                    }
                    Some(event) => tracing::debug!(?event, "ignored while not leading"),
                    None => return Err(ExecError::SignalThreadGone),
                },
            }
        }
    }

    /// Releases a lease whose term ran nothing, at once and with the marker (no `--min-hold`:
    /// there is no run to de-duplicate).
    async fn release_unused(&self, elector: Elector, election: &ElectionConfig) {
        match tokio::time::timeout(RELEASE_TIMEOUT, elector.release_unused()).await {
            Ok(Ok(())) => {
                tracing::info!(pool = %election.pool, "released the pool's lease; nothing ran")
            }
            Ok(Err(error)) => {
                tracing::warn!(pool = %election.pool, error = %super::one_line(&error), "release failed; the lease will expire");
            }
            Err(_) => {
                tracing::warn!(pool = %election.pool, "release timed out; the lease will expire")
            }
        }
    }

    /// Releases (or, when not leading, just stops) the elector. Failures are logged: the work
    /// has stopped, and an unreleased lease only delays the successor until it expires.
    async fn release(&self, elector: Elector, election: &ElectionConfig) {
        let limit = election
            .min_hold
            .unwrap_or_default()
            .saturating_add(RELEASE_TIMEOUT);
        match tokio::time::timeout(limit, elector.release()).await {
            Ok(Ok(())) => tracing::debug!(pool = %election.pool, "released"),
            Ok(Err(error)) => {
                tracing::warn!(pool = %election.pool, error = %super::one_line(&error), "release failed; the lease will expire");
            }
            Err(_) => {
                tracing::warn!(pool = %election.pool, "release timed out; the lease will expire")
            }
        }
    }
}

/// Whether the term's work is confirmed gone, so that the lease may be released
/// (docs/PROTOCOL.md §5): no descendant of the child survived SIGKILL.
fn may_release(leftovers: &Leftovers) -> bool {
    leftovers.surviving.is_empty()
}

/// The term and deadline to start the child under, if `state` still leads at `now`.
fn term_to_start(state: &LeaderState, now: BootInstant) -> Option<(u64, BootInstant)> {
    match *state {
        LeaderState::Leading { term, deadline } if now < deadline => Some((term, deadline)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::LostReason;

    fn at(secs: u64) -> BootInstant {
        BootInstant::from_since_boot(Duration::from_secs(1000 + secs))
    }

    #[test]
    fn leading_then_lost_before_the_child_starts_is_a_lost_lease_not_an_internal_error() {
        let stopped = LeaseError::Stopped {
            pool: "p".into(),
            namespace: "ns".into(),
        };
        assert_eq!(
            campaign_result(Err(stopped)).ok(),
            Some(Campaign::LostBeforeStart)
        );
        assert_eq!(campaign_result(Ok(4)).ok(), Some(Campaign::Leading(4)));
        let forbidden = LeaseError::Forbidden {
            pool: "p".into(),
            namespace: "ns".into(),
            message: "no".into(),
        };
        let error = campaign_result(Err(forbidden)).unwrap_err();
        assert_eq!(error.exit_code(), exit_code::PERMISSION_DENIED);
    }

    #[test]
    fn a_descendant_that_survives_sigkill_means_no_release() {
        assert!(may_release(&Leftovers::default()));
        assert!(may_release(&Leftovers {
            killed: true,
            surviving: vec![]
        }));
        assert!(!may_release(&Leftovers {
            killed: true,
            surviving: vec![4242]
        }));
    }

    #[test]
    fn child_is_never_started_on_a_leading_state_past_its_deadline() {
        let leading = LeaderState::Leading {
            term: 3,
            deadline: at(10),
        };
        assert_eq!(term_to_start(&leading, at(9)), Some((3, at(10))));
        assert_eq!(term_to_start(&leading, at(10)), None);
        assert_eq!(term_to_start(&leading, at(500)), None);
        let lost = LeaderState::Lost {
            reason: LostReason::RenewDeadline,
        };
        assert_eq!(term_to_start(&lost, at(0)), None);
        let following = LeaderState::Following {
            holder: Some("pod-b".into()),
        };
        assert_eq!(term_to_start(&following, at(0)), None);
    }
}
