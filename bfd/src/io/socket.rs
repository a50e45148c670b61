//! BFD's sockets (RFC 5881): the receiving sockets on UDP 3784 that learn each packet's TTL
//! (GTSM: anything but 255 is discarded, §5), and a sending socket per session from a port
//! of its own in 49152-65535 (§4) with TTL 255.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// The single-hop control port.
pub const CONTROL_PORT: u16 = 3784;
/// RFC 5881 §4: the source port range.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// What a single-hop packet must carry (RFC 5881 §5).
pub const TTL: u8 = 255;

fn setsockopt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed with it.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// A receiving socket on `[::]:3784` (IPv6 only) or `0.0.0.0:3784`, asking the kernel for
/// each packet's TTL or hop limit. Linux does not apply IP_MINTTL or IPV6_MINHOPCOUNT to UDP
/// (tried on 6.18: packets at TTL 64 arrive), so the check is ours, on the ancillary data.
pub fn receiver(v6: bool) -> io::Result<UdpSocket> {
    let sock = if v6 {
        bind_v6only(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CONTROL_PORT, 0, 0)))?
    } else {
        UdpSocket::bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CONTROL_PORT)))?
    };
    let fd = sock.as_raw_fd();
    if v6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    }
    sock.set_nonblocking(true)?;
    Ok(sock)
}

fn bind_v6only(addr: SocketAddr) -> io::Result<UdpSocket> {
    // std binds `[::]` dual-stack by default; the IPv4 socket takes IPv4, so this one may
    // not. The option must be set before bind, which std cannot do: make the socket by hand.
    // SAFETY: plain socket(2); the descriptor is owned by the UdpSocket below.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    #[allow(unsafe_code)]
    let sock = unsafe { <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    let SocketAddr::V6(a) = addr else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not an IPv6 address"));
    };
    // SAFETY: a zeroed sockaddr_in6 is valid; the fields are filled in below.
    #[allow(unsafe_code)]
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = a.port().to_be();
    sa.sin6_addr.s6_addr = a.ip().octets();
    sa.sin6_scope_id = a.scope_id();
    // SAFETY: `sa` is a valid sockaddr_in6 of the size given.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::bind(fd, (&raw const sa).cast(), size_of::<libc::sockaddr_in6>() as libc::socklen_t)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

/// A sending socket for the session with `peer`: bound to `local` (or any address) and a free
/// port in 49152-65535 starting from `first`, TTL 255, connected to the peer's port 3784.
pub fn sender(peer: IpAddr, local: Option<IpAddr>, first: u16) -> io::Result<UdpSocket> {
    let local = local.unwrap_or(match peer {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let start = u32::from(first.max(*SOURCE_PORTS.start()) - SOURCE_PORTS.start());
    let mut last = None;
    for i in 0..span {
        let port = *SOURCE_PORTS.start() + ((start + i) % span) as u16;
        match UdpSocket::bind(SocketAddr::new(local, port)) {
            Ok(sock) => {
                let fd = sock.as_raw_fd();
                match peer {
                    IpAddr::V4(_) => sock.set_ttl(TTL.into())?,
                    IpAddr::V6(_) => {
                        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, TTL.into())?
                    }
                }
                // Network control traffic (CS6), as routers mark BFD.
                let _ = match peer {
                    IpAddr::V4(_) => setsockopt(fd, libc::IPPROTO_IP, libc::IP_TOS, 0xc0),
                    IpAddr::V6(_) => setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, 0xc0),
                };
                sock.connect(SocketAddr::new(peer, CONTROL_PORT))?;
                sock.set_nonblocking(true)?;
                return Ok(sock);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free source port in 49152-65535")))
}

/// One datagram with its sender and the TTL (or hop limit) it arrived with.
pub fn recv_with_ttl(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    // SAFETY: every pointer handed to recvmsg points into a local that outlives the call,
    // with its true length; the control messages are read only within `controllen`.
    #[allow(unsafe_code)]
    unsafe {
        let mut name: libc::sockaddr_storage = std::mem::zeroed();
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control = [0u64; 16];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&raw mut name).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        let n = libc::recvmsg(fd, &raw mut msg, libc::MSG_DONTWAIT);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let from = match i32::from(name.ss_family) {
            libc::AF_INET => {
                let a = &*(&raw const name).cast::<libc::sockaddr_in>();
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))),
                    u16::from_be(a.sin_port),
                )
            }
            libc::AF_INET6 => {
                let a = &*(&raw const name).cast::<libc::sockaddr_in6>();
                SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                ))
            }
            f => return Err(io::Error::other(format!("datagram from address family {f}"))),
        };
        let mut ttl = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let is_ttl = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_TTL)
                || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_HOPLIMIT);
            if is_ttl {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                ttl = u8::try_from(v).ok();
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
        Ok((n as usize, from, ttl))
    }
}
