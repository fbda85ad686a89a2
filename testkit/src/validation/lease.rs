//! `coordination.k8s.io/v1` Lease spec rules (kube's `ValidateLeaseSpec`).

use serde_json::Value;

use crate::errors::Cause;

/// The only coordinated-election strategy kube-apiserver knows.
const STRATEGIES: &[&str] = &["OldestEmulationVersion"];

/// The causes of an invalid Lease spec.
pub fn spec_causes(lease: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(spec) = lease.get("spec") else {
        return causes;
    };
    if let Some(d) = spec.get("leaseDurationSeconds").and_then(Value::as_i64)
        && d <= 0
    {
        causes.push(Cause::invalid(
            "spec.leaseDurationSeconds",
            format!("Invalid value: {d}: must be greater than 0"),
        ));
    }
    if let Some(t) = spec.get("leaseTransitions").and_then(Value::as_i64)
        && t < 0
    {
        causes.push(Cause::invalid(
            "spec.leaseTransitions",
            format!("Invalid value: {t}: must be greater than or equal to 0"),
        ));
    }
    let strategy = spec.get("strategy").and_then(Value::as_str).unwrap_or("");
    if !strategy.is_empty() && !STRATEGIES.contains(&strategy) {
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {strategy:?}: supported values: \"OldestEmulationVersion\""
            ),
            field: "spec.strategy".into(),
        });
    }
    let preferred = spec
        .get("preferredHolder")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !preferred.is_empty() && strategy.is_empty() {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: may only be specified if `strategy` is defined".into(),
            field: "spec.preferredHolder".into(),
        });
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        for (spec, fields) in [
            (
                json!({"leaseDurationSeconds": 15, "leaseTransitions": 0}),
                vec![],
            ),
            (
                json!({"leaseDurationSeconds": 0}),
                vec!["spec.leaseDurationSeconds"],
            ),
            (
                json!({"leaseTransitions": -1}),
                vec!["spec.leaseTransitions"],
            ),
            (
                json!({"preferredHolder": "a"}),
                vec!["spec.preferredHolder"],
            ),
            (json!({"strategy": "Newest"}), vec!["spec.strategy"]),
        ] {
            let got: Vec<String> = spec_causes(&json!({"spec": spec}))
                .into_iter()
                .map(|c| c.field)
                .collect();
            assert_eq!(got, fields, "{spec}");
        }
    }
}
