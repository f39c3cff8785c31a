//! `ClientOptions` and the parsing of replica address lists. Addresses are kept as
//! `host:port` (or `dns://DOMAIN[@server[:port]]`) text and resolved when connecting.

use crate::{ClientError, ClientTls};
use std::time::Duration;

/// How a client talks to the cluster. `ClientOptions::default()` suits most users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// The token the replicas were started with (`-t`), if any.
    pub token: Option<String>,
    /// The cluster to talk to: its id as `concoord status` prints it (16 hex
    /// digits). Replicas of any other cluster are left, from the first connection
    /// on. Without it, the client pins the cluster of the first replica that
    /// reports one, which is right unless the first address it reaches is a
    /// process that founded a cluster of its own there (a member restarted
    /// without its data and without `-b`).
    pub cluster: Option<String>,
    /// The session lease: the cluster ends the session (releasing its locks) after
    /// this long without hearing from the client. The client keeps it alive every
    /// `lease / 3`. The replicas clamp it to 1 s ..= 1 h.
    pub lease: Duration,
    /// A request with no answer at all (not even "parked") for this long counts as
    /// a broken connection: the client fails over and resends.
    pub attempt_timeout: Duration,
    /// How quickly a replica that has gone quiet is left. When a request has had
    /// no answer and the connection has carried nothing for a quarter of this, the
    /// client probes the replica with a `Status` (answered by any live replica at
    /// once, without touching the log); when the probe brings nothing back within
    /// this long, the replica counts as paused, cut off or dead, and the client
    /// fails over and resends. A replica that answers the probe but not the
    /// request is left only after `attempt_timeout`. Parked calls are not probed
    /// (their keep-alives are).
    pub liveness_timeout: Duration,
    /// How long a call may take in all, parked time, connecting, failing over and
    /// cancelling included: the call returns within it. A call still unanswered a
    /// fifth of it (at most 500 ms) before its end is cancelled through the log; it
    /// then ends with its result, `Timeout` (certainly no effect) or `MaybeExecuted`
    /// (no replica confirmed either in time). It also bounds `connect` and `status`.
    /// `None`: a parked call waits until it is woken, and a call fails only once no
    /// replica has answered for `give_up_after`.
    pub call_timeout: Option<Duration>,
    /// How long connecting to one replica (and its `Welcome`) may take.
    pub connect_timeout: Duration,
    /// When no replica has answered for this long, outstanding calls fail with
    /// `Unavailable` (the next call tries again).
    pub give_up_after: Duration,
    /// Speak TLS to the replicas (those started with `--tls-cert`), verifying their
    /// certificates against a CA. `None`: plaintext.
    pub tls: Option<ClientTls>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            token: None,
            cluster: None,
            lease: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            liveness_timeout: Duration::from_millis(600),
            call_timeout: None,
            connect_timeout: Duration::from_secs(2),
            give_up_after: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// Parses a comma-separated list of `host:port` replica addresses (the form the
/// original's proxies take: `"127.0.0.1:14000, 127.0.0.1:14001"`). Whitespace is
/// trimmed, empty entries skipped, duplicates dropped (first occurrence kept).
/// IPv6 hosts go in brackets: `[::1]:14000`.
pub fn parse_addrs(addrs: &str) -> Result<Vec<String>, ClientError> {
    let mut out: Vec<String> = Vec::new();
    for entry in addrs.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let addr = parse_addr(entry)?;
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    if out.is_empty() {
        return Err(ClientError::BadAddress(format!(
            "no replica address in {addrs:?}: give host:port[, host:port...]"
        )));
    }
    Ok(out)
}

/// Checks a cluster id given by the user and returns it in the form replicas report
/// (16 lowercase hex digits).
pub(crate) fn parse_cluster(id: &str) -> Result<String, ClientError> {
    let id = id.trim();
    if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(ClientError::BadAddress(format!(
            "cluster id {id:?}: write the 16 hex digits `concoord status` prints as `cluster`"
        )))
    }
}

/// Parses one `host:port` (no list), as `parse_addrs` does each entry.
/// Parses one `host:port` or `dns://DOMAIN[@server[:port]]` (no list), as
/// `parse_addrs` does each entry. A `dns://` entry stays as it is: it is looked up
/// on every connection attempt.
pub(crate) fn parse_addr(entry: &str) -> Result<String, ClientError> {
    if let Some(dns) = concoord_naming::parse_dns_url(entry) {
        return match dns {
            Ok(_) => Ok(entry.to_string()),
            Err(e) => Err(ClientError::BadAddress(e.to_string())),
        };
    }
    let bad = |why: &str| ClientError::BadAddress(format!("{entry:?}: {why}"));
    let Some((host, port)) = entry.rsplit_once(':') else {
        return Err(bad(
            "no port: write host:port, or dns://DOMAIN[@server[:port]] to find the replicas \
             through the domain's DNS SRV records",
        ));
    };
    if host.is_empty() {
        return Err(bad("no host: write host:port"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("an IPv6 host goes in brackets: [::1]:14000"));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(bad("whitespace inside the address"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err(bad("port 0 cannot be connected to")),
        Ok(_) => Ok(entry.to_string()),
        Err(_) => Err(bad("the port must be a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_trimmed_and_deduplicated_in_order() {
        let addrs = parse_addrs(" 127.0.0.1:14001,127.0.0.1:14000 , 127.0.0.1:14001,, ").unwrap();
        assert_eq!(addrs, ["127.0.0.1:14001", "127.0.0.1:14000"]);
        assert_eq!(parse_addrs("localhost:1").unwrap(), ["localhost:1"]);
        assert_eq!(parse_addrs("[::1]:14000").unwrap(), ["[::1]:14000"]);
    }

    #[test]
    fn cluster_ids_are_16_hex_digits() {
        assert_eq!(parse_cluster(" 00AB00cd00ef0012 ").unwrap(), "00ab00cd00ef0012");
        for bad in ["", "abc", "00ab00cd00ef00123", "00ab00cd00ef001g"] {
            let why = parse_cluster(bad).unwrap_err().to_string();
            assert!(why.contains("16 hex digits"), "{why}");
        }
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let why = |s: &str| parse_addrs(s).unwrap_err().to_string();
        assert!(why("127.0.0.1").contains("no port"), "{}", why("127.0.0.1"));
        assert!(why("ns.example.com").contains("DNS SRV"), "{}", why("ns.example.com"));
        assert!(why("a:1, b").contains("\"b\""), "{}", why("a:1, b"));
        assert!(why(":14000").contains("no host"));
        assert!(why("a:0").contains("port 0"));
        assert!(why("a:70000").contains("1 to 65535"));
        assert!(why("a:x").contains("1 to 65535"));
        assert!(why("::1:14000").contains("brackets"));
        assert!(why(" , ").contains("no replica address"));
        assert!(why("dns://bad..name").contains("dns://DOMAIN"), "{}", why("dns://bad..name"));
        assert_eq!(
            parse_addrs("dns://cc.example.test@127.0.0.1:5353, a:1").unwrap(),
            ["dns://cc.example.test@127.0.0.1:5353", "a:1"]
        );
        assert!(matches!(parse_addrs("a b:1"), Err(ClientError::BadAddress(_))));
    }
}
