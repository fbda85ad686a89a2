//! `x-kubernetes-validations`: CEL rules, evaluated with the `cel` crate.
//!
//! `self` is bound to the value at the rule's schema node, with integers as CEL `int` and
//! `type: number` values as `double`, as on Kubernetes; `oldSelf` is bound on update for
//! transition rules, which are skipped when there is no old value to correlate.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program};
use serde_json::Value;

use super::{node, validate::go_value};
use crate::errors::Cause;

/// One compiled rule.
#[derive(Clone)]
pub struct Rule {
    /// The rule source.
    pub rule: String,
    program: Arc<Program>,
    message: Option<String>,
    message_expression: Option<Arc<Program>>,
    field_path: Option<String>,
    reason: Option<String>,
    transition: bool,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule").field("rule", &self.rule).finish()
    }
}

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    Arc::clone(ENV.get_or_init(|| {
        // Kubernetes' CEL environment includes the strings, lists and math extensions.
        let mut env = Env::stdlib();
        for ext in [
            cel::extensions::strings as fn(&mut Env) -> Result<(), cel::DeclarationError>,
            cel::extensions::lists,
            cel::extensions::math,
        ] {
            if let Err(error) = env.add_extension(ext) {
                tracing::debug!(%error, "CEL extension not added");
            }
        }
        Arc::new(env)
    }))
}

/// Compiles every rule under `schema` into `out`, keyed by schema JSON pointer.
pub fn compile_all(
    schema: &Value,
    pointer: &str,
    out: &mut BTreeMap<String, Vec<Rule>>,
) -> Result<(), String> {
    if let Some(list) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        let mut rules = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let at = format!("{}.x-kubernetes-validations[{i}]", schema_path(pointer));
            let source = r
                .get("rule")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{at}.rule: Required value"))?;
            let program = env().compile(source).map_err(|e| {
                format!("{at}.rule: Invalid value: {source:?}: compilation failed: {e}")
            })?;
            let message_expression = match r.get("messageExpression").and_then(Value::as_str) {
                Some(m) => Some(Arc::new(env().compile(m).map_err(|e| {
                    format!("{at}.messageExpression: Invalid value: {m:?}: compilation failed: {e}")
                })?)),
                None => None,
            };
            let transition = program.references().has_variable("oldSelf");
            rules.push(Rule {
                rule: source.to_string(),
                program: Arc::new(program),
                message: r.get("message").and_then(Value::as_str).map(String::from),
                message_expression,
                field_path: r.get("fieldPath").and_then(Value::as_str).map(String::from),
                reason: r.get("reason").and_then(Value::as_str).map(String::from),
                transition,
            });
        }
        out.insert(pointer.to_string(), rules);
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let p = format!("{pointer}/properties/{}", node::pointer_token(name));
            compile_all(prop, &p, out)?;
        }
    }
    if let Some(items) = node::items(schema) {
        compile_all(items, &format!("{pointer}/items"), out)?;
    }
    if let Some(add) = node::additional(schema) {
        compile_all(add, &format!("{pointer}/additionalProperties"), out)?;
    }
    Ok(())
}

/// `openAPIV3Schema.properties[spec].items` for a schema pointer, for error messages.
fn schema_path(pointer: &str) -> String {
    let mut out = String::from("openAPIV3Schema");
    let mut parts = pointer.split('/').skip(1);
    while let Some(p) = parts.next() {
        if p == "properties" {
            let name = parts.next().unwrap_or_default();
            out.push_str(&format!(".properties[{name}]"));
        } else {
            out.push('.');
            out.push_str(p);
        }
    }
    out
}

/// Converts JSON to a CEL value, typed by the schema.
pub fn to_cel(schema: Option<&Value>, v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => {
            let is_number = schema.is_some_and(|s| node::ty(s) == "number");
            match n.as_i64() {
                Some(i) if !is_number => cel::Value::Int(i),
                _ => cel::Value::Float(n.as_f64().unwrap_or_default()),
            }
        }
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let item_schema = schema.and_then(node::items);
            cel::Value::List(Arc::new(
                items.iter().map(|i| to_cel(item_schema, i)).collect(),
            ))
        }
        Value::Object(obj) => {
            let map: HashMap<String, cel::Value> = obj
                .iter()
                .map(|(k, child)| {
                    let child_schema =
                        schema.and_then(|s| node::property(s, k).or_else(|| node::additional(s)));
                    (k.clone(), to_cel(child_schema, child))
                })
                .collect();
            cel::Value::from(map)
        }
    }
}

/// Evaluates all rules against `obj` (and `old` for transition rules).
pub fn validate_all(
    schema: &Value,
    rules: &BTreeMap<String, Vec<Rule>>,
    obj: &Value,
    old: Option<&Value>,
    causes: &mut Vec<Cause>,
) {
    if rules.is_empty() {
        return;
    }
    walk(schema, "", rules, obj, old, "", causes);
}

fn walk(
    schema: &Value,
    pointer: &str,
    rules: &BTreeMap<String, Vec<Rule>>,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if value.is_null() {
        return;
    }
    if let Some(node_rules) = rules.get(pointer) {
        for rule in node_rules {
            evaluate(schema, rule, value, old, path, causes);
        }
    }
    match value {
        Value::Object(obj) => {
            for (name, child) in obj {
                let old_child = old.and_then(|o| o.get(name));
                if let Some(prop) = node::property(schema, name) {
                    let p = format!("{pointer}/properties/{}", node::pointer_token(name));
                    let cp = node::child_path(path, name);
                    walk(prop, &p, rules, child, old_child, &cp, causes);
                } else if let Some(add) = node::additional(schema) {
                    let p = format!("{pointer}/additionalProperties");
                    let cp = node::key_path(path, name);
                    walk(add, &p, rules, child, old_child, &cp, causes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node::items(schema) {
                let keys = map_keys(schema);
                for (i, item) in items.iter().enumerate() {
                    // Only list-type=map items correlate with old items (by their keys).
                    let old_item = match (&keys, old.and_then(Value::as_array)) {
                        (Some(keys), Some(old_items)) => old_items
                            .iter()
                            .find(|o| keys.iter().all(|k| o.get(k) == item.get(k))),
                        _ => None,
                    };
                    let p = format!("{pointer}/items");
                    let cp = node::index_path(path, i);
                    walk(item_schema, &p, rules, item, old_item, &cp, causes);
                }
            }
        }
        _ => {}
    }
}

fn map_keys(schema: &Value) -> Option<Vec<String>> {
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys = schema.get("x-kubernetes-list-map-keys")?.as_array()?;
    Some(
        keys.iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
    )
}

fn evaluate(
    schema: &Value,
    rule: &Rule,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if rule.transition && old.is_none() {
        return;
    }
    let mut ctx = Context::with_env(env());
    ctx.add_variable_from_value("self", to_cel(Some(schema), value));
    if let Some(old) = old {
        ctx.add_variable_from_value("oldSelf", to_cel(Some(schema), old));
    }
    let field = match &rule.field_path {
        Some(fp) => node::child_path(path, fp.trim_start_matches('.')),
        None => path.to_string(),
    };
    let shown = go_value(&Value::String(node::ty(schema).to_string()));
    match rule.program.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => {}
        Ok(cel::Value::Bool(false)) => {
            let message = rule_message(rule, &ctx);
            causes.push(cause_for_reason(
                rule.reason.as_deref(),
                &field,
                &shown,
                &message,
            ));
        }
        Ok(other) => causes.push(Cause::invalid(
            field,
            format!(
                "Invalid value: {shown}: rule evaluated to {other:?}, expected bool: {}",
                rule.rule
            ),
        )),
        // Evaluation errors are reported at the rule's node, naming the rule by its message.
        Err(e) => causes.push(Cause::invalid(
            path,
            format!(
                "Invalid value: {shown}: {} evaluating rule: {}",
                go_error_text(&e.to_string()),
                rule_error_string(rule)
            ),
        )),
    }
}

/// cel-go's error texts start in lower case (`no such key: x`).
fn go_error_text(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// apiextensions' `ruleErrorString`: the message if any, else the rule.
fn rule_error_string(rule: &Rule) -> String {
    match &rule.message {
        Some(m) if !m.trim().is_empty() => m.trim().to_string(),
        _ => rule.rule.trim().to_string(),
    }
}

fn rule_message(rule: &Rule, ctx: &Context<'_, '_>) -> String {
    if let Some(expr) = &rule.message_expression
        && let Ok(cel::Value::String(s)) = expr.execute(ctx)
        && !s.trim().is_empty()
    {
        return s.to_string();
    }
    match &rule.message {
        Some(m) if !m.trim().is_empty() => m.trim().to_string(),
        _ => format!("failed rule: {}", rule.rule.trim()),
    }
}

fn cause_for_reason(reason: Option<&str>, field: &str, shown: &str, message: &str) -> Cause {
    let (reason, message) = match reason {
        Some("FieldValueForbidden") => ("FieldValueForbidden", format!("Forbidden: {message}")),
        Some("FieldValueRequired") => ("FieldValueRequired", format!("Required value: {message}")),
        Some("FieldValueDuplicate") => ("FieldValueDuplicate", format!("Duplicate value: {shown}")),
        _ => (
            "FieldValueInvalid",
            format!("Invalid value: {shown}: {message}"),
        ),
    };
    Cause {
        reason: reason.into(),
        message,
        field: field.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(rule: &str, spec: &Value) -> bool {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"i": {"type": "integer"}, "d": {"type": "number"}, "s": {"type": "string"},
                "l": {"type": "array", "items": {"type": "integer"}},
                "m": {"type": "object", "additionalProperties": {"type": "string"}}},
            "x-kubernetes-validations": [{"rule": rule}]}}});
        let mut rules = BTreeMap::new();
        compile_all(&schema, "", &mut rules).unwrap();
        let mut causes = Vec::new();
        validate_all(&schema, &rules, &json!({"spec": spec}), None, &mut causes);
        causes.is_empty()
    }

    #[test]
    fn kubernetes_cel_forms() {
        let spec = json!({"i": 1, "d": 2.0, "s": "abc", "l": [1, 2], "m": {"x": "y"}});
        let cases = [
            ("self.i < self.d", true),
            // `type: number` is a double even when the JSON has no fraction.
            ("self.d == 2.0", true),
            ("double(self.i) > 1.2 * double(self.i)", false),
            ("self.i < 1.5", true),
            ("has(self.s) && !has(self.missing)", true),
            ("size(self.l) == 2 && self.l.all(x, x > 0)", true),
            ("self.l.exists(x, x == 3)", false),
            ("self.s.matches('^a') && self.s.startsWith('ab')", true),
            (
                "self.s.lowerAscii() == 'abc' && self.s.split('b').size() == 2",
                true,
            ),
            ("'x' in self.m", true),
            ("self.i in [2, 3]", false),
        ];
        for (rule, want) in cases {
            assert_eq!(holds(rule, &spec), want, "{rule}");
        }
    }
}
