//! Server-side apply.

use serde_json::Value;

use super::Target;
use crate::errors::ApiError;

/// See [`super::server_side_apply`].
pub fn server_side_apply(
    target: &Target<'_>,
    current: Option<&Value>,
    body: &[u8],
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let _ = (target, current, body, manager, force);
    Err(ApiError::internal(
        "server-side apply is not implemented yet",
    ))
}
