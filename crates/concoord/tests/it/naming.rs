//! The name server (`-n`): DNS queries of every record type against a real
//! cluster, following a join and a removal; clients finding the cluster through
//! `dns://`; and a listener that survives garbage.

use crate::harness::{serial, Cluster, Setup, BIN};
use concoord_client::Client;
use concoord_naming::resolve::query;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

const DOMAIN: &str = "cc.example.test.";

/// The address the name server of replica `index` announced in its log.
fn dns_addr(cluster: &Cluster, index: usize) -> SocketAddr {
    let log = cluster.replicas[index].as_ref().expect("live replica").log.clone();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| l.split("name server listening on ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no name server line in {}\n{text}", log.display()))
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

async fn ask(server: SocketAddr, qname: &str, rtype: RecordType) -> Message {
    query(server, &name(qname), rtype).await.unwrap_or_else(|e| panic!("{e}"))
}

/// What one name server says about the cluster.
#[derive(Debug, PartialEq, Eq)]
struct View {
    a: BTreeSet<String>,
    srv: BTreeSet<String>,
    txt: String,
    ns: BTreeSet<String>,
    serial: u32,
}

async fn view(server: SocketAddr) -> View {
    let texts = |m: &Message| m.answers.iter().map(|r| r.data.to_string()).collect();
    let a = texts(&ask(server, DOMAIN, RecordType::A).await);
    let srv = texts(&ask(server, &format!("_concoord._tcp.{DOMAIN}"), RecordType::SRV).await);
    let txt = ask(server, DOMAIN, RecordType::TXT).await;
    let txt = match txt.answers.first().map(|r| &r.data) {
        Some(RData::TXT(t)) => t.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect(),
        other => panic!("TXT answer {other:?}"),
    };
    let ns = texts(&ask(server, DOMAIN, RecordType::NS).await);
    let soa = ask(server, DOMAIN, RecordType::SOA).await;
    let serial = match soa.answers.first().map(|r| &r.data) {
        Some(RData::SOA(s)) => s.serial,
        other => panic!("SOA answer {other:?}"),
    };
    View { a, srv, txt, ns, serial }
}

/// The view every name server must give for these member addresses, of which the
/// ones `is_ns` accepts run a name server.
fn expected(members: &[String], is_ns: &dyn Fn(&str) -> bool, serial: u32) -> View {
    let mut a = BTreeSet::new();
    let mut srv = BTreeSet::new();
    let mut ns = BTreeSet::new();
    let mut txt = Vec::new();
    for m in members {
        let (ip, port) = m.rsplit_once(':').unwrap();
        a.insert(ip.to_string());
        srv.insert(format!("0 100 {port} {ip}.ipaddr.{DOMAIN}"));
        if is_ns(m) {
            ns.insert(format!("{ip}.ipaddr.{DOMAIN}"));
            txt.push(format!("NAMESERVER {m}"));
        } else {
            txt.push(format!("REPLICA {m}"));
        }
    }
    View { a, srv, txt: txt.join(";"), ns, serial }
}

/// The leader's member addresses, in the membership's order (by replica id).
async fn members(cluster: &Cluster) -> Vec<String> {
    let leader = cluster.leader().await;
    let status = cluster.status(leader).await.expect("leader status");
    status.members.iter().map(|m| m.addr.clone()).collect()
}

/// Waits (10 s at most) until every live replica's name server shows `members`
/// with one and the same serial; returns that serial. Every member serves DNS.
async fn wait_views(cluster: &Cluster, members: &[String], what: &str) -> u32 {
    wait_views_of(cluster, &cluster.live(), members, &|_| true, what).await
}

/// `wait_views` for the name servers of replicas `servers`, where the members
/// `is_ns` accepts are the ones that serve DNS.
async fn wait_views_of(
    cluster: &Cluster,
    servers: &[usize],
    members: &[String],
    is_ns: &dyn Fn(&str) -> bool,
    what: &str,
) -> u32 {
    let mut last = Vec::new();
    for _ in 0..100 {
        last.clear();
        for i in servers {
            last.push(view(dns_addr(cluster, *i)).await);
        }
        let serial = last[0].serial;
        if last.iter().all(|v| *v == expected(members, is_ns, serial)) {
            return serial;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: name servers disagree with members {members:?}: {last:#?}\n{}", cluster.logs());
}

fn dig_available() -> bool {
    let found = std::process::Command::new("dig").arg("-v").output().is_ok();
    // CI installs dnsutils: there, a missing dig is a failure, not a skip.
    assert!(found || std::env::var_os("CI").is_none(), "dig is missing (apt-get install dnsutils)");
    found
}

fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=2", "+tries=2"])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_servers_answer_from_the_membership_and_follow_its_changes() {
    let _serial = serial();
    let extra = ["-n", DOMAIN, "--dns-port", "0", "--remove-dead-after", "2"];
    let setup = Setup {
        extra: extra.iter().map(|s| s.to_string()).collect(),
        distinct_hosts: true,
        ..Setup::default()
    };
    let mut cluster = Cluster::start(3, setup).await;
    let three = members(&cluster).await;
    assert_eq!(three.len(), 3);
    let serial3 = wait_views(&cluster, &three, "3 members").await;

    let server = dns_addr(&cluster, 1);
    // SRV targets resolve, through the additional section and on their own.
    let srv = ask(server, &format!("_concoord._tcp.{DOMAIN}"), RecordType::SRV).await;
    assert_eq!(srv.additionals.len(), 3, "glue for every target: {srv:?}");
    for r in &srv.answers {
        let RData::SRV(s) = &r.data else { panic!("{r:?}") };
        let a = ask(server, &s.target.to_ascii(), RecordType::A).await;
        let ip = s.target.to_ascii().split(".ipaddr.").next().unwrap().to_string();
        assert_eq!(a.answers.iter().map(|r| r.data.to_string()).collect::<Vec<_>>(), [ip]);
        assert!(a.metadata.authoritative);
    }
    // NS comes with glue; AAAA has no data here; other names and types are answered.
    let ns = ask(server, DOMAIN, RecordType::NS).await;
    assert_eq!(ns.additionals.len(), 3, "{ns:?}");
    let nodata = ask(server, DOMAIN, RecordType::AAAA).await;
    assert!(nodata.answers.is_empty() && nodata.metadata.authoritative);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
    let nx = ask(server, &format!("nothing.{DOMAIN}"), RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let refused = query(server, &name("example.org."), RecordType::A).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("Refused")), "outside the zone");

    if dig_available() {
        let soa = dig(server, &[DOMAIN, "SOA", "+short"]);
        assert!(soa.contains(&format!("dns-admin.{DOMAIN} {serial3} ")), "{soa}");
        let tcp = dig(server, &["+tcp", "+short", &format!("_concoord._tcp.{DOMAIN}"), "SRV"]);
        assert_eq!(tcp.lines().count(), 3, "{tcp}");
        let nx = dig(server, &[&format!("x.{DOMAIN}"), "MX"]);
        assert!(nx.contains("status: NXDOMAIN") && nx.contains("flags: qr aa rd"), "{nx}");
        let refused = dig(server, &["example.org", "A"]);
        assert!(refused.contains("status: REFUSED"), "{refused}");
    }

    // Clients find the cluster by name: the library and the CLI.
    let url = format!("dns://{DOMAIN}@{server}");
    let client = Client::connect(&url, cluster.options()).await.expect("connect by name");
    client.call("default", "increment", vec![]).await.unwrap();
    let out = std::process::Command::new(BIN)
        .args(["call", "-b", &url, "getvalue"])
        .output()
        .expect("run concoord call");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{out:?}");
    let out = std::process::Command::new(BIN)
        .args(["status", "-b", &url])
        .output()
        .expect("run concoord status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("health: healthy"), "{table}");
    assert!(
        three.iter().all(|m| table.contains(m.as_str())) && !table.contains("dns://"),
        "{table}"
    );

    // A join shows on every name server, the new one included, with a larger serial.
    cluster.add_replica();
    cluster.wait_voters(4).await;
    let four = members(&cluster).await;
    assert_eq!(four.len(), 4);
    let serial4 = wait_views(&cluster, &four, "after a join").await;
    assert!(serial4 > serial3, "the serial grows: {serial3} -> {serial4}");

    // A removal too.
    let leader = cluster.leader().await;
    let victim = (0..4).find(|i| *i != leader && *i != 1).unwrap();
    let gone = cluster.addrs[victim].clone();
    cluster.kill(victim);
    let mut rest = Vec::new();
    for _ in 0..100 {
        rest = members(&cluster).await;
        if !rest.contains(&gone) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rest.len(), 3, "{gone} removed: {rest:?}");
    let serial_after = wait_views(&cluster, &rest, "after a removal").await;
    assert!(serial_after > serial4, "the serial grows: {serial4} -> {serial_after}");

    // The client re-resolves on failover: it still works with a member gone.
    client.call("default", "increment", vec![]).await.unwrap();
    client.close().await;
}

/// Random datagrams, oversized ones, mutated queries and TCP garbage: the name
/// server answers what it can, drops the rest, and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_listener_survives_garbage() {
    let _serial = serial();
    let extra = ["-n", DOMAIN, "--dns-port", "0"];
    let setup = Setup { extra: extra.iter().map(|s| s.to_string()).collect(), ..Setup::default() };
    let cluster = Cluster::start(1, setup).await;
    let server = dns_addr(&cluster, 0);
    let one = members(&cluster).await;
    wait_views(&cluster, &one, "1 member").await;

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut valid = Message::query();
    valid.add_query(hickory_proto::op::Query::query(name(DOMAIN), RecordType::TXT));
    let valid = valid.to_vec().unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut answers = 0;
    let mut buf = vec![0u8; 65_536];
    for i in 0..3_000 {
        let packet: Vec<u8> = match i % 3 {
            0 => (0..next() % 700).map(|_| next() as u8).collect(),
            1 => {
                let mut p = valid.clone();
                let at = next() as usize % p.len();
                p[at] = next() as u8;
                p
            }
            // Oversized: a valid query followed by junk up to 9000 bytes.
            _ => valid
                .iter()
                .copied()
                .chain((0..9_000 - valid.len()).map(|_| next() as u8))
                .collect(),
        };
        socket.send_to(&packet, server).await.unwrap();
        // Drain whatever came back so far, without waiting for answers that never come.
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(0), socket.recv_from(&mut buf)).await
        {
            assert!(Message::from_vec(&buf[..n]).is_ok(), "answers decode");
            answers += 1;
        }
    }
    assert!(answers > 0, "garbage with a header is answered (FORMERR or better)");
    for _ in 0..20 {
        use tokio::io::AsyncWriteExt;
        let mut tcp = tokio::net::TcpStream::connect(server).await.unwrap();
        let junk: Vec<u8> = (0..next() % 3000).map(|_| next() as u8).collect();
        let _ = tcp.write_all(&junk).await;
    }
    // Still serving, over both transports, and the replica is fine.
    assert_eq!(view(server).await, expected(&one, &|_| true, view(server).await.serial));
    if dig_available() {
        let tcp = dig(server, &["+tcp", "+short", DOMAIN, "A"]);
        assert_eq!(tcp.trim(), "127.0.0.1", "{tcp}");
    }
    let client = cluster.client().await;
    client.call("default", "increment", vec![]).await.unwrap();
    client.close().await;
}

/// A replica given `-b dns://DOMAIN@server` finds the cluster through its name
/// server and joins it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joins_through_a_dns_boot_entry() {
    let _serial = serial();
    let extra = ["-n", DOMAIN, "--dns-port", "0"];
    let setup = Setup { extra: extra.iter().map(|s| s.to_string()).collect(), ..Setup::default() };
    let cluster = Cluster::start(2, setup).await;
    let server = dns_addr(&cluster, 0);
    let boot = format!("dns://{}@{server}", DOMAIN.trim_end_matches('.'));
    let args: Vec<String> = ["-a", "127.0.0.1", "-p", "0", "-o", "Counter", "-b", &boot]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let log = cluster.scratch.0.join("dns-joiner.log");
    struct Kill(crate::harness::Replica);
    impl Drop for Kill {
        fn drop(&mut self) {
            self.0.kill();
        }
    }
    let joiner = Kill(crate::harness::spawn_replica(&args, &log));
    cluster.wait_voters(3).await;
    let status = cluster.status(cluster.leader().await).await.unwrap();
    assert!(status.members.iter().any(|m| m.addr == joiner.0.addr), "{status:?}");

    // A name nobody serves is a clear error at start, not a replica that waits.
    let out = std::process::Command::new(BIN)
        .args(["replica", "-a", "127.0.0.1", "-p", "0", "-o", "Counter", "-b"])
        .arg(format!("dns://nobody.example.test@{server}"))
        .output()
        .expect("run concoord replica");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cannot look up the replicas"), "{err}");
}

/// Only the members started with `-n` are name servers: NS (with its glue) and the
/// TXT `NAMESERVER` entries list them alone, and every name server says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_started_with_n_are_listed_as_name_servers() {
    let _serial = serial();
    let with_n: Vec<String> =
        ["-n", DOMAIN, "--dns-port", "0"].iter().map(|s| s.to_string()).collect();
    let setup = Setup {
        distinct_hosts: true,
        extra_for: [(0, with_n.clone()), (2, with_n)].into_iter().collect(),
        ..Setup::default()
    };
    let cluster = Cluster::start(3, setup).await;
    let three = members(&cluster).await;
    assert_eq!(three.len(), 3);
    let servers = [cluster.addrs[0].clone(), cluster.addrs[2].clone()];
    let is_ns = |m: &str| servers.iter().any(|s| s == m);
    wait_views_of(&cluster, &[0, 2], &three, &is_ns, "replicas 0 and 2 serve DNS").await;

    let server = dns_addr(&cluster, 2);
    let ns = ask(server, DOMAIN, RecordType::NS).await;
    let glue: BTreeSet<String> = ns.additionals.iter().map(|r| r.data.to_string()).collect();
    let ips: BTreeSet<String> =
        servers.iter().map(|s| s.rsplit_once(':').unwrap().0.to_string()).collect();
    assert_eq!(glue, ips, "glue for the two name servers only: {ns:?}");

    if dig_available() {
        let ns = dig(server, &[DOMAIN, "NS", "+short"]);
        let mut listed: Vec<&str> = ns.lines().collect();
        listed.sort_unstable();
        let mut want: Vec<String> = ips.iter().map(|ip| format!("{ip}.ipaddr.{DOMAIN}")).collect();
        want.sort_unstable();
        assert_eq!(listed, want, "{ns}");
        let txt = dig(dns_addr(&cluster, 0), &[DOMAIN, "TXT", "+short"]);
        let replica = &cluster.addrs[1];
        assert!(txt.contains(&format!("REPLICA {replica}")), "{txt}");
        assert_eq!(txt.matches("NAMESERVER ").count(), 2, "{txt}");
    }
}

/// A data directory written before member records carried a name-server port
/// (`tests/fixtures/data-before-dns-port`, see its README) still recovers: the
/// objects keep their state, the cluster serves calls, and the old members are
/// listed as plain replicas (their records say nothing about DNS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_before_dns_ports_recovers() {
    let _serial = serial();
    // The fixture's replicas have fixed addresses (they are in its log): hold a
    // machine-wide lock so two checkouts running this test never share them.
    let lock_path = std::env::temp_dir().join("concoord-test-127.0.0.41.lock");
    let lock = std::fs::File::create(&lock_path).expect("create the fixture lock");
    lock.lock().expect("lock the fixture addresses");
    let scratch = crate::harness::Scratch::new("old-data");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data-before-dns-port");
    struct Kill(Vec<crate::harness::Replica>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for r in &mut self.0 {
                r.kill();
            }
        }
    }
    let mut replicas = Kill(Vec::new());
    for (name, ip) in [("a", "127.0.0.41"), ("b", "127.0.0.42")] {
        let dir = scratch.0.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["identity", "log", "snapshot"] {
            std::fs::copy(fixture.join(name).join(file), dir.join(file)).unwrap();
        }
        let mut args: Vec<String> = ["-a", ip, "-p", "14000", "-o", "Counter", "--data-dir"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(dir.display().to_string());
        args.extend(["-n", DOMAIN, "--dns-port", "0"].iter().map(|s| s.to_string()));
        let log = scratch.0.join(format!("{name}.log"));
        replicas.0.push(crate::harness::spawn_replica(&args, &log));
    }
    let boot = "127.0.0.41:14000,127.0.0.42:14000";
    let client = Client::connect(boot, Default::default()).await.expect("connect");
    let value = client.call("default", "getvalue", vec![]).await.expect("getvalue");
    assert_eq!(value.to_string(), "20", "the fixture's counter");
    client.call("default", "increment", vec![]).await.expect("increment");
    let value = client.call("default", "getvalue", vec![]).await.expect("getvalue");
    assert_eq!(value.to_string(), "21");
    client.close().await;

    let log = std::fs::read_to_string(&replicas.0[0].log).unwrap_or_default();
    let server: SocketAddr = log
        .lines()
        .filter_map(|l| l.split("name server listening on ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no name server line\n{log}"));
    let want = "REPLICA 127.0.0.41:14000;REPLICA 127.0.0.42:14000";
    let mut txt = String::new();
    for _ in 0..100 {
        let m = ask(server, DOMAIN, RecordType::TXT).await;
        txt = match m.answers.first().map(|r| &r.data) {
            Some(RData::TXT(t)) => t.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect(),
            _ => String::new(),
        };
        if txt == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(txt, want);
    drop(replicas);
}
