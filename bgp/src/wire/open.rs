//! OPEN (RFC 4271 §4.2), with capabilities in optional parameters (RFC 5492) and the extended
//! optional parameters length of RFC 9072.
//!
//! ```text
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u32};

use super::capability::{self, Capability};
use super::error::{DecodeErrorKind, Res, fail};
use crate::types::Asn;

/// Optional parameter type carrying capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: a non-extended length of 255 followed by type 255 means extended lengths.
const EXTENDED_PARAMS: u8 = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// My Autonomous System: the AS, or AS_TRANS when it needs four octets.
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`: My AS is AS_TRANS when the AS does not fit two octets, and the
    /// four-octet AS capability carries the real one (RFC 6793 §3).
    pub fn new(
        asn: Asn,
        hold_time: u16,
        bgp_id: Ipv4Addr,
        mut capabilities: Vec<Capability>,
    ) -> Open {
        if !capabilities.iter().any(|c| matches!(c, Capability::FourOctetAs(_))) {
            capabilities.push(Capability::FourOctetAs(asn));
        }
        let my_as = if asn.is_two_octet() { asn.0 as u16 } else { Asn::TRANS.0 as u16 };
        Open { version: 4, my_as, hold_time, bgp_id, capabilities }
    }

    /// The speaker's AS: from the four-octet AS capability when present (RFC 6793 §4.1).
    pub fn asn(&self) -> Asn {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(Asn(u32::from(self.my_as)))
    }

    pub fn has(&self, code: u8) -> bool {
        self.capabilities.iter().any(|c| c.code() == code)
    }
}

/// Decodes an OPEN body (`body` follows the header; offsets are counted from it).
pub(crate) fn decode(body: &[u8]) -> Res<'_, Open> {
    let (input, version) = be_u8(body)?;
    if version != 4 {
        return fail(body, DecodeErrorKind::UnsupportedVersion(version));
    }
    let (input, my_as) = be_u16(input)?;
    let hold_at = input;
    let (input, hold_time) = be_u16(input)?;
    // RFC 4271 §6.2: a hold time of one or two seconds must be rejected.
    if hold_time == 1 || hold_time == 2 {
        return fail(hold_at, DecodeErrorKind::UnacceptableHoldTime(hold_time));
    }
    let id_at = input;
    let (input, id) = be_u32(input)?;
    let bgp_id = Ipv4Addr::from(id);
    // RFC 6286 §2.2: the identifier is a non-zero 32-bit number.
    if id == 0 {
        return fail(id_at, DecodeErrorKind::BadBgpIdentifier(bgp_id));
    }
    let (input, opt_len) = be_u8(input)?;
    let (input, params, extended) = if opt_len == 255 && input.first() == Some(&EXTENDED_PARAMS) {
        let (input, _) = be_u8(input)?;
        let (input, len) = be_u16(input)?;
        let (input, params) = take(len)(input)?;
        (input, params, true)
    } else {
        let (input, params) = take(opt_len)(input)?;
        (input, params, false)
    };
    if !input.is_empty() {
        return fail(input, DecodeErrorKind::MalformedOpen("bytes after the optional parameters"));
    }
    let mut capabilities = Vec::new();
    let mut rest = params;
    while !rest.is_empty() {
        let at = rest;
        let (r, ptype) = be_u8(rest)?;
        let (r, plen) =
            if extended { be_u16(r)? } else { be_u8(r).map(|(r, l)| (r, u16::from(l)))? };
        let (r, mut value) = take(plen)(r)?;
        if ptype != PARAM_CAPABILITIES {
            return fail(at, DecodeErrorKind::UnsupportedOptionalParameter(ptype));
        }
        while !value.is_empty() {
            let (v, cap) = capability::decode(value)?;
            capabilities.push(cap);
            value = v;
        }
        rest = r;
    }
    Ok((input, Open { version, my_as, hold_time, bgp_id, capabilities }))
}

/// Appends an OPEN body. All capabilities go into one parameter; RFC 9072 extended lengths are
/// used only when that parameter would not fit one octet.
pub(crate) fn encode(open: &Open, out: &mut Vec<u8>) {
    out.push(open.version);
    out.extend_from_slice(&open.my_as.to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&u32::from(open.bgp_id).to_be_bytes());
    let mut caps = Vec::new();
    for c in &open.capabilities {
        capability::encode(c, &mut caps);
    }
    if caps.is_empty() {
        out.push(0);
    } else if caps.len() + 2 <= 255 {
        out.push((caps.len() + 2) as u8);
        out.extend_from_slice(&[PARAM_CAPABILITIES, caps.len() as u8]);
        out.extend_from_slice(&caps);
    } else {
        let params_len = (caps.len() + 3) as u16;
        out.extend_from_slice(&[255, EXTENDED_PARAMS]);
        out.extend_from_slice(&params_len.to_be_bytes());
        out.push(PARAM_CAPABILITIES);
        out.extend_from_slice(&(caps.len() as u16).to_be_bytes());
        out.extend_from_slice(&caps);
    }
}
