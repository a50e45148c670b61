//! The BGP session state machine (RFC 4271 §8), without I/O: [`Input`]s in, [`Output`]s out.
//!
//! One [`Fsm`] per configured peer. It owns the peer's connections — at most one it started
//! and one the peer started while their OPENs cross, resolved by collision detection (§6.8) —
//! and every timer, which the I/O layer runs and feeds back as [`Input::Timer`]. Nothing here
//! reads a clock or sleeps, so every transition is a plain unit test.
//!
//! It also owns what outlives a connection: the automatic restart after an error, with a
//! back-off that doubles while sessions keep failing (§8.1.1 DampPeerOscillations) and resets
//! once a session has stayed up; and the helper side of graceful restart (RFC 4724 §4.2): when
//! a peer that announced it drops without a NOTIFICATION, its routes stay (stale) until it
//! returns and sends End-of-RIB, or its restart time runs out.
//!
//! It never touches routes: UPDATEs pass through to the RIB as [`Output::Routes`].

mod open;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::time::Duration;

pub use open::{Negotiated, PeerGr, build as build_open, negotiate};

use crate::types::{Asn, FamilySet};
use crate::wire::notification::{cease, code as ncode, fsm as nfsm};
use crate::wire::{DecodeError, Message, Notification, Open, RouteRefresh, Update};

/// Identifies one TCP connection; chosen by the I/O layer, never reused.
pub type ConnId = u64;

/// Hold time while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);
/// How long a session must stay Established before the restart back-off resets.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// The longest wait before an automatic restart.
pub const MAX_IDLE_HOLD: Duration = Duration::from_secs(120);
/// How long stale routes wait for End-of-RIB once a restarted peer is back (RFC 4724 §4.2
/// leaves it to configuration; FRR and GoBGP use 360 s).
pub const STALE_ROUTES_TIME: Duration = Duration::from_secs(360);

/// What the state machine needs to know about its peer and itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: Asn,
    /// The AS the peer must announce; `None` accepts any (dynamic peers).
    pub remote_as: Option<Asn>,
    pub router_id: Ipv4Addr,
    /// Never connect; wait for the peer.
    pub passive: bool,
    /// Proposed hold time in seconds (0: none).
    pub hold_time: u16,
    /// Keepalive interval in seconds; a third of the negotiated hold time when unset.
    pub keepalive: Option<u16>,
    /// Wait between connection attempts.
    pub connect_retry: Duration,
    /// Families to announce (multiprotocol capabilities).
    pub families: FamilySet,
    /// Families for which we accept ADD-PATH (RFC 7911) from the peer.
    pub add_path_receive: FamilySet,
    /// Announce RFC 8654 extended messages.
    pub extended_message: bool,
    /// Announce RFC 8950 IPv4 routes with IPv6 next hops.
    pub extended_next_hop: bool,
    pub graceful_restart: Option<GracefulRestart>,
}

/// Our graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestart {
    /// Seconds peers should keep our routes while we restart.
    pub restart_time: u16,
    /// Our forwarding state survives a restart (the kernel keeps its routes): the F bit.
    pub forwarding_preserved: bool,
}

/// Who opened a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

/// The states of RFC 4271 §8.2.2, for the peer as a whole: that of its most advanced
/// connection.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

/// The timers the I/O layer runs for the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    ConnectRetry,
    /// The wait before an automatic restart after an error.
    IdleHold,
    Hold(ConnId),
    Keepalive(ConnId),
    /// The session has been up long enough to reset the back-off.
    Stable,
    /// A restarting peer's restart time (RFC 4724 §4.2).
    GrRestart,
    /// How long stale routes wait for End-of-RIB after the peer returned.
    GrStale,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// ManualStart: run the session, connecting unless passive.
    Start,
    /// Stop the session with this NOTIFICATION on every connection: for good when `restart` is
    /// `None` (ManualStop), else start again after that delay (max-prefix, reset, new config).
    Stop {
        notification: Notification,
        restart: Option<Duration>,
    },
    /// A TCP connection is up.
    Connected(ConnId, Direction),
    /// The outbound connection attempt failed.
    ConnectFailed,
    /// A connection closed or failed.
    Closed(ConnId),
    /// A message arrived on a connection.
    Received(ConnId, Message),
    /// Bytes that do not decode arrived on a connection.
    Malformed(ConnId, DecodeError),
    Timer(Timer),
    /// BFD says the forwarding path to the peer failed (RFC 5882 §4.3.2.2, §10.2): the session
    /// ends with Cease / BFD Down (RFC 9384), and every route from the peer goes at once,
    /// stale ones kept for a graceful restart included. Nothing happens without a session or
    /// stale routes (the path failing while we are still connecting changes nothing).
    BfdDown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Start a TCP connection to the peer; answer with `Connected` or `ConnectFailed`.
    Connect,
    Send(ConnId, Message),
    /// Close the connection once what was sent on it before is written.
    Close(ConnId),
    SetTimer(Timer, Duration),
    CancelTimer(Timer),
    /// The session is Established on this connection.
    Up(ConnId, Box<Negotiated>),
    /// The session left Established.
    Down(Down),
    /// An UPDATE for the RIB (End-of-RIB markers included).
    Routes(Box<Update>),
    /// The peer asks for our routes again (RFC 2918), or marks a refresh (RFC 7313).
    Refresh(RouteRefresh),
    /// Drop the peer's stale routes of these families (graceful restart is over for them).
    PurgeStale(FamilySet),
}

/// Why a session ended, and which of its routes stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub reason: DownReason,
    /// Families whose routes stay as stale (graceful restart helper); the rest go now.
    pub keep_stale: FamilySet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION (an error, hold timer expiry, or a stop).
    Sent(Notification),
    Received(Notification),
    /// The TCP connection closed or failed without a NOTIFICATION.
    ConnectionLost,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::Sent(n) => write!(f, "sent NOTIFICATION {n}"),
            DownReason::Received(n) => write!(f, "received NOTIFICATION {n}"),
            DownReason::ConnectionLost => f.write_str("connection lost"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug, Clone)]
struct Conn {
    id: ConnId,
    dir: Direction,
    state: ConnState,
    /// What the OPEN exchange agreed, once the peer's OPEN is in.
    negotiated: Option<Box<Negotiated>>,
}

/// The state machine of one peer.
#[derive(Debug)]
pub struct Fsm {
    cfg: SessionConfig,
    /// ManualStart was given and no ManualStop since.
    started: bool,
    /// An outbound connection attempt is under way.
    connecting: bool,
    /// Announce the R bit: we restarted and this peer has not seen us since.
    restarting: bool,
    conns: Vec<Conn>,
    idle_hold: Duration,
    /// Waiting out `idle_hold` before restarting.
    in_idle_hold: bool,
    /// Stopped with a delay (prefix limit, reset): no connection either way until it is over.
    held_down: bool,
    /// Families whose routes from this peer are stale (graceful restart helper).
    stale: FamilySet,
    /// Why the last session or attempt ended, for people.
    last_error: Option<String>,
}

impl Fsm {
    /// A stopped state machine. `restarting` sets the graceful restart R bit until the first
    /// session with this peer is up (we are a restarting speaker, RFC 4724 §4.1).
    pub fn new(cfg: SessionConfig, restarting: bool) -> Fsm {
        Fsm {
            cfg,
            started: false,
            connecting: false,
            restarting,
            conns: Vec::new(),
            idle_hold: Duration::from_secs(1),
            in_idle_hold: false,
            held_down: false,
            stale: FamilySet::EMPTY,
            last_error: None,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Replaces the configuration; it takes effect at the next connection.
    pub fn set_config(&mut self, cfg: SessionConfig) {
        self.cfg = cfg;
    }

    pub fn state(&self) -> State {
        let best = self.conns.iter().map(|c| c.state).max_by_key(|s| *s as u8);
        match best {
            Some(ConnState::Established) => State::Established,
            Some(ConnState::OpenConfirm) => State::OpenConfirm,
            Some(ConnState::OpenSent) => State::OpenSent,
            None if !self.started || self.in_idle_hold => State::Idle,
            None if self.connecting => State::Connect,
            None => State::Active,
        }
    }

    /// The Established session's agreement, if there is one.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.established().and_then(|c| c.negotiated.as_deref())
    }

    /// Families whose routes from this peer are currently stale.
    pub fn stale(&self) -> FamilySet {
        self.stale
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether a connection from the peer would be accepted now: not while stopped, nor while
    /// held down after a stop with a delay — else a peer stopped for too many prefixes would be
    /// back at once. While waiting to retry after an error, the peer may still call: a peer
    /// that restarted should not wait for our back-off (and two peers backing off in turn
    /// would refuse each other for ever).
    pub fn accepts_connections(&self) -> bool {
        self.started && !self.held_down
    }

    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(&mut out),
            Input::Stop { notification, restart } => self.stop(notification, restart, &mut out),
            Input::BfdDown => self.bfd_down(&mut out),
            Input::Connected(id, dir) => self.connected(id, dir, &mut out),
            Input::ConnectFailed => {
                self.connecting = false;
                self.last_error = Some("connection attempt failed".into());
            }
            Input::Closed(id) => self.closed(id, &mut out),
            Input::Received(id, msg) => self.received(id, msg, &mut out),
            Input::Malformed(id, err) => {
                if self.conn(id).is_some() {
                    self.last_error = Some(format!("malformed message from peer: {err}"));
                    match err.notification() {
                        Some(n) => self.fail(id, n, &mut out),
                        // A malformed NOTIFICATION is not answered (RFC 4271 §6.4).
                        None => {
                            out.push(Output::Close(id));
                            self.drop_conn(id, DownReason::ConnectionLost, &mut out);
                        }
                    }
                }
            }
            Input::Timer(t) => self.timer(t, &mut out),
        }
        out
    }

    fn start(&mut self, out: &mut Vec<Output>) {
        if self.started {
            return;
        }
        self.started = true;
        self.in_idle_hold = false;
        self.held_down = false;
        self.try_connect(out);
    }

    /// Connects now unless passive or a connection exists; arms ConnectRetry either way so a
    /// failed attempt is retried.
    fn try_connect(&mut self, out: &mut Vec<Output>) {
        if !self.started || self.cfg.passive || !self.conns.is_empty() {
            return;
        }
        if !self.connecting {
            self.connecting = true;
            out.push(Output::Connect);
        }
        out.push(Output::SetTimer(Timer::ConnectRetry, self.cfg.connect_retry));
    }

    fn stop(&mut self, n: Notification, restart: Option<Duration>, out: &mut Vec<Output>) {
        self.last_error = Some(format!("stopped: {}", n.describe()));
        let ids: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            self.send_notification_and_close(id, n.clone(), out);
        }
        self.connecting = false;
        out.push(Output::CancelTimer(Timer::ConnectRetry));
        match restart {
            None => {
                self.started = false;
                self.in_idle_hold = false;
                self.held_down = false;
                out.push(Output::CancelTimer(Timer::IdleHold));
            }
            Some(delay) => {
                self.in_idle_hold = true;
                self.held_down = true;
                out.push(Output::SetTimer(Timer::IdleHold, delay));
            }
        }
    }

    fn bfd_down(&mut self, out: &mut Vec<Output>) {
        let up = self.established().is_some();
        if !up && self.stale.is_empty() {
            return;
        }
        if up {
            // Start again at once: the connection attempts fail until the path is back.
            self.stop(Notification::cease(cease::BFD_DOWN), Some(Duration::ZERO), out);
        }
        if !self.stale.is_empty() {
            out.push(Output::PurgeStale(self.stale));
            self.stale = FamilySet::EMPTY;
            out.push(Output::CancelTimer(Timer::GrRestart));
            out.push(Output::CancelTimer(Timer::GrStale));
        }
        self.last_error = Some("BFD Down: the forwarding path to the peer failed".into());
    }

    fn connected(&mut self, id: ConnId, dir: Direction, out: &mut Vec<Output>) {
        if dir == Direction::Outbound {
            self.connecting = false;
        }
        if !self.accepts_connections() {
            out.push(Output::Close(id));
            return;
        }
        // One connection per direction is being opened at a time: a newer one replaces a
        // stale attempt (the peer gave up on it).
        let stale: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.dir == dir && c.state != ConnState::Established)
            .map(|c| c.id)
            .collect();
        for old in stale {
            self.remove_conn(old, out);
            out.push(Output::Close(old));
        }
        self.in_idle_hold = false;
        out.push(Output::CancelTimer(Timer::IdleHold));
        out.push(Output::CancelTimer(Timer::ConnectRetry));
        self.conns.push(Conn { id, dir, state: ConnState::OpenSent, negotiated: None });
        let open = build_open(&self.cfg, self.restarting);
        out.push(Output::Send(id, Message::Open(open)));
        out.push(Output::SetTimer(Timer::Hold(id), OPEN_HOLD_TIME));
    }

    fn closed(&mut self, id: ConnId, out: &mut Vec<Output>) {
        if self.conn(id).is_some() {
            self.last_error = Some("connection closed by peer".into());
            self.drop_conn(id, DownReason::ConnectionLost, out);
        }
    }

    fn received(&mut self, id: ConnId, msg: Message, out: &mut Vec<Output>) {
        let Some(conn) = self.conn(id) else { return };
        let state = conn.state;
        if let Message::Notification(n) = msg {
            self.last_error = Some(format!("received NOTIFICATION {n}"));
            self.drop_conn(id, DownReason::Received(n), out);
            return;
        }
        match (state, msg) {
            (ConnState::OpenSent, Message::Open(open)) => self.open_received(id, open, out),
            (ConnState::OpenSent, _) => {
                self.fsm_error(id, nfsm::UNEXPECTED_IN_OPEN_SENT, out);
            }
            (ConnState::OpenConfirm, Message::Keepalive) => self.establish(id, out),
            (ConnState::OpenConfirm, _) => {
                self.fsm_error(id, nfsm::UNEXPECTED_IN_OPEN_CONFIRM, out);
            }
            (ConnState::Established, Message::Keepalive) => self.restart_hold(id, out),
            (ConnState::Established, Message::Update(u)) => {
                self.restart_hold(id, out);
                let eor = u.end_of_rib_family();
                out.push(Output::Routes(u));
                if let Some(f) = eor {
                    if self.stale.contains(f) {
                        self.stale.remove(f);
                        out.push(Output::PurgeStale(FamilySet::single(f)));
                        if self.stale.is_empty() {
                            out.push(Output::CancelTimer(Timer::GrStale));
                        }
                    }
                }
            }
            (ConnState::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(id, out);
                out.push(Output::Refresh(rr));
            }
            (ConnState::Established, _) => {
                self.fsm_error(id, nfsm::UNEXPECTED_IN_ESTABLISHED, out);
            }
        }
    }

    fn open_received(&mut self, id: ConnId, open: Open, out: &mut Vec<Output>) {
        let sent = build_open(&self.cfg, self.restarting);
        let negotiated = match negotiate(&self.cfg, &sent, &open) {
            Ok(n) => n,
            Err(notification) => {
                self.last_error = Some(format!("refused the peer's OPEN: {}", notification));
                self.fail(id, notification, out);
                return;
            }
        };
        // Collision detection (RFC 4271 §6.8), now that the peer's identifier is known.
        if let Some(other) =
            self.conns.iter().find(|c| c.id != id && c.state != ConnState::OpenSent)
        {
            let (other_id, other_state) = (other.id, other.state);
            let peer_restarted = other_state == ConnState::Established
                && self.cfg.graceful_restart.is_some()
                && negotiated.peer_gr.is_some()
                && self.negotiated().is_some_and(|n| n.peer_gr.is_some());
            if peer_restarted {
                // RFC 4724 §4.2: a new OPEN while the old session is up means the peer
                // restarted; the old session ends as if its connection had dropped.
                self.last_error =
                    Some("peer restarted (new connection with graceful restart)".into());
                self.drop_conn(other_id, DownReason::ConnectionLost, out);
                out.push(Output::Close(other_id));
            } else {
                let keep_new = other_state != ConnState::Established
                    && self.new_connection_wins(id, negotiated.remote_id, negotiated.remote_as);
                let loser = if keep_new { other_id } else { id };
                self.last_error = Some("connection collision resolved".into());
                let n = Notification::cease(cease::CONNECTION_COLLISION);
                if loser == id {
                    self.send_notification_and_close(id, n, out);
                    self.remove_conn(id, out);
                    return;
                }
                self.send_notification_and_close(loser, n, out);
                self.remove_conn(loser, out);
            }
        }
        let hold = negotiated.hold_time;
        let keepalive = negotiated.keepalive;
        if let Some(c) = self.conn_mut(id) {
            c.state = ConnState::OpenConfirm;
            c.negotiated = Some(Box::new(negotiated));
        }
        out.push(Output::Send(id, Message::Keepalive));
        if hold > 0 {
            out.push(Output::SetTimer(Timer::Hold(id), secs(hold)));
            out.push(Output::SetTimer(Timer::Keepalive(id), secs(keepalive)));
        } else {
            out.push(Output::CancelTimer(Timer::Hold(id)));
        }
    }

    /// RFC 4271 §6.8: the connection opened by the speaker with the higher BGP identifier
    /// survives; RFC 6286 §2.3: with equal identifiers, the one opened by the higher AS.
    fn new_connection_wins(&self, new: ConnId, remote_id: Ipv4Addr, remote_as: Asn) -> bool {
        let Some(new_dir) = self.conn(new).map(|c| c.dir) else { return false };
        let local_wins = match self.cfg.router_id.cmp(&remote_id) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => self.cfg.local_as > remote_as,
        };
        let keep_dir = if local_wins { Direction::Outbound } else { Direction::Inbound };
        new_dir == keep_dir
    }

    fn establish(&mut self, id: ConnId, out: &mut Vec<Output>) {
        let Some(c) = self.conn_mut(id) else { return };
        c.state = ConnState::Established;
        let Some(negotiated) = c.negotiated.clone() else { return };
        self.restarting = false;
        self.last_error = None;
        // Any other connection still opening lost the race (§6.8).
        let others: Vec<ConnId> = self.conns.iter().filter(|c| c.id != id).map(|c| c.id).collect();
        for other in others {
            self.send_notification_and_close(
                other,
                Notification::cease(cease::CONNECTION_COLLISION),
                out,
            );
            self.remove_conn(other, out);
        }
        self.restart_hold(id, out);
        out.push(Output::SetTimer(Timer::Stable, STABLE_AFTER));
        let gr = negotiated.peer_gr;
        out.push(Output::Up(id, negotiated));
        // Graceful restart helper (RFC 4724 §4.2): the peer is back. Stale routes of the
        // families it preserved wait for End-of-RIB; the rest go now.
        if !self.stale.is_empty() {
            out.push(Output::CancelTimer(Timer::GrRestart));
            let kept = gr.map(|g| g.forwarding).unwrap_or_default().intersection(self.stale);
            let purge = self.stale.difference(kept);
            if !purge.is_empty() {
                out.push(Output::PurgeStale(purge));
            }
            self.stale = kept;
            if !kept.is_empty() {
                out.push(Output::SetTimer(Timer::GrStale, STALE_ROUTES_TIME));
            }
        }
    }

    fn restart_hold(&mut self, id: ConnId, out: &mut Vec<Output>) {
        if let Some(n) = self.conn(id).and_then(|c| c.negotiated.as_ref()) {
            if n.hold_time > 0 {
                out.push(Output::SetTimer(Timer::Hold(id), secs(n.hold_time)));
            }
        }
    }

    fn timer(&mut self, t: Timer, out: &mut Vec<Output>) {
        match t {
            Timer::ConnectRetry => {
                if self.started && self.conns.is_empty() && !self.in_idle_hold {
                    if self.connecting {
                        out.push(Output::SetTimer(Timer::ConnectRetry, self.cfg.connect_retry));
                    } else {
                        self.try_connect(out);
                    }
                }
            }
            Timer::IdleHold => {
                if self.in_idle_hold {
                    self.in_idle_hold = false;
                    self.held_down = false;
                    self.try_connect(out);
                }
            }
            Timer::Hold(id) => {
                if self.conn(id).is_some() {
                    self.last_error = Some("hold timer expired".into());
                    self.fail(id, Notification::hold_timer_expired(), out);
                }
            }
            Timer::Keepalive(id) => {
                let interval = self
                    .conn(id)
                    .filter(|c| c.state != ConnState::OpenSent)
                    .and_then(|c| c.negotiated.as_ref())
                    .map(|n| n.keepalive)
                    .filter(|k| *k > 0);
                if let Some(k) = interval {
                    out.push(Output::Send(id, Message::Keepalive));
                    out.push(Output::SetTimer(Timer::Keepalive(id), secs(k)));
                }
            }
            Timer::Stable => {
                if self.established().is_some() {
                    self.idle_hold = Duration::from_secs(1);
                }
            }
            Timer::GrRestart | Timer::GrStale => {
                if !self.stale.is_empty() {
                    out.push(Output::PurgeStale(self.stale));
                    self.stale = FamilySet::EMPTY;
                }
            }
        }
    }

    /// An FSM error (RFC 4271 §6.6): a message the state does not allow.
    fn fsm_error(&mut self, id: ConnId, subcode: u8, out: &mut Vec<Output>) {
        self.last_error = Some("unexpected message for the session state".into());
        self.fail(id, Notification::new(ncode::FSM, subcode, vec![]), out);
    }

    /// Sends `n` on the connection, closes it, and ends the session if it was the one.
    fn fail(&mut self, id: ConnId, n: Notification, out: &mut Vec<Output>) {
        out.push(Output::Send(id, Message::Notification(n.clone())));
        out.push(Output::Close(id));
        self.drop_conn(id, DownReason::Sent(n), out);
    }

    fn send_notification_and_close(&mut self, id: ConnId, n: Notification, out: &mut Vec<Output>) {
        let was_established = self.conn(id).is_some_and(|c| c.state == ConnState::Established);
        out.push(Output::Send(id, Message::Notification(n.clone())));
        out.push(Output::Close(id));
        if was_established {
            self.session_down(DownReason::Sent(n), out);
        }
        self.remove_conn(id, out);
    }

    /// The connection is gone (closed, failed or refused): forget it, end the session if it
    /// was Established, and schedule the restart if nothing else is left.
    fn drop_conn(&mut self, id: ConnId, reason: DownReason, out: &mut Vec<Output>) {
        let Some(conn) = self.conn(id) else { return };
        let was_established = conn.state == ConnState::Established;
        if was_established {
            self.session_down(reason, out);
        }
        self.remove_conn(id, out);
        if self.conns.is_empty() && self.started && !self.in_idle_hold {
            // Wait before trying again, longer each time sessions keep failing.
            self.in_idle_hold = true;
            out.push(Output::CancelTimer(Timer::ConnectRetry));
            out.push(Output::SetTimer(Timer::IdleHold, self.idle_hold));
            self.idle_hold = (self.idle_hold * 2).min(MAX_IDLE_HOLD);
        }
    }

    /// The Established session ends: the RIB drops the peer's routes, or keeps them stale
    /// when the peer can restart gracefully and left without a NOTIFICATION.
    fn session_down(&mut self, reason: DownReason, out: &mut Vec<Output>) {
        let negotiated = self.negotiated().cloned();
        let mut keep = FamilySet::EMPTY;
        if let (Some(n), DownReason::ConnectionLost) = (&negotiated, &reason) {
            if let Some(gr) = n.peer_gr.filter(|g| g.restart_time > 0) {
                keep = gr.families.intersection(n.families);
                if !keep.is_empty() {
                    out.push(Output::SetTimer(Timer::GrRestart, secs(gr.restart_time)));
                }
            }
        }
        // Routes already stale from an earlier restart go unless kept again.
        let purge = self.stale.difference(keep);
        if !purge.is_empty() {
            out.push(Output::PurgeStale(purge));
        }
        self.stale = keep;
        out.push(Output::CancelTimer(Timer::Stable));
        out.push(Output::CancelTimer(Timer::GrStale));
        out.push(Output::Down(Down { reason, keep_stale: keep }));
    }

    fn remove_conn(&mut self, id: ConnId, out: &mut Vec<Output>) {
        if let Some(i) = self.conns.iter().position(|c| c.id == id) {
            self.conns.remove(i);
            out.push(Output::CancelTimer(Timer::Hold(id)));
            out.push(Output::CancelTimer(Timer::Keepalive(id)));
        }
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn established(&self) -> Option<&Conn> {
        self.conns.iter().find(|c| c.state == ConnState::Established)
    }
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}
