//! The machine's floor for one durable command, measured with nothing of ConCoord in
//! the path: a client -> leader -> follower -> leader -> client relay over loopback
//! TCP (the messages of one commit), plus one fdatasync of a small record written
//! over a preallocated file. A C = 1 put cannot beat their sum on this machine;
//! `scripts/commit-limit` prints it next to `concoord bench`'s C = 1 put.
//!
//! A local cluster keeps its three replicas' logs on one disk, and all three sync
//! at about the same time (the leader its own copy, the followers theirs); the
//! command is durable once two of them are done. So the probe also times three
//! fdatasyncs started together on three files of the same directory, up to the
//! second to finish: where the disk serves them one after another, that (not one
//! sync) is the floor of a cluster on one machine.
//!
//!   commit-limit [DIR] [ROUNDS]     # DIR: where to put the test file (default /tmp)

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FRAME: usize = 64;

#[allow(clippy::disallowed_methods)]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Answers every frame on every connection with a frame.
fn echo(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { return };
        let _ = stream.set_nodelay(true);
        std::thread::spawn(move || {
            let mut buf = [0u8; FRAME];
            while stream.read_exact(&mut buf).is_ok() {
                if stream.write_all(&buf).is_err() {
                    return;
                }
            }
        });
    }
}

/// Relays every frame of a client to the follower and the answer back.
fn relay(listener: TcpListener, follower: std::net::SocketAddr) {
    for stream in listener.incoming() {
        let Ok(mut client) = stream else { return };
        let Ok(mut peer) = TcpStream::connect(follower) else { return };
        let _ = client.set_nodelay(true);
        let _ = peer.set_nodelay(true);
        std::thread::spawn(move || {
            let mut buf = [0u8; FRAME];
            while client.read_exact(&mut buf).is_ok() {
                if peer.write_all(&buf).is_err()
                    || peer.read_exact(&mut buf).is_err()
                    || client.write_all(&buf).is_err()
                {
                    return;
                }
            }
        });
    }
}

fn round_trips(rounds: usize) -> std::io::Result<Duration> {
    let follower = TcpListener::bind("127.0.0.1:0")?;
    let follower_addr = follower.local_addr()?;
    std::thread::spawn(move || echo(follower));
    let leader = TcpListener::bind("127.0.0.1:0")?;
    let leader_addr = leader.local_addr()?;
    std::thread::spawn(move || relay(leader, follower_addr));
    let mut client = TcpStream::connect(leader_addr)?;
    client.set_nodelay(true)?;
    let mut buf = [7u8; FRAME];
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds + rounds / 10 {
        let at = now();
        client.write_all(&buf)?;
        client.read_exact(&mut buf)?;
        if i >= rounds / 10 {
            samples.push(at.elapsed());
        }
    }
    Ok(p50(samples))
}

/// fdatasync after writing a 128-byte record at the end of the data: over a
/// preallocated, synced file of zeros, or growing the file.
fn syncs(dir: &Path, rounds: usize, preallocated: bool) -> std::io::Result<Duration> {
    let path = dir.join(format!("commit-limit-{}.tmp", std::process::id()));
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    let record = [1u8; 128];
    if preallocated {
        let zeros = vec![0u8; 1 << 20];
        let total = (rounds * record.len()).div_ceil(zeros.len()) + 1;
        for i in 0..total {
            file.write_all_at(&zeros, (i * zeros.len()) as u64)?;
        }
        file.sync_all()?;
    }
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        file.write_all_at(&record, (i * record.len()) as u64)?;
        let at = now();
        file.sync_data()?;
        samples.push(at.elapsed());
    }
    drop(file);
    fs::remove_file(&path)?;
    Ok(p50(samples))
}

/// Three files synced at once, one thread each, as the three replicas of a local
/// cluster do: the time from the start until the second sync is done (a quorum),
/// p50 over the rounds.
fn quorum_syncs(dir: &Path, rounds: usize) -> std::io::Result<Duration> {
    use std::sync::{Arc, Barrier};
    const REPLICAS: usize = 3;
    let record = [1u8; 128];
    let mut files = Vec::new();
    let mut paths = Vec::new();
    for r in 0..REPLICAS {
        let path = dir.join(format!("commit-limit-{}-{r}.tmp", std::process::id()));
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        let zeros = vec![0u8; 1 << 20];
        let total = (rounds * record.len()).div_ceil(zeros.len()) + 1;
        for i in 0..total {
            file.write_all_at(&zeros, (i * zeros.len()) as u64)?;
        }
        file.sync_all()?;
        files.push(file);
        paths.push(path);
    }
    // Each round: every thread waits at the barrier, writes, syncs and reports when
    // it finished; the main thread takes the second report.
    let start = Arc::new(Barrier::new(REPLICAS + 1));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<std::io::Result<std::time::Instant>>();
    let mut threads = Vec::new();
    for file in files {
        let start = start.clone();
        let done = done_tx.clone();
        threads.push(std::thread::spawn(move || {
            for i in 0..rounds {
                start.wait();
                let result = file
                    .write_all_at(&record, (i * record.len()) as u64)
                    .and_then(|()| file.sync_data())
                    .map(|()| now());
                if done.send(result).is_err() {
                    return;
                }
            }
        }));
    }
    drop(done_tx);
    let mut samples = Vec::with_capacity(rounds);
    let mut failed = None;
    for _ in 0..rounds {
        let at = now();
        start.wait();
        let mut finished = Vec::with_capacity(REPLICAS);
        for _ in 0..REPLICAS {
            match done_rx.recv() {
                Ok(Ok(t)) => finished.push(t),
                Ok(Err(e)) => failed = Some(e),
                Err(_) => failed = Some(std::io::Error::other("a sync thread ended")),
            }
        }
        finished.sort();
        if let Some(second) = finished.get(1) {
            samples.push(second.duration_since(at));
        }
    }
    for t in threads {
        let _ = t.join();
    }
    for path in paths {
        fs::remove_file(&path)?;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(p50(samples)),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/tmp".into()));
    let rounds: usize = match args.next().map(|r| r.parse()) {
        None => 2_000,
        Some(Ok(r)) if r > 0 => r,
        Some(_) => {
            eprintln!("usage: commit-limit [DIR] [ROUNDS]");
            std::process::exit(2);
        }
    };
    let run = || -> std::io::Result<()> {
        let rtt = round_trips(rounds * 5)?;
        let synced = syncs(&dir, rounds, true)?;
        let grown = syncs(&dir, rounds, false)?;
        let quorum = quorum_syncs(&dir, rounds)?;
        println!(
            "loopback relay client -> leader -> follower -> leader -> client: p50 {}",
            ms(rtt)
        );
        println!(
            "fdatasync of a 128-byte record over a preallocated file in {}: p50 {} (growing the file: {})",
            dir.display(),
            ms(synced),
            ms(grown)
        );
        println!(
            "three such fdatasyncs at once on three files there (one per replica of a local \
             cluster), until the second is done: p50 {}",
            ms(quorum)
        );
        println!("limit for one durable command at C = 1: {}", ms(rtt + synced));
        println!(
            "limit for a 3-replica cluster on this one disk (relay + the quorum's syncs at once): {}",
            ms(rtt + quorum)
        );
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("commit-limit: {e}");
        std::process::exit(1);
    }
}
