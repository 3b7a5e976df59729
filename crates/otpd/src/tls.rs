//! HTTPS on the main listener: the certificate from PEM files or generated once and kept
//! in the data directory, served with rustls (ring provider) for every front door on the
//! listener. Certificate generation is rcgen's; the TLS protocol is rustls'.

use crate::config::{Settings, Tls};
use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// The self-signed certificate's files in the data directory.
const SELF_SIGNED_CERT: &str = "tls-cert.pem";
const SELF_SIGNED_KEY: &str = "tls-key.pem";

/// The server's TLS configuration for `settings.tls`, and the certificate's SHA-256
/// fingerprint (hex pairs joined by `:`), or `None` without TLS. A self-signed certificate
/// is generated on the first start — for the listen address's host and `localhost` — and
/// its key written owner-only; later starts serve the same one.
///
/// Errors name the file: unreadable, not PEM, no certificate, no or a mismatched key.
pub fn server_config(settings: &Settings) -> anyhow::Result<Option<(Arc<ServerConfig>, String)>> {
    let (cert, key) = match &settings.tls {
        None => return Ok(None),
        Some(Tls::Files { cert, key }) => (cert.clone(), key.clone()),
        Some(Tls::SelfSigned) => self_signed(settings)?,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    let Some(leaf) = chain.first() else {
        bail!("{} holds no certificate", cert.display());
    };
    let fingerprint = Sha256::digest(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let private = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("{} holds no PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .with_context(|| {
            format!(
                "the key {} does not fit the certificate {}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some((Arc::new(config), fingerprint)))
}

/// The self-signed certificate's files, generated when missing.
fn self_signed(settings: &Settings) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert = settings.data_dir.join(SELF_SIGNED_CERT);
    let key = settings.data_dir.join(SELF_SIGNED_KEY);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let host = settings.listen.ip().to_string();
    let mut names = vec!["localhost".to_owned()];
    if host != "localhost" {
        names.push(host);
    }
    let generated =
        rcgen::generate_simple_self_signed(names).context("generating a TLS certificate")?;
    crate::boot::write_secret_file(&key, generated.signing_key.serialize_pem().as_bytes())?;
    crate::boot::write_secret_file(&cert, generated.cert.pem().as_bytes())?;
    Ok((cert, key))
}
