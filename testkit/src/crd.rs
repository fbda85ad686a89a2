//! CustomResourceDefinitions: serving the resource a CRD defines, and removing it.

use serde_json::{Value, json};

use crate::app::{self, App};
use crate::errors::{ApiError, Cause};
use crate::handlers::meta_str;
use crate::registry;
use crate::store::Mutation;

/// Serves the resource a CRD defines and fills the CRD's status.
pub fn register(app: &App, crd: &mut Value) -> Result<(), ApiError> {
    let name = meta_str(crd, "name").unwrap_or("").to_string();
    let ty = registry::from_crd(crd).map_err(|e| {
        ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            vec![schema_cause(&e)],
        )
    })?;
    let expected = format!("{}.{}", ty.plural, ty.group);
    if name != expected {
        return Err(ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            vec![Cause::invalid(
                "metadata.name",
                format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
            )],
        ));
    }
    let now = app::now_time();
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    crd["status"] = json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(json!({})),
        "storedVersions": stored,
    });
    app.registry_mut().insert(ty);
    Ok(())
}

/// Stops serving a deleted CRD's resource and deletes its objects.
pub fn remove(app: &App, crd: &Value) {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let key = format!("{group}/{plural}");
    for (ns, name) in app.store.names_of(&key) {
        let _ = app.store.mutate(&key, &ns, &name, |cur| match cur {
            Some(c) => Ok(Mutation::Delete(c.clone())),
            None => Ok(Mutation::Noop(Value::Null)),
        });
    }
    app.registry_mut().remove(&key);
    let name = meta_str(crd, "name").unwrap_or("").to_string();
    let _ = crate::delete::remove_finalizer(
        app,
        "apiextensions.k8s.io/customresourcedefinitions",
        "",
        &name,
        "customresourcecleanup.apiextensions.k8s.io",
    );
}

/// A CRD problem (`field: Kind of error: detail`, or a bare message about `spec`) as a cause.
fn schema_cause(problem: &str) -> Cause {
    let Some((field, message)) = problem.split_once(": ").filter(|(f, _)| !f.contains(' ')) else {
        return Cause::invalid("spec", problem);
    };
    let reason = match message.split(':').next().unwrap_or("") {
        "Required value" => "FieldValueRequired",
        "Forbidden" => "FieldValueForbidden",
        "Unsupported value" => "FieldValueNotSupported",
        _ => "FieldValueInvalid",
    };
    Cause {
        reason: reason.into(),
        message: message.into(),
        field: field.into(),
    }
}
