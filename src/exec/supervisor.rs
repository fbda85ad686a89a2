//! The straight sequence of `zen-lead-exec`: validate -> client -> timings -> campaign ->
//! (follower: wait / skip / fail) -> lead: run the child while the lease is held -> release.
//!
//! Invariant: the child runs only while this process holds the lease. Leadership ends at the
//! elector's `Leading.deadline`, judged here on a local CLOCK_BOOTTIME timer as well, and the
//! child is dead by `deadline + kill_grace`, which the timing rules keep below the lease
//! duration, before anyone else may acquire.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::api::{self, ApiError};
use super::child::{self, ChildError, LeaseEnv};
use super::config::{Config, Mode, OnFollower};
use super::exit_code;
use super::pre_exec::InheritedSignals;
use super::reaper::{Reaper, ReaperError};
use super::signals::{self, Event, SignalsError};
use crate::clock::BootInstant;
use crate::identity::IdentityError;
use crate::lease::{Candidate, ElectionConfig, Elector, LeaderState, LeaseError, LostReason};
use crate::timing::TimingError;

/// Longest a local deadline check can lag behind a suspend: timers sleep on CLOCK_MONOTONIC,
/// which stops during suspend, so they wake at least this often to read CLOCK_BOOTTIME.
const BOOTTIME_TICK: Duration = Duration::from_millis(100);

/// Extra time granted to the final release write beyond `min_hold`.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

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
    ResolveTiming(#[from] TimingError),
    /// The campaign failed in a way that cannot heal.
    #[error(transparent)]
    Campaign(#[from] LeaseError),
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
    /// The signal thread stopped, so signals and the child's exit can no longer be observed.
    #[error("the signal thread stopped unexpectedly")]
    SignalThreadGone,
}

impl ExecError {
    /// The documented exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::StartRuntime(_) | Self::BecomeSubreaper(_) | Self::InstallSignals(_) => {
                exit_code::OS_ERROR
            }
            Self::PrepareApi(e) => match e {
                ApiError::LoadKubeconfig { .. } | ApiError::BuildClient { .. } => exit_code::CONFIG,
                ApiError::ReadPolicyForbidden { .. } => exit_code::PERMISSION_DENIED,
                ApiError::ReadPolicyUnreachable { .. } => exit_code::API_UNREACHABLE,
            },
            Self::ResolveIdentity(_) | Self::ResolveTiming(_) => exit_code::CONFIG,
            Self::Campaign(e) => lease_error_code(e),
            Self::WaitTimeout { .. } => exit_code::WAIT_TIMEOUT,
            Self::Follower { .. } => exit_code::FOLLOWER,
            Self::SpawnChild(e) => e.exit_code(),
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
    }
}

/// Runs the wrapper to completion and returns the process exit code.
pub fn run(config: Config) -> Result<u8, ExecError> {
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
}

/// How a campaign ended.
enum Campaign {
    Leading(u64),
    Skipped { holder: String },
    Signalled(Signal),
}

/// How a term of leadership ended; the child is dead in both cases.
enum Term {
    ChildExited(WaitStatus),
    Lost,
}

impl Supervisor {
    async fn run(mut self) -> Result<u8, ExecError> {
        let candidate = Candidate::from_process_env(self.config.identity.as_deref())?;
        let client = api::client(&candidate.identity).await?;
        let namespace = api::namespace(self.config.namespace.as_deref(), &client);
        let fallback = if self.config.timing.complete() {
            crate::lease::Timing::default()
        } else {
            api::policy_timing(&client, &namespace, &self.config.pool).await?
        };
        let timing = self
            .config
            .timing
            .resolve(fallback, self.config.kill_grace)?;
        let election = ElectionConfig {
            pool: self.config.pool.clone(),
            namespace: namespace.clone(),
            candidate,
            timing,
            min_hold: self.config.min_hold,
        };
        tracing::debug!(pool = %election.pool, %namespace, identity = %election.candidate.identity, ?timing, "campaigning");
        // The term this process last led under: a rejoin never goes below it (docs/PROTOCOL.md §3).
        let mut led_term = 0;
        loop {
            let mut elector = Elector::spawn_above(client.clone(), election.clone(), led_term);
            let term = match self.campaign(&mut elector, &client, &election).await {
                Ok(Campaign::Leading(term)) => term,
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
                Err(error) => {
                    self.release(elector, &election).await;
                    return Err(error);
                }
            };
            tracing::info!(pool = %election.pool, term, "leading");
            let command = match &self.config.mode {
                Mode::Gate => {
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
            let pid = match child::spawn(&command, &env, &self.inherited, &self.reaper) {
                Ok(pid) => pid,
                Err(error) => {
                    self.release(elector, &election).await;
                    return Err(error.into());
                }
            };
            led_term = led_term.max(term);
            tracing::info!(pid = pid.as_raw(), term, "child started");
            let outcome = self.lead(&elector, pid, deadline).await;
            // Whatever ended the term, no descendant of the child may outlive it, not even one
            // that left its process group: all are gone before the lease is released.
            signals::kill_group(pid);
            if super::reaper::kill_leftovers().await {
                tracing::info!("killed processes the child left behind");
            }
            match outcome? {
                Term::ChildExited(status) => {
                    let code = exit_code::from_wait_status(status);
                    tracing::info!(code, "child exited; releasing");
                    self.release(elector, &election).await;
                    return Ok(code);
                }
                Term::Lost => {
                    self.release(elector, &election).await;
                    if !self.config.rejoin || self.terminating.is_some() {
                        return Ok(exit_code::LEASE_LOST);
                    }
                    tracing::info!(pool = %election.pool, "rejoining");
                }
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
                    let until = match api::stale_holder(client, &election.namespace, &pool).await {
                        Some(record_duration) => {
                            let wait = record_duration + 2 * election.timing.retry_period;
                            tracing::info!(%pool, %holder, wait = %humantime::format_duration(wait), "holder looks expired; waiting for its lease to run out");
                            BootInstant::now() + wait
                        }
                        // Looks alive: follow at once.
                        None => BootInstant::now(),
                    };
                    stale_until = Some((holder.clone(), until));
                }
                let follow_now = stale_until
                    .as_ref()
                    .is_some_and(|(_, until)| until.has_passed());
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
                leading = elector.leading() => return Ok(Campaign::Leading(leading?)),
                changed = state.changed() => {
                    if changed.is_err() {
                        // The elector is gone; `leading` reports why.
                        return Ok(Campaign::Leading(elector.leading().await?));
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

    /// Supervises the child, started under the lease that ends at `deadline` unless renewed.
    /// Returns once the child is dead.
    async fn lead(
        &mut self,
        elector: &Elector,
        pid: Pid,
        deadline: BootInstant,
    ) -> Result<Term, ExecError> {
        let mut state = elector.state();
        let mut deadline = match *state.borrow_and_update() {
            LeaderState::Leading { deadline: next, .. } => next,
            // Already not leading: stop at once, killing by the deadline the child started
            // under plus the grace, never later.
            _ => return self.stop_child(pid, deadline).await,
        };
        let group = self.config.signal_group;
        loop {
            if deadline.has_passed() {
                tracing::warn!(pool = %self.config.pool, "renew deadline passed; stopping the child");
                return self.stop_child(pid, deadline).await;
            }
            let tick = deadline.remaining().min(BOOTTIME_TICK);
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(Event::ChildExited(status)) => return Ok(Term::ChildExited(status)),
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
                changed = state.changed() => {
                    let now = state.borrow_and_update().clone();
                    match (changed, now) {
                        (Ok(()), LeaderState::Leading { deadline: next, .. }) => deadline = next,
                        (_, other) => {
                            let reason = match other {
                                LeaderState::Lost { reason } => reason,
                                LeaderState::Following { holder: Some(holder) } => LostReason::Superseded { holder },
                                _ => LostReason::RenewDeadline,
                            };
                            tracing::warn!(pool = %self.config.pool, ?reason, "lease lost; stopping the child");
                            return self.stop_child(pid, deadline).await;
                        }
                    }
                }
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Stop signal, then SIGKILL at `min(now, deadline) + kill_grace`; returns once the child is
    /// reaped.
    async fn stop_child(&mut self, pid: Pid, deadline: BootInstant) -> Result<Term, ExecError> {
        let group = self.config.signal_group;
        signals::forward(pid, self.config.stop_signal, group);
        let kill_at = BootInstant::now().min(deadline) + self.config.kill_grace;
        let mut killed = false;
        loop {
            if !killed && kill_at.has_passed() {
                tracing::warn!(pid = pid.as_raw(), "kill grace passed; SIGKILL");
                signals::kill_group(pid);
                signals::forward(pid, Signal::SIGKILL, false);
                killed = true;
            }
            let tick = if killed {
                BOOTTIME_TICK
            } else {
                kill_at.remaining().min(BOOTTIME_TICK)
            };
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(Event::ChildExited(status)) => {
                        tracing::info!(code = exit_code::from_wait_status(status), "child stopped");
                        return Ok(Term::Lost);
                    }
                    Some(Event::Signal(signal)) => {
                        signals::forward(pid, signal, group);
                        if signals::is_termination(signal) {
                            self.terminating = Some(signal);
                        }
                    }
                    Some(Event::RealTime(number)) => signals::forward_real_time(pid, number, group),
                    None => return Err(ExecError::SignalThreadGone),
                },
                () = tokio::time::sleep(tick) => {}
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

    fn at(secs: u64) -> BootInstant {
        BootInstant::from_since_boot(Duration::from_secs(1000 + secs))
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
