//! Volumes on a local disk: each pod gets a directory, each `downwardAPI` or `emptyDir` volume
//! a directory in it, and a container's mount paths are rewritten to those directories wherever
//! they appear in its command, args, env values and workingDir (no mount namespace is used).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::env::{EnvError, field_path};

/// Where a container's mount paths really are.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    /// `(mountPath, local directory)`, longest mount path first.
    pairs: Vec<(String, PathBuf)>,
}

impl Mounts {
    /// The mounts of `container`, for the volumes laid out under `pod_dir`.
    pub fn of(container: &Value, pod_dir: &Path) -> Self {
        let mut pairs: Vec<(String, PathBuf)> = container
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let path = m.get("mountPath")?.as_str()?.trim_end_matches('/');
                let volume = m.get("name")?.as_str()?;
                // Mounting over `/` cannot be rewritten sensibly.
                (!path.is_empty()).then(|| (path.to_string(), volume_dir(pod_dir, volume)))
            })
            .collect();
        pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Self { pairs }
    }

    /// `text` with every mount path (at a path boundary) replaced by its local directory.
    pub fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        'outer: while i < text.len() {
            for (mount, dir) in &self.pairs {
                if text[i..].starts_with(mount.as_str()) {
                    let before_ok =
                        i == 0 || !text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
                    let after = &text[i + mount.len()..];
                    let after_ok = after.is_empty()
                        || after.starts_with(|c: char| !(c.is_alphanumeric() || "_-.".contains(c)));
                    if before_ok && after_ok {
                        out.push_str(&dir.to_string_lossy());
                        i += mount.len();
                        continue 'outer;
                    }
                }
            }
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
        out
    }
}

/// The local directory of volume `name`.
pub fn volume_dir(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(name)
}

/// Creates the pod's volume directories and writes (or rewrites) its downward-API files.
pub fn write_volumes(pod: &Value, pod_dir: &Path) -> std::io::Result<()> {
    for vol in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = vol.get("name").and_then(Value::as_str) else {
            continue;
        };
        let dir = volume_dir(pod_dir, name);
        std::fs::create_dir_all(&dir)?;
        let Some(items) = vol.pointer("/downwardAPI/items").and_then(Value::as_array) else {
            continue;
        };
        for item in items {
            let (Some(path), Some(field)) = (
                item.get("path").and_then(Value::as_str),
                item.pointer("/fieldRef/fieldPath").and_then(Value::as_str),
            ) else {
                continue;
            };
            if path.split('/').any(|part| part == "..") || path.starts_with('/') {
                continue;
            }
            let value = match field_path(pod, field) {
                Ok(v) => v,
                Err(EnvError::FieldPath(f)) => {
                    tracing::debug!(field = %f, "unsupported downward-API field");
                    continue;
                }
                Err(_) => continue,
            };
            let file = dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Replaced by rename, so that a reader sees the old or the new content, never half.
            let tmp = file.with_extension("testkit-tmp");
            std::fs::write(&tmp, value)?;
            std::fs::rename(&tmp, &file)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mount_paths_are_rewritten_at_boundaries_only() {
        let c = json!({"volumeMounts": [{"name": "info", "mountPath": "/etc/podinfo"}]});
        let m = Mounts::of(&c, Path::new("/tmp/pod"));
        assert_eq!(
            m.rewrite("cat /etc/podinfo/labels"),
            "cat /tmp/pod/volumes/info/labels"
        );
        assert_eq!(m.rewrite("/etc/podinfo"), "/tmp/pod/volumes/info");
        assert_eq!(m.rewrite("/etc/podinfox"), "/etc/podinfox");
        assert_eq!(m.rewrite("x/etc/podinfo"), "x/etc/podinfo");
    }

    #[test]
    fn downward_files_are_written() {
        let dir = std::env::temp_dir().join(format!("testkit-vol-{}", uuid::Uuid::new_v4()));
        let pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}, "annotations": {"x": "y"}},
            "spec": {"volumes": [{"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "sub/name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "../escape", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}});
        write_volumes(&pod, &dir).expect("write");
        let read = |p: &str| std::fs::read_to_string(dir.join("volumes/info").join(p)).ok();
        assert_eq!(read("labels").as_deref(), Some("a=\"1\""));
        assert_eq!(read("sub/name").as_deref(), Some("p"));
        assert!(!dir.join("volumes/escape").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
