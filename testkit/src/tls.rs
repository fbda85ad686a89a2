//! TLS mode: a generated CA and a server certificate for 127.0.0.1/localhost.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Generating the certificates failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not build a certificate.
    #[error("generating a certificate")]
    Generate(#[source] rcgen::Error),
    /// rustls rejected the certificate or key.
    #[error("building the TLS server config")]
    Config(#[source] rustls::Error),
}

/// The generated CA (for the kubeconfig) and the server's TLS config.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The rustls server config.
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Generates a CA and a server certificate signed by it.
pub fn generate() -> Result<TlsMaterial, TlsError> {
    let ca_key = KeyPair::generate().map_err(TlsError::Generate)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(TlsError::Generate)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "zen-lead-testkit-ca");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(TlsError::Generate)?;

    let key = KeyPair::generate().map_err(TlsError::Generate)?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(TlsError::Generate)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "zen-lead-testkit");
    let cert = params.signed_by(&key, &ca).map_err(TlsError::Generate)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(TlsError::Config)?;
    let mut server_config = server_config;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem: ca.pem(),
        server_config: Arc::new(server_config),
    })
}
