//! One TCP connection to a replica: connecting with the `Hello`/`Welcome`
//! handshake, non-blocking reads that split frames off a buffer, and writes of
//! whole buffers. It decides nothing: the driver hands what it reads to the core.
//!
//! With TLS, tokio-rustls runs the TLS handshake; after it the connection drives the
//! rustls session itself over the socket's non-blocking reads and writes, so the
//! driver's readiness loop is the same with TLS and without.

use crate::core::{framed, ConnectError};
use crate::tls::{server_name, ClientTls};
use concoord_object::protocol::{
    self, ClientFrame, ServerFrame, CLIENT_FRAME_MAX, PROTOCOL_VERSION,
};
use concoord_wire::frame;
use concoord_wire::ReplicaId;
use std::io::{self, Read, Write};
use std::time::Duration;
use tokio::net::TcpStream;

/// Bytes reserved in the read buffer before each read.
const READ_CHUNK: usize = 64 * 1024;
/// TLS records taken from the socket in one `try_receive` at most, so one busy
/// connection cannot hold the driver's loop.
const TLS_READS_MAX: usize = 64;

/// What a replica said in its `Welcome`.
#[derive(Debug)]
pub(crate) struct Welcome {
    pub(crate) replica: ReplicaId,
    pub(crate) leader: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) target: String,
    stream: TcpStream,
    /// The TLS session over `stream`, when the client speaks TLS.
    tls: Option<Box<rustls::ClientConnection>>,
    /// The TLS session failed (a certificate refused, an alert): a configuration
    /// error rather than a broken network.
    tls_failed: bool,
    /// Received bytes; those before `start` are split off already.
    buf: Vec<u8>,
    start: usize,
}

/// What one read brought.
#[derive(Debug)]
pub(crate) struct Received {
    /// Decoded frames (possibly none: a partial frame, or a spurious wake-up).
    pub(crate) frames: Vec<ServerFrame>,
    /// Why the connection is finished after those frames (closed, reset, or a frame
    /// that is not ours), if it is.
    pub(crate) broken: Option<String>,
}

/// Connects to `target`, says `Hello` and waits for `Welcome`, all within `timeout`.
/// A `dns://DOMAIN[@server[:port]]` target is looked up again on every attempt (so
/// a failover sees the current membership), and its replicas are tried in turn,
/// each within `timeout`.
pub(crate) async fn connect(
    target: String,
    token: Option<String>,
    cluster: Option<String>,
    tls: Option<ClientTls>,
    timeout: Duration,
) -> Result<(Connection, Welcome), ConnectError> {
    let Some(parsed) = concoord_naming::parse_dns_url(&target) else {
        return connect_one(target, token, cluster, tls, timeout).await;
    };
    let dns = parsed.map_err(|e| ConnectError::Failed(e.to_string()))?;
    let addrs = concoord_naming::resolve(&dns)
        .await
        .map_err(|e| ConnectError::Failed(format!("cannot find the replicas of {target}: {e}")))?;
    let mut last = ConnectError::Failed(format!("{target} names no replica"));
    for addr in addrs {
        match connect_one(addr, token.clone(), cluster.clone(), tls.clone(), timeout).await {
            Ok(connected) => return Ok(connected),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Runs the TLS handshake over `stream` and hands back the socket with its session.
async fn tls_handshake(
    stream: TcpStream,
    target: &str,
    tls: &ClientTls,
) -> Result<(TcpStream, rustls::ClientConnection), ConnectError> {
    let name = server_name(target).map_err(ConnectError::Tls)?;
    let connector = tokio_rustls::TlsConnector::from(tls.config());
    match connector.connect(name, stream).await {
        Ok(stream) => Ok(stream.into_inner()),
        Err(e) => {
            // rustls reports its own failures (a certificate, an alert) as InvalidData.
            let tls_said = e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>());
            let why = format!("TLS handshake with {target} failed: {e}{}", tls_hint(&e));
            Err(if tls_said { ConnectError::Tls(why) } else { ConnectError::Failed(why) })
        }
    }
}

/// What a TLS failure most likely means, for the message.
fn tls_hint(e: &dyn std::fmt::Display) -> &'static str {
    let text = e.to_string();
    if text.contains("ProtocolVersion") {
        " (the replica runs without TLS: drop the TLS options, or start it with --tls-cert)"
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        " (its certificate is not signed by the CA given with --tls-ca)"
    } else if text.contains("NotValidForName") {
        " (its certificate does not name the address dialled: give the replica a certificate \
         with that IP or DNS name as a subject alternative name)"
    } else if text.contains("CertificateRequired") || text.contains("UnknownCA") {
        " (the replica requires a client certificate signed by its CA: --tls-cert and --tls-key)"
    } else {
        ""
    }
}

async fn connect_one(
    target: String,
    token: Option<String>,
    cluster: Option<String>,
    tls: Option<ClientTls>,
    timeout: Duration,
) -> Result<(Connection, Welcome), ConnectError> {
    let handshake = async {
        let stream = TcpStream::connect(&target)
            .await
            .map_err(|e| ConnectError::Failed(format!("cannot connect to {target}: {e}")))?;
        stream.set_nodelay(true).map_err(|e| {
            ConnectError::Failed(format!("cannot set TCP_NODELAY on {target}: {e}"))
        })?;
        let (stream, session) = match &tls {
            Some(tls) => {
                let (stream, session) = tls_handshake(stream, &target, tls).await?;
                (stream, Some(Box::new(session)))
            }
            None => (stream, None),
        };
        let mut conn = Connection {
            target: target.clone(),
            stream,
            tls: session,
            tls_failed: false,
            buf: Vec::new(),
            start: 0,
        };
        // A TLS failure reported after the handshake (with TLS 1.3 the replica
        // checks the client's certificate then) is a configuration error too.
        let failed = |conn: &Connection, why: String| {
            if conn.tls_failed {
                let hint = tls_hint(&why);
                ConnectError::Tls(format!("{why}{hint}"))
            } else {
                ConnectError::Failed(why)
            }
        };
        let hello = framed(&ClientFrame::Hello { version: PROTOCOL_VERSION, token, cluster })
            .map_err(|e| ConnectError::Failed(e.to_string()))?;
        if let Err(why) = conn.write_all(&hello).await {
            return Err(failed(&conn, why));
        }
        let answer = match conn.read_frame().await {
            Ok(frame) => frame,
            Err(why) => return Err(failed(&conn, why)),
        };
        match answer {
            ServerFrame::Welcome { version, replica, leader } if version == PROTOCOL_VERSION => {
                Ok((conn, Welcome { replica, leader }))
            }
            ServerFrame::Welcome { version, .. } => Err(ConnectError::Failed(format!(
                "{target} welcomed protocol version {version}, not {PROTOCOL_VERSION}"
            ))),
            ServerFrame::Error { kind, message, .. } => {
                Err(ConnectError::Refused { kind, message })
            }
            other => Err(ConnectError::Failed(format!(
                "{target} answered Hello with {other:?} instead of Welcome"
            ))),
        }
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(result) => result,
        Err(_) => {
            Err(ConnectError::Failed(format!("{target} did not welcome us within {timeout:?}")))
        }
    }
}

/// The socket as blocking-style `Read`/`Write` for rustls, without blocking: a
/// socket that is not ready says `WouldBlock`.
struct Socket<'a>(&'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Connection {
    /// Writes all of `bytes` (one buffer, so usually one write).
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut out = bytes.to_vec();
        loop {
            self.try_send(&mut out)?;
            if out.is_empty() && !self.wants_write() {
                return Ok(());
            }
            self.writable().await.map_err(|e| format!("writing to {}: {e}", self.target))?;
        }
    }

    /// Reads until one whole frame is in, and decodes it (for short exchanges:
    /// the handshake and `status_of`).
    pub(crate) async fn read_frame(&mut self) -> Result<ServerFrame, String> {
        loop {
            if let Some(frame) = self.split_frame()? {
                return Ok(frame);
            }
            self.compact();
            self.readable().await.map_err(|e| format!("reading from {}: {e}", self.target))?;
            if let Some(why) = self.fill() {
                // Frames that came before the end are still good.
                if let Some(frame) = self.split_frame()? {
                    return Ok(frame);
                }
                return Err(why);
            }
        }
    }

    /// Whether TLS output is waiting for the socket (besides the caller's bytes).
    pub(crate) fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Reads what the socket has without waiting into `buf` (through TLS when it
    /// is on); says why the connection is finished, if it is.
    fn fill(&mut self) -> Option<String> {
        let Some(tls) = &mut self.tls else {
            self.buf.reserve(READ_CHUNK);
            return match self.stream.try_read_buf(&mut self.buf) {
                Ok(0) => Some(format!("{} closed the connection", self.target)),
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) => Some(format!("reading from {}: {e}", self.target)),
            };
        };
        let mut plain = [0u8; 16 * 1024];
        for _ in 0..TLS_READS_MAX {
            let closed = match tls.read_tls(&mut Socket(&self.stream)) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(format!("reading from {}: {e}", self.target)),
            };
            if let Err(e) = tls.process_new_packets() {
                self.tls_failed = true;
                // Best effort: tell the replica why (the alert rustls queued).
                let _ = tls.write_tls(&mut Socket(&self.stream));
                return Some(format!("TLS error with {}: {e}", self.target));
            }
            loop {
                match tls.reader().read(&mut plain) {
                    Ok(0) => {
                        return Some(format!("{} closed the connection", self.target));
                    }
                    Ok(n) => self.buf.extend_from_slice(&plain[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Some(format!("reading from {}: {e}", self.target)),
                }
            }
            if closed {
                return Some(format!("{} closed the connection", self.target));
            }
        }
        None
    }

    /// Waits until the socket may be readable (it may also wake spuriously).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Waits until the socket may be writable.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.stream.writable().await
    }

    /// Reads what is there without waiting, and splits off the whole frames.
    pub(crate) fn try_receive(&mut self) -> Received {
        let mut broken = self.fill();
        let mut frames = Vec::new();
        loop {
            match self.split_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(why) => {
                    broken = Some(why);
                    break;
                }
            }
        }
        self.compact();
        Received { frames, broken }
    }

    /// Writes as much of `out` as the socket takes now, removing it from `out`
    /// (with TLS: as much as the session takes, and as much of the session's output
    /// as the socket takes; `wants_write` tells whether some is left).
    pub(crate) fn try_send(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if let Some(tls) = &mut self.tls {
            loop {
                let mut progressed = false;
                if !out.is_empty() {
                    let n = tls
                        .writer()
                        .write(out)
                        .map_err(|e| format!("writing to {}: {e}", self.target))?;
                    out.drain(..n);
                    progressed |= n > 0;
                }
                if tls.wants_write() {
                    match tls.write_tls(&mut Socket(&self.stream)) {
                        Ok(n) => progressed |= n > 0,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("writing to {}: {e}", self.target)),
                    }
                }
                if !progressed {
                    break;
                }
            }
            return Ok(());
        }
        while !out.is_empty() {
            match self.stream.try_write(out) {
                Ok(n) => {
                    out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("writing to {}: {e}", self.target)),
            }
        }
        Ok(())
    }

    /// The first whole frame not split off yet, decoded, if there is one.
    fn split_frame(&mut self) -> Result<Option<ServerFrame>, String> {
        let rest = &self.buf[self.start..];
        let range = frame::next_frame(rest, CLIENT_FRAME_MAX)
            .map_err(|e| format!("{} sent a bad frame: {e}", self.target))?;
        let Some(range) = range else { return Ok(None) };
        let decoded = protocol::decode::<ServerFrame>(&rest[range.clone()]);
        self.start += range.end;
        decoded
            .map(Some)
            .map_err(|e| format!("{} sent a frame we cannot decode: {}", self.target, e.message))
    }

    /// Drops the bytes already split off (one move per read, not one per frame).
    fn compact(&mut self) {
        self.buf.drain(..self.start);
        self.start = 0;
    }
}
