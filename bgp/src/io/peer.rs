//! One task per peer: it drives the peer's [`Fsm`] with what its connections receive, its
//! timers and the speaker's commands, and carries out what the state machine asks — sending,
//! connecting, closing, telling the RIB.
//!
//! Keepalives and the hold timer never wait for route work: the RIB runs on its own thread, and
//! this task only hands it decoded UPDATEs. When the RIB falls behind, this task stops taking
//! messages from the socket (TCP back-pressure reaches the peer) but keeps serving its timers;
//! the hold timer does not expire while received messages wait for the RIB, since the peer is
//! evidently alive.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use super::conn::{self, ConnEvent, OutQueue, WriterCommand};
use super::rib_task::RibCommand;
use super::socket::{self, ConnectOptions};
use super::timers::Timers;
use crate::config::{PeerConfig, SpeakerConfig};
use crate::fsm::{ConnId, Direction, Fsm, Input, Negotiated, Output, State, Timer};
use crate::rib::{PeerIdx, SessionInfo};
use crate::types::{Family, FamilySet};
use crate::wire::notification::cease;
use crate::wire::route_refresh::subtype;
use crate::wire::{Codec, Message, Notification, RouteRefresh, Update};

/// What the speaker (and the RIB) tell a peer task.
#[derive(Debug)]
pub enum PeerCommand {
    /// The peer connected to us.
    Inbound(TcpStream),
    /// Stop the session (for good with `restart: None`).
    Stop { notification: Notification, restart: Option<Duration> },
    /// New configuration; the speaker has already given the RIB its part.
    Reconfigure(Box<PeerConfig>),
    /// Ask the peer for its routes again (our import policy changed).
    RequestRefresh,
    /// BFD found the forwarding path to the peer dead.
    BfdDown,
    /// The peer sent more routes than its limit.
    MaxPrefixes { family: Family, limit: u32 },
    /// End the task: with `graceful`, close without NOTIFICATION so that peers keep our routes
    /// (graceful restart); otherwise with an Administrative Shutdown.
    Shutdown { graceful: bool, done: oneshot::Sender<()> },
}

/// What the peer task publishes about itself, for status.
#[derive(Debug, Clone)]
pub struct PeerState {
    pub state: State,
    pub established_at: Option<Instant>,
    pub last_error: Option<String>,
    pub negotiated: Option<Box<Negotiated>>,
    pub stale: FamilySet,
    /// Times the session left Established.
    pub flaps: u64,
}

impl Default for PeerState {
    fn default() -> Self {
        PeerState {
            state: State::Idle,
            established_at: None,
            last_error: None,
            negotiated: None,
            stale: FamilySet::EMPTY,
            flaps: 0,
        }
    }
}

struct Conn {
    writer: mpsc::UnboundedSender<WriterCommand>,
    local: SocketAddr,
    codec: Codec,
}

/// The receiving ends the task waits on, apart from its state (so the futures of a `select!`
/// and the code handling their results borrow different things).
struct Inputs {
    commands: mpsc::Receiver<PeerCommand>,
    events: mpsc::Receiver<ConnEvent>,
    connects: mpsc::Receiver<std::io::Result<TcpStream>>,
    rib: mpsc::Sender<RibCommand>,
}

/// Everything the peer task knows.
#[derive(Debug)]
pub struct Peer {
    pub idx: PeerIdx,
    pub address: IpAddr,
    pub cfg: PeerConfig,
    pub speaker: Arc<SpeakerConfig>,
    pub shared: Arc<Mutex<PeerState>>,
    /// The task's own command sender, handed to the RIB for prefix-limit events.
    pub self_tx: mpsc::Sender<PeerCommand>,
    /// A dynamic peer ends its task when its session is over.
    pub dynamic: bool,
    pub restarting: bool,
}

struct Task {
    p: Peer,
    fsm: Fsm,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    timers: Timers,
    events_tx: mpsc::Sender<ConnEvent>,
    connects_tx: mpsc::Sender<std::io::Result<TcpStream>>,
    rib_tx: mpsc::Sender<RibCommand>,
    /// RIB commands in order, waiting for room in its channel.
    backlog: VecDeque<RibCommand>,
    updates: Vec<Update>,
    established: Option<ConnId>,
    exit: Option<oneshot::Sender<()>>,
    done: bool,
}

/// Runs a peer until it is shut down (or, for a dynamic peer, until its session ends).
pub async fn run(p: Peer, commands: mpsc::Receiver<PeerCommand>, rib: mpsc::Sender<RibCommand>) {
    let (events_tx, events) = mpsc::channel(4);
    let (connects_tx, connects) = mpsc::channel(1);
    let seed = u64::from(p.idx.0) ^ (std::process::id() as u64) << 16 ^ nanos();
    let fsm = Fsm::new(p.cfg.session(&p.speaker), p.restarting);
    let mut inputs = Inputs { commands, events, connects, rib: rib.clone() };
    let mut t = Task {
        p,
        fsm,
        conns: HashMap::new(),
        next_conn: 1,
        timers: Timers::new(seed),
        events_tx,
        connects_tx,
        rib_tx: rib,
        backlog: VecDeque::new(),
        updates: Vec::new(),
        established: None,
        exit: None,
        done: false,
    };
    // Every event of this task, across its awaits, is logged under its peer's address.
    let span = tracing::info_span!("peer", addr = %t.p.address);
    async move {
        t.input(Input::Start);
        loop {
            t.flush_updates();
            t.publish();
            if t.done && t.backlog.is_empty() {
                break;
            }
            let next = t.timers.next();
            let sleep = async {
                match next {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let backlogged = !t.backlog.is_empty();
            tokio::select! {
                biased;
                cmd = inputs.commands.recv(), if !t.done => match cmd {
                    Some(c) => t.command(c),
                    None => t.shutdown(false, None),
                },
                () = sleep => t.fire_timers(backlogged),
                permit = inputs.rib.reserve(), if backlogged => {
                    if let (Ok(permit), Some(c)) = (permit, t.backlog.pop_front()) {
                        permit.send(c);
                    } else {
                        // The RIB is gone: the speaker is stopping.
                        t.backlog.clear();
                    }
                }
                Some(res) = inputs.connects.recv() => t.connect_result(res),
                Some(ev) = inputs.events.recv(), if !backlogged => t.conn_event(ev),
            }
        }
        if let Some(done) = t.exit.take() {
            let _ = done.send(());
        }
    }
    .instrument(span)
    .await
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into())
}

impl Task {
    fn input(&mut self, i: Input) {
        let outputs = self.fsm.handle(i);
        for o in outputs {
            self.output(o);
        }
    }

    fn output(&mut self, o: Output) {
        match o {
            Output::Connect => self.connect(),
            Output::Send(id, msg) => self.send(id, &msg),
            Output::Close(id) => {
                if let Some(c) = self.conns.remove(&id) {
                    let _ = c.writer.send(WriterCommand::Close);
                }
            }
            Output::SetTimer(t, d) => self.timers.set(t, d),
            Output::CancelTimer(t) => self.timers.cancel(t),
            Output::Up(id, n) => self.up(id, n),
            Output::Down(down) => {
                self.established = None;
                {
                    let mut s = self.lock();
                    s.flaps += 1;
                    s.established_at = None;
                }
                warn!(reason = %down.reason, stale = ?down.keep_stale, "session down");
                self.rib(RibCommand::Down { idx: self.p.idx, keep_stale: down.keep_stale });
            }
            Output::Routes(u) => self.updates.push(*u),
            Output::Refresh(rr) => self.refresh(rr),
            Output::PurgeStale(families) => {
                debug!(?families, "stale routes purged");
                self.rib(RibCommand::PurgeStale(self.p.idx, families));
            }
        }
    }

    fn send(&mut self, id: ConnId, msg: &Message) {
        let Some(c) = self.conns.get(&id) else { return };
        let mut bytes = Vec::new();
        if let Err(e) = c.codec.encode(msg, &mut bytes) {
            warn!(error = %e, "message not sent");
            return;
        }
        if let Message::Notification(n) = msg {
            warn!(notification = %n, "sending NOTIFICATION");
        }
        let _ = c.writer.send(WriterCommand::Send(bytes));
    }

    fn connect(&mut self) {
        let opts = ConnectOptions {
            peer: SocketAddr::new(self.p.address, self.p.cfg.port),
            local: self.p.cfg.local_address,
            interface: self.p.cfg.interface.clone(),
            password: self.p.cfg.password.clone(),
        };
        let limit = Duration::from_secs(u64::from(self.p.cfg.connect_retry.max(5)));
        let tx = self.connects_tx.clone();
        tokio::spawn(async move {
            let res = match tokio::time::timeout(limit, socket::connect(&opts)).await {
                Ok(r) => r,
                Err(_) => {
                    Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))
                }
            };
            let _ = tx.send(res).await;
        });
    }

    fn connect_result(&mut self, res: std::io::Result<TcpStream>) {
        match res {
            Ok(stream) => self.attach(stream, Direction::Outbound),
            Err(e) => {
                debug!(error = %e, "connection attempt failed");
                self.input(Input::ConnectFailed);
                self.lock().last_error = Some(format!("connect: {e}"));
            }
        }
    }

    /// Starts the reader and writer of a new connection and tells the state machine.
    fn attach(&mut self, stream: TcpStream, dir: Direction) {
        let Ok(local) = stream.local_addr() else {
            // The connection is already gone; an attempt of ours counts as failed.
            if dir == Direction::Outbound {
                self.input(Input::ConnectFailed);
            }
            return;
        };
        let _ = stream.set_nodelay(true);
        let id = self.next_conn;
        self.next_conn += 1;
        let (rd, wr) = stream.into_split();
        let (wtx, wrx) = mpsc::unbounded_channel();
        tokio::spawn(conn::reader(id, rd, self.events_tx.clone()));
        tokio::spawn(conn::writer(id, wr, wrx, self.events_tx.clone(), self.rib_tx.clone()));
        self.conns.insert(id, Conn { writer: wtx, local, codec: Codec::default() });
        debug!(conn = id, ?dir, "connected");
        self.input(Input::Connected(id, dir));
        if !self.conns.contains_key(&id) {
            debug!(conn = id, "connection refused by the state machine");
        }
    }

    fn conn_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Frames(id, bytes) => self.frames(id, &bytes),
            ConnEvent::Malformed(id, e) => {
                if self.conns.contains_key(&id) {
                    self.input(Input::Malformed(id, e));
                }
            }
            ConnEvent::Closed(id) => {
                if self.conns.remove(&id).is_some() {
                    self.input(Input::Closed(id));
                }
            }
        }
    }

    /// Decodes whole messages and feeds them to the state machine, stopping if it closes the
    /// connection on the way.
    fn frames(&mut self, id: ConnId, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let Some(codec) = self.conns.get(&id).map(|c| c.codec) else { return };
            let len = match codec.frame(bytes) {
                Ok(Some((_, len))) => len,
                Ok(None) => return,
                Err(e) => {
                    self.input(Input::Malformed(id, e));
                    return;
                }
            };
            let input = match codec.decode(&bytes[..len]) {
                Ok(msg) => Input::Received(id, msg),
                Err(e) => Input::Malformed(id, e),
            };
            self.input(input);
            bytes = &bytes[len..];
        }
    }

    fn up(&mut self, id: ConnId, n: Box<Negotiated>) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        c.codec = n.codec;
        let local = c.local.ip();
        let (v4, v6, ll) = socket::local_next_hops(local, &socket::interface_addresses());
        let queue = Arc::new(OutQueue::default());
        let _ = c.writer.send(WriterCommand::Updates(queue.clone(), self.p.idx));
        let info = SessionInfo {
            remote_as: n.remote_as,
            remote_id: n.remote_id,
            families: n.families,
            encode: n.codec.update_encode(),
            extended_next_hop: n.extended_next_hop,
            local_v4: v4,
            local_v6: v6,
            local_v6_link_local: ll,
            enhanced_route_refresh: n.enhanced_route_refresh,
        };
        info!(
            remote_as = %n.remote_as,
            remote_id = %n.remote_id,
            hold = n.hold_time,
            families = ?n.families.iter().map(Family::name).collect::<Vec<_>>(),
            "session established"
        );
        self.established = Some(id);
        {
            let mut s = self.lock();
            s.established_at = Some(Instant::now());
            s.negotiated = Some(n);
        }
        self.rib(RibCommand::Up { idx: self.p.idx, info, queue, peer: self.p.self_tx.clone() });
    }

    fn refresh(&mut self, rr: RouteRefresh) {
        let Some(family) = rr.family() else { return };
        let negotiated = self.fsm.negotiated().is_some_and(|n| n.families.contains(family));
        if !negotiated {
            return;
        }
        let idx = self.p.idx;
        match rr.subtype {
            subtype::NORMAL => self.rib(RibCommand::RefreshRequested(idx, family)),
            subtype::BEGIN => self.rib(RibCommand::RefreshBegins(idx, family)),
            subtype::END => self.rib(RibCommand::PurgeStale(idx, FamilySet::single(family))),
            // RFC 7313 §5: other subtypes are ignored.
            _ => {}
        }
    }

    fn command(&mut self, c: PeerCommand) {
        match c {
            PeerCommand::Inbound(stream) => {
                if self.fsm.accepts_connections() {
                    self.attach(stream, Direction::Inbound);
                } else {
                    debug!("connection refused: the session is stopped");
                }
            }
            PeerCommand::Stop { notification, restart } => {
                self.input(Input::Stop { notification, restart });
            }
            PeerCommand::Reconfigure(cfg) => {
                let reset = self.p.cfg.needs_reset(&cfg);
                self.p.cfg = *cfg;
                self.fsm.set_config(self.p.cfg.session(&self.p.speaker));
                if reset && self.fsm.state() != State::Idle {
                    info!("configuration changed: resetting the session");
                    let n = Notification::cease(cease::OTHER_CONFIG_CHANGE);
                    self.input(Input::Stop { notification: n, restart: Some(Duration::ZERO) });
                }
            }
            PeerCommand::RequestRefresh => self.request_refresh(),
            PeerCommand::BfdDown => {
                warn!("BFD Down: ending the session and dropping the peer's routes");
                self.input(Input::BfdDown);
            }
            PeerCommand::MaxPrefixes { family, limit } => {
                let (afi, safi) = family.afi_safi();
                warn!(%family, limit, "prefix limit exceeded: stopping the session");
                let restart = Some(self.p.cfg.max_prefixes_restart);
                self.input(Input::Stop {
                    notification: Notification::max_prefixes(afi, safi, limit),
                    restart,
                });
            }
            PeerCommand::Shutdown { graceful, done } => self.shutdown(graceful, Some(done)),
        }
    }

    /// Asks the peer to send its routes again, or resets the session if it cannot.
    fn request_refresh(&mut self) {
        let (Some(id), Some(n)) = (self.established, self.fsm.negotiated().cloned()) else {
            return;
        };
        if n.route_refresh {
            info!("import policy changed: asking the peer for its routes again");
            for f in n.families.iter() {
                self.send(id, &Message::RouteRefresh(RouteRefresh::request(f)));
            }
        } else {
            info!("import policy changed and the peer cannot refresh: resetting the session");
            let n = Notification::cease(cease::OTHER_CONFIG_CHANGE);
            self.input(Input::Stop { notification: n, restart: Some(Duration::ZERO) });
        }
    }

    fn shutdown(&mut self, graceful: bool, done: Option<oneshot::Sender<()>>) {
        let gr = graceful
            && self.fsm.config().graceful_restart.is_some()
            && self.fsm.negotiated().is_some_and(|n| n.peer_gr.is_some());
        if gr {
            // Close without a NOTIFICATION: the peer keeps our routes until we return.
            for (_, c) in self.conns.drain() {
                let _ = c.writer.send(WriterCommand::Close);
            }
        } else {
            let n = Notification::shutdown(cease::ADMIN_SHUTDOWN, "Tartan is shutting down");
            self.input(Input::Stop { notification: n, restart: None });
        }
        self.exit = done;
        self.done = true;
        // The RIB learns nothing more: the speaker is stopping.
        self.backlog.clear();
        self.updates.clear();
    }

    /// Feeds expired timers to the state machine. While received messages wait for the RIB,
    /// the peer is alive: its hold timer starts again instead of expiring.
    fn fire_timers(&mut self, backlogged: bool) {
        for t in self.timers.expired(Instant::now()) {
            if let (Timer::Hold(id), true) = (t, backlogged) {
                let hold = self.fsm.negotiated().map_or(90, |n| n.hold_time.max(3));
                debug!(conn = id, "hold timer restarted: messages wait for the RIB");
                self.timers.set(t, Duration::from_secs(u64::from(hold)));
                continue;
            }
            self.input(Input::Timer(t));
        }
    }

    /// Queues a command for the RIB after the UPDATEs received before it.
    fn rib(&mut self, c: RibCommand) {
        self.flush_updates();
        self.backlog.push_back(c);
    }

    fn flush_updates(&mut self) {
        if !self.updates.is_empty() {
            let batch = std::mem::take(&mut self.updates);
            self.backlog.push_back(RibCommand::Updates(self.p.idx, batch));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PeerState> {
        self.p.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&mut self) {
        let state = self.fsm.state();
        let last_error = self.fsm.last_error().map(str::to_string);
        let stale = self.fsm.stale();
        let mut s = self.lock();
        s.state = state;
        if last_error.is_some() {
            s.last_error = last_error;
        }
        s.stale = stale;
        if state != State::Established {
            s.negotiated = None;
        }
        drop(s);
        if self.p.dynamic
            && !self.done
            && state == State::Idle
            && self.conns.is_empty()
            && stale.is_empty()
        {
            // A dynamic peer exists for its session only.
            self.done = true;
            self.backlog.push_back(RibCommand::RemovePeer(self.p.idx));
        }
    }
}
