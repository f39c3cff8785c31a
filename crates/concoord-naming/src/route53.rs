//! Route53 publishing (`-n DOMAIN -r`): the leader replaces the A/AAAA, SRV and TXT
//! record sets of the hosted zone named DOMAIN (and the A/AAAA records of the SRV
//! targets) with the membership, in one `ChangeResourceRecordSets` batch of UPSERTs,
//! over Route53's REST API signed with AWS Signature Version 4.
//!
//! It is a client for these two calls only (find the zone, change its records), not
//! an AWS SDK. Credentials: the standard environment variables, then the file
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

/// The `ChangeResourceRecordSets` body: one UPSERT per record set, one batch.
pub fn change_batch(domain: &Name, members: &[ZoneMember], serial: u64) -> String {
    let mut changes = String::new();
    for (name, rtype, values) in record_sets(domain, members) {
        let records: String = values
            .iter()
            .map(|v| format!("<ResourceRecord><Value>{}</Value></ResourceRecord>", xml_escape(v)))
            .collect();
        changes.push_str(&format!(
            "<Change><Action>UPSERT</Action><ResourceRecordSet><Name>{}</Name><Type>{rtype}</Type>\
             <TTL>{ROUTE53_TTL}</TTL><ResourceRecords>{records}</ResourceRecords>\
             </ResourceRecordSet></Change>",
            xml_escape(&name)
        ));
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
        let body = change_batch(&self.domain, &want.members, want.serial);
        let path = format!("{API}/hostedzone/{zone}/rrset");
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
        let xml = change_batch(&domain, &members, 9);
        assert_eq!(xml.matches("<Action>UPSERT</Action>").count(), 5);
        assert_eq!(xml.matches("<ChangeBatch>").count(), 1, "one batch");
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
