//! Schema semantics of a LeaderPolicy-like CRD: defaults, pruning, validation and CEL.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use zen_lead_testkit::schema::Schema;

fn leader_policy_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "default": {},
                "properties": {
                    "leaseDurationSeconds": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 3600, "default": 15},
                    "renewDeadlineSeconds": {"type": "integer", "format": "int32", "minimum": 1, "default": 10},
                    "retryPeriodSeconds": {"type": "integer", "format": "int32", "minimum": 1, "default": 2},
                    "identityStrategy": {"type": "string", "enum": ["pod", "custom"], "default": "pod"},
                    "followerMode": {"type": "string", "enum": ["standby", "scaleDown"], "default": "standby"}
                },
                "x-kubernetes-validations": [
                    {"rule": "self.renewDeadlineSeconds < self.leaseDurationSeconds",
                     "message": "renewDeadlineSeconds must be less than leaseDurationSeconds"},
                    {"rule": "double(self.renewDeadlineSeconds) > 1.2 * double(self.retryPeriodSeconds)",
                     "message": "renewDeadlineSeconds must be greater than 1.2 * retryPeriodSeconds"}
                ]
            },
            "status": {
                "type": "object",
                "properties": {
                    "phase": {"type": "string"},
                    "term": {"type": "integer"},
                    "conditions": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["type"],
                        "items": {"type": "object", "required": ["type", "status"], "properties": {
                            "type": {"type": "string"}, "status": {"type": "string"}}}}
                },
                "x-kubernetes-validations": [
                    {"rule": "!has(oldSelf.term) || !has(self.term) || self.term >= oldSelf.term",
                     "message": "term must not decrease", "reason": "FieldValueForbidden"}
                ]
            }
        }
    })
}

/// The cause apiextensions adds when a type or enum error kept the CEL rules from running.
const BLOCKED: &str = "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// (reason, field, message) of one expected cause.
type Expected<'a> = (&'a str, &'a str, &'a str);

fn lp(spec: Value) -> Value {
    json!({"apiVersion": "coordination.kube-zen.io/v1alpha1", "kind": "LeaderPolicy",
           "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
}

/// (reason, field, message) of each cause `schema` finds in `obj`.
fn causes(schema: &Schema, obj: &Value, old: Option<&Value>) -> Vec<(String, String, String)> {
    schema
        .validate(obj, old)
        .into_iter()
        .map(|c| (c.reason, c.field, c.message))
        .collect()
}

/// Defaults, prunes and validates like the real create path.
fn admit(
    schema: &Schema,
    mut obj: Value,
    old: Option<&Value>,
) -> (Value, Vec<(String, String, String)>) {
    schema.prune(&mut obj);
    schema.apply_defaults(&mut obj);
    let causes = causes(schema, &obj, old);
    (obj, causes)
}

#[test]
fn empty_spec_gets_all_defaults_and_passes_cel() {
    let schema = Schema::compile(&leader_policy_schema()).unwrap();
    let (obj, causes) = admit(
        &schema,
        json!({"apiVersion": "x/v1", "kind": "LeaderPolicy", "metadata": {"name": "p"}}),
        None,
    );
    assert_eq!(causes, vec![]);
    assert_eq!(
        obj["spec"],
        json!({"leaseDurationSeconds": 15, "renewDeadlineSeconds": 10, "retryPeriodSeconds": 2,
               "identityStrategy": "pod", "followerMode": "standby"})
    );
}

#[test]
fn validation_table() {
    let schema = Schema::compile(&leader_policy_schema()).unwrap();
    let inv = "FieldValueInvalid";
    let cases: Vec<(Value, Vec<Expected>)> = vec![
        (
            json!({"leaseDurationSeconds": 30, "renewDeadlineSeconds": 20, "retryPeriodSeconds": 5}),
            vec![],
        ),
        (
            json!({"leaseDurationSeconds": 3601, "renewDeadlineSeconds": 20, "retryPeriodSeconds": 2}),
            vec![(
                inv,
                "spec.leaseDurationSeconds",
                "Invalid value: 3601: spec.leaseDurationSeconds in body should be less than or equal to 3600",
            )],
        ),
        (
            // Only renewDeadline given: the rule compares it with the defaulted leaseDuration.
            json!({"renewDeadlineSeconds": 15}),
            vec![(
                inv,
                "spec",
                "Invalid value: \"object\": renewDeadlineSeconds must be less than leaseDurationSeconds",
            )],
        ),
        (
            json!({"renewDeadlineSeconds": 2, "retryPeriodSeconds": 2}),
            vec![(
                inv,
                "spec",
                "Invalid value: \"object\": renewDeadlineSeconds must be greater than 1.2 * retryPeriodSeconds",
            )],
        ),
        (
            // The enum error blocks the CEL rules (which would fail too), and says so.
            json!({"identityStrategy": "x", "renewDeadlineSeconds": 20}),
            vec![
                (
                    "FieldValueNotSupported",
                    "spec.identityStrategy",
                    "Unsupported value: \"x\": supported values: \"pod\", \"custom\"",
                ),
                (inv, "<nil>", BLOCKED),
            ],
        ),
        (
            // A range error does not block them.
            json!({"leaseDurationSeconds": 0, "renewDeadlineSeconds": 5}),
            vec![
                (
                    inv,
                    "spec.leaseDurationSeconds",
                    "Invalid value: 0: spec.leaseDurationSeconds in body should be greater than or equal to 1",
                ),
                (
                    inv,
                    "spec",
                    "Invalid value: \"object\": renewDeadlineSeconds must be less than leaseDurationSeconds",
                ),
            ],
        ),
    ];
    for (spec, want) in cases {
        let (_, got) = admit(&schema, lp(spec.clone()), None);
        let want: Vec<(String, String, String)> = want
            .into_iter()
            .map(|(r, f, m)| (r.to_string(), f.to_string(), m.to_string()))
            .collect();
        assert_eq!(got, want, "{spec}");
    }
}

#[test]
fn unknown_fields_are_pruned_and_reported() {
    let schema = Schema::compile(&leader_policy_schema()).unwrap();
    let mut obj = lp(json!({"leaseDurationSeconds": 20, "bogus": 1}));
    obj["extra"] = json!(true);
    let mut dropped = schema.prune(&mut obj);
    dropped.sort();
    assert_eq!(dropped, vec!["extra", "spec.bogus"]);
    assert_eq!(obj["spec"], json!({"leaseDurationSeconds": 20}));
    assert_eq!(obj["metadata"]["name"], "p");
}

#[test]
fn transition_rule_runs_only_on_update() {
    let schema = Schema::compile(&leader_policy_schema()).unwrap();
    let mut old = lp(json!({}));
    old["status"] = json!({"term": 5});
    let mut new = old.clone();
    new["status"]["term"] = json!(4);
    let (_, create) = admit(&schema, new.clone(), None);
    assert_eq!(create, vec![]);
    let (_, update) = admit(&schema, new, Some(&old));
    assert_eq!(
        update,
        vec![(
            "FieldValueForbidden".into(),
            "status".into(),
            "Forbidden: term must not decrease".into()
        )]
    );
    let mut up = old.clone();
    up["status"]["term"] = json!(6);
    assert_eq!(admit(&schema, up, Some(&old)).1, vec![]);
}

#[test]
fn list_items_are_validated_with_index_paths() {
    let schema = Schema::compile(&leader_policy_schema()).unwrap();
    let mut obj = lp(json!({}));
    obj["status"] =
        json!({"conditions": [{"type": "Valid", "status": "True"}, {"type": "LeaderElected"}]});
    let (_, causes) = admit(&schema, obj, None);
    assert_eq!(
        causes,
        vec![(
            "FieldValueRequired".into(),
            "status.conditions[1].status".into(),
            "Required value".into()
        )]
    );
}

#[test]
fn cel_message_expression_field_path_and_errors() {
    let schema = Schema::compile(&json!({"type": "object", "properties": {"spec": {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "r": {"type": "number"}, "s": {"type": "string"}},
    "x-kubernetes-validations": [
        {"rule": "self.a > 1", "messageExpression": "'a is ' + string(self.a)", "fieldPath": ".a"},
        {"rule": "!has(self.s) || size(self.s) < 3"},
        {"rule": "self.r < 2.0", "reason": "FieldValueForbidden", "message": "r too big"}
    ]}}}))
    .unwrap();
    let causes = causes(
        &schema,
        &json!({"spec": {"a": 1, "r": 3, "s": "abcd"}}),
        None,
    );
    assert_eq!(
        causes,
        vec![
            (
                "FieldValueInvalid".into(),
                "spec.a".into(),
                "Invalid value: \"object\": a is 1".into()
            ),
            (
                "FieldValueInvalid".into(),
                "spec".into(),
                "Invalid value: \"object\": failed rule: !has(self.s) || size(self.s) < 3".into()
            ),
            (
                "FieldValueForbidden".into(),
                "spec".into(),
                "Forbidden: r too big".into()
            ),
        ]
    );
    // A missing field the rule reads is an evaluation error, reported at the rule's node.
    let causes = schema.validate(&json!({"spec": {"r": 1}}), None);
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, "spec");
    assert_eq!(
        causes[0].message,
        "Invalid value: \"object\": no such key: a evaluating rule: self.a > 1"
    );
}

#[test]
fn compile_rejects_bad_rules_and_patterns() {
    let bad_rule = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.a <"}]}}});
    let err = Schema::compile(&bad_rule).unwrap_err();
    assert!(
        err.starts_with("openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"),
        "{err}"
    );
    let bad_pattern =
        json!({"type": "object", "properties": {"s": {"type": "string", "pattern": "(["}}});
    assert!(Schema::compile(&bad_pattern).is_err());
    assert!(Schema::compile(&json!("nope")).is_err());
}

/// The product's own CRD (config/crd/bases), as the testkit serves it.
fn repo_crd_schema() -> Schema {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/crd/bases/coordination.kube-zen.io_leaderpolicies.yaml");
    let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Schema::compile(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]).unwrap()
}

#[test]
fn repo_leader_policy_crd_defaults_validates_and_runs_its_cel_rules() {
    let schema = repo_crd_schema();
    let (obj, causes) = admit(&schema, lp(json!({})), None);
    assert_eq!(causes, vec![]);
    assert_eq!(obj["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(obj["spec"]["renewDeadlineSeconds"], 10);
    assert_eq!(obj["spec"]["retryPeriodSeconds"], 2);
    assert_eq!(obj["spec"]["identityStrategy"], "pod");
    assert_eq!(obj["spec"]["followerMode"], "standby");

    let fields = |spec: Value| -> Vec<(String, String)> {
        admit(&schema, lp(spec), None)
            .1
            .into_iter()
            .map(|(reason, field, _)| (reason, field))
            .collect()
    };
    let inv = |f: &str| ("FieldValueInvalid".to_string(), f.to_string());
    assert_eq!(
        fields(json!({"leaseDurationSeconds": 0})),
        // The defaulted renewDeadline (10) is then not below it: the CEL rule fails as well.
        vec![inv("spec.leaseDurationSeconds"), inv("spec")]
    );
    assert_eq!(
        fields(json!({"leaseDurationSeconds": 3601})),
        vec![inv("spec.leaseDurationSeconds")]
    );
    // renewDeadline >= leaseDuration (the defaulted 15) breaks the first CEL rule.
    assert_eq!(
        fields(json!({"renewDeadlineSeconds": 15})),
        vec![inv("spec")]
    );
    // renewDeadline 2 <= 1.2 x retryPeriod 2 breaks the second.
    assert_eq!(
        fields(json!({"renewDeadlineSeconds": 2})),
        vec![inv("spec")]
    );
    assert_eq!(
        fields(json!({"identityStrategy": "x"})),
        vec![
            (
                "FieldValueNotSupported".into(),
                "spec.identityStrategy".into()
            ),
            inv("<nil>")
        ]
    );
    let missing_spec = admit(
        &schema,
        json!({"apiVersion": "coordination.kube-zen.io/v1alpha1",
        "kind": "LeaderPolicy", "metadata": {"name": "p"}}),
        None,
    )
    .1;
    assert_eq!(
        missing_spec,
        vec![(
            "FieldValueRequired".into(),
            "spec".into(),
            "Required value".into()
        )]
    );

    // A status as the controller writes it passes, nulls included.
    let mut obj = lp(json!({}));
    obj["status"] = json!({"phase": "Stable", "term": 3, "candidates": 2, "readyCandidates": 2,
        "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z",
        "currentHolder": {"name": "a", "uid": "u", "identity": "a", "since": null, "renewer": "self"},
        "conditions": [{"type": "LeaderElected", "status": "True", "reason": "LeaderActive",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    assert_eq!(admit(&schema, obj.clone(), None).1, vec![]);
    obj["status"]["phase"] = json!("Leading");
    assert_eq!(
        admit(&schema, obj, None).1,
        vec![
            (
                "FieldValueNotSupported".into(),
                "status.phase".into(),
                "Unsupported value: \"Leading\": supported values: \"Electing\", \"Stable\"".into()
            ),
            ("FieldValueInvalid".into(), "<nil>".into(), BLOCKED.into())
        ]
    );
}

#[test]
fn list_map_and_set_duplicates_are_rejected() {
    let schema = Schema::compile(&json!({"type": "object", "properties": {"status": {"type": "object", "properties": {
        "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
    }}}}))
    .unwrap();
    let causes = causes(
        &schema,
        &json!({"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "A", "status": "False"}],
                           "tags": ["x", "y", "x"]}}),
        None,
    );
    assert_eq!(
        causes,
        vec![
            (
                "FieldValueDuplicate".into(),
                "status.conditions[1]".into(),
                "Duplicate value: map[string]interface {}{\"type\":\"A\"}".into()
            ),
            (
                "FieldValueDuplicate".into(),
                "status.tags[2]".into(),
                "Duplicate value: \"x\"".into()
            ),
        ]
    );
}
