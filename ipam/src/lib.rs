//! `tartan-ipam`: the datastore of a Tartan fabric.
//!
//! - [`resources`]: the typed resources (`IPPool`, `BGPPeer`, `Node`, ...) and their validation;
//!   shared by the server, the node agent and `tartanctl`.
//! - [`store`]: sled storage — resources with revisions, the watch log, blocks and affinities.
//! - [`policy`]: the network policy model, evaluated for one packet (the oracle of the
//!   dataplane and `tartanctl policy explain`).
//! - [`ipam`]: block IPAM — claim, allocate, release, borrow, leak collection, `check`.
//! - [`api`]: the HTTP API (`fn app(state) -> Router`) and [`client`]: its client.
//! - [`tls`]: certificates and rustls configurations for the API and for etcd.
//!
//! The invariants the IPAM keeps, and why, are in `ipam/DESIGN.md`.

pub mod api;
pub mod b64;
pub mod client;
pub mod ipam;
pub mod migrate;
pub mod policy;
pub mod resources;
pub mod store;
pub mod time;
pub mod tls;
