//! The `mgmt` section and management addresses: static `mgmt-ipv4`/`mgmt-ipv6` first, then the
//! next free address for every other node in name order (Docker hands them out sequentially
//! from `.2`; tartanlab does the same, deterministically).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde_yaml::Mapping;

use super::error::Where;
use super::fields::{Ctx, Rule};
use super::model::{DEFAULT_MGMT_SUBNET, Mgmt, MgmtAddrs};

const MGMT_KEYS: &[(&str, Rule)] = &[
    ("network", Rule::Use),
    ("bridge", Rule::Use),
    ("ipv4-subnet", Rule::Use),
    ("ipv6-subnet", Rule::Use),
    ("ipv4-gw", Rule::Use),
    ("ipv6-gw", Rule::Use),
    ("ipv4-range", Rule::Use),
    ("mtu", Rule::Use),
    ("ipv6-range", Rule::Ignore("IPv6 management addresses are assigned from the whole subnet")),
    ("external-access", Rule::Ignore("the management network never reaches outside the lab")),
    ("skip-when-unused", Rule::Ignore("the management bridge lives in a private namespace")),
    ("driver-opts", Rule::Ignore("there is no Docker network driver")),
];

/// containerlab's default IPv6 management subnet, used for `ipv6-subnet: auto`.
const DEFAULT_MGMT_SUBNET6: &str = "3fff:172:20:20::/64";

/// The parsed section plus the optional range dynamic IPv4 addresses come from.
pub(super) struct MgmtSection {
    pub mgmt: Mgmt,
    pub ipv4_range: Option<Ipv4Net>,
}

pub(super) fn parse_mgmt(ctx: &mut Ctx, map: Option<&Mapping>) -> MgmtSection {
    let at = Where::Mgmt;
    let empty = Mapping::new();
    let map = map.unwrap_or(&empty);
    ctx.check_keys(&at, map, MGMT_KEYS);
    let network = ctx.string(&at, map, "network").unwrap_or_else(|| "clab".into());
    let bridge = ctx.string(&at, map, "bridge").unwrap_or_else(|| {
        let mut b = format!("br-{network}");
        b.truncate(15);
        b
    });
    if bridge.len() > 15 || bridge.contains(['/', ':', ' ']) {
        ctx.bad(
            &at,
            "bridge",
            format!("`{bridge}` is not a valid interface name (15 characters at most)"),
        );
    }

    let default4: Ipv4Net = DEFAULT_MGMT_SUBNET.parse().unwrap_or_default();
    let ipv4_subnet = match ctx.string(&at, map, "ipv4-subnet").as_deref() {
        None | Some("auto") => default4,
        Some(text) => subnet(ctx, &at, "ipv4-subnet", text).unwrap_or(default4),
    };
    if ipv4_subnet.prefix_len() > 29 {
        ctx.bad(
            &at,
            "ipv4-subnet",
            format!("{ipv4_subnet} is too small for a lab (use /29 or larger)"),
        );
    }
    let ipv4_gw = ctx
        .string(&at, map, "ipv4-gw")
        .and_then(|t| {
            t.parse::<Ipv4Addr>()
                .map_err(|_| ctx.bad(&at, "ipv4-gw", format!("`{t}` is not an IPv4 address")))
                .ok()
        })
        .unwrap_or_else(|| first_host4(ipv4_subnet));
    if !ipv4_subnet.contains(&ipv4_gw) {
        ctx.bad(&at, "ipv4-gw", format!("{ipv4_gw} is outside {ipv4_subnet}"));
    }
    let ipv4_range = ctx
        .string(&at, map, "ipv4-range")
        .and_then(|t| subnet::<Ipv4Net>(ctx, &at, "ipv4-range", &t));
    if let Some(r) = ipv4_range {
        if !ipv4_subnet.contains(&r) {
            ctx.bad(&at, "ipv4-range", format!("{r} is outside {ipv4_subnet}"));
        }
    }

    let ipv6_subnet = match ctx.string(&at, map, "ipv6-subnet").as_deref() {
        None => None,
        Some("auto") => DEFAULT_MGMT_SUBNET6.parse().ok(),
        Some(text) => subnet::<Ipv6Net>(ctx, &at, "ipv6-subnet", text),
    };
    let ipv6_gw = ipv6_subnet.map(|net| {
        ctx.string(&at, map, "ipv6-gw")
            .and_then(|t| {
                t.parse::<Ipv6Addr>()
                    .map_err(|_| ctx.bad(&at, "ipv6-gw", format!("`{t}` is not an IPv6 address")))
                    .ok()
            })
            .unwrap_or_else(|| offset6(net, 1))
    });
    if map.contains_key("ipv6-gw") && ipv6_subnet.is_none() {
        ctx.bad(&at, "ipv6-gw", "needs `ipv6-subnet`");
    }
    let mtu = match ctx.u64(&at, map, "mtu") {
        None => 1500,
        Some(m) if (68..=65535).contains(&m) => m as u32,
        Some(m) => {
            ctx.bad(&at, "mtu", format!("{m} is outside 68..65535"));
            1500
        }
    };
    MgmtSection {
        mgmt: Mgmt { network, bridge, ipv4_subnet, ipv4_gw, ipv6_subnet, ipv6_gw, mtu },
        ipv4_range,
    }
}

fn subnet<N: std::str::FromStr + Copy + std::fmt::Display + Trunc>(
    ctx: &mut Ctx,
    at: &Where,
    key: &str,
    text: &str,
) -> Option<N> {
    let Ok(net) = text.parse::<N>() else {
        ctx.bad(at, key, format!("`{text}` is not a subnet in CIDR notation"));
        return None;
    };
    if net.trunc_net().to_string() != net.to_string() {
        ctx.bad(at, key, format!("`{text}` has host bits set; did you mean {}?", net.trunc_net()));
    }
    Some(net.trunc_net())
}

trait Trunc: Sized {
    fn trunc_net(&self) -> Self;
}
impl Trunc for Ipv4Net {
    fn trunc_net(&self) -> Self {
        self.trunc()
    }
}
impl Trunc for Ipv6Net {
    fn trunc_net(&self) -> Self {
        self.trunc()
    }
}

fn first_host4(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(1))
}

fn offset6(net: Ipv6Net, n: u128) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(net.network()).saturating_add(n))
}

/// A node's request: its name and static addresses, if any. `None` means no management
/// interface (`network-mode: none`).
pub(super) struct Want {
    pub node: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

/// Assigns addresses: statics are checked, the rest get the next free one in order.
pub(super) fn assign(
    ctx: &mut Ctx,
    section: &MgmtSection,
    wants: &[Want],
) -> Vec<Option<MgmtAddrs>> {
    let m = &section.mgmt;
    let mut used4: BTreeSet<Ipv4Addr> = BTreeSet::from([m.ipv4_gw]);
    let mut used6: BTreeSet<Ipv6Addr> = m.ipv6_gw.into_iter().collect();
    for w in wants {
        let at = Where::Node(w.node.clone());
        if let Some(ip) = w.ipv4 {
            if !m.ipv4_subnet.contains(&ip)
                || ip == m.ipv4_subnet.network()
                || ip == m.ipv4_subnet.broadcast()
            {
                ctx.bad(
                    &at,
                    "mgmt-ipv4",
                    format!("{ip} is not a host address of {}", m.ipv4_subnet),
                );
            } else if !used4.insert(ip) {
                ctx.bad(&at, "mgmt-ipv4", format!("{ip} is the gateway or another node's address"));
            }
        }
        if let Some(ip) = w.ipv6 {
            match m.ipv6_subnet {
                None => ctx.bad(&at, "mgmt-ipv6", "needs `mgmt.ipv6-subnet`"),
                Some(net) if !net.contains(&ip) => {
                    ctx.bad(&at, "mgmt-ipv6", format!("{ip} is outside {net}"))
                }
                Some(_) if !used6.insert(ip) => ctx.bad(
                    &at,
                    "mgmt-ipv6",
                    format!("{ip} is the gateway or another node's address"),
                ),
                Some(_) => {}
            }
        }
    }
    let pool = section.ipv4_range.unwrap_or(m.ipv4_subnet);
    let mut next4 = pool.hosts();
    let mut next6 = 2u128;
    let mut out = Vec::with_capacity(wants.len());
    for w in wants {
        let ipv4 = match w.ipv4 {
            Some(ip) => Some(ip),
            None => {
                let ip = next4.by_ref().find(|ip| !used4.contains(ip));
                if ip.is_none() {
                    ctx.bad(
                        &Where::Node(w.node.clone()),
                        "mgmt-ipv4",
                        format!("no free address left in {pool}"),
                    );
                }
                ip.inspect(|ip| {
                    used4.insert(*ip);
                })
            }
        };
        let ipv6 = m.ipv6_subnet.map(|net| {
            let ip = w.ipv6.unwrap_or_else(|| {
                loop {
                    let ip = offset6(net, next6);
                    next6 += 1;
                    if !used6.contains(&ip) {
                        break ip;
                    }
                }
            });
            used6.insert(ip);
            Ipv6Net::new(ip, net.prefix_len()).unwrap_or(net)
        });
        out.push(ipv4.map(|ip| MgmtAddrs {
            ipv4: Ipv4Net::new(ip, m.ipv4_subnet.prefix_len()).unwrap_or(m.ipv4_subnet),
            ipv6,
        }));
    }
    out
}
