//! Strategic merge patch for the built-in kinds.

use serde_json::Value;

use super::Target;
use crate::errors::ApiError;

/// Applies a strategic merge patch.
pub fn apply(target: &Target<'_>, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let _ = (target, current, body);
    Err(ApiError::internal(
        "strategic merge patch is not implemented yet",
    ))
}
