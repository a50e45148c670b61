//! `tartan-bgp`: Tartan's BGP speaker (RFC 4271 and the extensions real routers use).
//!
//! Empty until its issue starts; the shape it will take is described in `DESIGN.md` §4 (bgp):
//! a sans-IO core (`wire/`, `fsm`, `rib`, `policy`, `reflector`) driven by a thin tokio layer.
