//! Pod status from the containers' states, as a kubelet reports it: phase, the standard
//! conditions and the per-container statuses.

use serde_json::{Value, json};

use super::procs::Exit;

/// One container's state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Not running: `reason` (`PodInitializing`, `CrashLoopBackOff`, …).
    Waiting {
        /// Why.
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since `started`.
    Running {
        /// metav1.Time.
        started: String,
    },
    /// Ended.
    Terminated {
        /// How.
        exit: Exit,
        /// metav1.Time.
        started: String,
        /// metav1.Time.
        finished: String,
    },
}

impl State {
    /// Waiting for `reason`.
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        Self::Waiting {
            reason: reason.into(),
            message,
        }
    }

    fn to_json(&self, container_id: &str) -> Value {
        match self {
            Self::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            Self::Running { started } => json!({"running": {"startedAt": started}}),
            Self::Terminated {
                exit,
                started,
                finished,
            } => {
                let mut t = json!({
                    "exitCode": exit.code,
                    "reason": if exit.code == 0 { "Completed" } else { "Error" },
                    "startedAt": started,
                    "finishedAt": finished,
                    "containerID": container_id,
                });
                if let Some(sig) = exit.signal {
                    t["signal"] = json!(sig);
                }
                json!({"terminated": t})
            }
        }
    }
}

/// One container as the kubelet tracks it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its name.
    pub name: String,
    /// Its image (reported, never pulled).
    pub image: String,
    /// Current state.
    pub state: State,
    /// The previous run's end, once it restarted.
    pub last: Option<State>,
    /// Restarts so far.
    pub restarts: i64,
    /// The current run's main pid (the container ID shows it).
    pub pid: Option<i32>,
}

impl Record {
    /// A container not started yet.
    pub fn new(spec: &Value, reason: &str) -> Self {
        Self {
            name: spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            image: spec
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            state: State::waiting(reason, None),
            last: None,
            restarts: 0,
            pid: None,
        }
    }

    /// Whether it runs now.
    pub fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Its exit, once terminated.
    pub fn exit(&self) -> Option<Exit> {
        match &self.state {
            State::Terminated { exit, .. } => Some(*exit),
            _ => None,
        }
    }

    fn to_json(&self, uid: &str) -> Value {
        let id = format!(
            "testkit://{uid}/{}/{}",
            self.name,
            self.pid.map_or(String::new(), |p| p.to_string())
        );
        let mut s = json!({
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.running(),
            "started": self.running(),
            "restartCount": self.restarts,
            "state": self.state.to_json(&id),
            "lastState": self.last.as_ref().map_or(json!({}), |l| l.to_json(&id)),
        });
        if !matches!(self.state, State::Waiting { .. }) {
            s["containerID"] = json!(id);
        }
        s
    }
}

/// Everything the pod status is made of.
#[derive(Debug, Clone)]
pub struct PodState {
    /// Init containers, in order.
    pub init: Vec<Record>,
    /// App containers.
    pub main: Vec<Record>,
    /// All init containers completed.
    pub initialized: bool,
    /// `Succeeded`/`Failed` once the pod is done; None while it runs or waits.
    pub finished: Option<&'static str>,
    /// metav1.Time the kubelet started on the pod.
    pub start_time: String,
}

fn condition(old: &Value, kind: &str, status: bool, now: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let since = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == kind && c["status"] == status)
        })
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since})
}

impl PodState {
    /// The pod's phase.
    pub fn phase(&self) -> &'static str {
        if let Some(done) = self.finished {
            return done;
        }
        if self.initialized
            && self
                .main
                .iter()
                .any(|c| !matches!(c.state, State::Waiting { .. }) || c.restarts > 0)
        {
            "Running"
        } else {
            "Pending"
        }
    }

    /// Writes the status into `pod` (keeping condition transition times that did not change).
    pub fn apply(&self, pod: &mut Value, uid: &str) {
        let now = crate::app::now_time();
        let ready = self.finished.is_none()
            && !self.main.is_empty()
            && self.main.iter().all(Record::running);
        let conditions = vec![
            condition(
                pod,
                "PodReadyToStartContainers",
                self.finished.is_none(),
                &now,
            ),
            condition(pod, "Initialized", self.initialized, &now),
            condition(pod, "Ready", ready, &now),
            condition(pod, "ContainersReady", ready, &now),
            condition(pod, "PodScheduled", true, &now),
        ];
        let mut status = json!({
            "phase": self.phase(),
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "containerStatuses": self.main.iter().map(|c| c.to_json(uid)).collect::<Vec<_>>(),
            "qosClass": pod.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort")),
        });
        if !self.init.is_empty() {
            status["initContainerStatuses"] =
                json!(self.init.iter().map(|c| c.to_json(uid)).collect::<Vec<_>>());
        }
        pod["status"] = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(state: State) -> Record {
        let mut r = Record::new(&json!({"name": "c", "image": "i"}), "ContainerCreating");
        r.state = state;
        r
    }

    #[test]
    fn phases_and_readiness() {
        let running = State::Running {
            started: "t".into(),
        };
        let mut s = PodState {
            init: vec![],
            main: vec![rec(State::waiting("ContainerCreating", None))],
            initialized: true,
            finished: None,
            start_time: "t".into(),
        };
        assert_eq!(s.phase(), "Pending");
        s.main[0].state = running;
        assert_eq!(s.phase(), "Running");
        let mut pod = json!({"metadata": {}});
        s.apply(&mut pod, "u");
        let ready = pod["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"].clone());
        assert_eq!(ready, Some(json!("True")));
        s.main[0].state = State::Terminated {
            exit: Exit {
                code: 143,
                signal: Some(15),
            },
            started: "t".into(),
            finished: "t".into(),
        };
        s.finished = Some("Failed");
        s.apply(&mut pod, "u");
        assert_eq!(pod["status"]["phase"], "Failed");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            143
        );
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Error"
        );
    }
}
