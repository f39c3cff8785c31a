//! Naming for ConCoord clusters: a replica started with `-n DOMAIN` answers DNS for
//! DOMAIN from its applied membership (`zone.rs` builds the records and answers
//! packets, `serve.rs` owns the sockets), and clients find a cluster from
//! `dns://DOMAIN[@server[:port]]` (`resolve.rs`).
//!
//! The replica's event loop tells a `Naming` which membership governs its next
//! slot to apply, and at which slot that membership took effect, after every
//! turn; `Naming` rebuilds the zone only when that changes. It decides nothing
//! about membership itself.

pub mod resolve;
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
}

impl NamingConfig {
    /// Parses `-n DOMAIN`.
    pub fn new(domain: &str) -> Result<NamingConfig, zone::BadDomain> {
        Ok(NamingConfig {
            domain: zone::parse_domain(domain)?,
            dns_port: DEFAULT_DNS_PORT,
            ttl: zone::DEFAULT_TTL,
        })
    }
}

/// The replica's side of naming: the published zone and the listeners.
#[derive(Debug)]
pub struct Naming {
    config: NamingConfig,
    zone: watch::Sender<Arc<Zone>>,
    server: NameServer,
    /// The slot at which the membership last published took effect.
    published: Option<u64>,
}

impl Naming {
    /// Starts the name server on `ip` (the replica's address) and `config.dns_port`.
    pub async fn start(config: NamingConfig, ip: IpAddr) -> Result<Naming, ServeError> {
        let (zone, zone_rx) =
            watch::channel(Arc::new(Zone::unloaded(config.domain.clone(), config.ttl)));
        let server = NameServer::start(ip, config.dns_port, zone_rx).await?;
        Ok(Naming { config, zone, server, published: None })
    }

    /// Where the name server listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// Publishes the membership that took effect at `effective_slot`, whose member
    /// addresses (`host:port`) `addrs` lists, unless it is the one last published.
    /// A membership is named by the slot it took effect at: the log fixes it, so
    /// `addrs` is only called when that slot changes.
    pub fn update(&mut self, effective_slot: u64, addrs: impl FnOnce() -> Vec<String>) {
        if self.published == Some(effective_slot) {
            return;
        }
        let addrs = addrs();
        let members: Vec<ZoneMember> =
            addrs.iter().map(|a| ZoneMember { addr: a.clone(), nameserver: true }).collect();
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
        self.published = Some(effective_slot);
    }
}

/// The SOA serial of the membership that took effect at `slot`: the slot itself,
/// wrapping at 2^32, which serial-number arithmetic (RFC 1982) reads as growth as
/// long as two successive memberships are less than 2^31 slots apart.
pub fn serial_of(slot: u64) -> u32 {
    (slot & u64::from(u32::MAX)) as u32
}
