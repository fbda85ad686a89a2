//! zen-lead-testkit: a Kubernetes API server emulator for tests, benchmarks and the local demo.
#![forbid(unsafe_code)]

pub mod errors;
pub mod openapi;
pub mod patch;
pub mod rbac;
pub mod schema;
