//! Job → pods `<job>-<suffix>`: up to `parallelism` at a time until `completions` succeeded
//! (`Complete`), or until more than `backoffLimit` failed or `activeDeadlineSeconds` passed
//! (`Failed`). The pods carry the `job-name`/`controller-uid` labels a real Job gives them.

use serde_json::{Value, json};

use super::{
    Ctx, PodName, condition, create_pod, deleting, int_at, is_active, is_ready, meta, owned,
    owner_reference, phase,
};
use crate::cluster::Resource;
use crate::errors::ApiError;

/// Whether the Job has a True `Complete` or `Failed` condition.
pub(crate) fn finished(job: &Value) -> Option<&'static str> {
    let conds = job.pointer("/status/conditions")?.as_array()?;
    ["Complete", "Failed"].into_iter().find(|t| {
        conds
            .iter()
            .any(|c| c["type"] == *t && c["status"] == "True")
    })
}

/// The labels a Job's pods carry.
fn job_labels<'a>(uid: &'a str, name: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid),
        ("job-name", name),
    ]
}

fn restarts(pod: &Value) -> i64 {
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |cs| {
            cs.iter()
                .filter_map(|c| c.get("restartCount")?.as_i64())
                .sum()
        })
}

/// Seconds since the latest failed pod's container finished.
fn last_failure(pods: &[Value]) -> Option<i64> {
    pods.iter()
        .filter(|p| phase(p) == "Failed")
        .filter_map(|p| {
            p.pointer("/status/containerStatuses")?
                .as_array()?
                .iter()
                .filter_map(|c| c.pointer("/state/terminated/finishedAt")?.as_str())
                .filter_map(elapsed_since)
                .min()
        })
        .min()
}

/// Whether the Job waits for time alone (a deadline, or the back-off after a failure).
pub(crate) fn waits_for_time(job: &Value) -> bool {
    finished(job).is_none()
        && (job.pointer("/spec/activeDeadlineSeconds").is_some()
            || job
                .pointer("/status/failed")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                > 0)
}

fn elapsed_since(time: &str) -> Option<i64> {
    let t: jiff::Timestamp = time.parse().ok()?;
    Some(jiff::Timestamp::now().as_second() - t.as_second())
}

/// Creates the Job's pods, judges completion and failure, and writes its status.
pub(crate) fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(job) = ctx.cluster.get(Resource::Jobs, ns, name) else {
        return Ok(());
    };
    if deleting(&job) {
        return Ok(());
    }
    let uid = meta(&job, "uid").to_string();
    if job.pointer("/spec/selector").is_none()
        && job.pointer("/spec/manualSelector") != Some(&json!(true))
    {
        // kube-apiserver defaults these when the Job is created; kubectl (`logs job/X`,
        // `describe`) finds the pods through them.
        ctx.cluster
            .update(Resource::Jobs, ns, name, Some(&uid), |obj| {
                obj["spec"]["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                let labels = &mut obj["spec"]["template"]["metadata"]["labels"];
                for (k, v) in job_labels(&uid, name) {
                    labels[k] = json!(v);
                }
            })?;
        return Ok(());
    }
    let pods = owned(ctx, Resource::Pods, ns, &uid);
    let active: Vec<&Value> = pods.iter().filter(|p| is_active(p)).collect();
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
    let terminating = pods
        .iter()
        .filter(|p| deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
        .count();
    let done = finished(&job);
    let suspended = job.pointer("/spec/suspend") == Some(&json!(true));
    if done.is_some() || suspended {
        for p in &active {
            ctx.cluster.delete(Resource::Pods, ns, meta(p, "name"))?;
        }
        if done.is_some() {
            return Ok(());
        }
    }
    let parallelism = int_at(&job, "/spec/parallelism", 1).max(0);
    let completions = job.pointer("/spec/completions").and_then(Value::as_i64);
    let backoff_limit = int_at(&job, "/spec/backoffLimit", 6);
    let on_failure = job
        .pointer("/spec/template/spec/restartPolicy")
        .and_then(Value::as_str)
        == Some("OnFailure");
    // With restartPolicy OnFailure, container restarts count against the back-off limit.
    let failures = failed
        + if on_failure {
            active.iter().map(|p| restarts(p)).sum()
        } else {
            0
        };
    let start_time = job
        .pointer("/status/startTime")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(crate::app::now_time);
    let deadline_passed = job
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .zip(elapsed_since(&start_time))
        .is_some_and(|(limit, elapsed)| elapsed >= limit);
    let complete = match completions {
        Some(c) => succeeded >= c,
        // A work queue: done once one pod succeeded and none is left running.
        None => succeeded >= 1 && active.is_empty(),
    };
    let failure = if complete {
        None
    } else if failures > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if deadline_passed {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };
    let mut active_count = active.len() as i64;
    if failure.is_some() {
        for p in &active {
            ctx.cluster.delete(Resource::Pods, ns, meta(p, "name"))?;
        }
        active_count = 0;
    } else if !complete && !suspended {
        let wanted = match completions {
            Some(c) => parallelism.min(c - succeeded),
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        // After a failed pod the next one waits: 1 s doubling up to 8 s per failure (the Job
        // controller's is 10 s up to 6 min, too slow for tests).
        let in_backoff = failed > 0
            && last_failure(&pods).is_some_and(|secs| secs < (1i64 << (failed - 1).clamp(0, 3)));
        let missing = if in_backoff {
            0
        } else {
            (wanted - active_count).max(0)
        };
        for _ in 0..missing {
            let owner = owner_reference(&job, Resource::Jobs, "Job");
            create_pod(
                ctx,
                ns,
                &template,
                PodName::Generate(&format!("{name}-")),
                owner,
                &job_labels(&uid, name),
                &[],
            )?;
            active_count += 1;
        }
    }
    let ready = active.iter().filter(|p| is_ready(p)).count();
    ctx.cluster
        .update(Resource::Jobs, ns, name, Some(&uid), |obj| {
            let now = crate::app::now_time();
            let mut conditions: Vec<Value> = Vec::new();
            if suspended {
                conditions.push(condition(
                    obj,
                    "Suspended",
                    true,
                    "JobSuspended",
                    "Job suspended",
                    false,
                ));
            }
            if complete {
                let message = "Reached expected number of succeeded pods";
                for t in ["SuccessCriteriaMet", "Complete"] {
                    conditions.push(condition(
                        obj,
                        t,
                        true,
                        "CompletionsReached",
                        message,
                        false,
                    ));
                }
            }
            if let Some((reason, message)) = failure {
                for t in ["FailureTarget", "Failed"] {
                    conditions.push(condition(obj, t, true, reason, message, false));
                }
            }
            let mut status = json!({
                "startTime": start_time,
                "active": active_count,
                "succeeded": succeeded,
                "failed": failed,
                "ready": ready,
                "terminating": terminating,
                "uncountedTerminatedPods": {},
            });
            if !conditions.is_empty() {
                status["conditions"] = json!(conditions);
            }
            if complete {
                status["completionTime"] = obj
                    .pointer("/status/completionTime")
                    .cloned()
                    .unwrap_or(json!(now));
            }
            obj["status"] = status;
        })?;
    Ok(())
}
