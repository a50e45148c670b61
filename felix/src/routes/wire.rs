//! The bytes of the rtnetlink requests the programmer sends in bulk — routes (`RTM_NEWROUTE`,
//! `RTM_DELROUTE`) and nexthop objects (`RTM_NEWNEXTHOP`, `RTM_DELNEXTHOP`) — written straight
//! into a send buffer, and the replies read back: acknowledgements and nexthop objects from a
//! dump. Building 10,000 route messages this way costs a fraction of a millisecond; going
//! through netlink-packet-route's typed messages cost two or three (see docs/benchmarks.md).
//! Sans-IO: buffers in, buffers out. The layouts are the kernel's UAPI (`rtnetlink.h`,
//! `nexthop.h`).

use std::net::IpAddr;

use ipnet::IpNet;

pub(crate) const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
pub(crate) const RTM_NEWNEXTHOP: u16 = 104;
const RTM_DELNEXTHOP: u16 = 105;
const RTM_GETNEXTHOP: u16 = 106;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
/// Set on the messages of a dump during which the table changed: the dump may be inconsistent.
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RT_TABLE_MAIN: u8 = 254;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;
pub(crate) const RTN_BLACKHOLE: u8 = 6;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
/// `rtm_flags` of a lookup: answer with the table entry that matched, not a cache entry.
const RTM_F_FIB_MATCH: u32 = 0x2000;
const RTA_NH_ID: u16 = 30;

const IFLA_IFNAME: u16 = 3;
const IFLA_EXT_MASK: u16 = 29;
/// `IFLA_EXT_MASK` value: leave the statistics out of link replies (most of their bytes).
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;

/// The netlink header's length; every message starts with one.
const HEADER_LEN: usize = 16;

/// What to do with one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create; never over an existing route (EEXIST).
    Create,
    /// Replace the existing route (or create it).
    Replace,
    Delete,
}

/// Where a route sends traffic, as the kernel is told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via<'a> {
    Blackhole,
    /// `dev IF scope link`, by interface index.
    Dev(u32),
    Gateway(IpAddr),
    /// ECMP written out in the route (`nexthop via A nexthop via B`).
    Multipath(&'a [IpAddr]),
    /// A nexthop object (`nhid N`): one or a group of next hops shared by many routes.
    Object(u32),
}

/// One route request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRequest<'a> {
    pub op: Op,
    pub dst: IpNet,
    pub via: Via<'a>,
    pub protocol: u8,
}

/// One nexthop object request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NexthopRequest {
    /// `ip nexthop add id ID via GATEWAY dev OIF proto P`.
    Gateway {
        id: u32,
        gateway: IpAddr,
        oif: u32,
        protocol: u8,
    },
    /// `ip nexthop add id ID group A/B/... proto P` (equal weights).
    Group {
        id: u32,
        members: Vec<u32>,
        protocol: u8,
    },
    /// `ip nexthop replace id ID group A/B/... proto P`: the group changes in place, and with
    /// it every route that names it, in one message.
    ReplaceGroup {
        id: u32,
        members: Vec<u32>,
        protocol: u8,
    },
    Delete {
        id: u32,
    },
}

impl NexthopRequest {
    /// The object it creates or deletes.
    pub fn id(&self) -> u32 {
        match self {
            NexthopRequest::Gateway { id, .. }
            | NexthopRequest::Group { id, .. }
            | NexthopRequest::ReplaceGroup { id, .. }
            | NexthopRequest::Delete { id } => *id,
        }
    }
}

/// A request that writes itself into a send buffer.
pub trait Request {
    /// Appends the whole message, header included; `ack` asks for an acknowledgement.
    fn encode(&self, buf: &mut Vec<u8>, seq: u32, ack: bool);
}

fn family(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { AF_INET } else { AF_INET6 }
}

/// Starts a message; `finish` fills in its length.
fn begin(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    at
}

/// Sets the length of the message or attribute that starts at `at` (a `u32` for a message,
/// a `u16` for an attribute) and pads the buffer to four octets.
fn finish_message(buf: &mut Vec<u8>, at: usize) {
    let len = (buf.len() - at) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
    pad(buf);
}

fn pad(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    pad(buf);
}

fn addr_attr(buf: &mut Vec<u8>, kind: u16, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => attr(buf, kind, &a.octets()),
        IpAddr::V6(a) => attr(buf, kind, &a.octets()),
    }
}

/// Starts a nested attribute; `end_nested` fills in its length.
fn begin_nested(buf: &mut Vec<u8>, kind: u16) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    at
}

fn end_nested(buf: &mut [u8], at: usize) {
    let len = (buf.len() - at) as u16;
    buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

impl Request for RouteRequest<'_> {
    fn encode(&self, buf: &mut Vec<u8>, seq: u32, ack: bool) {
        let (kind, flags) = match self.op {
            Op::Create => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL),
            Op::Replace => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE),
            Op::Delete => (RTM_DELROUTE, 0),
        };
        let flags = NLM_F_REQUEST | flags | if ack { NLM_F_ACK } else { 0 };
        let at = begin(buf, kind, flags, seq);
        let route_type = if self.via == Via::Blackhole { RTN_BLACKHOLE } else { RTN_UNICAST };
        // A deletion matches on destination, table, protocol and type only, so that a next hop
        // or interface the kernel reports differently never makes it miss.
        let scope = match (self.op, self.via) {
            (Op::Delete, _) => RT_SCOPE_NOWHERE,
            (_, Via::Dev(_)) => RT_SCOPE_LINK,
            _ => RT_SCOPE_UNIVERSE,
        };
        buf.extend_from_slice(&[
            family(self.dst.addr()),
            self.dst.prefix_len(),
            0, // source length
            0, // tos
            RT_TABLE_MAIN,
            self.protocol,
            scope,
            route_type,
        ]);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
        addr_attr(buf, RTA_DST, self.dst.addr());
        if self.op != Op::Delete {
            match self.via {
                Via::Blackhole => {}
                Via::Dev(index) => attr(buf, RTA_OIF, &index.to_ne_bytes()),
                Via::Gateway(gateway) => addr_attr(buf, RTA_GATEWAY, gateway),
                Via::Object(id) => attr(buf, RTA_NH_ID, &id.to_ne_bytes()),
                Via::Multipath(hops) => {
                    let nested = begin_nested(buf, RTA_MULTIPATH);
                    for hop in hops {
                        // struct rtnexthop: length, flags, hops, interface index (0: any).
                        let nh = buf.len();
                        buf.extend_from_slice(&0u16.to_ne_bytes());
                        buf.extend_from_slice(&[0, 0]);
                        buf.extend_from_slice(&0i32.to_ne_bytes());
                        addr_attr(buf, RTA_GATEWAY, *hop);
                        end_nested(buf, nh);
                    }
                    end_nested(buf, nested);
                }
            }
        }
        finish_message(buf, at);
    }
}

impl Request for NexthopRequest {
    fn encode(&self, buf: &mut Vec<u8>, seq: u32, ack: bool) {
        let ack = if ack { NLM_F_ACK } else { 0 };
        let (kind, flags) = match self {
            NexthopRequest::Delete { .. } => (RTM_DELNEXTHOP, 0),
            NexthopRequest::ReplaceGroup { .. } => (RTM_NEWNEXTHOP, NLM_F_CREATE | NLM_F_REPLACE),
            _ => (RTM_NEWNEXTHOP, NLM_F_CREATE | NLM_F_EXCL),
        };
        let at = begin(buf, kind, NLM_F_REQUEST | flags | ack, seq);
        // struct nhmsg: family, scope, protocol, reserved, flags.
        let (family, protocol) = match self {
            NexthopRequest::Gateway { gateway, protocol, .. } => (family(*gateway), *protocol),
            NexthopRequest::Group { protocol, .. }
            | NexthopRequest::ReplaceGroup { protocol, .. } => (AF_UNSPEC, *protocol),
            NexthopRequest::Delete { .. } => (AF_UNSPEC, 0),
        };
        buf.extend_from_slice(&[family, RT_SCOPE_UNIVERSE, protocol, 0]);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        match self {
            NexthopRequest::Gateway { id, gateway, oif, .. } => {
                attr(buf, NHA_ID, &id.to_ne_bytes());
                attr(buf, NHA_OIF, &oif.to_ne_bytes());
                addr_attr(buf, NHA_GATEWAY, *gateway);
            }
            NexthopRequest::Group { id, members, .. }
            | NexthopRequest::ReplaceGroup { id, members, .. } => {
                attr(buf, NHA_ID, &id.to_ne_bytes());
                // struct nexthop_grp: id, weight - 1, two reserved fields.
                let mut group = Vec::with_capacity(members.len() * 8);
                for member in members {
                    group.extend_from_slice(&member.to_ne_bytes());
                    group.extend_from_slice(&[0, 0, 0, 0]);
                }
                attr(buf, NHA_GROUP, &group);
            }
            NexthopRequest::Delete { id } => attr(buf, NHA_ID, &id.to_ne_bytes()),
        }
        finish_message(buf, at);
    }
}

/// The request that dumps every nexthop object.
pub(crate) fn nexthop_dump(buf: &mut Vec<u8>, seq: u32) {
    let at = begin(buf, RTM_GETNEXTHOP, NLM_F_REQUEST | NLM_F_DUMP, seq);
    buf.extend_from_slice(&[AF_UNSPEC, 0, 0, 0]);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    finish_message(buf, at);
}

/// The request that dumps every route of every family and table.
pub(crate) fn route_dump(buf: &mut Vec<u8>, seq: u32) {
    let at = begin(buf, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq);
    buf.extend_from_slice(&[AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0]);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    finish_message(buf, at);
}

/// The request that looks up the route to `addr` (`ip route get ADDR fibmatch`): the
/// kernel answers with the table entry that matched, protocol and all.
pub(crate) fn route_lookup(buf: &mut Vec<u8>, seq: u32, addr: IpAddr) {
    let at = begin(buf, RTM_GETROUTE, NLM_F_REQUEST, seq);
    let len = if addr.is_ipv4() { 32 } else { 128 };
    buf.extend_from_slice(&[family(addr), len, 0, 0, 0, 0, 0, 0]);
    buf.extend_from_slice(&RTM_F_FIB_MATCH.to_ne_bytes());
    addr_attr(buf, RTA_DST, addr);
    finish_message(buf, at);
}

/// The request for one interface (`index`, or `name` with index 0), or for all of them with
/// `dump`: `RTM_GETLINK`, statistics left out.
pub(crate) fn link_request(
    buf: &mut Vec<u8>,
    seq: u32,
    index: u32,
    name: Option<&str>,
    dump: bool,
) {
    let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
    let at = begin(buf, RTM_GETLINK, flags, seq);
    // struct ifinfomsg: family, pad, type, index, flags, change.
    buf.extend_from_slice(&[AF_UNSPEC, 0, 0, 0]);
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&[0; 8]);
    if let Some(name) = name {
        let mut value = name.as_bytes().to_vec();
        value.push(0);
        attr(buf, IFLA_IFNAME, &value);
    }
    attr(buf, IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    finish_message(buf, at);
}

/// The request for every address of the namespace, both families (`ip addr`).
pub(crate) fn address_dump(buf: &mut Vec<u8>, seq: u32) {
    let at = begin(buf, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
    // struct ifaddrmsg: family, prefixlen, flags, scope, index.
    buf.extend_from_slice(&[AF_UNSPEC, 0, 0, 0]);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    finish_message(buf, at);
}

/// The subnet of an `RTM_NEWADDR` body (`IFA_ADDRESS` with the prefix length, host bits
/// cleared); `None` when malformed or of another family.
pub fn parse_address(body: &[u8]) -> Option<IpNet> {
    const IFA_ADDRESS: u16 = 1;
    let head = body.get(..8)?;
    let (fam, len) = (head[0], head[1]);
    for a in attributes(body.get(8..)?) {
        let (kind, value) = a.ok()?;
        if kind != IFA_ADDRESS {
            continue;
        }
        let addr = match (fam, value.len()) {
            (AF_INET, 4) => IpAddr::from(<[u8; 4]>::try_from(value).ok()?),
            (AF_INET6, 16) => IpAddr::from(<[u8; 16]>::try_from(value).ok()?),
            _ => return None,
        };
        return IpNet::new(addr, len).ok().map(|n| n.trunc());
    }
    None
}

/// The index and name of an `RTM_NEWLINK` body; `None` when malformed.
pub fn parse_link(body: &[u8]) -> Option<(u32, String)> {
    let index = u32::from_ne_bytes(body.get(4..8)?.try_into().ok()?);
    let attrs = body.get(16..)?;
    for a in attributes(attrs) {
        let (kind, value) = a.ok()?;
        if kind == IFLA_IFNAME {
            let name = value.split(|b| *b == 0).next()?;
            return Some((index, String::from_utf8(name.to_vec()).ok()?));
        }
    }
    None
}

/// A route as the kernel reports it, in the parts the programmer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: IpNet,
    pub table: u32,
    pub protocol: u8,
    /// `rtm_type`: unicast, blackhole, ...
    pub kind: u8,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// ECMP: the gateway (if any) and interface of each path.
    pub multipath: Vec<(Option<IpAddr>, u32)>,
    /// The nexthop object it names (`nhid`).
    pub object: Option<u32>,
}

/// The body of an `RTM_NEWROUTE` message; `None` for a family other than IPv4 and IPv6 or a
/// malformed message.
pub fn parse_route(body: &[u8]) -> Option<RouteEntry> {
    let head = body.get(..12)?;
    let (fam, dst_len) = (head[0], head[1]);
    let addr = |value: &[u8]| -> Option<IpAddr> {
        match (fam, value.len()) {
            (AF_INET, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(value).ok()?)),
            (AF_INET6, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(value).ok()?)),
            _ => None,
        }
    };
    let unspecified = match fam {
        AF_INET => IpAddr::from([0u8; 4]),
        AF_INET6 => IpAddr::from([0u8; 16]),
        _ => return None,
    };
    let mut route = RouteEntry {
        dst: IpNet::new(unspecified, dst_len).ok()?,
        table: u32::from(head[4]),
        protocol: head[5],
        kind: head[7],
        gateway: None,
        oif: None,
        multipath: Vec::new(),
        object: None,
    };
    for attribute in attributes(&body[12..]) {
        let (kind, value) = attribute.ok()?;
        match kind {
            RTA_DST => route.dst = IpNet::new(addr(value)?, dst_len).ok()?,
            RTA_TABLE => route.table = u32_at(value, 0)?,
            RTA_GATEWAY => route.gateway = addr(value),
            RTA_OIF => route.oif = u32_at(value, 0),
            RTA_NH_ID => route.object = u32_at(value, 0),
            RTA_MULTIPATH => {
                let mut off = 0;
                while off + 8 <= value.len() {
                    let len = u16::from_ne_bytes([value[off], value[off + 1]]) as usize;
                    if len < 8 || off + len > value.len() {
                        return None;
                    }
                    let ifindex = u32_at(value, off + 4)?;
                    let mut gateway = None;
                    for attribute in attributes(&value[off + 8..off + len]) {
                        if let (RTA_GATEWAY, v) = attribute.ok()? {
                            gateway = addr(v);
                        }
                    }
                    route.multipath.push((gateway, ifindex));
                    off += (len + 3) & !3;
                }
            }
            _ => {}
        }
    }
    Some(route)
}

/// The attributes of a message body, as `(type, value)`, each `Err` from one that runs past
/// the end (and nothing after it).
fn attributes(buf: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), Malformed>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 4 > buf.len() {
            return None;
        }
        let len = u16::from_ne_bytes([buf[off], buf[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([buf[off + 2], buf[off + 3]]) & 0x3fff;
        if len < 4 || off + len > buf.len() {
            off = buf.len();
            return Some(Err(Malformed));
        }
        let value = &buf[off + 4..off + len];
        off += (len + 3) & !3;
        Some(Ok((kind, value)))
    })
}

/// An attribute whose length does not fit its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

/// One message of a datagram from the kernel: its type, sequence number and body (what follows
/// the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: u16,
    /// `nlmsg_flags`: [`NLM_F_DUMP_INTR`] says a dump changed while it was read.
    pub flags: u16,
    pub seq: u32,
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// For `NLMSG_ERROR` and `NLMSG_DONE`: the errno it carries (negative; 0 for an
    /// acknowledgement or a clean end of dump).
    pub fn code(&self) -> Option<i32> {
        let raw: [u8; 4] = self.body.get(..4)?.try_into().ok()?;
        Some(i32::from_ne_bytes(raw))
    }
}

/// The messages of one datagram, in order; a truncated tail is ignored.
pub fn frames(buf: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let head = buf.get(off..off + HEADER_LEN)?;
        let len = u32_at(head, 0)? as usize;
        if len < HEADER_LEN || off + len > buf.len() {
            return None;
        }
        let frame = Frame {
            kind: u16::from_ne_bytes([head[4], head[5]]),
            flags: u16::from_ne_bytes([head[6], head[7]]),
            seq: u32_at(head, 8)?,
            body: &buf[off + HEADER_LEN..off + len],
        };
        off += (len + 3) & !3;
        Some(frame)
    })
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// A nexthop object as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexthopObject {
    pub id: u32,
    pub protocol: u8,
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    /// The members of a group (empty for a single next hop).
    pub group: Vec<u32>,
    pub blackhole: bool,
}

/// The body of an `RTM_NEWNEXTHOP` message; `None` if it is malformed or has no ID.
pub fn parse_nexthop(body: &[u8]) -> Option<NexthopObject> {
    let head = body.get(..8)?;
    let protocol = head[2];
    let mut object =
        NexthopObject { id: 0, protocol, gateway: None, oif: 0, group: vec![], blackhole: false };
    for attribute in attributes(&body[8..]) {
        let (kind, value) = attribute.ok()?;
        match kind {
            NHA_ID => object.id = u32_at(value, 0)?,
            NHA_OIF => object.oif = u32_at(value, 0)?,
            NHA_BLACKHOLE => object.blackhole = true,
            NHA_GATEWAY => {
                object.gateway = match value.len() {
                    4 => Some(IpAddr::from(<[u8; 4]>::try_from(value).ok()?)),
                    16 => Some(IpAddr::from(<[u8; 16]>::try_from(value).ok()?)),
                    _ => None,
                }
            }
            NHA_GROUP => {
                object.group = value.chunks_exact(8).filter_map(|m| u32_at(m, 0)).collect()
            }
            _ => {}
        }
    }
    (object.id != 0).then_some(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::route::{
        RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
    };
    use rtnetlink::{RouteMessageBuilder, RouteNextHopBuilder};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    /// The same route built with netlink-packet-route, the way the programmer used to.
    fn reference(dst: IpNet, via: Via, flags: u16, seq: u32) -> Vec<u8> {
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .expect("prefix")
            .protocol(RouteProtocol::from(84));
        b = match via {
            Via::Blackhole => b.kind(RouteType::BlackHole),
            Via::Dev(i) => b.scope(RouteScope::Link).output_interface(i),
            Via::Gateway(g) => b.gateway(g).expect("gateway"),
            Via::Multipath(hops) => {
                let family = if dst.addr().is_ipv4() {
                    rtnetlink::packet_route::AddressFamily::Inet
                } else {
                    rtnetlink::packet_route::AddressFamily::Inet6
                };
                b.multipath(
                    hops.iter()
                        .map(|h| RouteNextHopBuilder::new(family).via(*h).expect("via").build())
                        .collect(),
                )
            }
            Via::Object(id) => {
                let mut m: RouteMessage = b.build();
                m.attributes.push(RouteAttribute::NhId(id));
                return serialize(m, flags, seq);
            }
        };
        serialize(b.build(), flags, seq)
    }

    fn serialize(m: RouteMessage, flags: u16, seq: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)),
        );
        nl.finalize();
        let mut out = vec![0; nl.buffer_len()];
        nl.serialize(&mut out);
        out
    }

    #[test]
    fn route_requests_are_the_bytes_netlink_packet_route_writes() {
        let hops = [ip("10.0.0.2"), ip("10.0.0.3")];
        let hops6 = [ip("fd00::2"), ip("fd00::3")];
        let cases = [
            (net("10.65.0.0/26"), Via::Blackhole),
            (net("10.65.0.5/32"), Via::Dev(7)),
            (net("10.65.1.0/26"), Via::Gateway(ip("10.0.0.2"))),
            (net("10.65.1.0/26"), Via::Multipath(&hops)),
            (net("fd00:65::/122"), Via::Gateway(ip("fd00::2"))),
            (net("fd00:65::/122"), Via::Multipath(&hops6)),
            (net("0.0.0.0/0"), Via::Gateway(ip("10.0.0.1"))),
            (net("10.128.0.1/32"), Via::Object(0x5400_0001)),
        ];
        for (dst, via) in cases {
            let mut ours = Vec::new();
            RouteRequest { op: Op::Replace, dst, via, protocol: 84 }.encode(&mut ours, 9, true);
            let flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK;
            assert_eq!(ours, reference(dst, via, flags, 9), "{dst} {via:?}");
        }
    }

    #[test]
    fn a_deletion_names_only_destination_table_protocol_and_type() {
        let mut buf = Vec::new();
        let req = RouteRequest {
            op: Op::Delete,
            dst: net("10.65.0.5/32"),
            via: Via::Dev(7),
            protocol: 84,
        };
        req.encode(&mut buf, 3, false);
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).expect("parses");
        assert_eq!(msg.header.message_type, RTM_DELROUTE);
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(r)) = msg.payload else {
            panic!("not a route deletion: {msg:?}");
        };
        assert_eq!(r.header.scope, RouteScope::NoWhere);
        assert_eq!(r.header.protocol, RouteProtocol::from(84));
        assert_eq!(r.attributes.len(), 1, "the destination alone: {:?}", r.attributes);
    }

    #[test]
    fn nexthop_requests_read_back_as_the_objects_they_create() {
        let mut buf = Vec::new();
        NexthopRequest::Gateway { id: 5, gateway: ip("fd00::2"), oif: 3, protocol: 84 }
            .encode(&mut buf, 1, false);
        NexthopRequest::Group { id: 6, members: vec![5, 7], protocol: 84 }
            .encode(&mut buf, 2, true);
        NexthopRequest::Delete { id: 6 }.encode(&mut buf, 3, true);
        let got: Vec<Frame> = frames(&buf).collect();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].kind, got[0].seq), (RTM_NEWNEXTHOP, 1));
        assert_eq!(
            parse_nexthop(got[0].body),
            Some(NexthopObject {
                id: 5,
                protocol: 84,
                gateway: Some(ip("fd00::2")),
                oif: 3,
                group: vec![],
                blackhole: false,
            })
        );
        assert_eq!(parse_nexthop(got[1].body).map(|o| o.group), Some(vec![5, 7]));
        assert_eq!(
            (got[2].kind, parse_nexthop(got[2].body).map(|o| o.id)),
            (RTM_DELNEXTHOP, Some(6))
        );
    }

    #[test]
    fn routes_read_back_as_they_were_written() {
        let hops = [ip("fd00::2"), ip("fd00::3")];
        let mut buf = Vec::new();
        let cases = [
            (net("10.65.0.0/26"), Via::Blackhole),
            (net("10.65.0.5/32"), Via::Dev(7)),
            (net("0.0.0.0/0"), Via::Gateway(ip("10.0.0.1"))),
            (net("fd00:65::/122"), Via::Multipath(&hops)),
            (net("10.128.0.1/32"), Via::Object(0x5400_0001)),
        ];
        for (i, (dst, via)) in cases.iter().enumerate() {
            RouteRequest { op: Op::Create, dst: *dst, via: *via, protocol: 84 }
                .encode(&mut buf, i as u32, false);
        }
        let read: Vec<RouteEntry> =
            frames(&buf).map(|f| parse_route(f.body).expect("parses")).collect();
        assert_eq!(read.iter().map(|r| r.dst).collect::<Vec<_>>(), cases.map(|c| c.0));
        assert!(read.iter().all(|r| r.protocol == 84 && r.table == 254));
        assert_eq!(read[0].kind, RTN_BLACKHOLE);
        assert_eq!(read[1].oif, Some(7));
        assert_eq!(read[2].gateway, Some(ip("10.0.0.1")));
        assert_eq!(read[3].multipath, vec![(Some(hops[0]), 0), (Some(hops[1]), 0)]);
        assert_eq!(read[4].object, Some(0x5400_0001));
    }

    #[test]
    fn any_bytes_parse_or_are_refused_without_panicking() {
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut buf = Vec::new();
        let hops = [ip("10.0.0.2"), ip("10.0.0.3")];
        let via = Via::Multipath(&hops);
        RouteRequest { op: Op::Create, dst: net("10.65.0.0/26"), via, protocol: 84 }
            .encode(&mut buf, 1, false);
        NexthopRequest::Group { id: 6, members: vec![5, 7], protocol: 84 }
            .encode(&mut buf, 2, true);
        for _ in 0..20_000 {
            let mut bytes = buf.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() as usize % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate(next() as usize % (bytes.len() + 1));
            for frame in frames(&bytes) {
                let _ = (parse_route(frame.body), parse_nexthop(frame.body), frame.code());
            }
        }
    }

    #[test]
    fn malformed_replies_are_cut_short_not_trusted() {
        let mut buf = Vec::new();
        NexthopRequest::Gateway { id: 5, gateway: ip("10.0.0.2"), oif: 3, protocol: 84 }
            .encode(&mut buf, 1, false);
        let whole = buf.len();
        for cut in 0..whole {
            let frames: Vec<Frame> = frames(&buf[..cut]).collect();
            assert!(frames.is_empty(), "a message cut at {cut} of {whole} is not one");
        }
        // An attribute whose length runs past the message.
        let mut body = frames(&buf).next().expect("frame").body.to_vec();
        body[8] = 200;
        assert_eq!(parse_nexthop(&body), None);
        assert_eq!(parse_nexthop(&body[..3]), None);
        assert_eq!(Frame { kind: NLMSG_ERROR, flags: 0, seq: 1, body: &[1, 2] }.code(), None);
    }
}
