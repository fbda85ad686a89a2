//! Helpers for the two-way RBAC proofs (docs/RBAC.md): a ClusterRole from `config/rbac/` with
//! one rule taken out, applied with the real `kubectl` to a testkit API server in auth mode.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

/// A ClusterRole manifest of `config/rbac/` (or a Role, or its binding, from `deploy/`).
#[derive(Debug, Clone)]
pub struct Role {
    /// The parsed manifest.
    pub manifest: Value,
}

impl Role {
    /// Reads `config/rbac/<file>`.
    pub fn load(file: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/rbac")
            .join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let manifest: Value =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        assert_eq!(manifest["kind"], "ClusterRole", "{}", path.display());
        Self { manifest }
    }

    /// The object of `kind` in `path` (relative to the repository; it may hold several).
    pub fn load_kind(path: &str, kind: &str) -> Self {
        use serde::Deserialize;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let manifest = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| {
                Value::deserialize(doc).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
            })
            .find(|doc| doc["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {}", path.display()));
        Self { manifest }
    }

    /// Its rules.
    pub fn rules(&self) -> Vec<Value> {
        self.manifest["rules"]
            .as_sequence()
            .cloned()
            .unwrap_or_default()
    }

    /// `resource [verbs]` of rule `i`, to name a table row.
    pub fn describe(&self, i: usize) -> String {
        let rule = &self.rules()[i];
        let words = |key: &str| {
            rule[key]
                .as_sequence()
                .map(|s| {
                    s.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        format!("{} [{}]", words("resources"), words("verbs"))
    }

    /// The same role without rule `i`.
    pub fn without(&self, i: usize) -> Self {
        let mut manifest = self.manifest.clone();
        if let Some(rules) = manifest["rules"].as_sequence_mut() {
            rules.remove(i);
        }
        Self { manifest }
    }

    /// Writes it to `path` and returns the path.
    pub fn write(&self, path: PathBuf) -> PathBuf {
        let text = serde_yaml::to_string(&self.manifest).expect("serialize the role");
        std::fs::write(&path, text).expect("write the role");
        path
    }
}

/// `kubectl --kubeconfig KC apply -f PATH`, which must succeed.
pub fn apply(kubeconfig: &Path, path: &Path) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f"])
        .arg(path)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply -f {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
