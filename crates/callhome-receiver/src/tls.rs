//! The receiver's TLS identity: given files, or a self-signed CA and server certificate that are
//! made once and kept in the store's folder (`DIR/tls/`; the spool with an S3 store), so a restarted receiver keeps the CA its agents
//! trust.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ReceiverError;
use callhome_protocol::fs as fsutil;

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// A CA and a certificate for localhost, 127.0.0.1 and ::1, made once in `store/tls/`.
    SelfSigned,
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
}

/// Loads or makes the identity; returns the rustls config and, when self-signed, the CA PEM.
pub fn server_config(
    src: &TlsSource,
    store: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Option<String>), ReceiverError> {
    let (cert_path, key_path, ca) = match src {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone(), None),
        TlsSource::SelfSigned => {
            let dir = store.join("tls");
            let ca = ensure_self_signed(&dir)?;
            (dir.join("server.pem"), dir.join("server-key.pem"), Some(ca))
        }
    };
    let tls_err = |path: &Path, m: String| ReceiverError::Tls(format!("{}: {m}", path.display()));
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err(&cert_path, format!("cannot read PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(tls_err(&cert_path, "holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| tls_err(&key_path, format!("cannot read a PEM private key ({e})")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ReceiverError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ReceiverError::Tls(format!("certificate and key do not fit together: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), ca))
}

/// Makes the CA and server certificate in `dir` unless they exist; returns the CA PEM.
fn ensure_self_signed(dir: &Path) -> Result<String, ReceiverError> {
    let ca_path = dir.join("ca.pem");
    if let Ok(ca) = std::fs::read_to_string(&ca_path)
        && dir.join("server.pem").exists()
        && dir.join("server-key.pem").exists()
    {
        return Ok(ca);
    }
    let gen_err = |e: rcgen::Error| ReceiverError::Tls(format!("cannot make a self-signed certificate: {e}"));
    let io_err = |e: std::io::Error| ReceiverError::Io(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io_err)?;
    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "callhome-receiver self-signed CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen_err)?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])
        .map_err(gen_err)?;
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let server_cert = params.signed_by(&server_key, &issuer).map_err(gen_err)?;
    let _ = std::fs::remove_file(dir.join("server-key.pem"));
    fsutil::write_new_private(&dir.join("server-key.pem"), server_key.serialize_pem().as_bytes()).map_err(io_err)?;
    fsutil::write_atomic(&dir.join("server.pem"), server_cert.pem().as_bytes()).map_err(io_err)?;
    fsutil::write_atomic(&ca_path, ca_cert.pem().as_bytes()).map_err(io_err)?;
    Ok(ca_cert.pem())
}
