//! kube-apiserver's Table printers for the kinds whose columns zen-lead's users read: Leases
//! (`HOLDER`) and Events (`LAST SEEN`, `TYPE`, `REASON`, `OBJECT`, `MESSAGE`, and the
//! `-o wide` ones).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::registry::ResourceType;

/// kubectl's `HumanDuration`: `45s`, `3m20s`, `15m`, `5h10m`, `30h`, `3d4h`, `200d`, `2y5d`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
fn since(ts: Option<&Value>) -> String {
    match ts
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn col(name: &str, format: &str, priority: i64, description: &str) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": description,
           "priority": priority})
}

fn lease_columns() -> Vec<Value> {
    vec![
        col("Name", "name", 0, "Name must be unique within a namespace."),
        col(
            "Holder",
            "",
            0,
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        col(
            "Age",
            "",
            0,
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ),
    ]
}

fn lease_cells(lease: &Value) -> Vec<Value> {
    vec![
        json!(
            lease
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        json!(
            lease
                .pointer("/spec/holderIdentity")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        json!(since(lease.pointer("/metadata/creationTimestamp"))),
    ]
}

fn event_columns() -> Vec<Value> {
    vec![
        col(
            "Last Seen",
            "",
            0,
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        col(
            "Type",
            "",
            0,
            "Type of this event (Normal, Warning), new types could be added in the future.",
        ),
        col(
            "Reason",
            "",
            0,
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        ),
        col("Object", "", 0, "The object that this event is about."),
        col(
            "Subobject",
            "",
            1,
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
        ),
        col("Source", "", 1, "The component reporting this event."),
        col(
            "Message",
            "",
            0,
            "A human-readable description of the status of this operation.",
        ),
        col(
            "First Seen",
            "",
            1,
            "The time at which the event was first recorded.",
        ),
        col(
            "Count",
            "",
            1,
            "The number of times this event has occurred.",
        ),
        col("Name", "name", 1, "Name must be unique within a namespace."),
    ]
}

/// `formatEventSource`: `component, host`, or the reporting controller and instance.
fn event_source(ev: &Value) -> String {
    let s = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (component, host) = match s("/source/component") {
        "" => (s("/reportingComponent"), s("/reportingInstance")),
        c => (c, s("/source/host")),
    };
    if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    }
}

/// The cells of `printEvent` (storage form: core field names).
fn event_cells(ev: &Value) -> Vec<Value> {
    let s = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or("");
    let set = |p: &str| ev.pointer(p).is_some_and(|v| !v.is_null());
    let first = if set("/firstTimestamp") {
        since(ev.pointer("/firstTimestamp"))
    } else {
        since(ev.pointer("/eventTime"))
    };
    let mut last = if set("/lastTimestamp") {
        since(ev.pointer("/lastTimestamp"))
    } else {
        first.clone()
    };
    let mut count = ev.get("count").and_then(Value::as_i64).unwrap_or(0);
    if set("/series") {
        last = since(ev.pointer("/series/lastObservedTime"));
        count = ev
            .pointer("/series/count")
            .and_then(Value::as_i64)
            .unwrap_or(0);
    } else if count == 0 {
        // Singleton events of the new API have no count.
        count = 1;
    }
    let kind = s("/involvedObject/kind").to_lowercase();
    let target = match s("/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    vec![
        json!(last),
        json!(s("/type")),
        json!(s("/reason")),
        json!(target),
        json!(s("/involvedObject/fieldPath")),
        json!(event_source(ev)),
        json!(s("/message").trim()),
        json!(first),
        json!(count),
        json!(s("/metadata/name")),
    ]
}

/// A Table of a get or list response for the kinds printed here; None for the others.
pub fn to_table(
    ty: &ResourceType,
    value: &Value,
    query: &HashMap<String, String>,
) -> Option<Value> {
    type Cells = fn(&Value) -> Vec<Value>;
    let (columns, cells): (Vec<Value>, Cells) = match (ty.group.as_str(), ty.kind.as_str()) {
        ("coordination.k8s.io", "Lease") => (lease_columns(), lease_cells),
        ("" | "events.k8s.io", "Event") => (event_columns(), event_cells),
        _ => return None,
    };
    let include = query
        .get("includeObject")
        .map_or("Metadata", String::as_str);
    // Cells are computed on the storage form, whichever API version was asked.
    let row = |o: &Value| {
        let storage = crate::convert::from_view(ty, o.clone());
        json!({"cells": cells(&storage), "object": crate::table::row_object(o, include)})
    };
    let (rows, meta) = match value.get("items").and_then(Value::as_array) {
        Some(items) => (
            items.iter().map(row).collect::<Vec<_>>(),
            value.get("metadata").cloned().unwrap_or(json!({})),
        ),
        None => (
            vec![row(value)],
            json!({"resourceVersion": value.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}),
        ),
    };
    Some(json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3600 * 5 + 600, "5h10m"),
            (3600 * 30, "30h"),
            (86_400 * 3 + 3600 * 4, "3d4h"),
            (86_400 * 200, "200d"),
            (86_400 * (365 * 2 + 5), "2y5d"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn event_cells_follow_print_event() {
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"},
            "type": "Normal", "reason": "R", "message": " hi ", "reportingComponent": "c",
            "reportingInstance": "i", "series": {"count": 4, "lastObservedTime": "2026-01-01T00:00:00.000000Z"}});
        let cells = event_cells(&ev);
        assert_eq!(
            cells[1..7],
            [
                json!("Normal"),
                json!("R"),
                json!("pod/p"),
                json!(""),
                json!("c, i"),
                json!("hi")
            ]
        );
        assert_eq!(cells[8], json!(4));
    }
}
