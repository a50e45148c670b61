//! UPDATE (RFC 4271 §4.3, RFC 4760 for MP_REACH_NLRI / MP_UNREACH_NLRI, RFC 7606 for errors).
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! A decoded UPDATE says how RFC 7606 dealt with its attributes: [`Update::treat_as_withdraw`]
//! set means every route it announces must be withdrawn instead; [`Update::discarded`] lists
//! attributes that were dropped. Errors that reset the session are [`DecodeError`]s.

use super::attribute::{self, AttrContext, MP_REACH_NLRI, MP_UNREACH_NLRI, flag};
pub use super::attribute::{AttrProblem, MpReach, MpUnreach, PathAttributes};
use super::error::{DecodeError, DecodeErrorKind, offset};
use super::nlri::{self, Nlri};
use crate::types::{Family, FamilySet};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// IPv4 unicast routes withdrawn in the classic field.
    pub withdrawn: Vec<Nlri>,
    /// `None` when the UPDATE has no path attributes at all.
    pub attrs: Option<PathAttributes>,
    /// IPv4 unicast routes announced in the classic field.
    pub nlri: Vec<Nlri>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    /// RFC 7606: the attributes were malformed in a way that turns every announced route of
    /// this UPDATE into a withdrawal.
    pub treat_as_withdraw: Option<AttrProblem>,
    /// RFC 7606: attributes that were dropped.
    pub discarded: Vec<AttrProblem>,
}

impl Update {
    /// An End-of-RIB marker (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an empty
    /// MP_UNREACH_NLRI for other families.
    pub fn end_of_rib(family: Family) -> Update {
        match family {
            Family::Ipv4Unicast => Update::default(),
            _ => Update {
                mp_unreach: Some(MpUnreach { family, withdrawn: vec![] }),
                ..Update::default()
            },
        }
    }

    /// The family this UPDATE marks the end of the initial table for, if it is an End-of-RIB.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty()
            || !self.nlri.is_empty()
            || self.mp_reach.is_some()
            || self.attrs.is_some()
        {
            return None;
        }
        match &self.mp_unreach {
            None => Some(Family::Ipv4Unicast),
            Some(u) if u.withdrawn.is_empty() => Some(u.family),
            _ => None,
        }
    }

    /// Every route this UPDATE announces, with its family (none under treat-as-withdraw).
    pub fn announced(&self) -> impl Iterator<Item = &Nlri> {
        let taw = self.treat_as_withdraw.is_some();
        let reach = self.mp_reach.iter().flat_map(|r| r.nlri.iter());
        self.nlri.iter().chain(reach).filter(move |_| !taw)
    }

    /// Every route this UPDATE withdraws, including, under treat-as-withdraw, the ones it
    /// announced.
    pub fn withdrawals(&self) -> impl Iterator<Item = &Nlri> {
        let taw = self.treat_as_withdraw.is_some();
        let unreach = self.mp_unreach.iter().flat_map(|u| u.withdrawn.iter());
        let as_withdrawn = self
            .nlri
            .iter()
            .chain(self.mp_reach.iter().flat_map(|r| r.nlri.iter()))
            .filter(move |_| taw);
        self.withdrawn.iter().chain(unreach).chain(as_withdrawn)
    }
}

/// What the negotiated capabilities change about decoding UPDATEs.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateContext {
    pub four_octet_as: bool,
    /// Families for which each NLRI carries a path identifier (ADD-PATH receive, RFC 7911).
    pub add_path: FamilySet,
}

/// Decodes an UPDATE. `msg` is the whole message, header included (for offsets).
pub fn decode(msg: &[u8], cx: UpdateContext) -> Result<Update, DecodeError> {
    let body = msg.get(super::header::HEADER_LEN..).unwrap_or_default();
    let err = |at: &[u8], kind| DecodeError::new(offset(msg, at), kind);
    let len_at = |b: &[u8]| b.get(..2).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));

    let wlen = len_at(body).ok_or_else(|| {
        err(body, DecodeErrorKind::MalformedAttributeList("withdrawn routes length missing"))
    })?;
    let wbytes = body.get(2..2 + wlen).ok_or_else(|| {
        err(body, DecodeErrorKind::MalformedAttributeList("withdrawn routes run past the message"))
    })?;
    let rest = &body[2 + wlen..];
    let alen = len_at(rest).ok_or_else(|| {
        err(rest, DecodeErrorKind::MalformedAttributeList("total path attribute length missing"))
    })?;
    let abytes = rest.get(2..2 + alen).ok_or_else(|| {
        err(rest, DecodeErrorKind::MalformedAttributeList("path attributes run past the message"))
    })?;
    let nbytes = &rest[2 + alen..];

    let v4_add_path = cx.add_path.contains(Family::Ipv4Unicast);
    let mut withdrawn = Vec::new();
    nlri::decode(wbytes, Family::Ipv4Unicast, v4_add_path, &mut withdrawn)
        .map_err(|(o, reason)| err(&wbytes[o..], DecodeErrorKind::InvalidNetworkField(reason)))?;
    let decoded = if alen > 0 {
        Some(attribute::decode(
            msg,
            abytes,
            AttrContext { four_octet_as: cx.four_octet_as, add_path: cx.add_path },
        )?)
    } else {
        None
    };
    let mut nlri = Vec::new();
    nlri::decode(nbytes, Family::Ipv4Unicast, v4_add_path, &mut nlri)
        .map_err(|(o, reason)| err(&nbytes[o..], DecodeErrorKind::InvalidNetworkField(reason)))?;

    let mut u = Update { withdrawn, nlri, ..Update::default() };
    if let Some(d) = decoded {
        u.mp_reach = d.mp_reach;
        u.mp_unreach = d.mp_unreach;
        u.treat_as_withdraw = d.withdraw;
        u.discarded = d.discarded;
        // One form for "no path attributes": an attribute list whose every attribute was
        // dropped (say, an unknown non-transitive one) means the same as none at all.
        u.attrs = Some(d.attrs).filter(|a| *a != PathAttributes::default());
    }
    // RFC 7606 §3.d: routes without their mandatory attributes are withdrawn.
    let reaches = !u.nlri.is_empty() || u.mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
    if reaches && u.treat_as_withdraw.is_none() {
        let a = u.attrs.as_ref();
        let missing = if a.and_then(|a| a.origin).is_none() {
            Some((attribute::ORIGIN, "ORIGIN missing"))
        } else if a.and_then(|a| a.as_path.as_ref()).is_none() {
            Some((attribute::AS_PATH, "AS_PATH missing"))
        } else if !u.nlri.is_empty() && a.and_then(|a| a.next_hop).is_none() {
            Some((attribute::NEXT_HOP, "NEXT_HOP missing"))
        } else {
            None
        };
        if let Some((type_code, reason)) = missing {
            u.treat_as_withdraw =
                Some(AttrProblem { type_code, offset: offset(msg, abytes), reason });
        }
    }
    Ok(u)
}

/// Why an UPDATE could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the UPDATE would be {len} octets; the session allows {max}")]
    TooLong { len: usize, max: usize },
}

/// What the negotiated capabilities change about encoding UPDATEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateEncodeContext {
    pub four_octet_as: bool,
    /// Families for which each NLRI carries a path identifier (ADD-PATH send).
    pub add_path: FamilySet,
    pub max_len: usize,
}

/// Appends an UPDATE message (header included). Fails, leaving `out` as it was, when the
/// message would exceed `cx.max_len`.
pub fn encode(u: &Update, cx: UpdateEncodeContext, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = super::header::begin(out, super::header::MessageType::Update);
    let v4_add_path = cx.add_path.contains(Family::Ipv4Unicast);
    let wlen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for n in &u.withdrawn {
        nlri::encode(n, v4_add_path, out);
    }
    let wlen = out.len() - wlen_at - 2;
    out[wlen_at..wlen_at + 2].copy_from_slice(&(wlen as u16).to_be_bytes());

    let alen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let (low, high) = match &u.attrs {
        Some(a) => attribute::encode_split(a, cx.four_octet_as),
        None => (vec![], vec![]),
    };
    out.extend_from_slice(&low);
    let mut v = Vec::new();
    if let Some(r) = &u.mp_reach {
        let (afi, safi) = r.family.afi_safi();
        v.extend_from_slice(&afi.to_be_bytes());
        v.push(safi);
        attribute::encode_mp_next_hop(&r.next_hop, &mut v);
        v.push(0);
        let add_path = cx.add_path.contains(r.family);
        r.nlri.iter().for_each(|n| nlri::encode(n, add_path, &mut v));
        attribute::put(out, flag::OPTIONAL, MP_REACH_NLRI, &v);
    }
    if let Some(w) = &u.mp_unreach {
        v.clear();
        let (afi, safi) = w.family.afi_safi();
        v.extend_from_slice(&afi.to_be_bytes());
        v.push(safi);
        let add_path = cx.add_path.contains(w.family);
        w.withdrawn.iter().for_each(|n| nlri::encode(n, add_path, &mut v));
        attribute::put(out, flag::OPTIONAL, MP_UNREACH_NLRI, &v);
    }
    out.extend_from_slice(&high);
    let alen = out.len() - alen_at - 2;
    out[alen_at..alen_at + 2].copy_from_slice(&(alen as u16).to_be_bytes());
    for n in &u.nlri {
        nlri::encode(n, v4_add_path, out);
    }
    let len = out.len() - start;
    if len > cx.max_len {
        out.truncate(start);
        return Err(EncodeError::TooLong { len, max: cx.max_len });
    }
    super::header::finish(out, start);
    Ok(())
}
