//! Deletion: grace periods, finalizers, propagation (ownerReference garbage collection) and
//! namespace contents.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::{self, App};
use crate::errors::ApiError;
use crate::handlers::{meta_mut, meta_str};
use crate::registry::ResourceType;
use crate::store::Mutation;

/// Deletes one object, honouring grace periods, finalizers and propagation.
#[allow(clippy::too_many_arguments)]
pub fn delete_object(
    app: &Arc<App>,
    ty: &ResourceType,
    ns: &str,
    name: &str,
    grace: Option<i64>,
    propagation: Option<&str>,
    preconditions: (Option<&str>, Option<&str>),
    dry_run: bool,
) -> Result<Value, ApiError> {
    let propagation = propagation.unwrap_or("Background").to_string();
    let mut grace_timer = None;
    let result = app.store.mutate(&ty.key(), ns, name, |current| {
        let Some(current) = current else {
            return Err(ApiError::not_found(&ty.group, &ty.plural, name));
        };
        if let Some(uid) = preconditions.0
            && Some(uid) != meta_str(current, "uid")
        {
            return Err(ApiError::conflict(&ty.group, &ty.plural, name));
        }
        if let Some(rv) = preconditions.1
            && Some(rv) != meta_str(current, "resourceVersion")
        {
            return Err(ApiError::conflict(&ty.group, &ty.plural, name));
        }
        let mut obj = current.clone();
        let already = current.pointer("/metadata/deletionTimestamp").is_some();
        let is_pod = ty.group.is_empty() && ty.plural == "pods";
        // Only a pod bound to a (simulated) node and not finished waits for its containers.
        let pod_grace = if is_pod
            && current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
            && !matches!(
                current.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            ) {
            grace
                .or_else(|| {
                    current
                        .pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(30)
        } else {
            0
        };
        let mut finalizers: Vec<Value> = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if propagation == "Foreground"
            && !already
            && !finalizers.contains(&json!("foregroundDeletion"))
        {
            finalizers.push(json!("foregroundDeletion"));
        }
        let meta = meta_mut(&mut obj);
        if !already {
            meta.insert("deletionTimestamp".into(), json!(app::time_in(pod_grace)));
        }
        if is_pod {
            let prev = current
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            let g = prev.map_or(pod_grace, |p| p.min(pod_grace));
            meta.insert("deletionGracePeriodSeconds".into(), json!(g));
            if g > 0 {
                grace_timer = Some(g);
            }
        } else if !already {
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if !finalizers.is_empty() {
            meta.insert("finalizers".into(), Value::Array(finalizers));
        }
        let waits = grace_timer.is_some()
            || obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        Ok(if dry_run {
            Mutation::Noop(obj)
        } else if !waits {
            Mutation::Delete(obj)
        } else if obj == *current {
            Mutation::Noop(obj)
        } else {
            Mutation::Update(obj)
        })
    })?;
    if dry_run {
        return Ok(result);
    }
    if let Some(g) = grace_timer {
        let app2 = app.clone();
        let (key, ns, name) = (ty.key(), ns.to_string(), name.to_string());
        let uid = meta_str(&result, "uid").unwrap_or("").to_string();
        app.tasks.spawn(async move {
            tokio::time::sleep(Duration::from_secs(g as u64)).await;
            finalize_pod(&app2, &key, &ns, &name, &uid);
        });
    }
    let uid = meta_str(&result, "uid").unwrap_or("").to_string();
    if ty.plural == "namespaces" && ty.group.is_empty() {
        delete_namespace_contents(app, name);
        let _ = app.store.mutate(&ty.key(), "", name, |cur| match cur {
            Some(c) => Ok(Mutation::Delete(c.clone())),
            None => Ok(Mutation::Noop(Value::Null)),
        });
    }
    if ty.plural == "customresourcedefinitions"
        && result.pointer("/metadata/deletionTimestamp").is_some()
    {
        crate::crd::remove(app, &result);
    }
    match propagation.as_str() {
        "Orphan" => orphan_dependents(app, &uid),
        "Foreground" => {
            delete_dependents(app, &uid, true);
            finish_foreground(app, ty.key(), ns, name, &uid);
        }
        _ => {
            let app2 = app.clone();
            app.tasks
                .spawn(async move { delete_dependents(&app2, &uid, false) });
        }
    }
    Ok(result)
}

/// Removes a terminating pod (its grace period ran out, or its containers stopped).
pub fn finalize_pod(app: &App, key: &str, ns: &str, name: &str, uid: &str) {
    let _ = app.store.mutate(key, ns, name, |cur| match cur {
        Some(c)
            if c.pointer("/metadata/deletionTimestamp").is_some()
                && meta_str(c, "uid") == Some(uid) =>
        {
            let mut obj = c.clone();
            meta_mut(&mut obj).insert("deletionGracePeriodSeconds".into(), json!(0));
            let pending = obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            Ok(if pending {
                Mutation::Update(obj)
            } else {
                Mutation::Delete(obj)
            })
        }
        _ => Ok(Mutation::Noop(Value::Null)),
    });
}

pub(crate) fn remove_finalizer(
    app: &App,
    key: &str,
    ns: &str,
    name: &str,
    finalizer: &str,
) -> Result<Value, ApiError> {
    app.store.mutate(key, ns, name, |cur| {
        let Some(c) = cur else {
            return Ok(Mutation::Noop(Value::Null));
        };
        let mut obj = c.clone();
        let meta = meta_mut(&mut obj);
        let left: Vec<Value> = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter(|x| x.as_str() != Some(finalizer))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), Value::Array(left.clone()));
        }
        Ok(
            if left.is_empty() && meta.contains_key("deletionTimestamp") {
                Mutation::Delete(obj)
            } else {
                Mutation::Update(obj)
            },
        )
    })
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

fn type_of_key(app: &App, key: &str) -> Option<Arc<ResourceType>> {
    app.registry().by_key(key)
}

/// Background/foreground garbage collection: deletes every dependent of `uid`, recursively.
/// For a foreground owner, a dependent that has dependents itself is deleted in the
/// foreground too, as kube's garbage collector does.
fn delete_dependents(app: &Arc<App>, uid: &str, foreground: bool) {
    if uid.is_empty() {
        return;
    }
    let all = app.store.all_objects();
    for (key, obj) in &all {
        if !owned_by(obj, uid) {
            continue;
        }
        let Some(ty) = type_of_key(app, key) else {
            continue;
        };
        let ns = meta_str(obj, "namespace").unwrap_or("").to_string();
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        let dep_uid = meta_str(obj, "uid").unwrap_or("");
        let policy = if foreground && all.iter().any(|(_, o)| owned_by(o, dep_uid)) {
            "Foreground"
        } else {
            "Background"
        };
        let _ = delete_object(
            app,
            &ty,
            &ns,
            &name,
            None,
            Some(policy),
            (None, None),
            false,
        );
    }
}

/// Whether a dependent of `uid` still blocks its owner's foreground deletion: it exists and
/// its owner reference has `blockOwnerDeletion: true`.
fn has_blocking_dependents(app: &App, uid: &str) -> bool {
    app.store.all_objects().iter().any(|(_, obj)| {
        obj.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter().any(|r| {
                    r.get("uid").and_then(Value::as_str) == Some(uid)
                        && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                })
            })
    })
}

/// Ends a foreground deletion: the owner loses its `foregroundDeletion` finalizer once no
/// blocking dependent is left, now or after the store changes (a dependent's finalizer
/// removed, its owner reference dropped).
fn finish_foreground(app: &Arc<App>, key: String, ns: &str, name: &str, uid: &str) {
    // Subscribed before the first check, so that no change after it is missed.
    let Ok((_, mut changes, _)) = app.store.watch_from(None) else {
        return;
    };
    if !has_blocking_dependents(app, uid) {
        let _ = remove_finalizer(app, &key, ns, name, "foregroundDeletion");
        return;
    }
    // The task holds the app weakly: a dropped server ends it (its store's channel closes).
    let weak = Arc::downgrade(app);
    let (ns, name, uid) = (ns.to_string(), name.to_string(), uid.to_string());
    app.tasks.spawn(async move {
        loop {
            if let Err(tokio::sync::broadcast::error::RecvError::Closed) = changes.recv().await {
                return;
            }
            let Some(app) = weak.upgrade() else { return };
            match app.store.get(&key, &ns, &name) {
                Some(owner) if meta_str(&owner, "uid") == Some(uid.as_str()) => {}
                _ => return,
            }
            if !has_blocking_dependents(&app, &uid) {
                let _ = remove_finalizer(&app, &key, &ns, &name, "foregroundDeletion");
                return;
            }
        }
    });
}

/// Orphan propagation: drops owner references to `uid` from dependents.
fn orphan_dependents(app: &App, uid: &str) {
    for (key, obj) in app.store.all_objects() {
        if !owned_by(&obj, uid) {
            continue;
        }
        let ns = meta_str(&obj, "namespace").unwrap_or("").to_string();
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let _ = app.store.mutate(&key, &ns, &name, |cur| {
            let Some(c) = cur else {
                return Ok(Mutation::Noop(Value::Null));
            };
            let mut o = c.clone();
            if let Some(refs) = o
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            }
            Ok(Mutation::Update(o))
        });
    }
}

fn delete_namespace_contents(app: &Arc<App>, ns: &str) {
    for (key, name) in app.store.names_in_namespace(ns) {
        let _ = app.store.mutate(&key, ns, &name, |cur| match cur {
            Some(c) => Ok(Mutation::Delete(c.clone())),
            None => Ok(Mutation::Noop(Value::Null)),
        });
    }
}

/// What a DELETE answers with.
#[derive(Debug)]
pub enum Answer {
    /// The object: still there (finalizers, grace period), or a kind that returns it.
    Object(Value),
    /// A `Status` naming the object that is gone.
    Status(Value),
}

/// kube-apiserver's answer to a DELETE that produced `result` (the object as the delete left
/// it): the object while finalizers hold it, else a `Status` with its name, group, resource
/// and uid, except for the kinds that return the deleted object. The code is 200 either way;
/// 202 only for a lingering object when the (deprecated) `orphanDependents: false` was sent.
pub fn answer(ty: &ResourceType, result: Value, orphan_dependents: Option<bool>) -> (u16, Answer) {
    let held = result
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
        || crate::handlers::is_graceful_pod(ty, &result);
    let code = if held && orphan_dependents == Some(false) {
        202
    } else {
        200
    };
    if held || crate::strategy::returns_deleted_object(ty) {
        return (code, Answer::Object(result));
    }
    let mut details = serde_json::Map::new();
    details.insert(
        "name".into(),
        json!(meta_str(&result, "name").unwrap_or("")),
    );
    if !ty.group.is_empty() {
        details.insert("group".into(), json!(ty.group));
    }
    // kube-apiserver puts the resource, not the kind, in `details.kind`.
    details.insert("kind".into(), json!(ty.plural));
    details.insert("uid".into(), json!(meta_str(&result, "uid").unwrap_or("")));
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    });
    (code, Answer::Status(status))
}
