//! `tartan-felix`: the node agent — the kernel route programmer, workload endpoints and the
//! CNI handler, glued to the BGP speaker and the datastore. See `felix/DESIGN.md`.

pub mod agent;
pub mod cni;
pub mod netns;
pub mod nft;
pub mod policy;
pub mod routes;
pub mod sandbox;
