//! Wiring over netlink: loopbacks up, the management bridge in the lab's private namespace with
//! an `eth0` veth into every node, and one veth pair per link with the file's interface names,
//! MTU and MACs, created directly in the two nodes' namespaces (never in the machine's own).
//!
//! Each namespace gets its own rtnetlink socket, opened by a short-lived thread that joins the
//! namespace; the socket stays bound to it. A current-thread tokio runtime drives them all.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use ipnet::IpNet;
use nix::sched::{CloneFlags, setns};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::error::{LabError, Result};
use crate::netns;
use crate::topology::{DEFAULT_LINK_MTU, Topology, format_mac};

/// The runtime that drives every namespace's netlink socket.
#[derive(Debug)]
pub struct Netlink {
    rt: tokio::runtime::Runtime,
}

/// A netlink socket bound to one namespace.
#[derive(Debug, Clone)]
pub struct NsHandle {
    pub netns: String,
    handle: Handle,
}

impl Netlink {
    pub fn new() -> Result<Netlink> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(LabError::io("starting the netlink runtime"))?;
        Ok(Netlink { rt })
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Opens a netlink socket inside the named network namespace.
    pub fn open(&self, name: &str) -> Result<NsHandle> {
        let path = netns::path(name);
        let rt = self.rt.handle().clone();
        let opened = std::thread::scope(|s| {
            s.spawn(|| -> Result<_> {
                let f = File::open(&path)
                    .map_err(LabError::io(format!("opening {}", path.display())))?;
                setns(&f, CloneFlags::CLONE_NEWNET)
                    .map_err(LabError::sys(format!("joining {name}")))?;
                let _guard = rt.enter();
                let (conn, handle, _) = rtnetlink::new_connection()
                    .map_err(LabError::io(format!("opening netlink in {name}")))?;
                Ok((conn, handle))
            })
            .join()
        });
        let (conn, handle) = opened.map_err(|_| LabError::Io {
            what: format!("opening netlink in {name}"),
            source: std::io::Error::other("the helper thread panicked"),
        })??;
        self.rt.spawn(conn);
        Ok(NsHandle { netns: name.to_string(), handle })
    }
}

impl NsHandle {
    fn what(&self, action: impl std::fmt::Display) -> String {
        format!("{action} in {}", self.netns)
    }

    pub async fn index(&self, link: &str) -> Result<u32> {
        let mut links = self.handle.link().get().match_name(link.to_string()).execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(msg.header.index),
            Ok(None) => Err(LabError::Io {
                what: self.what(format!("finding {link}")),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such interface"),
            }),
            Err(e) => {
                Err(LabError::Netlink { what: self.what(format!("finding {link}")), source: e })
            }
        }
    }

    pub async fn up(&self, link: &str) -> Result<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_name(link).up().build())
            .execute()
            .await
            .map_err(LabError::netlink(self.what(format!("setting {link} up"))))
    }

    /// Creates a veth pair: `name` here, `peer` in `peer_ns` (or here when `None`).
    pub async fn add_veth(
        &self,
        name: &str,
        mac: [u8; 6],
        peer: &str,
        peer_mac: [u8; 6],
        peer_ns: Option<&File>,
        mtu: u32,
    ) -> Result<()> {
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .mtu(mtu)
            .address(peer_mac.to_vec());
        if let Some(ns) = peer_ns {
            peer_msg = peer_msg.setns_by_fd(ns.as_raw_fd());
        }
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .mtu(mtu)
            .address(mac.to_vec())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(LabError::netlink(self.what(format!("creating veth {name} <-> {peer}"))))
    }

    pub async fn add_bridge(&self, name: &str, mtu: u32) -> Result<()> {
        self.handle
            .link()
            .add(LinkBridge::new(name).mtu(mtu).up().build())
            .execute()
            .await
            .map_err(LabError::netlink(self.what(format!("creating bridge {name}"))))
    }

    /// Attaches `link` to `bridge`, labels it with `alias`, and sets it up.
    pub async fn enslave(&self, link: &str, bridge: &str, alias: &str) -> Result<()> {
        let bridge_index = self.index(bridge).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_name(link).controller(bridge_index).alias(alias).up().build())
            .execute()
            .await
            .map_err(LabError::netlink(self.what(format!("attaching {link} to {bridge}"))))
    }

    pub async fn add_address(&self, link: &str, net: IpNet) -> Result<()> {
        let index = self.index(link).await?;
        self.handle
            .address()
            .add(index, net.addr(), net.prefix_len())
            .execute()
            .await
            .map_err(LabError::netlink(self.what(format!("adding {net} to {link}"))))
    }

    pub async fn add_default_route(&self, gateway: IpAddr) -> Result<()> {
        let msg = match gateway {
            IpAddr::V4(gw) => RouteMessageBuilder::<std::net::Ipv4Addr>::new().gateway(gw).build(),
            IpAddr::V6(gw) => RouteMessageBuilder::<std::net::Ipv6Addr>::new().gateway(gw).build(),
        };
        self.handle
            .route()
            .add(msg)
            .execute()
            .await
            .map_err(LabError::netlink(self.what(format!("adding default route via {gateway}"))))
    }
}

/// Runs `f` on a thread that has joined the named network namespace (for per-namespace
/// `/proc/sys/net` writes outside any node).
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> std::io::Result<T> + Send) -> Result<T> {
    tartan_felix::netns::run_in(&netns::path(name), f)
        .map_err(LabError::io(format!("configuring {name}")))
}

/// MAC addresses for every interface: the file's own, else containerlab's OUI `aa:c1:ab` with
/// three bytes derived from the lab, node and interface names (stable across redeploys),
/// unique within the lab.
pub fn assign_macs(topo: &Topology) -> BTreeMap<(String, String), [u8; 6]> {
    let mut macs = BTreeMap::new();
    let mut used: Vec<[u8; 6]> =
        topo.links.iter().flat_map(|l| l.endpoints.iter().filter_map(|e| e.mac)).collect();
    for ep in topo.links.iter().flat_map(|l| l.endpoints.iter()) {
        let mac = ep.mac.unwrap_or_else(|| {
            let mut h = fnv1a(format!("{}/{}/{}", topo.name, ep.node, ep.interface).as_bytes());
            loop {
                let mac = [0xaa, 0xc1, 0xab, (h >> 16) as u8, (h >> 8) as u8, h as u8];
                if !used.contains(&mac) {
                    used.push(mac);
                    break mac;
                }
                h = h.wrapping_add(1);
            }
        });
        macs.insert((ep.node.clone(), ep.interface.clone()), mac);
    }
    macs
}

/// A MAC for a node's management `eth0` (and its bridge port, with the last bit of the first
/// byte pattern changed), from the same OUI.
fn mgmt_mac(lab: &str, node: &str, bridge_side: bool) -> [u8; 6] {
    let h = fnv1a(format!("{lab}/{node}/eth0/{bridge_side}").as_bytes());
    [0xaa, 0xc1, if bridge_side { 0xac } else { 0xab }, (h >> 16) as u8, (h >> 8) as u8, h as u8]
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// Wires a lab whose namespaces exist: loopbacks, management network, `kind: bridge`
/// segments, links.
pub fn wire(topo: &Topology) -> Result<()> {
    let nl = Netlink::new()?;
    let lab_ns = topo.mgmt_netns();
    // Where each end lives: a node's own namespace, or the lab's for a bridge's ports.
    let ns_of = |name: &str| -> String {
        match topo.nodes.iter().find(|n| n.name == name) {
            Some(n) => n.long_name.clone(),
            None => lab_ns.clone(),
        }
    };
    let mut handles = BTreeMap::new();
    for node in &topo.nodes {
        handles.insert(node.name.clone(), nl.open(&node.long_name)?);
    }
    for bridge in &topo.bridges {
        handles.insert(bridge.clone(), nl.open(&lab_ns)?);
    }
    nl.block_on(async {
        for node in &topo.nodes {
            handles[&node.name].up("lo").await?;
        }
        Ok::<(), LabError>(())
    })?;

    if topo.nodes.iter().any(|n| n.mgmt.is_some()) {
        wire_mgmt(&nl, topo, &handles)?;
    }
    if let Some(first) = topo.bridges.first() {
        switch_only(&lab_ns)?;
        let h = &handles[first];
        nl.block_on(async {
            h.up("lo").await?;
            for bridge in &topo.bridges {
                h.add_bridge(bridge, DEFAULT_LINK_MTU).await?;
            }
            Ok::<(), LabError>(())
        })?;
    }

    let macs = assign_macs(topo);
    let mut files: BTreeMap<String, File> = BTreeMap::new();
    for name in
        topo.nodes.iter().map(|n| n.name.as_str()).chain(topo.bridges.iter().map(String::as_str))
    {
        files.insert(name.to_string(), netns::open(&ns_of(name))?);
    }
    let is_bridge = |n: &str| topo.bridges.iter().any(|b| b == n);
    nl.block_on(async {
        for link in &topo.links {
            let [a, z] = &link.endpoints;
            let (ha, hz) = (&handles[&a.node], &handles[&z.node]);
            let peer_ns = (ns_of(&a.node) != ns_of(&z.node)).then(|| &files[&z.node]);
            let mac = |n: &str, i: &str| macs.get(&(n.to_string(), i.to_string())).copied().unwrap_or_default();
            ha.add_veth(&a.interface, mac(&a.node, &a.interface), &z.interface, mac(&z.node, &z.interface), peer_ns, link.mtu)
                .await?;
            for (h, end, other) in [(ha, a, z), (hz, z, a)] {
                if is_bridge(&end.node) {
                    let alias = format!("{}:{}", other.node, other.interface);
                    h.enslave(&end.interface, &end.node, &alias).await?;
                } else {
                    h.up(&end.interface).await?;
                }
            }
            tracing::debug!(link = %link.describe(), mtu = link.mtu, mac_a = %format_mac(&mac(&a.node, &a.interface)), "link up");
        }
        Ok(())
    })
}

/// A namespace that switches frames (the lab's): it must never route between them.
fn switch_only(ns: &str) -> Result<()> {
    in_netns(ns, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "0")?;
        if std::path::Path::new("/proc/sys/net/ipv6/conf/all/forwarding").exists() {
            std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "0")?;
        }
        Ok(())
    })
}

/// The management bridge in the lab's private namespace, and `eth0` in every node on it.
fn wire_mgmt(nl: &Netlink, topo: &Topology, nodes: &BTreeMap<String, NsHandle>) -> Result<()> {
    let mgmt_ns = topo.mgmt_netns();
    let h = nl.open(&mgmt_ns)?;
    let m = &topo.mgmt;
    switch_only(&mgmt_ns)?;
    let ns_file = |n: &str| netns::open(n);
    nl.block_on(async {
        h.up("lo").await?;
        h.add_bridge(&m.bridge, m.mtu).await?;
        h.add_address(
            &m.bridge,
            IpNet::new(IpAddr::V4(m.ipv4_gw), m.ipv4_subnet.prefix_len())
                .unwrap_or_else(|_| m.ipv4_subnet.into()),
        )
        .await?;
        if let (Some(gw), Some(net)) = (m.ipv6_gw, m.ipv6_subnet) {
            h.add_address(
                &m.bridge,
                IpNet::new(IpAddr::V6(gw), net.prefix_len()).unwrap_or_else(|_| net.into()),
            )
            .await?;
        }
        for node in topo.nodes.iter().filter(|n| n.mgmt.is_some()) {
            let Some(addrs) = &node.mgmt else { continue };
            let port = format!("mgmt{}", node.index);
            let file = ns_file(&node.long_name)?;
            let mac = mgmt_mac(&topo.name, &node.name, true);
            h.add_veth(
                &port,
                mac,
                "eth0",
                mgmt_mac(&topo.name, &node.name, false),
                Some(&file),
                m.mtu,
            )
            .await?;
            h.enslave(&port, &m.bridge, &node.name).await?;
            let nh = &nodes[&node.name];
            nh.up("eth0").await?;
            nh.add_address("eth0", addrs.ipv4.into()).await?;
            nh.add_default_route(IpAddr::V4(m.ipv4_gw)).await?;
            if let (Some(v6), Some(gw)) = (addrs.ipv6, m.ipv6_gw) {
                nh.add_address("eth0", v6.into()).await?;
                nh.add_default_route(IpAddr::V6(gw)).await?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_macs_are_unicast_local_oui_and_unique() {
        let text = "name: m\ntopology:\n  defaults: {kind: linux, image: x}\n  nodes: {a: {}, b: {}}\n  links:\n    - endpoints: [\"a:e1\", \"b:e1\"]\n    - endpoints: [\"a:e2\", \"b:e2\"]\n";
        let opts = crate::topology::LoadOptions { skip_file_checks: true, ..Default::default() };
        let topo =
            crate::topology::parse(text, std::path::Path::new("/x.yml"), &opts).expect("parses");
        let macs = assign_macs(&topo);
        assert_eq!(macs.len(), 4);
        let mut all: Vec<_> = macs.values().collect();
        assert!(all.iter().all(|m| m[..3] == [0xaa, 0xc1, 0xab]));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4);
        // stable across runs
        assert_eq!(assign_macs(&topo), macs);
    }
}
