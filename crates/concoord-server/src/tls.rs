//! TLS settings of a replica (`--tls-cert`, `--tls-key`, `--tls-ca`,
//! `--tls-client-auth`): the rustls configurations for the connections it accepts
//! and for its links to other replicas, built from PEM files. It opens no socket:
//! `net.rs` uses these configurations.
//!
//! One CA vouches for everyone. A replica presents its certificate both as a server
//! (to clients and to the links of other replicas) and as a client (on its own links),
//! so replicas authenticate each other in both directions. Clients present a
//! certificate only when asked (`--tls-client-auth` makes it mandatory).

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a replica's TLS material is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// This replica's certificate chain (PEM), its own certificate first. It must
    /// name the address the replica is reached by (IP or DNS SAN).
    pub cert: PathBuf,
    /// The private key of `cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificate(s) (PEM) that sign the replicas' and clients' certificates.
    pub ca: PathBuf,
    /// Require every client to present a certificate signed by the CA (replicas must
    /// always present one).
    pub client_auth: bool,
}

/// The rustls configurations a replica runs with.
#[derive(Clone, Debug)]
pub struct Tls {
    /// For the connections the replica accepts (clients and other replicas).
    pub server: Arc<ServerConfig>,
    /// For the replica's links to other replicas: verifies them against the CA and
    /// presents this replica's certificate.
    pub client: Arc<ClientConfig>,
}

/// Why the TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file; none at all is an error.
pub fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |e: &dyn std::fmt::Display| {
        TlsError(format!("cannot read the {what} from {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no PEM certificate in it"));
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError(format!("cannot read a private key from {}: {e}", path.display())))
}

/// A root store with the CA certificates of `path`.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "CA certificate")? {
        roots.add(cert).map_err(|e| {
            TlsError(format!("the CA certificate in {} is unusable: {e}", path.display()))
        })?;
    }
    Ok(roots)
}

impl Tls {
    /// Loads the files and builds both configurations; every problem (a missing
    /// file, a key that does not match the certificate) is an error here, at start.
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let certs = load_certs(&files.cert, "certificate")?;
        let key = load_key(&files.key)?;
        let roots = Arc::new(load_roots(&files.ca)?);
        let provider = provider();

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
        // Without --tls-client-auth, clients may come without a certificate; a
        // replica without one is refused in `net.rs` (peers always authenticate).
        let verifier = if files.client_auth { verifier } else { verifier.allow_unauthenticated() };
        let verifier = verifier.build().map_err(|e| {
            TlsError(format!("cannot verify clients with {}: {e}", files.ca.display()))
        })?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS protocol versions: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| {
                TlsError(format!(
                    "the certificate {} and the key {} do not go together: {e}",
                    files.cert.display(),
                    files.key.display()
                ))
            })?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS protocol versions: {e}")))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsError(format!("cannot present {}: {e}", files.cert.display())))?;
        Ok(Tls { server: Arc::new(server), client: Arc::new(client) })
    }
}

/// The name a certificate must carry for `addr` (`host:port`, `[v6]:port`): an IP
/// address or a DNS name.
pub fn server_name(addr: &str) -> Result<rustls_pki_types::ServerName<'static>, TlsError> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| TlsError(format!("{host:?} cannot be checked against a certificate: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_the_host_part() {
        assert!(matches!(
            server_name("127.0.0.1:14000").unwrap(),
            rustls_pki_types::ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:1").unwrap(),
            rustls_pki_types::ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("r1.example.test:14000").unwrap(),
            rustls_pki_types::ServerName::DnsName(_)
        ));
        assert!(server_name("bad name:1").is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            ca: "/nonexistent/ca.pem".into(),
            client_auth: false,
        };
        let why = Tls::load(&files).unwrap_err().to_string();
        assert!(why.contains("/nonexistent/cert.pem"), "{why}");
    }
}
