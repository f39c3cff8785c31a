//! `concoord object -o module.Class [-t TOKEN] [-p PROXYTYPE] [-s] [-v]`: writes a
//! client proxy module for a Python class, `<module>proxy.py` next to the module's
//! file, by running the Python generator (`python3 -m concoord.proxygen`).
//!
//! What it deliberately is not: a Python parser. The generator is Python code in
//! the `concoord` package; this only finds the interpreter and passes the options.

use anyhow::{bail, Context, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The class, as module.Class (importable from the current directory or
    /// PYTHONPATH).
    #[arg(short = 'o', long = "objectname")]
    objectname: String,
    /// Token the generated proxy presents to the replicas.
    #[arg(short = 't', long = "token")]
    token: Option<String>,
    /// Proxy type: 0 basic, 1 blocking (the same synchronous proxy here), 3 asyncio;
    /// 2 (client-side batching) is refused in favour of 3.
    #[arg(short = 'p', long = "proxytype", default_value_t = 0)]
    proxytype: u8,
    /// Refuse classes that are not deterministic (clock, randomness, IO, threads...),
    /// listing each line and reason.
    #[arg(short = 's', long = "safe")]
    safe: bool,
    /// Say what is being done.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
}

pub fn run(args: Args) -> Result<()> {
    let python = std::env::var("CONCOORD_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut pythonpath =
        std::env::current_dir().context("cannot read the current directory")?.display().to_string();
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        pythonpath.push(':');
        pythonpath.push_str(&existing.to_string_lossy());
    }
    let mut command = std::process::Command::new(&python);
    command
        .args(["-m", "concoord.proxygen", "-o", &args.objectname])
        .args(["-p", &args.proxytype.to_string()])
        .env("PYTHONPATH", pythonpath);
    if let Some(token) = &args.token {
        command.args(["-t", token]);
    }
    if args.safe {
        command.arg("-s");
    }
    if args.verbose {
        command.arg("-v");
    }
    let status = command.status().with_context(|| {
        format!(
            "cannot run {python:?}: install Python 3 and the concoord package, or set \
             CONCOORD_PYTHON to the interpreter"
        )
    })?;
    if !status.success() {
        bail!("no proxy written for {} (the reason is above)", args.objectname);
    }
    Ok(())
}
