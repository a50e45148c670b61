//! Sockets: listening and connecting, TCP-MD5 signatures (RFC 2385) on both, and the local
//! interface addresses a session's next hops come from.
//!
//! The kernel does TCP-MD5: a key is attached to a socket for a peer address (or, with
//! `TCP_MD5SIG_EXT`, a prefix — dynamic peers), and from then on every segment to and from
//! that address is signed and checked. On a listening socket the keys must be in place before
//! the peer's SYN arrives, so they are set when a peer is configured, not when it connects.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// `struct tcp_md5sig` of `linux/tcp.h`.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; 80],
}

const TCP_MD5SIG_FLAG_PREFIX: u8 = 1;

/// Why a key could not be set.
#[derive(Debug, thiserror::Error)]
pub enum Md5Error {
    #[error("TCP-MD5 password is {0} octets; the kernel takes at most 80")]
    TooLong(usize),
    #[error(
        "setting the TCP-MD5 key for {peer}: {source} (is the kernel built with CONFIG_TCP_MD5SIG?)"
    )]
    Kernel { peer: String, source: io::Error },
}

/// Sets (or with `key` empty, removes) the TCP-MD5 key for `peer` — one address, or every
/// address of `peer/prefix_len` — on a socket of family `v6_socket`.
pub fn set_md5(
    fd: RawFd,
    v6_socket: bool,
    peer: IpAddr,
    prefix_len: Option<u8>,
    key: &[u8],
) -> Result<(), Md5Error> {
    if key.len() > 80 {
        return Err(Md5Error::TooLong(key.len()));
    }
    // SAFETY: all-zero is a valid value of this plain C struct.
    #[allow(unsafe_code)]
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    write_sockaddr(&mut sig.addr, peer, v6_socket);
    sig.key_len = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    let option = match prefix_len {
        Some(len) => {
            sig.flags = TCP_MD5SIG_FLAG_PREFIX;
            // A v4 prefix on a v6 socket is matched as v4-mapped: 96 more bits.
            sig.prefix_len = if v6_socket && peer.is_ipv4() { len + 96 } else { len };
            libc::TCP_MD5SIG_EXT
        }
        None => libc::TCP_MD5SIG,
    };
    // SAFETY: `sig` is a valid `struct tcp_md5sig` that outlives the call, and its size is
    // passed with it.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            option,
            (&raw const sig).cast(),
            size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Md5Error::Kernel {
            peer: peer.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Writes `a` into a `sockaddr_storage`, as a v4-mapped IPv6 address on an IPv6 socket.
fn write_sockaddr(storage: &mut libc::sockaddr_storage, a: IpAddr, v6_socket: bool) {
    let a = match (a, v6_socket) {
        (IpAddr::V4(v4), true) => IpAddr::V6(v4.to_ipv6_mapped()),
        (a, _) => a,
    };
    match a {
        IpAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: u32::from(v4).to_be() },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin)
            };
        }
        IpAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin6)
            };
        }
    }
}

/// Binds a listening socket. An unspecified IPv6 address listens on IPv4 too.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => {
            let s = TcpSocket::new_v6()?;
            set_v6only(s.as_raw_fd(), false)?;
            s
        }
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn set_v6only(fd: RawFd, on: bool) -> io::Result<()> {
    let v: libc::c_int = on.into();
    // SAFETY: an int option with its size.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// What a connection attempt needs.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub peer: SocketAddr,
    pub local: Option<IpAddr>,
    /// Interface for a link-local peer.
    pub interface: Option<String>,
    pub password: Option<String>,
}

/// Opens a connection to a peer, signed if there is a password.
pub async fn connect(o: &ConnectOptions) -> io::Result<TcpStream> {
    let mut peer = o.peer;
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(name) = &o.interface {
        socket.bind_device(Some(name.as_bytes()))?;
        if let SocketAddr::V6(v6) = &mut peer {
            if v6.scope_id() == 0 {
                v6.set_scope_id(interface_index(name)?);
            }
        }
    }
    if let Some(key) = &o.password {
        set_md5(socket.as_raw_fd(), peer.is_ipv6(), peer.ip(), None, key.as_bytes())
            .map_err(io::Error::other)?;
    }
    if let Some(local) = o.local {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    let stream = socket.connect(peer).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn interface_index(name: &str) -> io::Result<u32> {
    let path = format!("/sys/class/net/{name}/ifindex");
    std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("no interface named {name}"))
    })
}

/// An address of an interface of this network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub interface: String,
    pub addr: IpAddr,
    /// The length of the subnet's prefix (32 or 128 without a netmask).
    pub prefix_len: u8,
}

impl InterfaceAddress {
    /// `a` is on this address's subnet: directly connected (a point-to-point /32 holds only
    /// itself).
    pub fn on_link(&self, a: IpAddr) -> bool {
        let len = u32::from(self.prefix_len);
        match (self.addr, a) {
            (IpAddr::V4(x), IpAddr::V4(y)) => {
                let mask = u32::MAX.checked_shl(32 - len.min(32)).unwrap_or(0);
                u32::from(x) & mask == u32::from(y) & mask
            }
            (IpAddr::V6(x), IpAddr::V6(y)) => {
                let mask = u128::MAX.checked_shl(128 - len.min(128)).unwrap_or(0);
                u128::from(x) & mask == u128::from(y) & mask
            }
            _ => false,
        }
    }
}

/// The prefix length a netmask holds (its leading ones).
fn mask_len(mask: &[u8]) -> u8 {
    mask.iter().map(|b| b.leading_ones()).take_while(|n| *n > 0).sum::<u32>() as u8
}

/// Every address of every interface (getifaddrs(3)).
pub fn interface_addresses() -> Vec<InterfaceAddress> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let ifa = &*p;
            p = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            let family = i32::from((*ifa.ifa_addr).sa_family);
            let has_mask = !ifa.ifa_netmask.is_null();
            let (addr, prefix_len) = match family {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let len = if has_mask {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        mask_len(&m.sin_addr.s_addr.to_ne_bytes())
                    } else {
                        32
                    };
                    (IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))), len)
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let len = if has_mask {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        mask_len(&m.sin6_addr.s6_addr)
                    } else {
                        128
                    };
                    (IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)), len)
                }
                _ => continue,
            };
            out.push(InterfaceAddress { interface: name, addr, prefix_len });
        }
        libc::freeifaddrs(head);
    }
    out
}

/// Our addresses for `next hop self` on a session whose local end is `local`: that address,
/// and from the same interface an address of the other family and the IPv6 link-local one.
pub fn local_next_hops(
    local: IpAddr,
    all: &[InterfaceAddress],
) -> (Option<Ipv4Addr>, Option<Ipv6Addr>, Option<Ipv6Addr>) {
    let local = match local {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        a => a,
    };
    let interface = all.iter().find(|a| a.addr == local).map(|a| a.interface.as_str());
    let on_interface = |a: &&InterfaceAddress| Some(a.interface.as_str()) == interface;
    let mut v4 = None;
    let mut v6 = None;
    let mut ll = None;
    match local {
        IpAddr::V4(a) => v4 = Some(a),
        IpAddr::V6(a) if is_link_local(a) => ll = Some(a),
        IpAddr::V6(a) => v6 = Some(a),
    }
    for a in all.iter().filter(on_interface) {
        match a.addr {
            IpAddr::V4(x) if v4.is_none() => v4 = Some(x),
            IpAddr::V6(x) if is_link_local(x) && ll.is_none() => ll = Some(x),
            IpAddr::V6(x) if !is_link_local(x) && !x.is_loopback() && v6.is_none() => v6 = Some(x),
            _ => {}
        }
    }
    (v4, v6, ll)
}

fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// A v4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        a => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ia(interface: &str, addr: &str) -> InterfaceAddress {
        InterfaceAddress {
            interface: interface.into(),
            addr: addr.parse().expect("addr"),
            prefix_len: 24,
        }
    }

    #[test]
    fn a_peer_on_an_interfaces_subnet_is_on_link() {
        let a = |s: &str| s.parse::<IpAddr>().expect("addr");
        let p2p =
            InterfaceAddress { interface: "eth1".into(), addr: a("10.1.1.2"), prefix_len: 30 };
        assert!(p2p.on_link(a("10.1.1.1")));
        assert!(!p2p.on_link(a("10.1.1.5")));
        assert!(!p2p.on_link(a("fd00::1")));
        let host = InterfaceAddress { prefix_len: 32, ..p2p.clone() };
        assert!(!host.on_link(a("10.1.1.1")));
        let v6 =
            InterfaceAddress { interface: "eth1".into(), addr: a("fd00:1::2"), prefix_len: 64 };
        assert!(v6.on_link(a("fd00:1::1")));
        assert!(!v6.on_link(a("fd00:2::1")));
        assert_eq!(mask_len(&[255, 255, 255, 252]), 30);
        assert_eq!(mask_len(&[0, 0, 0, 0]), 0);
    }

    #[test]
    fn this_machine_reports_the_loopback_subnet() {
        let lo = interface_addresses()
            .into_iter()
            .find(|i| i.addr == IpAddr::V4(Ipv4Addr::LOCALHOST))
            .expect("127.0.0.1 on lo");
        assert_eq!(lo.prefix_len, 8);
    }

    #[test]
    fn next_hops_come_from_the_interface_of_the_session() {
        let all = vec![
            ia("lo", "127.0.0.1"),
            ia("eth0", "192.0.2.1"),
            ia("eth1", "198.51.100.1"),
            ia("eth1", "2001:db8:1::1"),
            ia("eth1", "fe80::1"),
            ia("eth0", "fe80::2"),
        ];
        let got = local_next_hops("198.51.100.1".parse().expect("addr"), &all);
        assert_eq!(
            got,
            (
                Some("198.51.100.1".parse().expect("addr")),
                Some("2001:db8:1::1".parse().expect("addr")),
                Some("fe80::1".parse().expect("addr"))
            )
        );
        let mapped = local_next_hops("::ffff:192.0.2.1".parse().expect("addr"), &all);
        assert_eq!(mapped.0, Some("192.0.2.1".parse().expect("addr")));
        assert_eq!(mapped.2, Some("fe80::2".parse().expect("addr")));
    }

    #[test]
    fn this_machine_has_a_loopback_address() {
        let all = interface_addresses();
        assert!(all.iter().any(|a| a.addr == IpAddr::V4(Ipv4Addr::LOCALHOST)), "{all:?}");
    }

    #[test]
    fn an_md5_key_longer_than_the_kernel_takes_is_refused() {
        let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let err = set_md5(s.as_raw_fd(), false, IpAddr::V4(Ipv4Addr::LOCALHOST), None, &[b'x'; 81]);
        assert!(matches!(err, Err(Md5Error::TooLong(81))));
        set_md5(s.as_raw_fd(), false, IpAddr::V4(Ipv4Addr::LOCALHOST), None, b"secret")
            .expect("kernel takes it");
    }
}
