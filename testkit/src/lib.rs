//! zen-lead-testkit: a Kubernetes API server emulator for tests, benchmarks and the local demo.
#![forbid(unsafe_code)]
// ApiError mirrors metav1.Status field by field; boxing it would buy nothing in an emulator.
#![allow(clippy::result_large_err)]

pub mod errors;
pub mod openapi;
pub mod patch;
pub mod rbac;
pub mod schema;
