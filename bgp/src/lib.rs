//! `tartan-bgp`: Tartan's BGP speaker (RFC 4271 and the extensions real routers use).
//!
//! A sans-IO core — the wire format ([`wire`]), and in time the session state machine, the
//! RIB, policy and route reflection — driven by a thin tokio layer. See `DESIGN.md` §4 (bgp).

pub mod config;
pub mod daemon;
pub mod fatal;
pub mod fsm;
pub mod hash;
pub mod io;
pub mod policy;
pub mod reflector;
pub mod rib;
pub mod types;
pub mod wire;
