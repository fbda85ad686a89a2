//! RFC 6902 JSON patch, with kube-apiserver's error shapes.

use serde_json::Value;

use crate::errors::ApiError;

/// Applies a JSON patch document. An undecodable patch is 400 `BadRequest`; an operation that
/// fails (a `test`, a missing path) is 422 `Invalid` with the generic message, as
/// kube-apiserver's `NewGenericServerResponse` renders it.
pub fn apply(current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let ops: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    // Like evanphx/json-patch, an operation that cannot be made sense of fails when it is
    // applied (422), not when the patch is decoded.
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(
        ops.iter().cloned().map(Value::Object).collect(),
    ))
    .map_err(|e| {
        let unknown = ops
            .iter()
            .map(|o| o.get("op").and_then(Value::as_str).unwrap_or(""))
            .find(|op| !matches!(*op, "add" | "remove" | "replace" | "move" | "copy" | "test"));
        match unknown {
            Some(op) => rejected(format!("Unexpected kind: {op}")),
            None => rejected(e.to_string()),
        }
    })?;
    let mut doc = current.clone();
    json_patch::patch(&mut doc, &patch).map_err(|e| rejected(e.to_string()))?;
    Ok(doc)
}

/// kube-apiserver's `NewGenericServerResponse(422, ...)`: only the generic message; the
/// server drops the failure's text (it is kept here in a debug log).
fn rejected(detail: String) -> ApiError {
    tracing::debug!(%detail, "JSON patch rejected");
    let mut err = ApiError::invalid("", "", "", Vec::new());
    err.message = "the server rejected our request due to an error in our request".into();
    err.name = None;
    err.kind = None;
    err.group = None;
    err
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        let cur = json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"n": 1}});
        // (patch, Ok(expected) | Err(code))
        let cases: Vec<(&str, Result<Value, u16>)> = vec![
            (
                r#"[{"op":"replace","path":"/spec/n","value":2}]"#,
                Ok(json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"n": 2}})),
            ),
            (
                r#"[{"op":"add","path":"/metadata/labels/b","value":"2"},{"op":"remove","path":"/metadata/labels/a"}]"#,
                Ok(json!({"metadata": {"name": "x", "labels": {"b": "2"}}, "spec": {"n": 1}})),
            ),
            (
                r#"[{"op":"test","path":"/spec/n","value":1},{"op":"replace","path":"/spec/n","value":3}]"#,
                Ok(json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"n": 3}})),
            ),
            (r#"[{"op":"test","path":"/spec/n","value":9}]"#, Err(422)),
            (r#"[{"op":"remove","path":"/spec/missing"}]"#, Err(422)),
            (r#"{"op":"remove"}"#, Err(400)),
            (r#"[{"op":"frobnicate","path":"/a"}]"#, Err(422)),
            (r#"[{"op":"add","path":"/a"}]"#, Err(422)),
            ("not json", Err(400)),
        ];
        for (body, want) in cases {
            let got = apply(&cur, body.as_bytes());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{body}"),
                (Err(e), Err(code)) => assert_eq!(e.code, code, "{body}: {e}"),
                (g, w) => panic!("{body}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn failed_test_has_kube_shape() {
        let err = apply(
            &json!({"a": 1}),
            br#"[{"op":"test","path":"/a","value":2}]"#,
        )
        .unwrap_err();
        assert_eq!(err.reason, "Invalid");
        assert_eq!(
            err.message,
            "the server rejected our request due to an error in our request"
        );
        assert!(err.causes.is_empty());
        assert_eq!(err.to_status().get("details"), None);
    }
}
