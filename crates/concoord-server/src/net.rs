//! Sockets: the listener, client connections, and the links between replicas.
//!
//! Every connection gets a reader task that turns frames into `Event`s for the event
//! loop and a writer task that drains a bounded queue, coalescing queued frames into
//! one write. Nothing here decides anything: the event loop (`server.rs`) does.
//!
//! One port serves both clients and replicas. A replica's first frame is
//! `PEER_MAGIC` followed by a postcard `PeerHello`; anything else is a client,
//! whose first frame must be a MessagePack `ClientFrame::Hello`.
//!
//! With TLS (`Gate::tls`), every connection is TLS from its first byte, and the
//! frames above travel inside it. The first bytes tell a TLS ClientHello from a
//! plaintext frame, so a plaintext client or replica is answered with a refusal it
//! can read instead of a silent hang, and a TLS client reaching a replica without
//! TLS gets a TLS alert.

use crate::tls::{server_name, Tls};
use concoord_object::protocol::{
    self, ClientFrame, ErrorKind, ServerFrame, CLIENT_FRAME_MAX, PROTOCOL_VERSION,
};
use concoord_paxos::Message;
use concoord_wire::frame::{body_len, put_frame, FrameError, FRAME_HEADER_LEN};
use concoord_wire::{ClusterId, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// The reading side of a connection, plaintext or TLS.
type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The writing side of a connection, plaintext or TLS.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Bytes a connection's reader takes from the socket at once: a burst of pipelined
/// frames costs one `recvfrom`, not two per frame (header, body) and an `EAGAIN`.
const READ_BUFFER: usize = 16 * 1024;

fn buffered(rd: impl AsyncRead + Send + Unpin + 'static) -> Reader {
    Box::new(tokio::io::BufReader::with_capacity(READ_BUFFER, rd))
}

/// Identifies one client connection.
pub type ConnId = u64;

/// Largest replica-to-replica frame (a catch-up batch or a snapshot).
pub const PEER_FRAME_MAX: usize = 256 << 20;
/// The first bytes of a replica's first frame.
/// Version 2: every message names the identity it is meant for (`PeerEnvelope`), and
/// the hello carries the cluster id. Version 3: a member record may carry the port of
/// the member's name server (`Member::dns_port`), which version 2 would misread as
/// part of the member's address.
pub const PEER_MAGIC: &[u8] = b"concoord-peer/3\0";
/// Frames queued to one client before the replica drops the connection (a client
/// that does not read must not make the replica buffer without bound).
pub const CLIENT_QUEUE_MAX: usize = 16_384;
/// Messages queued to one peer; beyond this they are dropped (Paxos retransmits).
pub const PEER_QUEUE_MAX: usize = 8_192;
/// Bytes coalesced into one write.
const WRITE_COALESCE_MAX: usize = 256 * 1024;
/// How long a connection may take to send its first frame.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a replica says it is when it connects to another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerHello {
    pub version: u32,
    pub from: ReplicaId,
    pub addr: String,
    pub object_type: String,
    pub token: Option<String>,
    /// The sender's cluster (`None`: a joiner that has not learned it yet). Checked
    /// by the core on every message (`Replica::step`).
    pub cluster: Option<ClusterId>,
}

/// One message between replicas, with the identity it is meant for: links go to
/// addresses, and the process at an address may not be the identity the sender
/// thinks (a member restarted there without its data, under a fresh identity).
/// `None` for what goes to an address whoever is there (a join request to a boot
/// address).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerEnvelope {
    pub to: Option<ReplicaId>,
    pub msg: Message,
}

/// Why a replica refused a peer's connection, written back on that connection
/// before it is closed, so the refused replica can say why on its own side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRefusal {
    pub reason: String,
}

/// Largest refusal frame a link reads back.
const REFUSAL_FRAME_MAX: usize = 4_096;

/// What the connection tasks tell the event loop.
#[derive(Debug)]
pub enum Event {
    /// `kill` closes the connection at once (a client that does not read its replies).
    ClientOpened {
        conn: ConnId,
        writer: mpsc::Sender<Vec<u8>>,
        kill: oneshot::Sender<()>,
    },
    ClientFrame {
        conn: ConnId,
        frame: ClientFrame,
    },
    ClientClosed {
        conn: ConnId,
    },
    Peer {
        from: ReplicaId,
        /// The identity the sender meant it for (`PeerEnvelope::to`).
        to: Option<ReplicaId>,
        addr: String,
        cluster: Option<ClusterId>,
        msg: Message,
    },
    /// A link to `addr` could not connect, or the replica there refused it.
    LinkTrouble {
        addr: String,
        reason: String,
    },
}

/// What connection tasks need to know about this replica; the event loop updates it.
#[derive(Clone, Debug)]
pub struct Shared {
    pub replica: ReplicaId,
    pub leader: Option<String>,
    pub cluster: Option<ClusterId>,
}

/// Settings the connection tasks check on their own.
#[derive(Debug)]
pub struct Gate {
    pub token: Option<String>,
    pub object_type: String,
    /// Accept only TLS connections, with this configuration.
    pub tls: Option<Tls>,
    /// Refusals already logged at `warn` (by peer address and reason): a refused
    /// replica retries every second or so, and the log should not repeat itself.
    pub reported: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Gate {
    pub fn new(token: Option<String>, object_type: String, tls: Option<Tls>) -> Gate {
        Gate { token, object_type, tls, reported: std::sync::Mutex::new(Default::default()) }
    }

    /// Whether this refusal is new (the first of its kind from that address).
    fn first_report(&self, key: String) -> bool {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        reported.len() < 4_096 && reported.insert(key)
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn token_matches(expected: Option<&str>, given: Option<&str>) -> bool {
    let Some(expected) = expected else { return true };
    let given = given.unwrap_or("");
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Encodes a client-protocol frame (header included).
pub fn client_frame(frame: &ServerFrame) -> Vec<u8> {
    let body = protocol::encode(frame).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + FRAME_HEADER_LEN);
    if put_frame(&mut out, &body, CLIENT_FRAME_MAX).is_err() {
        // A reply too large for the protocol becomes an error the client can read.
        let error = ServerFrame::Error {
            id: frame_id(frame),
            kind: ErrorKind::RequestTooLarge,
            message: format!("reply of {} bytes exceeds the frame limit", body.len()),
        };
        let body = protocol::encode(&error).unwrap_or_default();
        out.clear();
        let _ = put_frame(&mut out, &body, CLIENT_FRAME_MAX);
    }
    out
}

fn frame_id(frame: &ServerFrame) -> Option<u64> {
    match frame {
        ServerFrame::Reply { id, .. }
        | ServerFrame::Redirect { id, .. }
        | ServerFrame::Status { id, .. } => Some(*id),
        ServerFrame::Error { id, .. } => *id,
        ServerFrame::Welcome { .. } => None,
    }
}

/// Encodes a replica-to-replica message frame.
pub fn peer_frame(to: Option<ReplicaId>, msg: &Message) -> Option<Vec<u8>> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        to: Option<ReplicaId>,
        msg: &'a Message,
    }
    let body = postcard::to_allocvec(&Borrowed { to, msg }).ok()?;
    let mut out = Vec::with_capacity(body.len() + FRAME_HEADER_LEN);
    put_frame(&mut out, &body, PEER_FRAME_MAX).ok()?;
    Some(out)
}

fn hello_frame(hello: &PeerHello) -> Vec<u8> {
    let mut body = PEER_MAGIC.to_vec();
    body.extend(postcard::to_allocvec(hello).unwrap_or_default());
    let mut out = Vec::new();
    let _ = put_frame(&mut out, &body, PEER_FRAME_MAX);
    out
}

fn frame_error_kind(e: FrameError) -> ErrorKind {
    match e {
        FrameError::TooLarge { .. } => ErrorKind::FrameTooLarge,
        FrameError::Empty => ErrorKind::BadFrame,
    }
}

enum ReadError {
    Closed,
    Frame(FrameError),
}

/// Most of a frame's body allocated before its bytes arrive.
const BODY_PREALLOC_MAX: usize = 64 * 1024;

async fn read_frame<R: AsyncRead + Unpin>(rd: &mut R, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    rd.read_exact(&mut header).await.map_err(|_| ReadError::Closed)?;
    let len = body_len(header, max).map_err(ReadError::Frame)?;
    // The memory follows the bytes that arrive, not the length a header claims: a
    // connection that announces a huge frame and sends nothing costs nothing.
    let mut body = Vec::with_capacity(len.min(BODY_PREALLOC_MAX));
    let read = rd.take(len as u64).read_to_end(&mut body).await;
    if read.is_err() || body.len() < len {
        return Err(ReadError::Closed);
    }
    Ok(body)
}

/// Appends frames already queued to `buf`, up to `WRITE_COALESCE_MAX` bytes, so
/// they go out in one write.
fn coalesce(buf: &mut Vec<u8>, rx: &mut mpsc::Receiver<Vec<u8>>) {
    while buf.len() < WRITE_COALESCE_MAX {
        match rx.try_recv() {
            Ok(more) => buf.extend_from_slice(&more),
            Err(_) => break,
        }
    }
}

/// Writes queued frames, several per write when they queue up.
async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut buf = Vec::new();
    while let Some(frame) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&frame);
        coalesce(&mut buf, &mut rx);
        if wr.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Accepts connections until the event loop goes away.
pub async fn accept_loop(
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    shared: watch::Receiver<Shared>,
    gate: Arc<Gate>,
) {
    static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if events.is_closed() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve_connection(stream, conn, events.clone(), shared.clone(), gate.clone()));
    }
}

/// What the first bytes of a connection are.
#[derive(Debug, PartialEq)]
enum Opening {
    Tls,
    Plain,
    /// Closed, or silent for `HELLO_TIMEOUT`.
    Nothing,
}

/// Tells a TLS ClientHello from one of our plaintext frames by its first three bytes,
/// without consuming them: a TLS handshake record starts 0x16 0x03 0x00..=0x04, which
/// read as the start of our little-endian length would announce a first frame of
/// more than 64 KiB, larger than any hello.
async fn opening(stream: &TcpStream) -> Opening {
    let peek = async {
        let mut head = [0u8; 3];
        loop {
            let n = match stream.peek(&mut head).await {
                Ok(0) | Err(_) => return Opening::Nothing,
                Ok(n) => n,
            };
            if let Some(opening) = classify(&head[..n]) {
                return opening;
            }
            // The rest of the record header is on its way (peek returns at once
            // while anything is buffered, so wait instead of spinning).
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(HELLO_TIMEOUT, peek).await.unwrap_or(Opening::Nothing)
}

/// What a connection that started with `head` is, if that is enough to tell.
fn classify(head: &[u8]) -> Option<Opening> {
    match head {
        [] | [0x16] | [0x16, 0x03] => None,
        [0x16, 0x03, minor, ..] if *minor <= 0x04 => Some(Opening::Tls),
        _ => Some(Opening::Plain),
    }
}

/// The address a refusal is logged under once: the IP, since every connection of
/// a client comes from another port.
fn peer_ip(stream: &TcpStream) -> String {
    stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default()
}

/// A TLS `protocol_version` alert (fatal), the answer of a replica without TLS to
/// a TLS client: its TLS library then reports a failure at once instead of
/// waiting for a ServerHello that never comes.
const ALERT_PROTOCOL_VERSION: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46];

async fn answer_tls_without_tls(mut stream: TcpStream, gate: &Gate) {
    let peer = peer_ip(&stream);
    if gate.first_report(format!("tls client {peer}")) {
        tracing::warn!(
            "{peer} speaks TLS, and this replica runs without it (--tls-cert, --tls-key, \
             --tls-ca): refusing"
        );
    }
    // Read what it sent first, so closing does not reset the connection before the
    // alert is read.
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut sink)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&ALERT_PROTOCOL_VERSION))
        .await;
    let _ = stream.shutdown().await;
}

/// Answers a plaintext connection to a replica that requires TLS with a refusal the
/// other side can read (a client `Error`, or a `PeerRefusal` for a replica). Its
/// first frame (which may carry a token: that is why clients must be configured
/// for TLS too) is read and dropped, never looked at beyond the peer magic.
async fn refuse_plaintext(mut stream: TcpStream, gate: &Gate) {
    let peer = peer_ip(&stream);
    // A hello is small; anything larger is not one of ours (nor worth reading).
    let first = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut stream, 64 * 1024)).await;
    let is_peer = matches!(&first, Ok(Ok(body)) if body.starts_with(b"concoord-peer/"));
    if gate.first_report(format!("plaintext {} {peer}", is_peer)) {
        let who = if is_peer { "replica" } else { "client" };
        tracing::warn!("refusing a plaintext {who} at {peer}: this replica requires TLS");
    }
    let frame = if is_peer {
        let reason = "this replica requires TLS: start every replica with --tls-cert, \
                      --tls-key and --tls-ca"
            .into();
        let body = postcard::to_allocvec(&PeerRefusal { reason }).unwrap_or_default();
        let mut frame = Vec::new();
        let _ = put_frame(&mut frame, &body, REFUSAL_FRAME_MAX);
        frame
    } else {
        client_frame(&ServerFrame::Error {
            id: None,
            kind: ErrorKind::TlsRequired,
            message: "this replica requires TLS: connect with TLS (--tls-ca, and --tls-cert \
                      with --tls-key when it asks for a client certificate)"
                .into(),
        })
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&frame)).await;
    let _ = stream.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    conn: ConnId,
    events: mpsc::Sender<Event>,
    shared: watch::Receiver<Shared>,
    gate: Arc<Gate>,
) {
    let opening = opening(&stream).await;
    // Whether the other side proved its identity with a certificate of the CA.
    let mut certified = false;
    let (mut rd, wr): (Reader, Writer) = match (&gate.tls, opening) {
        (_, Opening::Nothing) => return,
        (None, Opening::Tls) => return answer_tls_without_tls(stream, &gate).await,
        (None, Opening::Plain) => {
            let (rd, wr) = stream.into_split();
            (buffered(rd), Box::new(wr))
        }
        (Some(_), Opening::Plain) => return refuse_plaintext(stream, &gate).await,
        (Some(tls), Opening::Tls) => {
            let peer = peer_ip(&stream);
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
            let stream = match tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    if gate.first_report(format!("tls {peer} {e}")) {
                        tracing::warn!("TLS handshake with {peer} failed: {e}");
                    }
                    return;
                }
                Err(_) => return,
            };
            certified = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
            let (rd, wr) = tokio::io::split(stream);
            (buffered(rd), Box::new(wr))
        }
    };
    let first = match tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut rd, PEER_FRAME_MAX)).await
    {
        Ok(Ok(body)) => body,
        Ok(Err(ReadError::Frame(e))) => {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(client_frame(&ServerFrame::Error {
                id: None,
                kind: frame_error_kind(e),
                message: e.to_string(),
            }));
            drop(tx);
            write_loop(wr, rx).await;
            return;
        }
        Ok(Err(ReadError::Closed)) | Err(_) => return,
    };
    if let Some(rest) = first.strip_prefix(PEER_MAGIC) {
        serve_peer(rd, wr, rest, certified, events, &gate).await;
    } else if first.starts_with(b"concoord-peer/") {
        // A replica of another release, whose frames this one would misread.
        let theirs: String =
            first.iter().take_while(|b| **b != 0).take(32).map(|b| char::from(*b)).collect();
        if gate.first_report(format!("magic {theirs}")) {
            tracing::warn!(
                "refusing a replica that speaks {theirs:?}, not {:?}: run the same concoord \
                 version on every replica",
                String::from_utf8_lossy(&PEER_MAGIC[..PEER_MAGIC.len() - 1])
            );
        }
        let reason = "it speaks another peer protocol: run the same concoord version".into();
        let body = postcard::to_allocvec(&PeerRefusal { reason }).unwrap_or_default();
        let mut frame = Vec::new();
        if put_frame(&mut frame, &body, REFUSAL_FRAME_MAX).is_ok() {
            let mut wr = wr;
            let _ = tokio::time::timeout(Duration::from_secs(1), wr.write_all(&frame)).await;
            let _ = wr.shutdown().await;
        }
    } else {
        serve_client(rd, wr, &first, conn, events, shared, &gate).await;
    }
}

/// Why a peer's hello is refused, if it is. `certified`: the peer presented a
/// certificate of the CA (TLS only).
fn refusal(hello: &PeerHello, certified: bool, gate: &Gate) -> Option<String> {
    if gate.tls.is_some() && !certified {
        return Some(
            "it presented no TLS certificate: a replica needs one signed by the CA \
             (--tls-cert, --tls-key)"
                .into(),
        );
    }
    if hello.version != PROTOCOL_VERSION {
        return Some(format!(
            "it speaks peer protocol {}, this replica {}: run the same concoord version",
            hello.version, PROTOCOL_VERSION
        ));
    }
    if !token_matches(gate.token.as_deref(), hello.token.as_deref()) {
        return Some("wrong token: give every replica the same --token".into());
    }
    if hello.object_type != gate.object_type {
        return Some(format!(
            "it hosts {:?}, this replica {:?}: every replica of a cluster must be started \
             with the same -o",
            hello.object_type, gate.object_type
        ));
    }
    None
}

async fn serve_peer(
    mut rd: Reader,
    mut wr: Writer,
    hello: &[u8],
    certified: bool,
    events: mpsc::Sender<Event>,
    gate: &Gate,
) {
    let hello: PeerHello = match postcard::from_bytes(hello) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("dropping a peer connection with a malformed hello: {e}");
            return;
        }
    };
    if let Some(reason) = refusal(&hello, certified, gate) {
        if gate.first_report(format!("{} {reason}", hello.addr)) {
            tracing::warn!("refusing peer {} at {}: {reason}", hello.from, hello.addr);
        } else {
            tracing::debug!("refusing peer {} at {}: {reason}", hello.from, hello.addr);
        }
        // Tell the refused replica why, so it can say so on its own side.
        let body = postcard::to_allocvec(&PeerRefusal { reason }).unwrap_or_default();
        let mut frame = Vec::new();
        if put_frame(&mut frame, &body, REFUSAL_FRAME_MAX).is_ok() {
            let write = tokio::time::timeout(Duration::from_secs(1), wr.write_all(&frame));
            let _ = write.await;
        }
        let _ = wr.shutdown().await;
        return;
    }
    // This direction carries nothing back; keep the write half open (dropping it
    // would half-close the connection under the peer's link).
    let _wr = wr;
    loop {
        let body = match read_frame(&mut rd, PEER_FRAME_MAX).await {
            Ok(body) => body,
            Err(ReadError::Closed) => return,
            Err(ReadError::Frame(e)) => {
                tracing::warn!("dropping the connection from peer {}: {e}", hello.from);
                return;
            }
        };
        let envelope: PeerEnvelope = match postcard::from_bytes(&body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(
                    "dropping the connection from peer {}: bad message: {e}",
                    hello.from
                );
                return;
            }
        };
        let event = Event::Peer {
            from: hello.from,
            to: envelope.to,
            addr: hello.addr.clone(),
            cluster: hello.cluster,
            msg: envelope.msg,
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

async fn serve_client(
    mut rd: Reader,
    wr: Writer,
    first: &[u8],
    conn: ConnId,
    events: mpsc::Sender<Event>,
    shared: watch::Receiver<Shared>,
    gate: &Gate,
) {
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE_MAX);
    let writer = tokio::spawn(write_loop(wr, rx));
    let refuse = |kind: ErrorKind, message: String| {
        let _ = tx.try_send(client_frame(&ServerFrame::Error { id: None, kind, message }));
    };
    match protocol::decode::<ClientFrame>(first) {
        Ok(ClientFrame::Hello { version, token, cluster }) => {
            if version != PROTOCOL_VERSION {
                refuse(
                    ErrorKind::BadVersion,
                    format!("this replica speaks protocol {PROTOCOL_VERSION}, not {version}"),
                );
                drop(tx);
                let _ = writer.await;
                return;
            }
            if !token_matches(gate.token.as_deref(), token.as_deref()) {
                refuse(ErrorKind::BadToken, "wrong or missing token (see --token)".into());
                drop(tx);
                let _ = writer.await;
                return;
            }
            let s = shared.borrow().clone();
            let mine = s.cluster.map(|c| c.to_string());
            if let (Some(wanted), Some(mine)) = (&cluster, &mine) {
                if wanted != mine {
                    refuse(
                        ErrorKind::OtherCluster,
                        format!("this replica belongs to cluster {mine}, not {wanted}"),
                    );
                    drop(tx);
                    let _ = writer.await;
                    return;
                }
            }
            let welcome = ServerFrame::Welcome {
                version: PROTOCOL_VERSION,
                replica: s.replica,
                leader: s.leader,
            };
            let _ = tx.try_send(client_frame(&welcome));
        }
        Ok(_) => {
            refuse(ErrorKind::NoHello, "the first frame must be Hello".into());
            drop(tx);
            let _ = writer.await;
            return;
        }
        Err(e) => {
            refuse(ErrorKind::BadFrame, format!("expected Hello: {}", e.message));
            drop(tx);
            let _ = writer.await;
            return;
        }
    }
    let (kill, mut killed) = oneshot::channel();
    if events.send(Event::ClientOpened { conn, writer: tx.clone(), kill }).await.is_err() {
        return;
    }
    let mut kill_now = false;
    loop {
        let read = tokio::select! {
            read = read_frame(&mut rd, CLIENT_FRAME_MAX) => read,
            _ = &mut killed => {
                kill_now = true;
                break;
            }
        };
        let body = match read {
            Ok(body) => body,
            Err(ReadError::Closed) => break,
            Err(ReadError::Frame(e)) => {
                // The frame boundary is lost: say why, then close.
                refuse(frame_error_kind(e), e.to_string());
                break;
            }
        };
        match protocol::decode::<ClientFrame>(&body) {
            Ok(ClientFrame::Hello { .. }) => {
                refuse(ErrorKind::BadFrame, "Hello was already received".into());
            }
            Ok(frame) => {
                if events.send(Event::ClientFrame { conn, frame }).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                // A request the replica cannot read (an integer beyond i64 among its
                // arguments, say): the refusal names it, so the client fails that
                // request alone instead of waiting for it.
                let id = protocol::request_id_of(&body);
                let message = match id {
                    Some(id) => format!("request {id}: {}", e.message),
                    None => e.message,
                };
                let error = ServerFrame::Error { id, kind: ErrorKind::BadFrame, message };
                let _ = tx.try_send(client_frame(&error));
            }
        }
    }
    drop(tx);
    if kill_now {
        // Its queue is full because it does not read: writing the rest would block.
        writer.abort();
    }
    let _ = events.send(Event::ClientClosed { conn }).await;
    let _ = writer.await;
}

/// Outgoing links to other replicas, by address. Each link is a task that connects
/// (and reconnects), says hello, and writes queued messages.
#[derive(Debug)]
pub struct Links {
    hello: Arc<Vec<u8>>,
    links: BTreeMap<String, mpsc::Sender<Vec<u8>>>,
    /// Where links report trouble (a failed connect, a refusal).
    events: mpsc::Sender<Event>,
    /// The address outgoing links are bound to: the replica's own listening address,
    /// when it listens on a specific one. Peers (and firewalls) then see a replica's
    /// traffic come from the address it is known by, on a host with several.
    local: Option<std::net::IpAddr>,
    /// Links speak TLS with this configuration.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Links {
    pub fn new(
        hello: PeerHello,
        events: mpsc::Sender<Event>,
        local: Option<std::net::IpAddr>,
        tls: Option<&Tls>,
    ) -> Links {
        let tls = tls.map(|t| t.client.clone());
        Links { hello: Arc::new(hello_frame(&hello)), links: BTreeMap::new(), events, local, tls }
    }

    /// Forgets every link (the replica changed identity): their tasks end.
    pub fn reset(&mut self, hello: PeerHello) {
        self.links.clear();
        self.hello = Arc::new(hello_frame(&hello));
    }

    /// Queues a frame for `addr`; drops it if the link is congested (the protocol
    /// retransmits what matters).
    pub fn send(&mut self, addr: &str, frame: Vec<u8>) {
        let link = self.links.entry(addr.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
            let events = self.events.clone();
            let local = self.local;
            let tls = self.tls.clone();
            tokio::spawn(link_loop(addr.to_string(), self.hello.clone(), rx, events, local, tls));
            tx
        });
        if let Err(mpsc::error::TrySendError::Closed(_)) = link.try_send(frame) {
            self.links.remove(addr);
        }
    }
}

async fn link_loop(
    addr: String,
    hello: Arc<Vec<u8>>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<Event>,
    local: Option<std::net::IpAddr>,
    tls: Option<Arc<rustls::ClientConfig>>,
) {
    let mut backoff = Duration::from_millis(20);
    let trouble = |reason: String| {
        let _ = events.try_send(Event::LinkTrouble { addr: addr.clone(), reason });
    };
    loop {
        // Connect only when there is something to send: a link to a replica that
        // left costs nothing while nobody writes to it.
        let Some(first) = rx.recv().await else { return };
        let connect =
            tokio::time::timeout(Duration::from_secs(1), connect_link(local, &addr, &tls));
        let stream = match connect.await {
            Ok(Ok(stream)) => stream,
            failed => {
                trouble(match failed {
                    Ok(Err(e)) => format!("cannot connect: {e}"),
                    _ => "no answer to a connection attempt within 1 s".into(),
                });
                // Unreachable: what is queued is stale by the time it would arrive.
                drop(first);
                loop {
                    match rx.try_recv() {
                        Ok(_) => continue,
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        backoff = Duration::from_millis(20);
        let (mut rd, mut wr) = stream;
        // Nothing comes back on a link but a refusal: read it, to say why.
        let refused = events.clone();
        let refused_addr = addr.clone();
        let reader = tokio::spawn(async move {
            if let Ok(body) = read_frame(&mut rd, REFUSAL_FRAME_MAX).await {
                if let Ok(PeerRefusal { reason }) = postcard::from_bytes(&body) {
                    let reason = format!("refused by the replica there: {reason}");
                    let _ = refused.try_send(Event::LinkTrouble { addr: refused_addr, reason });
                }
            }
        });
        let mut buf: Vec<u8> = hello.as_ref().clone();
        buf.extend_from_slice(&first);
        loop {
            if buf.is_empty() {
                match rx.recv().await {
                    Some(frame) => buf.extend_from_slice(&frame),
                    None => return,
                }
            }
            coalesce(&mut buf, &mut rx);
            if wr.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
        }
        reader.abort();
    }
}

/// Connects a link to `addr`, with TLS when configured (the replica there must
/// present a certificate of the CA naming `addr`'s host; this one presents its own).
async fn connect_link(
    local: Option<std::net::IpAddr>,
    addr: &str,
    tls: &Option<Arc<rustls::ClientConfig>>,
) -> std::io::Result<(Reader, Writer)> {
    let stream = connect_from(local, addr).await?;
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        let (rd, wr) = stream.into_split();
        return Ok((buffered(rd), Box::new(wr)));
    };
    let name = server_name(addr).map_err(std::io::Error::other)?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, stream)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("TLS handshake failed: {e}")))?;
    let (rd, wr) = tokio::io::split(stream);
    Ok((buffered(rd), Box::new(wr)))
}

/// Connects to `addr`, from `local` when given (any port).
async fn connect_from(local: Option<std::net::IpAddr>, addr: &str) -> std::io::Result<TcpStream> {
    let Some(local) = local else { return TcpStream::connect(addr).await };
    let mut last = None;
    for target in tokio::net::lookup_host(addr).await? {
        if target.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address of the same family")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_object::machine::Request;
    use concoord_object::Value;
    use concoord_paxos::{AcceptedEntry, Ballot, Command, Member, Value as Entry};
    use concoord_wire::{RequestNumber, SessionId, Slot, Time};

    /// A tiny deterministic generator (no OS randomness in tests either).
    struct Bytes(u64);

    impl Bytes {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    fn samples() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let ballot = Ballot { round: 3, leader: ReplicaId(7) };
        let entry = Entry {
            timestamp: Time(5),
            commands: vec![Command::App(vec![1, 2, 3]), Command::Noop],
        };
        let peer = [
            Message::Prepare { ballot, from_slot: Slot(4) },
            Message::Accept {
                ballot,
                entries: vec![(Slot(9), entry.clone())],
                commit_max: Slot(8),
            },
            Message::Promise {
                ballot,
                commit_max: Slot(2),
                accepted: vec![AcceptedEntry { slot: Slot(3), ballot, value: entry }],
            },
            Message::JoinRequest { member: Member::new(ReplicaId(9), "127.0.0.1:1") },
        ];
        let client = [
            ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                token: Some("t".into()),
                cluster: None,
            },
            ClientFrame::Request {
                id: 3,
                request: Request::Call {
                    session: SessionId(1),
                    request: RequestNumber(2),
                    acked: RequestNumber(2),
                    object: "default".into(),
                    method: "put".into(),
                    args: vec![Value::List(vec![Value::Map(vec![(Value::Int(1), Value::Nil)])])],
                },
            },
        ];
        (
            peer.iter().map(|m| postcard::to_allocvec(m).unwrap()).collect(),
            client.iter().map(|f| protocol::encode(f).unwrap()).collect(),
        )
    }

    /// Mutated and random bodies decode to an error or to some message, never a
    /// panic or a runaway allocation: both decoders face the network.
    #[test]
    fn decoders_survive_mutated_and_random_bytes() {
        let (peer, client) = samples();
        let mut rng = Bytes(42);
        for round in 0..20_000 {
            let base = if round % 2 == 0 { &peer } else { &client };
            let mut body = base[(rng.next() as usize) % base.len()].clone();
            match rng.next() % 4 {
                0 => {
                    let len = (rng.next() % 64) as usize;
                    body = (0..len).map(|_| rng.next() as u8).collect();
                }
                1 => {
                    let cut = (rng.next() as usize) % (body.len() + 1);
                    body.truncate(cut);
                }
                _ => {
                    for _ in 0..=(rng.next() % 4) {
                        if !body.is_empty() {
                            let at = (rng.next() as usize) % body.len();
                            body[at] = rng.next() as u8;
                        }
                    }
                }
            }
            let _ = postcard::from_bytes::<Message>(&body);
            let _ = protocol::decode::<ClientFrame>(&body);
            let _ = postcard::from_bytes::<PeerHello>(&body);
        }
    }

    #[test]
    fn tls_handshakes_are_told_from_plaintext_frames() {
        // A TLS record header: handshake, version 3.1 (what a ClientHello carries).
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Some(Opening::Tls));
        assert_eq!(classify(&[0x16, 0x03, 0x03]), Some(Opening::Tls));
        // Too little to tell yet.
        assert_eq!(classify(&[]), None);
        assert_eq!(classify(&[0x16]), None);
        assert_eq!(classify(&[0x16, 0x03]), None);
        // A plaintext hello of 22 (0x16) bytes: its length's next byte is 0.
        let mut hello = Vec::new();
        put_frame(&mut hello, &[7u8; 0x16], PEER_FRAME_MAX).unwrap();
        assert_eq!(classify(&hello[..3]), Some(Opening::Plain));
        let peer = hello_frame(&PeerHello {
            version: PROTOCOL_VERSION,
            from: ReplicaId(1),
            addr: "127.0.0.1:1".into(),
            object_type: "Counter".into(),
            token: None,
            cluster: None,
        });
        assert_eq!(classify(&peer[..3]), Some(Opening::Plain));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches(None, None));
        assert!(token_matches(None, Some("anything")));
        assert!(token_matches(Some("abc"), Some("abc")));
        assert!(!token_matches(Some("abc"), Some("abd")));
        assert!(!token_matches(Some("abc"), Some("ab")));
        assert!(!token_matches(Some("abc"), Some("abcd")));
        assert!(!token_matches(Some("abc"), None));
    }
}
