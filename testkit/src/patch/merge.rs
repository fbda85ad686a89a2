//! RFC 7386 JSON merge patch.

use serde_json::Value;

use crate::errors::ApiError;

/// Applies a merge patch. The body must be a JSON object (anything else cannot yield an
/// object and the real server rejects it with 400).
pub fn apply(current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal non-object merge patch into Go value of type map[string]interface {}",
        ));
    }
    let mut doc = current.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        let cur = json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "spec": {"list": [1, 2], "n": 1}});
        let cases: Vec<(&str, Result<Value, u16>)> = vec![
            (
                r#"{"metadata":{"labels":{"a":null,"c":"3"}}}"#,
                Ok(
                    json!({"metadata": {"name": "x", "labels": {"b": "2", "c": "3"}}, "spec": {"list": [1, 2], "n": 1}}),
                ),
            ),
            (
                r#"{"spec":{"list":[3]}}"#,
                Ok(
                    json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "spec": {"list": [3], "n": 1}}),
                ),
            ),
            (
                r#"{"spec":null}"#,
                Ok(json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}})),
            ),
            (r#"[1]"#, Err(400)),
            (r#"{"#, Err(400)),
        ];
        for (body, want) in cases {
            match (apply(&cur, body.as_bytes()), want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{body}"),
                (Err(e), Err(code)) => assert_eq!(e.code, code, "{body}"),
                (g, w) => panic!("{body}: got {g:?}, want {w:?}"),
            }
        }
    }
}
