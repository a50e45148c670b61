//! Packing many routes into few UPDATEs, for the Adj-RIB-Out: routes that share attributes go
//! out together, as many per message as the session's maximum length allows, and the attributes
//! are encoded once per set rather than once per message.
//!
//! IPv4 routes with an IPv4 next hop use the classic fields (NEXT_HOP, trailing NLRI); IPv6
//! routes, and IPv4 routes with an IPv6 next hop (RFC 8950), travel in MP_REACH_NLRI and
//! MP_UNREACH_NLRI (RFC 4760).

use super::attribute::{self, MP_REACH_NLRI, MP_UNREACH_NLRI, PathAttributes, flag};
use super::header::{self, MessageType};
use super::nlri::{self, Nlri};
use super::update::UpdateEncodeContext;
use crate::types::{Family, NextHop};

/// UPDATE header, withdrawn-routes length and attributes length.
const FIXED: usize = header::HEADER_LEN + 2 + 2;
/// An MP attribute's flags, type and extended length, AFI and SAFI.
const MP_FIXED: usize = 4 + 3;

/// Attributes of one set, encoded for one session and family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedAttrs {
    family: Family,
    /// Attributes of type below MP_REACH_NLRI.
    low: Vec<u8>,
    /// Attributes of type above MP_UNREACH_NLRI.
    high: Vec<u8>,
    /// The next hop as MP_REACH_NLRI carries it; `None` for the classic NEXT_HOP.
    mp_next_hop: Option<Vec<u8>>,
}

impl EncodedAttrs {
    /// Encodes `attrs` (whose own NEXT_HOP is ignored) with `next_hop` for routes of `family`.
    pub fn new(
        attrs: &PathAttributes,
        next_hop: NextHop,
        family: Family,
        cx: &UpdateEncodeContext,
    ) -> EncodedAttrs {
        let mut a = attrs.clone();
        let mp_next_hop = match (family, next_hop) {
            (Family::Ipv4Unicast, NextHop::V4(v4)) => {
                a.next_hop = Some(v4);
                None
            }
            (_, nh) => {
                a.next_hop = None;
                let mut v = Vec::with_capacity(33);
                attribute::encode_mp_next_hop(&nh, &mut v);
                Some(v)
            }
        };
        let (low, high) = attribute::encode_split(&a, cx.four_octet_as);
        EncodedAttrs { family, low, high, mp_next_hop }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// Whether a route of the widest kind fits an UPDATE with these attributes.
    pub fn fits(&self, cx: &UpdateEncodeContext) -> bool {
        self.overhead() + largest_route(self.family, cx) <= cx.max_len
    }

    /// The bytes every UPDATE carrying these attributes spends before its first route.
    fn overhead(&self) -> usize {
        FIXED
            + self.low.len()
            + self.high.len()
            + self.mp_next_hop.as_ref().map_or(0, |nh| MP_FIXED + nh.len() + 1)
    }
}

/// Why routes could not be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("the attributes take {overhead} octets; not one route fits a {max}-octet UPDATE")]
    AttributesTooLong { overhead: usize, max: usize },
}

/// Appends UPDATEs announcing `routes` (all of `attrs.family()`) with `attrs`, as few as fit.
/// Returns the number of messages written.
pub fn announce(
    attrs: &EncodedAttrs,
    routes: &[Nlri],
    cx: &UpdateEncodeContext,
    out: &mut Vec<u8>,
) -> Result<usize, PackError> {
    let add_path = cx.add_path.contains(attrs.family);
    let overhead = attrs.overhead();
    let largest =
        1 + if add_path { 4 } else { 0 } + if attrs.family == Family::Ipv4Unicast { 4 } else { 16 };
    if overhead + largest > cx.max_len {
        return Err(PackError::AttributesTooLong { overhead, max: cx.max_len });
    }
    let mut rest = routes;
    let mut messages = 0;
    while !rest.is_empty() {
        let start = header::begin(out, MessageType::Update);
        out.extend_from_slice(&[0, 0]);
        let alen_at = out.len();
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&attrs.low);
        let limit = start + cx.max_len - attrs.high.len();
        match &attrs.mp_next_hop {
            Some(nh) => {
                out.extend_from_slice(&[
                    flag::OPTIONAL | flag::EXTENDED_LENGTH,
                    MP_REACH_NLRI,
                    0,
                    0,
                ]);
                let mp_at = out.len();
                let (afi, safi) = attrs.family.afi_safi();
                out.extend_from_slice(&afi.to_be_bytes());
                out.push(safi);
                out.extend_from_slice(nh);
                out.push(0);
                rest = fill(rest, add_path, limit, out);
                patch_len(out, mp_at - 2);
                out.extend_from_slice(&attrs.high);
                patch_len(out, alen_at);
            }
            None => {
                out.extend_from_slice(&attrs.high);
                patch_len(out, alen_at);
                rest = fill(rest, add_path, start + cx.max_len, out);
            }
        }
        header::finish(out, start);
        messages += 1;
    }
    Ok(messages)
}

/// Appends UPDATEs withdrawing `routes` (all of `family`). Returns the number of messages.
pub fn withdraw(
    family: Family,
    routes: &[Nlri],
    cx: &UpdateEncodeContext,
    out: &mut Vec<u8>,
) -> usize {
    let add_path = cx.add_path.contains(family);
    let mut rest = routes;
    let mut messages = 0;
    while !rest.is_empty() {
        let start = header::begin(out, MessageType::Update);
        match family {
            Family::Ipv4Unicast => {
                let wlen_at = out.len();
                out.extend_from_slice(&[0, 0]);
                // Leave room for the (empty) attributes length.
                rest = fill(rest, add_path, start + cx.max_len - 2, out);
                patch_len(out, wlen_at);
                out.extend_from_slice(&[0, 0]);
            }
            Family::Ipv6Unicast => {
                out.extend_from_slice(&[0, 0]);
                let alen_at = out.len();
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&[
                    flag::OPTIONAL | flag::EXTENDED_LENGTH,
                    MP_UNREACH_NLRI,
                    0,
                    0,
                ]);
                let mp_at = out.len();
                let (afi, safi) = family.afi_safi();
                out.extend_from_slice(&afi.to_be_bytes());
                out.push(safi);
                rest = fill(rest, add_path, start + cx.max_len, out);
                patch_len(out, mp_at - 2);
                patch_len(out, alen_at);
            }
        }
        header::finish(out, start);
        messages += 1;
    }
    messages
}

/// Appends the End-of-RIB marker of `family` (RFC 4724 §2).
pub fn end_of_rib(family: Family, out: &mut Vec<u8>) {
    let start = header::begin(out, MessageType::Update);
    match family {
        Family::Ipv4Unicast => out.extend_from_slice(&[0, 0, 0, 0]),
        Family::Ipv6Unicast => {
            let (afi, safi) = family.afi_safi();
            out.extend_from_slice(&[0, 0, 0, 6, flag::OPTIONAL, MP_UNREACH_NLRI, 3]);
            out.extend_from_slice(&afi.to_be_bytes());
            out.push(safi);
        }
    }
    header::finish(out, start);
}

/// The encoded size of the longest route of `family`.
fn largest_route(family: Family, cx: &UpdateEncodeContext) -> usize {
    let path_id = if cx.add_path.contains(family) { 4 } else { 0 };
    path_id + 1 + if family == Family::Ipv4Unicast { 4 } else { 16 }
}

/// Appends routes while they fit below `limit`; returns the rest.
fn fill<'a>(routes: &'a [Nlri], add_path: bool, limit: usize, out: &mut Vec<u8>) -> &'a [Nlri] {
    for (i, n) in routes.iter().enumerate() {
        if out.len() + nlri::encoded_len(n, add_path) > limit {
            return &routes[i..];
        }
        nlri::encode(n, add_path, out);
    }
    &[]
}

/// Writes, at `at`, the two-octet length of everything after those two octets.
fn patch_len(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::types::{Asn, FamilySet, Ipv4Prefix, Ipv6Prefix, Origin, Prefix};
    use crate::wire::{AsPath, Codec, Message, Update};

    fn codec() -> Codec {
        Codec { four_octet_as: true, ..Codec::default() }
    }

    fn attrs() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([Asn(65001), Asn(4_200_000_000)])),
            communities: vec![crate::types::Community::new(65001, 7)],
            ..PathAttributes::default()
        }
    }

    fn v4_routes(n: u32) -> Vec<Nlri> {
        (0..n)
            .map(|i| {
                let p =
                    Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).expect("prefix");
                Nlri::new(Prefix::V4(p))
            })
            .collect()
    }

    fn v6_routes(n: u32) -> Vec<Nlri> {
        (0..n)
            .map(|i| {
                let a = Ipv6Addr::from(
                    0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + (u128::from(i) << 64),
                );
                Nlri::new(Prefix::V6(Ipv6Prefix::new(a, 64).expect("prefix")))
            })
            .collect()
    }

    /// Decodes every message in `bytes`.
    fn decode_all(codec: &Codec, mut bytes: &[u8]) -> Vec<Update> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (_, len) = codec.frame(bytes).expect("frame").expect("whole");
            assert!(len <= codec.max_len());
            match codec.decode(&bytes[..len]).expect("decodes") {
                Message::Update(u) => out.push(*u),
                m => panic!("not an UPDATE: {m:?}"),
            }
            bytes = &bytes[len..];
        }
        out
    }

    #[test]
    fn ipv4_routes_fill_classic_updates_up_to_the_maximum_length() {
        let c = codec();
        let cx = c.update_encode();
        let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
        let enc = EncodedAttrs::new(&attrs(), nh, Family::Ipv4Unicast, &cx);
        let routes = v4_routes(3000);
        let mut out = Vec::new();
        let n = announce(&enc, &routes, &cx, &mut out).expect("packs");
        let updates = decode_all(&c, &out);
        assert_eq!(updates.len(), n);
        assert_eq!(n, 3, "4 octets per /24: about 1000 per 4096-octet message");
        let got: Vec<Nlri> = updates.iter().flat_map(|u| u.nlri.clone()).collect();
        assert_eq!(got, routes);
        for u in &updates {
            let a = u.attrs.as_ref().expect("attrs");
            assert_eq!(a.next_hop, Some(Ipv4Addr::new(192, 0, 2, 1)));
            assert_eq!(a.communities, attrs().communities);
        }
    }

    #[test]
    fn ipv6_routes_travel_in_mp_reach_with_both_next_hops() {
        let c = Codec { extended_message: true, ..codec() };
        let cx = c.update_encode();
        let nh = NextHop::V6 {
            global: "2001:db8::1".parse().expect("addr"),
            link_local: Some("fe80::1".parse().expect("addr")),
        };
        let enc = EncodedAttrs::new(&attrs(), nh, Family::Ipv6Unicast, &cx);
        let routes = v6_routes(10_000);
        let mut out = Vec::new();
        let n = announce(&enc, &routes, &cx, &mut out).expect("packs");
        let updates = decode_all(&c, &out);
        assert_eq!(updates.len(), n);
        assert_eq!(n, 2, "9 octets per /64: about 7000 per 65535-octet message");
        let mut got = Vec::new();
        for u in &updates {
            let r = u.mp_reach.as_ref().expect("MP_REACH");
            assert_eq!(r.next_hop, nh);
            assert!(u.nlri.is_empty());
            got.extend(r.nlri.iter().copied());
        }
        assert_eq!(got, routes);
    }

    #[test]
    fn ipv4_routes_with_an_ipv6_next_hop_use_mp_reach() {
        let c = codec();
        let cx = c.update_encode();
        let nh = NextHop::V6 { global: "2001:db8::1".parse().expect("addr"), link_local: None };
        let enc = EncodedAttrs::new(&attrs(), nh, Family::Ipv4Unicast, &cx);
        let mut out = Vec::new();
        announce(&enc, &v4_routes(3), &cx, &mut out).expect("packs");
        let u = &decode_all(&c, &out)[0];
        assert_eq!(u.attrs.as_ref().and_then(|a| a.next_hop), None);
        assert_eq!(
            u.mp_reach.as_ref().map(|r| (r.family, r.nlri.len())),
            Some((Family::Ipv4Unicast, 3))
        );
    }

    #[test]
    fn withdrawals_of_both_families_split_at_the_maximum_length() {
        let c = codec();
        let cx = c.update_encode();
        for (family, routes) in
            [(Family::Ipv4Unicast, v4_routes(3000)), (Family::Ipv6Unicast, v6_routes(3000))]
        {
            let mut out = Vec::new();
            let n = withdraw(family, &routes, &cx, &mut out);
            let updates = decode_all(&c, &out);
            assert_eq!(updates.len(), n);
            assert!(n > 1);
            let got: Vec<Nlri> =
                updates.iter().flat_map(|u| u.withdrawals().copied().collect::<Vec<_>>()).collect();
            assert_eq!(got, routes, "{family}");
        }
    }

    #[test]
    fn add_path_sessions_carry_path_identifiers() {
        let c = Codec {
            add_path_tx: FamilySet::single(Family::Ipv4Unicast),
            add_path_rx: FamilySet::single(Family::Ipv4Unicast),
            ..codec()
        };
        let cx = c.update_encode();
        let enc =
            EncodedAttrs::new(&attrs(), NextHop::V4(Ipv4Addr::LOCALHOST), Family::Ipv4Unicast, &cx);
        let routes: Vec<Nlri> =
            v4_routes(5).into_iter().map(|n| Nlri { path_id: Some(9), ..n }).collect();
        let mut out = Vec::new();
        announce(&enc, &routes, &cx, &mut out).expect("packs");
        assert_eq!(decode_all(&c, &out)[0].nlri, routes);
    }

    #[test]
    fn end_of_rib_markers_decode_as_such() {
        let c = codec();
        for f in Family::ALL {
            let mut out = Vec::new();
            end_of_rib(f, &mut out);
            assert_eq!(decode_all(&c, &out)[0].end_of_rib_family(), Some(f));
        }
    }

    #[test]
    fn attributes_too_long_for_any_route_are_refused() {
        let c = codec();
        let cx = c.update_encode();
        let big = PathAttributes {
            communities: (0..1100).map(crate::types::Community).collect(),
            ..attrs()
        };
        let enc =
            EncodedAttrs::new(&big, NextHop::V4(Ipv4Addr::LOCALHOST), Family::Ipv4Unicast, &cx);
        let mut out = Vec::new();
        assert!(announce(&enc, &v4_routes(1), &cx, &mut out).is_err());
        assert!(out.is_empty());
    }
}
