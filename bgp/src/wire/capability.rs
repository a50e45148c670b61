//! Capabilities advertised in OPEN (RFC 5492). Unknown ones are kept as bytes and otherwise
//! ignored, as RFC 5492 asks.
//!
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! +------------------------------+
//! ```

use nom::bytes::complete::take;
use nom::number::complete::be_u8;

use super::error::{DecodeErrorKind, Res, fail};
use crate::types::{Asn, Family};

/// Capability codes (IANA "Capability Codes").
pub mod code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}

/// One family in a Graceful Restart capability (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrFamily {
    pub afi: u16,
    pub safi: u8,
    /// The F bit: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// ADD-PATH directions for one family (RFC 7911 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddPathFamily {
    pub afi: u16,
    pub safi: u8,
    pub receive: bool,
    pub send: bool,
}

/// One Extended Next Hop entry (RFC 8950 §3): NLRI of `afi`/`safi` may carry a next hop of
/// `next_hop_afi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtNextHopFamily {
    pub afi: u16,
    pub safi: u16,
    pub next_hop_afi: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760.
    Multiprotocol { afi: u16, safi: u8 },
    /// RFC 2918.
    RouteRefresh,
    /// RFC 7313.
    EnhancedRouteRefresh,
    /// RFC 6793.
    FourOctetAs(Asn),
    /// RFC 4724 (the N bit is RFC 8538's).
    GracefulRestart {
        restart_state: bool,
        notification: bool,
        restart_time: u16,
        families: Vec<GrFamily>,
    },
    /// RFC 7911.
    AddPath(Vec<AddPathFamily>),
    /// RFC 8654.
    ExtendedMessage,
    /// RFC 8950.
    ExtendedNextHop(Vec<ExtNextHopFamily>),
    /// Anything else, kept as it came.
    Unknown { code: u8, value: Vec<u8> },
}

impl Capability {
    pub fn multiprotocol(family: Family) -> Capability {
        let (afi, safi) = family.afi_safi();
        Capability::Multiprotocol { afi, safi }
    }

    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol { .. } => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::GracefulRestart { .. } => code::GRACEFUL_RESTART,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::Unknown { code, .. } => *code,
        }
    }
}

fn malformed<'a, T>(at: &'a [u8], what: &'static str) -> Res<'a, T> {
    fail(at, DecodeErrorKind::MalformedOpen(what))
}

/// Decodes one capability TLV.
pub(crate) fn decode(input: &[u8]) -> Res<'_, Capability> {
    let start = input;
    let (input, code) = be_u8(input)?;
    let (input, len) = be_u8(input)?;
    let (rest, v) = take(len)(input)?;
    let cap = match code {
        code::MULTIPROTOCOL => {
            if v.len() != 4 {
                return malformed(start, "multiprotocol capability of wrong length");
            }
            Capability::Multiprotocol { afi: u16::from_be_bytes([v[0], v[1]]), safi: v[3] }
        }
        code::ROUTE_REFRESH if v.is_empty() => Capability::RouteRefresh,
        code::ENHANCED_ROUTE_REFRESH if v.is_empty() => Capability::EnhancedRouteRefresh,
        code::EXTENDED_MESSAGE if v.is_empty() => Capability::ExtendedMessage,
        code::ROUTE_REFRESH | code::ENHANCED_ROUTE_REFRESH | code::EXTENDED_MESSAGE => {
            return malformed(start, "capability without value has a value");
        }
        code::FOUR_OCTET_AS => match *v {
            [a, b, c, d] => Capability::FourOctetAs(Asn(u32::from_be_bytes([a, b, c, d]))),
            _ => return malformed(start, "four-octet AS capability of wrong length"),
        },
        code::GRACEFUL_RESTART => {
            if v.len() < 2 || (v.len() - 2) % 4 != 0 {
                return malformed(start, "graceful restart capability of wrong length");
            }
            let flags_time = u16::from_be_bytes([v[0], v[1]]);
            let families = v[2..]
                .chunks_exact(4)
                .map(|c| GrFamily {
                    afi: u16::from_be_bytes([c[0], c[1]]),
                    safi: c[2],
                    forwarding_preserved: c[3] & 0x80 != 0,
                })
                .collect();
            Capability::GracefulRestart {
                restart_state: flags_time & 0x8000 != 0,
                notification: flags_time & 0x4000 != 0,
                restart_time: flags_time & 0x0fff,
                families,
            }
        }
        code::ADD_PATH => {
            if v.len() % 4 != 0 {
                return malformed(start, "ADD-PATH capability of wrong length");
            }
            let mut families = Vec::with_capacity(v.len() / 4);
            for c in v.chunks_exact(4) {
                if !(1..=3).contains(&c[3]) {
                    return malformed(start, "ADD-PATH send/receive value not 1, 2 or 3");
                }
                families.push(AddPathFamily {
                    afi: u16::from_be_bytes([c[0], c[1]]),
                    safi: c[2],
                    receive: c[3] & 1 != 0,
                    send: c[3] & 2 != 0,
                });
            }
            Capability::AddPath(families)
        }
        code::EXTENDED_NEXT_HOP => {
            if v.len() % 6 != 0 {
                return malformed(start, "extended next hop capability of wrong length");
            }
            Capability::ExtendedNextHop(
                v.chunks_exact(6)
                    .map(|c| ExtNextHopFamily {
                        afi: u16::from_be_bytes([c[0], c[1]]),
                        safi: u16::from_be_bytes([c[2], c[3]]),
                        next_hop_afi: u16::from_be_bytes([c[4], c[5]]),
                    })
                    .collect(),
            )
        }
        _ => Capability::Unknown { code, value: v.to_vec() },
    };
    Ok((rest, cap))
}

/// Appends one capability TLV.
pub(crate) fn encode(cap: &Capability, out: &mut Vec<u8>) {
    out.push(cap.code());
    let len_at = out.len();
    out.push(0);
    match cap {
        Capability::Multiprotocol { afi, safi } => {
            out.extend_from_slice(&afi.to_be_bytes());
            out.extend_from_slice(&[0, *safi]);
        }
        Capability::RouteRefresh
        | Capability::EnhancedRouteRefresh
        | Capability::ExtendedMessage => {}
        Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.0.to_be_bytes()),
        Capability::GracefulRestart { restart_state, notification, restart_time, families } => {
            let flags = (u16::from(*restart_state) << 15) | (u16::from(*notification) << 14);
            out.extend_from_slice(&(flags | (restart_time & 0x0fff)).to_be_bytes());
            for f in families {
                out.extend_from_slice(&f.afi.to_be_bytes());
                out.extend_from_slice(&[f.safi, if f.forwarding_preserved { 0x80 } else { 0 }]);
            }
        }
        Capability::AddPath(families) => {
            for f in families {
                out.extend_from_slice(&f.afi.to_be_bytes());
                out.extend_from_slice(&[f.safi, u8::from(f.receive) | (u8::from(f.send) << 1)]);
            }
        }
        Capability::ExtendedNextHop(entries) => {
            for e in entries {
                for v in [e.afi, e.safi, e.next_hop_afi] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        Capability::Unknown { value, .. } => out.extend_from_slice(value),
    }
    // Capability values fit in one octet: the capabilities we build are far shorter.
    out[len_at] = (out.len() - len_at - 1).min(255) as u8;
}
