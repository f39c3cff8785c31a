//! `-l host:port`: log lines streamed over TCP to `concoord logdaemon`.
//!
//! Lines go through a bounded queue to a background thread that connects (and
//! reconnects) to the daemon; when the daemon is unreachable or slow, lines are
//! dropped rather than slowing the replica down.

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Duration;

/// Lines queued for the daemon before new ones are dropped.
const QUEUE_MAX: usize = 10_000;

#[derive(Clone, Debug)]
pub struct NetLog {
    tx: SyncSender<Vec<u8>>,
}

impl NetLog {
    /// Starts the sender thread for daemon `addr`; `name` prefixes every line.
    pub fn start(addr: &str, name: &str) -> NetLog {
        let (tx, rx) = sync_channel(QUEUE_MAX);
        let addr = addr.to_string();
        let name = name.to_string();
        std::thread::Builder::new()
            .name("netlog".into())
            .spawn(move || forward(&addr, &name, &rx))
            .ok();
        NetLog { tx }
    }
}

fn forward(addr: &str, name: &str, rx: &Receiver<Vec<u8>>) {
    let mut stream: Option<TcpStream> = None;
    let mut line = Vec::new();
    while let Ok(bytes) = rx.recv() {
        if stream.is_none() {
            stream = addr
                .parse()
                .ok()
                .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).ok())
                .or_else(|| TcpStream::connect(addr).ok());
        }
        let Some(s) = stream.as_mut() else { continue };
        line.clear();
        line.extend_from_slice(format!("[{name}] ").as_bytes());
        line.extend_from_slice(bytes.strip_suffix(b"\n").unwrap_or(&bytes));
        line.push(b'\n');
        if s.write_all(&line).is_err() {
            stream = None;
        }
    }
}

impl Write for NetLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A full queue drops the line: logging never blocks the replica.
        let _ = self.tx.try_send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for NetLog {
    type Writer = NetLog;

    fn make_writer(&'a self) -> NetLog {
        self.clone()
    }
}
