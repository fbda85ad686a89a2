//! The process kubelet (opt-in): every pod created without a node is bound to the testkit node
//! and its containers run as local processes. The image is ignored; the command and args come
//! from the spec, with `--resolve FROM=TO` mapping command paths (and the entrypoint of images
//! without a command) to local files. Status follows the processes, deletion is graceful, output
//! is served by `kubectl logs`, and every process dies with the kubelet: it is killed on drop,
//! and each container's main process carries a parent-death SIGKILL in case the testkit dies.
//!
//! Pods created already bound (the simulated kubelet's `run_pod`) are left to the simulation.

mod env;
mod pod;
mod procs;
mod status;
mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::cluster::{Cluster, Resource};
use crate::kubelet::NODE_NAME;
use crate::pod_logs::PodLogs;
use crate::store::EventKind;

pub use procs::{PDEATHSIG_LAUNCHER, launcher_available};

/// How the process kubelet runs containers.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `FROM → TO`: an argv element equal to FROM (a command path such as `/zen-lead-exec`, or
    /// an image name when the container has no command) runs TO instead.
    pub resolve: Vec<(String, String)>,
    /// The API server's URL, for the pods' kubeconfig.
    pub server_url: String,
    /// The server's CA (TLS mode), for the pods' kubeconfig.
    pub ca_pem: Option<String>,
}

impl Config {
    /// `arg` through the resolve map.
    pub fn resolve(&self, arg: &str) -> String {
        self.resolve
            .iter()
            .find(|(from, _)| from == arg)
            .map_or_else(|| arg.to_string(), |(_, to)| to.clone())
    }

    /// The entrypoint given for `image`, if any.
    pub fn resolve_image(&self, image: &str) -> Option<String> {
        self.resolve
            .iter()
            .find(|(from, _)| from == image)
            .map(|(_, to)| to.clone())
    }
}

/// State shared by the kubelet and its pods' tasks.
#[derive(Debug, Clone)]
struct Shared {
    live: procs::Live,
    logs: PodLogs,
}

/// A running process kubelet; dropping it kills every container process.
#[derive(Debug)]
pub struct ProcessKubelet {
    task: tokio::task::JoinHandle<()>,
    live: procs::Live,
    root: PathBuf,
}

impl Drop for ProcessKubelet {
    fn drop(&mut self) {
        self.task.abort();
        self.live.kill_all();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl ProcessKubelet {
    /// Starts the kubelet (inside a tokio runtime); pods' directories go under `root`.
    pub fn start(cluster: Cluster, logs: PodLogs, config: Config, root: PathBuf) -> Self {
        let shared = Shared {
            live: procs::Live::default(),
            logs,
        };
        let live = shared.live.clone();
        let node = Node {
            cluster,
            shared,
            config: Arc::new(config),
            root: root.clone(),
            pods: HashMap::new(),
        };
        let task = tokio::spawn(node.run());
        Self { task, live, root }
    }
}

/// One pod's task and its control channel, by UID.
struct PodHandle {
    control: watch::Sender<pod::Control>,
    task: tokio::task::JoinHandle<()>,
}

struct Node {
    cluster: Cluster,
    shared: Shared,
    config: Arc<Config>,
    root: PathBuf,
    pods: HashMap<String, PodHandle>,
}

pub(crate) fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Drop for Node {
    fn drop(&mut self) {
        for (_, handle) in self.pods.drain() {
            handle.task.abort();
        }
    }
}

impl Node {
    async fn run(mut self) {
        let mut changes = self.cluster.changes();
        self.resync();
        loop {
            match changes.recv().await {
                Ok(event) if Resource::from_key(&event.key) == Some(Resource::Pods) => {
                    if event.kind == EventKind::Deleted {
                        self.gone(meta(&event.object, "uid"));
                    } else {
                        self.observe(&event.object);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.resync(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn resync(&mut self) {
        let pods = self.cluster.list(Resource::Pods, None);
        let present: Vec<String> = pods.iter().map(|p| meta(p, "uid").to_string()).collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !present.contains(uid))
            .cloned()
            .collect();
        for uid in gone {
            self.gone(&uid);
        }
        for pod in &pods {
            self.observe(pod);
        }
    }

    fn gone(&mut self, uid: &str) {
        if let Some(handle) = self.pods.remove(uid) {
            let _ = handle.control.send(pod::Control::Kill);
        }
        self.shared.logs.forget(uid);
    }

    /// A pod was created or changed.
    fn observe(&mut self, pod: &Value) {
        let uid = meta(pod, "uid").to_string();
        self.pods.retain(|_, h| !h.task.is_finished());
        if let Some(handle) = self.pods.get(&uid) {
            let wanted = if pod.pointer("/metadata/deletionTimestamp").is_some() {
                let grace = pod
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30);
                pod::Control::Terminate(grace)
            } else {
                pod::Control::Run(pod.clone())
            };
            handle.control.send_if_modified(|current| {
                let same = match (&*current, &wanted) {
                    (pod::Control::Terminate(a), pod::Control::Terminate(b)) => a == b,
                    (pod::Control::Run(a), pod::Control::Run(b)) => {
                        a.pointer("/metadata/labels") == b.pointer("/metadata/labels")
                            && a.pointer("/metadata/annotations")
                                == b.pointer("/metadata/annotations")
                    }
                    (pod::Control::Kill, _) => true,
                    _ => false,
                };
                if !same {
                    *current = wanted.clone();
                }
                !same
            });
            return;
        }
        let unbound = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if !unbound || pod.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        self.bind_and_run(pod, uid);
    }

    fn bind_and_run(&mut self, pod: &Value, uid: String) {
        let (ns, name) = (meta(pod, "namespace"), meta(pod, "name"));
        let now = crate::app::now_time();
        let bound = self
            .cluster
            .update(Resource::Pods, ns, name, Some(&uid), |p| {
                p["spec"]["nodeName"] = json!(NODE_NAME);
                p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True",
                "lastProbeTime": null, "lastTransitionTime": now}]);
            });
        let pod = match bound {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(?error, pod = %name, "binding failed");
                return;
            }
        };
        let (control, rx) = watch::channel(pod::Control::Run(pod.clone()));
        let dir = self.root.join(format!("{ns}_{name}_{uid}"));
        let run = pod::PodRun {
            cluster: self.cluster.clone(),
            shared: self.shared.clone(),
            config: self.config.clone(),
            pod,
            dir,
            control: rx,
        };
        use tracing::Instrument;
        let span = tracing::debug_span!("pod", %ns, %name);
        let task = tokio::spawn(run.run().instrument(span));
        self.pods.insert(uid, PodHandle { control, task });
    }
}
