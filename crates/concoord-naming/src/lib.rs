//! Naming for ConCoord clusters: a replica started with `-n DOMAIN` answers DNS for
//! DOMAIN from its applied membership (`zone.rs` builds the records and answers
//! packets, `serve.rs` owns the sockets), or with `-r` publishes it to a Route53
//! hosted zone while it leads (`route53.rs`); clients find a cluster from
//! `dns://DOMAIN[@server[:port]]` (`resolve.rs`).
//!
//! The replica's event loop tells a `Naming` which membership governs its next
//! slot to apply, and at which slot that membership took effect, after every
//! turn; `Naming` rebuilds the zone only when that changes. It decides nothing
//! about membership itself.

mod clock;
pub mod resolve;
pub mod route53;
pub mod serve;
pub mod zone;

use hickory_proto::rr::Name;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::watch;
use zone::{Zone, ZoneMember};

pub use resolve::{parse_dns_url, resolve, DnsTarget, ResolveError, DEFAULT_REPLICA_PORT};
pub use serve::{NameServer, ServeError};

/// The default DNS port, as the original.
pub const DEFAULT_DNS_PORT: u16 = 53;

/// How a replica serves its domain.
#[derive(Clone, Debug)]
pub struct NamingConfig {
    /// The zone apex (absolute, lower case).
    pub domain: Name,
    /// Port of the UDP and TCP listeners (53 by default).
    pub dns_port: u16,
    /// TTL of every record.
    pub ttl: u32,
    /// Publish to Route53 instead of serving DNS (`-r`).
    pub route53: Option<route53::Route53Config>,
}

impl NamingConfig {
    /// Parses `-n DOMAIN`.
    pub fn new(domain: &str) -> Result<NamingConfig, zone::BadDomain> {
        Ok(NamingConfig {
            domain: zone::parse_domain(domain)?,
            dns_port: DEFAULT_DNS_PORT,
            ttl: zone::DEFAULT_TTL,
            route53: None,
        })
    }
}

/// Why naming could not start.
#[derive(Debug, thiserror::Error)]
pub enum NamingError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Route53(#[from] route53::Route53Error),
}

/// The replica's side of naming: the published zone and the listeners, or the
/// Route53 publisher.
#[derive(Debug)]
pub struct Naming {
    config: NamingConfig,
    zone: watch::Sender<Arc<Zone>>,
    server: Option<NameServer>,
    publisher: Option<route53::Publisher>,
    /// The slot at which the membership last published took effect, and its members.
    published: Option<u64>,
    members: Vec<ZoneMember>,
    leading: bool,
}

impl Naming {
    /// Starts the name server on `ip` (the replica's address) and `config.dns_port`,
    /// or, with `config.route53`, the Route53 publisher (and no name server).
    pub async fn start(config: NamingConfig, ip: IpAddr) -> Result<Naming, NamingError> {
        let (zone, zone_rx) =
            watch::channel(Arc::new(Zone::unloaded(config.domain.clone(), config.ttl)));
        let (server, publisher) = match &config.route53 {
            Some(r) => (None, Some(route53::Publisher::start(r.clone(), config.domain.clone())?)),
            None => (Some(NameServer::start(ip, config.dns_port, zone_rx).await?), None),
        };
        Ok(Naming {
            config,
            zone,
            server,
            publisher,
            published: None,
            members: Vec::new(),
            leading: false,
        })
    }

    /// Where the name server listens (none in Route53 mode).
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(|s| s.addr)
    }

    /// Publishes the membership that took effect at `effective_slot`, whose members
    /// `addrs` lists (address `host:port`, and the port of the name server the
    /// member runs, if it runs one), unless it is the one last published.
    /// A membership is named by the slot it took effect at: the log fixes it, so
    /// `addrs` is only called when that slot changes. In Route53 mode only a replica
    /// that is `leading` publishes, and it does again when it becomes leader.
    pub fn update(
        &mut self,
        effective_slot: u64,
        leading: bool,
        addrs: impl FnOnce() -> Vec<(String, Option<u16>)>,
    ) {
        let changed = self.published != Some(effective_slot);
        if changed {
            let members: Vec<ZoneMember> = addrs()
                .into_iter()
                .map(|(addr, dns_port)| ZoneMember { addr, nameserver: dns_port.is_some() })
                .collect();
            if self.server.is_some() {
                let zone = Zone::build(
                    self.config.domain.clone(),
                    self.config.ttl,
                    serial_of(effective_slot),
                    &members,
                );
                tracing::info!(
                    "name server for {} now answers {} member(s), serial {}",
                    self.config.domain,
                    members.len(),
                    zone.serial()
                );
                self.zone.send_replace(Arc::new(zone));
            }
            self.members = members;
            self.published = Some(effective_slot);
        }
        if let Some(publisher) = &self.publisher {
            if changed || leading != self.leading {
                publisher.publish(leading.then(|| route53::Desired {
                    serial: effective_slot,
                    members: self.members.clone(),
                }));
            }
        }
        self.leading = leading;
    }
}

/// The SOA serial of the membership that took effect at `slot`: the slot itself,
/// wrapping at 2^32, which serial-number arithmetic (RFC 1982) reads as growth as
/// long as two successive memberships are less than 2^31 slots apart.
pub fn serial_of(slot: u64) -> u32 {
    (slot & u64::from(u32::MAX)) as u32
}
