//! Codec tests on hand-made vectors: one behaviour each, RFC section in the name or comment.
//! Vectors captured from real FRR, BIRD and GoBGP sessions are in `tests/captures.rs`.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::notification::code;
use super::*;
use crate::types::{
    Asn, Community, ExtCommunity, Family, FamilySet, LargeCommunity, NextHop, Origin, Prefix,
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((body.len() + 19) as u16).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

fn nlri(s: &str) -> Nlri {
    Nlri::new(s.parse::<Prefix>().expect(s))
}

const NEW: Codec = Codec {
    four_octet_as: true,
    add_path_rx: FamilySet::EMPTY,
    add_path_tx: FamilySet::EMPTY,
    extended_message: false,
};

fn round_trip(codec: &Codec, m: &Message) -> Message {
    let mut out = vec![];
    codec.encode(m, &mut out).expect("encodes");
    let back = codec.decode(&out).expect("decodes");
    assert_eq!(&back, m, "round trip changed the message");
    back
}

#[test]
fn keepalive_is_a_bare_header() {
    let mut out = vec![];
    Codec::default().encode(&Message::Keepalive, &mut out).expect("encodes");
    assert_eq!(out, msg(4, &[]));
    assert_eq!(Codec::default().decode(&out), Ok(Message::Keepalive));
}

#[test]
fn open_with_capabilities_round_trips() {
    let open = Open::new(
        Asn(4_200_000_001),
        90,
        Ipv4Addr::new(10, 0, 0, 1),
        vec![
            Capability::multiprotocol(Family::Ipv4Unicast),
            Capability::multiprotocol(Family::Ipv6Unicast),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::GracefulRestart {
                restart_state: true,
                notification: true,
                restart_time: 120,
                families: vec![capability::GrFamily {
                    afi: 1,
                    safi: 1,
                    forwarding_preserved: true,
                }],
            },
            Capability::AddPath(vec![capability::AddPathFamily {
                afi: 2,
                safi: 1,
                receive: true,
                send: false,
            }]),
            Capability::ExtendedMessage,
            Capability::Unknown { code: 73, value: b"host".to_vec() },
        ],
    );
    assert_eq!(open.my_as, 23456, "RFC 6793 §3: AS_TRANS in My AS");
    assert_eq!(open.asn(), Asn(4_200_000_001));
    round_trip(&Codec::default(), &Message::Open(open));
}

#[test]
fn open_from_a_two_octet_speaker_is_read_from_my_as() {
    // version 4, AS 65001, hold 180, id 192.0.2.1, no optional parameters
    let m = msg(1, &hex("04 fde9 00b4 c0000201 00"));
    let Ok(Message::Open(o)) = Codec::default().decode(&m) else { panic!("an OPEN") };
    assert_eq!((o.asn(), o.hold_time, o.bgp_id), (Asn(65001), 180, Ipv4Addr::new(192, 0, 2, 1)));
    assert!(o.capabilities.is_empty());
}

#[test]
fn open_rejects_hold_time_one_or_two_at_its_offset() {
    let m = msg(1, &hex("04 fde9 0002 c0000201 00"));
    let e = Codec::default().decode(&m).expect_err("hold time 2");
    assert_eq!(e, DecodeError::new(22, DecodeErrorKind::UnacceptableHoldTime(2)));
    let n = e.notification().expect("answered");
    assert_eq!((n.code, n.subcode), (code::OPEN, notification::open::UNACCEPTABLE_HOLD_TIME));
}

#[test]
fn open_rejects_other_versions_and_a_zero_identifier() {
    let e = Codec::default().decode(&msg(1, &hex("03 fde9 00b4 c0000201 00"))).expect_err("v3");
    assert_eq!(e.kind, DecodeErrorKind::UnsupportedVersion(3));
    let e = Codec::default().decode(&msg(1, &hex("04 fde9 00b4 00000000 00"))).expect_err("id 0");
    assert_eq!(
        (e.offset, &e.kind),
        (24, &DecodeErrorKind::BadBgpIdentifier(Ipv4Addr::UNSPECIFIED))
    );
}

#[test]
fn open_rejects_unsupported_optional_parameters() {
    // parameter type 1 (authentication, deprecated) of length 0
    let e = Codec::default()
        .decode(&msg(1, &hex("04 fde9 00b4 c0000201 02 01 00")))
        .expect_err("param 1");
    assert_eq!((e.offset, e.kind), (29, DecodeErrorKind::UnsupportedOptionalParameter(1)));
}

#[test]
fn unknown_capabilities_are_kept_and_ignored() {
    // capabilities parameter with code 200, length 2
    let m = msg(1, &hex("04 fde9 00b4 c0000201 06 02 04 c8 02 abcd"));
    let Ok(Message::Open(o)) = Codec::default().decode(&m) else { panic!("an OPEN") };
    assert_eq!(o.capabilities, [Capability::Unknown { code: 200, value: vec![0xab, 0xcd] }]);
}

#[test]
fn a_malformed_known_capability_is_an_open_error() {
    // four-octet AS capability with three octets
    let m = msg(1, &hex("04 fde9 00b4 c0000201 07 02 05 41 03 000001"));
    let e = Codec::default().decode(&m).expect_err("bad capability");
    assert_eq!(e.offset, 31);
    assert!(matches!(e.kind, DecodeErrorKind::MalformedOpen(_)));
}

#[test]
fn rfc_9072_extended_optional_parameters_are_understood() {
    // Opt Parm Len 255, type 255, extended length 5, then param type 2 with 2-octet length 2: RR cap
    let m = msg(1, &hex("04 fde9 00b4 c0000201 ff ff 0005 02 0002 02 00"));
    let Ok(Message::Open(o)) = Codec::default().decode(&m) else { panic!("an OPEN") };
    assert_eq!(o.capabilities, [Capability::RouteRefresh]);
}

fn full_attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([Asn(65001), Asn(4_200_000_000)])),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(50),
        local_pref: Some(200),
        atomic_aggregate: true,
        aggregator: Some(Aggregator { asn: Asn(4_200_000_000), addr: Ipv4Addr::new(192, 0, 2, 9) }),
        communities: vec![Community::new(65001, 1), Community::NO_EXPORT],
        // (kept sorted, as decoding keeps them)
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 9)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 100)],
        ext_communities: vec![ExtCommunity([0, 2, 0xfd, 0xe9, 0, 0, 0, 1])],
        large_communities: vec![LargeCommunity([4_200_000_000, 1, 2])],
        unknown: vec![RawAttribute { type_code: 99, value: vec![1, 2, 3] }],
    }
}

#[test]
fn update_with_every_attribute_round_trips_between_new_speakers() {
    let u = Update {
        withdrawn: vec![nlri("198.51.100.0/24")],
        attrs: Some(full_attrs()),
        nlri: vec![nlri("203.0.113.0/24"), nlri("10.0.0.0/8")],
        ..Update::default()
    };
    round_trip(&NEW, &Message::Update(Box::new(u)));
}

#[test]
fn towards_an_old_speaker_as4_attributes_carry_the_real_numbers() {
    // RFC 6793 §4.2.2 and §4.2.3: encode for a two-octet peer, decode as one: same path.
    let old = Codec::default();
    let u = Update {
        attrs: Some(full_attrs()),
        nlri: vec![nlri("203.0.113.0/24")],
        ..Update::default()
    };
    let mut out = vec![];
    old.encode(&Message::Update(Box::new(u.clone())), &mut out).expect("encodes");
    let as_trans = [0x5b, 0xa0];
    assert!(out.windows(2).any(|w| w == as_trans), "AS_TRANS is on the wire");
    let Ok(Message::Update(back)) = old.decode(&out) else { panic!("an UPDATE") };
    assert_eq!(back.attrs, u.attrs, "AS4_PATH and AS4_AGGREGATOR were merged back");
    assert!(back.discarded.is_empty() && back.treat_as_withdraw.is_none());
}

#[test]
fn stale_as4_attributes_are_ignored_when_aggregator_is_not_as_trans() {
    // RFC 6793 §4.2.3: AGGREGATOR 65010 (not AS_TRANS) → AS4_PATH and AS4_AGGREGATOR ignored.
    let attrs = hex("40 01 01 00  40 02 04 02 01 5ba0  40 03 04 c0000201  c0 07 06 fdf2 c0000209
         c0 11 06 02 01 fa56ea00  c0 12 08 fa56ea00 c0000209");
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(&[24, 203, 0, 113]);
    let Ok(Message::Update(u)) = Codec::default().decode(&msg(2, &body)) else {
        panic!("an UPDATE")
    };
    let a = u.attrs.expect("attributes");
    assert_eq!(a.as_path, Some(AsPath::sequence([Asn::TRANS])));
    assert_eq!(a.aggregator.map(|g| g.asn), Some(Asn(65010)));
}

#[test]
fn ipv6_routes_travel_in_mp_reach_with_a_link_local_next_hop() {
    let global: Ipv6Addr = "2001:db8::1".parse().expect("addr");
    let ll: Ipv6Addr = "fe80::1".parse().expect("addr");
    let u = Update {
        attrs: Some(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..PathAttributes::default()
        }),
        mp_reach: Some(MpReach {
            family: Family::Ipv6Unicast,
            next_hop: NextHop::V6 { global, link_local: Some(ll) },
            nlri: vec![nlri("2001:db8:1::/48"), nlri("2001:db8:2::/64")],
        }),
        mp_unreach: Some(MpUnreach {
            family: Family::Ipv6Unicast,
            withdrawn: vec![nlri("2001:db8:9::/48")],
        }),
        ..Update::default()
    };
    round_trip(&NEW, &Message::Update(Box::new(u)));
}

#[test]
fn a_link_local_half_that_is_not_link_local_is_not_kept() {
    // 32-octet next hop whose second half is `::` (seen from broken peers): global only.
    let nh = hex("20010db8000000000000000000000001 00000000000000000000000000000000");
    let mut v = hex("0002 01 20");
    v.extend_from_slice(&nh);
    v.extend_from_slice(&hex("00 30 20010db80001"));
    let mut attrs = hex("40 01 01 00 40 02 00");
    attrs.extend_from_slice(&[0x90, 14]);
    attrs.extend_from_slice(&(v.len() as u16).to_be_bytes());
    attrs.extend_from_slice(&v);
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    let Ok(Message::Update(u)) = NEW.decode(&msg(2, &body)) else { panic!("an UPDATE") };
    let r = u.mp_reach.expect("MP_REACH");
    assert_eq!(
        r.next_hop,
        NextHop::V6 { global: "2001:db8::1".parse().expect("addr"), link_local: None }
    );
    assert_eq!(r.nlri, [nlri("2001:db8:1::/48")]);
}

#[test]
fn ipv4_routes_with_an_ipv6_next_hop_rfc_8950() {
    let u = Update {
        attrs: Some(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..PathAttributes::default()
        }),
        mp_reach: Some(MpReach {
            family: Family::Ipv4Unicast,
            next_hop: NextHop::V6 {
                global: "2001:db8::1".parse().expect("addr"),
                link_local: None,
            },
            nlri: vec![nlri("10.1.0.0/16")],
        }),
        ..Update::default()
    };
    round_trip(&NEW, &Message::Update(Box::new(u)));
}

#[test]
fn add_path_identifiers_are_read_only_where_negotiated() {
    let mut with_ids = NEW;
    with_ids.add_path_rx.insert(Family::Ipv4Unicast);
    with_ids.add_path_tx.insert(Family::Ipv4Unicast);
    let mut n = nlri("10.0.0.0/8");
    n.path_id = Some(42);
    let u = Update {
        attrs: Some(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..PathAttributes::default()
        }),
        nlri: vec![n],
        ..Update::default()
    };
    round_trip(&with_ids, &Message::Update(Box::new(u)));
}

#[test]
fn end_of_rib_markers_for_each_family() {
    for family in Family::ALL {
        let eor = Update::end_of_rib(family);
        assert_eq!(eor.end_of_rib_family(), Some(family));
        let back = round_trip(&NEW, &Message::Update(Box::new(eor)));
        let Message::Update(u) = back else { panic!("an UPDATE") };
        assert_eq!(u.end_of_rib_family(), Some(family));
    }
    let mut out = vec![];
    NEW.encode(&Message::Update(Box::new(Update::end_of_rib(Family::Ipv4Unicast))), &mut out)
        .expect("encodes");
    assert_eq!(out.len(), 23, "the IPv4 End-of-RIB is the minimal UPDATE");
}

/// An UPDATE body with the given attribute bytes and one IPv4 NLRI (203.0.113.0/24).
fn update_with(attrs: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(&[24, 203, 0, 113]);
    msg(2, &body)
}

const GOOD: &str = "40 01 01 00  40 02 06 02 01 0000fde9  40 03 04 c0000201";

fn decode_update(m: &[u8]) -> Update {
    match NEW.decode(m) {
        Ok(Message::Update(u)) => *u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

#[test]
fn rfc7606_malformed_origin_is_treat_as_withdraw() {
    let u = decode_update(&update_with(&hex("40 01 01 07  40 02 00  40 03 04 c0000201")));
    let p = u.treat_as_withdraw.clone().expect("treat-as-withdraw");
    assert_eq!((p.type_code, p.offset), (1, 23));
    assert_eq!(u.announced().count(), 0);
    assert_eq!(u.withdrawals().collect::<Vec<_>>(), [&nlri("203.0.113.0/24")]);
}

#[test]
fn rfc7606_missing_mandatory_attributes_are_treat_as_withdraw() {
    let u = decode_update(&update_with(&hex("40 01 01 00  40 03 04 c0000201")));
    assert_eq!(u.treat_as_withdraw.map(|p| p.type_code), Some(attribute::AS_PATH));
    let u = decode_update(&update_with(&hex("40 01 01 00  40 02 00")));
    assert_eq!(u.treat_as_withdraw.map(|p| p.type_code), Some(attribute::NEXT_HOP));
}

#[test]
fn rfc7606_malformed_communities_are_treat_as_withdraw() {
    let mut a = hex(GOOD);
    a.extend_from_slice(&hex("c0 08 03 000001"));
    assert!(decode_update(&update_with(&a)).treat_as_withdraw.is_some());
    let mut a = hex(GOOD);
    a.extend_from_slice(&hex("c0 20 05 0000000001"));
    assert!(decode_update(&update_with(&a)).treat_as_withdraw.is_some(), "large communities too");
}

#[test]
fn rfc7606_a_bad_next_hop_is_treat_as_withdraw() {
    let u = decode_update(&update_with(&hex("40 01 01 00  40 02 00  40 03 04 00000000")));
    assert_eq!(u.treat_as_withdraw.map(|p| p.reason), Some("NEXT_HOP is not a unicast address"));
}

#[test]
fn rfc7606_flag_conflicts_are_treat_as_withdraw() {
    // MED sent as well-known transitive (flags 0x40) instead of optional non-transitive.
    let mut a = hex(GOOD);
    a.extend_from_slice(&hex("40 04 04 00000032"));
    let u = decode_update(&update_with(&a));
    assert_eq!(
        u.treat_as_withdraw.map(|p| (p.type_code, p.reason)),
        Some((4, "attribute flags conflict with its type"))
    );
}

#[test]
fn rfc7606_malformed_aggregator_and_atomic_aggregate_are_discarded() {
    let mut a = hex(GOOD);
    a.extend_from_slice(&hex("40 06 01 00  c0 07 05 0000fde900"));
    let u = decode_update(&update_with(&a));
    assert!(u.treat_as_withdraw.is_none());
    assert_eq!(u.discarded.iter().map(|p| p.type_code).collect::<Vec<_>>(), [6, 7]);
    assert_eq!(u.announced().count(), 1, "the route stands");
}

#[test]
fn rfc7606_repeated_attributes_keep_the_first() {
    let mut a = hex(GOOD);
    a.extend_from_slice(&hex("40 01 01 02"));
    let u = decode_update(&update_with(&a));
    assert_eq!(u.attrs.and_then(|a| a.origin), Some(Origin::Igp));
    assert_eq!(u.discarded.len(), 1);
}

#[test]
fn rfc7606_repeated_mp_reach_resets_the_session() {
    let mp = "90 0e 000b 0001 01 04 c0000201 00 08 0a";
    let a = hex(&format!("{GOOD} {mp} {mp}"));
    let e = NEW.decode(&update_with(&a)).expect_err("reset");
    assert!(matches!(e.kind, DecodeErrorKind::MalformedAttributeList(_)));
    assert_eq!(e.notification().map(|n| (n.code, n.subcode)), Some((3, 1)));
}

#[test]
fn rfc7606_a_malformed_mp_reach_resets_the_session_with_its_bytes() {
    // next hop length 5 for IPv4 unicast
    let a = hex(&format!("{GOOD} 90 0e 000b 0001 01 05 c000020101 00 00"));
    let e = NEW.decode(&update_with(&a)).expect_err("reset");
    let n = e.notification().expect("answered");
    assert_eq!((n.code, n.subcode), (3, 9));
    assert_eq!(&n.data[..2], [0x90, 0x0e], "the data is the offending attribute");
}

#[test]
fn unknown_attributes_pass_on_if_transitive_and_vanish_otherwise() {
    let mut a = hex(GOOD);
    a.extend_from_slice(&hex("c0 63 02 abcd  80 64 01 ff"));
    let u = decode_update(&update_with(&a));
    let attrs = u.attrs.expect("attributes");
    assert_eq!(attrs.unknown, [RawAttribute { type_code: 0x63, value: vec![0xab, 0xcd] }]);
    // Re-encoded with the Partial bit set (RFC 4271 §5).
    let mut out = vec![];
    NEW.encode(
        &Message::Update(Box::new(Update {
            attrs: Some(attrs),
            nlri: vec![nlri("203.0.113.0/24")],
            ..Update::default()
        })),
        &mut out,
    )
    .expect("encodes");
    assert!(out.windows(3).any(|w| w == [0xe0, 0x63, 0x02]));
}

#[test]
fn an_unknown_well_known_attribute_resets_the_session() {
    let mut a = hex(GOOD);
    a.extend_from_slice(&hex("40 63 01 00"));
    let e = NEW.decode(&update_with(&a)).expect_err("reset");
    assert_eq!(
        e.notification().map(|n| (n.code, n.subcode, n.data)),
        Some((3, 2, vec![0x40, 0x63, 0x01, 0x00]))
    );
}

#[test]
fn lengths_that_run_past_the_message_are_malformed_attribute_lists() {
    // total path attribute length 200 in a short message
    let m = msg(2, &hex("0000 00c8 400101"));
    let e = NEW.decode(&m).expect_err("reset");
    assert_eq!((e.offset, e.notification().map(|n| (n.code, n.subcode))), (21, Some((3, 1))));
    // an attribute whose length runs past the attribute list
    let e = NEW.decode(&update_with(&hex("40 01 05 00"))).expect_err("reset");
    assert!(matches!(e.kind, DecodeErrorKind::MalformedAttributeList(_)));
}

#[test]
fn a_bad_prefix_length_is_an_invalid_network_field() {
    let mut body = hex("0000 0000");
    body.extend_from_slice(&[40, 1, 2, 3, 4, 5]);
    let e = NEW.decode(&msg(2, &body)).expect_err("reset");
    assert_eq!((e.offset, e.notification().map(|n| (n.code, n.subcode))), (23, Some((3, 10))));
}

#[test]
fn messages_over_the_limit_are_refused_by_the_encoder() {
    let u = Update {
        attrs: Some(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..PathAttributes::default()
        }),
        nlri: (0..2000u32)
            .map(|i| {
                Nlri::new(Prefix::V4(
                    crate::types::Ipv4Prefix::new(Ipv4Addr::from(i << 8), 24).expect("valid"),
                ))
            })
            .collect(),
        ..Update::default()
    };
    let mut out = vec![1, 2, 3];
    let e = NEW.encode(&Message::Update(Box::new(u.clone())), &mut out).expect_err("too long");
    assert!(matches!(e, EncodeError::TooLong { max: 4096, .. }));
    assert_eq!(out, [1, 2, 3], "nothing was appended");
    let extended = Codec { extended_message: true, ..NEW };
    round_trip(&extended, &Message::Update(Box::new(u)));
}

#[test]
fn notification_and_route_refresh_round_trip() {
    let n = Notification::shutdown(notification::cease::ADMIN_SHUTDOWN, "bye");
    round_trip(&NEW, &Message::Notification(n));
    round_trip(&NEW, &Message::RouteRefresh(RouteRefresh::request(Family::Ipv6Unicast)));
    let borr = RouteRefresh { afi: 1, safi: 1, subtype: route_refresh::subtype::BEGIN };
    round_trip(&NEW, &Message::RouteRefresh(borr));
}

#[test]
fn begin_and_end_of_route_refresh_must_be_exactly_four_octets() {
    let e = NEW.decode(&msg(5, &hex("0001 01 01 00"))).expect_err("too long");
    assert_eq!(e.notification().map(|n| (n.code, n.subcode)), Some((7, 1)));
    // A plain request may carry ORF entries (RFC 5291), which are ignored.
    assert!(NEW.decode(&msg(5, &hex("0001 00 01 00 0001"))).is_ok());
}

#[test]
fn a_notification_needs_its_code_and_subcode() {
    let e = NEW.decode(&msg(3, &[6, 2])).map(|_| ());
    assert!(e.is_ok());
    let m = {
        let mut m = msg(3, &[6]);
        m[17] = 20;
        m
    };
    // 20 octets fails framing (minimum 21) with a length error.
    assert!(matches!(NEW.decode(&m).map_err(|e| e.kind), Err(DecodeErrorKind::BadLength(20))));
}

#[test]
fn ipv4_next_hop_in_mp_reach_for_ipv4_unicast() {
    let a = hex(&format!("{GOOD} 90 0e 000b 0001 01 04 c0000202 00 08 0a"));
    let u = decode_update(&update_with(&a));
    let r = u.mp_reach.expect("MP_REACH");
    assert_eq!(
        (r.next_hop, r.nlri),
        (NextHop::V4(Ipv4Addr::new(192, 0, 2, 2)), vec![nlri("10.0.0.0/8")])
    );
}

#[test]
fn an_attribute_list_emptied_by_dropping_means_no_attributes() {
    // Found by the round-trip fuzzer: only an unknown optional non-transitive attribute.
    let mut body = hex("0000 0004");
    body.extend_from_slice(&hex("80 63 01 ff"));
    let u = decode_update(&msg(2, &body));
    assert_eq!(u.attrs, None);
    let mut out = vec![];
    NEW.encode(&Message::Update(Box::new(u.clone())), &mut out).expect("encodes");
    assert_eq!(decode_update(&out), u);
}

#[test]
fn communities_are_a_set_and_unknown_attributes_are_in_type_order() {
    let mut a = hex(GOOD);
    a.extend_from_slice(&hex("c0 08 0c fde90002 fde90001 fde90002  c0 46 01 aa  c0 2d 01 bb"));
    let u = decode_update(&update_with(&a));
    let attrs = u.attrs.expect("attributes");
    assert_eq!(attrs.communities, [Community::new(65001, 1), Community::new(65001, 2)]);
    assert_eq!(attrs.unknown.iter().map(|u| u.type_code).collect::<Vec<_>>(), [0x2d, 0x46]);
}

#[test]
fn as4_aggregator_is_discarded_alone_or_with_a_two_octet_as() {
    // Found by the round-trip fuzzer: neither can be said back to a two-octet speaker.
    let alone = hex(&format!("{GOOD} c0 12 08 fa56ea00 00000001"));
    let u = match Codec::default().decode(&update_with(&alone)) {
        Ok(Message::Update(u)) => *u,
        other => panic!("{other:?}"),
    };
    assert_eq!((u.attrs.and_then(|a| a.aggregator), u.discarded.len()), (None, 1));
    let two_octet = hex(&format!("{GOOD} c0 07 06 5ba0 00000001 c0 12 08 00000001 00000001"));
    let u = match Codec::default().decode(&update_with(&two_octet)) {
        Ok(Message::Update(u)) => *u,
        other => panic!("{other:?}"),
    };
    assert_eq!(u.attrs.and_then(|a| a.aggregator).map(|g| g.asn), Some(Asn::TRANS));
}
