//! The kernel over rtnetlink: our routes dumped, looked up, replaced and deleted in bulk on a
//! raw socket ([`super::batch`]), learned routes written naming shared nexthop objects
//! ([`super::nexthops`]) where the kernel has them; interface names kept between applies
//! ([`super::links`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::batch::{Op, RawRoutes};
use super::links::{ASK_ALONE, Links};
use super::nexthops::Nexthops;
use super::wire::{RTN_BLACKHOLE, RouteEntry, RouteRequest, Via};
use super::{Kernel, KernelError, Table, Target, Write};

/// Our routes in the main table of one namespace.
#[derive(Debug)]
pub struct NetlinkKernel {
    raw: RawRoutes,
    protocol: u8,
    /// Whether learned routes are written naming nexthop objects.
    objects: bool,
    /// Whether the kernel has nexthop objects (Linux 5.3 and later): ours are read and the
    /// unused ones deleted even when `objects` is off.
    supported: bool,
    nexthops: Nexthops,
    /// The interface each next hop is reached through, from the last lookups.
    oifs: HashMap<IpAddr, u32>,
    /// Interface names and indexes, kept between applies.
    links: Links,
}

/// One route to write or delete, with the object it names if any.
#[derive(Clone)]
struct Planned<'a> {
    dst: IpNet,
    target: &'a Target,
    op: Op,
    object: Option<u32>,
}

impl NetlinkKernel {
    /// The kernel of the namespace at `ns` (`None`: our own).
    pub fn new(ns: Option<&std::path::Path>, protocol: u8) -> std::io::Result<NetlinkKernel> {
        Ok(NetlinkKernel {
            raw: RawRoutes::open(ns)?,
            protocol,
            objects: true,
            supported: true,
            nexthops: Nexthops::new(protocol),
            oifs: HashMap::new(),
            links: Links::default(),
        })
    }

    /// Writes routes with their next hops inline, never naming nexthop objects. Objects of
    /// ours left from before are still read, and deleted once no route names them.
    pub fn without_nexthop_objects(mut self) -> NetlinkKernel {
        self.objects = false;
        self
    }

    /// Makes the names and indexes given known, asking the kernel for the few unknown ones
    /// alone and dumping every link when many are unknown.
    fn know_links<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
        indexes: impl IntoIterator<Item = u32>,
    ) -> Result<(), KernelError> {
        let err = |what: &str| {
            let what = what.to_string();
            move |source| KernelError::Io { what, source }
        };
        let names: BTreeSet<&str> =
            names.into_iter().filter(|n| self.links.index(n).is_none()).collect();
        let indexes: BTreeSet<u32> =
            indexes.into_iter().filter(|i| self.links.name(*i).is_none()).collect();
        if names.len() + indexes.len() > ASK_ALONE {
            let all = self.raw.links().map_err(err("listing interfaces"))?;
            self.links.replace_all(all);
            return Ok(());
        }
        for name in names {
            match self.raw.link(0, Some(name)).map_err(err("looking up an interface"))? {
                Some((index, name)) => self.links.learn(index, name),
                None => self.links.forget_name(name),
            }
        }
        for index in indexes {
            match self.raw.link(index, None).map_err(err("looking up an interface"))? {
                Some((index, name)) => self.links.learn(index, name),
                None => self.links.forget_index(index),
            }
        }
        Ok(())
    }

    /// The gateway and interface of the kernel's route to `hop` (`ip route get HOP fibmatch`),
    /// remembering the interface; `None` if nothing routes it. Of an ECMP route, the first
    /// path. The route may be one of ours (a default route learned from the ToR): its gateway
    /// was on-link when we wrote it, so going through it is one level, never a chain.
    fn lookup(&mut self, hop: IpAddr) -> Option<(Option<IpAddr>, Option<u32>)> {
        let found = match self.raw.lookup(hop) {
            Ok(found) => found?,
            Err(e) => {
                tracing::debug!("looking up the route to {hop}: {e}");
                return None;
            }
        };
        let first = found.multipath.first();
        let mut gateway = found.gateway.or(first.and_then(|(g, _)| *g));
        let mut oif = found.oif.or(first.map(|(_, i)| *i));
        // A route naming one of our objects, reported without its next hops
        // (`nexthop_compat_mode` off): the object says where it goes.
        if let (None, None, Some(id)) = (gateway, oif, found.object) {
            if let Some((g, i)) = self.nexthops.first_path(id) {
                (gateway, oif) = (Some(g), Some(i));
            }
        }
        if let Some(oif) = oif {
            self.oifs.insert(hop, oif);
            if let Some(gateway) = gateway {
                self.oifs.insert(gateway, oif);
            }
        }
        Some((gateway, oif))
    }

    /// The nexthop object each write should name, creating those that do not exist yet.
    /// `None` for a route written as before: not learned, or a next hop of the other family
    /// or with no route to it, or objects unavailable.
    async fn objects_for(&mut self, writes: &[Write]) -> Vec<Option<u32>> {
        if !(self.objects && self.supported) {
            return vec![None; writes.len()];
        }
        let unknown: BTreeSet<IpAddr> = writes
            .iter()
            .filter_map(|w| match &w.target {
                Target::Via(hops) => Some(hops.iter()),
                _ => None,
            })
            .flatten()
            .filter(|h| !self.oifs.contains_key(h))
            .copied()
            .collect();
        for hop in unknown {
            self.lookup(hop);
        }
        let mut create = Vec::new();
        // Runs of routes through the same next hops (the usual case: a peer's routes arrive
        // together) look their object up once.
        let mut last: Option<(&Target, bool, Option<u32>)> = None;
        let mut chosen = Vec::with_capacity(writes.len());
        for w in writes {
            let v4 = w.dst.addr().is_ipv4();
            let id = match last {
                Some((target, family, id)) if target == &w.target && family == v4 => id,
                _ => {
                    let id = match &w.target {
                        Target::Via(hops) => hops
                            .iter()
                            .map(|h| {
                                let oif = self.oifs.get(h).filter(|_| h.is_ipv4() == v4);
                                oif.map(|o| (*h, *o))
                            })
                            .collect::<Option<Vec<_>>>()
                            .map(|shape| self.nexthops.object_for(&shape, &mut create)),
                        _ => None,
                    };
                    last = Some((&w.target, v4, id));
                    id
                }
            };
            chosen.push(id);
        }
        if !create.is_empty() {
            let failed: Vec<(u32, i32)> = match self.raw.write(&create) {
                Ok(outcomes) => create
                    .iter()
                    .zip(outcomes)
                    .filter_map(|(r, o)| o.err().map(|code| (r.id(), code)))
                    .collect(),
                Err(e) => {
                    let code = -e.raw_os_error().unwrap_or(5);
                    create.iter().map(|r| (r.id(), code)).collect()
                }
            };
            for (id, code) in failed {
                tracing::debug!("creating nexthop object {id}: errno {}", -code);
                self.nexthops.failed(id);
                if code == -(nix::errno::Errno::EOPNOTSUPP as i32) {
                    tracing::warn!("this kernel has no nexthop objects; writing next hops inline");
                    self.supported = false;
                }
            }
        }
        chosen
            .into_iter()
            .map(|id| id.filter(|id| self.supported && self.nexthops.exists(*id)))
            .collect()
    }

    /// Reads the kernel's nexthop objects, if it has them.
    fn load_objects(&mut self) {
        if !self.supported {
            return;
        }
        let unknown_request =
            [nix::errno::Errno::EOPNOTSUPP as i32, nix::errno::Errno::EINVAL as i32];
        match self.raw.nexthops() {
            Ok(all) => self.nexthops.load_objects(all),
            // A kernel without them (before 5.3) does not know the request.
            Err(e) if e.raw_os_error().is_some_and(|c| unknown_request.contains(&c)) => {
                tracing::warn!("no nexthop objects here ({e}); writing next hops into each route");
                self.supported = false;
            }
            // Anything else passes: the objects as last read stand until the next apply.
            Err(e) => tracing::warn!("listing nexthop objects: {e}"),
        }
    }

    /// Deletes our nexthop objects that no route names any more.
    fn tidy_objects(&mut self) {
        let unused = if self.supported { self.nexthops.unused() } else { Vec::new() };
        if unused.is_empty() {
            return;
        }
        match self.raw.write(&unused) {
            Ok(outcomes) => {
                for (request, outcome) in unused.iter().zip(outcomes) {
                    let id = request.id();
                    match outcome {
                        // ENOENT: already gone.
                        Err(code) if code != -(nix::errno::Errno::ENOENT as i32) => {
                            tracing::debug!("deleting nexthop object {id}: errno {}", -code)
                        }
                        _ => self.nexthops.removed(id),
                    }
                }
            }
            Err(e) => tracing::debug!("deleting unused nexthop objects: {e}"),
        }
    }

    /// Writes a batch: interface names resolved once, every request sent in bulk. Returns
    /// the failures, each with its route's index.
    async fn batch(&mut self, routes: &[Planned<'_>]) -> Vec<(usize, KernelError)> {
        let verb = |op: Op| match op {
            Op::Create => "creating",
            Op::Replace => "replacing",
            Op::Delete => "deleting",
        };
        let mut failed = Vec::new();
        let devs: Vec<&str> = routes
            .iter()
            .filter(|r| r.op != Op::Delete)
            .filter_map(|r| match r.target {
                Target::Link(dev) => Some(dev.as_str()),
                _ => None,
            })
            .collect();
        if let Err(e) = self.know_links(devs, []) {
            let why = e.to_string();
            let fail = |(i, r): (usize, &Planned)| {
                let what = format!("{} {}", verb(r.op), r.dst);
                (i, KernelError::Invalid { what, message: why.clone() })
            };
            return routes.iter().enumerate().map(fail).collect();
        }
        // The request for each route sent, and the index of that route.
        let mut requests = Vec::with_capacity(routes.len());
        let mut sent = Vec::with_capacity(routes.len());
        for (i, r) in routes.iter().enumerate() {
            let via = match (r.target, r.object) {
                (Target::Blackhole, _) => Via::Blackhole,
                (Target::Link(_), _) if r.op == Op::Delete => Via::Dev(0),
                (Target::Link(dev), _) => match self.links.index(dev) {
                    Some(index) => Via::Dev(index),
                    None => {
                        failed.push((
                            i,
                            KernelError::NoSuchInterface {
                                what: format!("{} {}", verb(r.op), r.dst),
                                name: dev.clone(),
                            },
                        ));
                        continue;
                    }
                },
                (Target::Via(_), Some(id)) => Via::Object(id),
                (Target::Via(hops), None) if hops.len() == 1 => Via::Gateway(hops[0]),
                (Target::Via(hops), None) => Via::Multipath(hops),
            };
            sent.push(i);
            requests.push(RouteRequest { op: r.op, dst: r.dst, via, protocol: self.protocol });
        }
        let outcomes = match self.raw.write(&requests) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let why = e.to_string();
                for i in sent {
                    let r = &routes[i];
                    let what = format!("{} {}", verb(r.op), r.dst);
                    failed.push((i, KernelError::Invalid { what, message: why.clone() }));
                }
                return failed;
            }
        };
        for (i, outcome) in sent.into_iter().zip(outcomes) {
            let r = &routes[i];
            match outcome {
                Ok(()) if r.op == Op::Delete => self.nexthops.deleted_route(r.dst),
                Ok(()) => self.nexthops.written(r.dst, r.object, r.op == Op::Create),
                // ESRCH on delete: already gone, which is what we wanted.
                Err(code) if r.op == Op::Delete && code == -(nix::errno::Errno::ESRCH as i32) => {
                    self.nexthops.deleted_route(r.dst)
                }
                Err(code) => failed.push((
                    i,
                    KernelError::Io {
                        what: format!("{} {} {}", verb(r.op), r.dst, r.target),
                        source: std::io::Error::from_raw_os_error(-code),
                    },
                )),
            }
        }
        failed
    }
}

impl Kernel for NetlinkKernel {
    async fn routes(&mut self) -> Result<Table, KernelError> {
        self.load_objects();
        let dump = self
            .raw
            .dump()
            .map_err(|e| KernelError::Io { what: "listing routes".into(), source: e })?;
        let protocol = self.protocol;
        let is_ours = move |r: &RouteEntry| r.protocol == protocol && r.table == RT_TABLE_MAIN;
        // Interface names only of the routes that point at one, from what is known.
        let oifs: HashSet<u32> = dump
            .iter()
            .filter(|r| is_ours(r) && points_at_interface(r))
            .filter_map(|r| r.oif)
            .collect();
        self.know_links([], oifs.iter().copied())?;
        self.links.retain(&oifs);
        let links = self.links.names();
        let mut named = Vec::new();
        let mut table = Vec::new();
        // Runs of routes naming one object are read through it once.
        let mut last: Option<(u32, Target)> = None;
        for r in &dump {
            if is_ours(r) {
                let target = match (&last, r.object) {
                    (Some((id, target)), Some(object)) if *id == object => Some(target.clone()),
                    _ => parse(r, links, &self.nexthops),
                };
                if let (Some(id), Some(target)) = (r.object, &target) {
                    last = Some((id, target.clone()));
                }
                if let Some(target) = target {
                    if let Some(id) = r.object {
                        named.push((r.dst, id, true));
                    }
                    table.push((r.dst, target));
                }
            } else if let Some(id) = r.object {
                named.push((r.dst, id, false));
            }
        }
        self.nexthops.load_routes(named);
        Ok(table.into_iter().collect())
    }

    async fn drop_gateway(&mut self, gateway: IpAddr) -> Result<usize, KernelError> {
        let requests =
            if self.supported { self.nexthops.without_gateway(gateway) } else { Vec::new() };
        if requests.is_empty() {
            return Ok(0);
        }
        let outcomes = self.raw.write(&requests).map_err(|source| KernelError::Io {
            what: format!("taking {gateway} out of nexthop groups"),
            source,
        });
        let failed = match outcomes {
            Ok(o) => o.iter().filter(|r| r.is_err()).count(),
            Err(e) => {
                // The book-keeping ran ahead of the kernel: read the objects again.
                self.load_objects();
                return Err(e);
            }
        };
        if failed > 0 {
            tracing::warn!(
                "{failed} of {} nexthop group replacements without {gateway} failed; the routes follow BGP instead",
                requests.len()
            );
            self.load_objects();
        }
        Ok(requests.len() - failed)
    }

    async fn replace(&mut self, routes: &[Write]) -> Vec<(usize, KernelError)> {
        let objects = self.objects_for(routes).await;
        let planned: Vec<Planned> = routes
            .iter()
            .zip(objects)
            .map(|(w, object)| Planned {
                dst: w.dst,
                target: &w.target,
                op: if w.ours { Op::Replace } else { Op::Create },
                object,
            })
            .collect();
        let mut failed = self.batch(&planned).await;
        // A veth made again under the same name has a new index: what we knew of the name is
        // stale. Learn it again and retry those writes once.
        let gone = |e: &KernelError| matches!(e, KernelError::Io { source, .. } if source.raw_os_error() == Some(nix::libc::ENODEV));
        let stale: Vec<usize> = failed
            .iter()
            .filter(|(i, e)| gone(e) && matches!(planned[*i].target, Target::Link(_)))
            .map(|(i, _)| *i)
            .collect();
        if !stale.is_empty() {
            for &i in &stale {
                if let Target::Link(dev) = planned[i].target {
                    self.links.forget_name(dev);
                }
            }
            let again: Vec<Planned> = stale.iter().map(|&i| planned[i].clone()).collect();
            let still = self.batch(&again).await;
            failed.retain(|(i, _)| !stale.contains(i));
            failed.extend(still.into_iter().map(|(j, e)| (stale[j], e)));
        }
        self.tidy_objects();
        failed
    }

    async fn delete(&mut self, routes: &[(IpNet, Target)]) -> Vec<(usize, KernelError)> {
        let planned: Vec<Planned> = routes
            .iter()
            .map(|(dst, target)| Planned { dst: *dst, target, op: Op::Delete, object: None })
            .collect();
        let failed = self.batch(&planned).await;
        self.tidy_objects();
        failed
    }

    async fn connected(&mut self) -> Result<BTreeSet<IpNet>, KernelError> {
        let nets = self
            .raw
            .connected()
            .map_err(|source| KernelError::Io { what: "listing addresses".into(), source })?;
        Ok(nets.into_iter().collect())
    }

    async fn resolve(&mut self, hops: &BTreeSet<IpAddr>) -> HashMap<IpAddr, IpAddr> {
        self.oifs.clear();
        // Our objects, for the lookups that land on a route naming one.
        self.load_objects();
        let mut out = HashMap::new();
        for hop in hops {
            // No route at all: left as it is (the write then fails and says so).
            let Some((gateway, _)) = self.lookup(*hop) else { continue };
            if let Some(gw) = gateway.filter(|gw| gw != hop) {
                out.insert(*hop, gw);
            }
        }
        out
    }
}

/// The main table's number.
const RT_TABLE_MAIN: u32 = 254;

/// A route out of an interface with no gateway: a link route, whose interface name we need.
fn points_at_interface(r: &RouteEntry) -> bool {
    r.kind != RTN_BLACKHOLE && r.gateway.is_none() && r.multipath.is_empty() && r.object.is_none()
}

/// One of our kernel routes as a table entry; `None` for shapes we never write. A route
/// naming one of our nexthop objects is read through the object, so the table is the same
/// whether or not the kernel also reports the next hops (`nexthop_compat_mode`).
fn parse(r: &RouteEntry, links: &HashMap<u32, String>, nexthops: &Nexthops) -> Option<Target> {
    if r.kind == RTN_BLACKHOLE {
        return Some(Target::Blackhole);
    }
    if let Some(hops) = r.object.and_then(|id| nexthops.gateways(id)) {
        return Some(Target::via(hops));
    }
    let hops: Vec<IpAddr> =
        r.gateway.into_iter().chain(r.multipath.iter().filter_map(|(g, _)| *g)).collect();
    if !hops.is_empty() {
        return Some(Target::via(hops));
    }
    // A link route to an interface that has just gone keeps its index only.
    let dev = r.oif.map(|i| links.get(&i).cloned().unwrap_or_else(|| format!("#{i}")))?;
    Some(Target::Link(dev))
}
