//! The BFD control packet (RFC 5880 §4.1) and the reception checks that need no session
//! (§6.8.6). Intervals travel in microseconds on the wire and are `Duration`s here.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! ```

use std::time::Duration;

/// The length of a control packet without authentication.
pub const LEN: usize = 24;
/// Shortest valid length with the A bit set: the mandatory part plus an auth header.
const LEN_WITH_AUTH: usize = 26;
const VERSION: u8 = 1;

/// Session state (§4.1 "Sta").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// Lower-case, as FRR prints it.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "shutdown",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Why the session last left Up (§4.1 "Diag"). The field is 5 bits; values past 8 are
/// reserved and kept as they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    Reserved(u8),
}

impl Diag {
    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(c) => c & 0x1f,
        }
    }

    pub fn from_code(c: u8) -> Diag {
        match c & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            c => Diag::Reserved(c),
        }
    }

    /// As FRR's `show bfd peers` words it.
    pub fn name(self) -> &'static str {
        match self {
            Diag::None => "ok",
            Diag::ControlDetectionTimeExpired => "control detection time expired",
            Diag::EchoFunctionFailed => "echo function failed",
            Diag::NeighborSignaledSessionDown => "neighbor signaled session down",
            Diag::ForwardingPlaneReset => "forwarding plane reset",
            Diag::PathDown => "path down",
            Diag::ConcatenatedPathDown => "concatenated path down",
            Diag::AdministrativelyDown => "administratively down",
            Diag::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diag::Reserved(_) => "reserved",
        }
    }
}

impl std::fmt::Display for Diag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Diag::Reserved(c) => write!(f, "reserved diagnostic {c}"),
            d => f.write_str(d.name()),
        }
    }
}

/// One control packet. Authentication is not supported: `auth` only records that the A bit
/// was set, so the session can discard the packet (§6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// Control Plane Independent: BFD does not share fate with the control plane.
    pub cpi: bool,
    pub auth: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_disc: u32,
    pub your_disc: u32,
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub required_min_echo_rx: Duration,
}

/// Why a received datagram is not a packet to act on (§6.8.6). Each is a MUST-discard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} octets is shorter than a control packet (24)")]
    Short(usize),
    #[error("version {0}, only 1 exists")]
    Version(u8),
    #[error("length field {field} is below the minimum {min}")]
    LengthBelowMinimum { field: u8, min: usize },
    #[error("length field {field} exceeds the {payload} octets received")]
    LengthBeyondPayload { field: u8, payload: usize },
    #[error("detect multiplier is zero")]
    ZeroDetectMult,
    #[error("multipoint bit set")]
    Multipoint,
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("poll and final both set")]
    PollAndFinal,
}

impl Packet {
    /// Decodes a UDP payload, discarding what §6.8.6 says to discard before any session is
    /// looked up.
    pub fn decode(b: &[u8]) -> Result<Packet, DecodeError> {
        if b.len() < LEN {
            return Err(DecodeError::Short(b.len()));
        }
        let version = b[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let flags = b[1];
        let auth = flags & 0x04 != 0;
        let length = b[3];
        let min = if auth { LEN_WITH_AUTH } else { LEN };
        if usize::from(length) < min {
            return Err(DecodeError::LengthBelowMinimum { field: length, min });
        }
        if usize::from(length) > b.len() {
            return Err(DecodeError::LengthBeyondPayload { field: length, payload: b.len() });
        }
        let detect_mult = b[2];
        if detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if flags & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        let word = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let my_disc = word(4);
        if my_disc == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        let poll = flags & 0x20 != 0;
        let final_ = flags & 0x10 != 0;
        if poll && final_ {
            return Err(DecodeError::PollAndFinal);
        }
        Ok(Packet {
            diag: Diag::from_code(b[0]),
            state: State::from_bits(flags >> 6),
            poll,
            final_,
            cpi: flags & 0x08 != 0,
            auth,
            demand: flags & 0x02 != 0,
            detect_mult,
            my_disc,
            your_disc: word(8),
            desired_min_tx: micros(word(12)),
            required_min_rx: micros(word(16)),
            required_min_echo_rx: micros(word(20)),
        })
    }

    /// The 24 octets on the wire (never with authentication).
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = VERSION << 5 | self.diag.code();
        b[1] = (self.state as u8) << 6
            | u8::from(self.poll) << 5
            | u8::from(self.final_) << 4
            | u8::from(self.cpi) << 3
            | u8::from(self.auth) << 2
            | u8::from(self.demand) << 1;
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_disc.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_disc.to_be_bytes());
        b[12..16].copy_from_slice(&to_micros(self.desired_min_tx).to_be_bytes());
        b[16..20].copy_from_slice(&to_micros(self.required_min_rx).to_be_bytes());
        b[20..24].copy_from_slice(&to_micros(self.required_min_echo_rx).to_be_bytes());
        b
    }
}

fn micros(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

/// Saturates at the field's maximum (about 71 minutes), far beyond any interval we allow.
fn to_micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Packet {
        Packet {
            diag: Diag::ControlDetectionTimeExpired,
            state: State::Up,
            poll: true,
            final_: false,
            cpi: false,
            auth: false,
            demand: false,
            detect_mult: 3,
            my_disc: 0x0102_0304,
            your_disc: 0xa0b0_c0d0,
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(100),
            required_min_echo_rx: Duration::ZERO,
        }
    }

    #[test]
    fn a_packet_encodes_to_the_rfc_layout() {
        let b = sample().encode();
        assert_eq!(b[0], 0x21, "version 1, diag 1");
        assert_eq!(b[1], 0xe0, "state Up, poll");
        assert_eq!(b[2], 3);
        assert_eq!(b[3], 24);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[12..16], &300_000u32.to_be_bytes());
        assert_eq!(&b[16..20], &100_000u32.to_be_bytes());
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let r = seed;
            let poll = r & 1 != 0;
            let p = Packet {
                diag: Diag::from_code((r >> 8) as u8),
                state: State::from_bits((r >> 16) as u8),
                poll,
                final_: !poll && r & 2 != 0,
                cpi: r & 4 != 0,
                auth: false,
                demand: r & 8 != 0,
                detect_mult: ((r >> 24) as u8).max(1),
                my_disc: ((r >> 32) as u32).max(1),
                your_disc: (r >> 20) as u32,
                desired_min_tx: micros((r >> 3) as u32),
                required_min_rx: micros((r >> 5) as u32),
                required_min_echo_rx: micros((r >> 7) as u32),
            };
            assert_eq!(Packet::decode(&p.encode()), Ok(p));
        }
    }

    #[test]
    fn the_diagnostic_keeps_all_five_bits() {
        let mut p = sample();
        p.diag = Diag::Reserved(0x1f);
        let b = p.encode();
        assert_eq!(b[0] & 0x1f, 0x1f);
        assert_eq!(Packet::decode(&b).map(|p| p.diag), Ok(Diag::Reserved(31)));
    }

    /// RFC 5880 §6.8.6, one test per rule that needs no session.
    #[test]
    fn the_reception_checks_discard_what_the_rfc_says() {
        let good = sample().encode();
        let with = |f: &dyn Fn(&mut [u8; LEN])| {
            let mut b = good;
            f(&mut b);
            Packet::decode(&b)
        };
        assert_eq!(Packet::decode(&good[..23]), Err(DecodeError::Short(23)));
        assert_eq!(with(&|b| b[0] = 0x40), Err(DecodeError::Version(2)));
        assert_eq!(
            with(&|b| b[3] = 23),
            Err(DecodeError::LengthBelowMinimum { field: 23, min: 24 })
        );
        assert_eq!(
            with(&|b| b[1] |= 0x04),
            Err(DecodeError::LengthBelowMinimum { field: 24, min: 26 }),
            "the A bit needs an authentication section"
        );
        assert_eq!(
            with(&|b| b[3] = 40),
            Err(DecodeError::LengthBeyondPayload { field: 40, payload: 24 })
        );
        assert_eq!(with(&|b| b[2] = 0), Err(DecodeError::ZeroDetectMult));
        assert_eq!(with(&|b| b[1] |= 0x01), Err(DecodeError::Multipoint));
        assert_eq!(with(&|b| b[4..8].fill(0)), Err(DecodeError::ZeroMyDiscriminator));
        assert_eq!(with(&|b| b[1] |= 0x10), Err(DecodeError::PollAndFinal));
    }

    #[test]
    fn trailing_octets_beyond_the_length_are_ignored() {
        let mut b = sample().encode().to_vec();
        b.extend_from_slice(&[0xee; 8]);
        assert_eq!(Packet::decode(&b), Ok(sample()));
    }
}
