//! One pod's life on the process kubelet: init containers in order, then the app containers,
//! restarts by `restartPolicy`, the status after every change, and graceful termination.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::env::{Sources, container_env};
use super::procs::{self, Exit};
use super::status::{PodState, Record, State};
use super::volumes::{Mounts, write_volumes};
use super::{Config, Shared};
use crate::cluster::{Cluster, Resource};

/// What the kubelet's watch loop asks of a pod.
#[derive(Debug, Clone)]
pub(super) enum Control {
    /// Keep running; the pod's latest object (for downward-API files).
    Run(Value),
    /// Stop gracefully within this many seconds (the pod is being deleted).
    Terminate(i64),
    /// The pod is gone: kill at once.
    Kill,
}

/// Restart back-off: 1 s, doubling up to 8 s (the kubelet's is 10 s up to 5 min, too slow for
/// tests).
fn backoff(restarts: i64) -> Duration {
    Duration::from_secs(1u64 << restarts.clamp(0, 3))
}

struct ClusterSources<'a> {
    cluster: &'a Cluster,
    ns: &'a str,
}

impl Sources for ClusterSources<'_> {
    fn config_map(&self, name: &str, key: &str) -> Option<String> {
        let cm = self.cluster.get(Resource::ConfigMaps, self.ns, name)?;
        cm.pointer("/data")?.get(key)?.as_str().map(str::to_string)
    }

    fn secret(&self, name: &str, key: &str) -> Option<String> {
        use base64::Engine;
        let s = self.cluster.get(Resource::Secrets, self.ns, name)?;
        let raw = s.pointer("/data")?.get(key)?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
        String::from_utf8(bytes).ok()
    }

    fn all(&self, name: &str, secret: bool) -> Vec<(String, String)> {
        let res = if secret {
            Resource::Secrets
        } else {
            Resource::ConfigMaps
        };
        let Some(obj) = self.cluster.get(res, self.ns, name) else {
            return Vec::new();
        };
        obj.get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| {
                let v = if secret {
                    self.secret(name, k)
                } else {
                    self.config_map(name, k)
                }?;
                Some((k.clone(), v))
            })
            .collect()
    }
}

/// A container's resolved argv, environment and working directory.
type Launch = (Vec<String>, Vec<(String, String)>, PathBuf);

/// A container run ended: `(init?, index, attempt's exit)`.
type Ended = (bool, usize, Exit);

pub(super) struct PodRun {
    pub(super) cluster: Cluster,
    pub(super) shared: Shared,
    pub(super) config: std::sync::Arc<Config>,
    pub(super) pod: Value,
    pub(super) dir: PathBuf,
    pub(super) control: watch::Receiver<Control>,
}

enum Outcome {
    Continue,
    Stop(i64),
    Kill,
}

impl PodRun {
    fn ns(&self) -> String {
        super::meta(&self.pod, "namespace").to_string()
    }
    fn name(&self) -> String {
        super::meta(&self.pod, "name").to_string()
    }
    fn uid(&self) -> String {
        super::meta(&self.pod, "uid").to_string()
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .pointer("/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Always")
    }

    fn containers(&self, field: &str) -> Vec<Value> {
        self.pod
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn write_status(&self, state: &PodState) {
        let uid = self.uid();
        let result = self.cluster.update(
            Resource::Pods,
            &self.ns(),
            &self.name(),
            Some(&uid),
            |pod| state.apply(pod, &uid),
        );
        if let Err(error) = result {
            tracing::debug!(?error, pod = %self.name(), "status write failed");
        }
    }

    /// The base environment every container gets before its own `env`.
    fn base_env(&self) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_else(|_| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        });
        let hostname = self
            .pod
            .pointer("/spec/hostname")
            .and_then(Value::as_str)
            .map_or_else(|| self.name(), str::to_string);
        vec![
            ("PATH".into(), path),
            ("HOSTNAME".into(), hostname),
            ("HOME".into(), self.dir.to_string_lossy().into_owned()),
            (
                "KUBECONFIG".into(),
                self.dir.join("kubeconfig").to_string_lossy().into_owned(),
            ),
        ]
    }

    /// The resolved argv, env and working directory of `spec`.
    fn command(&self, spec: &Value) -> Result<Launch, String> {
        let ns = self.ns();
        let sources = ClusterSources {
            cluster: &self.cluster,
            ns: &ns,
        };
        let mounts = Mounts::of(spec, &self.dir);
        let env = container_env(&self.pod, spec, &self.base_env(), &sources)
            .map_err(|e| e.to_string())?;
        let strings = |field: &str| -> Vec<String> {
            spec.get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(|s| super::env::expand(s, &env)))
                .collect()
        };
        let mut argv = strings("command");
        if argv.is_empty() {
            let image = spec.get("image").and_then(Value::as_str).unwrap_or("");
            match self.config.resolve_image(image) {
                Some(entry) => argv.push(entry),
                None => {
                    return Err(format!(
                        "no command, and the entrypoint of image {image:?} is unknown here (--resolve {image}=PATH)"
                    ));
                }
            }
        }
        argv.extend(strings("args"));
        let argv = argv
            .into_iter()
            .map(|a| mounts.rewrite(&self.config.resolve(&a)))
            .collect();
        let env = env
            .into_iter()
            .map(|(k, v)| (k, mounts.rewrite(&v)))
            .collect();
        let cwd = spec
            .get("workingDir")
            .and_then(Value::as_str)
            .map(|w| PathBuf::from(mounts.rewrite(w)))
            .filter(|w| w.is_dir())
            .unwrap_or_else(|| self.dir.clone());
        Ok((argv, env, cwd))
    }

    /// Starts one run of a container; its end arrives on `ended`. False when it could not
    /// start (the record says why; the caller retries later, as the kubelet does).
    fn start(
        &self,
        spec: &Value,
        record: &mut Record,
        init: bool,
        index: usize,
        ended: &mpsc::UnboundedSender<Ended>,
    ) -> bool {
        let (argv, env, cwd) = match self.command(spec) {
            Ok(c) => c,
            Err(message) => {
                record.state = State::waiting("CreateContainerConfigError", Some(message));
                return false;
            }
        };
        let log_dir = self.dir.join("logs").join(&record.name);
        let log = log_dir.join(format!("{}.log", record.restarts));
        let started = crate::app::now_time();
        let child =
            std::fs::create_dir_all(&log_dir).and_then(|()| procs::spawn(&argv, &env, &cwd, &log));
        let mut child = match child {
            Ok(c) => c,
            Err(error) => {
                record.state = State::waiting("RunContainerError", Some(error.to_string()));
                return false;
            }
        };
        let Some(pid) = child.id().map(|p| p as i32) else {
            record.state = State::waiting("RunContainerError", Some("no pid".into()));
            return false;
        };
        self.shared.live.add(pid);
        self.shared.logs.started(&self.uid(), &record.name, log);
        record.pid = Some(pid);
        record.state = State::Running { started };
        tracing::debug!(pod = %self.name(), container = %record.name, pid, ?argv, "container started");
        let (live, logs, uid, name, ended) = (
            self.shared.live.clone(),
            self.shared.logs.clone(),
            self.uid(),
            record.name.clone(),
            ended.clone(),
        );
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => Exit::from_status(status),
                Err(_) => Exit {
                    code: 128,
                    signal: None,
                },
            };
            // The container is over once its main process is: whatever else is left in its
            // process group goes with it.
            procs::kill_tree(pid, Signal::SIGKILL);
            live.remove(pid);
            logs.ended(&uid, &name);
            let _ = ended.send((init, index, exit));
        });
        true
    }

    fn record_exit(record: &mut Record, exit: Exit) {
        let started = match &record.state {
            State::Running { started } => started.clone(),
            _ => crate::app::now_time(),
        };
        record.state = State::Terminated {
            exit,
            started,
            finished: crate::app::now_time(),
        };
    }

    fn restart(record: &mut Record) {
        record.last = Some(record.state.clone());
        record.restarts += 1;
        record.state = State::waiting(
            "CrashLoopBackOff",
            Some(format!(
                "back-off restarting failed container {}",
                record.name
            )),
        );
    }

    fn should_restart(&self, exit: Exit) -> bool {
        match self.restart_policy() {
            "Never" => false,
            "OnFailure" => exit.code != 0,
            _ => true,
        }
    }

    /// Waits for a control change; returns what it asks.
    fn check_control(&mut self) -> Outcome {
        match self.control.borrow_and_update().clone() {
            Control::Run(pod) => {
                if let Err(error) = write_volumes(&pod, &self.dir) {
                    tracing::debug!(?error, "rewriting downward-API files");
                }
                Outcome::Continue
            }
            Control::Terminate(grace) => Outcome::Stop(grace),
            Control::Kill => Outcome::Kill,
        }
    }

    /// Runs the pod to its end (or its deletion).
    pub(super) async fn run(mut self) {
        let init_specs = self.containers("initContainers");
        let main_specs = self.containers("containers");
        let mut state = PodState {
            init: init_specs
                .iter()
                .map(|s| Record::new(s, "PodInitializing"))
                .collect(),
            main: main_specs
                .iter()
                .map(|s| Record::new(s, "PodInitializing"))
                .collect(),
            initialized: init_specs.is_empty(),
            finished: None,
            start_time: crate::app::now_time(),
        };
        if init_specs.is_empty() {
            for r in &mut state.main {
                r.state = State::waiting("ContainerCreating", None);
            }
        }
        let prepared = std::fs::create_dir_all(&self.dir)
            .and_then(|()| write_volumes(&self.pod, &self.dir))
            .and_then(|()| {
                crate::kubeconfig::write(&self.dir.join("kubeconfig"), &self.kubeconfig())
            });
        if let Err(error) = prepared {
            tracing::warn!(?error, dir = %self.dir.display(), "preparing the pod directory");
        }
        self.write_status(&state);
        let (tx, mut rx) = mpsc::unbounded_channel::<Ended>();
        let mut next_init = 0;
        let mut main_started = false;
        // Pending restarts: (init?, index) at an instant.
        let mut restarts: Vec<(bool, usize, Instant)> = Vec::new();
        let outcome = loop {
            // Start what is due: the next init container, or every app container at first.
            if next_init < init_specs.len() {
                if !state.init[next_init].running()
                    && !restarts.iter().any(|(i, n, _)| *i && *n == next_init)
                    && state.init[next_init].exit().is_none_or(|e| e.code != 0)
                    && state.finished.is_none()
                {
                    let spec = init_specs[next_init].clone();
                    let mut rec = state.init[next_init].clone();
                    if !self.start(&spec, &mut rec, true, next_init, &tx) {
                        restarts.push((true, next_init, Instant::now() + backoff(0)));
                    }
                    state.init[next_init] = rec;
                    self.write_status(&state);
                }
            } else if !main_started {
                main_started = true;
                state.initialized = true;
                for (i, spec) in main_specs.iter().enumerate() {
                    let mut rec = state.main[i].clone();
                    if !self.start(spec, &mut rec, false, i, &tx) {
                        restarts.push((false, i, Instant::now() + backoff(0)));
                    }
                    state.main[i] = rec;
                }
                self.write_status(&state);
            }
            let wake = restarts.iter().map(|(_, _, at)| *at).min();
            tokio::select! {
                Some((init, index, exit)) = rx.recv() => {
                    let rec = if init { &mut state.init[index] } else { &mut state.main[index] };
                    Self::record_exit(rec, exit);
                    if init && exit.code == 0 {
                        next_init += 1;
                    } else if state.finished.is_none() && self.should_restart(exit) {
                        let at = Instant::now() + backoff(rec.restarts);
                        Self::restart(rec);
                        restarts.push((init, index, at));
                    } else if init {
                        state.finished = Some("Failed");
                    }
                    if state.initialized
                        && state.finished.is_none()
                        && restarts.is_empty()
                        && state.main.iter().all(|r| r.exit().is_some())
                    {
                        let ok = state.main.iter().all(|r| r.exit().is_some_and(|e| e.code == 0));
                        state.finished = Some(if ok { "Succeeded" } else { "Failed" });
                    }
                    self.write_status(&state);
                }
                _ = async { match wake { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                    let now = Instant::now();
                    let due: Vec<(bool, usize)> = restarts.iter().filter(|(_, _, at)| *at <= now).map(|(i, n, _)| (*i, *n)).collect();
                    restarts.retain(|(_, _, at)| *at > now);
                    for (init, index) in due {
                        if init {
                            // The init loop above starts it again.
                            continue;
                        }
                        let spec = main_specs[index].clone();
                        let mut rec = state.main[index].clone();
                        if !self.start(&spec, &mut rec, false, index, &tx) {
                            restarts.push((false, index, Instant::now() + backoff(rec.restarts)));
                        }
                        state.main[index] = rec;
                    }
                    self.write_status(&state);
                }
                changed = self.control.changed() => {
                    if changed.is_err() {
                        break Outcome::Kill;
                    }
                    match self.check_control() {
                        Outcome::Continue => {}
                        other => break other,
                    }
                }
            }
        };
        self.stop(outcome, &mut state, &mut rx).await;
    }

    fn kubeconfig(&self) -> String {
        let token = self.cluster.auth().then(|| {
            let sa = self
                .pod
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default");
            self.cluster.service_account_token(&self.ns(), sa)
        });
        crate::kubeconfig::render(
            &self.config.server_url,
            self.config.ca_pem.as_deref(),
            token.as_deref(),
        )
    }

    /// Stops whatever runs: SIGTERM to each container's process group and SIGKILL after the
    /// grace period (or SIGKILL at once), then reports the pod's containers stopped.
    async fn stop(
        &mut self,
        outcome: Outcome,
        state: &mut PodState,
        rx: &mut mpsc::UnboundedReceiver<Ended>,
    ) {
        let grace = match outcome {
            Outcome::Stop(g) => g.max(0),
            _ => 0,
        };
        let running = |state: &PodState| -> Vec<i32> {
            state
                .init
                .iter()
                .chain(&state.main)
                .filter(|r| r.running())
                .filter_map(|r| r.pid)
                .collect()
        };
        let signal = if grace > 0 {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        for pid in running(state) {
            if signal == Signal::SIGKILL {
                procs::kill_tree(pid, signal);
            } else {
                procs::signal_group(pid, signal);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(grace as u64);
        let mut killed = signal == Signal::SIGKILL;
        while !running(state).is_empty() {
            let limit = if killed {
                Instant::now() + Duration::from_secs(10)
            } else {
                deadline
            };
            match tokio::time::timeout_at(limit, rx.recv()).await {
                Ok(Some((init, index, exit))) => {
                    let rec = if init {
                        &mut state.init[index]
                    } else {
                        &mut state.main[index]
                    };
                    Self::record_exit(rec, exit);
                }
                Ok(None) => break,
                Err(_) if !killed => {
                    for pid in running(state) {
                        procs::kill_tree(pid, Signal::SIGKILL);
                    }
                    killed = true;
                }
                Err(_) => break,
            }
        }
        if matches!(outcome, Outcome::Kill) {
            return;
        }
        self.write_status(state);
        self.cluster
            .pod_stopped(&self.ns(), &self.name(), &self.uid());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(8));
    }
}
