//! Path attributes (RFC 4271 §4.3, §5) and what to do when one is malformed (RFC 7606).
//!
//! ```text
//! +-----------------+-----------------+------------------------------+
//! | Attr. Flags (1) | Attr. Type (1)  | Length (1, or 2 if Extended) | Value ...
//! +-----------------+-----------------+------------------------------+
//! flags: 0x80 Optional, 0x40 Transitive, 0x20 Partial, 0x10 Extended Length
//! ```
//!
//! Each attribute Tartan knows has one row of rules below ([`rule`]): its expected flags and the
//! RFC 7606 disposition when it is malformed — *treat-as-withdraw* (the UPDATE's routes are
//! withdrawn, the session stays), *discard* (the attribute is dropped), or a session reset
//! (MP_REACH_NLRI and MP_UNREACH_NLRI, whose routes cannot be found otherwise).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::aspath::{self, AsPath};
use super::error::{DecodeError, DecodeErrorKind, offset};
use super::nlri::{self, Nlri};
use crate::types::{Asn, Community, ExtCommunity, Family, LargeCommunity, NextHop, Origin};

pub const ORIGIN: u8 = 1;
pub const AS_PATH: u8 = 2;
pub const NEXT_HOP: u8 = 3;
pub const MED: u8 = 4;
pub const LOCAL_PREF: u8 = 5;
pub const ATOMIC_AGGREGATE: u8 = 6;
pub const AGGREGATOR: u8 = 7;
pub const COMMUNITIES: u8 = 8;
pub const ORIGINATOR_ID: u8 = 9;
pub const CLUSTER_LIST: u8 = 10;
pub const MP_REACH_NLRI: u8 = 14;
pub const MP_UNREACH_NLRI: u8 = 15;
pub const EXT_COMMUNITIES: u8 = 16;
pub const AS4_PATH: u8 = 17;
pub const AS4_AGGREGATOR: u8 = 18;
pub const LARGE_COMMUNITIES: u8 = 32;

pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// AGGREGATOR: the AS and router that formed an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aggregator {
    pub asn: Asn,
    pub addr: Ipv4Addr,
}

/// An optional transitive attribute Tartan does not know, kept as it was received and passed
/// on with the Optional, Transitive and Partial bits set (RFC 4271 §5) — so its received flags
/// carry nothing worth keeping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawAttribute {
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE, in one canonical form (communities sorted and without
/// repeats, unknown attributes in type order), except MP_REACH_NLRI and MP_UNREACH_NLRI (which carry
/// routes, see [`super::update::MpReach`]) and AS4_PATH / AS4_AGGREGATOR (merged into AS_PATH
/// and AGGREGATOR when decoding, produced again when encoding for an old speaker).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Vec<Community>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub ext_communities: Vec<ExtCommunity>,
    pub large_communities: Vec<LargeCommunity>,
    pub unknown: Vec<RawAttribute>,
}

/// MP_REACH_NLRI (RFC 4760 §3): routes of a family with their next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub family: Family,
    pub next_hop: NextHop,
    pub nlri: Vec<Nlri>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4): withdrawn routes of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: Vec<Nlri>,
}

/// A problem with one attribute that RFC 7606 handles without resetting the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrProblem {
    pub type_code: u8,
    /// Offset of the attribute from the start of the message.
    pub offset: usize,
    pub reason: &'static str,
}

/// RFC 7606 §2 approaches for a malformed attribute Tartan knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    TreatAsWithdraw,
    Discard,
}

/// The rules for one known attribute: expected Optional and Transitive bits, and the
/// disposition when malformed (RFC 7606 §7).
struct Rule {
    optional: bool,
    transitive: bool,
    malformed: Disposition,
}

fn rule(type_code: u8) -> Option<Rule> {
    use Disposition::{Discard, TreatAsWithdraw as Taw};
    let r = |optional, transitive, malformed| Some(Rule { optional, transitive, malformed });
    match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF => r(false, true, Taw),
        ATOMIC_AGGREGATE => r(false, true, Discard),
        MED | ORIGINATOR_ID | CLUSTER_LIST => r(true, false, Taw),
        AGGREGATOR | AS4_PATH | AS4_AGGREGATOR => r(true, true, Discard),
        COMMUNITIES | EXT_COMMUNITIES | LARGE_COMMUNITIES => r(true, true, Taw),
        _ => None,
    }
}

/// What decoding the attribute list produced.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub attrs: PathAttributes,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub withdraw: Option<AttrProblem>,
    pub discarded: Vec<AttrProblem>,
}

/// Per-family ADD-PATH reception and the AS width, as negotiated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttrContext {
    pub four_octet_as: bool,
    pub add_path: crate::types::FamilySet,
}

fn u32_of(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

/// Decodes the attribute list `list`, a slice of the whole message `msg` (for offsets).
pub(crate) fn decode(msg: &[u8], list: &[u8], cx: AttrContext) -> Result<Decoded, DecodeError> {
    let mut d = Decoded::default();
    let mut seen = [0u64; 4];
    let mut as4_path: Option<AsPath> = None;
    let mut as4_aggregator: Option<Aggregator> = None;
    let mut rest = list;
    while !rest.is_empty() {
        let at = offset(msg, rest);
        let header = |n: usize| rest.get(..n).is_some();
        if !header(3) {
            overrun(&mut d, at)?;
            break;
        }
        let (flags, tc) = (rest[0], rest[1]);
        let (hlen, len) = if flags & flag::EXTENDED_LENGTH != 0 {
            if !header(4) {
                overrun(&mut d, at)?;
                break;
            }
            (4, usize::from(u16::from_be_bytes([rest[2], rest[3]])))
        } else {
            (3, usize::from(rest[2]))
        };
        let Some(raw) = rest.get(..hlen + len) else {
            overrun(&mut d, at)?;
            break;
        };
        let v = &raw[hlen..];
        rest = &rest[hlen + len..];

        let (word, bit) = (usize::from(tc) / 64, 1u64 << (tc % 64));
        if seen[word] & bit != 0 {
            // RFC 7606 §3.g: repeated MP attributes reset the session; any other repeat is
            // dropped, the first occurrence kept.
            if tc == MP_REACH_NLRI || tc == MP_UNREACH_NLRI {
                return Err(DecodeError::new(
                    at,
                    DecodeErrorKind::MalformedAttributeList(
                        "repeated MP_REACH_NLRI or MP_UNREACH_NLRI",
                    ),
                ));
            }
            d.discarded.push(AttrProblem {
                type_code: tc,
                offset: at,
                reason: "repeated attribute; the first one is kept",
            });
            continue;
        }
        seen[word] |= bit;

        let problem = |reason| AttrProblem { type_code: tc, offset: at, reason };
        if tc == MP_REACH_NLRI || tc == MP_UNREACH_NLRI {
            let mp_err = |reason| {
                DecodeError::new(
                    at,
                    DecodeErrorKind::MalformedMpAttribute {
                        type_code: tc,
                        reason,
                        attribute: raw.to_vec(),
                    },
                )
            };
            if flags & (flag::OPTIONAL | flag::TRANSITIVE) != flag::OPTIONAL {
                return Err(mp_err("flags must be optional, non-transitive"));
            }
            let base = offset(msg, v);
            match decode_mp(v, tc, cx).map_err(|(o, reason)| {
                DecodeError::new(
                    base + o,
                    DecodeErrorKind::MalformedMpAttribute {
                        type_code: tc,
                        reason,
                        attribute: raw.to_vec(),
                    },
                )
            })? {
                Mp::Reach(r) => d.mp_reach = Some(r),
                Mp::Unreach(u) => d.mp_unreach = Some(u),
                Mp::UnsupportedFamily => {
                    d.discarded.push(problem("address family Tartan does not speak"))
                }
            }
            continue;
        }

        let Some(rule) = rule(tc) else {
            // RFC 4271 §6.3: an unrecognized well-known attribute resets the session; unknown
            // optional transitive attributes are passed on, non-transitive ones dropped.
            if flags & flag::OPTIONAL == 0 {
                return Err(DecodeError::new(
                    at,
                    DecodeErrorKind::UnrecognizedWellKnown {
                        type_code: tc,
                        attribute: raw.to_vec(),
                    },
                ));
            }
            if flags & flag::TRANSITIVE != 0 {
                d.attrs.unknown.push(RawAttribute { type_code: tc, value: v.to_vec() });
            }
            continue;
        };
        let fail = |d: &mut Decoded, reason: &'static str| match rule.malformed {
            Disposition::TreatAsWithdraw => {
                d.withdraw.get_or_insert(problem(reason));
            }
            Disposition::Discard => d.discarded.push(problem(reason)),
        };
        // RFC 7606 §3.c: Optional or Transitive in conflict with the attribute's definition.
        if (flags & flag::OPTIONAL != 0) != rule.optional
            || (flags & flag::TRANSITIVE != 0) != rule.transitive
        {
            fail(&mut d, "attribute flags conflict with its type");
            continue;
        }
        let a = &mut d.attrs;
        let outcome: Result<(), &'static str> = match tc {
            ORIGIN => match v {
                [0] => {
                    a.origin = Some(Origin::Igp);
                    Ok(())
                }
                [1] => {
                    a.origin = Some(Origin::Egp);
                    Ok(())
                }
                [2] => {
                    a.origin = Some(Origin::Incomplete);
                    Ok(())
                }
                _ => Err("ORIGIN must be one octet of 0, 1 or 2"),
            },
            AS_PATH => aspath::decode(v, cx.four_octet_as).map(|p| a.as_path = Some(p)),
            NEXT_HOP => match v {
                [a0, a1, a2, a3] => {
                    let nh = Ipv4Addr::new(*a0, *a1, *a2, *a3);
                    // RFC 7606 §7.3: a semantically incorrect next hop is malformed.
                    if nh.is_unspecified() || nh.is_broadcast() || nh.is_multicast() {
                        Err("NEXT_HOP is not a unicast address")
                    } else {
                        {
                            a.next_hop = Some(nh);
                            Ok(())
                        }
                    }
                }
                _ => Err("NEXT_HOP must be four octets"),
            },
            MED | LOCAL_PREF | ORIGINATOR_ID => {
                if v.len() != 4 {
                    Err("attribute must be four octets")
                } else {
                    let x = u32_of(v);
                    match tc {
                        MED => a.med = Some(x),
                        LOCAL_PREF => a.local_pref = Some(x),
                        _ => a.originator_id = Some(Ipv4Addr::from(x)),
                    }
                    Ok(())
                }
            }
            ATOMIC_AGGREGATE => {
                if v.is_empty() {
                    {
                        a.atomic_aggregate = true;
                        Ok(())
                    }
                } else {
                    Err("ATOMIC_AGGREGATE must be empty")
                }
            }
            AGGREGATOR => match (v.len(), cx.four_octet_as) {
                (8, true) => {
                    a.aggregator = Some(Aggregator {
                        asn: Asn(u32_of(v)),
                        addr: Ipv4Addr::from(u32_of(&v[4..])),
                    });
                    Ok(())
                }
                (6, false) => {
                    a.aggregator = Some(Aggregator {
                        asn: Asn(u32::from(u16::from_be_bytes([v[0], v[1]]))),
                        addr: Ipv4Addr::from(u32_of(&v[2..])),
                    });
                    Ok(())
                }
                _ => Err("AGGREGATOR of wrong length"),
            },
            COMMUNITIES | CLUSTER_LIST => {
                if v.is_empty() || v.len() % 4 != 0 {
                    Err("length must be a non-zero multiple of four")
                } else if tc == COMMUNITIES {
                    {
                        a.communities = v.chunks_exact(4).map(|c| Community(u32_of(c))).collect();
                        Ok(())
                    }
                } else {
                    {
                        a.cluster_list =
                            v.chunks_exact(4).map(|c| Ipv4Addr::from(u32_of(c))).collect();
                        Ok(())
                    }
                }
            }
            EXT_COMMUNITIES => {
                if v.is_empty() || v.len() % 8 != 0 {
                    Err("length must be a non-zero multiple of eight")
                } else {
                    {
                        a.ext_communities = v
                            .chunks_exact(8)
                            .map(|c| ExtCommunity(c.try_into().unwrap_or([0; 8])))
                            .collect();
                        Ok(())
                    }
                }
            }
            LARGE_COMMUNITIES => {
                if v.is_empty() || v.len() % 12 != 0 {
                    Err("length must be a non-zero multiple of twelve")
                } else {
                    {
                        a.large_communities = v
                            .chunks_exact(12)
                            .map(|c| LargeCommunity([u32_of(c), u32_of(&c[4..]), u32_of(&c[8..])]))
                            .collect();
                        Ok(())
                    }
                }
            }
            AS4_PATH | AS4_AGGREGATOR if cx.four_octet_as => {
                // RFC 6793 §6: between two new speakers these have no business being here.
                d.discarded.push(problem("AS4 attribute from a four-octet AS speaker"));
                Ok(())
            }
            AS4_PATH => aspath::decode(v, true).map(|mut p| {
                p.segments.retain(|s| {
                    !matches!(
                        s.kind,
                        aspath::SegmentKind::ConfedSequence | aspath::SegmentKind::ConfedSet
                    )
                });
                as4_path = Some(p);
            }),
            AS4_AGGREGATOR => match v.len() {
                // It exists to carry an AS that does not fit AGGREGATOR's two octets.
                8 if Asn(u32_of(v)).is_two_octet() => Err("AS4_AGGREGATOR with a two-octet AS"),
                8 => {
                    let asn = Asn(u32_of(v));
                    as4_aggregator =
                        Some(Aggregator { asn, addr: Ipv4Addr::from(u32_of(&v[4..])) });
                    Ok(())
                }
                _ => Err("AS4_AGGREGATOR must be eight octets"),
            },
            _ => Ok(()),
        };
        if let Err(reason) = outcome {
            fail(&mut d, reason);
        }
    }

    // One form per meaning: communities are sets (RFC 1997, 4360, 8092 give their order no
    // meaning), unknown attributes are kept in type order. Two peers sending the same
    // attributes in another order then share one interned attribute set. (CLUSTER_LIST and
    // AS_PATH keep their order, which means something.)
    let a = &mut d.attrs;
    a.communities.sort_unstable();
    a.communities.dedup();
    a.ext_communities.sort_unstable();
    a.ext_communities.dedup();
    a.large_communities.sort_unstable();
    a.large_communities.dedup();
    a.unknown.sort_by_key(|u| u.type_code);

    // RFC 6793 §4.2.3: rebuild the four-octet path from an old speaker's attributes. An
    // AGGREGATOR that is not AS_TRANS means AS4_AGGREGATOR and AS4_PATH are stale: ignore both.
    if !cx.four_octet_as {
        let aggregator_is_trans = d.attrs.aggregator.is_none_or(|a| a.asn == Asn::TRANS);
        if aggregator_is_trans {
            match (as4_aggregator, d.attrs.aggregator) {
                (Some(a4), Some(_)) => d.attrs.aggregator = Some(a4),
                // Only AGGREGATOR with AS_TRANS makes AS4_AGGREGATOR mean anything.
                (Some(_), None) => d.discarded.push(AttrProblem {
                    type_code: AS4_AGGREGATOR,
                    offset: offset(msg, list),
                    reason: "AS4_AGGREGATOR without AGGREGATOR",
                }),
                (None, _) => {}
            }
            if let (Some(p), Some(p4)) = (&d.attrs.as_path, &as4_path) {
                d.attrs.as_path = Some(p.merge_as4(p4));
            }
        }
    }
    Ok(d)
}

/// An attribute's length runs past the attribute list (RFC 7606 §4). Its routes can still be
/// withdrawn if MP_REACH_NLRI was already found: then decoding stops here with
/// treat-as-withdraw. Otherwise MP_REACH_NLRI may be hiding in the unreadable rest, and only a
/// session reset is safe.
fn overrun(d: &mut Decoded, at: usize) -> Result<(), DecodeError> {
    if d.mp_reach.is_some() {
        d.withdraw.get_or_insert(AttrProblem {
            type_code: 0,
            offset: at,
            reason: "attribute length runs past the attribute list",
        });
        return Ok(());
    }
    Err(DecodeError::new(
        at,
        DecodeErrorKind::MalformedAttributeList("attribute length runs past the attribute list"),
    ))
}

enum Mp {
    Reach(MpReach),
    Unreach(MpUnreach),
    UnsupportedFamily,
}

/// Decodes an MP_REACH_NLRI or MP_UNREACH_NLRI value; errors are (offset in `v`, reason).
fn decode_mp(v: &[u8], tc: u8, cx: AttrContext) -> Result<Mp, (usize, &'static str)> {
    let afi = u16::from_be_bytes([
        *v.first().ok_or((0, "AFI missing"))?,
        *v.get(1).ok_or((0, "AFI missing"))?,
    ]);
    let safi = *v.get(2).ok_or((2, "SAFI missing"))?;
    let Some(family) = Family::from_afi_safi(afi, safi) else { return Ok(Mp::UnsupportedFamily) };
    let add_path = cx.add_path.contains(family);
    if tc == MP_UNREACH_NLRI {
        let mut withdrawn = Vec::new();
        nlri::decode(&v[3..], family, add_path, &mut withdrawn).map_err(|(o, r)| (3 + o, r))?;
        return Ok(Mp::Unreach(MpUnreach { family, withdrawn }));
    }
    let nh_len = usize::from(*v.get(3).ok_or((3, "next hop length missing"))?);
    let nh = v.get(4..4 + nh_len).ok_or((3, "next hop runs past the attribute"))?;
    let v6 = |b: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap_or([0; 16]));
    let next_hop = match (family, nh_len) {
        (Family::Ipv4Unicast, 4) => NextHop::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3])),
        // RFC 2545 / RFC 8950: a global address, optionally followed by a link-local one.
        // Some routers send two link-local addresses, or the same one twice: keep what is there.
        (_, 16) => NextHop::V6 { global: v6(nh), link_local: None },
        (_, 32) => {
            let second = v6(&nh[16..]);
            let is_ll = second.segments()[0] & 0xffc0 == 0xfe80;
            NextHop::V6 { global: v6(&nh[..16]), link_local: is_ll.then_some(second) }
        }
        _ => return Err((3, "next hop length does not fit the address family")),
    };
    // One reserved octet (formerly the SNPA count) follows the next hop; it is ignored.
    let nlri_at = 4 + nh_len + 1;
    let nlri_bytes = v.get(nlri_at..).ok_or((4 + nh_len, "reserved octet missing"))?;
    let mut nlri = Vec::new();
    nlri::decode(nlri_bytes, family, add_path, &mut nlri).map_err(|(o, r)| (nlri_at + o, r))?;
    Ok(Mp::Reach(MpReach { family, next_hop, nlri }))
}

/// Appends one attribute, with an extended length when the value needs it.
pub(crate) fn put(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | flag::EXTENDED_LENGTH, type_code]);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags & !flag::EXTENDED_LENGTH, type_code, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

/// Encodes the attributes in ascending type order, split around MP_REACH_NLRI and
/// MP_UNREACH_NLRI (types 14 and 15), which the caller places between the two halves. Towards
/// a speaker without four-octet AS, big AS numbers become AS_TRANS and AS4_PATH /
/// AS4_AGGREGATOR carry the real ones (RFC 6793 §4.2.2).
pub(crate) fn encode_split(a: &PathAttributes, four_octet_as: bool) -> (Vec<u8>, Vec<u8>) {
    const WELL_KNOWN: u8 = flag::TRANSITIVE;
    const OPT_TRANS: u8 = flag::OPTIONAL | flag::TRANSITIVE;
    const OPT: u8 = flag::OPTIONAL;
    let (mut low, mut high) = (Vec::new(), Vec::new());
    let mut v = Vec::new();
    if let Some(o) = a.origin {
        put(&mut low, WELL_KNOWN, ORIGIN, &[o as u8]);
    }
    let (as_path, as4_path) = match &a.as_path {
        Some(p) if !four_octet_as => {
            let (narrow, as4) = p.for_two_octet_peer();
            (Some(narrow), as4)
        }
        Some(p) => (Some(p.clone()), None),
        None => (None, None),
    };
    if let Some(p) = &as_path {
        v.clear();
        aspath::encode(p, four_octet_as, &mut v);
        put(&mut low, WELL_KNOWN, AS_PATH, &v);
    }
    if let Some(nh) = a.next_hop {
        put(&mut low, WELL_KNOWN, NEXT_HOP, &nh.octets());
    }
    if let Some(m) = a.med {
        put(&mut low, OPT, MED, &m.to_be_bytes());
    }
    if let Some(lp) = a.local_pref {
        put(&mut low, WELL_KNOWN, LOCAL_PREF, &lp.to_be_bytes());
    }
    if a.atomic_aggregate {
        put(&mut low, WELL_KNOWN, ATOMIC_AGGREGATE, &[]);
    }
    let mut as4_aggregator = None;
    if let Some(agg) = a.aggregator {
        v.clear();
        if four_octet_as {
            v.extend_from_slice(&agg.asn.0.to_be_bytes());
        } else {
            let asn = if agg.asn.is_two_octet() { agg.asn } else { Asn::TRANS };
            v.extend_from_slice(&(asn.0 as u16).to_be_bytes());
            if !agg.asn.is_two_octet() {
                as4_aggregator = Some(agg);
            }
        }
        v.extend_from_slice(&agg.addr.octets());
        put(&mut low, OPT_TRANS, AGGREGATOR, &v);
    }
    if !a.communities.is_empty() {
        v.clear();
        a.communities.iter().for_each(|c| v.extend_from_slice(&c.0.to_be_bytes()));
        put(&mut low, OPT_TRANS, COMMUNITIES, &v);
    }
    if let Some(id) = a.originator_id {
        put(&mut low, OPT, ORIGINATOR_ID, &id.octets());
    }
    if !a.cluster_list.is_empty() {
        v.clear();
        a.cluster_list.iter().for_each(|c| v.extend_from_slice(&c.octets()));
        put(&mut low, OPT, CLUSTER_LIST, &v);
    }
    if !a.ext_communities.is_empty() {
        v.clear();
        a.ext_communities.iter().for_each(|c| v.extend_from_slice(&c.0));
        put(&mut high, OPT_TRANS, EXT_COMMUNITIES, &v);
    }
    if let Some(p) = &as4_path {
        v.clear();
        aspath::encode(p, true, &mut v);
        put(&mut high, OPT_TRANS, AS4_PATH, &v);
    }
    if let Some(agg) = as4_aggregator {
        v.clear();
        v.extend_from_slice(&agg.asn.0.to_be_bytes());
        v.extend_from_slice(&agg.addr.octets());
        put(&mut high, OPT_TRANS, AS4_AGGREGATOR, &v);
    }
    if !a.large_communities.is_empty() {
        v.clear();
        a.large_communities
            .iter()
            .for_each(|c| c.0.iter().for_each(|x| v.extend_from_slice(&x.to_be_bytes())));
        put(&mut high, OPT_TRANS, LARGE_COMMUNITIES, &v);
    }
    let mut unknown: Vec<&RawAttribute> = a.unknown.iter().collect();
    unknown.sort_by_key(|u| u.type_code);
    for u in unknown {
        // RFC 4271 §5: an unrecognized optional transitive attribute is passed on with the
        // Partial bit set (and none of the low four bits, which are not ours to copy).
        let flags = flag::OPTIONAL | flag::TRANSITIVE | flag::PARTIAL;
        let dst = if u.type_code < MP_REACH_NLRI { &mut low } else { &mut high };
        put(dst, flags, u.type_code, &u.value);
    }
    (low, high)
}

/// Encodes a next hop as MP_REACH_NLRI carries it (length octet and address).
pub(crate) fn encode_mp_next_hop(nh: &NextHop, out: &mut Vec<u8>) {
    match nh {
        NextHop::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        NextHop::V6 { global, link_local } => {
            // Never send `::` or a non-link-local address as the second half (a flap source).
            match link_local.filter(|ll| ll.segments()[0] & 0xffc0 == 0xfe80) {
                Some(ll) => {
                    out.push(32);
                    out.extend_from_slice(&global.octets());
                    out.extend_from_slice(&ll.octets());
                }
                None => {
                    out.push(16);
                    out.extend_from_slice(&global.octets());
                }
            }
        }
    }
}
