//! CronJob → Job `<cronjob>-<scheduled minute>` at each tick of `spec.schedule` (in
//! `spec.timeZone`, UTC by default), honouring `suspend`, `concurrencyPolicy`,
//! `startingDeadlineSeconds` and the history limits. Jobs it owns, including those made by
//! `kubectl create job --from=cronjob/X`, show up in `status.active`.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde_json::{Value, json};

use super::job::finished;
use super::{Ctx, deleting, int_at, meta, owned, owner_reference};
use crate::cluster::Resource;
use crate::errors::ApiError;

/// Parses a CronJob schedule: five fields, or a descriptor such as `@hourly`.
pub(crate) fn parse_schedule(schedule: &str) -> Result<Cron, croner::errors::CronError> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(schedule)
}

/// The latest scheduled time in `(after, now]`, if any.
pub(crate) fn latest_due(
    cron: &Cron,
    after: jiff::Timestamp,
    now: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Option<jiff::Timestamp> {
    let from = after.to_zoned(tz.clone());
    let mut due = None;
    // kube-controller-manager also gives up counting past 100 missed times and runs the latest.
    for next in cron.iter_after(from).take(100) {
        if next.timestamp() > now {
            return due;
        }
        due = Some(next.timestamp());
    }
    cron.find_previous_occurrence(&now.to_zoned(tz.clone()), true)
        .ok()
        .map(|z| z.timestamp())
        .filter(|t| *t > after)
}

fn time_field(obj: &Value, pointer: &str) -> Option<jiff::Timestamp> {
    obj.pointer(pointer)?.as_str()?.parse().ok()
}

fn to_time(t: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// Starts the Job that is due, if any, and writes the CronJob's status.
pub(crate) fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let Some(cj) = ctx.cluster.get(Resource::CronJobs, ns, name) else {
        return Ok(());
    };
    if deleting(&cj) {
        return Ok(());
    }
    let uid = meta(&cj, "uid").to_string();
    let mut jobs = owned(ctx, Resource::Jobs, ns, &uid);
    jobs.sort_by(|a, b| meta(a, "creationTimestamp").cmp(meta(b, "creationTimestamp")));
    let mut active: Vec<&Value> = jobs
        .iter()
        .filter(|j| finished(j).is_none() && !deleting(j))
        .collect();
    let mut last_schedule = time_field(&cj, "/status/lastScheduleTime");
    let suspended = cj.pointer("/spec/suspend") == Some(&json!(true));
    let mut created = None;
    if !suspended && let Some(due) = due_time(&cj, last_schedule) {
        let policy = cj
            .pointer("/spec/concurrencyPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Allow");
        let late = jiff::Timestamp::now().as_second() - due.as_second();
        let too_late = cj
            .pointer("/spec/startingDeadlineSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|limit| late > limit);
        if too_late {
            tracing::debug!(cronjob = %name, %due, "missed the starting deadline");
        } else if policy == "Forbid" && !active.is_empty() {
            // Not recorded as scheduled: the run starts once the active one ends, if still in
            // its deadline, as the CronJob controller does.
        } else {
            if policy == "Replace" {
                for j in active.drain(..) {
                    ctx.cluster.delete(Resource::Jobs, ns, meta(j, "name"))?;
                }
            }
            let job = job_for(&cj, due);
            match ctx.cluster.create(Resource::Jobs, ns, job) {
                Ok(j) => created = Some(j),
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
            last_schedule = Some(due);
        }
    }
    // History limits: the oldest finished Jobs beyond them are deleted.
    for (kind, limit) in [
        (
            "Complete",
            int_at(&cj, "/spec/successfulJobsHistoryLimit", 3),
        ),
        ("Failed", int_at(&cj, "/spec/failedJobsHistoryLimit", 1)),
    ] {
        let done: Vec<&Value> = jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
        let excess = done.len().saturating_sub(limit.max(0) as usize);
        for j in done.into_iter().take(excess) {
            ctx.cluster.delete(Resource::Jobs, ns, meta(j, "name"))?;
        }
    }
    let refs: Vec<Value> = active
        .iter()
        .copied()
        .chain(created.as_ref())
        .map(|j| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "namespace": ns,
                   "name": meta(j, "name"), "uid": meta(j, "uid"),
                   "resourceVersion": meta(j, "resourceVersion")})
        })
        .collect();
    let last_success = jobs
        .iter()
        .filter(|j| finished(j) == Some("Complete"))
        .filter_map(|j| time_field(j, "/status/completionTime"))
        .max();
    ctx.cluster
        .update(Resource::CronJobs, ns, name, Some(&uid), |obj| {
            let mut status = json!({});
            if !refs.is_empty() {
                status["active"] = json!(refs);
            }
            if let Some(t) = last_schedule {
                status["lastScheduleTime"] = json!(to_time(t));
            }
            if let Some(t) = last_success {
                status["lastSuccessfulTime"] = json!(to_time(t));
            }
            obj["status"] = status;
        })?;
    Ok(())
}

/// The latest schedule time that is due and not yet run.
fn due_time(cj: &Value, last_schedule: Option<jiff::Timestamp>) -> Option<jiff::Timestamp> {
    let schedule = cj.pointer("/spec/schedule").and_then(Value::as_str)?;
    let cron = match parse_schedule(schedule) {
        Ok(c) => c,
        Err(error) => {
            tracing::debug!(?error, schedule, "unparseable schedule");
            return None;
        }
    };
    let tz = match cj.pointer("/spec/timeZone").and_then(Value::as_str) {
        Some(name) => jiff::tz::TimeZone::get(name).ok()?,
        None => jiff::tz::TimeZone::UTC,
    };
    let after = last_schedule.or_else(|| time_field(cj, "/metadata/creationTimestamp"))?;
    latest_due(&cron, after, jiff::Timestamp::now(), &tz)
}

/// The Job of one scheduled run, as the CronJob controller builds it.
fn job_for(cj: &Value, due: jiff::Timestamp) -> Value {
    let name = format!("{}-{}", meta(cj, "name"), due.as_second() / 60);
    let template = cj
        .pointer("/spec/jobTemplate")
        .cloned()
        .unwrap_or(json!({}));
    let mut metadata = template
        .get("metadata")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    metadata["name"] = json!(name);
    metadata["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] =
        json!(to_time(due));
    metadata["ownerReferences"] = json!([owner_reference(cj, Resource::CronJobs, "CronJob")]);
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_schedule(s: &str) -> bool {
        parse_schedule(s).is_ok()
    }

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn latest_due_is_the_last_tick_not_after_now() {
        let cron = parse_schedule("*/5 * * * *").expect("parse");
        let utc = jiff::tz::TimeZone::UTC;
        let due = latest_due(
            &cron,
            ts("2026-01-01T00:01:00Z"),
            ts("2026-01-01T00:17:30Z"),
            &utc,
        );
        assert_eq!(due, Some(ts("2026-01-01T00:15:00Z")));
        let none = latest_due(
            &cron,
            ts("2026-01-01T00:15:00Z"),
            ts("2026-01-01T00:17:30Z"),
            &utc,
        );
        assert_eq!(none, None);
    }

    #[test]
    fn descriptors_and_nightly_schedules_parse_and_seconds_do_not() {
        assert!(valid_schedule("0 2 * * *"));
        assert!(valid_schedule("@hourly"));
        assert!(!valid_schedule("0 0 2 * * *"));
        let cron = parse_schedule("0 2 * * *").expect("parse");
        let due = latest_due(
            &cron,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-03T01:00:00Z"),
            &jiff::tz::TimeZone::UTC,
        );
        assert_eq!(due, Some(ts("2026-01-02T02:00:00Z")));
    }
}
