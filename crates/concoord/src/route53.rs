//! `concoord route53id ID` and `concoord route53key KEY`: store the AWS credentials
//! that replicas started with `-n DOMAIN -r` use, in an owner-only file in the
//! user's configuration directory (the original wrote into its install directory).

use anyhow::{Context, Result};
use concoord_naming::route53::{store_key, KEY_ID, KEY_SECRET};

#[derive(clap::Args, Debug)]
pub struct IdArgs {
    /// The AWS access key id.
    id: String,
}

#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    /// The AWS secret access key (never printed or logged).
    key: String,
}

pub fn run_id(args: IdArgs) -> Result<()> {
    store(KEY_ID, &args.id)
}

pub fn run_key(args: KeyArgs) -> Result<()> {
    store(KEY_SECRET, &args.key)
}

fn store(name: &str, value: &str) -> Result<()> {
    anyhow::ensure!(!value.trim().is_empty(), "{name} is empty");
    let path = store_key(name, value).with_context(|| format!("cannot store {name}"))?;
    println!("Adding {name} to CONFIG: {}", path.display());
    Ok(())
}
