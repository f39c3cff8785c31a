//! `ClientOptions` and the parsing of replica address lists. Addresses are kept as
//! `host:port` (or `dns://DOMAIN[@server[:port]]`) text and resolved when connecting.

use crate::ClientError;
use std::time::Duration;

/// How a client talks to the cluster. `ClientOptions::default()` suits most users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// The token the replicas were started with (`-t`), if any.
    pub token: Option<String>,
    /// The session lease: the cluster ends the session (releasing its locks) after
    /// this long without hearing from the client. The client keeps it alive every
    /// `lease / 3`. The replicas clamp it to 1 s ..= 1 h.
    pub lease: Duration,
    /// A request with no answer at all (not even "parked") for this long counts as
    /// a broken connection: the client fails over and resends.
    pub attempt_timeout: Duration,
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
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            token: None,
            lease: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            call_timeout: None,
            connect_timeout: Duration::from_secs(2),
            give_up_after: Duration::from_secs(60),
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
