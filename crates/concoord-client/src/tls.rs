//! `ClientTls`: how a client speaks TLS to the replicas (the CA that signs their
//! certificates, and optionally the client's own certificate for replicas started
//! with `--tls-client-auth`). It only builds a rustls configuration; `conn.rs`
//! runs the connections.

use crate::ClientError;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;

/// TLS settings of a client: connections verify each replica's certificate against
/// the CA, and the certificate must name the address the client dials (its IP or
/// DNS name as a subject alternative name).
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

/// Two `ClientTls` are equal when they share one configuration (rustls
/// configurations cannot be compared field by field).
impl PartialEq for ClientTls {
    fn eq(&self, other: &ClientTls) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for ClientTls {}

fn tls_error(what: String) -> ClientError {
    ClientError::Tls(what)
}

impl ClientTls {
    /// Reads the CA certificate(s) from `ca` (PEM) and, for replicas that require
    /// client certificates, the client's certificate chain and private key (PEM).
    pub fn from_pem_files(
        ca: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> Result<ClientTls, ClientError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| tls_error(format!("cannot read {}: {e}", path.display())))
        };
        let ca_pem = read(ca)?;
        let identity = match identity {
            Some((cert, key)) => Some((read(cert)?, read(key)?)),
            None => None,
        };
        let identity = identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
        ClientTls::from_pem(&ca_pem, identity).map_err(|e| match e {
            ClientError::Tls(why) => tls_error(format!("{why} (CA file {})", ca.display())),
            other => other,
        })
    }

    /// As `from_pem_files`, from PEM text in memory.
    pub fn from_pem(ca: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<ClientTls, ClientError> {
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_slice_iter(ca)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("bad CA certificate: {e}")))?;
        if cas.is_empty() {
            return Err(tls_error("no PEM certificate in the CA certificate".into()));
        }
        for cert in cas {
            roots.add(cert).map_err(|e| tls_error(format!("unusable CA certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(format!("TLS protocol versions: {e}")))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| tls_error(format!("bad client certificate: {e}")))?;
                if certs.is_empty() {
                    return Err(tls_error("no PEM certificate in the client certificate".into()));
                }
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| tls_error(format!("bad client key: {e}")))?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    tls_error(format!("the client certificate and key do not go together: {e}"))
                })?
            }
        };
        Ok(ClientTls { config: Arc::new(config) })
    }

    /// Uses a rustls configuration built by the caller (its own verifier, say).
    pub fn from_config(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls { config }
    }

    pub(crate) fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}

/// The name a replica's certificate must carry for `target` (`host:port`).
pub(crate) fn server_name(target: &str) -> Result<ServerName<'static>, String> {
    let host = target.rsplit_once(':').map_or(target, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} cannot be checked against a certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_a_clear_error() {
        let why = ClientTls::from_pem(b"not a certificate", None).unwrap_err().to_string();
        assert!(why.contains("no PEM certificate"), "{why}");
        let why = ClientTls::from_pem_files(Path::new("/nonexistent/ca.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(why.contains("/nonexistent/ca.pem"), "{why}");
    }

    #[test]
    fn names_come_from_the_host() {
        assert!(matches!(server_name("127.0.0.1:1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("[::1]:1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("r1.example.test:1"), Ok(ServerName::DnsName(_))));
    }
}
