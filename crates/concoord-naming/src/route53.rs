//! Route53 publishing (`-n DOMAIN -r`): the leader replaces the A/AAAA, SRV and TXT
//! record sets of the hosted zone named DOMAIN (and the A/AAAA records of the SRV
//! targets) with the membership, in one `ChangeResourceRecordSets` batch of UPSERTs
//! (and DELETEs of the sets of members that left, found by listing the zone first),
//! over Route53's REST API signed with AWS Signature Version 4.
//!
//! It is a client for these three calls only (find the zone, list and change its
//! records), not an AWS SDK. Credentials: the standard environment variables, then the file
//! written by `concoord route53id/route53key`, then `~/.aws/credentials`.

use crate::zone::{ip_target, split_addr, txt_strings, txt_text, ZoneMember};
use hickory_proto::rr::Name;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// Route53's global endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://route53.amazonaws.com";
/// TTL of the published records, as the original.
pub const ROUTE53_TTL: u32 = 600;
/// Route53 signs in us-east-1 whatever the zone.
const REGION: &str = "us-east-1";
const SERVICE: &str = "route53";
const API: &str = "/2013-04-01";
/// Attempts of one change batch while Route53 throttles or fails, and the first wait.
const ATTEMPTS_MAX: u32 = 6;
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// After a batch failed for good: when to try again if the membership does not change.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// One HTTP request's limit.
/// Record sets asked for per `ListResourceRecordSets` page (Route53's maximum)...
const LIST_PAGE_ITEMS: usize = 300;
/// ...and pages read at most before a push: a zone larger than that is not one
/// this publisher manages.
const LIST_PAGES_MAX: usize = 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Names of the keys in the `route53id/route53key` file (the original's names).
pub const KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const KEY_SECRET: &str = "AWS_SECRET_ACCESS_KEY";

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum Route53Error {
    #[error("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `concoord route53id ID` and `concoord route53key KEY`, or write ~/.aws/credentials")]
    NoCredentials,
    #[error("{0}")]
    Http(String),
    #[error("Route53 answered {status}: {code}: {message}")]
    Api { status: u16, code: String, message: String },
    #[error("Route53 has no hosted zone named {0}: create it first")]
    NoZone(String),
}

/// AWS credentials. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<hidden>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl Credentials {
    pub fn new(access_key_id: String, secret_access_key: String) -> Credentials {
        Credentials { access_key_id, secret_access_key, session_token: None }
    }

    /// The environment, then `concoord route53id/route53key`'s file, then the
    /// `AWS_PROFILE` (or `default`) section of `~/.aws/credentials`.
    pub fn load() -> Result<Credentials, Route53Error> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (env(KEY_ID), env(KEY_SECRET)) {
            return Ok(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: env("AWS_SESSION_TOKEN"),
            });
        }
        if let Some(text) = config_path().and_then(|p| std::fs::read_to_string(p).ok()) {
            let id = ini_value(&text, "ENVIRONMENT", KEY_ID);
            let secret = ini_value(&text, "ENVIRONMENT", KEY_SECRET);
            if let (Some(id), Some(secret)) = (id, secret) {
                return Ok(Credentials::new(id, secret));
            }
        }
        let home = env("HOME").map(PathBuf::from);
        let file = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".aws").join("credentials")));
        if let Some(text) = file.and_then(|p| std::fs::read_to_string(p).ok()) {
            let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
            let id = ini_value(&text, &profile, "aws_access_key_id");
            let secret = ini_value(&text, &profile, "aws_secret_access_key");
            if let (Some(id), Some(secret)) = (id, secret) {
                return Ok(Credentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: ini_value(&text, &profile, "aws_session_token"),
                });
            }
        }
        Err(Route53Error::NoCredentials)
    }
}

/// Where `concoord route53id/route53key` keep the credentials:
/// `$XDG_CONFIG_HOME/concoord/route53.cfg`, else `~/.config/concoord/route53.cfg`.
pub fn config_path() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = env("XDG_CONFIG_HOME").or_else(|| env("HOME").map(|h| h.join(".config")))?;
    Some(base.join("concoord").join("route53.cfg"))
}

/// `key = value` of `[section]` in an INI text.
fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key && !v.trim().is_empty() {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

/// Sets `key` in the `[ENVIRONMENT]` section of the credentials file, creating it
/// owner-only (0600, in a 0700 directory). Returns the file's path.
pub fn store_key(key: &str, value: &str) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let path = config_path().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "neither XDG_CONFIG_HOME nor HOME is set")
    })?;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut values: Vec<(String, String)> = [KEY_ID, KEY_SECRET]
        .iter()
        .filter_map(|k| ini_value(&old, "ENVIRONMENT", k).map(|v| (k.to_string(), v)))
        .filter(|(k, _)| k != key)
        .collect();
    values.push((key.to_string(), value.trim().to_string()));
    values.sort();
    let mut text = String::from("[ENVIRONMENT]\n");
    for (k, v) in values {
        text.push_str(&format!("{k} = {v}\n"));
    }
    let tmp = path.with_extension("cfg.tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail here.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one signature covers.
#[derive(Debug)]
pub struct SignInput<'a> {
    pub method: &'a str,
    /// The URI path, already URI-encoded.
    pub path: &'a str,
    /// The canonical query string: `k=v` pairs sorted by key, URI-encoded.
    pub query: &'a str,
    /// The Host header as sent (with `:port` when the URL has one).
    pub host: &'a str,
    pub payload: &'a [u8],
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDD` and `YYYYMMDDTHHMMSSZ`.
    pub date: &'a str,
    pub stamp: &'a str,
}

/// The SigV4 headers to add to a request: `x-amz-date`, the session token if
/// any, and `Authorization` (AWS General Reference, "Signature Version 4").
pub fn sign(input: &SignInput<'_>, creds: &Credentials) -> Vec<(&'static str, String)> {
    let mut headers =
        vec![("host", input.host.to_string()), ("x-amz-date", input.stamp.to_string())];
    if let Some(token) = &creds.session_token {
        headers.push(("x-amz-security-token", token.clone()));
    }
    let canonical_headers: String =
        headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let signed_headers = headers.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        input.method,
        input.path,
        input.query,
        hex(&Sha256::digest(input.payload))
    );
    let scope = format!("{}/{}/{}/aws4_request", input.date, input.region, input.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        input.stamp,
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let key = hmac(format!("AWS4{}", creds.secret_access_key).as_bytes(), input.date.as_bytes());
    let key = hmac(&key, input.region.as_bytes());
    let key = hmac(&key, input.service.as_bytes());
    let key = hmac(&key, b"aws4_request");
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let mut out: Vec<(&'static str, String)> =
        headers.into_iter().filter(|(k, _)| *k != "host").collect();
    out.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    out
}

/// An error and its sources, `: `-separated (reqwest's own text hides the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

/// URI-encodes a query value (RFC 3986 unreserved characters stay).
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The text of the first `<tag>...</tag>` in `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// The record sets a membership publishes: `(name, type, values)`.
pub fn record_sets(
    domain: &Name,
    members: &[ZoneMember],
) -> Vec<(String, &'static str, Vec<String>)> {
    let apex = domain.to_ascii();
    let mut a: Vec<String> = Vec::new();
    let mut aaaa: Vec<String> = Vec::new();
    let mut srv: Vec<String> = Vec::new();
    let mut targets: Vec<(String, &'static str, Vec<String>)> = Vec::new();
    for m in members {
        let Some((host, port)) = split_addr(&m.addr) else { continue };
        let target = match host {
            Ok(ip) => {
                let (list, rtype) = match ip {
                    IpAddr::V4(_) => (&mut a, "A"),
                    IpAddr::V6(_) => (&mut aaaa, "AAAA"),
                };
                if !list.contains(&ip.to_string()) {
                    list.push(ip.to_string());
                }
                let Some(target) = ip_target(ip, domain) else { continue };
                let set = (target.to_ascii(), rtype, vec![ip.to_string()]);
                if !targets.contains(&set) {
                    targets.push(set);
                }
                target.to_ascii()
            }
            Err(host) => format!("{host}."),
        };
        srv.push(format!("0 100 {port} {target}"));
    }
    let txt = txt_strings(&txt_text(members))
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut sets = Vec::new();
    if !a.is_empty() {
        sets.push((apex.clone(), "A", a));
    }
    if !aaaa.is_empty() {
        sets.push((apex.clone(), "AAAA", aaaa));
    }
    if !srv.is_empty() {
        sets.push((format!("_concoord._tcp.{apex}"), "SRV", srv));
    }
    sets.push((apex, "TXT", vec![txt]));
    sets.extend(targets);
    sets
}

/// A record set as `ListResourceRecordSets` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedSet {
    /// Absolute, lower case.
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    /// The values, unescaped (as `record_sets` gives them).
    pub values: Vec<String>,
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Every `<tag>...</tag>` in `xml`, in order.
fn xml_all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        out.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    out
}

/// One page of a `ListResourceRecordSets` response: the sets with plain records
/// (alias sets, which have no TTL, are left out: this publisher never writes one),
/// and where the next page starts (`name`, `type`) when the list is truncated.
pub fn parse_record_sets(xml: &str) -> (Vec<ListedSet>, Option<(String, String)>) {
    let mut sets = Vec::new();
    for set in xml_all(xml, "ResourceRecordSet") {
        let (Some(name), Some(rtype), Some(ttl)) =
            (xml_text(set, "Name"), xml_text(set, "Type"), xml_text(set, "TTL"))
        else {
            continue;
        };
        let Ok(ttl) = ttl.trim().parse() else { continue };
        let mut name = xml_unescape(name).to_ascii_lowercase();
        if !name.ends_with('.') {
            name.push('.');
        }
        let values = xml_all(set, "Value").into_iter().map(xml_unescape).collect();
        sets.push(ListedSet { name, rtype: rtype.to_string(), ttl, values });
    }
    let truncated = xml_text(xml, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next = match (truncated, xml_text(xml, "NextRecordName"), xml_text(xml, "NextRecordType")) {
        (true, Some(name), Some(rtype)) => Some((xml_unescape(name), rtype.to_string())),
        _ => None,
    };
    (sets, next)
}

/// The sets of `listed` that an earlier membership published and this one does not:
/// the A/AAAA sets at DOMAIN and at `<ip>.ipaddr.DOMAIN`, the SRV set at
/// `_concoord._tcp.DOMAIN` and the TXT set at DOMAIN that `record_sets` of
/// `members` leaves out (a member that left, the last IPv6 member gone). Other
/// sets of the zone are not this publisher's and are never touched.
pub fn stale_sets(domain: &Name, members: &[ZoneMember], listed: &[ListedSet]) -> Vec<ListedSet> {
    let apex = domain.to_ascii().to_ascii_lowercase();
    let srv = format!("_concoord._tcp.{apex}");
    let ipaddr = format!(".ipaddr.{apex}");
    let wanted: Vec<(String, &str)> = record_sets(domain, members)
        .into_iter()
        .map(|(name, rtype, _)| (name.to_ascii_lowercase(), rtype))
        .collect();
    listed
        .iter()
        .filter(|set| {
            let address = matches!(set.rtype.as_str(), "A" | "AAAA");
            let ours = (set.name == apex && (address || set.rtype == "TXT"))
                || (set.name == srv && set.rtype == "SRV")
                || (set.name.ends_with(&ipaddr) && address);
            ours && !wanted.iter().any(|(n, t)| *n == set.name && *t == set.rtype)
        })
        .cloned()
        .collect()
}

fn change(action: &str, name: &str, rtype: &str, ttl: u32, values: &[String]) -> String {
    let records: String = values
        .iter()
        .map(|v| format!("<ResourceRecord><Value>{}</Value></ResourceRecord>", xml_escape(v)))
        .collect();
    format!(
        "<Change><Action>{action}</Action><ResourceRecordSet><Name>{}</Name><Type>{rtype}</Type>\
         <TTL>{ttl}</TTL><ResourceRecords>{records}</ResourceRecords></ResourceRecordSet></Change>",
        xml_escape(name)
    )
}

/// The `ChangeResourceRecordSets` body: one DELETE per stale set (with the exact
/// values Route53 listed, as a DELETE requires) and one UPSERT per record set of
/// `members`, in one batch, so the zone moves from one membership to the next at once.
pub fn change_batch(
    domain: &Name,
    members: &[ZoneMember],
    serial: u64,
    stale: &[ListedSet],
) -> String {
    let mut changes = String::new();
    for set in stale {
        changes.push_str(&change("DELETE", &set.name, &set.rtype, set.ttl, &set.values));
    }
    for (name, rtype, values) in record_sets(domain, members) {
        changes.push_str(&change("UPSERT", &name, rtype, ROUTE53_TTL, &values));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ChangeResourceRecordSetsRequest \
         xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Comment>concoord \
         membership of slot {serial}</Comment><Changes>{changes}</Changes></ChangeBatch>\
         </ChangeResourceRecordSetsRequest>"
    )
}

/// How to reach Route53.
#[derive(Clone, Debug)]
pub struct Route53Config {
    /// `https://route53.amazonaws.com`, or a test server.
    pub endpoint: String,
    pub credentials: Credentials,
}

/// What the leader wants published: the membership and the slot it took effect at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub serial: u64,
    pub members: Vec<ZoneMember>,
}

/// The background task that pushes the leader's membership to Route53.
#[derive(Debug)]
pub struct Publisher {
    desired: watch::Sender<Option<Desired>>,
}

impl Publisher {
    /// Starts the task; nothing is sent until `publish` gives it a membership.
    pub fn start(config: Route53Config, domain: Name) -> Result<Publisher, Route53Error> {
        // rustls needs a process-wide crypto provider; a second install is refused
        // harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Route53Error::Http(format!("cannot build the HTTPS client: {e}")))?;
        let (desired, rx) = watch::channel(None);
        let client = Route53 { http, config, domain, zone_id: None };
        tokio::spawn(client.run(rx));
        Ok(Publisher { desired })
    }

    /// `Some` while this replica leads: publish this membership (again, if it was
    /// leading before, only when it changed). `None`: not the leader, publish nothing.
    pub fn publish(&self, desired: Option<Desired>) {
        self.desired.send_if_modified(|d| {
            let changed = *d != desired;
            *d = desired;
            changed
        });
    }
}

struct Route53 {
    http: reqwest::Client,
    config: Route53Config,
    domain: Name,
    zone_id: Option<String>,
}

impl Route53 {
    async fn run(mut self, mut desired: watch::Receiver<Option<Desired>>) {
        let mut published: Option<Desired> = None;
        loop {
            let want = desired.borrow_and_update().clone();
            let mut retry_at = None;
            match want {
                None => published = None,
                Some(want) if published.as_ref() != Some(&want) => match self.push(&want).await {
                    Ok(()) => {
                        tracing::info!(
                            "route53: {} now lists {} member(s) (membership of slot {})",
                            self.domain,
                            want.members.len(),
                            want.serial
                        );
                        published = Some(want);
                    }
                    Err(e) => {
                        tracing::error!(
                            "route53: cannot publish the membership of {}: {e}; the replica \
                             keeps serving, and tries again in {}s or at the next change",
                            self.domain,
                            RETRY_AFTER_FAILURE.as_secs()
                        );
                        retry_at = Some(tokio::time::Instant::now() + RETRY_AFTER_FAILURE);
                    }
                },
                Some(_) => {}
            }
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = desired.changed() => if changed.is_err() { return },
                _ = retry => {}
            }
        }
    }

    async fn push(&mut self, want: &Desired) -> Result<(), Route53Error> {
        let zone = match &self.zone_id {
            Some(z) => z.clone(),
            None => {
                let z = self.find_zone().await?;
                self.zone_id = Some(z.clone());
                z
            }
        };
        let path = format!("{API}/hostedzone/{zone}/rrset");
        // What the zone holds now, whoever published it (an earlier leader too): the
        // sets a departed member left behind are deleted in the same batch.
        let mut listed = Vec::new();
        let mut next: Option<(String, String)> = None;
        for page in 0.. {
            if page == LIST_PAGES_MAX {
                return Err(Route53Error::Http(format!(
                    "the zone {} holds more than {} record sets",
                    self.domain,
                    LIST_PAGES_MAX * LIST_PAGE_ITEMS
                )));
            }
            let query = match &next {
                None => format!("maxitems={LIST_PAGE_ITEMS}"),
                Some((name, rtype)) => format!(
                    "maxitems={LIST_PAGE_ITEMS}&name={}&type={}",
                    uri_encode(name),
                    uri_encode(rtype)
                ),
            };
            let xml = match self.request("GET", &path, &query, Vec::new()).await {
                Err(Route53Error::Api { code, .. }) if code == "NoSuchHostedZone" => {
                    self.zone_id = None;
                    return Err(Route53Error::NoZone(self.domain.to_ascii()));
                }
                other => other?,
            };
            let (sets, more) = parse_record_sets(&xml);
            listed.extend(sets);
            next = more;
            if next.is_none() {
                break;
            }
        }
        let stale = stale_sets(&self.domain, &want.members, &listed);
        let body = change_batch(&self.domain, &want.members, want.serial, &stale);
        match self.request("POST", &path, "", body.into_bytes()).await {
            Err(Route53Error::Api { code, .. }) if code == "NoSuchHostedZone" => {
                self.zone_id = None;
                Err(Route53Error::NoZone(self.domain.to_ascii()))
            }
            other => other.map(|_| ()),
        }
    }

    async fn find_zone(&self) -> Result<String, Route53Error> {
        let name = self.domain.to_ascii();
        let query = format!("dnsname={}&maxitems=1", uri_encode(&name));
        let xml =
            self.request("GET", &format!("{API}/hostedzonesbyname"), &query, Vec::new()).await?;
        let zone =
            xml_text(&xml, "HostedZone").ok_or_else(|| Route53Error::NoZone(name.clone()))?;
        let found = xml_text(zone, "Name").unwrap_or_default();
        if !found.trim_end_matches('.').eq_ignore_ascii_case(name.trim_end_matches('.')) {
            return Err(Route53Error::NoZone(name));
        }
        let id = xml_text(zone, "Id").ok_or_else(|| Route53Error::NoZone(name.clone()))?;
        Ok(id.trim_start_matches("/hostedzone/").to_string())
    }

    /// One signed request, retried with exponential backoff while Route53 throttles
    /// or fails on its side. Returns the response body.
    async fn request(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Vec<u8>,
    ) -> Result<String, Route53Error> {
        let base = self.config.endpoint.trim_end_matches('/');
        let url = if query.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{query}")
        };
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| Route53Error::Http(format!("bad endpoint {base}: {e}")))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(Route53Error::Http(format!("endpoint {base} has no host"))),
        };
        let mut wait = BACKOFF_FIRST;
        let mut attempt = 1;
        loop {
            let (date, stamp) = crate::clock::amz_now();
            let input = SignInput {
                method,
                path,
                query,
                host: &host,
                payload: &body,
                region: REGION,
                service: SERVICE,
                date: &date,
                stamp: &stamp,
            };
            let method_value = reqwest::Method::from_bytes(method.as_bytes())
                .map_err(|e| Route53Error::Http(e.to_string()))?;
            let mut request = self.http.request(method_value, parsed.clone()).body(body.clone());
            if method == "POST" {
                request = request.header("content-type", "text/xml");
            }
            for (k, v) in sign(&input, &self.config.credentials) {
                request = request.header(k, v);
            }
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        return Ok(text);
                    }
                    let code = xml_text(&text, "Code").unwrap_or("no error code").to_string();
                    let message = match xml_text(&text, "Message") {
                        Some(m) => m.to_string(),
                        None => text.trim().chars().take(200).collect(),
                    };
                    let transient = status == 429
                        || status >= 500
                        || matches!(code.as_str(), "Throttling" | "PriorRequestNotComplete");
                    (Route53Error::Api { status, code, message }, transient)
                }
                Err(e) => (Route53Error::Http(format!("{method} {url}: {}", chain(&e))), true),
            };
            let (error, transient) = outcome;
            if !transient || attempt >= ATTEMPTS_MAX {
                return Err(error);
            }
            tracing::warn!("route53: {error}; retrying in {} ms", wait.as_millis());
            tokio::time::sleep(wait).await;
            wait *= 2;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Credentials {
        Credentials::new("AKIDEXAMPLE".into(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into())
    }

    fn signature(query: &str) -> String {
        let input = SignInput {
            method: "GET",
            path: "/",
            query,
            host: "example.amazonaws.com",
            payload: b"",
            region: "us-east-1",
            service: "service",
            date: "20150830",
            stamp: "20150830T123600Z",
        };
        let headers = sign(&input, &example());
        let auth = &headers.iter().find(|(k, _)| *k == "authorization").unwrap().1;
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature="
        ));
        auth.rsplit('=').next().unwrap().to_string()
    }

    /// AWS's SigV4 test suite: get-vanilla and get-vanilla-query-order-key-case.
    #[test]
    fn signatures_match_the_aws_test_suite() {
        assert_eq!(
            signature(""),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            signature("Param1=value1&Param2=value2"),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let text = format!("{:?}", example());
        assert!(text.contains("AKIDEXAMPLE") && !text.contains("wJalr"), "{text}");
    }

    #[test]
    fn a_batch_upserts_a_srv_txt_and_the_targets() {
        let domain = crate::zone::parse_domain("cc.example.test").unwrap();
        let members: Vec<ZoneMember> = ["127.0.0.1:14000", "127.0.0.2:14001"]
            .iter()
            .map(|a| ZoneMember { addr: a.to_string(), nameserver: false })
            .collect();
        let sets = record_sets(&domain, &members);
        assert_eq!(
            sets,
            [
                ("cc.example.test.".into(), "A", vec!["127.0.0.1".into(), "127.0.0.2".into()]),
                (
                    "_concoord._tcp.cc.example.test.".into(),
                    "SRV",
                    vec![
                        "0 100 14000 127.0.0.1.ipaddr.cc.example.test.".into(),
                        "0 100 14001 127.0.0.2.ipaddr.cc.example.test.".into()
                    ]
                ),
                (
                    "cc.example.test.".into(),
                    "TXT",
                    vec!["\"REPLICA 127.0.0.1:14000;REPLICA 127.0.0.2:14001\"".into()]
                ),
                ("127.0.0.1.ipaddr.cc.example.test.".into(), "A", vec!["127.0.0.1".into()]),
                ("127.0.0.2.ipaddr.cc.example.test.".into(), "A", vec!["127.0.0.2".into()]),
            ]
        );
        let xml = change_batch(&domain, &members, 9, &[]);
        assert_eq!(xml.matches("<Action>UPSERT</Action>").count(), 5);
        assert_eq!(xml.matches("<ChangeBatch>").count(), 1, "one batch");
    }

    /// A listing as Route53 (and moto) gives it: the zone's own NS and SOA, the sets
    /// of a membership that had an IPv6 member and a member at 127.0.0.3, one page.
    const LISTING: &str = "<?xml version=\"1.0\"?><ListResourceRecordSetsResponse>\
        <ResourceRecordSets>\
        <ResourceRecordSet><Name>cc.example.test.</Name><Type>NS</Type><TTL>172800</TTL>\
        <ResourceRecords><ResourceRecord><Value>ns-1.awsdns.com.</Value></ResourceRecord>\
        </ResourceRecords></ResourceRecordSet>\
        <ResourceRecordSet><Name>cc.example.test.</Name><Type>AAAA</Type><TTL>600</TTL>\
        <ResourceRecords><ResourceRecord><Value>2001:db8::1</Value></ResourceRecord>\
        </ResourceRecords></ResourceRecordSet>\
        <ResourceRecordSet><Name>cc.example.test.</Name><Type>TXT</Type><TTL>600</TTL>\
        <ResourceRecords><ResourceRecord><Value>&quot;REPLICA 127.0.0.3:14000&quot;</Value>\
        </ResourceRecord></ResourceRecords></ResourceRecordSet>\
        <ResourceRecordSet><Name>127.0.0.3.ipaddr.cc.example.test.</Name><Type>A</Type>\
        <TTL>600</TTL><ResourceRecords><ResourceRecord><Value>127.0.0.3</Value>\
        </ResourceRecord></ResourceRecords></ResourceRecordSet>\
        <ResourceRecordSet><Name>2001-db8-0-0-0-0-0-1.ipaddr.cc.example.test.</Name>\
        <Type>AAAA</Type><TTL>600</TTL><ResourceRecords><ResourceRecord>\
        <Value>2001:db8::1</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>\
        <ResourceRecordSet><Name>127.0.0.1.ipaddr.cc.example.test.</Name><Type>A</Type>\
        <TTL>600</TTL><ResourceRecords><ResourceRecord><Value>127.0.0.1</Value>\
        </ResourceRecord></ResourceRecords></ResourceRecordSet>\
        <ResourceRecordSet><Name>www.cc.example.test.</Name><Type>A</Type><AliasTarget>\
        <DNSName>x.</DNSName></AliasTarget></ResourceRecordSet>\
        </ResourceRecordSets><IsTruncated>true</IsTruncated>\
        <NextRecordName>x.cc.example.test.</NextRecordName><NextRecordType>A</NextRecordType>\
        <MaxItems>300</MaxItems></ListResourceRecordSetsResponse>";

    /// The sets a departed member left (its `ipaddr` A set, and the AAAA sets of the
    /// last IPv6 member) are deleted with their exact values in the publishing batch;
    /// the zone's own sets and the sets still wanted are left alone.
    #[test]
    fn stale_sets_of_departed_members_are_deleted_in_the_same_batch() {
        let domain = Name::from_ascii("cc.example.test.").unwrap();
        let (listed, next) = parse_record_sets(LISTING);
        assert_eq!(next, Some(("x.cc.example.test.".into(), "A".into())));
        assert_eq!(listed.len(), 6, "the alias set is left out: {listed:?}");
        assert_eq!(listed[2].values, ["\"REPLICA 127.0.0.3:14000\""]);
        let members: Vec<ZoneMember> = ["127.0.0.1:14000", "127.0.0.2:14001"]
            .iter()
            .map(|a| ZoneMember { addr: a.to_string(), nameserver: false })
            .collect();
        let stale = stale_sets(&domain, &members, &listed);
        let names: Vec<(&str, &str)> =
            stale.iter().map(|s| (s.name.as_str(), s.rtype.as_str())).collect();
        assert_eq!(
            names,
            [
                ("cc.example.test.", "AAAA"),
                ("127.0.0.3.ipaddr.cc.example.test.", "A"),
                ("2001-db8-0-0-0-0-0-1.ipaddr.cc.example.test.", "AAAA"),
            ]
        );
        let xml = change_batch(&domain, &members, 9, &stale);
        assert_eq!(xml.matches("<Action>DELETE</Action>").count(), 3);
        assert_eq!(xml.matches("<Action>UPSERT</Action>").count(), 5);
        assert!(xml.contains(
            "<Action>DELETE</Action><ResourceRecordSet><Name>127.0.0.3.ipaddr.cc.example.test.\
             </Name><Type>A</Type><TTL>600</TTL><ResourceRecords><ResourceRecord><Value>\
             127.0.0.3</Value>"
        ));
        assert_eq!(xml.matches("<ChangeBatch>").count(), 1, "one batch");
        // Nothing is stale once the zone holds exactly the membership's sets.
        let current: Vec<ListedSet> = record_sets(&domain, &members)
            .into_iter()
            .map(|(name, rtype, values)| ListedSet {
                name,
                rtype: rtype.into(),
                ttl: ROUTE53_TTL,
                values,
            })
            .collect();
        assert!(stale_sets(&domain, &members, &current).is_empty());
    }

    #[test]
    fn ini_files_are_read_by_section() {
        let text = "[default]\naws_access_key_id = A\n[ENVIRONMENT]\nAWS_ACCESS_KEY_ID=B\n";
        assert_eq!(ini_value(text, "default", "aws_access_key_id").as_deref(), Some("A"));
        assert_eq!(ini_value(text, "ENVIRONMENT", KEY_ID).as_deref(), Some("B"));
        assert_eq!(ini_value(text, "ENVIRONMENT", KEY_SECRET), None);
        assert_eq!(uri_encode("cc.example.test."), "cc.example.test.");
        assert_eq!(uri_encode("a b/c"), "a%20b%2Fc");
    }
}
