//! Finding a cluster's replicas by domain name, for clients: `dns://DOMAIN` or
//! `dns://DOMAIN@server[:port]`. SRV at `_concoord._tcp.DOMAIN` first (targets
//! resolved from the response's additional section, else by an A/AAAA query), then
//! A/AAAA at DOMAIN with the default replica port. It is a stub resolver for this one
//! purpose: no cache, no recursion of its own, no search list.

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The replica port assumed when a domain has A records but no SRV.
pub const DEFAULT_REPLICA_PORT: u16 = 14000;
/// Prefix of a cluster address given by domain name.
pub const SCHEME: &str = "dns://";
/// How long one DNS query may take (one UDP try and a resend).
const QUERY_TIMEOUT: Duration = Duration::from_millis(1500);
/// Most SRV targets followed with their own A/AAAA query.
const TARGETS_MAX: usize = 64;

/// A cluster named by a domain, and the server to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsTarget {
    pub domain: Name,
    /// `None`: the first `nameserver` of /etc/resolv.conf.
    pub server: Option<SocketAddr>,
}

/// Why a name did not give replica addresses.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Syntax(String),
    #[error("DNS query for {name} {rtype} to {server} failed: {why}")]
    Query { name: String, rtype: RecordType, server: SocketAddr, why: String },
    #[error("{0} has neither SRV records at _concoord._tcp nor A/AAAA records")]
    NoAddress(String),
    #[error(
        "no name server to ask: /etc/resolv.conf names none; write dns://DOMAIN@server[:port]"
    )]
    NoServer,
}

/// Parses `dns://DOMAIN[@server[:port]]` (server an IP address, IPv6 in brackets,
/// port 53 by default). `None` when `s` does not start with `dns://`.
pub fn parse_dns_url(s: &str) -> Option<Result<DnsTarget, ResolveError>> {
    let rest = s.trim().strip_prefix(SCHEME)?;
    let bad = |why: &str| {
        ResolveError::Syntax(format!("{s:?}: {why} (write dns://DOMAIN[@server[:port]])"))
    };
    let (domain, server) = match rest.split_once('@') {
        Some((d, srv)) => (d, Some(srv)),
        None => (rest, None),
    };
    let domain = match crate::zone::parse_domain(domain) {
        Ok(d) => d,
        Err(e) => return Some(Err(bad(&e.to_string()))),
    };
    let server = match server {
        None => None,
        Some(srv) => match parse_server(srv) {
            Some(sa) => Some(sa),
            None => {
                return Some(Err(bad("the server must be an IP address, with an optional :port")))
            }
        },
    };
    Some(Ok(DnsTarget { domain, server }))
}

fn parse_server(s: &str) -> Option<SocketAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()?;
    Some(SocketAddr::new(ip, 53))
}

/// The first `nameserver` line of /etc/resolv.conf.
fn system_server() -> Option<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
}

/// The replicas of `target`, as `host:port` strings, in SRV priority order.
pub async fn resolve(target: &DnsTarget) -> Result<Vec<String>, ResolveError> {
    let server = match target.server {
        Some(s) => s,
        None => system_server().ok_or(ResolveError::NoServer)?,
    };
    let srv_name = Name::from_ascii("_concoord._tcp")
        .and_then(|n| n.append_domain(&target.domain))
        .map_err(|e| ResolveError::Syntax(e.to_string()))?;
    let srv = query(server, &srv_name, RecordType::SRV).await?;
    let mut records: Vec<(u16, u16, u16, Name)> = srv
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.priority, s.weight, s.port, s.target.clone())),
            _ => None,
        })
        .collect();
    // Lower priority first; among equals, heavier first (a stable order beats
    // RFC 2782's weighted draw here: every address is tried in turn anyway).
    records.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out: Vec<String> = Vec::new();
    for (_, _, port, target_name) in records.into_iter().take(TARGETS_MAX) {
        let mut ips: Vec<IpAddr> = srv
            .additionals
            .iter()
            .filter(|r| r.name == target_name)
            .filter_map(|r| ip_of(&r.data))
            .collect();
        if ips.is_empty() {
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Ok(m) = query(server, &target_name, rtype).await {
                    ips.extend(m.answers.iter().filter_map(|r| ip_of(&r.data)));
                }
            }
        }
        if ips.is_empty() {
            // A target outside the zone: let the system resolver find it when connecting.
            push(&mut out, format!("{}:{port}", target_name.to_ascii().trim_end_matches('.')));
        }
        for ip in ips {
            push(&mut out, SocketAddr::new(ip, port).to_string());
        }
    }
    if out.is_empty() {
        for rtype in [RecordType::A, RecordType::AAAA] {
            let m = query(server, &target.domain, rtype).await?;
            for ip in m.answers.iter().filter_map(|r| ip_of(&r.data)) {
                push(&mut out, SocketAddr::new(ip, DEFAULT_REPLICA_PORT).to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(ResolveError::NoAddress(target.domain.to_ascii()));
    }
    Ok(out)
}

fn push(out: &mut Vec<String>, addr: String) {
    if !out.contains(&addr) {
        out.push(addr);
    }
}

fn ip_of(data: &RData) -> Option<IpAddr> {
    match data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// One query: UDP (resent once), then TCP when the answer is truncated. NXDOMAIN
/// and NODATA come back as a response without answers.
pub async fn query(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
) -> Result<Message, ResolveError> {
    let fail = |why: String| ResolveError::Query { name: name.to_ascii(), rtype, server, why };
    let mut request = Message::query();
    request.metadata.recursion_desired = true;
    request.add_query(Query::query(name.clone(), rtype));
    let bytes = request.to_vec().map_err(|e| fail(e.to_string()))?;
    let id = request.metadata.id;
    let response = match tokio::time::timeout(QUERY_TIMEOUT, udp_exchange(server, &bytes, id)).await
    {
        Ok(Ok(m)) => m,
        Ok(Err(why)) => return Err(fail(why)),
        Err(_) => return Err(fail(format!("no answer within {QUERY_TIMEOUT:?}"))),
    };
    let response = if response.metadata.truncation {
        match tokio::time::timeout(QUERY_TIMEOUT, tcp_exchange(server, &bytes, id)).await {
            Ok(Ok(m)) => m,
            Ok(Err(why)) => return Err(fail(why)),
            Err(_) => return Err(fail(format!("no TCP answer within {QUERY_TIMEOUT:?}"))),
        }
    } else {
        response
    };
    match response.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(response),
        code => Err(fail(format!("the server answered {code}"))),
    }
}

fn check(bytes: &[u8], id: u16) -> Option<Message> {
    let m = Message::from_vec(bytes).ok()?;
    (m.metadata.id == id && m.metadata.message_type == MessageType::Response).then_some(m)
}

async fn udp_exchange(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let local = if server.is_ipv4() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    } else {
        "[::]:0".parse().map_err(|_| "bad address")?
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65_536];
    for _ in 0..2 {
        socket.send(bytes).await.map_err(|e| e.to_string())?;
        let wait = tokio::time::sleep(QUERY_TIMEOUT / 2);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                r = socket.recv(&mut buf) => {
                    let n = r.map_err(|e| e.to_string())?;
                    // A stray or forged datagram is skipped, not believed.
                    if let Some(m) = check(&buf[..n], id) {
                        return Ok(m);
                    }
                }
                _ = &mut wait => break,
            }
        }
    }
    Err("no answer over UDP".to_string())
}

async fn tcp_exchange(server: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let mut stream = TcpStream::connect(server).await.map_err(|e| e.to_string())?;
    let len = u16::try_from(bytes.len()).map_err(|_| "query too large".to_string())?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    check(&buf, id).ok_or_else(|| "a TCP answer that does not match the query".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_urls_parse() {
        let t = parse_dns_url("dns://cc.example.test@127.0.0.1:5353").unwrap().unwrap();
        assert_eq!(t.domain.to_ascii(), "cc.example.test.");
        assert_eq!(t.server, Some("127.0.0.1:5353".parse().unwrap()));
        let t = parse_dns_url("dns://CC.Example.Test.").unwrap().unwrap();
        assert_eq!(t.domain.to_ascii(), "cc.example.test.");
        assert_eq!(t.server, None);
        let t = parse_dns_url("dns://a.test@[::1]").unwrap().unwrap();
        assert_eq!(t.server, Some("[::1]:53".parse().unwrap()));
        assert!(parse_dns_url("127.0.0.1:14000").is_none());
        assert!(matches!(parse_dns_url("dns://"), Some(Err(_))));
        assert!(matches!(parse_dns_url("dns://a.test@ns.example"), Some(Err(_))));
        assert!(matches!(parse_dns_url("dns://a..b"), Some(Err(_))));
    }
}
