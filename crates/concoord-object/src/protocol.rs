//! The client protocol: the messages a client and a replica exchange, documented
//! field by field in `docs/protocol.md` so that any language can implement a client.
//!
//! Each message is one frame (`concoord_wire::frame`: little-endian `u32` length, then
//! a MessagePack body written with field names, `rmp_serde::to_vec_named`). This
//! module defines the messages and their encoding only; it does no IO.

use crate::machine::{Reply, Request};
use crate::value::Value;
use crate::ObjectError;
use concoord_wire::{ReplicaId, Slot};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol version this build speaks. A replica refuses a `Hello` with another.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest client frame body either side accepts.
pub const CLIENT_FRAME_MAX: usize = 1 << 20;

/// Largest encoded request a replica orders (a frame also carries its envelope).
pub const REQUEST_BYTES_MAX: usize = 256 * 1024;

/// Client to replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The first frame on every connection.
    Hello {
        version: u32,
        token: Option<String>,
        /// The cluster the client expects (16 hex digits, from a replica's `Status`):
        /// a replica of another cluster refuses it with `OtherCluster`. Absent for a
        /// client that has not learned it yet.
        #[serde(default)]
        cluster: Option<String>,
    },
    /// A request, answered by one or more `ServerFrame`s carrying the same `id`.
    /// A `Call` of a query method is served by a read barrier instead of the log.
    Request { id: u64, request: Request },
    /// Asks the replica to describe itself; answered by `ServerFrame::Status`.
    Status { id: u64 },
}

/// Replica to client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// Answer to `Hello`.
    Welcome { version: u32, replica: ReplicaId, leader: Option<String> },
    /// The reply to request `id`. `Reply::Parked` is not final: another `Reply` with the
    /// same `id` follows when the call is woken (on this connection, if it is still open).
    Reply { id: u64, slot: Slot, position: u64, reply: Reply },
    /// This replica does not order commands: send request `id` to `leader` (an
    /// `addr:port`, when known) or to another replica.
    Redirect { id: u64, leader: Option<String> },
    /// Request `id` (or, with no id, the connection) failed; see `kind`.
    Error { id: Option<u64>, kind: ErrorKind, message: String },
    /// Answer to `ClientFrame::Status`.
    Status { id: u64, status: Box<StatusReport> },
}

/// Why a request or a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The frame could not be decoded. The connection stays open.
    BadFrame,
    /// The frame was larger than `CLIENT_FRAME_MAX`; the replica closes the connection
    /// (it cannot find the next frame boundary without reading the body).
    FrameTooLarge,
    /// `Hello` spoke another protocol version; the connection is closed.
    BadVersion,
    /// The token was missing or wrong; the connection is closed.
    BadToken,
    /// A request arrived before `Hello`; the connection is closed.
    NoHello,
    /// The encoded request exceeds `REQUEST_BYTES_MAX`.
    RequestTooLarge,
    /// The leader's queue is full: retry later (with backoff).
    Busy,
    /// The replica is not ready to serve (it is still joining); try another one.
    NotReady,
    /// `Hello` named a cluster this replica does not belong to (a process founded on
    /// an old member's address); the connection is closed. Try another replica.
    OtherCluster,
    /// The replica requires TLS and the connection is plaintext; the connection is
    /// closed. Connect with TLS.
    TlsRequired,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::BadFrame => "bad frame",
            ErrorKind::FrameTooLarge => "frame too large",
            ErrorKind::BadVersion => "protocol version mismatch",
            ErrorKind::BadToken => "bad token",
            ErrorKind::NoHello => "request before hello",
            ErrorKind::RequestTooLarge => "request too large",
            ErrorKind::Busy => "busy",
            ErrorKind::NotReady => "not ready",
            ErrorKind::OtherCluster => "another cluster",
            ErrorKind::TlsRequired => "TLS required",
        };
        f.write_str(s)
    }
}

/// A replica's description of itself and, when it leads, of its peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub replica: ReplicaId,
    pub addr: String,
    /// `leader`, `follower`, `joining` or `removed`.
    pub role: String,
    pub leader: Option<String>,
    /// The highest ballot this replica promised, as `round.replica`.
    pub ballot: String,
    /// Every slot up to here is chosen.
    pub commit_slot: Slot,
    /// The state machine has applied every slot up to here.
    pub applied_slot: Slot,
    /// The latest snapshot's slot.
    pub snapshot_slot: Slot,
    pub durable: bool,
    pub object_type: String,
    pub objects: Vec<String>,
    pub sessions: u64,
    /// The membership this replica knows, with the leader's view of each member's
    /// progress (empty fields on a non-leader).
    pub members: Vec<MemberStatus>,
    /// The cluster this replica belongs to, as 16 hex digits (absent from replicas
    /// that predate cluster identities, and while a joiner has heard from nobody).
    #[serde(default)]
    pub cluster: Option<String>,
    /// For a replica still joining after a few seconds: why it is not admitted yet
    /// (no answer from its boot addresses, a refusal and its reason).
    #[serde(default)]
    pub join_problem: Option<String>,
}

/// One member as a replica sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub replica: ReplicaId,
    pub addr: String,
    /// `voter` or `learner`.
    pub role: String,
    /// The member's commit slot as last reported to the leader.
    pub commit_slot: Option<Slot>,
    /// Slots behind the leader's commit slot.
    pub lag: Option<u64>,
    /// Milliseconds since the leader last heard from it.
    pub last_heard_ms: Option<u64>,
}

/// Encodes a frame body (MessagePack with field names).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, ObjectError> {
    rmp_serde::to_vec_named(message)
        .map_err(|e| ObjectError::value_error(format!("cannot encode message: {e}")))
}

/// Decodes a frame body. Never panics, whatever the bytes.
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ObjectError> {
    rmp_serde::from_slice(body)
        .map_err(|e| ObjectError::value_error(format!("malformed message: {e}")))
}

/// The `id` of a `Request` frame whose body `decode` refuses (an integer beyond
/// i64 among its arguments, an unknown request kind, a missing field), so that the
/// refusal can name the request it is about; `None` for any other frame or bytes.
pub fn request_id_of(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    enum Head {
        Request {
            id: u64,
            #[allow(dead_code)]
            request: serde::de::IgnoredAny,
        },
    }
    match rmp_serde::from_slice::<Head>(body) {
        Ok(Head::Request { id, .. }) => Some(id),
        Err(_) => None,
    }
}

/// Converts a reply into the call result a client returns.
pub fn reply_result(reply: Reply) -> Option<Result<Value, ObjectError>> {
    match reply {
        Reply::Value(v) => Some(Ok(v)),
        Reply::Error(e) => Some(Err(e)),
        Reply::Parked | Reply::SessionOpened { .. } | Reply::SessionUnknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concoord_wire::{RequestNumber, SessionId};

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            ClientFrame::Hello {
                version: PROTOCOL_VERSION,
                token: Some("t".into()),
                cluster: None,
            },
            ClientFrame::Request {
                id: 7,
                request: Request::Call {
                    session: SessionId(3),
                    request: RequestNumber(9),
                    acked: RequestNumber(8),
                    object: "default".into(),
                    method: "increment".into(),
                    args: vec![Value::Int(1), Value::Str("x".into())],
                },
            },
            ClientFrame::Status { id: 1 },
        ];
        for f in frames {
            let bytes = encode(&f).unwrap();
            assert_eq!(decode::<ClientFrame>(&bytes).unwrap(), f);
        }
        let reply = ServerFrame::Reply {
            id: 7,
            slot: Slot(4),
            position: 12,
            reply: Reply::Error(ObjectError::runtime_error("cannot release un-acquired lock")),
        };
        assert_eq!(decode::<ServerFrame>(&encode(&reply).unwrap()).unwrap(), reply);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            let _ = decode::<ClientFrame>(&bytes);
        }
        assert!(decode::<ClientFrame>(&[0xc1]).is_err());
    }
}
