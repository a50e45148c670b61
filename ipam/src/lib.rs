//! `tartan-ipam`: the datastore — resources, block IPAM on sled, and the HTTP API.
//!
//! Empty until its issue starts; see `DESIGN.md` §4 (ipam): the block is the unit of atomic
//! change, with its invariants written down in `ipam/DESIGN.md`.
