//! The kernel as the route programmer sees it: our routes, replaced and deleted in batches.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Table, Target, Write};

/// What can go wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{what}: interface {name} does not exist")]
    NoSuchInterface { what: String, name: String },
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

/// A routing table we may write. Implementations touch only routes that carry our protocol
/// number in the main table.
pub trait Kernel {
    /// Our routes, both families.
    fn routes(&mut self) -> impl Future<Output = Result<Table, KernelError>> + Send;
    /// Writes each route (replacing ours, creating the others). Returns the failures, each
    /// with the index of its route; every other route was written.
    fn replace(
        &mut self,
        routes: &[Write],
    ) -> impl Future<Output = Vec<(usize, KernelError)>> + Send;
    /// Deletes each route; a route that is already gone is success. Returns the failures, as
    /// `replace` does.
    fn delete(
        &mut self,
        routes: &[(IpNet, Target)],
    ) -> impl Future<Output = Vec<(usize, KernelError)>> + Send;
    /// For BGP next hops that are not on a connected network, the next hop the kernel's own
    /// routes reach them through ("gateway recursive"); on-link ones are left out.
    fn resolve(
        &mut self,
        hops: &BTreeSet<IpAddr>,
    ) -> impl Future<Output = HashMap<IpAddr, IpAddr>> + Send;
    /// The subnets of the addresses on this namespace's interfaces, whether their links are
    /// up or down.
    fn connected(&mut self) -> impl Future<Output = Result<BTreeSet<IpNet>, KernelError>> + Send;
    /// Takes `gateway` out of every ECMP route of ours that has another next hop, at once
    /// (BFD found it dead; BGP's own withdrawals follow). Returns how many writes it took: one
    /// per nexthop group where the kernel has them, however many routes use it.
    fn drop_gateway(
        &mut self,
        gateway: IpAddr,
    ) -> impl Future<Output = Result<usize, KernelError>> + Send;
}

/// A kernel in memory, for unit tests of the reconciler: `links` are the interfaces that
/// exist; a link route to any other fails as the kernel would. It counts writes.
#[derive(Debug, Default, Clone)]
pub struct MemoryKernel {
    pub table: Table,
    pub links: BTreeSet<String>,
    pub writes: usize,
    /// Next hops reached through another (`resolve`).
    pub via: HashMap<IpAddr, IpAddr>,
    /// Destinations that hold someone else's route.
    pub foreign: BTreeSet<IpNet>,
    /// The subnets of the namespace's own addresses.
    pub connected: BTreeSet<IpNet>,
}

impl Kernel for MemoryKernel {
    async fn routes(&mut self) -> Result<Table, KernelError> {
        Ok(self.table.clone())
    }

    async fn drop_gateway(&mut self, gateway: IpAddr) -> Result<usize, KernelError> {
        let mut writes = 0;
        for target in self.table.values_mut() {
            if let Target::Via(hops) = target {
                if hops.len() > 1 && hops.contains(&gateway) {
                    *target = Target::via(hops.iter().copied().filter(|h| *h != gateway).collect());
                    writes += 1;
                }
            }
        }
        self.writes += writes;
        Ok(writes)
    }

    async fn replace(&mut self, routes: &[Write]) -> Vec<(usize, KernelError)> {
        let mut failed = Vec::new();
        for (i, Write { dst, target, ours }) in routes.iter().enumerate() {
            self.writes += 1;
            if !ours && self.foreign.contains(dst) {
                failed.push((
                    i,
                    KernelError::Io {
                        what: format!("creating {dst}"),
                        source: std::io::Error::from_raw_os_error(17),
                    },
                ));
                continue;
            }
            if let Target::Link(dev) = target {
                if !self.links.contains(dev) {
                    failed.push((
                        i,
                        KernelError::NoSuchInterface {
                            what: format!("replacing {dst}"),
                            name: dev.clone(),
                        },
                    ));
                    continue;
                }
            }
            self.table.insert(*dst, target.clone());
        }
        failed
    }

    async fn delete(&mut self, routes: &[(IpNet, Target)]) -> Vec<(usize, KernelError)> {
        for (dst, _) in routes {
            self.writes += 1;
            self.table.remove(dst);
        }
        Vec::new()
    }

    async fn resolve(&mut self, hops: &BTreeSet<IpAddr>) -> HashMap<IpAddr, IpAddr> {
        hops.iter().filter_map(|h| self.via.get(h).map(|v| (*h, *v))).collect()
    }

    async fn connected(&mut self) -> Result<BTreeSet<IpNet>, KernelError> {
        Ok(self.connected.clone())
    }
}
