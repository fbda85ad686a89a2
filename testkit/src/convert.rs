//! Two API views of one storage: `events.k8s.io/v1` Events are stored as core `v1` Events, as
//! kube-apiserver does, so `kubectl describe` shows events written by `kube::runtime::events`.

use serde_json::{Map, Value};

use crate::registry::ResourceType;

/// `(events.k8s.io/v1 field, core/v1 field)`.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn is_events_v1(ty: &ResourceType) -> bool {
    ty.group == "events.k8s.io"
}

fn rename(obj: Value, from_view: bool) -> Value {
    let Value::Object(map) = obj else { return obj };
    let mut out = Map::new();
    for (k, v) in map {
        let renamed = EVENT_FIELDS.iter().find_map(|(view, core)| {
            if from_view {
                (k == *view).then_some(*core)
            } else {
                (k == *core).then_some(*view)
            }
        });
        out.insert(renamed.map_or(k, str::to_string), v);
    }
    Value::Object(out)
}

/// A stored (core) object as the client's API version shows it.
pub fn to_view(ty: &ResourceType, obj: Value) -> Value {
    if is_events_v1(ty) {
        rename(obj, false)
    } else {
        obj
    }
}

/// A client's object in storage form.
pub fn from_view(ty: &ResourceType, obj: Value) -> Value {
    if is_events_v1(ty) {
        rename(obj, true)
    } else {
        obj
    }
}

/// A field selector written against the view, in storage field names.
pub fn field_selector(ty: &ResourceType, raw: &str) -> String {
    if !is_events_v1(ty) {
        return raw.to_string();
    }
    raw.split(',')
        .map(|part| {
            EVENT_FIELDS
                .iter()
                .find_map(|(view, core)| {
                    part.trim()
                        .strip_prefix(view)
                        .filter(|rest| rest.starts_with(['.', '=', '!']))
                        .map(|rest| format!("{core}{rest}"))
                })
                .unwrap_or_else(|| part.to_string())
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_and_selectors() {
        let reg = crate::registry::Registry::builtins();
        let ty = reg
            .lookup("events.k8s.io", "v1", "events")
            .expect("events.k8s.io");
        let view = json!({"regarding": {"name": "lp"}, "note": "n", "reason": "R"});
        let core = from_view(&ty, view.clone());
        assert_eq!(core["involvedObject"]["name"], "lp");
        assert_eq!(core["message"], "n");
        assert_eq!(to_view(&ty, core), view);
        assert_eq!(
            field_selector(&ty, "regarding.name=lp,reason=R"),
            "involvedObject.name=lp,reason=R"
        );
    }
}
