//! BFD's I/O edge: a thread of its own with a single-threaded tokio runtime that owns every
//! session, the receiving sockets and one sending socket per session. Nothing else runs on it,
//! so a RIB busy with a full table cannot delay a packet or a detection (BIRD runs BFD in its
//! own thread for the same reason).
//!
//! The owner talks to it through [`Bfd`]: add, change and remove sessions by peer address,
//! subscribe to state changes, read status. Packets are matched to sessions by Your
//! Discriminator once the peer knows ours, by source address before (RFC 5880 §6.3); a
//! packet whose TTL is not 255 never reaches a session (RFC 5881 §5).

pub mod socket;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
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
    commands: mpsc::UnboundedSender<Command>,
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
        let (commands, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BfdError::Thread)?;
        std::thread::Builder::new()
            .name("bfd".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match Runner::new(v4, v6, thread_counters) {
                        Ok(r) => r.run(rx).await,
                        Err(e) => warn!("BFD cannot run: {e}"),
                    }
                });
            })
            .map_err(BfdError::Thread)?;
        Ok(Bfd { commands, counters })
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
        self.commands.send(c).map_err(|_| BfdError::Stopped)
    }
}

struct Entry {
    session: Session,
    local: Option<IpAddr>,
    /// `None` while it cannot be opened (the local address is not there yet): the session
    /// runs, its packets are lost, and the socket is tried again each second.
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

/// A sending socket for `peer` from the next free source port.
fn open_sender(
    peer: IpAddr,
    local: Option<IpAddr>,
    next_port: &mut u16,
) -> std::io::Result<UdpSocket> {
    let std_sock = socket::sender(peer, local, *next_port)?;
    if let Ok(a) = std_sock.local_addr() {
        *next_port = a.port().checked_add(1).unwrap_or(*socket::SOURCE_PORTS.start());
    }
    UdpSocket::from_std(std_sock)
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
        // A full socket buffer loses this packet; BFD tolerates loss by design.
        match sock.try_send(&p.encode()) {
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
    fn new(
        v4: StdUdpSocket,
        v6: Option<StdUdpSocket>,
        counters: Arc<Counters>,
    ) -> std::io::Result<Runner> {
        let mut discriminators = Discriminators::default();
        let seed = u64::from(discriminators.allocate()) << 32 | u64::from(std::process::id());
        Ok(Runner {
            v4: UdpSocket::from_std(v4)?,
            v6: v6.map(UdpSocket::from_std).transpose()?,
            sessions: HashMap::new(),
            by_disc: HashMap::new(),
            discriminators,
            subscribers: Vec::new(),
            counters,
            next_port: socket::SOURCE_PORTS.start() + (seed % 16384) as u16,
            seed,
        })
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = [0u8; 512];
        loop {
            let deadline = self.sessions.values().filter_map(|e| e.session.deadline()).min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            let v6_ready = async {
                match &self.v6 {
                    Some(s) => s.readable().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = self.v4.readable() => if r.is_ok() { self.drain(false, &mut buf) },
                r = v6_ready => if r.is_ok() { self.drain(true, &mut buf) },
                () = sleep => {}
                c = commands.recv() => match c {
                    Some(c) => self.command(c),
                    None => return,
                },
            }
            let woke = Instant::now();
            // Whatever else is ready by now goes in the same wake-up.
            self.drain(false, &mut buf);
            if self.v6.is_some() {
                self.drain(true, &mut buf);
            }
            self.tick(woke);
            // At most one wake-up per BATCH: with many sessions, packets are read and sent
            // in groups (at 100 sessions x 100 ms, a few per wake-up instead of one).
            let next = woke + BATCH;
            if Instant::now() < next {
                tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
            }
        }
    }

    fn drain(&mut self, v6: bool, buf: &mut [u8]) {
        loop {
            let sock = if v6 { self.v6.as_ref() } else { Some(&self.v4) };
            let Some(sock) = sock else { return };
            let fd = sock.as_raw_fd();
            let res = sock.try_io(Interest::READABLE, || socket::recv_with_ttl(fd, buf));
            match res {
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
        let due: Vec<IpAddr> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.deadline().is_some_and(|d| d <= now + BATCH))
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            if let Some(e) = self.sessions.get_mut(&peer) {
                let out = e.session.poll(now);
                self.outputs(peer, out, now);
            }
        }
    }

    fn outputs(&mut self, peer: IpAddr, out: Vec<Output>, now: Instant) {
        let Some(e) = self.sessions.get_mut(&peer) else { return };
        for o in out {
            match o {
                Output::Send(p) => e.send(peer, &p, &mut self.next_port, now),
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
                    self.subscribers.retain(|s| s.send(ev).is_ok());
                }
            }
        }
    }

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
