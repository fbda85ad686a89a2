//! The committed CRD is what the code generates (STYLE: the CRD is generated, committed and
//! checked).

#[test]
fn committed_crd_matches_generated() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/crd/bases/coordination.kube-zen.io_leaderpolicies.yaml"
    );
    let committed = std::fs::read_to_string(path).expect("read committed CRD");
    let generated = zen_lead::api::crd_yaml().expect("generate CRD");
    assert!(
        committed == generated,
        "{path} is stale: regenerate it with\n  cargo run --bin zen-lead-crdgen > config/crd/bases/coordination.kube-zen.io_leaderpolicies.yaml"
    );
}

#[test]
fn crd_has_the_documented_shape() {
    let crd: serde_json::Value =
        serde_yaml::from_str(&zen_lead::api::crd_yaml().expect("generate CRD")).expect("parse");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "lp");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Leader", "Phase", "Candidates", "Term", "Age"]);
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["leaseDurationSeconds"]["default"], 15);
    assert_eq!(
        spec["x-kubernetes-validations"].as_array().map(Vec::len),
        Some(2)
    );
}

/// Every node of the schema is structural: it has a type (or is int-or-string / preserves
/// unknown fields) and uses no `$ref` (what a kube-apiserver requires of a CRD schema).
fn assert_structural(path: &str, schema: &serde_json::Value) {
    let obj = schema.as_object().expect("schema node is an object");
    assert!(!obj.contains_key("$ref"), "{path}: $ref is not allowed");
    for key in ["anyOf", "oneOf", "allOf", "not"] {
        if let Some(branches) = obj.get(key) {
            // Allowed only as value validation, never introducing types.
            for b in branches.as_array().into_iter().flatten() {
                assert!(b.get("type").is_none(), "{path}: {key} declares types");
            }
        }
    }
    let typed = obj.contains_key("type")
        || obj.contains_key("x-kubernetes-int-or-string")
        || obj.contains_key("x-kubernetes-preserve-unknown-fields");
    assert!(typed, "{path}: no type");
    if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
        for (name, child) in props {
            assert_structural(&format!("{path}.{name}"), child);
        }
    }
    if let Some(items) = obj.get("items") {
        assert_structural(&format!("{path}[]"), items);
    }
}

#[test]
fn crd_schema_is_structural() {
    let crd: serde_json::Value =
        serde_yaml::from_str(&zen_lead::api::crd_yaml().expect("generate CRD")).expect("parse");
    assert_structural(
        "openAPIV3Schema",
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
    );
}

/// The CEL rules in the CRD agree with the library's timing rules on a grid of specs.
#[test]
fn crd_cel_rules_agree_with_the_timing_rules() {
    let crd: serde_json::Value =
        serde_yaml::from_str(&zen_lead::api::crd_yaml().expect("generate CRD")).expect("parse");
    let rules: Vec<cel::Program> = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        ["properties"]["spec"]["x-kubernetes-validations"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| cel::Program::compile(r["rule"].as_str().expect("rule")).expect("valid CEL"))
        .collect();
    for lease in [1, 2, 3, 10, 15, 60] {
        for renew in [1, 2, 3, 5, 10, 14, 15, 20] {
            for retry in [1, 2, 3, 5] {
                let spec = zen_lead::api::LeaderPolicySpec {
                    lease_duration_seconds: lease,
                    renew_deadline_seconds: renew,
                    retry_period_seconds: retry,
                    ..Default::default()
                };
                let mut ctx = cel::Context::default();
                // Bound from the Rust struct, so integers are CEL ints as on an API server.
                ctx.add_variable("self", &spec).expect("bind self");
                let cel_ok = rules
                    .iter()
                    .all(|p| matches!(p.execute(&ctx), Ok(cel::Value::Bool(true))));
                assert_eq!(
                    cel_ok,
                    spec.timing().is_ok(),
                    "lease {lease} renew {renew} retry {retry}"
                );
            }
        }
    }
}
