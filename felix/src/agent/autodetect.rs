//! Finding this host's BGP address, as Calico's `IP_AUTODETECTION_METHOD` does:
//! `first-found` (the first global address on an interface that is not a container veth,
//! bridge or tunnel), `interface=REGEX[,REGEX]`, `skip-interface=REGEX[,REGEX]`,
//! `can-reach=DEST` (the source address the kernel would use to reach DEST) and
//! `cidr=CIDR[,CIDR]`.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;

/// Interfaces `first-found` never picks (Calico's list, plus our veths).
const SKIPPED: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^vxlan.*",
    "^wireguard.*",
    "^tart.*",
    "^br-.*",
];

/// How to find the address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    FirstFound,
    Interface(Vec<String>),
    SkipInterface(Vec<String>),
    CanReach(String),
    Cidr(Vec<IpNet>),
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        let list = |v: &str| -> Vec<String> {
            v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
        };
        let check = |pats: Vec<String>| -> Result<Vec<String>, String> {
            for p in &pats {
                regex_lite::Regex::new(p)
                    .map_err(|e| format!("{p:?} is not a regular expression: {e}"))?;
            }
            Ok(pats)
        };
        match s.split_once('=') {
            None if s.is_empty() || s == "first-found" => Ok(Method::FirstFound),
            Some(("interface", v)) => check(list(v)).map(Method::Interface),
            Some(("skip-interface", v)) => check(list(v)).map(Method::SkipInterface),
            Some(("can-reach", v)) if !v.is_empty() => Ok(Method::CanReach(v.to_string())),
            Some(("cidr", v)) => list(v)
                .iter()
                .map(|c| c.parse::<IpNet>().map_err(|e| format!("{c:?} is not a CIDR: {e}")))
                .collect::<Result<_, _>>()
                .map(Method::Cidr),
            _ => Err(format!(
                "unknown autodetection method {s:?}: use first-found, interface=REGEX, \
                 skip-interface=REGEX, can-reach=DEST or cidr=CIDR"
            )),
        }
    }
}

/// One address on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub interface: String,
    pub net: IpNet,
}

fn global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            !(a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

fn matches_any(patterns: &[&str], name: &str) -> bool {
    patterns.iter().any(|p| regex_lite::Regex::new(p).is_ok_and(|r| r.is_match(name)))
}

/// Picks an address of the family of `v6` from `candidates` (in the kernel's order).
pub fn choose(method: &Method, candidates: &[Candidate], v6: bool) -> Option<Candidate> {
    let mut usable =
        candidates.iter().filter(|c| c.net.addr().is_ipv6() == v6 && global_unicast(c.net.addr()));
    match method {
        Method::FirstFound => usable.find(|c| !matches_any(SKIPPED, &c.interface)).cloned(),
        Method::Interface(pats) => {
            let pats: Vec<&str> = pats.iter().map(String::as_str).collect();
            usable.find(|c| matches_any(&pats, &c.interface)).cloned()
        }
        Method::SkipInterface(pats) => {
            let pats: Vec<&str> =
                pats.iter().map(String::as_str).chain(SKIPPED.iter().copied()).collect();
            usable.find(|c| !matches_any(&pats, &c.interface)).cloned()
        }
        Method::Cidr(nets) => {
            usable.find(|c| nets.iter().any(|n| n.contains(&c.net.addr()))).cloned()
        }
        Method::CanReach(dest) => {
            let target = dest.parse::<IpAddr>().ok()?;
            if target.is_ipv6() != v6 {
                return None;
            }
            let bind: SocketAddr = if v6 { "[::]:0" } else { "0.0.0.0:0" }.parse().ok()?;
            let sock = UdpSocket::bind(bind).ok()?;
            sock.connect(SocketAddr::new(target, 80)).ok()?;
            let local = sock.local_addr().ok()?.ip();
            usable.find(|c| c.net.addr() == local).cloned()
        }
    }
}

/// Every address of every interface in this namespace, in the kernel's order.
pub async fn candidates(handle: &rtnetlink::Handle) -> Result<Vec<Candidate>, rtnetlink::Error> {
    let mut names = std::collections::HashMap::new();
    let mut links = handle.link().get().execute();
    while let Some(l) = links.try_next().await? {
        for a in &l.attributes {
            if let LinkAttribute::IfName(n) = a {
                names.insert(l.header.index, n.clone());
            }
        }
    }
    let mut out = Vec::new();
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await? {
        let Some(name) = names.get(&msg.header.index) else { continue };
        for a in &msg.attributes {
            if let AddressAttribute::Address(ip) = a {
                if let Ok(net) = IpNet::new(*ip, msg.header.prefix_len) {
                    out.push(Candidate { interface: name.clone(), net });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(i: &str, n: &str) -> Candidate {
        Candidate { interface: i.into(), net: n.parse().expect("net") }
    }

    #[test]
    fn methods_pick_what_calico_would() {
        let all = vec![
            c("lo", "127.0.0.1/8"),
            c("tart0123456789a", "10.9.9.9/32"),
            c("eth0", "172.20.20.3/24"),
            c("eth0", "fe80::1/64"),
            c("eth1", "10.0.1.2/24"),
            c("eth0", "fd00:20::3/64"),
        ];
        let pick =
            |m: &str, v6| choose(&m.parse().expect("method"), &all, v6).map(|c| c.net.to_string());
        assert_eq!(pick("first-found", false).as_deref(), Some("172.20.20.3/24"));
        assert_eq!(pick("first-found", true).as_deref(), Some("fd00:20::3/64"));
        assert_eq!(pick("interface=eth1", false).as_deref(), Some("10.0.1.2/24"));
        assert_eq!(pick("skip-interface=eth0", false).as_deref(), Some("10.0.1.2/24"));
        assert_eq!(pick("cidr=10.0.0.0/16", false).as_deref(), Some("10.0.1.2/24"));
        assert_eq!(pick("interface=nothing", false), None);
        assert!("bogus=1".parse::<Method>().is_err());
        assert!("interface=(".parse::<Method>().is_err());
        assert!("cidr=10.0.0.0/33".parse::<Method>().is_err());
    }
}
