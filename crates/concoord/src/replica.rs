//! `concoord replica`: starts one replica with the original's options (`-a -p -b -o
//! -l -n -r -w -d`) plus ours.

use anyhow::{bail, Context, Result};
use concoord_server::{Config, ServerError};
use concoord_wire::Span;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on and advertise (default: the address of this host's name).
    #[arg(short = 'a', long = "addr")]
    addr: Option<String>,
    /// Port to listen on (default: a random port in 14000-15000; 0 lets the OS choose).
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// Join the cluster of these replicas: host:port[,host:port...], or
    /// dns://DOMAIN[@server[:port]] (looked up once, at start, through the cluster's
    /// SRV records, else its A records and port 14000).
    #[arg(short = 'b', long = "boot")]
    boot: Option<String>,
    /// Type of the cluster's default object, by short or dotted name
    /// (Counter, concoord.object.counter.Counter, ...).
    #[arg(short = 'o', long = "objectname", required_unless_present = "list_objects")]
    objectname: Option<String>,
    /// Send log lines to a `concoord logdaemon` at host:port.
    #[arg(short = 'l', long = "logger")]
    logger: Option<String>,
    /// Serve DNS for this domain from the membership (A/AAAA, SRV at
    /// _concoord._tcp.DOMAIN, TXT, NS, SOA), on UDP and TCP at the replica's address.
    #[arg(short = 'n', long = "domainname")]
    domainname: Option<String>,
    /// Port of the name server (-n); 53 needs root or CAP_NET_BIND_SERVICE.
    #[arg(long = "dns-port", default_value_t = concoord_naming::DEFAULT_DNS_PORT, requires = "domainname")]
    dns_port: u16,
    /// TTL in seconds of every DNS record (-n).
    #[arg(long = "dns-ttl", default_value_t = 30, requires = "domainname")]
    dns_ttl: u32,
    /// With -n: publish the membership to the Route53 hosted zone named DOMAIN (while
    /// this replica leads) instead of serving DNS. Credentials: AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, `concoord route53id/route53key`, or ~/.aws/credentials.
    #[arg(short = 'r', long = "route53", requires = "domainname")]
    route53: bool,
    /// Route53 API endpoint (for tests against a local server).
    #[arg(long = "route53-endpoint", default_value = concoord_naming::route53::DEFAULT_ENDPOINT, requires = "route53")]
    route53_endpoint: String,
    /// Keep durable state in ./concoord-data/<addr>_<port> (see --data-dir).
    #[arg(short = 'w', long = "writetodisk")]
    writetodisk: bool,
    /// Debug logging.
    #[arg(short = 'd', long = "debug")]
    debug: bool,
    /// Keep durable state in this directory (implies -w).
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Require clients and replicas to present this token.
    #[arg(long = "token", env = "CONCOORD_TOKEN")]
    token: Option<String>,
    /// Remove a member not heard from for this many seconds (never below 2 s).
    #[arg(long = "remove-dead-after", default_value_t = 30.0)]
    remove_dead_after: f64,
    /// Never remove dead members automatically.
    #[arg(long = "never-remove")]
    never_remove: bool,
    /// Leader heartbeat period in milliseconds.
    #[arg(long = "heartbeat-ms", default_value_t = 50)]
    heartbeat_ms: u64,
    /// A follower that hears no leader for this many milliseconds (randomized up to
    /// twice as long) runs for leader.
    #[arg(long = "election-timeout-ms", default_value_t = 300)]
    election_timeout_ms: u64,
    /// Snapshot the objects at most every this many slots (and only once the log since
    /// the last snapshot is as large as that snapshot).
    #[arg(long = "snapshot-every", default_value_t = 4096)]
    snapshot_every: u64,
    /// Print the built-in object types, then exit (any Python class given as
    /// module.Class can be hosted too).
    #[arg(long = "list-objects")]
    list_objects: bool,
    /// A hosted Python object whose method (or snapshot) runs longer than this many
    /// seconds stops the replica. The interpreter is $CONCOORD_PYTHON, else python3.
    #[arg(long = "host-timeout", default_value_t = 60.0)]
    host_timeout: f64,
    /// Serve Prometheus metrics at http://ADDR/metrics (host:port; port 0 picks a
    /// free one, logged at start). docs/operations.md lists the metrics.
    #[arg(long = "metrics-addr", value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Speak TLS to clients and replicas, and refuse plaintext: this replica's
    /// certificate (PEM), naming the address it is reached by (-a) as an IP or DNS
    /// subject alternative name. Needs --tls-key and --tls-ca.
    #[arg(long = "tls-cert", value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA certificate (PEM) that signs every replica's certificate (replicas
    /// authenticate each other with it) and clients' certificates.
    #[arg(long = "tls-ca", value_name = "FILE", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Require every client to present a certificate signed by --tls-ca.
    #[arg(long = "tls-client-auth", requires = "tls_cert")]
    tls_client_auth: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.list_objects {
        let types = concoord_server::object_types();
        let mut names: Vec<&str> = types.names().collect();
        names.sort_unstable();
        for name in names {
            println!("{name}");
        }
        return Ok(());
    }
    let addr = match args.addr {
        Some(a) => a,
        None => host_address(),
    };
    if args.writetodisk && args.port.is_none() && args.data_dir.is_none() {
        bail!(
            "-w needs a fixed -p: a durable replica recovers its state only at the address it \
             had, and the default port is random"
        );
    }
    let port = args.port.unwrap_or_else(random_port);
    let object = args.objectname.context("-o/--objectname is required")?;
    let mut config = Config::new(format!("{addr}:{port}"), object);
    if port != 0 {
        config.advertise = Some(format!("{addr}:{port}"));
    }
    config.boot = match &args.boot {
        Some(list) => parse_boot(list)?,
        None => Vec::new(),
    };
    config.token = args.token;
    if let Some(domain) = &args.domainname {
        let mut naming = concoord_naming::NamingConfig::new(domain)?;
        naming.dns_port = args.dns_port;
        naming.ttl = args.dns_ttl;
        if args.route53 {
            naming.route53 = Some(concoord_naming::route53::Route53Config {
                endpoint: args.route53_endpoint.clone(),
                credentials: concoord_naming::route53::Credentials::load()?,
            });
        }
        config.naming = Some(naming);
    }
    config.data_dir = match (args.data_dir, args.writetodisk) {
        (Some(dir), _) => Some(dir),
        (None, true) => {
            if port == 0 {
                bail!(
                    "-w with -p 0 needs --data-dir: the default directory is named after the port"
                );
            }
            Some(PathBuf::from("concoord-data").join(format!("{addr}_{port}")))
        }
        (None, false) => None,
    };
    config.paxos.remove_dead_after = if args.never_remove {
        None
    } else {
        Some(Span((args.remove_dead_after.max(0.0) * 1e6) as u64))
    };
    config.paxos.heartbeat_interval = Span::from_millis(args.heartbeat_ms.max(1));
    config.paxos.election_timeout_min =
        Span::from_millis(args.election_timeout_ms.max(args.heartbeat_ms * 3));
    config.snapshot_every = args.snapshot_every.max(1);
    // A NaN, a negative or an infinite value still makes a duration.
    let host_timeout = if args.host_timeout >= 0.1 { args.host_timeout.min(1e7) } else { 0.1 };
    config.host.timeout = std::time::Duration::from_secs_f64(host_timeout);
    config.metrics_addr = args.metrics_addr;
    if let (Some(cert), Some(key), Some(ca)) = (args.tls_cert, args.tls_key, args.tls_ca) {
        let files =
            concoord_server::tls::TlsFiles { cert, key, ca, client_auth: args.tls_client_auth };
        config.tls = Some(concoord_server::tls::Tls::load(&files)?);
    }

    crate::init_logging(args.debug, args.logger.as_deref(), &format!("replica {addr}:{port}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let mut config = config;
        config.boot = resolve_boot(std::mem::take(&mut config.boot)).await?;
        let running = concoord_server::start(config).await.map_err(explain)?;
        println!("concoord replica listening on {}", running.addr);
        use std::io::Write;
        std::io::stdout().flush()?;
        let stop = running.stopper();
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop.send(true);
        });
        running.wait().await.map_err(explain)
    })
}

fn explain(e: ServerError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// `host:port[,host:port...]`, whitespace allowed around entries.
pub fn parse_boot(list: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if let Some(dns) = concoord_naming::parse_dns_url(entry) {
            // Checked now, looked up at start (`resolve_boot`).
            if let Err(e) = dns {
                bail!("bootstrap entry {entry:?}: {e}");
            }
            if !out.iter().any(|e| e == entry) {
                out.push(entry.to_string());
            }
            continue;
        }
        let Some((host, port)) = entry.rsplit_once(':') else {
            bail!(
                "bootstrap entry {entry:?} has no port: give host:port (DNS names without a port \
                 arrive with the name server)"
            );
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            bail!("bootstrap entry {entry:?} is not host:port");
        }
        if !out.iter().any(|e| e == entry) {
            out.push(entry.to_string());
        }
    }
    if out.is_empty() {
        bail!("-b needs at least one host:port");
    }
    Ok(out)
}

/// Replaces every `dns://` entry of a boot list by the replicas its records name
/// (once: from then on the replica rejoins through the members it has known).
async fn resolve_boot(boot: Vec<String>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for entry in boot {
        let found = match concoord_naming::parse_dns_url(&entry) {
            Some(Ok(target)) => concoord_naming::resolve(&target)
                .await
                .with_context(|| format!("cannot look up the replicas of {entry}"))?,
            Some(Err(e)) => bail!("bootstrap entry {entry:?}: {e}"),
            None => vec![entry],
        };
        for addr in found {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// The original's default: the address this host's name resolves to.
fn host_address() -> String {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    if !name.is_empty() {
        if let Ok(addrs) = (name, 0).to_socket_addrs() {
            if let Some(a) = addrs.filter(|a| a.is_ipv4()).map(|a| a.ip()).next() {
                return a.to_string();
            }
        }
    }
    "127.0.0.1".to_string()
}

/// The original's default port: random in 14000-15000.
fn random_port() -> u16 {
    use std::io::Read;
    let mut b = [0u8; 2];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    14000 + u16::from_le_bytes(b) % 1001
}
