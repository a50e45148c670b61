//! `SandboxError`: everything `tartan sandbox` can fail with, each message saying what went wrong
//! and, where there is one, what to do about it. Owns no logic.

use std::io;
use std::path::PathBuf;

/// A CNI error result (spec 1.0 §5 "Error"), as a plugin printed it on a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// The plugin's `type`.
    pub plugin: String,
    /// `ADD`, `DEL` or `CHECK`.
    pub command: &'static str,
    /// The CNI error code (1–99 are the spec's, 100+ the plugin's own); `None` when the plugin
    /// printed no CNI error, and `msg` then says how it exited.
    pub code: Option<u32>,
    pub msg: String,
    pub details: String,
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {} failed on {} (", self.plugin, self.command)?;
        match self.code {
            Some(code) => write!(f, "code {code}: {})", self.msg)?,
            None => write!(f, "{})", self.msg)?,
        }
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "sandbox name {name:?} {reason}: use letters, digits, `_`, `.` and `-`, starting with a \
         letter or digit, at most 64 characters"
    )]
    InvalidName { name: String, reason: &'static str },

    #[error(
        "interface name {name:?} {reason}: use 1 to 15 characters without `/`, `:` or whitespace"
    )]
    InvalidIfname { name: String, reason: &'static str },

    #[error("CNI_ARGS pair {pair:?} is not KEY=VALUE: write them as `K1=V1;K2=V2`")]
    InvalidArgs { pair: String },

    #[error("no network configuration in {}: install one (tartan node writes 10-tartan.conflist)", dir.display())]
    NoConfig { dir: PathBuf },

    #[error("no network named `{name}` in {} (found: {}): pick one with --net", dir.display(), found.join(", "))]
    NetworkNotFound { dir: PathBuf, name: String, found: Vec<String> },

    #[error("{}: {what}", file.display())]
    BadConfig { file: PathBuf, what: String },

    #[error("CNI plugin `{plugin}` not found in {path}: set CNI_PATH or --cni-path")]
    PluginNotFound { plugin: String, path: String },

    #[error("cannot run CNI plugin {}: {source}", path.display())]
    PluginStart { path: PathBuf, source: io::Error },

    #[error("{0}")]
    Plugin(CniError),

    #[error("plugin {plugin} did not finish {command} within {secs} s and was killed")]
    PluginTimeout { plugin: String, command: &'static str, secs: u64 },

    #[error("plugin {plugin} printed no usable {command} result: {what}")]
    BadResult { plugin: String, command: &'static str, what: String },

    #[error("sandbox {name} exists; `tartan sandbox del {name}` first")]
    Exists { name: String },

    #[error(
        "network namespace {name} exists but is not a sandbox (no cached result in {}; or its \
         ADD was interrupted): leaving it alone; `ip netns del {name}` removes it, then \
         `tartan sandbox del {name}` releases what plugins may hold for it",
        dir.display()
    )]
    Foreign { name: String, dir: PathBuf },

    #[error("no sandbox {name} (no {}): `tartan sandbox add {name}` first", netns.display())]
    NotFound { name: String, netns: PathBuf },

    #[error(
        "sandbox {name} has no cached result in {}: was it made by `tartan sandbox add` with the \
         same --cache-dir and --ifname?",
        dir.display()
    )]
    NoCachedResult { name: String, dir: PathBuf },

    #[error(
        "sandbox {name} is attached as {ifname} to network {network}: give \
         `--ifname {ifname} --net {network}`"
    )]
    OtherAttachment { name: String, ifname: String, network: String },

    #[error("network {network} has cniVersion {version}; CHECK needs 0.4.0 or newer")]
    CheckUnsupported { network: String, version: String },

    #[error("result cache {}: {what}", path.display())]
    Cache { path: PathBuf, what: String },

    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },

    #[error("nothing to run: give a command after `--`")]
    NoCommand,

    #[error("cannot run {program}: {source}")]
    Exec { program: String, source: io::Error },
}

impl SandboxError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> SandboxError {
        let what = what.into();
        move |source| SandboxError::Io { what, source }
    }
}

pub type Result<T, E = SandboxError> = std::result::Result<T, E>;
