//! BFD's I/O edge: a thread of its own that owns every session, the receiving sockets and one
//! sending socket per session, and sleeps in `ppoll(2)` between deadlines ([`wait`]). Nothing
//! else runs on it, so a RIB busy with a full table cannot delay a packet or a detection (BIRD
//! runs BFD in its own thread for the same reason).
//!
//! The owner talks to it through [`Bfd`]: add, change and remove sessions by peer address,
//! subscribe to state changes, read status. Packets are matched to sessions by Your
//! Discriminator once the peer knows ours, by source address before (RFC 5880 §6.3); a
//! packet whose TTL is not 255 never reaches a session (RFC 5881 §5).

pub mod socket;
mod wait;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::discriminator::Discriminators;
use crate::packet::{Packet, State};
use crate::session::{Intervals, Output, Session, Transition};

/// Why BFD could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    #[error("cannot listen on UDP {port}: {source} (is another BFD daemon running here?)", port = socket::CONTROL_PORT)]
    Listen { source: std::io::Error },
    #[error("cannot start the BFD thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Intervals(#[from] crate::session::IntervalsError),
    #[error("the BFD thread has stopped")]
    Stopped,
}

/// A state change of the session with `peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub peer: IpAddr,
    pub transition: Transition,
    /// When the change happened (for detection-to-kernel measurements).
    pub at: Instant,
}

/// A session as `show bfd peers json` shows it in FRR, with FRR's field names; intervals in
/// milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SessionStatus {
    pub peer: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<IpAddr>,
    pub id: u32,
    pub remote_id: u32,
    /// `up`, `down`, `init` or `shutdown`.
    pub status: String,
    /// Seconds in the current state (FRR's `uptime` when up, `downtime` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<u64>,
    pub diagnostic: String,
    pub remote_diagnostic: String,
    pub receive_interval: u64,
    pub transmit_interval: u64,
    pub detect_multiplier: u8,
    pub remote_receive_interval: u64,
    pub remote_transmit_interval: u64,
    pub remote_detect_multiplier: u8,
    /// What we send at after negotiation (before jitter).
    pub negotiated_transmit_interval: u64,
    /// Silence that declares the path dead, once the peer has been heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_time: Option<u64>,
    /// Times the session left Up.
    pub flaps: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Why the session cannot send (its local address is missing, say), while it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counters for the whole BFD thread.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams dropped for a TTL other than 255.
    pub bad_ttl: AtomicU64,
    /// Datagrams that did not decode (RFC 5880 §6.8.6).
    pub malformed: AtomicU64,
    /// Packets for no session of ours, or refused by the session.
    pub unmatched: AtomicU64,
}

enum Command {
    Add {
        peer: IpAddr,
        local: Option<IpAddr>,
        intervals: Intervals,
        reply: oneshot::Sender<Result<(), BfdError>>,
    },
    Remove(IpAddr),
    AdminDown(IpAddr, bool),
    Subscribe(mpsc::UnboundedSender<Event>),
    Status(oneshot::Sender<Vec<SessionStatus>>),
}

/// A handle on the BFD thread. The thread ends when the last handle is dropped, silently:
/// no AdminDown goes out, so a restarting process does not make its peers drop routes
/// (some implementations flush on AdminDown, against RFC 5882 §4.2).
#[derive(Debug, Clone)]
pub struct Bfd {
    commands: Sender<Command>,
    nudge: Arc<wait::Nudge>,
    counters: Arc<Counters>,
}

impl Bfd {
    /// Binds UDP 3784 (IPv4, and IPv6 when the kernel has it) and starts the thread.
    pub fn start() -> Result<Bfd, BfdError> {
        let v4 = socket::receiver(false).map_err(|source| BfdError::Listen { source })?;
        let v6 = match socket::receiver(true) {
            Ok(s) => Some(s),
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)) =>
            {
                None
            }
            Err(source) => return Err(BfdError::Listen { source }),
        };
        let (commands, rx) = std::sync::mpsc::channel();
        let (nudge, woken) = wait::Nudge::pair().map_err(BfdError::Thread)?;
        let counters = Arc::new(Counters::default());
        let runner = Runner::new(v4, v6, counters.clone());
        std::thread::Builder::new()
            .name("bfd".into())
            .spawn(move || {
                runner.run(&rx, &woken);
            })
            .map_err(BfdError::Thread)?;
        Ok(Bfd { commands, nudge: Arc::new(nudge), counters })
    }

    /// Starts (or reconfigures) the session with `peer`, sending from `local` when given.
    pub async fn add(
        &self,
        peer: IpAddr,
        local: Option<IpAddr>,
        intervals: Intervals,
    ) -> Result<(), BfdError> {
        intervals.validate()?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Add { peer, local, intervals, reply })?;
        rx.await.map_err(|_| BfdError::Stopped)?
    }

    /// Ends the session with `peer`, telling it AdminDown first.
    pub fn remove(&self, peer: IpAddr) -> Result<(), BfdError> {
        self.send(Command::Remove(peer))
    }

    /// Puts the session with `peer` in AdminDown (`true`) or brings it back.
    pub fn admin_down(&self, peer: IpAddr, down: bool) -> Result<(), BfdError> {
        self.send(Command::AdminDown(peer, down))
    }

    /// Every state change from now on.
    pub fn subscribe(&self) -> Result<mpsc::UnboundedReceiver<Event>, BfdError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.send(Command::Subscribe(tx))?;
        Ok(rx)
    }

    pub async fn sessions(&self) -> Result<Vec<SessionStatus>, BfdError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Status(reply))?;
        rx.await.map_err(|_| BfdError::Stopped)
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn send(&self, c: Command) -> Result<(), BfdError> {
        self.commands.send(c).map_err(|_| BfdError::Stopped)?;
        self.nudge.nudge();
        Ok(())
    }
}

struct Entry {
    session: Session,
    local: Option<IpAddr>,
    /// `None` while it cannot be opened (the local address is not there yet): the session
    /// runs, its packets are lost, and the socket is tried again each second. Non-blocking and
    /// not registered with the runtime: a full buffer loses the packet, and no readiness event
    /// follows every send (each sent packet would otherwise wake the poller again).
    socket: Option<UdpSocket>,
    socket_error: Option<String>,
    retry_at: Instant,
    packets_in: u64,
    packets_out: u64,
}

/// The shortest time between two wake-ups of the BFD thread, and how early a periodic packet
/// may go to share one (never more than a tenth of its interval; the jitter's floor rises by
/// as much, so RFC 5880's 75 % holds). Detection and a Poll's Final wait at most this long.
const BATCH: Duration = Duration::from_millis(2);

/// How often a session without a socket tries to open one.
const SOCKET_RETRY: Duration = Duration::from_secs(1);

/// When the next deadline is at most this far away, the thread sleeps to it without waking
/// for packets, which wait in the socket until then (with many sessions there is always a
/// deadline this close, so wake-ups follow the send schedule alone). Detection is not
/// delayed: the sockets are read before any deadline is acted on.
const PACKET_DELAY: Duration = Duration::from_millis(5);

/// The longest sleep: a dropped last handle ends the thread within this.
const IDLE: Duration = Duration::from_secs(1);

/// A sending socket for `peer` from the next free source port.
fn open_sender(
    peer: IpAddr,
    local: Option<IpAddr>,
    next_port: &mut u16,
) -> std::io::Result<UdpSocket> {
    let sock = socket::sender(peer, local, *next_port)?;
    if let Ok(a) = sock.local_addr() {
        *next_port = a.port().checked_add(1).unwrap_or(*socket::SOURCE_PORTS.start());
    }
    Ok(sock)
}

impl Entry {
    /// Sends `p`, opening the socket first if it is missing and a retry is due.
    fn send(&mut self, peer: IpAddr, p: &Packet, next_port: &mut u16, now: Instant) {
        if self.socket.is_none() && now >= self.retry_at {
            match open_sender(peer, self.local, next_port) {
                Ok(s) => {
                    if self.socket_error.take().is_some() {
                        info!(%peer, "BFD socket open");
                    }
                    self.socket = Some(s);
                }
                Err(e) => {
                    let e = e.to_string();
                    if self.socket_error.as_ref() != Some(&e) {
                        warn!(%peer, local = ?self.local, "cannot open the BFD socket: {e}; trying again each second");
                    }
                    self.socket_error = Some(e);
                    self.retry_at = now + SOCKET_RETRY;
                }
            }
        }
        let Some(sock) = &self.socket else { return };
        // A full socket buffer loses this packet; BFD tolerates loss by design. A connected
        // socket reports an earlier ICMP unreachable on the next send, without sending: once
        // more, then (the peer not listening yet, say).
        let bytes = p.encode();
        let sent = match sock.send(&bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => sock.send(&bytes),
            other => other,
        };
        match sent {
            Ok(_) => self.packets_out += 1,
            Err(err) => debug!("BFD send to {peer}: {err}"),
        }
    }
}

struct Runner {
    v4: UdpSocket,
    v6: Option<UdpSocket>,
    sessions: HashMap<IpAddr, Entry>,
    by_disc: HashMap<u32, IpAddr>,
    discriminators: Discriminators,
    subscribers: Vec<mpsc::UnboundedSender<Event>>,
    counters: Arc<Counters>,
    next_port: u16,
    seed: u64,
}

impl Runner {
    fn new(v4: UdpSocket, v6: Option<UdpSocket>, counters: Arc<Counters>) -> Runner {
        let mut discriminators = Discriminators::default();
        let seed = u64::from(discriminators.allocate()) << 32 | u64::from(std::process::id());
        Runner {
            v4,
            v6,
            sessions: HashMap::new(),
            by_disc: HashMap::new(),
            discriminators,
            subscribers: Vec::new(),
            counters,
            next_port: socket::SOURCE_PORTS.start() + (seed % 16384) as u16,
            seed,
        }
    }

    /// Until the last handle is dropped.
    fn run(mut self, commands: &Receiver<Command>, woken: &UnixDatagram) {
        let mut buf = [0u8; 512];
        let mut fds = vec![woken.as_raw_fd(), self.v4.as_raw_fd()];
        fds.extend(self.v6.as_ref().map(AsRawFd::as_raw_fd));
        let mut woke = Instant::now();
        loop {
            loop {
                match commands.try_recv() {
                    Ok(c) => self.command(c),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            let deadline = self.sessions.values().filter_map(|e| e.session.deadline()).min();
            // At most one wake-up per BATCH: with many sessions, packets are read and sent in
            // groups (at 100 sessions x 100 ms, a few per wake-up instead of one).
            let until = deadline.unwrap_or(now + IDLE).min(now + IDLE).max(woke + BATCH);
            let timeout = until.saturating_duration_since(now);
            let watched = if timeout <= PACKET_DELAY { &fds[..1] } else { &fds[..] };
            let everything = u8::MAX;
            let mut ready = wait::wait(watched, timeout).unwrap_or_else(|e| {
                // ppoll fails only without memory: look at everything, as after a timeout.
                warn!("BFD cannot wait for packets: {e}");
                std::thread::sleep(BATCH);
                everything
            });
            if ready & 1 != 0 {
                wait::drain_nudges(woken);
            }
            if watched.len() < fds.len() {
                // Slept past the sockets: one look at all of them (cheaper than a read each).
                let sockets = wait::wait(&fds[1..], Duration::ZERO).unwrap_or(everything);
                ready = (ready & 1) | sockets << 1;
            }
            woke = Instant::now();
            if ready & 0b10 != 0 {
                self.drain(false, &mut buf);
            }
            if ready & 0b100 != 0 {
                self.drain(true, &mut buf);
            }
            self.tick(woke);
        }
    }

    fn drain(&mut self, v6: bool, buf: &mut [u8]) {
        loop {
            let sock = if v6 { self.v6.as_ref() } else { Some(&self.v4) };
            let Some(sock) = sock else { return };
            match socket::recv_with_ttl(sock.as_raw_fd(), buf) {
                Ok((n, from, ttl)) => self.datagram(&buf[..n.min(buf.len())], from, ttl),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!("BFD receive: {e}");
                    return;
                }
            }
        }
    }

    fn datagram(&mut self, b: &[u8], from: SocketAddr, ttl: Option<u8>) {
        if ttl != Some(socket::TTL) {
            self.counters.bad_ttl.fetch_add(1, Ordering::Relaxed);
            debug!("BFD packet from {from} with TTL {ttl:?} dropped (RFC 5881 §5 wants 255)");
            return;
        }
        let p = match Packet::decode(b) {
            Ok(p) => p,
            Err(e) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                debug!("BFD packet from {from} discarded: {e}");
                return;
            }
        };
        let source = canonical(from.ip());
        let peer = if p.your_disc != 0 {
            self.by_disc.get(&p.your_disc).copied().filter(|peer| *peer == source)
        } else {
            self.sessions.contains_key(&source).then_some(source)
        };
        let Some(peer) = peer else {
            self.counters.unmatched.fetch_add(1, Ordering::Relaxed);
            debug!(
                "BFD packet from {from} for no session of ours (your discriminator {:#x})",
                p.your_disc
            );
            return;
        };
        let now = Instant::now();
        let Some(e) = self.sessions.get_mut(&peer) else { return };
        match e.session.receive(&p, now) {
            Ok(out) => {
                e.packets_in += 1;
                self.outputs(peer, out, now);
            }
            Err(d) => {
                self.counters.unmatched.fetch_add(1, Ordering::Relaxed);
                debug!("BFD packet from {from} discarded: {d}");
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        for (peer, e) in &mut self.sessions {
            if e.session.deadline().is_some_and(|d| d <= now + BATCH) {
                let out = e.session.poll(now);
                emit(*peer, e, out, &mut self.next_port, &mut self.subscribers, now);
            }
        }
    }

    fn outputs(&mut self, peer: IpAddr, out: Vec<Output>, now: Instant) {
        if let Some(e) = self.sessions.get_mut(&peer) {
            emit(peer, e, out, &mut self.next_port, &mut self.subscribers, now);
        }
    }
}

/// A session's outputs: packets sent, state changes logged and told to the subscribers.
fn emit(
    peer: IpAddr,
    e: &mut Entry,
    out: Vec<Output>,
    next_port: &mut u16,
    subscribers: &mut Vec<mpsc::UnboundedSender<Event>>,
    now: Instant,
) {
    for o in out {
        match o {
            Output::Send(p) => e.send(peer, &p, next_port, now),
            Output::Changed(t) => {
                let note = if t.peer_restarted {
                    "; a new session at the peer, not a path failure"
                } else if t.remote_admin_down {
                    "; the peer's AdminDown, not a path failure"
                } else {
                    ""
                };
                if t.to == State::Up || t.from == State::Up {
                    info!(%peer, "BFD session {} -> {} ({}{note})", t.from, t.to, t.diag);
                } else {
                    debug!(%peer, "BFD session {} -> {} ({}{note})", t.from, t.to, t.diag);
                }
                let ev = Event { peer, transition: t, at: now };
                subscribers.retain(|s| s.send(ev).is_ok());
            }
        }
    }
}

impl Runner {
    fn command(&mut self, c: Command) {
        let now = Instant::now();
        match c {
            Command::Add { peer, local, intervals, reply } => {
                let peer = canonical(peer);
                let _ = reply.send(self.add(peer, local, intervals, now));
            }
            Command::Remove(peer) => {
                let peer = canonical(peer);
                if let Some(mut e) = self.sessions.remove(&peer) {
                    // A deconfigured session says AdminDown so the peer's clients do not act.
                    for o in e.session.admin_down(now) {
                        if let Output::Send(p) = o {
                            e.send(peer, &p, &mut self.next_port, now);
                        }
                    }
                    self.by_disc.remove(&e.session.local_disc());
                    self.discriminators.release(e.session.local_disc());
                    info!(%peer, "BFD session removed");
                }
            }
            Command::AdminDown(peer, down) => {
                let peer = canonical(peer);
                if let Some(e) = self.sessions.get_mut(&peer) {
                    let out =
                        if down { e.session.admin_down(now) } else { e.session.admin_up(now) };
                    self.outputs(peer, out, now);
                }
            }
            Command::Subscribe(tx) => self.subscribers.push(tx),
            Command::Status(reply) => {
                let _ = reply.send(self.status(now));
            }
        }
    }

    fn add(
        &mut self,
        peer: IpAddr,
        local: Option<IpAddr>,
        intervals: Intervals,
        now: Instant,
    ) -> Result<(), BfdError> {
        if let Some(e) = self.sessions.get_mut(&peer) {
            if e.local == local {
                let out = e.session.set_intervals(intervals, now);
                self.outputs(peer, out, now);
                return Ok(());
            }
            // A new local address needs a new socket: start the session over.
            if let Some(old) = self.sessions.remove(&peer) {
                self.by_disc.remove(&old.session.local_disc());
                self.discriminators.release(old.session.local_disc());
            }
        }
        let (socket, socket_error) = match open_sender(peer, local, &mut self.next_port) {
            Ok(s) => (Some(s), None),
            Err(e) => {
                warn!(%peer, ?local, "cannot open the BFD socket: {e}; trying again each second");
                (None, Some(e.to_string()))
            }
        };
        let disc = self.discriminators.allocate();
        self.seed = self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(u64::from(disc));
        let mut session = Session::new(disc, intervals, self.seed, now);
        session.set_send_slack(BATCH);
        self.by_disc.insert(disc, peer);
        let entry = Entry {
            session,
            local,
            socket,
            socket_error,
            retry_at: now + SOCKET_RETRY,
            packets_in: 0,
            packets_out: 0,
        };
        self.sessions.insert(peer, entry);
        info!(%peer, "BFD session added: {} ms x {}", intervals.min_tx.as_millis(), intervals.multiplier);
        Ok(())
    }

    fn status(&self, now: Instant) -> Vec<SessionStatus> {
        let mut v: Vec<SessionStatus> = self
            .sessions
            .iter()
            .map(|(peer, e)| {
                let s = e.session.snapshot();
                let age = now.saturating_duration_since(s.since).as_secs();
                let up = s.state == State::Up;
                SessionStatus {
                    peer: *peer,
                    local: e.local,
                    id: s.local_disc,
                    remote_id: s.remote_disc,
                    status: s.state.name().to_string(),
                    uptime: up.then_some(age),
                    downtime: (!up).then_some(age),
                    diagnostic: s.local_diag.name().to_string(),
                    remote_diagnostic: s.remote_diag.name().to_string(),
                    receive_interval: millis(s.rx_interval),
                    transmit_interval: millis(s.configured.min_tx),
                    detect_multiplier: s.configured.multiplier,
                    remote_receive_interval: millis(s.remote_min_rx),
                    remote_transmit_interval: millis(s.remote_min_tx),
                    remote_detect_multiplier: s.remote_multiplier,
                    negotiated_transmit_interval: millis(s.tx_interval),
                    detection_time: s.detection_time.map(millis),
                    flaps: s.flaps,
                    packets_in: e.packets_in,
                    packets_out: e.packets_out,
                    error: e.socket_error.clone(),
                }
            })
            .collect();
        v.sort_by_key(|s| s.peer);
        v
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}
