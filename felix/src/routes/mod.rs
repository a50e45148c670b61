//! The route programmer: what this host's main routing table should hold, and a reconciler that
//! makes the kernel hold exactly that.
//!
//! Three layers make up the desired table — a link route to each local workload's veth, a
//! blackhole for each block affine to the host, and every BGP-learned route via its next hops —
//! and `Programmer::apply` diffs them against the routes in the kernel that carry our protocol
//! number, writing the difference with replace semantics. Routes without our protocol number
//! are never touched. The kernel sits behind [`Kernel`]: netlink in production
//! ([`netlink::NetlinkKernel`]), a map in unit tests ([`MemoryKernel`]).

pub mod batch;
mod kernel;
mod links;
pub mod netlink;
mod nexthops;
mod reconcile;
pub mod wire;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

pub use kernel::{Kernel, KernelError, MemoryKernel};
pub use reconcile::{ApplyReport, Programmer};

/// Where one route sends traffic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `blackhole`: an affine block. Addresses in it without a workload go nowhere instead of
    /// following the default route back into the fabric.
    Blackhole,
    /// `dev IF scope link`: a local workload behind its veth.
    Link(String),
    /// `via NH [nexthop via NH ...]`: a BGP-learned route; several next hops make ECMP.
    /// Sorted and without duplicates, so equal sets compare equal (build it with
    /// [`Target::via`]).
    Via(Hops),
}

/// The next hops of a learned route: shared, so the thousands of routes through the same
/// peers copy a pointer, not a list, as they go from BGP to the desired table to the kernel.
pub type Hops = Arc<[IpAddr]>;

/// Next hops in canonical order: sorted, without duplicates.
pub fn hops(mut hops: Vec<IpAddr>) -> Hops {
    hops.sort();
    hops.dedup();
    hops.into()
}

impl Target {
    /// A `Via` target with its next hops in canonical order.
    pub fn via(next_hops: Vec<IpAddr>) -> Target {
        Target::Via(hops(next_hops))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Blackhole => f.write_str("blackhole"),
            Target::Link(dev) => write!(f, "dev {dev} scope link"),
            Target::Via(hops) => {
                let hops: Vec<String> = hops.iter().map(ToString::to_string).collect();
                write!(f, "via {}", hops.join(", "))
            }
        }
    }
}

/// One route to write. `ours`: the kernel already holds our route to `dst`, which is then
/// replaced; otherwise the route is created, and never over a route of someone else's (the
/// kernel refuses with EEXIST and the write is reported as failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub dst: IpNet,
    pub target: Target,
    pub ours: bool,
}

/// A routing table: destination to target.
pub type Table = BTreeMap<IpNet, Target>;

/// The route protocol number our routes carry unless configured otherwise (`ip route` shows
/// it as `proto 84`; name it in `/etc/iproute2/rt_protos.d/` to see `proto tartan`). Not one
/// of the kernel's, BIRD's (12), FRR's (186–196) or Calico Felix's (80), so a host running
/// any of them beside us never has its routes taken for ours.
pub const DEFAULT_PROTOCOL: u8 = 84;
