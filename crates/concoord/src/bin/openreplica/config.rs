//! openreplica's configuration and state: one JSON file,
//! `$XDG_CONFIG_HOME/concoord/openreplica.json` (else `~/.config/...`), holding the
//! SSH settings, the nodes and the replicas started through openreplica. A lock file
//! beside it serializes concurrent invocations; writes replace the file atomically.
//! It never holds secrets: Route53 keys go to the nodes, not here.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file's name in the config directory.
pub const FILE_NAME: &str = "openreplica.json";
/// Where a node keeps the binary, logs and data unless `addnode --dir` says otherwise.
pub const NODE_DIR_DEFAULT: &str = "~/concoord";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// The remote user name (`addusername`); ssh's default when unset.
    #[serde(default)]
    pub username: Option<String>,
    /// The private key file (`addsshkey`); ssh's defaults when unset.
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// The known_hosts file (`addknownhosts`); ssh's default when unset.
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub replicas: Vec<Started>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// As given to addnode: host or host:port.
    pub name: String,
    /// `uname -s` and `uname -m` as the node reported them.
    pub os: String,
    pub arch: String,
    /// The node's directory for openreplica (`~/` is the remote home).
    pub dir: String,
    /// `concoord --version` of the binary `setup` installed, if any.
    #[serde(default)]
    pub installed: Option<String>,
}

/// A replica (or name server) openreplica started.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Started {
    /// host:port it listens on, as it announced.
    pub addr: String,
    pub node: String,
    pub pid: u32,
    /// The process's start time (field 22 of /proc/PID/stat), so that a reused
    /// pid is never mistaken for the replica.
    pub start_time: String,
    /// Its log file on the node.
    pub log: String,
    /// `replica` or `nameserver`.
    pub kind: String,
    /// The `concoord replica` arguments it was started with.
    pub args: Vec<String>,
}

impl Config {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// The node, or an error that lists the configured ones.
    pub fn require_node(&self, name: &str) -> Result<&Node> {
        match self.node(name) {
            Some(n) => Ok(n),
            None => {
                let known: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                if known.is_empty() {
                    bail!("node {name} is not configured (no nodes yet): run `openreplica addnode {name}`")
                }
                bail!(
                    "node {name} is not configured (nodes: {}): run `openreplica addnode {name}`",
                    known.join(", ")
                )
            }
        }
    }
}

/// The configuration directory: `$XDG_CONFIG_HOME/concoord`, else `$HOME/.config/concoord`.
pub fn dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => {
                bail!("neither XDG_CONFIG_HOME nor HOME is set: cannot find the config directory")
            }
        },
    };
    Ok(base.join("concoord"))
}

/// The configuration, locked against other openreplica processes until dropped.
#[derive(Debug)]
pub struct Locked {
    pub config: Config,
    pub path: PathBuf,
    _lock: std::fs::File,
}

impl Locked {
    pub fn open() -> Result<Locked> {
        let dir = dir()?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the config directory {}", dir.display()))?;
        let lock_path = dir.join("openreplica.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
        let path = dir.join(FILE_NAME);
        let config = load(&path)?;
        Ok(Locked { config, path, _lock: lock })
    }

    pub fn save(&self) -> Result<()> {
        save(&self.path, &self.config)
    }
}

fn load(path: &Path) -> Result<Config> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!("{} is not a valid openreplica configuration: fix or remove it", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save(path: &Path, config: &Config) -> Result<()> {
    let mut text = serde_json::to_string_pretty(config)?;
    text.push('\n');
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_config_loads_back_and_a_missing_one_is_empty() {
        let dir = std::env::temp_dir().join(format!("openreplica-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let _ = std::fs::remove_file(&path);
        assert_eq!(load(&path).unwrap(), Config::default());
        let config = Config {
            username: Some("deploy".into()),
            nodes: vec![Node {
                name: "10.0.0.1:2222".into(),
                os: "Linux".into(),
                arch: "x86_64".into(),
                dir: NODE_DIR_DEFAULT.into(),
                installed: None,
            }],
            ..Config::default()
        };
        save(&path, &config).unwrap();
        assert_eq!(load(&path).unwrap(), config);
        std::fs::write(&path, "not json").unwrap();
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("not a valid"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
