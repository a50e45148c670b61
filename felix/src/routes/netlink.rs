//! The kernel over rtnetlink: dumps of our routes, and batched replaces and deletes sent
//! together on one socket (the kernel acknowledges each; nothing waits for one before sending
//! the next).

use std::collections::HashMap;
use std::net::IpAddr;

use futures::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder, RouteNextHopBuilder};

use super::{Kernel, KernelError, Table, Target};

/// How many requests are in flight at once on the socket.
const IN_FLIGHT: usize = 256;

/// Our routes in the main table of the namespace `handle` is bound to.
#[derive(Debug, Clone)]
pub struct NetlinkKernel {
    handle: Handle,
    protocol: u8,
}

impl NetlinkKernel {
    pub fn new(handle: Handle, protocol: u8) -> NetlinkKernel {
        NetlinkKernel { handle, protocol }
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

    async fn index_of(&self, name: &str) -> Result<u32, KernelError> {
        let mut stream = self.handle.link().get().match_name(name.to_string()).execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(msg.header.index),
            Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => {
                Err(KernelError::NoSuchInterface {
                    what: "resolving a route's interface".into(),
                    name: name.to_string(),
                })
            }
            Err(e) => Err(KernelError::Netlink { what: format!("finding {name}"), source: e }),
        }
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

    async fn write(&self, dst: IpNet, target: &Target, replace: bool) -> Result<(), KernelError> {
        let index = match target {
            Target::Link(dev) => Some(self.index_of(dev).await?),
            _ => None,
        };
        let msg = self.message(dst, target, index)?;
        let what = format!("{} {dst} {target}", if replace { "replacing" } else { "deleting" });
        let result = if replace {
            self.handle.route().add(msg).replace().execute().await
        } else {
            self.handle.route().del(msg).execute().await
        };
        match result {
            Ok(()) => Ok(()),
            // ESRCH: the route is already gone, which is what we wanted.
            Err(rtnetlink::Error::NetlinkError(e)) if !replace && e.raw_code() == -libc_esrch() => {
                Ok(())
            }
            Err(e) => Err(KernelError::Netlink { what, source: e }),
        }
    }

    async fn batch(
        &self,
        routes: &[(IpNet, Target)],
        replace: bool,
    ) -> Vec<Result<(), KernelError>> {
        let writes: Vec<_> =
            routes.iter().map(|(dst, target)| self.write(*dst, target, replace)).collect();
        futures::stream::iter(writes).buffered(IN_FLIGHT).collect().await
    }
}

fn libc_esrch() -> i32 {
    nix::errno::Errno::ESRCH as i32
}

impl Kernel for NetlinkKernel {
    async fn routes(&mut self) -> Result<Table, KernelError> {
        let links = self.links().await?;
        let mut table = Table::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut query = RouteMessage::default();
            query.header.address_family = family;
            let mut stream = self.handle.route().get(query).execute();
            while let Some(msg) = stream
                .try_next()
                .await
                .map_err(|e| KernelError::Netlink { what: "listing routes".into(), source: e })?
            {
                if msg.header.protocol != RouteProtocol::from(self.protocol)
                    || table_of(&msg) != u32::from(RouteHeader::RT_TABLE_MAIN)
                {
                    continue;
                }
                if let Some((dst, target)) = parse(&msg, &links) {
                    table.insert(dst, target);
                }
            }
        }
        Ok(table)
    }

    async fn replace(&mut self, routes: &[(IpNet, Target)]) -> Vec<Result<(), KernelError>> {
        self.batch(routes, true).await
    }

    async fn delete(&mut self, routes: &[(IpNet, Target)]) -> Vec<Result<(), KernelError>> {
        self.batch(routes, false).await
    }
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
