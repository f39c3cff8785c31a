//! TLS end to end: replicas started with `--tls-cert/--tls-key/--tls-ca` (and
//! `--tls-client-auth`), with a CA and certificates the test makes itself (rcgen).
//! Replicas join each other over TLS; TLS clients call; plaintext clients and
//! replicas, clients trusting another CA and clients without a certificate where
//! one is required are refused, each with an error that says why.

use crate::harness::{serial, spawn_replica, Cluster, Scratch, Setup, BIN};
use concoord_client::{Client, ClientError, ClientOptions, ClientTls, Value};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA of the test's own, writing its certificates as PEM files into a directory.
struct Ca {
    dir: PathBuf,
    name: String,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate's file.
    cert: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).unwrap();
        let path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&path, cert.pem()).unwrap();
        Ca {
            dir: dir.to_path_buf(),
            name: name.into(),
            issuer: Issuer::new(params, key),
            cert: path,
        }
    }

    /// A certificate for `sans` (IP addresses or DNS names) signed by this CA:
    /// its certificate and key files.
    fn issue(&self, who: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, who);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.join(format!("{}-{who}.pem", self.name));
        let key_path = self.dir.join(format!("{}-{who}-key.pem", self.name));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// A client configuration trusting this CA, with `identity` as its certificate.
    fn client(&self, identity: Option<&(PathBuf, PathBuf)>) -> ClientTls {
        let identity = identity.map(|(c, k)| (c.as_path(), k.as_path()));
        ClientTls::from_pem_files(&self.cert, identity).unwrap()
    }
}

fn replica_flags(cert: &(PathBuf, PathBuf), ca: &Path) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        "--tls-cert".into(),
        path(&cert.0),
        "--tls-key".into(),
        path(&cert.1),
        "--tls-ca".into(),
        path(ca),
    ]
}

/// Connects with `tls` (and a short give-up, so a wrong setting cannot hang).
async fn connect(boot: &str, tls: Option<ClientTls>) -> Result<Client, ClientError> {
    let options =
        ClientOptions { tls, give_up_after: Duration::from_secs(10), ..ClientOptions::default() };
    tokio::time::timeout(Duration::from_secs(20), Client::connect(boot, options))
        .await
        .expect("connect gave an answer in time")
}

fn tls_error(result: Result<Client, ClientError>) -> String {
    match result {
        Err(ClientError::Tls(why)) => why,
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("expected a TLS error, the client connected"),
    }
}

/// Waits until `log` contains `what` (up to 15 s).
async fn wait_log(log: &Path, what: &str) {
    for _ in 0..300 {
        if std::fs::read_to_string(log).unwrap_or_default().contains(what) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{} never said {what:?}:\n{text}", log.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_tls_clients_and_refuses_plaintext_and_strangers() {
    let _serial = serial();
    let pki = Scratch::new("tls-pki");
    let ca = Ca::new(&pki.0, "good");
    let other = Ca::new(&pki.0, "other");
    let replica_cert = ca.issue("replica", &["127.0.0.1", "localhost"]);
    let setup = Setup {
        token: Some("tls-secret-token".into()),
        extra: replica_flags(&replica_cert, &ca.cert),
        tls: Some(ca.client(None)),
        ..Setup::default()
    };
    // Replicas 1 and 2 join through replica 0: peer links over TLS.
    let cluster = Cluster::start(3, setup).await;
    let client = cluster.client().await;
    for _ in 0..5 {
        client.call("default", "increment", vec![]).await.unwrap();
    }
    assert_eq!(client.call("default", "getvalue", vec![]).await.unwrap(), Value::Int(5));
    // A DNS name in the certificate works as well as the IP.
    let port = cluster.addrs[0].rsplit_once(':').unwrap().1;
    let by_name = ClientOptions {
        token: cluster.setup.token.clone(),
        tls: Some(ca.client(None)),
        ..ClientOptions::default()
    };
    let named = Client::connect(&format!("localhost:{port}"), by_name).await.unwrap();
    assert_eq!(named.call("default", "getvalue", vec![]).await.unwrap(), Value::Int(5));

    // A plaintext client is told the replica requires TLS, at once.
    let why = tls_error(connect(&cluster.boot(), None).await);
    assert!(why.contains("requires TLS"), "{why}");
    // A client that trusts another CA refuses the replicas' certificates.
    let why = tls_error(connect(&cluster.boot(), Some(other.client(None))).await);
    assert!(why.contains("not signed by the CA"), "{why}");

    // The command line: status and call with --tls-ca; call without it exits 5.
    let addr = cluster.addrs[1].clone();
    let ca_path = ca.cert.display().to_string();
    let token = ["--token", "tls-secret-token"];
    let out = Command::new(BIN)
        .args(["status", "-b", &addr, "--tls-ca", &ca_path])
        .args(token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("voter").count(), 3, "{stdout}");
    let out = Command::new(BIN)
        .args(["call", "-b", &addr, "--tls-ca", &ca_path, "getvalue"])
        .args(token)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    let out =
        Command::new(BIN).args(["call", "-b", &addr, "getvalue"]).args(token).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("requires TLS"), "{stderr}");

    // A replica without TLS, and one whose certificate another CA signed, cannot
    // join; each says why in its own log.
    let plain_log = cluster.scratch.0.join("plain-joiner.log");
    let boot = cluster.addrs[0].clone();
    let base = ["-a", "127.0.0.1", "-p", "0", "-o", "Counter", "-b", &boot, "--token", token[1]];
    let base: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    let mut plain = spawn_replica(&base, &plain_log);
    wait_log(&plain_log, "this replica requires TLS").await;
    plain.kill();
    let stranger_log = cluster.scratch.0.join("stranger-joiner.log");
    let stranger_cert = other.issue("stranger", &["127.0.0.1"]);
    let mut args = base.clone();
    args.extend(replica_flags(&stranger_cert, &other.cert));
    let mut stranger = spawn_replica(&args, &stranger_log);
    wait_log(&stranger_log, "TLS handshake failed").await;
    stranger.kill();
    let status = cluster.status(0).await.unwrap();
    assert_eq!(status.members.len(), 3, "{status:?}");

    // What the client sends travels encrypted: a relay in front of replica 0 never
    // sees the token, though the client's hello carries it.
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let relay = relay_to(cluster.addrs[0].clone(), seen.clone()).await;
    let options = ClientOptions {
        token: cluster.setup.token.clone(),
        tls: Some(ca.client(None)),
        ..ClientOptions::default()
    };
    let relayed = Client::connect(&relay, options).await.unwrap();
    relayed.call("default", "increment", vec![]).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() > 100, "the relay carried {} bytes", seen.len());
    assert!(!seen.windows(16).any(|w| w == b"tls-secret-token"), "the token went in clear");
}

/// A TCP relay on 127.0.0.1 to `target` that records what clients send; its address.
async fn relay_to(target: String, seen: Arc<Mutex<Vec<u8>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else { continue };
            let (mut in_rd, mut in_wr) = inbound.into_split();
            let (mut out_rd, mut out_wr) = outbound.into_split();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = in_rd.read(&mut buf).await {
                    if n == 0 || out_wr.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut out_rd, &mut in_wr).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_with_a_certificate_of_the_ca() {
    let _serial = serial();
    let pki = Scratch::new("mtls-pki");
    let ca = Ca::new(&pki.0, "good");
    let other = Ca::new(&pki.0, "other");
    let replica_cert = ca.issue("replica", &["127.0.0.1"]);
    let client_cert = ca.issue("client", &["client.example.test"]);
    let stranger_cert = other.issue("client", &["client.example.test"]);
    let mut extra = replica_flags(&replica_cert, &ca.cert);
    extra.push("--tls-client-auth".into());
    let setup = Setup { extra, tls: Some(ca.client(Some(&client_cert))), ..Setup::default() };
    // The second replica joins: replicas present their certificates to each other.
    let cluster = Cluster::start(2, setup).await;
    let client = cluster.client().await;
    client.call("default", "increment", vec![]).await.unwrap();
    assert_eq!(client.call("default", "getvalue", vec![]).await.unwrap(), Value::Int(1));

    // Without a client certificate, or with one another CA signed: refused.
    let why = tls_error(connect(&cluster.boot(), Some(ca.client(None))).await);
    assert!(why.contains("client certificate"), "{why}");
    let why = tls_error(connect(&cluster.boot(), Some(ca.client(Some(&stranger_cert)))).await);
    assert!(why.contains("client certificate"), "{why}");

    // The command line presents one with --tls-cert and --tls-key.
    let path = |p: &Path| p.display().to_string();
    let out = Command::new(BIN)
        .args(["call", "-b", &cluster.addrs[1], "--tls-ca", &path(&ca.cert)])
        .args(["--tls-cert", &path(&client_cert.0), "--tls-key", &path(&client_cert.1)])
        .arg("getvalue")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_reaching_a_plaintext_replica_is_told_so() {
    let _serial = serial();
    let scratch = Scratch::new("tls-plain");
    let ca = Ca::new(&scratch.0, "good");
    let args: Vec<String> =
        ["-a", "127.0.0.1", "-p", "0", "-o", "Counter"].iter().map(|s| s.to_string()).collect();
    let mut replica = spawn_replica(&args, &scratch.0.join("replica.log"));
    let why = tls_error(connect(&replica.addr, Some(ca.client(None))).await);
    replica.kill();
    assert!(why.contains("runs without TLS"), "{why}");
}

/// `dns://` finds TLS replicas: the name server hands out their addresses, and
/// clients and joiners then check the certificates against those IPs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_bootstrap_finds_tls_replicas() {
    let _serial = serial();
    let pki = Scratch::new("tls-dns-pki");
    let ca = Ca::new(&pki.0, "good");
    let replica_cert = ca.issue("replica", &["127.0.0.1"]);
    let mut extra = replica_flags(&replica_cert, &ca.cert);
    extra.extend(["-n", "cc.example.test.", "--dns-port", "0"].map(String::from));
    let setup = Setup { extra, tls: Some(ca.client(None)), ..Setup::default() };
    let mut cluster = Cluster::start(1, setup).await;
    let log = cluster.replicas[0].as_ref().unwrap().log.clone();
    wait_log(&log, "name server listening on ").await;
    let text = std::fs::read_to_string(&log).unwrap();
    let dns = text
        .lines()
        .filter_map(|l| l.split("name server listening on ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .next()
        .unwrap()
        .to_string();
    let url = format!("dns://cc.example.test@{dns}");

    // A joiner given only the dns:// entry joins over TLS.
    let mut args: Vec<String> =
        ["-a", "127.0.0.1", "-p", "0", "-o", "Counter", "-b", &url].map(String::from).to_vec();
    args.extend(replica_flags(&replica_cert, &ca.cert));
    let joiner = spawn_replica(&args, &cluster.scratch.0.join("dns-joiner.log"));
    cluster.addrs.push(joiner.addr.clone());
    cluster.replicas.push(Some(joiner));
    cluster.wait_voters(2).await;

    let client = connect(&url, Some(ca.client(None))).await.unwrap();
    client.call("default", "increment", vec![]).await.unwrap();
    assert_eq!(client.call("default", "getvalue", vec![]).await.unwrap(), Value::Int(1));
    let why = tls_error(connect(&url, None).await);
    assert!(why.contains("requires TLS"), "{why}");
}
