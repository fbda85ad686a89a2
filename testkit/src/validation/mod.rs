//! Built-in admission as kube-apiserver does it before storing: decoding (Time and MicroTime
//! fields, field types, unknown fields: 400 or a warning) and validation (object names, Lease
//! and Event rules: 422). Custom resources get their name rule here and the rest from their
//! CRD schema (`crate::schema`).

pub mod events;
pub mod fields;
pub mod lease;
pub mod names;
pub mod time;

use std::collections::HashMap;

use serde_json::Value;

use crate::errors::{ApiError, Cause};
use crate::registry::ResourceType;

/// `Kind in version "v1" cannot be handled as a Kind: <why>`: kube-apiserver's decoding error.
fn undecodable(ty: &ResourceType, version: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: {why}",
        kind = ty.kind
    ))
}

/// The decoding stage of a built-in: re-encodes its times, refuses wrong types, and drops
/// unknown fields (refused under `fieldValidation=Strict`, silent under `Ignore`, a warning
/// otherwise).
pub fn decode(
    ty: &ResourceType,
    version: &str,
    obj: &mut Value,
    query: &HashMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    if ty.is_custom {
        return Ok(());
    }
    time::normalize_object(ty, obj).map_err(|e| undecodable(ty, version, &e))?;
    let mut view = crate::convert::to_view(ty, obj.clone());
    let unknown = fields::prune_unknown(ty, &mut view).map_err(|e| undecodable(ty, version, &e))?;
    if unknown.is_empty() {
        return Ok(());
    }
    let messages = unknown.iter().map(|p| format!("unknown field {p:?}"));
    match query.get("fieldValidation").map(String::as_str) {
        Some("Strict") => {
            let all = messages.collect::<Vec<_>>().join(", ");
            return Err(undecodable(
                ty,
                version,
                &format!("strict decoding error: {all}"),
            ));
        }
        Some("Ignore") => {}
        _ => warnings.extend(messages),
    }
    *obj = crate::convert::from_view(ty, view);
    Ok(())
}

/// The validation stage: the causes that make `obj` (new when `old` is None) invalid.
pub fn validate(ty: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if old.is_none() {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        causes.extend(names::name_causes(ty, name));
    }
    match (ty.group.as_str(), ty.kind.as_str()) {
        ("coordination.k8s.io", "Lease") => causes.extend(lease::spec_causes(obj)),
        (group @ ("" | "events.k8s.io"), "Event") => {
            let events_v1 = group == "events.k8s.io";
            causes.extend(match old {
                None => events::create_causes(obj, events_v1),
                Some(old) => events::update_causes(obj, old, events_v1),
            });
        }
        _ => {}
    }
    causes
}

/// Both stages, as one write goes through them; 400 or 422 as kube-apiserver answers.
pub fn admit(
    ty: &ResourceType,
    version: &str,
    obj: &mut Value,
    old: Option<&Value>,
    query: &HashMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    decode(ty, version, obj, query, warnings)?;
    let causes = validate(ty, obj, old);
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(ApiError::invalid(&ty.group, &ty.kind, name, causes))
}
