//! The CNI spec's documents as the `tartan` plugin reads and writes them: the network
//! configuration on stdin, the ADD result, and the error object (CNI spec 1.0.0, with 0.4.0
//! and 0.3.x results for configurations that ask for them).

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Versions the plugin speaks (VERSION reports them).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// Where the agent listens unless the configuration says otherwise.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/tartan/agent.sock";

/// The spec's well-known error codes.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// Ours: the agent refused or failed the request (the message says why).
    pub const AGENT_FAILED: u32 = 100;
    /// Ours: no address could be allocated.
    pub const NO_ADDRESS: u32 = 101;
}

/// The plugin's part of the network configuration (unknown keys are other plugins' business
/// and are ignored).
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The agent's unix socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_socket: Option<PathBuf>,
    /// The workload MTU; absent or 0 means the agent's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<serde_json::Value>,
    /// Arguments from the runtime (CNI's conventions); `args.cni.labels` label the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Value>,
}

impl NetConf {
    /// `args.cni.labels`: `[{"key": K, "value": V}, ...]`; later pairs win.
    pub fn labels(&self) -> Result<std::collections::BTreeMap<String, String>, String> {
        let Some(list) = self.args.as_ref().and_then(|a| a.pointer("/cni/labels")) else {
            return Ok(Default::default());
        };
        let bad = || {
            format!("args.cni.labels must be a list of {{\"key\": K, \"value\": V}}, not {list}")
        };
        let items = list.as_array().ok_or_else(bad)?;
        items
            .iter()
            .map(|item| {
                let key = item.get("key").and_then(serde_json::Value::as_str).ok_or_else(bad)?;
                let value = match item.get("value") {
                    None | Some(serde_json::Value::Null) => "",
                    Some(v) => v.as_str().ok_or_else(bad)?,
                };
                Ok((key.to_string(), value.to_string()))
            })
            .collect()
    }
}

/// The spec's error object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CniError {
    #[serde(default)]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError { cni_version: "1.0.0".into(), code, msg: msg.into(), details: details.into() }
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (CNI code {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    /// `4` or `6`: only in results of spec 0.3.x and 0.4.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// The ADD result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: serde_json::Map<String, serde_json::Value>,
}

impl CniResult {
    /// The result in the shape `version` asks for (0.3.x/0.4.0 results carry `ips[].version`).
    pub fn for_version(mut self, version: &str) -> CniResult {
        let old = version.starts_with("0.");
        for ip in &mut self.ips {
            ip.version =
                old.then(|| if ip.address.addr().is_ipv4() { "4" } else { "6" }.to_string());
        }
        self.cni_version = version.to_string();
        self
    }
}
