//! Event rules (kube's `ValidateEventCreate`/`ValidateEventUpdate`): the legacy rules every
//! Event passes, and the events.k8s.io required fields for Events written through that API.
//! Objects are in storage form (core field names), and causes use kube's field names.

use serde_json::Value;

use crate::errors::Cause;

const REPORTING_INSTANCE_MAX: usize = 128;
const ACTION_MAX: usize = 128;
const REASON_MAX: usize = 128;
const NOTE_MAX: usize = 1024;

fn s<'a>(ev: &'a Value, pointer: &str) -> &'a str {
    ev.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn set(ev: &Value, field: &str) -> bool {
    ev.get(field).is_some_and(|v| !v.is_null())
}

fn too_long(field: &str, max: usize) -> Cause {
    Cause::invalid(
        field,
        format!("Invalid value: \"\": can have at most {max} characters"),
    )
}

/// Whether `name` is a Kubernetes qualified name (`[prefix/]name`), the form
/// `reportingController` must have.
fn qualified_name_problem(name: &str) -> Option<String> {
    let (prefix, local) = match name.rsplit_once('/') {
        Some((p, l)) => (Some(p), l),
        None => (None, name),
    };
    let local_ok = !local.is_empty()
        && local.len() <= 63
        && local.starts_with(|c: char| c.is_ascii_alphanumeric())
        && local.ends_with(|c: char| c.is_ascii_alphanumeric())
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let prefix_ok = prefix
        .is_none_or(|p| super::names::problems(super::names::NameRule::Subdomain, p).is_empty());
    (!(local_ok && prefix_ok)).then(|| {
        format!("Invalid value: {name:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    })
}

/// The rules every Event passes, whichever API wrote it (`events_v1`: through events.k8s.io).
fn legacy(ev: &Value, events_v1: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let ns = s(ev, "/metadata/namespace");
    let involved_ns = s(ev, "/involvedObject/namespace");
    let mismatch = || {
        Cause::invalid(
            "involvedObject.namespace",
            format!("Invalid value: {involved_ns:?}: does not match event.namespace"),
        )
    };
    if !set(ev, "eventTime") {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                causes.push(mismatch());
            }
        } else if ns != involved_ns {
            causes.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            causes.push(mismatch());
        }
        let controller_field = if events_v1 {
            "reportingController"
        } else {
            "reportingComponent"
        };
        let controller = s(ev, "/reportingComponent");
        if controller.is_empty() {
            causes.push(Cause::required(controller_field));
        } else if let Some(problem) = qualified_name_problem(controller) {
            causes.push(Cause::invalid(controller_field, problem));
        }
        let instance = s(ev, "/reportingInstance");
        if instance.is_empty() {
            causes.push(Cause::required("reportingInstance"));
        }
        if instance.len() > REPORTING_INSTANCE_MAX {
            causes.push(too_long("reportingInstance", REPORTING_INSTANCE_MAX));
        }
        let action = s(ev, "/action");
        if action.is_empty() {
            causes.push(Cause::required("action"));
        }
        if action.len() > ACTION_MAX {
            causes.push(too_long("action", ACTION_MAX));
        }
        let reason = s(ev, "/reason");
        if reason.is_empty() {
            causes.push(Cause::required("reason"));
        }
        if reason.len() > REASON_MAX {
            causes.push(too_long("reason", REASON_MAX));
        }
        if s(ev, "/message").len() > NOTE_MAX {
            causes.push(too_long("message", NOTE_MAX));
        }
    }
    causes
}

fn series(ev: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(series) = ev.get("series").filter(|v| !v.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            causes.push(Cause::invalid(
                "series.count",
                "Invalid value: \"\": should be at least 2",
            ));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            causes.push(Cause::required("series.lastObservedTime"));
        }
    }
    causes
}

/// Causes for a new Event.
pub fn create_causes(ev: &Value, events_v1: bool) -> Vec<Cause> {
    let mut causes = legacy(ev, events_v1);
    if !events_v1 {
        return causes;
    }
    causes.extend(series(ev));
    if !set(ev, "eventTime") {
        causes.push(Cause::required("eventTime"));
    }
    let ty = s(ev, "/type");
    if ty != "Normal" && ty != "Warning" {
        causes.push(Cause::invalid(
            "type",
            format!("Invalid value: \"\": has invalid value: {ty}"),
        ));
    }
    for (core, view) in [
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
    ] {
        if set(ev, core) {
            causes.push(Cause::invalid(
                view,
                "Invalid value: \"\": needs to be unset",
            ));
        }
    }
    if ev.get("count").and_then(Value::as_i64).unwrap_or(0) != 0 {
        causes.push(Cause::invalid(
            "deprecatedCount",
            "Invalid value: \"\": needs to be unset",
        ));
    }
    if !s(ev, "/source/component").is_empty() || !s(ev, "/source/host").is_empty() {
        causes.push(Cause::invalid(
            "deprecatedSource",
            "Invalid value: \"\": needs to be unset",
        ));
    }
    causes
}

/// Causes for an update of `old` to `ev`.
pub fn update_causes(ev: &Value, old: &Value, events_v1: bool) -> Vec<Cause> {
    let mut causes = legacy(ev, events_v1);
    if !events_v1 {
        return causes;
    }
    if ev.get("series") != old.get("series") {
        causes.extend(series(ev));
    }
    for field in [
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    ] {
        let (new, was) = (ev.get(field), old.get(field));
        let unset = |v: Option<&Value>| v.is_none_or(Value::is_null);
        if new != was && !(unset(new) && unset(was)) {
            let shown = new.map_or("null".to_string(), crate::schema::validate::go_value);
            causes.push(Cause::invalid(
                field,
                format!("Invalid value: {shown}: field is immutable"),
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(causes: Vec<Cause>) -> Vec<String> {
        let mut f: Vec<String> = causes.into_iter().map(|c| c.field).collect();
        f.sort();
        f
    }

    #[test]
    fn events_v1_required_fields() {
        let bare = json!({"metadata": {"namespace": "default"}, "involvedObject": {"namespace": "default"},
                          "reason": "R", "type": "Normal"});
        // Without eventTime the legacy rules do not ask for the rest (as in kube).
        assert_eq!(fields(create_causes(&bare, true)), ["eventTime"]);
        let mut timed = bare.clone();
        timed["eventTime"] = json!("2026-01-01T00:00:00.000000Z");
        assert_eq!(
            fields(create_causes(&timed, true)),
            ["action", "reportingController", "reportingInstance"]
        );
        assert!(create_causes(&bare, false).is_empty());
        let full = json!({"metadata": {"namespace": "default"}, "involvedObject": {"namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingComponent": "kube-zen.io/zen-lead",
            "reportingInstance": "i", "action": "A", "reason": "R", "type": "Warning"});
        assert!(create_causes(&full, true).is_empty());
        let mut renamed = full.clone();
        renamed["reason"] = json!("Other");
        assert_eq!(fields(update_causes(&renamed, &full, true)), ["reason"]);
        let mut bad_series = full.clone();
        bad_series["series"] = json!({"count": 1});
        assert_eq!(
            fields(update_causes(&bad_series, &full, true)),
            ["series.count", "series.lastObservedTime"]
        );
    }
}
