//! `ClientError`: why a client operation did not return a result. A method that
//! raised is `Raised` (a domain outcome the caller re-raises); every other variant
//! is the service or the client's own configuration failing.

use concoord_object::{CallError, ObjectError};

/// Why a call, a creation, a status request or a connection failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The method raised an exception; `kind` is the Python exception name
    /// (`ValueError`, `RuntimeError`, ...).
    #[error("{0}")]
    Raised(ObjectError),
    /// The session this call ran in ended (its lease expired or it was closed), so
    /// whatever it held (locks, permits) is gone and the call may or may not have run.
    /// The client has opened a new session for later calls.
    #[error(
        "session expired: the call may or may not have run, and whatever the session \
         held (locks, permits) was released; later calls use a new session"
    )]
    SessionExpired,
    /// The replicas refused the token.
    #[error("bad token: the replicas refused the token; pass the one they were started with (--token, or CONCOORD_TOKEN)")]
    BadToken,
    /// TLS failed: a certificate was refused (by the client or by the replica), or
    /// the client and the replicas disagree on speaking TLS. A configuration error:
    /// the client does not retry.
    #[error("TLS: {0}")]
    Tls(String),
    /// No replica answered for `give_up_after`, or the client was closed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The call did not finish within `call_timeout`, and it certainly had no
    /// effect and never will: either it was never sent to any replica, or the
    /// cluster took it back (a parked `acquire` is not granted later). A call that
    /// completed before the cancel was ordered returns its result instead.
    /// `Client::connect` fails with it when no session opened in time.
    #[error("timed out: it had no effect (never sent, or cancelled by the cluster)")]
    Timeout,
    /// The call did not finish within `call_timeout`, and it may or may not have
    /// taken effect: it reached a replica, and no replica confirmed in time either
    /// its result or that it was taken back (the cluster is unreachable, or in the
    /// middle of a leader change). Its session may hold what it acquired. The client
    /// keeps cancelling it in the background; to release whatever the session may
    /// hold at once, close the client (ending the session).
    #[error(
        "timed out: it may or may not have taken effect (no replica confirmed either way in \
         time); close the client to release anything its session may hold"
    )]
    MaybeExecuted,
    /// A replica broke the client protocol, or a request cannot be sent at all
    /// (too large).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The address list could not be parsed.
    #[error("bad address: {0}")]
    BadAddress(String),
}

impl From<ObjectError> for ClientError {
    fn from(e: ObjectError) -> ClientError {
        ClientError::Raised(e)
    }
}

/// Typed proxies see a raised exception as `Raised` and anything else as the service
/// being unavailable, with this error's message.
impl From<ClientError> for CallError {
    fn from(e: ClientError) -> CallError {
        match e {
            ClientError::Raised(e) => CallError::Raised(e),
            other => CallError::Unavailable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raised_errors_stay_raised_for_proxies() {
        let raised = ObjectError::runtime_error("cannot release un-acquired lock");
        assert_eq!(CallError::from(ClientError::Raised(raised.clone())), CallError::Raised(raised));
        let CallError::Unavailable(why) = CallError::from(ClientError::BadToken) else {
            panic!("a bad token is not an exception of the object");
        };
        assert!(why.contains("bad token"), "{why}");
    }
}
