//! Resources: the objects operators apply (`IPPool`, `IPAMConfig`, `BGPConfiguration`,
//! `BGPPeer`, `Node`) and the ones node agents report (`WorkloadEndpoint`, `NodeStatus`), in
//! calicoctl's shape — `apiVersion`, `kind`, `metadata {name, resourceVersion, labels}`, `spec`.
//!
//! One set of serde types serves the server, the agent and the CLI. Specs reject unknown fields.
//! [`kinds`] is the registry of kinds (plural, aliases, who may write them); [`validate`] turns
//! a raw resource into a checked, defaulted one. Nothing here touches storage.

pub mod calico;
mod calico_policy;
pub mod duration;
pub mod kinds;
pub mod policy;
pub mod selector;
pub mod specs;
pub mod validate;
pub mod validate_policy;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use kinds::{Kind, KindInfo};
pub use policy::{GlobalNetworkPolicySpec, GlobalNetworkSetSpec, ProfileSpec};
pub use selector::Selector;
pub use specs::*;

/// A spec type and its kind: what lets the client (and anyone else) read and write a kind
/// typed, with the URL and the kind name coming from the type.
pub trait Spec: Serialize + serde::de::DeserializeOwned + Send + Sync {
    const KIND: Kind;
}

macro_rules! spec_of {
    ($($spec:ty => $kind:ident),* $(,)?) => {
        $(impl Spec for $spec {
            const KIND: Kind = Kind::$kind;
        })*
    };
}

spec_of! {
    IpPoolSpec => IpPool,
    IpamConfigSpec => IpamConfig,
    BgpConfigurationSpec => BgpConfiguration,
    BgpPeerSpec => BgpPeer,
    NodeSpec => Node,
    WorkloadEndpointSpec => WorkloadEndpoint,
    NodeStatusSpec => NodeStatus,
    NodeCredentialSpec => NodeCredential,
    GlobalNetworkPolicySpec => GlobalNetworkPolicy,
    ProfileSpec => Profile,
    GlobalNetworkSetSpec => GlobalNetworkSet,
}

/// The only API version this build speaks.
pub const API_VERSION: &str = "tartan/v1";

/// `metadata` of every resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    /// The store's revision at the resource's last write; send it back to update safely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form notes (kept as written; at most 64 KiB in all).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by the server when the resource is first created (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// A resource with its spec still untyped: what arrives over the wire and what the store keeps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawResource {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub spec: serde_json::Value,
}

/// A resource with a typed spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resource<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: S,
}

impl RawResource {
    /// A new resource of `kind` named `name` with the given spec.
    pub fn new(kind: Kind, name: &str, spec: serde_json::Value) -> RawResource {
        RawResource {
            api_version: API_VERSION.to_string(),
            kind: kind.info().kind.to_string(),
            metadata: Metadata { name: name.to_string(), ..Metadata::default() },
            spec,
        }
    }

    /// The spec as `S`; the error names the field path that is wrong.
    pub fn typed<S: serde::de::DeserializeOwned>(&self) -> Result<Resource<S>, String> {
        let spec = if self.spec.is_null() { serde_json::json!({}) } else { self.spec.clone() };
        let spec = serde_path_to_error::deserialize(spec).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("spec: {}", e.inner())
            } else {
                format!("spec.{path}: {}", e.inner())
            }
        })?;
        Ok(Resource {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            metadata: self.metadata.clone(),
            spec,
        })
    }

    /// The store revision this resource was written at, if it has one.
    pub fn revision(&self) -> Option<u64> {
        self.metadata.resource_version.as_deref().and_then(|v| v.parse().ok())
    }
}

impl<S: Serialize> Resource<S> {
    /// Back to the untyped form (specs always serialize).
    pub fn raw(&self) -> RawResource {
        RawResource {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            metadata: self.metadata.clone(),
            spec: serde_json::to_value(&self.spec).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A list as the API returns it: the items and the store revision they were read at, from
/// which a watch can continue without missing a change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    pub api_version: String,
    pub kind: String,
    pub revision: u64,
    pub items: Vec<T>,
}
