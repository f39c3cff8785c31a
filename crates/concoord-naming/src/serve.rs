//! The name server's sockets: one UDP socket and one TCP listener on the same
//! address and port, answering from whatever zone the replica last published. It
//! holds no state of its own besides the sockets, and never lets a bad packet or a
//! slow client stop it.

use crate::zone::{Transport, Zone, TCP_MAX};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};

/// Most TCP connections served at once; more wait in the kernel's backlog.
const TCP_CONNECTIONS_MAX: usize = 128;
/// A TCP connection idle (or trickling one message) for this long is closed
/// (RFC 7766 §6.2.3 suggests seconds, not minutes).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times port 0 is retried when TCP cannot take the port UDP was given.
const PORT_ZERO_TRIES: usize = 16;

/// Why the name server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind the DNS port {addr} ({source}): binding port 53 needs root or CAP_NET_BIND_SERVICE; choose another with --dns-port")]
    Privileged { addr: SocketAddr, source: std::io::Error },
    #[error("cannot bind the DNS port {addr}: {source}; choose another with --dns-port")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A running name server: dropping it does not stop it; `stop` does.
#[derive(Debug)]
pub struct NameServer {
    /// The address both sockets are bound to.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl NameServer {
    /// Binds UDP and TCP on `ip:port` and serves the zones sent on `zone`.
    pub async fn start(
        ip: IpAddr,
        port: u16,
        zone: watch::Receiver<Arc<Zone>>,
    ) -> Result<NameServer, ServeError> {
        let (udp, tcp) = bind_both(ip, port).await?;
        let addr = udp
            .local_addr()
            .map_err(|source| ServeError::Bind { addr: SocketAddr::new(ip, port), source })?;
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(udp_loop(udp, zone.clone(), stopped.clone()));
        tokio::spawn(tcp_loop(tcp, zone, stopped));
        tracing::info!("name server listening on {addr} (UDP and TCP)");
        Ok(NameServer { addr, stop })
    }

    /// Closes both sockets.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind_error(addr: SocketAddr, source: std::io::Error) -> ServeError {
    if source.kind() == std::io::ErrorKind::PermissionDenied && addr.port() < 1024 {
        ServeError::Privileged { addr, source }
    } else {
        ServeError::Bind { addr, source }
    }
}

async fn bind_both(ip: IpAddr, port: u16) -> Result<(UdpSocket, TcpListener), ServeError> {
    let tries = if port == 0 { PORT_ZERO_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let want = SocketAddr::new(ip, port);
        let udp = UdpSocket::bind(want).await.map_err(|e| bind_error(want, e))?;
        let bound = udp.local_addr().map_err(|e| bind_error(want, e))?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(bind_error(bound, e)),
        }
    }
    Err(last.unwrap_or_else(|| {
        bind_error(SocketAddr::new(ip, port), std::io::ErrorKind::AddrInUse.into())
    }))
}

async fn udp_loop(
    socket: UdpSocket,
    zone: watch::Receiver<Arc<Zone>>,
    mut stop: watch::Receiver<bool>,
) {
    // Big enough for any datagram, so an oversized one is read whole and answered
    // (or refused) rather than cut into something else.
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.changed() => return,
        };
        let (len, from) = match received {
            Ok(r) => r,
            // ICMP errors from earlier sends surface here on Linux; keep serving.
            Err(e) => {
                tracing::debug!("dns udp receive: {e}");
                continue;
            }
        };
        let current = zone.borrow().clone();
        if let Some(reply) = current.answer(&buf[..len], Transport::Udp) {
            if let Err(e) = socket.send_to(&reply, from).await {
                tracing::debug!("dns udp send to {from}: {e}");
            }
        }
    }
}

async fn tcp_loop(
    listener: TcpListener,
    zone: watch::Receiver<Arc<Zone>>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(TCP_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!("dns tcp accept: {e}");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let zone = zone.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = serve_tcp(stream, zone) => {}
                _ = stop.changed() => {}
            }
            drop(permit);
        });
    }
}

/// Serves length-prefixed queries on one connection until it closes, idles out or
/// sends something that is not DNS.
async fn serve_tcp(mut stream: TcpStream, zone: watch::Receiver<Arc<Zone>>) {
    let mut buf = vec![0u8; TCP_MAX];
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let len = usize::from(u16::from_be_bytes(len));
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut buf[..len])).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let current = zone.borrow().clone();
        let Some(reply) = current.answer(&buf[..len], Transport::Tcp) else { return };
        let Ok(reply_len) = u16::try_from(reply.len()) else { return };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&reply_len.to_be_bytes());
        out.extend_from_slice(&reply);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_low_port_says_it_needs_privileges() {
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = bind_error("127.0.0.1:53".parse().unwrap(), denied()).to_string();
        assert!(
            e.contains("needs root or CAP_NET_BIND_SERVICE") && e.contains("--dns-port"),
            "{e}"
        );
        let e = bind_error("127.0.0.1:5353".parse().unwrap(), denied()).to_string();
        assert!(!e.contains("root"), "{e}");
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_and_port_zero_binds_both_transports() {
        let (zone, rx) = watch::channel(Arc::new(Zone::unloaded(
            crate::zone::parse_domain("a.test").unwrap(),
            30,
        )));
        let server = NameServer::start("127.0.0.1".parse().unwrap(), 0, rx.clone()).await.unwrap();
        let again = NameServer::start("127.0.0.1".parse().unwrap(), server.addr.port(), rx).await;
        assert!(matches!(again, Err(ServeError::Bind { .. })), "{again:?}");
        assert!(TcpStream::connect(server.addr).await.is_ok(), "TCP on the same port");
        drop(zone);
    }
}
