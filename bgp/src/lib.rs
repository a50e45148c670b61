//! `tartan-bgp`: Tartan's BGP speaker (RFC 4271 and the extensions real routers use).
//!
//! A sans-IO core — the wire format ([`wire`]), the session state machine ([`fsm`]), the
//! RIB ([`rib`]), policy and route reflection — driven by a thin tokio layer ([`io`]).
//! See `bgp/DESIGN.md`.

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
