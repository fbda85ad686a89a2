//! The self-review APIs operators debug RBAC with: SelfSubjectRulesReview
//! (`kubectl auth can-i --list`) and SelfSubjectReview (`kubectl auth whoami`).
//! SelfSubjectAccessReview (`kubectl auth can-i VERB RESOURCE`) is answered in `handlers`.

use serde_json::{Value, json};

use crate::app::App;
use crate::errors::ApiError;
use crate::rbac::UserInfo;
use crate::registry::ResourceType;

/// Answers a create of a review type served here (None for other types); `body` decodes the
/// request.
pub fn serve(
    app: &App,
    ty: &ResourceType,
    user: &UserInfo,
    body: impl FnOnce() -> Result<Value, ApiError>,
) -> Option<Result<Value, ApiError>> {
    match (ty.group.as_str(), ty.plural.as_str()) {
        ("authorization.k8s.io", "selfsubjectrulesreviews") => {
            Some(body().map(|b| rules_review(app, user, b)))
        }
        ("authentication.k8s.io", "selfsubjectreviews") => Some(body().map(|b| who_am_i(user, b))),
        _ => None,
    }
}

fn rules_review(app: &App, user: &UserInfo, mut review: Value) -> Value {
    let namespace = review
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (resource, non_resource) =
        crate::rbac::rules_for(user, &namespace, &crate::server::rbac_snapshot(app));
    review["status"] = json!({
        "resourceRules": resource,
        "nonResourceRules": non_resource,
        "incomplete": false,
    });
    review["metadata"] = json!({"creationTimestamp": null});
    review
}

fn who_am_i(user: &UserInfo, mut review: Value) -> Value {
    review["status"] = json!({"userInfo": {"username": user.username, "groups": user.groups}});
    review["metadata"] = json!({"creationTimestamp": null});
    review
}
