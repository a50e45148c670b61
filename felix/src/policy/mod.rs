//! Network policy in the dataplane: the model ([`tartan_ipam::policy`]) rendered as the
//! agent's own nftables table ([`render`]). The agent's enforcement loop comes next; today the
//! renderer is exercised against a real kernel by `felix/tests/policy_nft.rs`.

pub mod render;

pub use render::{LocalEndpoint, render};
