//! The reconciler: desired layers in, the kernel made to match.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::{Hops, Kernel, KernelError, Table, Target, Write};

/// What one `apply` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub replaced: usize,
    pub deleted: usize,
    /// Stale routes left in place for now (a veth's grace period, or learned routes before
    /// BGP has converged).
    pub held: usize,
    /// Routes that could not be written, with why; the next apply tries them again.
    pub failed: Vec<(IpNet, String)>,
    /// Routes the kernel had of ours when it was read.
    pub kernel_routes: usize,
}

/// The desired routes of this host and the kernel they go to.
#[derive(Debug)]
pub struct Programmer<K> {
    kernel: K,
    workloads: BTreeMap<IpNet, String>,
    blocks: BTreeSet<IpNet>,
    learned: BTreeMap<IpNet, Hops>,
    /// The next hops of the last learned route set, shared with the next if they are equal.
    last_learned: Option<Hops>,
    /// How long a stale link route (to a veth we have not heard of) is left alone.
    grace: Duration,
    /// When each stale link route was first seen.
    stale_since: HashMap<IpNet, Instant>,
    /// Until BGP has converged after a start, learned routes the kernel still has are kept,
    /// so an agent restart does not withdraw what peers are about to send again.
    learned_converged: bool,
    /// BGP next hops that are not on-link, and the next hop the kernel reaches each through
    /// (refreshed at every apply).
    resolved: HashMap<IpAddr, IpAddr>,
    /// The subnets of this host's own addresses (refreshed at every apply). A learned route
    /// to one of them is not written: the connected route wins (as BIRD's direct routes do),
    /// and ours would keep it out when its link comes back after going down.
    connected: BTreeSet<IpNet>,
}

impl<K: Kernel> Programmer<K> {
    pub fn new(kernel: K, grace: Duration) -> Programmer<K> {
        Programmer {
            kernel,
            workloads: BTreeMap::new(),
            blocks: BTreeSet::new(),
            learned: BTreeMap::new(),
            last_learned: None,
            grace,
            stale_since: HashMap::new(),
            learned_converged: false,
            resolved: HashMap::new(),
            connected: BTreeSet::new(),
        }
    }

    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    pub fn set_workload(&mut self, dst: IpNet, veth: &str) {
        self.workloads.insert(dst, veth.to_string());
    }

    /// The veth a workload's route goes to, if the address is a local workload's.
    pub fn workload(&self, dst: IpNet) -> Option<&str> {
        self.workloads.get(&dst).map(String::as_str)
    }

    /// Removes a workload's route, if it is still the one to `veth` (the address may already
    /// belong to a newer workload).
    pub fn remove_workload(&mut self, dst: IpNet, veth: &str) {
        if self.workloads.get(&dst).is_some_and(|v| v == veth) {
            self.workloads.remove(&dst);
        }
    }

    pub fn set_blocks(&mut self, blocks: BTreeSet<IpNet>) {
        self.blocks = blocks;
    }

    /// A learned route changed: `None` (or no next hop) removes it.
    pub fn set_learned(&mut self, dst: IpNet, next_hops: Option<Vec<IpAddr>>) {
        match next_hops {
            Some(hops) if !hops.is_empty() => {
                let hops = super::hops(hops);
                // Routes arrive in runs through the same next hops: they share one list.
                let shared = match self.learned.get(&dst) {
                    Some(old) if *old == hops => old.clone(),
                    _ => match &self.last_learned {
                        Some(last) if *last == hops => last.clone(),
                        _ => hops,
                    },
                };
                self.last_learned = Some(shared.clone());
                self.learned.insert(dst, shared);
            }
            _ => {
                self.learned.remove(&dst);
            }
        }
    }

    /// From now on a learned route the kernel has and BGP does not is removed.
    pub fn set_learned_converged(&mut self) {
        self.learned_converged = true;
    }

    /// The table the kernel should hold. A workload's route wins over a block's blackhole and
    /// a learned route for the same destination; a blackhole wins over a learned route (what
    /// this host owns, it knows best).
    pub fn desired(&self) -> Table {
        // Routes through the same next hops come in runs; each run is resolved once.
        let mut last: Option<(&Hops, Hops)> = None;
        let mut table: Table = self
            .learned
            .iter()
            .filter(|(dst, _)| !self.connected.contains(*dst))
            .map(|(dst, hops)| {
                let through = match &last {
                    Some((from, to)) if Arc::ptr_eq(from, hops) || *from == hops => to.clone(),
                    _ => {
                        let to = if hops.iter().any(|h| self.resolved.contains_key(h)) {
                            let resolve = |h: &IpAddr| *self.resolved.get(h).unwrap_or(h);
                            super::hops(hops.iter().map(resolve).collect())
                        } else {
                            hops.clone()
                        };
                        last = Some((hops, to.clone()));
                        to
                    }
                };
                (*dst, Target::Via(through))
            })
            .collect();
        for block in &self.blocks {
            table.insert(*block, Target::Blackhole);
        }
        for (dst, veth) in &self.workloads {
            table.insert(*dst, Target::Link(veth.clone()));
        }
        table
    }

    /// Creates the routes of new workloads at `dsts` alone, without reading the kernel's
    /// table (which costs as much as every route of the host): for a container just wired.
    /// Creating fails where any route to the destination exists (ours from before, or
    /// another's); those are returned, and a full [`Programmer::apply`] sorts them out.
    pub async fn create_workloads(&mut self, dsts: &[IpNet]) -> Vec<(IpNet, String)> {
        let writes: Vec<Write> = dsts
            .iter()
            .filter_map(|dst| {
                let veth = self.workloads.get(dst)?;
                Some(Write { dst: *dst, target: Target::Link(veth.clone()), ours: false })
            })
            .collect();
        let failed = self.kernel.replace(&writes).await;
        let mut out: Vec<(IpNet, String)> =
            failed.into_iter().map(|(i, e)| (writes[i].dst, e.to_string())).collect();
        for dst in dsts.iter().filter(|d| !self.workloads.contains_key(*d)) {
            out.push((*dst, "not a workload of this host".to_string()));
        }
        out
    }

    /// Reads our routes from the kernel and writes the difference.
    /// BFD found `gateway` dead: every ECMP route through it and another next hop leaves it
    /// now, in one write per nexthop group. The learned routes are not changed here: BGP's
    /// withdrawals arrive next and find the kernel already as they want it. Returns the writes.
    pub async fn drop_gateway(&mut self, gateway: IpAddr) -> Result<usize, KernelError> {
        self.kernel.drop_gateway(gateway).await
    }

    pub async fn apply(&mut self, now: Instant) -> Result<ApplyReport, KernelError> {
        let hops: BTreeSet<IpAddr> =
            self.learned.values().flat_map(|h| h.iter()).copied().collect();
        self.resolved =
            if hops.is_empty() { HashMap::new() } else { self.kernel.resolve(&hops).await };
        if !self.learned.is_empty() {
            self.connected = self.kernel.connected().await?;
        }
        let actual = self.kernel.routes().await?;
        let desired = self.desired();
        let mut report = ApplyReport { kernel_routes: actual.len(), ..Default::default() };

        // Both tables are sorted by destination: one walk through the two finds what to
        // write and what is stale.
        let mut replace = Vec::new();
        let mut stale = Vec::new();
        let (mut want, mut have) = (desired.iter().peekable(), actual.iter().peekable());
        loop {
            let order = match (want.peek(), have.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((w, _)), Some((h, _))) => w.cmp(h),
            };
            match order {
                Ordering::Less => {
                    if let Some((dst, target)) = want.next() {
                        replace.push(Write { dst: *dst, target: target.clone(), ours: false });
                    }
                }
                Ordering::Equal => {
                    if let (Some((dst, target)), Some((_, held))) = (want.next(), have.next()) {
                        // Until BGP has converged after a start, a learned route the kernel
                        // has stays as it is: the first peer back must not shrink an ECMP
                        // route to its own next hop while the others are still reconnecting.
                        let settling = !self.learned_converged
                            && matches!((target, held), (Target::Via(_), Target::Via(_)));
                        if target != held && settling {
                            report.held += 1;
                        } else if target != held {
                            replace.push(Write { dst: *dst, target: target.clone(), ours: true });
                        }
                    }
                }
                Ordering::Greater => stale.extend(have.next()),
            }
        }

        let mut delete = Vec::new();
        let mut still_stale = HashMap::new();
        for (dst, target) in stale {
            let hold = match target {
                Target::Link(_) => {
                    let since = *self.stale_since.get(dst).unwrap_or(&now);
                    still_stale.insert(*dst, since);
                    now.duration_since(since) < self.grace
                }
                Target::Via(_) => !self.learned_converged,
                Target::Blackhole => false,
            };
            if hold {
                report.held += 1;
            } else {
                still_stale.remove(dst);
                delete.push((*dst, target.clone()));
            }
        }
        self.stale_since = still_stale;

        let failed = self.kernel.replace(&replace).await;
        report.replaced = replace.len() - failed.len();
        report.failed.extend(failed.into_iter().map(|(i, e)| (replace[i].dst, e.to_string())));
        let failed = self.kernel.delete(&delete).await;
        report.deleted = delete.len() - failed.len();
        report.failed.extend(failed.into_iter().map(|(i, e)| (delete[i].0, e.to_string())));
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::MemoryKernel;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn kernel(links: &[&str]) -> MemoryKernel {
        MemoryKernel { links: links.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    fn apply(p: &mut Programmer<MemoryKernel>, now: Instant) -> ApplyReport {
        futures::executor::block_on(p.apply(now)).expect("apply")
    }

    #[test]
    fn layers_combine_with_workloads_over_blackholes_over_learned_routes() {
        let mut p = Programmer::new(kernel(&["tap1"]), Duration::from_secs(10));
        p.set_blocks([net("10.65.0.0/26")].into());
        p.set_workload(net("10.65.0.5/32"), "tap1");
        p.set_learned(net("10.65.0.64/26"), Some(vec![ip("10.0.0.3"), ip("10.0.0.2")]));
        p.set_learned(net("10.65.0.0/26"), Some(vec![ip("10.0.0.9")]));
        p.set_learned(net("10.65.0.5/32"), Some(vec![ip("10.0.0.9")]));
        let want: Table = [
            (net("10.65.0.0/26"), Target::Blackhole),
            (net("10.65.0.5/32"), Target::Link("tap1".into())),
            (net("10.65.0.64/26"), Target::via(vec![ip("10.0.0.2"), ip("10.0.0.3")])),
        ]
        .into();
        assert_eq!(p.desired(), want);
        let report = apply(&mut p, Instant::now());
        assert_eq!((report.replaced, report.deleted, report.failed.len()), (3, 0, 0));
        assert_eq!(p.kernel().table, want);
    }

    #[test]
    fn a_learned_route_to_a_connected_subnet_is_never_written() {
        let mut k = kernel(&[]);
        k.connected = [net("10.2.1.0/30")].into();
        let mut p = Programmer::new(k, Duration::from_secs(10));
        p.set_learned_converged();
        // A peer advertises the subnet of our own link to it (as an uplink's /30 comes back
        // through the other leaf): the connected route keeps it, whatever its link's state.
        p.set_learned(net("10.2.1.0/30"), Some(vec![ip("10.1.1.1")]));
        p.set_learned(net("10.65.0.0/26"), Some(vec![ip("10.1.1.1")]));
        apply(&mut p, Instant::now());
        let want: Table = [(net("10.65.0.0/26"), Target::via(vec![ip("10.1.1.1")]))].into();
        assert_eq!(p.kernel().table, want);
        // Our route written before the address was there goes once the address is back.
        let mut k = kernel(&[]);
        k.table = [(net("10.2.1.0/30"), Target::via(vec![ip("10.1.1.1")]))].into();
        k.connected = [net("10.2.1.0/30")].into();
        let mut p = Programmer::new(k, Duration::from_secs(10));
        p.set_learned_converged();
        p.set_learned(net("10.2.1.0/30"), Some(vec![ip("10.1.1.1")]));
        apply(&mut p, Instant::now());
        assert!(p.kernel().table.is_empty(), "{:?}", p.kernel().table);
    }

    #[test]
    fn a_new_workload_route_is_created_alone_and_an_existing_one_left_to_apply() {
        let mut k = kernel(&["tap1", "tap2"]);
        k.foreign = [net("10.65.0.6/32")].into();
        let mut p = Programmer::new(k, Duration::from_secs(10));
        p.set_workload(net("10.65.0.5/32"), "tap1");
        p.set_workload(net("10.65.0.6/32"), "tap2");
        let failed = futures::executor::block_on(
            p.create_workloads(&[net("10.65.0.5/32"), net("10.65.0.6/32")]),
        );
        assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), [net("10.65.0.6/32")]);
        assert_eq!(p.kernel().writes, 2);
        assert_eq!(p.kernel().table.get(&net("10.65.0.5/32")), Some(&Target::Link("tap1".into())));
    }

    #[test]
    fn an_unchanged_table_writes_nothing() {
        let mut p = Programmer::new(kernel(&["tap1"]), Duration::from_secs(10));
        p.set_workload(net("10.65.0.5/32"), "tap1");
        p.set_learned(net("fd00:65::/122"), Some(vec![ip("fd00::2")]));
        let now = Instant::now();
        apply(&mut p, now);
        let writes = p.kernel().writes;
        let again = apply(&mut p, now);
        assert_eq!(again, ApplyReport { kernel_routes: 2, ..Default::default() });
        assert_eq!(p.kernel().writes, writes);
    }

    #[test]
    fn stale_routes_go_but_a_veth_route_only_after_its_grace_period() {
        let mut k = kernel(&["tap1", "tap2"]);
        k.table.insert(net("10.65.0.9/32"), Target::Link("tap2".into()));
        k.table.insert(net("10.65.1.0/26"), Target::Blackhole);
        let mut p = Programmer::new(k, Duration::from_secs(10));
        p.set_learned_converged();
        let t0 = Instant::now();
        let first = apply(&mut p, t0);
        assert_eq!((first.deleted, first.held), (1, 1), "the blackhole goes, the veth waits");
        let later = apply(&mut p, t0 + Duration::from_secs(5));
        assert_eq!(later.held, 1);
        let expired = apply(&mut p, t0 + Duration::from_secs(11));
        assert_eq!((expired.deleted, expired.held), (1, 0));
        assert!(p.kernel().table.is_empty());
    }

    #[test]
    fn learned_routes_in_the_kernel_survive_a_restart_until_bgp_has_converged() {
        let mut k = kernel(&[]);
        k.table.insert(net("10.65.0.64/26"), Target::via(vec![ip("10.0.0.2")]));
        let mut p = Programmer::new(k, Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(apply(&mut p, now).held, 1);
        p.set_learned_converged();
        assert_eq!(apply(&mut p, now).deleted, 1);
    }

    #[test]
    fn an_ecmp_route_in_the_kernel_keeps_all_its_next_hops_until_bgp_has_converged() {
        let mut k = kernel(&[]);
        let both = Target::via(vec![ip("10.1.1.1"), ip("10.2.1.1")]);
        k.table.insert(net("10.66.0.0/26"), both.clone());
        let mut p = Programmer::new(k, Duration::from_secs(10));
        // After a restart, the first peer back sends the route with only its own next hop.
        p.set_learned(net("10.66.0.0/26"), Some(vec![ip("10.1.1.1")]));
        p.set_learned(net("10.66.0.64/26"), Some(vec![ip("10.1.1.1")]));
        let early = apply(&mut p, Instant::now());
        assert_eq!((early.replaced, early.held), (1, 1), "new routes go in, held ones stay");
        assert_eq!(p.kernel().table[&net("10.66.0.0/26")], both);
        p.set_learned_converged();
        let later = apply(&mut p, Instant::now());
        assert_eq!((later.replaced, later.held), (1, 0));
        assert_eq!(p.kernel().table[&net("10.66.0.0/26")], Target::via(vec![ip("10.1.1.1")]));
    }

    #[test]
    fn next_hops_off_link_are_installed_through_the_hop_that_reaches_them() {
        let mut k = kernel(&[]);
        k.via.insert(ip("10.0.2.12"), ip("10.0.1.1"));
        let mut p = Programmer::new(k, Duration::from_secs(10));
        p.set_learned(net("10.65.0.64/26"), Some(vec![ip("10.0.2.12")]));
        p.set_learned(net("10.65.0.128/26"), Some(vec![ip("10.0.1.7")]));
        apply(&mut p, Instant::now());
        assert_eq!(p.kernel().table[&net("10.65.0.64/26")], Target::via(vec![ip("10.0.1.1")]));
        assert_eq!(p.kernel().table[&net("10.65.0.128/26")], Target::via(vec![ip("10.0.1.7")]));
        let writes = p.kernel().writes;
        apply(&mut p, Instant::now());
        assert_eq!(p.kernel().writes, writes, "stable: nothing rewritten");
    }

    #[test]
    fn someone_elses_route_to_the_same_destination_is_never_overwritten() {
        let mut k = kernel(&[]);
        k.foreign.insert(net("0.0.0.0/0"));
        let mut p = Programmer::new(k, Duration::from_secs(10));
        p.set_learned(net("0.0.0.0/0"), Some(vec![ip("10.0.0.1")]));
        let report = apply(&mut p, Instant::now());
        assert_eq!(report.failed.len(), 1, "created, never replaced: {report:?}");
        assert!(p.kernel().table.is_empty());
    }

    #[test]
    fn removing_a_workload_leaves_a_newer_holder_of_its_address_alone() {
        let mut p = Programmer::new(kernel(&["tapnew"]), Duration::from_secs(10));
        p.set_workload(net("10.65.0.5/32"), "tapnew");
        p.remove_workload(net("10.65.0.5/32"), "tapold");
        assert_eq!(p.desired()[&net("10.65.0.5/32")], Target::Link("tapnew".into()));
        p.remove_workload(net("10.65.0.5/32"), "tapnew");
        assert!(p.desired().is_empty());
    }

    #[test]
    fn a_failed_write_is_reported_and_retried() {
        let mut p = Programmer::new(kernel(&[]), Duration::from_secs(10));
        p.set_workload(net("10.65.0.5/32"), "gone0");
        let report = apply(&mut p, Instant::now());
        assert_eq!(report.failed.len(), 1);
        assert!(report.failed[0].1.contains("gone0"), "{:?}", report.failed);
        assert_eq!(apply(&mut p, Instant::now()).failed.len(), 1, "tried again");
    }
}
