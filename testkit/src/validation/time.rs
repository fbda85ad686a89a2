//! `metav1.Time` and `metav1.MicroTime` fields, decoded as kube-apiserver's Go types decode
//! them and stored as they re-encode them.
//!
//! MicroTime parses with the layout `2006-01-02T15:04:05.000000Z07:00`: exactly six
//! fractional digits and an offset (`Z` or `±hh:mm`); it is stored in UTC with six digits and
//! `Z`. Time parses as RFC 3339 (any fraction, any offset) and is stored in UTC to the second.

use serde_json::Value;

use crate::registry::ResourceType;

/// The Go layout of MicroTime, as parse errors name it.
pub const MICRO_LAYOUT: &str = "2006-01-02T15:04:05.000000Z07:00";
/// The Go layout of Time (RFC 3339).
pub const TIME_LAYOUT: &str = "2006-01-02T15:04:05Z07:00";

/// Which of the two types a field has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `metav1.Time`: seconds.
    Seconds,
    /// `metav1.MicroTime`: microseconds.
    Micros,
}

use Precision::{Micros, Seconds};

/// Time fields of every built-in kind's conditions.
const CONDITIONS: &[(&str, Precision)] = &[
    ("status.conditions[].lastTransitionTime", Seconds),
    ("status.conditions[].lastProbeTime", Seconds),
    ("status.conditions[].lastUpdateTime", Seconds),
    ("status.conditions[].lastHeartbeatTime", Seconds),
];

const CONTAINER_STATES: &[&str] = &[
    "state.running.startedAt",
    "state.terminated.startedAt",
    "state.terminated.finishedAt",
    "lastState.running.startedAt",
    "lastState.terminated.startedAt",
    "lastState.terminated.finishedAt",
];

/// The time fields of a kind (storage form: events.k8s.io Events use core names), with
/// `[]` for "every item of this list".
fn fields(ty: &ResourceType) -> Vec<(String, Precision)> {
    let own = |list: &[(&str, Precision)]| -> Vec<(String, Precision)> {
        list.iter().map(|(p, k)| (p.to_string(), *k)).collect()
    };
    let mut out = match (ty.group.as_str(), ty.kind.as_str()) {
        ("coordination.k8s.io", "Lease") => {
            own(&[("spec.acquireTime", Micros), ("spec.renewTime", Micros)])
        }
        ("" | "events.k8s.io", "Event") => own(&[
            ("eventTime", Micros),
            ("series.lastObservedTime", Micros),
            ("firstTimestamp", Seconds),
            ("lastTimestamp", Seconds),
        ]),
        ("", "Pod") => {
            let mut v = own(&[("status.startTime", Seconds)]);
            for list in ["containerStatuses", "initContainerStatuses"] {
                for state in CONTAINER_STATES {
                    v.push((format!("status.{list}[].{state}"), Seconds));
                }
            }
            v
        }
        ("batch", "Job") => own(&[
            ("status.startTime", Seconds),
            ("status.completionTime", Seconds),
        ]),
        ("batch", "CronJob") => own(&[
            ("status.lastScheduleTime", Seconds),
            ("status.lastSuccessfulTime", Seconds),
        ]),
        _ => Vec::new(),
    };
    if !ty.is_custom {
        out.extend(own(CONDITIONS));
    }
    out
}

/// Parses one value as the Go type would, returning the stored encoding or Go's parse error.
pub fn normalize(value: &str, precision: Precision) -> Result<String, String> {
    let layout = match precision {
        Micros => MICRO_LAYOUT,
        Seconds => TIME_LAYOUT,
    };
    let fail = |rest: &str, elem: &str| {
        Err(format!(
            "parsing time {value:?} as {layout:?}: cannot parse {rest:?} as {elem:?}"
        ))
    };
    // "2006-01-02T15:04:05" is 19 ASCII bytes; checked before slicing.
    let shape_ok = value.len() >= 19
        && value.is_char_boundary(19)
        && value[..19].bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return fail(value, layout);
    }
    let rest = &value[19..];
    let digits = rest
        .strip_prefix('.')
        .map_or(0, |r| r.bytes().take_while(u8::is_ascii_digit).count());
    let fraction_len = if rest.starts_with('.') { digits + 1 } else { 0 };
    let offset = &rest[fraction_len..];
    if precision == Micros {
        if digits < 6 {
            return fail(rest, ".000000");
        }
        if digits > 6 {
            return fail(&rest[7..], "Z07:00");
        }
    } else if rest.starts_with('.') && digits == 0 {
        return fail(rest, "Z07:00");
    }
    let offset_ok = offset == "Z"
        || (offset.len() == 6
            && offset.starts_with(['+', '-'])
            && offset.as_bytes()[3] == b':'
            && offset
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 0 || i == 3 || b.is_ascii_digit()));
    if !offset_ok {
        return fail(offset, "Z07:00");
    }
    let ts: jiff::Timestamp = value
        .parse()
        .map_err(|e| format!("parsing time {value:?}: {e}"))?;
    let format = match precision {
        Micros => "%Y-%m-%dT%H:%M:%S%.6fZ",
        Seconds => "%Y-%m-%dT%H:%M:%SZ",
    };
    jiff::fmt::strtime::format(format, ts).map_err(|e| format!("formatting time {value:?}: {e}"))
}

/// Walks `path` (dot-separated, `[]` for list items) and re-encodes every string found there.
fn walk(value: &mut Value, segments: &[&str], precision: Precision) -> Result<(), String> {
    let Some((first, rest)) = segments.split_first() else {
        if let Value::String(s) = value {
            *s = normalize(s, precision)?;
        }
        return Ok(());
    };
    let (name, each) = match first.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (*first, false),
    };
    let Some(child) = value.get_mut(name) else {
        return Ok(());
    };
    if each {
        if let Value::Array(items) = child {
            for item in items {
                walk(item, rest, precision)?;
            }
        }
        Ok(())
    } else {
        walk(child, rest, precision)
    }
}

/// Re-encodes every Time and MicroTime field of `obj` (a built-in in storage form); the error
/// is Go's parse error for the first malformed one.
pub fn normalize_object(ty: &ResourceType, obj: &mut Value) -> Result<(), String> {
    for (path, precision) in fields(ty) {
        let segments: Vec<&str> = path.split('.').collect();
        walk(obj, &segments, precision)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_table() {
        for (input, want) in [
            (
                "2026-01-01T00:00:00.123456Z",
                Ok("2026-01-01T00:00:00.123456Z"),
            ),
            (
                "2026-01-01T02:00:00.000001+02:00",
                Ok("2026-01-01T00:00:00.000001Z"),
            ),
            (
                "2026-01-01T00:00:00.123Z",
                Err("cannot parse \".123Z\" as \".000000\""),
            ),
            (
                "2026-01-01T00:00:00Z",
                Err("cannot parse \"Z\" as \".000000\""),
            ),
            (
                "2026-01-01T00:00:00.123456789Z",
                Err("cannot parse \"789Z\" as \"Z07:00\""),
            ),
            (
                "2026-01-01T00:00:00.123456",
                Err("cannot parse \"\" as \"Z07:00\""),
            ),
            ("yesterday", Err("cannot parse \"yesterday\"")),
        ] {
            match (normalize(input, Micros), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input}: {got}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn time_drops_the_fraction_and_moves_to_utc() {
        assert_eq!(
            normalize("2026-01-01T01:00:00.5+01:00", Seconds).as_deref(),
            Ok("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            normalize("2026-01-01T00:00:00Z", Seconds).as_deref(),
            Ok("2026-01-01T00:00:00Z")
        );
        assert!(normalize("2026-01-01T00:00:00", Seconds).is_err());
    }
}
