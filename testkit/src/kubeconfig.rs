//! The kubeconfig written for a running server.

use std::path::Path;

use base64::Engine;

/// The kubeconfig text: one cluster, user and context `testkit` with namespace `default`.
pub fn render(url: &str, ca_pem: Option<&str>, token: Option<&str>) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let ca = ca_pem
        .map(|pem| format!("    certificate-authority-data: {}\n", b64(pem)))
        .unwrap_or_default();
    let user = token
        .map(|t| format!("    token: {t}\n"))
        .unwrap_or_else(|| "    {}\n".to_string());
    let user = if token.is_some() {
        format!("  user:\n{user}")
    } else {
        "  user: {}\n".to_string()
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testkit\n  cluster:\n    server: {url}\n{ca}users:\n- name: testkit\n{user}contexts:\n- name: testkit\n  context:\n    cluster: testkit\n    user: testkit\n    namespace: default\ncurrent-context: testkit\npreferences: {{}}\n"
    )
}

/// Writes the kubeconfig (mode 0600, parents created).
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The DER bytes of the first certificate in `pem`.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .unwrap_or_default()
}
