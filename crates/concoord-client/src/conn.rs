//! One TCP connection to a replica: connecting with the `Hello`/`Welcome`
//! handshake, non-blocking reads that split frames off a buffer, and writes of
//! whole buffers. It decides nothing: the driver hands what it reads to the core.

use crate::core::{framed, ConnectError};
use concoord_object::protocol::{
    self, ClientFrame, ServerFrame, CLIENT_FRAME_MAX, PROTOCOL_VERSION,
};
use concoord_wire::frame;
use concoord_wire::ReplicaId;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes reserved in the read buffer before each read.
const READ_CHUNK: usize = 64 * 1024;

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
    timeout: Duration,
) -> Result<(Connection, Welcome), ConnectError> {
    let Some(parsed) = concoord_naming::parse_dns_url(&target) else {
        return connect_one(target, token, cluster, timeout).await;
    };
    let dns = parsed.map_err(|e| ConnectError::Failed(e.to_string()))?;
    let addrs = concoord_naming::resolve(&dns)
        .await
        .map_err(|e| ConnectError::Failed(format!("cannot find the replicas of {target}: {e}")))?;
    let mut last = ConnectError::Failed(format!("{target} names no replica"));
    for addr in addrs {
        match connect_one(addr, token.clone(), cluster.clone(), timeout).await {
            Ok(connected) => return Ok(connected),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn connect_one(
    target: String,
    token: Option<String>,
    cluster: Option<String>,
    timeout: Duration,
) -> Result<(Connection, Welcome), ConnectError> {
    let handshake = async {
        let stream = TcpStream::connect(&target)
            .await
            .map_err(|e| ConnectError::Failed(format!("cannot connect to {target}: {e}")))?;
        stream.set_nodelay(true).map_err(|e| {
            ConnectError::Failed(format!("cannot set TCP_NODELAY on {target}: {e}"))
        })?;
        let mut conn = Connection { target: target.clone(), stream, buf: Vec::new(), start: 0 };
        let hello = framed(&ClientFrame::Hello { version: PROTOCOL_VERSION, token, cluster })
            .map_err(|e| ConnectError::Failed(e.to_string()))?;
        conn.write_all(&hello).await.map_err(ConnectError::Failed)?;
        match conn.read_frame().await.map_err(ConnectError::Failed)? {
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

impl Connection {
    /// Writes all of `bytes` (one buffer, so usually one write).
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> Result<(), String> {
        let target = &self.target;
        self.stream.write_all(bytes).await.map_err(|e| format!("writing to {target}: {e}"))
    }

    /// Reads until one whole frame is in, and decodes it (for short exchanges:
    /// the handshake and `status_of`).
    pub(crate) async fn read_frame(&mut self) -> Result<ServerFrame, String> {
        loop {
            if let Some(frame) = self.split_frame()? {
                return Ok(frame);
            }
            self.compact();
            self.buf.reserve(READ_CHUNK);
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| format!("reading from {}: {e}", self.target))?;
            if n == 0 {
                return Err(format!("{} closed the connection", self.target));
            }
        }
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
        self.buf.reserve(READ_CHUNK);
        let mut broken = match self.stream.try_read_buf(&mut self.buf) {
            Ok(0) => Some(format!("{} closed the connection", self.target)),
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(format!("reading from {}: {e}", self.target)),
        };
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

    /// Writes as much of `out` as the socket takes now, removing it from `out`.
    pub(crate) fn try_send(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
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
