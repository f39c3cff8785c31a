//! The TLS options every client command takes (`call`, `status`, `bench`,
//! `shell`): `--tls-ca`, and `--tls-cert` with `--tls-key` for replicas that
//! require client certificates.

use concoord_client::{ClientError, ClientTls};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// Speak TLS to the replicas (started with --tls-cert), verifying their
    /// certificates with this CA (PEM). A certificate must name the address
    /// dialled (IP or DNS subject alternative name).
    #[arg(long = "tls-ca", value_name = "FILE", env = "CONCOORD_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM, signed by the replicas' CA) to
    /// replicas started with --tls-client-auth. Needs --tls-key and --tls-ca.
    #[arg(
        long = "tls-cert",
        value_name = "FILE",
        env = "CONCOORD_TLS_CERT",
        requires_all = ["tls_ca", "tls_key"]
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long = "tls-key", value_name = "FILE", env = "CONCOORD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The client TLS settings these options ask for (`None`: plaintext).
    pub fn load(&self) -> Result<Option<ClientTls>, ClientError> {
        let Some(ca) = &self.tls_ca else { return Ok(None) };
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            _ => None,
        };
        ClientTls::from_pem_files(ca, identity).map(Some)
    }
}
