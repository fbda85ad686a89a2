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
