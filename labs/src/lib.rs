//! `tartan-labs`: deploys containerlab topology files onto Linux network namespaces.
//!
//! A lab is several "hosts" and routers on one machine. Each node is a network namespace named
//! `clab-<lab>-<node>` (containerlab's naming), with its own mount and UTS namespaces so that it
//! behaves like a container: an overlay of the host's root file system, private `/run` and
//! `/tmp`, its `binds` at their container paths. Links are veth pairs; the management network
//! is a bridge in a private lab namespace. Nothing is ever created in the machine's own network
//! namespace.
//!
//! The path of a deploy, one module per step:
//!
//! 1. [`topology`] reads the file: `${VAR}` expansion, strict parsing, containerlab's
//!    inheritance rules, and every validation, before anything is created.
//! 2. [`deploy`] records the plan ([`state`], write-ahead, so [`destroy`] can always undo it),
//!    creates namespaces ([`netns`]), wires links and the management network over netlink
//!    ([`wiring`]), builds each node's file system ([`node_init`]), starts the node processes
//!    under a per-lab [`supervisor`] (chosen by image, [`profile`]), each node in its own PID
//!    namespace with its own init ([`pidns`]), and runs `exec` lines.
//! 3. [`destroy`] stops processes (recorded PIDs, then every process found inside a node's
//!    namespaces), unpins namespaces and removes what was made — from the state alone.
//!
//! [`harness`] wraps this for Rust tests: deploy, run commands in nodes, poll with a deadline,
//! tear down on drop.

pub mod apiserver;
pub mod bench;
pub mod cgroups;
pub mod deploy;
pub mod destroy;
pub mod enter;
pub mod error;
pub mod exec;
pub mod graph;
pub mod harness;
pub mod inspect;
pub mod netns;
pub mod node_init;
pub mod pidns;
pub mod pki;
pub mod probe;
pub mod procfs;
pub mod profile;
pub mod state;
pub mod supervisor;
pub mod topology;
pub mod topology_data;
pub mod wiring;

pub use error::LabError;
