//! Server-side apply: ownership, conflicts, force, removal, and interplay with Update managers.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use serde_json::{Value, json};
use zen_lead_testkit::patch::{Target, server_side_apply, track_update};

fn cm() -> Target<'static> {
    Target {
        group: "",
        kind: "ConfigMap",
        resource: "configmaps",
        name: "c",
        is_custom: false,
    }
}

fn apply(
    current: Option<&Value>,
    body: &str,
    manager: &str,
    force: bool,
) -> Result<Value, zen_lead_testkit::errors::ApiError> {
    server_side_apply(&cm(), current, body.as_bytes(), manager, force)
}

/// An apply body for the ConfigMap `c` with just `data`, in the compact JSON kubectl sends.
fn cm_data(data: Value) -> String {
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c"}},"data":{data}}}"#)
}

fn owned(obj: &Value, manager: &str, operation: &str) -> Option<Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .map(|e| e["fieldsV1"].clone())
}

const V1: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n    app: x\ndata:\n  a: \"1\"\n  b: \"2\"\n";

#[test]
fn create_from_yaml_records_apply_ownership() {
    let obj = apply(None, V1, "kubectl", false).unwrap();
    assert_eq!(obj["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(obj["metadata"]["name"], "c");
    assert_eq!(
        owned(&obj, "kubectl", "Apply").unwrap(),
        json!({"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
    );
    let entry = &obj["metadata"]["managedFields"][0];
    assert_eq!(entry["apiVersion"], "v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
}

#[test]
fn reapply_removes_fields_no_longer_applied() {
    let v1 = apply(None, V1, "kubectl", false).unwrap();
    let v2 = apply(Some(&v1), &cm_data(json!({"a": "9"})), "kubectl", false).unwrap();
    assert_eq!(v2["data"], json!({"a": "9"}));
    assert!(v2["metadata"].get("labels").is_none(), "{v2}");
}

#[test]
fn other_manager_same_value_shares_and_keeps_field_alive() {
    let v1 = apply(None, V1, "a", false).unwrap();
    let v2 = apply(Some(&v1), &cm_data(json!({"b": "2"})), "b", false).unwrap();
    assert_eq!(
        owned(&v2, "b", "Apply").unwrap(),
        json!({"f:data": {"f:b": {}}})
    );
    assert!(
        owned(&v2, "a", "Apply").unwrap()["f:data"]
            .get("f:b")
            .is_some(),
        "shared ownership"
    );
    // a stops applying b: b stays, since manager b still owns it.
    let v3 = apply(Some(&v2), &cm_data(json!({"a": "1"})), "a", false).unwrap();
    assert_eq!(v3["data"], json!({"a": "1", "b": "2"}));
}

#[test]
fn conflict_is_409_with_kube_shape_and_force_moves_ownership() {
    let v1 = apply(None, V1, "a", false).unwrap();
    let body = &cm_data(json!({"a": "changed"}));
    let err = apply(Some(&v1), body, "b", false).unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "a": .data.a"#
    );
    assert_eq!(err.causes.len(), 1);
    assert_eq!(err.causes[0].reason, "FieldManagerConflict");
    assert_eq!(err.causes[0].message, r#"conflict with "a""#);
    assert_eq!(err.causes[0].field, ".data.a");

    let forced = apply(Some(&v1), body, "b", true).unwrap();
    assert_eq!(forced["data"]["a"], "changed");
    assert_eq!(
        owned(&forced, "b", "Apply").unwrap(),
        json!({"f:data": {"f:a": {}}})
    );
    let a = owned(&forced, "a", "Apply").unwrap();
    assert!(a["f:data"].get("f:a").is_none(), "{a}");
    assert!(a["f:data"].get("f:b").is_some());
}

#[test]
fn multiple_conflicts_are_grouped_by_manager() {
    let v1 = apply(None, V1, "a", false).unwrap();
    let err = apply(Some(&v1), r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"app":"y"}},"data":{"a":"x"}}"#, "b", false).unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .data.a\n- .metadata.labels.app"
    );
}

#[test]
fn conflicts_with_update_managers_name_their_api_version() {
    let mut v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    track_update(None, &mut v1, "kubectl-edit", "");
    let err = apply(Some(&v1), &cm_data(json!({"a": "2"})), "ssa", false).unwrap_err();
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .data.a"#
    );
}

#[test]
fn untracked_objects_belong_to_before_first_apply() {
    let v1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let err = apply(Some(&v1), &cm_data(json!({"a": "2"})), "ssa", false).unwrap_err();
    assert_eq!(
        err.causes[0].message,
        r#"conflict with "before-first-apply" using v1"#
    );
}

#[test]
fn associative_lists_merge_by_key_between_managers() {
    let target = Target {
        group: "apps",
        kind: "Deployment",
        resource: "deployments",
        name: "d",
        is_custom: false,
    };
    let a = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","finalizers":["x/a"]},"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:1"}]}}}}"#;
    let v1 = server_side_apply(&target, None, a.as_bytes(), "a", false).unwrap();
    let b = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","finalizers":["x/b"]},"spec":{"template":{"spec":{"containers":[{"name":"side","image":"side:1"}]}}}}"#;
    let v2 = server_side_apply(&target, Some(&v1), b.as_bytes(), "b", false).unwrap();
    let names: Vec<&str> = v2["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["app", "side"]);
    assert_eq!(v2["metadata"]["finalizers"], json!(["x/a", "x/b"]));
    assert_eq!(
        owned(&v2, "b", "Apply").unwrap()["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"side\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );
    // a drops its container: it goes, b's stays.
    let a2 = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","finalizers":["x/a"]}}"#;
    let v3 = server_side_apply(&target, Some(&v2), a2.as_bytes(), "a", false).unwrap();
    assert_eq!(
        v3["spec"]["template"]["spec"]["containers"],
        json!([{"name": "side", "image": "side:1"}])
    );
}

#[test]
fn bad_requests() {
    let cases = [
        ("{not yaml: [", 400),
        ("- 1\n- 2\n", 400),
        (
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"c"}}"#,
            400,
        ),
        (
            r#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
            400,
        ),
        (
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}"#,
            400,
        ),
        (r#"{"metadata":{"name":"c"}}"#, 400),
    ];
    for (body, code) in cases {
        let err = apply(None, body, "m", false).unwrap_err();
        assert_eq!(err.code, code, "{body}: {err}");
    }
    let err = apply(
        None,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}"#,
        "m",
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "the name of the object (other) does not match the name on the URL (c)"
    );
}

#[test]
fn identical_reapply_returns_the_object_unchanged() {
    let v1 = apply(None, V1, "kubectl", false).unwrap();
    let mut stored = v1.clone();
    stored["metadata"]["resourceVersion"] = json!("5");
    let again = apply(Some(&stored), V1, "kubectl", false).unwrap();
    assert_eq!(again, stored);
    // A changed value is not a no-op.
    let changed = apply(
        Some(&stored),
        &V1.replace("\"1\"", "\"7\""),
        "kubectl",
        false,
    )
    .unwrap();
    assert_eq!(changed["data"]["a"], "7");
}

#[test]
fn resource_version_in_the_body_is_kept_for_the_precondition_check() {
    let v1 = apply(None, V1, "kubectl", false).unwrap();
    let mut stored = v1.clone();
    stored["metadata"]["resourceVersion"] = json!("5");
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","resourceVersion":"4"},"data":{"a":"1","b":"2"}}"#;
    let out = apply(Some(&stored), body, "kubectl", false).unwrap();
    assert_eq!(out["metadata"]["resourceVersion"], "4");
}

#[test]
fn status_apply_is_recorded_with_its_subresource_and_conflicts_name_it() {
    use zen_lead_testkit::patch::server_side_apply_subresource;
    let target = Target {
        group: "g",
        kind: "K",
        resource: "ks",
        name: "n",
        is_custom: true,
    };
    let v1 =
        json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"x": 1}});
    let body =
        r#"{"apiVersion":"g/v1","kind":"K","metadata":{"name":"n"},"status":{"phase":"Stable"}}"#;
    let v2 =
        server_side_apply_subresource(&target, &v1, body.as_bytes(), "controller", false, "status")
            .unwrap();
    let entry = v2["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "controller")
        .unwrap()
        .clone();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:phase": {}}}));
    let other =
        r#"{"apiVersion":"g/v1","kind":"K","metadata":{"name":"n"},"status":{"phase":"Electing"}}"#;
    let err =
        server_side_apply_subresource(&target, &v2, other.as_bytes(), "other", false, "status")
            .unwrap_err();
    assert_eq!(
        err.causes[0].message,
        r#"conflict with "controller" with subresource "status""#
    );
}
