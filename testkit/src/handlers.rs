//! The resource verbs: get, list, create, update, patch, delete, deletecollection.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::app::{self, App, Response};
use crate::errors::{ApiError, Cause};
use crate::patch::{self, PatchType, Target};
use crate::registry::ResourceType;
use crate::router::RequestInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::Mutation;

/// One decoded resource request.
#[derive(Debug)]
pub struct Call<'a> {
    /// Parsed path.
    pub info: &'a RequestInfo,
    /// Query parameters.
    pub query: &'a HashMap<String, String>,
    /// Request body.
    pub body: &'a [u8],
    /// `Content-Type`.
    pub content_type: &'a str,
    /// `Accept`.
    pub accept: &'a str,
    /// Field manager default (from the User-Agent, as kube-apiserver does).
    pub default_manager: String,
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        // Unreachable: the line above made it an object.
        _ => unreachable!("metadata was just made an object"),
    }
}

/// Resolves the type, checking scope against the path.
pub fn resolve(app: &App, info: &RequestInfo) -> Result<Arc<ResourceType>, ApiError> {
    let ty = app
        .registry()
        .lookup(&info.group, &info.version, &info.resource)
        .ok_or_else(ApiError::path_not_found)?;
    if !ty.namespaced && !info.namespace.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let known_sub = info.subresource.is_empty()
        || (info.subresource == "status" && ty.status_subresource)
        || (info.subresource == "scale" && ty.scale.is_some())
        || (ty.plural == "namespaces" && info.subresource == "finalize");
    if !known_sub {
        return Err(ApiError::path_not_found());
    }
    Ok(ty)
}

/// Sets `apiVersion` to the version the client asked for (all versions share storage).
pub fn present(obj: Value, ty: &ResourceType, version: &str) -> Value {
    let mut obj = crate::convert::to_view(ty, obj);
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), json!(ty.api_version(version)));
        o.insert("kind".into(), json!(ty.kind));
    }
    obj
}

/// Decodes a request body by its `Content-Type` (JSON or YAML; protobuf for a few kinds).
fn decode_body(call: &Call<'_>) -> Result<Value, ApiError> {
    if call.content_type.starts_with(crate::protobuf::CONTENT_TYPE) {
        return crate::protobuf::decode(call.body);
    }
    decode(call.body)
}

fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in request body",
        ));
    }
    Ok(v)
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Kinds whose objects carry `metadata.generation` on the real server.
fn has_generation(ty: &ResourceType) -> bool {
    ty.is_custom
        || ty.status_subresource
        || matches!(
            ty.kind.as_str(),
            "ClusterRole" | "Role" | "RoleBinding" | "ClusterRoleBinding"
        )
}

/// Built-in admission (`crate::validation`), then the CRD schema: defaults, pruning,
/// validation.
fn apply_schema(
    ty: &ResourceType,
    version: &str,
    obj: &mut Value,
    old: Option<&Value>,
    query: &HashMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    crate::validation::admit(ty, version, obj, old, query, warnings)?;
    let Some(schema) = ty
        .schemas
        .get(version)
        .or_else(|| ty.schemas.values().next())
    else {
        return Ok(());
    };
    schema.apply_defaults(obj);
    let pruned = schema.prune(obj);
    if !pruned.is_empty() {
        match query.get("fieldValidation").map(String::as_str) {
            Some("Strict") => {
                let msg = pruned
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {msg}",
                    kind = ty.kind
                )));
            }
            Some("Ignore") => {}
            _ => warnings.extend(pruned.iter().map(|p| format!("unknown field \"{p}\""))),
        }
    }
    let causes = schema.validate(obj, old);
    if !causes.is_empty() {
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        return Err(ApiError::invalid(&ty.group, &ty.kind, &name, causes));
    }
    Ok(())
}

/// Checks the body's kind/apiVersion and namespace against the path.
fn check_identity(
    ty: &ResourceType,
    version: &str,
    ns: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let api_version = ty.api_version(version);
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != ty.kind => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({api_version})",
                obj.get("apiVersion").and_then(Value::as_str).unwrap_or("")
            )));
        }
        _ => {}
    }
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(ty.kind);
    let meta = meta_mut(obj);
    if ty.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

/// Fills system metadata on a new object and runs type-specific create preparation.
fn prepare_create(app: &App, ty: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let meta = meta_mut(obj);
    let name = match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
            _ => {
                return Err(ApiError::invalid(
                    &ty.group,
                    &ty.kind,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            }
        },
    };
    meta.insert("name".into(), json!(name));
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(app::now_time()));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("resourceVersion");
    if has_generation(ty) {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if ty.status_subresource
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    match (ty.group.as_str(), ty.plural.as_str()) {
        ("", "pods") => {
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            if obj.pointer("/spec/terminationGracePeriodSeconds").is_none()
                && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.insert("terminationGracePeriodSeconds".into(), json!(30));
            }
        }
        ("", "namespaces") => {
            obj["status"] = json!({"phase": "Active"});
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        ("", "serviceaccounts") | ("", "configmaps") | ("", "secrets") => {}
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            crate::crd::register(app, obj)?;
        }
        _ => {}
    }
    Ok(())
}

/// Creates an object (used by POST, by apply-create and internally).
pub fn create_object(
    app: &App,
    group: &str,
    version: &str,
    resource: &str,
    ns: &str,
    obj: Value,
) -> Result<Value, ApiError> {
    let info = RequestInfo {
        verb: "create".into(),
        group: group.into(),
        version: version.into(),
        namespace: ns.into(),
        resource: resource.into(),
        ..Default::default()
    };
    let body = serde_json::to_vec(&obj).unwrap_or_default();
    let query = HashMap::new();
    let call = Call {
        info: &info,
        query: &query,
        body: &body,
        content_type: "application/json",
        accept: "application/json",
        default_manager: "testkit".into(),
    };
    let ty = resolve(app, &info)?;
    let mut warnings = Vec::new();
    create(app, &ty, &call, obj, &mut warnings)
}

fn create(
    app: &App,
    ty: &ResourceType,
    call: &Call<'_>,
    mut obj: Value,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let info = call.info;
    if ty.namespaced && info.namespace.is_empty() {
        return Err(ApiError::path_not_found());
    }
    if ty.namespaced && app.store.get("/namespaces", "", &info.namespace).is_none() {
        return Err(ApiError::not_found("", "namespaces", &info.namespace));
    }
    check_identity(ty, &info.version, &info.namespace, &mut obj)?;
    prepare_create(app, ty, &mut obj)?;
    apply_schema(ty, &info.version, &mut obj, None, call.query, warnings)?;
    {
        let manager = call
            .query
            .get("fieldManager")
            .cloned()
            .unwrap_or_else(|| call.default_manager.clone());
        patch::track_update(None, &mut obj, &manager, "");
    }
    let name = meta_str(&obj, "name").unwrap_or("").to_string();
    let dry_run = call.query.contains_key("dryRun");
    app.store
        .mutate(&ty.key(), &info.namespace, &name, |current| {
            if current.is_some() {
                return Err(ApiError::already_exists(&ty.group, &ty.plural, &name));
            }
            Ok(if dry_run {
                Mutation::Noop(obj)
            } else {
                Mutation::Create(obj)
            })
        })
}

/// The object without `metadata` and `status`: the part whose change bumps generation.
fn spec_part(obj: &Value, with_status: bool) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if with_status {
            m.remove("status");
        }
    }
    o
}

fn without_rv(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    o
}

/// `managedFields` without their times: a write that changes only these times changes nothing,
/// but one that shares or moves ownership (a second manager applying the same value) does.
fn managers(obj: &Value) -> Value {
    let mut entries = obj
        .pointer("/metadata/managedFields")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(list) = entries.as_array_mut() {
        for e in list {
            if let Some(e) = e.as_object_mut() {
                e.remove("time");
            }
        }
    }
    entries
}

/// Turns a proposed new state of an existing object into the stored one (the part shared by
/// PUT, PATCH and the kubelet): system metadata, status subresource rules, generation,
/// schema, and finalization.
#[allow(clippy::too_many_arguments)]
pub fn finish_update(
    ty: &ResourceType,
    version: &str,
    subresource: &str,
    old: &Value,
    mut new: Value,
    query: &HashMap<String, String>,
    manager: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Mutation, ApiError> {
    let name = meta_str(old, "name").unwrap_or("").to_string();
    if subresource == "status" {
        // A status write changes only status.
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        match status {
            Some(s) => merged["status"] = s,
            None => {
                if let Some(o) = merged.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        new = merged;
    } else if ty.status_subresource {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    new["apiVersion"] = old["apiVersion"].clone();
    new["kind"] = old["kind"].clone();
    {
        let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
        let meta = meta_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => {
                    meta.insert(k.into(), v.clone());
                }
                None => {
                    meta.remove(k);
                }
            }
        }
        if !meta.contains_key("managedFields")
            && let Some(mf) = old_meta.get("managedFields")
        {
            meta.insert("managedFields".into(), mf.clone());
        }
        if old_meta.get("deletionTimestamp").is_some() {
            // Finalizers may only be removed from an object being deleted.
            if meta
                .get("finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| {
                    f.iter().any(|x| {
                        !old_meta
                            .get("finalizers")
                            .and_then(Value::as_array)
                            .is_some_and(|o| o.contains(x))
                    })
                })
            {
                return Err(ApiError::invalid(
                    &ty.group,
                    &ty.kind,
                    &name,
                    vec![Cause::invalid(
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                    )],
                ));
            }
        }
    }
    // A status write is validated against the whole schema too, as the real server does.
    apply_schema(ty, version, &mut new, Some(old), query, warnings)?;
    if old.pointer("/metadata/generation").is_some()
        && spec_part(old, ty.status_subresource) != spec_part(&new, ty.status_subresource)
    {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    if let Some(manager) = manager {
        patch::track_update(Some(old), &mut new, manager, subresource);
    }
    if without_rv(old) == without_rv(&new) && managers(old) == managers(&new) {
        return Ok(Mutation::Noop(old.clone()));
    }
    if new.pointer("/metadata/deletionTimestamp").is_some()
        && new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
        && !is_graceful_pod(ty, &new)
    {
        return Ok(Mutation::Delete(new));
    }
    if query.contains_key("dryRun") {
        return Ok(Mutation::Noop(new));
    }
    Ok(Mutation::Update(new))
}

/// A pod still within its grace period (the kubelet simulation or a timer removes it).
pub(crate) fn is_graceful_pod(ty: &ResourceType, obj: &Value) -> bool {
    ty.group.is_empty()
        && ty.plural == "pods"
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|g| g > 0)
}

/// PUT: replaces the object, or creates it where the resource allows create-on-update
/// (`crate::strategy`); the HTTP code says which.
fn update(
    app: &App,
    ty: &ResourceType,
    call: &Call<'_>,
    warnings: &mut Vec<String>,
) -> Result<(u16, Value), ApiError> {
    let info = call.info;
    let mut obj = crate::convert::from_view(ty, decode_body(call)?);
    check_identity(ty, &info.version, &info.namespace, &mut obj)?;
    if meta_str(&obj, "name").is_some_and(|n| n != info.name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta_str(&obj, "name").unwrap_or(""),
            info.name
        )));
    }
    // A uid in the body is a precondition, checked before anything else (also against a
    // missing object: a PUT of a deleted object's last state never recreates it).
    let body_uid = meta_str(&obj, "uid").unwrap_or("").to_string();
    let uid_mismatch = |current: Option<&Value>| {
        let have = current.and_then(|c| meta_str(c, "uid")).unwrap_or("");
        (!body_uid.is_empty() && body_uid != have).then(|| {
            ApiError::precondition_failed(
                &ty.group,
                &ty.plural,
                &info.name,
                &format!("Precondition failed: UID in precondition: {body_uid}, UID in object meta: {have}"),
            )
        })
    };
    let existing = app.store.get(&ty.key(), &info.namespace, &info.name);
    if existing.is_none()
        && let Some(err) = uid_mismatch(None)
    {
        return Err(err);
    }
    if info.subresource.is_empty()
        && crate::strategy::allows_create_on_update(ty)
        && existing.is_none()
    {
        meta_mut(&mut obj).insert("name".into(), json!(info.name));
        let created = create(app, ty, call, obj, warnings)?;
        after_write(app, ty, &created);
        return Ok((201, created));
    }
    let body_rv = meta_str(&obj, "resourceVersion").unwrap_or("").to_string();
    let manager = call
        .query
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| call.default_manager.clone());
    let result = app
        .store
        .mutate(&ty.key(), &info.namespace, &info.name, |current| {
            if let Some(err) = uid_mismatch(current) {
                return Err(err);
            }
            let Some(current) = current else {
                return Err(ApiError::not_found(&ty.group, &ty.plural, &info.name));
            };
            if body_rv.is_empty() {
                if ty.is_custom || ty.plural == "leases" {
                    return Err(ApiError::invalid(
                        &ty.group,
                        &ty.kind,
                        &info.name,
                        vec![Cause::invalid(
                            "metadata.resourceVersion",
                            "Invalid value: 0x0: must be specified for an update",
                        )],
                    ));
                }
            } else if Some(body_rv.as_str()) != meta_str(current, "resourceVersion") {
                return Err(ApiError::conflict(&ty.group, &ty.plural, &info.name));
            }
            finish_update(
                ty,
                &info.version,
                &info.subresource,
                current,
                obj,
                call.query,
                Some(&manager),
                warnings,
            )
        })?;
    after_write(app, ty, &result);
    Ok((200, result))
}

fn apply_patch(
    app: &App,
    ty: &ResourceType,
    call: &Call<'_>,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let info = call.info;
    let ty_patch = PatchType::from_content_type(call.content_type).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{}",
            if ty.is_custom { "" } else { ", application/strategic-merge-patch+json" }
        ))
    })?;
    let target = Target {
        group: &ty.group,
        kind: &ty.kind,
        resource: &ty.plural,
        name: &info.name,
        is_custom: ty.is_custom,
    };
    let force = crate::router::flag(call.query, "force");
    let manager = call.query.get("fieldManager").cloned();
    crate::patch::options::validate(
        ty_patch,
        manager.as_deref(),
        call.query.contains_key("force"),
    )?;
    let manager_or_default = manager
        .clone()
        .unwrap_or_else(|| call.default_manager.clone());
    let existing = app.store.get(&ty.key(), &info.namespace, &info.name);
    if existing.is_none() && ty_patch == PatchType::Apply && info.subresource.is_empty() {
        let mut applied = crate::convert::from_view(
            ty,
            patch::server_side_apply(&target, None, call.body, &manager_or_default, force)?,
        );
        check_identity(ty, &info.version, &info.namespace, &mut applied)?;
        meta_mut(&mut applied).insert("name".into(), json!(info.name));
        prepare_create(app, ty, &mut applied)?;
        apply_schema(ty, &info.version, &mut applied, None, call.query, warnings)?;
        let dry_run = call.query.contains_key("dryRun");
        let created = app
            .store
            .mutate(&ty.key(), &info.namespace, &info.name, |current| {
                if current.is_some() {
                    return Err(ApiError::conflict(&ty.group, &ty.plural, &info.name));
                }
                Ok(if dry_run {
                    Mutation::Noop(applied)
                } else {
                    Mutation::Create(applied)
                })
            })?;
        return Ok(created);
    }
    let result = app
        .store
        .mutate(&ty.key(), &info.namespace, &info.name, |current| {
            let Some(current) = current else {
                return Err(ApiError::not_found(&ty.group, &ty.plural, &info.name));
            };
            // Patches are written against the client's view of the object.
            let view = crate::convert::to_view(ty, current.clone());
            let new = if ty_patch == PatchType::Apply {
                if info.subresource.is_empty() {
                    patch::server_side_apply(
                        &target,
                        Some(&view),
                        call.body,
                        &manager_or_default,
                        force,
                    )?
                } else {
                    patch::server_side_apply_subresource(
                        &target,
                        &view,
                        call.body,
                        &manager_or_default,
                        force,
                        &info.subresource,
                    )?
                }
            } else {
                patch::patch(ty_patch, &target, &view, call.body)?
            };
            let new = crate::convert::from_view(ty, new);
            if meta_str(&new, "resourceVersion")
                .is_some_and(|rv| Some(rv) != meta_str(current, "resourceVersion"))
            {
                return Err(ApiError::conflict(&ty.group, &ty.plural, &info.name));
            }
            let track = if ty_patch == PatchType::Apply {
                None
            } else {
                Some(manager_or_default.as_str())
            };
            finish_update(
                ty,
                &info.version,
                &info.subresource,
                current,
                new,
                call.query,
                track,
                warnings,
            )
        })?;
    after_write(app, ty, &result);
    Ok(result)
}

/// Side effects of a stored write: CRD (re-)registration.
fn after_write(app: &App, ty: &ResourceType, obj: &Value) {
    if ty.plural == "customresourcedefinitions"
        && obj.pointer("/metadata/deletionTimestamp").is_none()
    {
        let mut crd = obj.clone();
        if crate::crd::register(app, &mut crd).is_err() {
            tracing::debug!("updated CRD no longer valid; keeping the served type");
        }
    }
}

/// `DeleteOptions` from the body and the query.
#[derive(Debug, Default)]
struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    precondition_uid: Option<String>,
    precondition_rv: Option<String>,
    orphan_dependents: Option<bool>,
}

fn delete_options(call: &Call<'_>) -> DeleteOptions {
    let body: Value = serde_json::from_slice(call.body).unwrap_or(Value::Null);
    DeleteOptions {
        grace: body
            .get("gracePeriodSeconds")
            .and_then(Value::as_i64)
            .or_else(|| {
                call.query
                    .get("gracePeriodSeconds")
                    .and_then(|g| g.parse().ok())
            }),
        propagation: body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| call.query.get("propagationPolicy").cloned()),
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        orphan_dependents: body.get("orphanDependents").and_then(Value::as_bool),
    }
}

/// A continue token: the last returned key and the list's resourceVersion.
fn encode_continue(ns: &str, name: &str, rv: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"ns": ns, "name": name, "rv": rv}).to_string())
}

fn decode_continue(token: &str) -> Result<((String, String), u64), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid: illegal base64 data");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        (
            v["ns"].as_str().unwrap_or("").to_string(),
            v["name"].as_str().unwrap_or("").to_string(),
        ),
        v["rv"].as_u64().unwrap_or(0),
    ))
}

/// Parsed selectors of a list or watch.
#[derive(Debug, Default, Clone)]
pub struct Selectors {
    /// Labels.
    pub labels: LabelSelector,
    /// Fields.
    pub fields: FieldSelector,
}

impl Selectors {
    /// From the query.
    pub fn parse(query: &HashMap<String, String>, ty: &ResourceType) -> Result<Self, ApiError> {
        let kind = ty.kind.as_str();
        let fields = crate::convert::field_selector(
            ty,
            query.get("fieldSelector").map_or("", String::as_str),
        );
        Ok(Self {
            labels: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?,
            fields: FieldSelector::parse(&fields, kind)?,
        })
    }

    /// Whether `obj` matches both.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

fn list(app: &App, ty: &ResourceType, call: &Call<'_>) -> Result<Value, ApiError> {
    let info = call.info;
    let sel = Selectors::parse(call.query, ty)?;
    let (after, token_rv) = match call.query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (pos, rv) = decode_continue(token)?;
            if app.store.is_compacted(rv) {
                return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            (Some(pos), Some(rv))
        }
        None => (None, None),
    };
    if let Some(rv) = call
        .query
        .get("resourceVersion")
        .and_then(|r| r.parse::<u64>().ok())
        && rv > 0
        && call.query.get("resourceVersionMatch").map(String::as_str) == Some("Exact")
        && app.store.is_compacted(rv)
    {
        return Err(ApiError::gone(format!(
            "too old resource version: {rv} ({})",
            app.store.current_rv()
        )));
    }
    let ns = (!info.namespace.is_empty()).then_some(info.namespace.as_str());
    let limit = call
        .query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let page = app
        .store
        .list_page(&ty.key(), ns, after.as_ref(), |o| sel.matches(o), limit);
    let (rv, remaining) = (page.rv, page.remaining);
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|o| present(o, ty, &info.version))
        .collect();
    let mut cont = None;
    let list_rv = token_rv.unwrap_or(rv);
    if remaining > 0
        && let Some(last) = items.last()
    {
        cont = Some(encode_continue(
            meta_str(last, "namespace").unwrap_or(""),
            meta_str(last, "name").unwrap_or(""),
            list_rv,
        ));
    }
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
        metadata["remainingItemCount"] = json!(remaining);
    }
    Ok(json!({
        "kind": ty.list_kind,
        "apiVersion": ty.api_version(&info.version),
        "metadata": metadata,
        "items": items,
    }))
}

fn self_subject_access_review(
    app: &App,
    user: &crate::rbac::UserInfo,
    call: &Call<'_>,
) -> Result<Value, ApiError> {
    let mut review = decode_body(call)?;
    let ra = review.pointer("/spec/resourceAttributes").cloned();
    let nra = review.pointer("/spec/nonResourceAttributes").cloned();
    let s = |v: &Option<Value>, k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let attrs = crate::rbac::Attributes {
        verb: if ra.is_some() {
            s(&ra, "verb")
        } else {
            s(&nra, "verb")
        },
        api_group: s(&ra, "group"),
        resource: s(&ra, "resource"),
        subresource: s(&ra, "subresource"),
        namespace: s(&ra, "namespace"),
        name: s(&ra, "name"),
        non_resource_path: nra.as_ref().map(|_| s(&nra, "path")),
    };
    let allowed = crate::server::authorized(app, user, &attrs);
    review["status"] = json!({"allowed": allowed});
    if let Some(m) = meta_mut(&mut review).get_mut("creationTimestamp") {
        *m = Value::Null;
    }
    Ok(review)
}

/// Serves one resource request.
pub async fn handle(app: &Arc<App>, call: Call<'_>, user: &crate::rbac::UserInfo) -> Response {
    match handle_inner(app, &call, user).await {
        Ok((code, value, warnings)) => {
            let value = if crate::table::wants_table(call.accept)
                && matches!(call.info.verb.as_str(), "get" | "list")
            {
                let ty = resolve(app, call.info).ok();
                match ty {
                    Some(ty) => crate::table::to_table(&ty, &call.info.version, &value, call.query),
                    None => value,
                }
            } else if crate::table::wants_partial(call.accept) && value.get("metadata").is_some() {
                crate::table::to_partial(&value)
            } else {
                value
            };
            let mut resp = app::json(code, &value);
            for w in warnings {
                if let Ok(v) = http::HeaderValue::from_str(&format!(
                    "299 - \"{}\"",
                    w.replace('\\', "\\\\").replace('"', "\\\"")
                )) {
                    resp.headers_mut().append(http::header::WARNING, v);
                }
            }
            resp
        }
        Err(e) => app::error(&e),
    }
}

async fn handle_inner(
    app: &Arc<App>,
    call: &Call<'_>,
    user: &crate::rbac::UserInfo,
) -> Result<(u16, Value, Vec<String>), ApiError> {
    let info = call.info;
    let ty = resolve(app, info)?;
    let mut warnings = Vec::new();
    if ty.create_only && info.verb != "create" {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let done = |v: Value| present(v, &ty, &info.version);
    if info.subresource == "scale" {
        return Ok((
            200,
            crate::scale::serve(app, &ty, call, call.query)?,
            warnings,
        ));
    }
    match info.verb.as_str() {
        "get" => {
            let obj = app
                .store
                .get(&ty.key(), &info.namespace, &info.name)
                .ok_or_else(|| ApiError::not_found(&ty.group, &ty.plural, &info.name))?;
            Ok((200, done(obj), warnings))
        }
        "list" => Ok((200, list(app, &ty, call)?, warnings)),
        "create" => {
            if ty.plural == "selfsubjectaccessreviews" {
                return Ok((201, self_subject_access_review(app, user, call)?, warnings));
            }
            if let Some(review) = crate::reviews::serve(app, &ty, user, || decode_body(call)) {
                return Ok((201, review?, warnings));
            }
            if !info.name.is_empty() {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            let obj = crate::convert::from_view(&ty, decode_body(call)?);
            let created = create(app, &ty, call, obj, &mut warnings)?;
            after_write(app, &ty, &created);
            Ok((201, done(created), warnings))
        }
        "update" => {
            let (code, v) = update(app, &ty, call, &mut warnings)?;
            Ok((code, done(v), warnings))
        }
        "patch" => {
            let existed = app
                .store
                .get(&ty.key(), &info.namespace, &info.name)
                .is_some();
            let v = apply_patch(app, &ty, call, &mut warnings)?;
            Ok((if existed { 200 } else { 201 }, done(v), warnings))
        }
        "delete" => {
            let opts = delete_options(call);
            let v = crate::delete::delete_object(
                app,
                &ty,
                &info.namespace,
                &info.name,
                opts.grace,
                opts.propagation.as_deref(),
                (
                    opts.precondition_uid.as_deref(),
                    opts.precondition_rv.as_deref(),
                ),
                call.query.contains_key("dryRun"),
            )?;
            let (code, answer) = crate::delete::answer(&ty, v, opts.orphan_dependents);
            let body = match answer {
                crate::delete::Answer::Object(obj) => done(obj),
                crate::delete::Answer::Status(status) => status,
            };
            Ok((code, body, warnings))
        }
        "deletecollection" => {
            let opts = delete_options(call);
            let sel = Selectors::parse(call.query, &ty)?;
            let ns = (!info.namespace.is_empty()).then_some(info.namespace.as_str());
            let (objs, _) = app.store.list(&ty.key(), ns, None);
            let mut items = Vec::new();
            for obj in objs.iter().filter(|o| sel.matches(o)) {
                let ons = meta_str(obj, "namespace").unwrap_or("");
                let name = meta_str(obj, "name").unwrap_or("");
                match crate::delete::delete_object(
                    app,
                    &ty,
                    ons,
                    name,
                    opts.grace,
                    opts.propagation.as_deref(),
                    (None, None),
                    false,
                ) {
                    Ok(v) => items.push(done(v)),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((
                200,
                json!({"kind": ty.list_kind, "apiVersion": ty.api_version(&info.version),
                       "metadata": {"resourceVersion": app.store.current_rv().to_string()}, "items": items}),
                warnings,
            ))
        }
        other => Err(ApiError::method_not_allowed(format!(
            "verb {other} is not supported"
        ))),
    }
}
