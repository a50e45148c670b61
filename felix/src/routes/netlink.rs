//! The kernel over rtnetlink: our routes dumped, replaced and deleted in bulk on a raw socket
//! ([`super::batch`]); interface names resolved over an rtnetlink handle.

use std::collections::HashMap;
use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder, RouteNextHopBuilder};

use super::batch::{Op, RawRoutes};
use super::{Kernel, KernelError, Table, Target, Write};

/// Our routes in the main table of one namespace.
#[derive(Debug)]
pub struct NetlinkKernel {
    handle: Handle,
    raw: RawRoutes,
    protocol: u8,
}

impl NetlinkKernel {
    /// `handle` must be bound in the namespace at `ns` (`None`: our own).
    pub fn new(
        handle: Handle,
        ns: Option<&std::path::Path>,
        protocol: u8,
    ) -> std::io::Result<NetlinkKernel> {
        Ok(NetlinkKernel { handle, raw: RawRoutes::open(ns)?, protocol })
    }

    async fn links(&self) -> Result<HashMap<u32, String>, KernelError> {
        let mut links = HashMap::new();
        let mut stream = self.handle.link().get().execute();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| KernelError::Netlink { what: "listing interfaces".into(), source: e })?
        {
            for attr in &msg.attributes {
                if let rtnetlink::packet_route::link::LinkAttribute::IfName(name) = attr {
                    links.insert(msg.header.index, name.clone());
                }
            }
        }
        Ok(links)
    }

    /// The netlink message for one route; `index` resolves interface names.
    fn message(
        &self,
        dst: IpNet,
        target: &Target,
        index: Option<u32>,
    ) -> Result<RouteMessage, KernelError> {
        let invalid = |e: String| KernelError::Invalid {
            what: format!("building the route to {dst}"),
            message: e,
        };
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.network(), dst.prefix_len())
            .map_err(|e| invalid(e.to_string()))?
            .protocol(RouteProtocol::from(self.protocol));
        b = match target {
            Target::Blackhole => b.kind(RouteType::BlackHole),
            Target::Link(_) => {
                b.scope(RouteScope::Link).output_interface(index.unwrap_or_default())
            }
            Target::Via(hops) if hops.len() == 1 => {
                b.gateway(hops[0]).map_err(|e| invalid(e.to_string()))?
            }
            Target::Via(hops) => {
                let family =
                    if dst.addr().is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
                let mut nexthops = Vec::with_capacity(hops.len());
                for hop in hops {
                    nexthops.push(
                        RouteNextHopBuilder::new(family)
                            .via(*hop)
                            .map_err(|e| invalid(e.to_string()))?
                            .build(),
                    );
                }
                b.multipath(nexthops)
            }
        };
        Ok(b.build())
    }

    /// Writes a batch: interface names resolved once, every message sent in bulk.
    async fn batch(&mut self, routes: &[(IpNet, Target, Op)]) -> Vec<Result<(), KernelError>> {
        let verb = |op: Op| match op {
            Op::Create => "creating",
            Op::Replace => "replacing",
            Op::Delete => "deleting",
        };
        let mut results: Vec<Result<(), KernelError>> = Vec::with_capacity(routes.len());
        let mut msgs = Vec::with_capacity(routes.len());
        let mut sent = Vec::with_capacity(routes.len());
        let needs_links =
            routes.iter().any(|(_, t, op)| *op != Op::Delete && matches!(t, Target::Link(_)));
        let names: HashMap<String, u32> = if needs_links {
            match self.links().await {
                Ok(l) => l.into_iter().map(|(i, n)| (n, i)).collect(),
                Err(e) => {
                    let why = e.to_string();
                    return routes
                        .iter()
                        .map(|(dst, _, op)| {
                            Err(KernelError::Invalid {
                                what: format!("{} {dst}", verb(*op)),
                                message: why.clone(),
                            })
                        })
                        .collect();
                }
            }
        } else {
            HashMap::new()
        };
        for (dst, target, op) in routes {
            let index = match (target, op) {
                (Target::Link(_), Op::Delete) => Some(0),
                (Target::Link(dev), _) => match names.get(dev) {
                    Some(i) => Some(*i),
                    None => {
                        results.push(Err(KernelError::NoSuchInterface {
                            what: format!("{} {dst}", verb(*op)),
                            name: dev.clone(),
                        }));
                        continue;
                    }
                },
                _ => None,
            };
            match self.message(*dst, target, index) {
                Ok(mut m) => {
                    // A deletion matches on destination, table, protocol and type: a next
                    // hop or interface parsed differently must not make it miss.
                    if *op == Op::Delete {
                        m.attributes.retain(|a| {
                            !matches!(
                                a,
                                RouteAttribute::Oif(_)
                                    | RouteAttribute::Gateway(_)
                                    | RouteAttribute::MultiPath(_)
                            )
                        });
                        m.header.scope = RouteScope::NoWhere;
                    }
                    sent.push(results.len());
                    results.push(Ok(()));
                    msgs.push((m, *op));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        match self.raw.write(msgs) {
            Ok(outcomes) => {
                for (slot, outcome) in sent.into_iter().zip(outcomes) {
                    if let Err(code) = outcome {
                        let (dst, target, op) = &routes[slot];
                        // ESRCH on delete: already gone, which is what we wanted.
                        if *op == Op::Delete && code == -libc_esrch() {
                            continue;
                        }
                        results[slot] = Err(KernelError::Io {
                            what: format!("{} {dst} {target}", verb(*op)),
                            source: std::io::Error::from_raw_os_error(-code),
                        });
                    }
                }
            }
            Err(e) => {
                let why = e.to_string();
                for slot in sent {
                    let (dst, _, op) = &routes[slot];
                    results[slot] = Err(KernelError::Invalid {
                        what: format!("{} {dst}", verb(*op)),
                        message: why.clone(),
                    });
                }
            }
        }
        results
    }
}

fn libc_esrch() -> i32 {
    nix::errno::Errno::ESRCH as i32
}

impl Kernel for NetlinkKernel {
    async fn routes(&mut self) -> Result<Table, KernelError> {
        let dump = self
            .raw
            .dump()
            .map_err(|e| KernelError::Io { what: "listing routes".into(), source: e })?;
        let ours: Vec<RouteMessage> = dump
            .into_iter()
            .filter(|m| {
                m.header.protocol == RouteProtocol::from(self.protocol)
                    && table_of(m) == u32::from(RouteHeader::RT_TABLE_MAIN)
            })
            .collect();
        // Interface names only when a route points at one: a dump of the links costs as much
        // as hundreds of routes.
        let links = if ours.iter().any(|m| m.header.kind != RouteType::BlackHole && !has_gateway(m))
        {
            self.links().await?
        } else {
            HashMap::new()
        };
        Ok(ours.iter().filter_map(|m| parse(m, &links)).collect())
    }

    async fn replace(&mut self, routes: &[Write]) -> Vec<Result<(), KernelError>> {
        let ops: Vec<(IpNet, Target, Op)> = routes
            .iter()
            .map(|w| (w.dst, w.target.clone(), if w.ours { Op::Replace } else { Op::Create }))
            .collect();
        self.batch(&ops).await
    }

    async fn delete(&mut self, routes: &[(IpNet, Target)]) -> Vec<Result<(), KernelError>> {
        let ops: Vec<(IpNet, Target, Op)> =
            routes.iter().map(|(d, t)| (*d, t.clone(), Op::Delete)).collect();
        self.batch(&ops).await
    }

    async fn resolve(
        &mut self,
        hops: &std::collections::BTreeSet<IpAddr>,
    ) -> HashMap<IpAddr, IpAddr> {
        let mut out = HashMap::new();
        for hop in hops {
            let len = if hop.is_ipv4() { 32 } else { 128 };
            let Ok(b) = RouteMessageBuilder::<IpAddr>::new().destination_prefix(*hop, len) else {
                continue;
            };
            let mut lookup = self.handle.route().get(b.build()).execute();
            // No route at all: left as it is (the write then fails and says so).
            let Ok(Some(found)) = lookup.try_next().await else { continue };
            // Never through a route of ours: that could only be circular.
            if found.header.protocol == RouteProtocol::from(self.protocol) {
                continue;
            }
            let gateway = found.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(g) => addr(g),
                _ => None,
            });
            if let Some(gw) = gateway.filter(|gw| gw != hop) {
                out.insert(*hop, gw);
            }
        }
        out
    }
}

fn has_gateway(msg: &RouteMessage) -> bool {
    msg.attributes
        .iter()
        .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::MultiPath(_)))
}

fn table_of(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// One kernel route as a table entry; `None` for shapes we never write.
fn parse(msg: &RouteMessage, links: &HashMap<u32, String>) -> Option<(IpNet, Target)> {
    let len = msg.header.destination_prefix_length;
    let dst_addr = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(d) => addr(d),
            _ => None,
        })
        .or(match msg.header.address_family {
            AddressFamily::Inet => Some(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            AddressFamily::Inet6 => Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
            _ => None,
        })?;
    let dst = IpNet::new(dst_addr, len).ok()?;
    if msg.header.kind == RouteType::BlackHole {
        return Some((dst, Target::Blackhole));
    }
    let mut hops = Vec::new();
    let mut oif = None;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Gateway(g) => hops.extend(addr(g)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(nhs) => {
                for nh in nhs {
                    hops.extend(nh.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => addr(g),
                        _ => None,
                    }));
                }
            }
            _ => {}
        }
    }
    if !hops.is_empty() {
        return Some((dst, Target::via(hops)));
    }
    // A link route to an interface that has just gone keeps its index only.
    let dev = oif.map(|i| links.get(&i).cloned().unwrap_or_else(|| format!("#{i}")))?;
    Some((dst, Target::Link(dev)))
}
