//! CRD structural schemas: defaulting, pruning, validation and `x-kubernetes-validations` (CEL).

pub mod cel;
pub mod defaults;
pub mod node;
pub mod prune;
pub mod structural;
pub mod validate;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::errors::Cause;

/// A compiled `openAPIV3Schema` of one served CRD version.
#[derive(Debug, Clone)]
pub struct Schema {
    raw: Value,
    /// CEL rules by the JSON pointer of the schema node that carries them.
    rules: BTreeMap<String, Vec<cel::Rule>>,
}

impl Schema {
    /// Compiles `spec.versions[].schema.openAPIV3Schema`. Errors name the bad part of the schema
    /// (including a CEL rule that does not parse).
    pub fn compile(openapi_v3_schema: &Value) -> Result<Self, String> {
        if !openapi_v3_schema.is_object() {
            return Err("openAPIV3Schema: must be an object".into());
        }
        let mut rules = BTreeMap::new();
        cel::compile_all(openapi_v3_schema, "", &mut rules)?;
        structural::check(openapi_v3_schema, "openAPIV3Schema")?;
        validate::check_schema(openapi_v3_schema, "openAPIV3Schema")?;
        Ok(Self {
            raw: openapi_v3_schema.clone(),
            rules,
        })
    }

    /// The schema as given.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Fills `default`s into `obj`, as kube-apiserver does on create, update and read.
    pub fn apply_defaults(&self, obj: &mut Value) {
        defaults::apply(&self.raw, obj);
    }

    /// Drops fields the schema does not know (unless `x-kubernetes-preserve-unknown-fields`).
    /// Returns the dropped fields' paths, for `fieldValidation=Strict|Warn`.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        prune::prune(&self.raw, obj)
    }

    /// Validates type, enum, minimum/maximum, required, pattern, lengths and CEL rules
    /// (`old` is the stored object on update, for transition rules).
    /// Causes have kube-apiserver's fields and messages, e.g. field `spec.leaseDurationSeconds`,
    /// message `Invalid value: 0: spec.leaseDurationSeconds in body should be greater than or equal to 1`.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate::validate(&self.raw, obj, &mut causes);
        validate::list_invariants(&self.raw, obj, &mut causes);
        // As apiextensions' hasBlockingErr: a type or enum error blocks the CEL rules, which
        // is itself reported.
        let blocked = causes
            .iter()
            .any(|c| c.reason == "FieldValueTypeInvalid" || c.reason == "FieldValueNotSupported");
        if blocked {
            causes.push(Cause::invalid(
                "<nil>",
                "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            cel::validate_all(&self.raw, &self.rules, obj, old, &mut causes);
        }
        causes
    }
}
