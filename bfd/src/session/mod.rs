//! One BFD session's state machine (RFC 5880 §6.2, §6.8), sans-IO: received packets and the
//! current time go in, packets to send and state changes come out, and [`Session::deadline`]
//! says when to call [`Session::poll`] next. No clock is read and no socket is touched here.
//!
//! The rules followed, by section:
//! - §6.8.6 reception: the remote's variables are taken from every accepted packet, then the
//!   three-way handshake (Down → Init → Up) and the transitions to Down.
//! - §6.8.3 timers: at least 1 s advertised while not Up; every change of what we advertise
//!   starts a Poll Sequence; a longer transmit interval, and a shorter receive interval for
//!   detection, take effect only when the Final arrives.
//! - §6.8.4 detection: the remote's multiplier × max(our required RX, its desired TX).
//! - §6.8.7 transmission: max(our desired TX, its required RX), less 0-25 % random jitter
//!   (10-25 % with a multiplier of 1); none while its required RX is zero or it runs demand
//!   mode; a Final answers a Poll at once.
//! - RFC 5882 §3.2: a change to Down because the peer said AdminDown is marked as such, so
//!   that clients (BGP) leave their sessions alone.

use std::time::{Duration, Instant};

use crate::packet::{Diag, Packet, State};

/// The slowest rate a session may advertise while not Up (§6.8.3).
const SLOW_TX: Duration = Duration::from_secs(1);
/// What §6.8.1 says bfd.RemoteMinRxInterval starts as: 1 µs, so the first packets go out.
const INITIAL_REMOTE_MIN_RX: Duration = Duration::from_micros(1);

/// A session's configured timers, with Calico's and FRR's names in mind: how often we want to
/// send, how often we can receive, and how many missed packets declare the path dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intervals {
    /// Required Min RX Interval: the fastest we accept packets.
    #[serde(with = "duration_str")]
    pub min_rx: Duration,
    /// Desired Min TX Interval: the fastest we would like to send.
    #[serde(with = "duration_str")]
    pub min_tx: Duration,
    /// Detect Mult.
    pub multiplier: u8,
}

impl Default for Intervals {
    /// 300 ms × 3: FRR's, MetalLB's and Antrea's default.
    fn default() -> Intervals {
        Intervals {
            min_rx: Duration::from_millis(300),
            min_tx: Duration::from_millis(300),
            multiplier: 3,
        }
    }
}

/// A timer setting outside what we run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntervalsError {
    #[error("{what} {value:?} is outside 10ms..60s")]
    Interval { what: &'static str, value: Duration },
    #[error("multiplier {0} is outside 2..255")]
    Multiplier(u8),
}

impl Intervals {
    pub const MIN: Duration = Duration::from_millis(10);
    pub const MAX: Duration = Duration::from_secs(60);

    /// The range FRR 8.4 accepts: 10 ms to 60 s, multiplier 2 to 255.
    pub fn validate(&self) -> Result<(), IntervalsError> {
        for (what, value) in
            [("minimum receive interval", self.min_rx), ("minimum send interval", self.min_tx)]
        {
            if !(Self::MIN..=Self::MAX).contains(&value) {
                return Err(IntervalsError::Interval { what, value });
            }
        }
        if self.multiplier < 2 {
            return Err(IntervalsError::Multiplier(self.multiplier));
        }
        Ok(())
    }
}

/// What the session asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(Packet),
    Changed(Transition),
}

/// A change of the session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// Our diagnostic: why we went Down.
    pub diag: Diag,
    /// The change to Down came from the peer's AdminDown, which says nothing about the
    /// forwarding path: a client must not act on it (RFC 5882 §3.2).
    pub remote_admin_down: bool,
    /// The change to Down came from a new session at the peer: a Down with a discriminator
    /// we had not seen and no diagnostic. Its packet just crossed the path, so the path
    /// works: the peer's BFD restarted or replaced its session (FRR does when BGP gives it the
    /// session's source address). A client must not act on it either.
    pub peer_restarted: bool,
}

impl Transition {
    /// A client (BGP) should treat the path as failed: the session left Up for a reason other
    /// than an administrative one, ours or the peer's.
    pub fn path_failed(&self) -> bool {
        self.from == State::Up
            && self.to == State::Down
            && !self.remote_admin_down
            && !self.peer_restarted
            && self.diag != Diag::AdministrativelyDown
    }
}

/// What the peer's packet said about a change to Down, beyond the diagnostic.
#[derive(Debug, Clone, Copy, Default)]
struct Why {
    remote_admin_down: bool,
    peer_restarted: bool,
}

/// Why a packet that decoded was still not for this session (§6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    #[error("authentication requested, none configured")]
    Authentication,
    #[error("your discriminator is zero in state {0}")]
    ZeroYourDiscriminator(State),
    #[error("your discriminator {got:#x} is not this session's {ours:#x}")]
    WrongDiscriminator { got: u32, ours: u32 },
}

/// What a status display shows of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub state: State,
    pub local_disc: u32,
    pub remote_disc: u32,
    pub local_diag: Diag,
    pub remote_diag: Diag,
    pub configured: Intervals,
    /// The interval we send at now, before jitter.
    pub tx_interval: Duration,
    /// The interval we can receive at, as advertised.
    pub rx_interval: Duration,
    pub remote_min_rx: Duration,
    pub remote_min_tx: Duration,
    pub remote_multiplier: u8,
    /// How long without a packet declares the path dead; `None` before the peer is heard.
    pub detection_time: Option<Duration>,
    /// Times the session left Up.
    pub flaps: u64,
    /// When the state last changed.
    pub since: Instant,
    pub poll_pending: bool,
}

/// One session.
#[derive(Debug)]
pub struct Session {
    cfg: Intervals,
    state: State,
    local_disc: u32,
    local_diag: Diag,
    /// bfd.DesiredMinTxInterval, as advertised.
    desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval, as advertised.
    required_min_rx: Duration,
    /// The desired TX that governs our sending until a Poll Sequence ends (§6.8.3).
    tx_in_use: Duration,
    /// The required RX that governs detection until a Poll Sequence ends (§6.8.3).
    rx_in_use: Duration,
    poll_pending: bool,
    remote_disc: u32,
    remote_state: State,
    remote_diag: Diag,
    remote_min_rx: Duration,
    remote_min_tx: Duration,
    remote_mult: u8,
    remote_demand: bool,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    since: Instant,
    flaps: u64,
    rng: u64,
    /// How early a periodic packet may go, so that its owner can send several sessions'
    /// packets in one wake-up; the jitter's floor is raised by as much, so that no interval
    /// falls below 75 % (§6.8.7).
    send_slack: Duration,
}

impl Session {
    /// A session in Down that starts sending at once (both ends are Active, RFC 5881 §3).
    /// `seed` feeds the transmit jitter.
    pub fn new(local_disc: u32, cfg: Intervals, seed: u64, now: Instant) -> Session {
        let desired = cfg.min_tx.max(SLOW_TX);
        Session {
            cfg,
            state: State::Down,
            local_disc,
            local_diag: Diag::None,
            desired_min_tx: desired,
            required_min_rx: cfg.min_rx,
            tx_in_use: desired,
            rx_in_use: cfg.min_rx,
            poll_pending: false,
            remote_disc: 0,
            remote_state: State::Down,
            remote_diag: Diag::None,
            remote_min_rx: INITIAL_REMOTE_MIN_RX,
            remote_min_tx: Duration::ZERO,
            remote_mult: 0,
            remote_demand: false,
            next_tx: Some(now),
            detect_at: None,
            since: now,
            flaps: 0,
            rng: seed | 1,
            send_slack: Duration::ZERO,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Lets periodic packets go up to `slack` early (see [`Session::poll`]), at most a tenth
    /// of the transmit interval.
    pub fn set_send_slack(&mut self, slack: Duration) {
        self.send_slack = slack;
    }

    fn slack(&self) -> Duration {
        self.send_slack.min(self.tx_interval() / 10)
    }

    pub fn local_disc(&self) -> u32 {
        self.local_disc
    }

    /// When [`Session::poll`] has something to do: a packet to send (up to the send slack
    /// early) or a detection to check.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A received packet (already through [`Packet::decode`]) for this session.
    pub fn receive(&mut self, p: &Packet, now: Instant) -> Result<Vec<Output>, Discard> {
        if p.auth {
            return Err(Discard::Authentication);
        }
        if p.your_disc == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err(Discard::ZeroYourDiscriminator(p.state));
        }
        if p.your_disc != 0 && p.your_disc != self.local_disc {
            return Err(Discard::WrongDiscriminator { got: p.your_disc, ours: self.local_disc });
        }
        let mut out = Vec::new();
        let new_peer_session = self.remote_disc != 0 && p.my_disc != self.remote_disc;
        self.remote_disc = p.my_disc;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_demand = p.demand;
        let remote_rx_changed = self.remote_min_rx != p.required_min_rx;
        self.remote_min_rx = p.required_min_rx;
        self.remote_min_tx = p.desired_min_tx;
        self.remote_mult = p.detect_mult;
        if p.final_ && self.poll_pending {
            self.poll_pending = false;
            self.tx_in_use = self.desired_min_tx;
            self.rx_in_use = self.required_min_rx;
        }
        if self.state == State::AdminDown {
            return Ok(out);
        }
        match (self.state, p.state) {
            (State::Init | State::Up, State::AdminDown) => {
                let why = Why { remote_admin_down: true, peer_restarted: false };
                let diag = Diag::NeighborSignaledSessionDown;
                self.set_state(State::Down, diag, why, now, &mut out);
            }
            (State::Down, State::Down) => {
                self.set_state(State::Init, Diag::None, Why::default(), now, &mut out);
            }
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.set_state(State::Up, Diag::None, Why::default(), now, &mut out);
            }
            (State::Up, State::Down) => {
                let why = Why {
                    remote_admin_down: false,
                    peer_restarted: new_peer_session && p.diag == Diag::None,
                };
                let diag = Diag::NeighborSignaledSessionDown;
                self.set_state(State::Down, diag, why, now, &mut out);
            }
            _ => {}
        }
        if matches!(self.state, State::Init | State::Up) {
            self.detect_at = Some(now + self.detection_time());
        }
        if p.poll {
            // A Final at once, whatever the transmit timer says (§6.8.7).
            let mut f = self.packet();
            f.poll = false;
            f.final_ = true;
            out.push(Output::Send(f));
        }
        if remote_rx_changed && self.next_tx.is_some_and(|t| t > now + self.tx_interval()) {
            // The peer now takes packets faster than our schedule: do not make it wait.
            self.next_tx = Some(now + self.jittered(self.tx_interval()));
        }
        if self.remote_demand && self.state == State::Up && self.remote_state == State::Up {
            self.next_tx = None;
        } else if self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
        Ok(out)
    }

    /// Does what is due at `now`: declares the path dead when nothing came for the detection
    /// time, sends the periodic packet.
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.detect_at.is_some_and(|t| t <= now) {
            self.detect_at = None;
            if matches!(self.state, State::Init | State::Up) {
                // §6.8.1: the remote is forgotten when the detection time expires, before the
                // change is announced (so the Down goes out even to a peer that had asked for
                // no packets).
                self.remote_disc = 0;
                self.remote_state = State::Down;
                self.remote_mult = 0;
                self.remote_min_rx = INITIAL_REMOTE_MIN_RX;
                self.remote_demand = false;
                let diag = Diag::ControlDetectionTimeExpired;
                self.set_state(State::Down, diag, Why::default(), now, &mut out);
            }
        }
        if self.next_tx.is_some_and(|t| t <= now + self.slack()) {
            self.next_tx = None;
            if self.remote_min_rx.is_zero() {
                // The peer asked for no packets; look again when it says otherwise.
            } else {
                out.push(Output::Send(self.packet()));
                self.next_tx = Some(now + self.jittered(self.tx_interval()));
            }
        }
        out
    }

    /// New timers. Only what is advertised while Up changes, through a Poll Sequence.
    pub fn set_intervals(&mut self, cfg: Intervals, now: Instant) -> Vec<Output> {
        self.cfg = cfg;
        let mut out = Vec::new();
        if self.advertise() {
            self.send_now(now, &mut out);
        }
        out
    }

    /// Stops the session administratively: it says AdminDown to the peer and detects nothing.
    pub fn admin_down(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state != State::AdminDown {
            let why = Why::default();
            self.set_state(State::AdminDown, Diag::AdministrativelyDown, why, now, &mut out);
            self.detect_at = None;
        }
        out
    }

    /// Leaves AdminDown for Down.
    pub fn admin_up(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state == State::AdminDown {
            self.set_state(State::Down, Diag::None, Why::default(), now, &mut out);
        }
        out
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state,
            local_disc: self.local_disc,
            remote_disc: self.remote_disc,
            local_diag: self.local_diag,
            remote_diag: self.remote_diag,
            configured: self.cfg,
            tx_interval: self.tx_interval(),
            rx_interval: self.required_min_rx,
            remote_min_rx: self.remote_min_rx,
            remote_min_tx: self.remote_min_tx,
            remote_multiplier: self.remote_mult,
            detection_time: (self.remote_mult > 0).then(|| self.detection_time()),
            flaps: self.flaps,
            since: self.since,
            poll_pending: self.poll_pending,
        }
    }

    /// §6.8.7: never faster than the peer can receive.
    fn tx_interval(&self) -> Duration {
        self.tx_in_use.max(self.remote_min_rx)
    }

    /// §6.8.4, asynchronous mode.
    fn detection_time(&self) -> Duration {
        self.rx_in_use.max(self.remote_min_tx) * u32::from(self.remote_mult)
    }

    fn set_state(&mut self, to: State, diag: Diag, why: Why, now: Instant, out: &mut Vec<Output>) {
        let from = self.state;
        if from == to {
            return;
        }
        if from == State::Up {
            self.flaps += 1;
        }
        self.state = to;
        self.local_diag = diag;
        self.since = now;
        if to != State::Up && to != State::Init {
            self.detect_at = None;
        }
        let Why { remote_admin_down, peer_restarted } = why;
        out.push(Output::Changed(Transition { from, to, diag, remote_admin_down, peer_restarted }));
        self.advertise();
        // Tell the peer now rather than at the next (perhaps one-second) tick.
        self.send_now(now, out);
    }

    /// Brings what we advertise in line with the configuration and the state (§6.8.3); true
    /// when that started a Poll Sequence.
    fn advertise(&mut self) -> bool {
        let up = self.state == State::Up;
        let tx = if up { self.cfg.min_tx } else { self.cfg.min_tx.max(SLOW_TX) };
        let rx = self.cfg.min_rx;
        if tx == self.desired_min_tx && rx == self.required_min_rx {
            return false;
        }
        if !up {
            // Nothing depends on our rate outside Up: the new values hold at once.
            self.desired_min_tx = tx;
            self.required_min_rx = rx;
            self.tx_in_use = tx;
            self.rx_in_use = rx;
            self.poll_pending = false;
            return false;
        }
        // A shorter interval is safe at once; a longer one waits for the Final.
        if tx < self.tx_in_use {
            self.tx_in_use = tx;
        }
        if rx > self.rx_in_use {
            self.rx_in_use = rx;
        }
        self.desired_min_tx = tx;
        self.required_min_rx = rx;
        self.poll_pending = true;
        true
    }

    /// Sends the current packet now and restarts the periodic schedule from it.
    fn send_now(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.remote_min_rx.is_zero() {
            out.push(Output::Send(self.packet()));
            self.next_tx = Some(now + self.jittered(self.tx_interval()));
        }
    }

    fn packet(&self) -> Packet {
        Packet {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll_pending,
            final_: false,
            cpi: false,
            auth: false,
            demand: false,
            detect_mult: self.cfg.multiplier,
            my_disc: self.local_disc,
            your_disc: self.remote_disc,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            required_min_echo_rx: Duration::ZERO,
        }
    }

    /// The interval less 0-25 % at random, or 10-25 % with a multiplier of 1 (§6.8.7).
    fn jittered(&mut self, interval: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let (low, span) = if self.cfg.multiplier == 1 { (75, 15) } else { (75, 25) };
        let percent = low + (self.rng % (span + 1)) as u32;
        // Sent up to `slack` early, the interval must still be at least the floor.
        let floor = interval * low / 100 + self.slack();
        (interval * percent / 100).max(floor).min(interval)
    }
}

/// Calico's duration strings: `100ms`, `1s`, `1m`, and combinations like `1s500ms`.
pub mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }

    /// `300ms`, `1s` or `1m30s`: what Go's `time.ParseDuration` takes for whole units.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || format!("{s:?} is not a duration like \"100ms\", \"1s\" or \"1m\"");
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "us" | "µs" => Duration::from_micros(1),
                "ms" => Duration::from_millis(1),
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            let part = u32::try_from(n).ok().and_then(|n| unit.checked_mul(n)).ok_or_else(bad)?;
            total = total.checked_add(part).ok_or_else(bad)?;
        }
        Ok(total)
    }

    /// The shortest exact spelling: `300ms`, `1s`, `1500ms`.
    pub fn format(d: Duration) -> String {
        if d.subsec_nanos() == 0 {
            format!("{}s", d.as_secs())
        } else if d.subsec_nanos() % 1_000_000 == 0 {
            format!("{}ms", d.as_millis())
        } else {
            format!("{}us", d.as_micros())
        }
    }
}

#[cfg(test)]
mod tests;
