//! The runtime layer's error: everything deploy, destroy, exec and inspect can fail with,
//! each saying what was being done and, where there is one, what to do about it.

use std::path::PathBuf;

use crate::topology::TopologyError;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("{what} needs root (network namespaces, veths and mounts); run it with sudo")]
    NotRoot { what: &'static str },
    #[error(
        "lab `{lab}` is already deployed; use `--reconfigure` to destroy and redeploy it, or `tartanlab destroy -t FILE` first"
    )]
    AlreadyDeployed { lab: String },
    #[error("lab `{lab}` is not deployed (no state in /run/tartanlab/labs/{lab})")]
    NotDeployed { lab: String },
    #[error(
        "network namespace `{name}` already exists and is not part of this lab; remove it (`ip netns del {name}`) or rename the lab"
    )]
    NetnsExists { name: String },
    #[error("node `{node}` needs {path}, which is not installed: apt-get install -y {package}")]
    MissingBinary { node: String, path: String, package: &'static str },
    #[error(
        "node `{node}` runs Tartan, but there is no `tartan` in {bin_dir}: build it (`cargo build -p tartan-cli`, or --release) or point TARTAN_BIN_DIR at it"
    )]
    TartanNotBuilt { node: String, bin_dir: String },
    #[error("node `{node}`: command `{command}` is not found on the node's PATH ({path})")]
    CommandNotFound { node: String, command: String, path: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("{what}: {source}")]
    Netlink { what: String, source: rtnetlink::Error },
    #[error("node `{node}`: setting up its namespaces failed: {message}")]
    NodeInit { node: String, message: String },
    #[error("node `{node}`: {message}{}", log.as_ref().map(|l| format!("\n  log: {}", l.display())).unwrap_or_default())]
    NodeFailed { node: String, message: String, log: Option<PathBuf> },
    #[error("node `{node}`: exec `{line}` failed (--strict-exec): {message}")]
    Exec { node: String, line: String, message: String },
    #[error("lab state {}: {message}", path.display())]
    State { path: PathBuf, message: String },
    #[error("{message}")]
    Usage { message: String },
    #[error("lab `{lab}` is busy: another tartanlab (PID {holder}) is deploying or destroying it")]
    Busy { lab: String, holder: String },
    #[error(
        "lab `{lab}` has no record (it was never deployed here, or /run/tartanlab was wiped); if its namespaces still exist (`ip netns list`), `tartanlab destroy --force -t FILE` removes every namespace the file names"
    )]
    NoRecord { lab: String },
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { what: String, secs: u64 },
    #[error("lab `{lab}` has no node `{node}` (nodes: {known})")]
    UnknownNode { lab: String, node: String, known: String },
}

impl LabError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
        let what = what.into();
        move |source| LabError::Io { what, source }
    }

    pub fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> LabError {
        let what = what.into();
        move |source| LabError::Sys { what, source }
    }

    pub fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LabError {
        let what = what.into();
        move |source| LabError::Netlink { what, source }
    }
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;
