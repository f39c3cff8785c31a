//! Hostile and careless clients: bad tokens, malformed, truncated and oversized
//! frames get an error, and the replica keeps serving everyone else.

use crate::harness::{serial, Cluster, Setup};
use concoord_client::{Client, ClientError, ClientOptions};
use concoord_object::machine::{Reply, Request};
use concoord_object::protocol::{
    decode, encode, ClientFrame, ErrorKind, ServerFrame, CLIENT_FRAME_MAX, PROTOCOL_VERSION,
};
use concoord_object::Value;
use concoord_wire::RequestNumber;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn send_body(s: &mut TcpStream, body: &[u8]) {
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    s.write_all(&frame).unwrap();
}

fn send(s: &mut TcpStream, frame: &ClientFrame) {
    send_body(s, &encode(frame).unwrap());
}

/// Reads one frame; `None` when the replica closed the connection.
fn recv(s: &mut TcpStream) -> Option<ServerFrame> {
    let mut header = [0u8; 4];
    s.read_exact(&mut header).ok()?;
    let mut body = vec![0u8; u32::from_le_bytes(header) as usize];
    s.read_exact(&mut body).ok()?;
    Some(decode(&body).expect("the replica sends well-formed frames"))
}

fn hello(s: &mut TcpStream, token: Option<&str>) -> ServerFrame {
    let token = token.map(String::from);
    send(s, &ClientFrame::Hello { version: PROTOCOL_VERSION, token, cluster: None });
    recv(s).expect("an answer to hello")
}

fn expect_error(frame: Option<ServerFrame>, want: ErrorKind) {
    match frame {
        Some(ServerFrame::Error { kind, message, .. }) => {
            assert_eq!(kind, want, "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a {want:?} error, got {other:?}"),
    }
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

/// One increment and a read through the real client: the replica still serves.
async fn still_serves(cluster: &Cluster) {
    let client = cluster.client().await;
    client.call("default", "increment", vec![]).await.expect("the replica keeps serving");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_truncated_and_oversized_frames_get_errors() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    let addr = cluster.addrs[0].clone();
    tokio::task::spawn_blocking(move || {
        // Garbage after a good hello: an error, and the connection stays usable.
        let mut s = connect(&addr);
        assert!(matches!(hello(&mut s, None), ServerFrame::Welcome { .. }));
        send_body(&mut s, &[0xc1, 0xff, 0x00, 0x13]);
        expect_error(recv(&mut s), ErrorKind::BadFrame);
        send(&mut s, &ClientFrame::Status { id: 9 });
        assert!(matches!(recv(&mut s), Some(ServerFrame::Status { id: 9, .. })));
        // A well-formed frame with the wrong shape of request.
        send_body(&mut s, &encode(&("Request", 1, "x")).unwrap());
        expect_error(recv(&mut s), ErrorKind::BadFrame);
        // An oversized frame: refused before reading its body, then closed.
        s.write_all(&((CLIENT_FRAME_MAX as u32) + 1).to_le_bytes()).unwrap();
        expect_error(recv(&mut s), ErrorKind::FrameTooLarge);
        assert!(closed(&mut s));

        // Garbage as the first frame.
        let mut s = connect(&addr);
        send_body(&mut s, b"GET / HTTP/1.1\r\n\r\n");
        expect_error(recv(&mut s), ErrorKind::BadFrame);
        assert!(closed(&mut s));

        // A request before hello.
        let mut s = connect(&addr);
        send(&mut s, &ClientFrame::Status { id: 1 });
        expect_error(recv(&mut s), ErrorKind::NoHello);

        // Wrong protocol version.
        let mut s = connect(&addr);
        send(&mut s, &ClientFrame::Hello { version: 99, token: None, cluster: None });
        expect_error(recv(&mut s), ErrorKind::BadVersion);

        // A truncated frame, then the client vanishes.
        let mut s = connect(&addr);
        let _ = hello(&mut s, None);
        s.write_all(&100u32.to_le_bytes()).unwrap();
        s.write_all(&[1, 2, 3]).unwrap();
        drop(s);

        // A zero-length frame.
        let mut s = connect(&addr);
        s.write_all(&0u32.to_le_bytes()).unwrap();
        expect_error(recv(&mut s), ErrorKind::BadFrame);
        assert!(closed(&mut s));

        // A call on a session that does not exist.
        let mut s = connect(&addr);
        let _ = hello(&mut s, None);
        let request = Request::Call {
            session: concoord_wire::SessionId(12345),
            request: RequestNumber(1),
            acked: RequestNumber(1),
            object: "default".into(),
            method: "increment".into(),
            args: vec![],
        };
        send(&mut s, &ClientFrame::Request { id: 5, request });
        match recv(&mut s) {
            Some(ServerFrame::Reply { id: 5, reply: Reply::SessionUnknown, .. }) => {}
            other => panic!("expected SessionUnknown, got {other:?}"),
        }
        // An oversized request inside a legal frame.
        let request = Request::Create {
            session: concoord_wire::SessionId(1),
            request: RequestNumber(1),
            name: "big".into(),
            type_name: "Log".into(),
            args: vec![Value::Bytes(vec![0; 600 * 1024])],
            acked: RequestNumber(1),
        };
        send(&mut s, &ClientFrame::Request { id: 6, request });
        expect_error(recv(&mut s), ErrorKind::RequestTooLarge);
    })
    .await
    .unwrap();
    still_serves(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_the_right_one_works() {
    let _serial = serial();
    let setup = Setup { token: Some("s3cret".into()), ..Setup::default() };
    let cluster = Cluster::start(3, setup).await;
    let wrong = ClientOptions { token: Some("guess".into()), ..ClientOptions::default() };
    let started = tokio::time::Instant::now();
    let err = Client::connect(&cluster.boot(), wrong).await.unwrap_err();
    assert!(matches!(err, ClientError::BadToken), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a bad token fails fast, without a retry loop"
    );
    let none = ClientOptions::default();
    let err = Client::connect(&cluster.boot(), none).await.unwrap_err();
    assert!(matches!(err, ClientError::BadToken), "{err:?}");
    let addr = cluster.addrs[0].clone();
    tokio::task::spawn_blocking(move || {
        let mut s = connect(&addr);
        expect_error(Some(hello(&mut s, Some("s3cre"))), ErrorKind::BadToken);
        assert!(closed(&mut s));
    })
    .await
    .unwrap();
    // The replicas themselves joined with the token, and the right one works.
    still_serves(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_call_whose_session_expires_is_told_so() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    // The holder keeps the lock (and, with its keep-alives, the log moving).
    let options = ClientOptions { lease: Duration::from_secs(3), ..cluster.options() };
    let holder = Client::connect(&cluster.boot(), options).await.unwrap();
    holder.create("mutex", "Lock", vec![]).await.unwrap();
    assert_eq!(holder.call("mutex", "acquire", vec![]).await.unwrap(), Value::Bool(true));
    let addr = cluster.addrs[0].clone();
    tokio::task::spawn_blocking(move || {
        // A raw client with a 1 s lease parks on the lock, then falls silent.
        let mut s = connect(&addr);
        let _ = hello(&mut s, None);
        let open = Request::OpenSession { nonce: 77, lease_ms: 1_000 };
        send(&mut s, &ClientFrame::Request { id: 1, request: open });
        let session = match recv(&mut s) {
            Some(ServerFrame::Reply {
                reply: Reply::SessionOpened { nonce: 77, session }, ..
            }) => session,
            other => panic!("expected SessionOpened, got {other:?}"),
        };
        let acquire = Request::Call {
            session,
            request: RequestNumber(1),
            acked: RequestNumber(1),
            object: "mutex".into(),
            method: "acquire".into(),
            args: vec![],
        };
        send(&mut s, &ClientFrame::Request { id: 2, request: acquire });
        assert!(matches!(
            recv(&mut s),
            Some(ServerFrame::Reply { id: 2, reply: Reply::Parked, .. })
        ));
        // No keep-alives: the session expires, and the parked call is answered.
        match recv(&mut s) {
            Some(ServerFrame::Reply { id: 2, reply: Reply::SessionUnknown, .. }) => {}
            other => panic!("expected SessionUnknown for the parked call, got {other:?}"),
        }
    })
    .await
    .unwrap();
    holder.call("mutex", "release", vec![]).await.unwrap();
    holder.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_replies_is_disconnected() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    let addr = cluster.addrs[0].clone();
    let (mut s, closed_early) = tokio::task::spawn_blocking(move || {
        let mut s = connect(&addr);
        let _ = hello(&mut s, None);
        // Ask for far more replies than the replica queues for one connection (and
        // than the sockets' buffers hold), reading none of them.
        let mut batch = Vec::new();
        for id in 0..1_000u64 {
            let body = encode(&ClientFrame::Status { id }).unwrap();
            batch.extend_from_slice(&(body.len() as u32).to_le_bytes());
            batch.extend_from_slice(&body);
        }
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let closed_early = (0..200).any(|_| s.write_all(&batch).is_err());
        (s, closed_early)
    })
    .await
    .unwrap();
    // Still not reading while the replica works through the requests.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let closed_by_replica = closed_early
        || tokio::task::spawn_blocking(move || {
            // Then drain: the replica must have ended the connection (a read that
            // times out means it is still open).
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        return false
                    }
                    Err(_) => return true,
                }
            }
        })
        .await
        .unwrap();
    assert!(closed_by_replica);
    still_serves(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_serves_commands_and_queries_by_forwarding_them_to_its_leader() {
    let _serial = serial();
    let cluster = Cluster::start(3, Setup::default()).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let addr = cluster.addrs[follower].clone();
    tokio::task::spawn_blocking(move || {
        // A raw client that talks to a follower only, and never follows a redirect.
        let mut s = connect(&addr);
        let _ = hello(&mut s, None);
        let open = Request::OpenSession { nonce: 5, lease_ms: 10_000 };
        send(&mut s, &ClientFrame::Request { id: 1, request: open });
        let session = match recv(&mut s) {
            Some(ServerFrame::Reply {
                reply: Reply::SessionOpened { nonce: 5, session }, ..
            }) => session,
            other => panic!("expected SessionOpened from a follower, got {other:?}"),
        };
        let call = |request: u64, method: &str| Request::Call {
            session,
            request: RequestNumber(request),
            acked: RequestNumber(request),
            object: "default".into(),
            method: method.into(),
            args: vec![],
        };
        send(&mut s, &ClientFrame::Request { id: 2, request: call(1, "increment") });
        match recv(&mut s) {
            Some(ServerFrame::Reply { id: 2, reply: Reply::Value(_), .. }) => {}
            other => panic!("expected the increment's reply from a follower, got {other:?}"),
        }
        send(&mut s, &ClientFrame::Request { id: 3, request: call(2, "getvalue") });
        match recv(&mut s) {
            Some(ServerFrame::Reply { id: 3, reply: Reply::Value(Value::Int(1)), .. }) => {}
            other => panic!("expected getvalue = 1 from a follower, got {other:?}"),
        }
    })
    .await
    .unwrap();
    still_serves(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_naming_another_cluster_is_refused() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    let mine = cluster.status(0).await.unwrap().cluster.expect("the replica reports its cluster");
    let addr = cluster.addrs[0].clone();
    tokio::task::spawn_blocking(move || {
        let mut s = connect(&addr);
        let hello = |cluster: &str| ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            token: None,
            cluster: Some(cluster.to_string()),
        };
        send(&mut s, &hello("00000000000000ff"));
        expect_error(recv(&mut s), ErrorKind::OtherCluster);
        assert!(closed(&mut s), "the connection is closed after OtherCluster");
        let mut s = connect(&addr);
        send(&mut s, &hello(&mine));
        assert!(matches!(recv(&mut s), Some(ServerFrame::Welcome { .. })));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_another_peer_protocol_is_refused_with_a_reason() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    let addr = cluster.addrs[0].clone();
    tokio::task::spawn_blocking(move || {
        let mut s = connect(&addr);
        // The first peer protocol's hello: frames without a recipient.
        let mut body = b"concoord-peer/1\0".to_vec();
        body.extend_from_slice(&[0xff; 24]);
        send_body(&mut s, &body);
        let mut header = [0u8; 4];
        s.read_exact(&mut header).expect("a refusal comes back");
        let mut refusal = vec![0u8; u32::from_le_bytes(header) as usize];
        s.read_exact(&mut refusal).unwrap();
        let text = String::from_utf8_lossy(&refusal);
        assert!(text.contains("another peer protocol"), "{text}");
        assert!(closed(&mut s), "and the connection is closed");
    })
    .await
    .unwrap();
    still_serves(&cluster).await;
    let log = std::fs::read_to_string(&cluster.replicas[0].as_ref().unwrap().log).unwrap();
    assert!(log.contains("concoord-peer/1"), "the replica says what it refused\n{log}");
}

/// Protocol gaps (docs/protocol.md §4): a request numbered below its session's
/// `acked` is answered with an `AcknowledgedError` (it was silence), and a request
/// the replica cannot read because an argument is an integer beyond i64 gets a
/// `BadFrame` error that names it (it had no id), so a client fails that request
/// alone; the connection keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_below_acked_and_integers_beyond_i64_are_answered_by_id() {
    let _serial = serial();
    let cluster = Cluster::start(1, Setup::default()).await;
    let addr = cluster.addrs[0].clone();
    tokio::task::spawn_blocking(move || {
        let mut s = connect(&addr);
        let _ = hello(&mut s, None);
        let open = Request::OpenSession { nonce: 5, lease_ms: 10_000 };
        send(&mut s, &ClientFrame::Request { id: 1, request: open });
        let session = match recv(&mut s) {
            Some(ServerFrame::Reply {
                reply: Reply::SessionOpened { nonce: 5, session }, ..
            }) => session,
            other => panic!("expected SessionOpened, got {other:?}"),
        };
        let call = |request: u64, acked: u64, method: &str, args: Vec<Value>| Request::Call {
            session,
            request: RequestNumber(request),
            acked: RequestNumber(acked),
            object: "default".into(),
            method: method.into(),
            args,
        };
        for n in 1..=3 {
            send(
                &mut s,
                &ClientFrame::Request { id: 10 + n, request: call(n, n, "increment", vec![]) },
            );
            match recv(&mut s) {
                Some(ServerFrame::Reply { id, reply: Reply::Value(_), .. }) if id == 10 + n => {}
                other => panic!("expected the reply to increment {n}, got {other:?}"),
            }
        }
        // Request 1 again, after acked 3 said its reply is held: an answer, not silence.
        send(&mut s, &ClientFrame::Request { id: 20, request: call(1, 1, "increment", vec![]) });
        match recv(&mut s) {
            Some(ServerFrame::Reply { id: 20, reply: Reply::Error(e), .. }) => {
                assert_eq!(e.kind, "AcknowledgedError", "{e:?}");
                assert!(e.message.contains("below acked 3"), "{}", e.message);
            }
            other => panic!("expected AcknowledgedError for request 1, got {other:?}"),
        }

        // An integer beyond i64: encode a placeholder i64, then make it u64::MAX.
        let placeholder = 0x7fff_ffff_ffff_fffe_i64;
        let frame = ClientFrame::Request {
            id: 21,
            request: call(4, 4, "increment", vec![Value::Int(placeholder)]),
        };
        let mut body = encode(&frame).unwrap();
        let encoded = [0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe];
        let at = body.windows(9).position(|w| w == encoded).expect("the placeholder");
        body[at + 1..at + 9].copy_from_slice(&[0xff; 8]);
        send_body(&mut s, &body);
        match recv(&mut s) {
            Some(ServerFrame::Error { id: Some(21), kind: ErrorKind::BadFrame, message }) => {
                assert!(message.contains("request 21") && message.contains("i64"), "{message}");
            }
            other => panic!("expected BadFrame naming request 21, got {other:?}"),
        }
        // The connection still serves, and request 1 was not run a second time.
        send(&mut s, &ClientFrame::Request { id: 22, request: call(4, 4, "getvalue", vec![]) });
        match recv(&mut s) {
            Some(ServerFrame::Reply { id: 22, reply: Reply::Value(v), .. }) => {
                assert_eq!(v, Value::Int(3))
            }
            other => panic!("expected getvalue 3, got {other:?}"),
        }
    })
    .await
    .unwrap();
}
