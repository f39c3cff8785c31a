//! The zone a name server answers from, built from one membership, and the pure
//! function that turns a query packet into a response packet. No sockets here: the
//! listeners in `serve.rs` feed it bytes, and tests call it directly.
//!
//! Records (TTL configurable, 30 s by default as the original):
//! - `DOMAIN A/AAAA`: every member's IP address;
//! - `_concoord._tcp.DOMAIN SRV 0 100 <port> <target>` per member;
//! - `DOMAIN TXT "REPLICA ip:port;NAMESERVER ip:port;..."`, split into 255-byte strings
//!   (`NAMESERVER` for the members that run a name server);
//! - `DOMAIN NS <target>` per member that runs a name server, with glue;
//! - `DOMAIN SOA` with the serial given by the caller (derived from the log);
//! - `<ip>.ipaddr.DOMAIN A/AAAA`: the targets of SRV and NS, so that they resolve.
//!
//! It is not a general authority: no zone files, no wildcards, no DNSSEC, no
//! updates or transfers (those are refused or answered NOTIMP).

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// The original's TTL for every record.
pub const DEFAULT_TTL: u32 = 30;
/// Largest UDP response to a query without EDNS (RFC 1035 §4.2.1).
const UDP_PLAIN_MAX: usize = 512;
/// Largest UDP response we send to an EDNS query, whatever it advertises (the
/// "DNS flag day 2020" size that avoids IP fragmentation).
pub const UDP_EDNS_MAX: u16 = 1232;
/// Largest TCP message (two-byte length prefix).
pub const TCP_MAX: usize = 65_535;
/// Longest character-string in a TXT record (RFC 1035 §3.3).
const TXT_STRING_MAX: usize = 255;
/// SOA timers, as the original (refresh, retry, expire, minimum).
const SOA_REFRESH: i32 = 86_000;
const SOA_RETRY: i32 = 7_200;
const SOA_EXPIRE: i32 = 360_000;
const SOA_MINIMUM: u32 = 432_000;

/// How a query arrived: it bounds the size of the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One member as the zone sees it: its client address and whether it serves DNS.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ZoneMember {
    /// `host:port` as in the membership.
    pub addr: String,
    /// Listed as `NAMESERVER` in TXT and as an NS target (else `REPLICA`).
    pub nameserver: bool,
}

/// A zone built from one membership: every record set, by lower-case owner name.
#[derive(Clone, Debug)]
pub struct Zone {
    apex: Name,
    /// Owner name (lower case, absolute, as text) → records at that name.
    records: BTreeMap<String, Vec<Record>>,
    serial: u32,
    ttl: u32,
    /// False while the replica knows no membership yet: in-zone queries then get
    /// SERVFAIL rather than a made-up empty zone.
    loaded: bool,
}

/// Why a domain cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a valid domain name: {1}")]
pub struct BadDomain(pub String, pub String);

/// Parses `-n DOMAIN` into an absolute, lower-case name with at least one dot-separated
/// label below the root (the original never answered a domain without a dot).
pub fn parse_domain(domain: &str) -> Result<Name, BadDomain> {
    let bad = |why: &str| BadDomain(domain.to_string(), why.to_string());
    let trimmed = domain.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut name = Name::from_ascii(trimmed).map_err(|e| bad(&e.to_string()))?;
    name.set_fqdn(true);
    if name.num_labels() == 0 {
        return Err(bad("the root zone cannot be served"));
    }
    Ok(name.to_lowercase())
}

/// The name an SRV or NS record gives for a member at `ip`: `a.b.c.d.ipaddr.DOMAIN`
/// for IPv4 (the original's form), `2001-db8-0-0-0-0-0-1.ipaddr.DOMAIN` for IPv6 (the
/// eight groups joined by `-`: colons, and a leading `-` of `::1`, are not valid labels).
pub fn ip_target(ip: IpAddr, apex: &Name) -> Option<Name> {
    let prefix = match ip {
        IpAddr::V4(v4) => format!("{v4}.ipaddr"),
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
            format!("{}.ipaddr", groups.join("-"))
        }
    };
    Name::from_ascii(prefix).ok()?.append_domain(apex).ok()
}

/// Splits `host:port` into an IP address (if the host is one) and a port.
pub(crate) fn split_addr(addr: &str) -> Option<(Result<IpAddr, String>, u16)> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Some((Ok(sa.ip()), sa.port()));
    }
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    Some((Err(host.to_string()), port))
}

/// The TXT record's text, in the original's format: `TYPE ip:port` joined by `;`.
pub fn txt_text(members: &[ZoneMember]) -> String {
    members
        .iter()
        .map(|m| format!("{} {}", if m.nameserver { "NAMESERVER" } else { "REPLICA" }, m.addr))
        .collect::<Vec<_>>()
        .join(";")
}

/// Cuts `text` into strings of at most 255 bytes (the TXT limit), on char
/// boundaries; readers join them back without separators (RFC 7208 §3.3 style).
pub fn txt_strings(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(TXT_STRING_MAX);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

fn key(name: &Name) -> String {
    let mut n = name.to_lowercase();
    n.set_fqdn(true);
    n.to_ascii()
}

impl Zone {
    /// A zone for `apex` that answers SERVFAIL until a membership arrives.
    pub fn unloaded(apex: Name, ttl: u32) -> Zone {
        Zone { apex, records: BTreeMap::new(), serial: 0, ttl, loaded: false }
    }

    /// The zone of one membership. `serial` must be the same on every name server
    /// for the same membership and grow with every change (the slot at which the
    /// membership took effect does both).
    pub fn build(apex: Name, ttl: u32, serial: u32, members: &[ZoneMember]) -> Zone {
        let mut zone =
            Zone { apex: apex.clone(), records: BTreeMap::new(), serial, ttl, loaded: true };
        let record = |name: &Name, data: RData| Record::from_rdata(name.clone(), ttl, data);
        let srv_name = Name::from_ascii("_concoord._tcp")
            .ok()
            .and_then(|n| n.append_domain(&apex).ok())
            .unwrap_or_else(|| apex.clone());
        let mut apex_addrs: Vec<IpAddr> = Vec::new();
        for member in members {
            let Some((host, port)) = split_addr(&member.addr) else { continue };
            let target = match host {
                Ok(ip) => {
                    if !apex_addrs.contains(&ip) {
                        apex_addrs.push(ip);
                    }
                    let Some(target) = ip_target(ip, &apex) else { continue };
                    let rdata = match ip {
                        IpAddr::V4(v4) => RData::A(A(v4)),
                        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                    };
                    let at = zone.records.entry(key(&target)).or_default();
                    if at.is_empty() {
                        at.push(record(&target, rdata));
                    }
                    target
                }
                // A member known by host name: that name is its own target, and it
                // resolves wherever that name is served.
                Err(host) => match Name::from_ascii(format!("{host}.")) {
                    Ok(n) => n,
                    Err(_) => continue,
                },
            };
            zone.add(record(&srv_name, RData::SRV(SRV::new(0, 100, port, target.clone()))));
            if member.nameserver {
                let ns = record(&apex, RData::NS(NS(target)));
                if !zone.records.get(&key(&apex)).is_some_and(|rs| rs.contains(&ns)) {
                    zone.add(ns);
                }
            }
        }
        for ip in apex_addrs {
            let rdata = match ip {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            zone.add(record(&apex, rdata));
        }
        let strings = txt_strings(&txt_text(members));
        zone.add(record(&apex, RData::TXT(TXT::new(strings))));
        zone.add(record(&apex, RData::SOA(zone.soa_data())));
        zone
    }

    fn add(&mut self, record: Record) {
        self.records.entry(key(&record.name)).or_default().push(record);
    }

    fn soa_data(&self) -> SOA {
        let admin = Name::from_ascii("dns-admin")
            .ok()
            .and_then(|n| n.append_domain(&self.apex).ok())
            .unwrap_or_else(|| self.apex.clone());
        SOA::new(
            self.apex.clone(),
            admin,
            self.serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            SOA_MINIMUM,
        )
    }

    fn soa(&self) -> Record {
        Record::from_rdata(self.apex.clone(), self.ttl, RData::SOA(self.soa_data()))
    }

    pub fn apex(&self) -> &Name {
        &self.apex
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// The records at `name` of type `rtype` (`ANY` for all), lower-cased lookup.
    pub fn lookup(&self, name: &Name, rtype: RecordType) -> Vec<Record> {
        self.records
            .get(&key(name))
            .map(|rs| {
                rs.iter()
                    .filter(|r| rtype == RecordType::ANY || r.record_type() == rtype)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when `name` owns records, or is an empty non-terminal above one.
    fn name_exists(&self, name: &Name) -> bool {
        let k = key(name);
        if self.records.contains_key(&k) {
            return true;
        }
        // Keys are absolute names; a descendant's text ends with ".<name>".
        let suffix = format!(".{k}");
        self.records.keys().any(|owner| owner.ends_with(&suffix))
    }

    /// Answers one DNS packet. `None` only when the bytes cannot carry an answer at
    /// all: shorter than a header, or themselves a response (answering responses
    /// invites loops between servers). Everything else gets a response that echoes
    /// the id and the RD bit.
    pub fn answer(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let mut decoder = BinDecoder::new(packet);
        let header = hickory_proto::op::Header::read(&mut decoder).ok()?;
        if header.metadata.message_type == MessageType::Response {
            return None;
        }
        let request = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(_) => {
                let mut m = Message::new(header.metadata.id, MessageType::Response, OpCode::Query);
                m.metadata = Metadata::response_from_request(&header.metadata);
                m.metadata.response_code = ResponseCode::FormErr;
                return encode(&m, UDP_PLAIN_MAX, transport);
            }
        };
        let limit = match transport {
            Transport::Tcp => TCP_MAX,
            Transport::Udp => match &request.edns {
                Some(e) => usize::from(e.max_payload().clamp(512, UDP_EDNS_MAX)),
                None => UDP_PLAIN_MAX,
            },
        };
        let response = self.respond(&request);
        encode(&response, limit, transport)
    }

    fn respond(&self, request: &Message) -> Message {
        let mut m =
            Message::new(request.metadata.id, MessageType::Response, request.metadata.op_code);
        m.metadata = Metadata::response_from_request(&request.metadata);
        m.add_queries(request.queries.iter().cloned());
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_EDNS_MAX);
            m.set_edns(edns);
        }
        if request.metadata.op_code != OpCode::Query {
            m.metadata.response_code = ResponseCode::NotImp;
            return m;
        }
        // One question per packet (RFC 9619); anything else is malformed here, as it is
        // for every mainstream server.
        let [query] = request.queries.as_slice() else {
            m.metadata.response_code = ResponseCode::FormErr;
            return m;
        };
        let name = query.name();
        if !self.apex.zone_of(name) {
            m.metadata.response_code = ResponseCode::Refused;
            return m;
        }
        if query.query_class() != DNSClass::IN && query.query_class() != DNSClass::ANY {
            m.metadata.response_code = ResponseCode::Refused;
            return m;
        }
        if !self.loaded {
            m.metadata.response_code = ResponseCode::ServFail;
            return m;
        }
        let qtype = query.query_type();
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            m.metadata.response_code = ResponseCode::Refused;
            return m;
        }
        m.metadata.authoritative = true;
        let mut answers = self.lookup(name, qtype);
        // Answers carry the owner name as asked (case preserved, RFC 4343).
        for r in &mut answers {
            r.name = name.clone();
        }
        if answers.is_empty() {
            if !self.name_exists(name) {
                m.metadata.response_code = ResponseCode::NXDomain;
            }
            m.add_authority(self.soa());
            return m;
        }
        let mut additionals: Vec<Record> = Vec::new();
        for r in &answers {
            let target = match &r.data {
                RData::SRV(srv) => Some(&srv.target),
                RData::NS(ns) => Some(&ns.0),
                _ => None,
            };
            if let Some(target) = target {
                for glue in self
                    .lookup(target, RecordType::A)
                    .into_iter()
                    .chain(self.lookup(target, RecordType::AAAA))
                {
                    if !additionals.contains(&glue) {
                        additionals.push(glue);
                    }
                }
            }
        }
        m.add_answers(answers);
        m.add_additionals(additionals);
        m
    }
}

/// Encodes `m` within `limit` bytes: over UDP, a response that does not fit is sent
/// with TC set and its answers dropped, so the client retries over TCP.
fn encode(m: &Message, limit: usize, transport: Transport) -> Option<Vec<u8>> {
    let full = m.to_vec().ok();
    if let Some(bytes) = &full {
        if bytes.len() <= limit {
            return full;
        }
    }
    if transport == Transport::Udp {
        let mut short = m.truncate();
        short.metadata.authoritative = m.metadata.authoritative;
        short.metadata.response_code = m.metadata.response_code;
        if let Ok(bytes) = short.to_vec() {
            if bytes.len() <= limit {
                return Some(bytes);
            }
        }
    }
    // A response that cannot be encoded at all (or not even truncated): SERVFAIL
    // without a question section always fits.
    let mut fail = Message::new(m.metadata.id, MessageType::Response, m.metadata.op_code);
    fail.metadata.recursion_desired = m.metadata.recursion_desired;
    fail.metadata.response_code = ResponseCode::ServFail;
    fail.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn zone(addrs: &[&str]) -> Zone {
        let members: Vec<ZoneMember> =
            addrs.iter().map(|a| ZoneMember { addr: a.to_string(), nameserver: true }).collect();
        Zone::build(parse_domain("cc.example.test").unwrap(), DEFAULT_TTL, 7, &members)
    }

    fn ask(zone: &Zone, name: &str, rtype: RecordType) -> Message {
        let mut q = Message::new(0x1234, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        let reply = zone.answer(&q.to_vec().unwrap(), Transport::Udp).expect("an answer");
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert!(m.metadata.recursion_desired, "RD is echoed");
        assert_eq!(m.metadata.message_type, MessageType::Response);
        m
    }

    fn texts(records: &[Record]) -> Vec<String> {
        let mut out: Vec<String> = records.iter().map(|r| r.data.to_string()).collect();
        out.sort();
        out
    }

    const THREE: [&str; 3] = ["127.0.0.1:14000", "127.0.0.2:14001", "[::1]:14002"];

    #[test]
    fn apex_records_list_every_member() {
        let z = zone(&THREE);
        let a = ask(&z, "cc.example.test.", RecordType::A);
        assert!(a.metadata.authoritative);
        assert_eq!(texts(&a.answers), ["127.0.0.1", "127.0.0.2"]);
        let aaaa = ask(&z, "CC.Example.Test.", RecordType::AAAA);
        assert_eq!(texts(&aaaa.answers), ["::1"]);
        assert_eq!(aaaa.answers[0].name.to_ascii(), "CC.Example.Test.", "case as asked");
        let txt = ask(&z, "cc.example.test.", RecordType::TXT);
        let RData::TXT(t) = &txt.answers[0].data else { panic!("not TXT") };
        assert_eq!(
            t.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect::<String>(),
            "NAMESERVER 127.0.0.1:14000;NAMESERVER 127.0.0.2:14001;NAMESERVER [::1]:14002"
        );
        let soa = ask(&z, "cc.example.test.", RecordType::SOA);
        let RData::SOA(s) = &soa.answers[0].data else { panic!("not SOA") };
        assert_eq!(s.serial, 7);
        assert_eq!(s.rname.to_ascii(), "dns-admin.cc.example.test.");
        assert_eq!(soa.answers[0].ttl, DEFAULT_TTL);
    }

    #[test]
    fn srv_and_ns_targets_resolve_with_glue() {
        let z = zone(&THREE);
        let srv = ask(&z, "_concoord._tcp.cc.example.test.", RecordType::SRV);
        assert_eq!(
            texts(&srv.answers),
            [
                "0 100 14000 127.0.0.1.ipaddr.cc.example.test.",
                "0 100 14001 127.0.0.2.ipaddr.cc.example.test.",
                "0 100 14002 0-0-0-0-0-0-0-1.ipaddr.cc.example.test.",
            ]
        );
        assert_eq!(srv.additionals.len(), 3, "glue for every target");
        for r in &srv.answers {
            let RData::SRV(s) = &r.data else { panic!() };
            let target = s.target.to_ascii();
            let rtype = if target.starts_with("0-") { RecordType::AAAA } else { RecordType::A };
            let a = ask(&z, &target, rtype);
            assert_eq!(a.answers.len(), 1, "{target} resolves");
        }
        let ns = ask(&z, "cc.example.test.", RecordType::NS);
        assert_eq!(ns.answers.len(), 3);
        assert_eq!(ns.additionals.len(), 3);
    }

    #[test]
    fn other_names_and_types_get_proper_negative_answers() {
        let z = zone(&THREE);
        let nodata = ask(&z, "cc.example.test.", RecordType::MX);
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
        let ent = ask(&z, "_tcp.cc.example.test.", RecordType::A);
        assert_eq!(ent.metadata.response_code, ResponseCode::NoError, "empty non-terminal");
        let nx = ask(&z, "nope.cc.example.test.", RecordType::A);
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert!(nx.metadata.authoritative);
        assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
        let stranger = ask(&z, "9.9.9.9.ipaddr.cc.example.test.", RecordType::A);
        assert_eq!(stranger.metadata.response_code, ResponseCode::NXDomain);
        let outside = ask(&z, "example.test.", RecordType::A);
        assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
        assert!(!outside.metadata.authoritative);
        let axfr = ask(&z, "cc.example.test.", RecordType::AXFR);
        assert_eq!(axfr.metadata.response_code, ResponseCode::Refused);
        let any = ask(&z, "cc.example.test.", RecordType::ANY);
        assert_eq!(any.answers.len(), 2 + 1 + 1 + 3 + 1, "A A AAAA TXT NS NS NS SOA");
    }

    #[test]
    fn a_member_known_by_host_name_is_its_own_target() {
        let z = zone(&["127.0.0.1:14000", "db1.example.net:14001"]);
        let srv = ask(&z, "_concoord._tcp.cc.example.test.", RecordType::SRV);
        assert_eq!(
            texts(&srv.answers),
            ["0 100 14000 127.0.0.1.ipaddr.cc.example.test.", "0 100 14001 db1.example.net."]
        );
        assert_eq!(srv.additionals.len(), 1, "no glue for a name outside the zone");
        let a = ask(&z, "cc.example.test.", RecordType::A);
        assert_eq!(texts(&a.answers), ["127.0.0.1"]);
    }

    #[test]
    fn an_unloaded_zone_says_servfail() {
        let z = Zone::unloaded(parse_domain("cc.example.test").unwrap(), DEFAULT_TTL);
        let m = ask(&z, "cc.example.test.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        let m = ask(&z, "other.test.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn multi_question_and_malformed_packets_get_formerr_with_id_and_rd() {
        let z = zone(&THREE);
        let mut q = Message::new(77, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii("cc.example.test.").unwrap(), RecordType::A));
        q.add_query(Query::query(Name::from_ascii("cc.example.test.").unwrap(), RecordType::TXT));
        let m =
            Message::from_vec(&z.answer(&q.to_vec().unwrap(), Transport::Udp).unwrap()).unwrap();
        assert_eq!((m.metadata.id, m.metadata.response_code), (77, ResponseCode::FormErr));
        assert!(m.metadata.recursion_desired);
        // A header that promises a question that is not there.
        let mut bytes = q.to_vec().unwrap();
        bytes.truncate(14);
        let m = Message::from_vec(&z.answer(&bytes, Transport::Udp).unwrap()).unwrap();
        assert_eq!((m.metadata.id, m.metadata.response_code), (77, ResponseCode::FormErr));
        assert!(m.metadata.recursion_desired);
        assert!(z.answer(&bytes[..11], Transport::Udp).is_none(), "no header, nothing to echo");
        // A response is never answered.
        let mut r = q.clone();
        r.metadata.message_type = MessageType::Response;
        assert!(z.answer(&r.to_vec().unwrap(), Transport::Udp).is_none());
        // Other opcodes are not implemented.
        let mut u = Message::new(5, MessageType::Query, OpCode::Update);
        u.add_query(Query::query(Name::from_ascii("cc.example.test.").unwrap(), RecordType::SOA));
        let m =
            Message::from_vec(&z.answer(&u.to_vec().unwrap(), Transport::Udp).unwrap()).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    }

    #[test]
    fn large_clusters_split_txt_and_truncate_over_udp() {
        let addrs: Vec<String> =
            (0..60).map(|i| format!("10.0.{}.{}:14000", i / 200, i % 200 + 1)).collect();
        let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        let z = zone(&refs);
        let mut q = Message::new(9, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(Name::from_ascii("cc.example.test.").unwrap(), RecordType::TXT));
        let udp =
            Message::from_vec(&z.answer(&q.to_vec().unwrap(), Transport::Udp).unwrap()).unwrap();
        assert!(udp.metadata.truncation, "60 members do not fit in 512 bytes");
        assert!(udp.answers.is_empty());
        let tcp =
            Message::from_vec(&z.answer(&q.to_vec().unwrap(), Transport::Tcp).unwrap()).unwrap();
        let RData::TXT(t) = &tcp.answers[0].data else { panic!("not TXT") };
        assert!(t.txt_data.len() > 1 && t.txt_data.iter().all(|s| s.len() <= 255));
        let joined: String =
            t.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect();
        assert_eq!(
            joined,
            txt_text(
                &refs
                    .iter()
                    .map(|a| ZoneMember { addr: a.to_string(), nameserver: true })
                    .collect::<Vec<_>>()
            )
        );
        assert_eq!(txt_strings(""), [""]);
        assert_eq!(
            txt_strings(&"é".repeat(200)).iter().map(|s| s.len()).collect::<Vec<_>>(),
            [254, 146]
        );
    }

    /// Random bytes and mutated valid queries: every packet gets a well-formed answer
    /// or none (when it has no header or is a response), and nothing panics.
    #[test]
    fn fuzzed_packets_never_panic() {
        let z = zone(&THREE);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut valid = Message::new(1, MessageType::Query, OpCode::Query);
        valid.add_query(Query::query(
            Name::from_ascii("_concoord._tcp.cc.example.test.").unwrap(),
            RecordType::SRV,
        ));
        valid.set_edns(Edns::new());
        let valid = valid.to_vec().unwrap();
        let mut answered = 0;
        for i in 0..20_000 {
            let packet: Vec<u8> = if i % 2 == 0 {
                let len = (next() % 600) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut p = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % p.len();
                    p[at] = next() as u8;
                }
                p.truncate(p.len() - (next() % 3) as usize);
                p
            };
            for transport in [Transport::Udp, Transport::Tcp] {
                if let Some(reply) = z.answer(&packet, transport) {
                    let m = Message::from_vec(&reply).expect("our answers decode");
                    assert_eq!(m.metadata.id, u16::from_be_bytes([packet[0], packet[1]]));
                    assert_eq!(m.metadata.message_type, MessageType::Response);
                    if transport == Transport::Udp {
                        assert!(reply.len() <= usize::from(UDP_EDNS_MAX));
                    }
                    answered += 1;
                }
            }
        }
        assert!(answered > 10_000, "most packets are answered: {answered}");
    }
}
