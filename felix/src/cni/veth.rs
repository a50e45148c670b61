//! A workload's veth pair, Calico-compatible: the container end `eth0` holds the addresses as
//! /32 and /128 with a link route to 169.254.1.1 and default routes via the host; the host end
//! has MAC `ee:ee:ee:ee:ee:ee`, proxy ARP and proxy NDP, so it answers for that gateway.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::netns;

/// The host end's MAC, as Calico sets it: containers ARP for 169.254.1.1 and get this.
pub const HOST_MAC: [u8; 6] = [0xee; 6];
/// The gateway containers route through (answered by proxy ARP on the host end).
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The host end's link-local address, which follows from its MAC (EUI-64).
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// The prefix of every host-side veth we make (kept out of address autodetection).
pub const VETH_PREFIX: &str = "tart";

/// The host-side name for one attachment: the prefix and 11 hex digits of a hash of the CNI
/// state key, 15 characters (the kernel's limit), the same every time so DEL can find it.
pub fn host_name(network: &str, container_id: &str, ifname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{network}.{container_id}.{ifname}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{VETH_PREFIX}{:011x}", h >> 20)
}

#[derive(Debug, thiserror::Error)]
pub enum VethError {
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
        source: io::Error,
    },
    #[error("{0}")]
    Check(String),
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> VethError {
    let what = what.into();
    move |source| VethError::Netlink { what, source }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> VethError {
    let what = what.into();
    move |source| VethError::Io { what, source }
}

/// One attachment to make.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub host_if: String,
    pub container_if: String,
    pub netns: PathBuf,
    pub mtu: u32,
    /// Host routes (/32, /128) of the workload.
    pub ips: Vec<IpNet>,
}

pub async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>, VethError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => Ok(None),
        Err(e) => Err(VethError::Netlink { what: format!("finding {name}"), source: e }),
    }
}

async fn mac_of(handle: &Handle, index: u32) -> Result<Option<Vec<u8>>, VethError> {
    let mut links = handle.link().get().match_index(index).execute();
    let msg = links.try_next().await.map_err(nl("reading the container interface"))?;
    Ok(msg.and_then(|m| {
        m.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(mac) => Some(mac.clone()),
            _ => None,
        })
    }))
}

/// A MAC as `aa:bb:cc:dd:ee:ff`.
fn mac_text(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A permanent neighbour entry: `addr` is at `mac` on interface `index`. Permanent entries are
/// exempt from the kernel's neighbour table limit (`gc_thresh3`, 1,024 by default and shared
/// by every namespace of the machine), which a host with a thousand containers would otherwise
/// overflow, dropping packets; and the first packet waits for no ARP or ND exchange.
async fn permanent_neighbour(
    h: &Handle,
    index: u32,
    addr: IpAddr,
    mac: &[u8],
    what: &str,
) -> Result<(), VethError> {
    h.neighbours()
        .add(index, addr)
        .link_layer_address(mac)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(nl(format!("adding the neighbour entry of {what}")))
}

/// Deletes the host end (which takes the pair with it); absent is fine.
pub async fn remove(host: &Handle, host_if: &str) -> Result<(), VethError> {
    if let Some(index) = index_of(host, host_if).await? {
        match host.link().del(index).execute().await {
            Ok(()) | Err(rtnetlink::Error::NetlinkError(_)) => {}
            Err(e) => {
                return Err(VethError::Netlink { what: format!("deleting {host_if}"), source: e });
            }
        }
    }
    Ok(())
}

/// Makes the pair and configures both ends; returns the container end's MAC. On error the
/// caller removes the host end (which removes the pair).
pub async fn create(host: &Handle, a: &Attachment) -> Result<Option<String>, VethError> {
    remove(host, &a.host_if).await?;
    let ns = File::open(&a.netns).map_err(io_err(format!("opening {}", a.netns.display())))?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(a.container_if.clone())
        .mtu(a.mtu)
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(a.host_if.clone())
        .mtu(a.mtu)
        .address(HOST_MAC.to_vec())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    host.link()
        .add(msg)
        .execute()
        .await
        .map_err(nl(format!("creating veth {} <-> {}", a.host_if, a.container_if)))?;

    let v6 = a.ips.iter().any(|ip| ip.addr().is_ipv6());
    host_sysctls(&a.host_if, v6).map_err(io_err(format!("configuring {}", a.host_if)))?;
    host.link()
        .set(LinkUnspec::new_with_name(&a.host_if).up().build())
        .execute()
        .await
        .map_err(nl(format!("setting {} up", a.host_if)))?;

    let ifname = a.container_if.clone();
    netns::run_in(&a.netns, || {
        if v6 {
            netns::sysctl(&format!("ipv6/conf/{ifname}/disable_ipv6"), "0")?;
            netns::sysctl(&format!("ipv6/conf/{ifname}/accept_dad"), "0")?;
        }
        Ok(())
    })
    .map_err(io_err(format!("configuring {} in {}", a.container_if, a.netns.display())))?;
    let inner = netns::netlink_in(&a.netns).map_err(io_err("opening netlink in the container"))?;
    let index = index_of(&inner, &a.container_if).await?.ok_or_else(|| {
        VethError::Check(format!("{} did not appear in the container", a.container_if))
    })?;
    for lo_up in ["lo", a.container_if.as_str()] {
        inner
            .link()
            .set(LinkUnspec::new_with_name(lo_up).up().build())
            .execute()
            .await
            .map_err(nl(format!("setting {lo_up} up in the container")))?;
    }
    for ip in &a.ips {
        inner
            .address()
            .add(index, ip.addr(), ip.prefix_len())
            .replace()
            .execute()
            .await
            .map_err(nl(format!("adding {ip} in the container")))?;
    }
    if a.ips.iter().any(|ip| ip.addr().is_ipv4()) {
        let link = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(GATEWAY_V4, 32)
            .output_interface(index)
            .scope(rtnetlink::packet_route::route::RouteScope::Link)
            .build();
        add_route(&inner, link, "the link route to 169.254.1.1").await?;
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(GATEWAY_V4)
            .output_interface(index)
            .build();
        add_route(&inner, default, "the IPv4 default route").await?;
    }
    if v6 {
        let default = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(GATEWAY_V6)
            .output_interface(index)
            .build();
        add_route(&inner, default, "the IPv6 default route").await?;
    }
    // Both ends know each other's MAC from the start: the container its gateway's, the host
    // each container address's.
    if a.ips.iter().any(|ip| ip.addr().is_ipv4()) {
        permanent_neighbour(&inner, index, GATEWAY_V4.into(), &HOST_MAC, "169.254.1.1").await?;
    }
    if v6 {
        permanent_neighbour(&inner, index, GATEWAY_V6.into(), &HOST_MAC, "the IPv6 gateway")
            .await?;
    }
    let mac = mac_of(&inner, index).await?;
    if let Some(mac) = &mac {
        let host_index = index_of(host, &a.host_if).await?.ok_or_else(|| {
            VethError::Check(format!("{} went away while it was set up", a.host_if))
        })?;
        for ip in &a.ips {
            permanent_neighbour(host, host_index, ip.addr(), mac, &ip.addr().to_string()).await?;
        }
    }
    Ok(mac.as_deref().map(mac_text))
}

async fn add_route(
    h: &Handle,
    msg: rtnetlink::packet_route::route::RouteMessage,
    what: &str,
) -> Result<(), VethError> {
    h.route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(nl(format!("adding {what} in the container")))
}

/// The host end's sysctls (written before it is up, so IPv6 skips DAD on its link-local).
fn host_sysctls(host_if: &str, v6: bool) -> io::Result<()> {
    netns::sysctl(&format!("ipv4/conf/{host_if}/proxy_arp"), "1")?;
    netns::sysctl(&format!("ipv4/neigh/{host_if}/proxy_delay"), "0")?;
    netns::sysctl(&format!("ipv4/conf/{host_if}/forwarding"), "1")?;
    if v6 && Path::new(&format!("/proc/sys/net/ipv6/conf/{host_if}")).exists() {
        netns::sysctl(&format!("ipv6/conf/{host_if}/disable_ipv6"), "0")?;
        netns::sysctl(&format!("ipv6/conf/{host_if}/accept_dad"), "0")?;
        netns::sysctl(&format!("ipv6/conf/{host_if}/accept_ra"), "0")?;
        netns::sysctl(&format!("ipv6/conf/{host_if}/proxy_ndp"), "1")?;
        netns::sysctl(&format!("ipv6/conf/{host_if}/forwarding"), "1")?;
    }
    Ok(())
}

/// CHECK: the host end exists with our MAC, and the container end holds every address.
pub async fn check(host: &Handle, a: &Attachment) -> Result<(), VethError> {
    if index_of(host, &a.host_if).await?.is_none() {
        return Err(VethError::Check(format!("host interface {} is missing", a.host_if)));
    }
    let inner = netns::netlink_in(&a.netns).map_err(io_err("opening netlink in the container"))?;
    let index = index_of(&inner, &a.container_if).await?.ok_or_else(|| {
        VethError::Check(format!("{} is missing in the container", a.container_if))
    })?;
    let mut have = Vec::new();
    let mut addrs = inner.address().get().set_link_index_filter(index).execute();
    while let Some(msg) = addrs.try_next().await.map_err(nl("listing container addresses"))? {
        for attr in msg.attributes {
            if let rtnetlink::packet_route::address::AddressAttribute::Address(ip) = attr {
                have.push((ip, msg.header.prefix_len));
            }
        }
    }
    for ip in &a.ips {
        if !have.contains(&(ip.addr(), ip.prefix_len())) {
            return Err(VethError::Check(format!(
                "{ip} is missing on {} in the container",
                a.container_if
            )));
        }
    }
    let mut found_default = false;
    let mut query = rtnetlink::packet_route::route::RouteMessage::default();
    query.header.address_family = rtnetlink::packet_route::AddressFamily::Inet;
    let mut routes = inner.route().get(query).execute();
    while let Some(r) = routes.try_next().await.map_err(nl("listing container routes"))? {
        let via_gateway = r.attributes.iter().any(|a| {
            matches!(a, rtnetlink::packet_route::route::RouteAttribute::Gateway(
                rtnetlink::packet_route::route::RouteAddress::Inet(g)) if *g == GATEWAY_V4)
        });
        found_default |= r.header.destination_prefix_length == 0 && via_gateway;
    }
    if a.ips.iter().any(|ip| ip.addr().is_ipv4()) && !found_default {
        return Err(VethError::Check("the container has no default route via 169.254.1.1".into()));
    }
    Ok(())
}
