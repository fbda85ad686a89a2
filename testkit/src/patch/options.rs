//! `PatchOptions` checks kube-apiserver makes before any patch (`ValidatePatchOptions`).

use super::PatchType;
use crate::errors::{ApiError, Cause};

/// The longest field manager name kube-apiserver accepts.
const FIELD_MANAGER_MAX: usize = 128;

/// 422 `PatchOptions.meta.k8s.io "" is invalid` when apply has no field manager, when `force`
/// is given on any other patch type (even `force=false`), or when the manager is too long.
pub fn validate(
    ty: PatchType,
    field_manager: Option<&str>,
    force_given: bool,
) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    if ty == PatchType::Apply {
        if field_manager.is_none_or(str::is_empty) {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: is required for apply patch".into(),
                field: "fieldManager".into(),
            });
        }
    } else if force_given {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: may not be specified for non-apply patch".into(),
            field: "force".into(),
        });
    }
    if field_manager.is_some_and(|m| m.len() > FIELD_MANAGER_MAX) {
        causes.push(Cause {
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: may not be more than {FIELD_MANAGER_MAX} bytes"),
            field: "fieldManager".into(),
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("meta.k8s.io", "PatchOptions", "", causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert!(validate(PatchType::Apply, Some("m"), true).is_ok());
        assert!(validate(PatchType::Merge, None, false).is_ok());
        let err = validate(PatchType::Apply, None, false).expect_err("no manager");
        assert_eq!(
            (err.code, err.message.as_str()),
            (
                422,
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
            )
        );
        assert_eq!(
            validate(PatchType::Json, None, true)
                .expect_err("force")
                .causes[0]
                .field,
            "force"
        );
    }
}
