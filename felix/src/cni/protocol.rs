//! What the plugin and the agent say to each other over the agent's unix socket: one JSON
//! request line, one JSON response line, per connection.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::types::{CniError, CniResult};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Command {
    Add,
    Del,
    Check,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub command: Command,
    /// The network name from the configuration (the handle is `<network>.<containerID>`).
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_NETNS`; DEL may come without one.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    pub ifname: String,
    #[serde(default)]
    pub args: Option<String>,
    pub cni_version: String,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub prev_result: Option<CniResult>,
    /// The workload's labels from `args.cni.labels` of the network configuration.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Response {
    /// ADD: the result; DEL and CHECK: nothing.
    Ok {
        result: Option<CniResult>,
    },
    Error(CniError),
}
