//! `concoord logdaemon`: receives the lines replicas send with `-l host:port` and
//! prints each as `<time>: <line>`. Any number of replicas may connect.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest line accepted; longer ones are cut.
const LINE_MAX: usize = 64 * 1024;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (default: loopback only; 0.0.0.0 for every interface).
    #[arg(short = 'a', long = "addr", default_value = "127.0.0.1")]
    addr: String,
    /// Port to listen on (the original's 12000).
    #[arg(short = 'p', long = "port", default_value_t = 12000)]
    port: u16,
}

pub fn run(args: Args) -> Result<()> {
    let listener = TcpListener::bind((args.addr.as_str(), args.port))
        .with_context(|| format!("cannot listen on {}:{}", args.addr, args.port))?;
    let local = listener.local_addr()?;
    println!("concoord logdaemon listening on {local}");
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || print_lines(stream));
    }
    Ok(())
}

fn print_lines(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(LINE_MAX as u64).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}: {text}", timestamp());
                let _ = out.flush();
            }
        }
    }
}

#[allow(clippy::disallowed_methods)]
fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

use std::io::Read;
