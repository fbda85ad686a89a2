//! The STATUS column of `kubectl get pods`, as kube-apiserver's pod printer derives it from the
//! phase and the container states (`Init:0/2`, `CrashLoopBackOff`, `Completed`, `Terminating`).

use serde_json::Value;

fn state<'a>(c: &'a Value, which: &str) -> Option<&'a Value> {
    c.get("state")?.get(which)
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn terminated_text(t: &Value, prefix: &str) -> String {
    let reason = str_at(t, "reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
        Some(sig) => format!("{prefix}Signal:{sig}"),
        None => format!(
            "{prefix}ExitCode:{}",
            t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
        ),
    }
}

fn condition_true(pod: &Value, kind: &str) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
}

/// The pod's STATUS text.
pub fn status_text(pod: &Value) -> String {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut reason = pod
        .pointer("/status/reason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or(phase)
        .to_string();
    let empty = Vec::new();
    let inits = pod
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let init_total = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        if let Some(t) = state(c, "terminated") {
            if t.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            reason = terminated_text(t, "Init:");
        } else if let Some(w) = state(c, "waiting")
            && !str_at(w, "reason").is_empty()
            && str_at(w, "reason") != "PodInitializing"
        {
            reason = format!("Init:{}", str_at(w, "reason"));
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(pod, "Initialized") {
        let mut running = false;
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for c in statuses.iter().rev() {
            if let Some(w) = state(c, "waiting").filter(|w| !str_at(w, "reason").is_empty()) {
                reason = str_at(w, "reason").to_string();
            } else if let Some(t) = state(c, "terminated") {
                reason = terminated_text(t, "");
            } else if c.get("ready") == Some(&Value::Bool(true)) && state(c, "running").is_some() {
                running = true;
            }
        }
        if reason == "Completed" && running {
            reason = if condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some()
        && !matches!(phase, "Succeeded" | "Failed")
    {
        reason = "Terminating".into();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_printer_cases() {
        let pod = |status: Value| json!({"spec": {"initContainers": [{}, {}]}, "status": status});
        assert_eq!(status_text(&pod(json!({"phase": "Pending"}))), "Pending");
        let init = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"state": {"running": {}}}]}));
        assert_eq!(status_text(&init), "Init:1/2");
        let init_crash = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
        assert_eq!(status_text(&init_crash), "Init:CrashLoopBackOff");
        let crash = json!({"status": {"phase": "Running", "containerStatuses": [
            {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(status_text(&crash), "CrashLoopBackOff");
        let done = json!({"status": {"phase": "Succeeded", "containerStatuses": [
            {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        assert_eq!(status_text(&done), "Completed");
        let killed = json!({"status": {"phase": "Failed", "containerStatuses": [
            {"state": {"terminated": {"exitCode": 137, "signal": 9}}}]}});
        assert_eq!(status_text(&killed), "Signal:9");
        let going = json!({"metadata": {"deletionTimestamp": "t"}, "status": {"phase": "Running"}});
        assert_eq!(status_text(&going), "Terminating");
    }
}
