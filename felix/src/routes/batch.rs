//! Route and nexthop requests in bulk over a raw netlink socket: many requests per `sendmsg`,
//! no acknowledgement asked except of the last of each chunk (the kernel still reports every
//! error, and handles a socket's requests in order, so the last one's acknowledgement means the
//! chunk is done); dumps of routes and nexthop objects, and route lookups, parsed straight from
//! the socket's buffers ([`super::wire`] has the bytes). This is what makes writing 10,000
//! routes cost a fraction of `ip -batch`.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;

use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

pub use super::wire::Op;
use super::wire::{self, NexthopObject, Request, RouteEntry};

/// How long a reply may take: the kernel answers at once, so a longer wait means a lost reply,
/// and an error is better than an agent blocked for good.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a dump is read again when the table changed while it was read.
const DUMP_ATTEMPTS: usize = 5;

/// Requests per `sendmsg` (and per acknowledgement). Small enough that a chunk whose every
/// request fails fits its error replies in the socket's receive buffer.
const CHUNK: usize = 256;

/// A raw rtnetlink socket, bound in one namespace.
#[derive(Debug)]
pub struct RawRoutes {
    socket: Socket,
    seq: u32,
}

/// What happened to one request of a batch: `Err` holds the kernel's errno (negative).
pub type Outcome = Result<(), i32>;

impl RawRoutes {
    /// A socket in the namespace at `ns`, or in our own with `None`.
    pub fn open(ns: Option<&Path>) -> io::Result<RawRoutes> {
        let make = || -> io::Result<Socket> {
            let mut socket = Socket::new(NETLINK_ROUTE)?;
            socket.bind_auto()?;
            socket.connect(&SocketAddr::new(0, 0))?;
            // Errors without the request echoed back, and room for a chunk's worth of them.
            let _ = socket.set_cap_ack(true);
            let _ = socket.set_ext_ack(false);
            let _ = socket.set_rx_buf_sz(4 << 20);
            let timeout = TimeVal::new(RECEIVE_TIMEOUT.as_secs() as _, 0);
            setsockopt(&socket, ReceiveTimeout, &timeout).map_err(io::Error::from)?;
            Ok(socket)
        };
        let socket = match ns {
            Some(path) => crate::netns::run_in(path, make)?,
            None => make()?,
        };
        Ok(RawRoutes { socket, seq: 1 })
    }

    /// `n` consecutive sequence numbers; the first is returned.
    fn take_seqs(&mut self, n: usize) -> u32 {
        if self.seq.checked_add(n as u32 + 1).is_none() {
            self.seq = 1;
        }
        let first = self.seq + 1;
        self.seq += n as u32;
        first
    }

    /// Sends `requests` and returns one outcome per request, in order. A chunk whose replies
    /// cannot be read (ENOBUFS) fails alone.
    pub fn write<R: Request>(&mut self, requests: &[R]) -> io::Result<Vec<Outcome>> {
        let mut outcomes = vec![Ok(()); requests.len()];
        let mut buf = Vec::with_capacity(CHUNK.min(requests.len()) * 64);
        for (index, chunk) in requests.chunks(CHUNK).enumerate() {
            let base = index * CHUNK;
            let first = self.take_seqs(chunk.len());
            let last = first + (chunk.len() as u32 - 1);
            buf.clear();
            for (i, request) in chunk.iter().enumerate() {
                request.encode(&mut buf, first + i as u32, i + 1 == chunk.len());
            }
            self.socket.send(&buf, 0)?;
            let slots = &mut outcomes[base..base + chunk.len()];
            let received = self.receive(|seq, code| {
                if let Some(slot) = seq.checked_sub(first).and_then(|i| slots.get_mut(i as usize)) {
                    if code != 0 {
                        *slot = Err(code);
                    }
                }
                seq == last
            });
            if let Err(e) = received {
                let code = -e.raw_os_error().unwrap_or(5);
                slots.fill(Err(code));
            }
        }
        Ok(outcomes)
    }

    /// Reads one datagram whole into `buf`, growing it when the datagram is larger (a reply
    /// is never cut: an ECMP route with hundreds of paths, or a large dump message). Fails
    /// with `WouldBlock` when no reply comes within [`RECEIVE_TIMEOUT`].
    fn recv_whole(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let size =
            self.socket.recv(&mut &mut buf[..0], nix::libc::MSG_PEEK | nix::libc::MSG_TRUNC)?;
        if size > buf.len() {
            buf.resize(size, 0);
        }
        let n = self.socket.recv(&mut &mut buf[..], nix::libc::MSG_TRUNC)?;
        if n > buf.len() {
            return Err(io::Error::other(format!("a netlink reply of {n} bytes was cut")));
        }
        Ok(n)
    }

    /// Reads replies until `f` (given each error or acknowledgement's sequence number and
    /// errno) says it saw the last.
    fn receive(&mut self, mut f: impl FnMut(u32, i32) -> bool) -> io::Result<()> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self.recv_whole(&mut buf)?;
            for frame in wire::frames(&buf[..n]) {
                if frame.kind == wire::NLMSG_ERROR && f(frame.seq, frame.code().unwrap_or(-5)) {
                    return Ok(());
                }
            }
        }
    }

    /// Every nexthop object in the namespace (any protocol's). Fails with the kernel's error
    /// (EOPNOTSUPP, EINVAL) on a kernel without them.
    pub fn nexthops(&mut self) -> io::Result<Vec<NexthopObject>> {
        self.dump_of(wire::nexthop_dump, wire::RTM_NEWNEXTHOP, wire::parse_nexthop)
    }

    /// Every route of both families in the kernel's tables. One we cannot read (another
    /// family's, or malformed) is skipped.
    pub fn dump(&mut self) -> io::Result<Vec<RouteEntry>> {
        self.dump_of(wire::route_dump, wire::RTM_NEWROUTE, wire::parse_route)
    }

    /// Sends the dump request `request` writes and collects the replies of type `kind` that
    /// `parse` can read. A dump the kernel marks interrupted (the table changed while it was
    /// read) is read again, a few times, then fails with `Interrupted`.
    fn dump_of<T>(
        &mut self,
        request: fn(&mut Vec<u8>, u32),
        kind: u16,
        parse: fn(&[u8]) -> Option<T>,
    ) -> io::Result<Vec<T>> {
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.take_seqs(1);
            let mut out = Vec::new();
            request(&mut out, seq);
            self.socket.send(&out, 0)?;
            let mut items = Vec::new();
            let mut interrupted = false;
            let done = 'read: loop {
                let n = self.recv_whole(&mut buf)?;
                for frame in wire::frames(&buf[..n]).filter(|f| f.seq == seq) {
                    interrupted |= frame.flags & wire::NLM_F_DUMP_INTR != 0;
                    match frame.kind {
                        wire::NLMSG_DONE => break 'read Ok(()),
                        wire::NLMSG_ERROR => match frame.code() {
                            Some(0) => break 'read Ok(()),
                            code => {
                                break 'read Err(io::Error::from_raw_os_error(-code.unwrap_or(-5)));
                            }
                        },
                        k if k == kind => items.extend(parse(frame.body)),
                        _ => {}
                    }
                }
            };
            done?;
            if !interrupted {
                return Ok(items);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            format!("the table changed during each of {DUMP_ATTEMPTS} dumps"),
        ))
    }

    /// The subnets of every address of the namespace.
    pub fn connected(&mut self) -> io::Result<Vec<IpNet>> {
        self.dump_of(wire::address_dump, wire::RTM_NEWADDR, wire::parse_address)
    }

    /// Every interface of the namespace: index and name.
    pub fn links(&mut self) -> io::Result<Vec<(u32, String)>> {
        let request = |buf: &mut Vec<u8>, seq| wire::link_request(buf, seq, 0, None, true);
        self.dump_of(request, wire::RTM_NEWLINK, wire::parse_link)
    }

    /// One interface, by index (`name` `None`) or by name (`index` 0); `None` if there is no
    /// such interface.
    pub fn link(&mut self, index: u32, name: Option<&str>) -> io::Result<Option<(u32, String)>> {
        let seq = self.take_seqs(1);
        let mut out = Vec::new();
        wire::link_request(&mut out, seq, index, name, false);
        self.socket.send(&out, 0)?;
        let mut buf = vec![0u8; 1 << 13];
        loop {
            let n = self.recv_whole(&mut buf)?;
            for frame in wire::frames(&buf[..n]).filter(|f| f.seq == seq) {
                match frame.kind {
                    wire::RTM_NEWLINK => return Ok(wire::parse_link(frame.body)),
                    wire::NLMSG_ERROR => match frame.code() {
                        Some(c) if c == -(nix::libc::ENODEV) => return Ok(None),
                        code => return Err(io::Error::from_raw_os_error(-code.unwrap_or(-5))),
                    },
                    _ => {}
                }
            }
        }
    }

    /// The table entry the kernel would route `addr` by (`ip route get ADDR fibmatch`);
    /// `None` if nothing routes it.
    pub fn lookup(&mut self, addr: IpAddr) -> io::Result<Option<RouteEntry>> {
        let seq = self.take_seqs(1);
        let mut out = Vec::new();
        wire::route_lookup(&mut out, seq, addr);
        self.socket.send(&out, 0)?;
        let mut buf = vec![0u8; 1 << 13];
        loop {
            let n = self.recv_whole(&mut buf)?;
            for frame in wire::frames(&buf[..n]).filter(|f| f.seq == seq) {
                match frame.kind {
                    wire::RTM_NEWROUTE => return Ok(wire::parse_route(frame.body)),
                    wire::NLMSG_ERROR => return Ok(None),
                    _ => {}
                }
            }
        }
    }
}
