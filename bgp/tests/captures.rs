//! The codec against real traffic: every message FRR 8.4, BIRD 2 and GoBGP 3.10 exchanged in
//! the capture lab (`tests/captures/capture.sh`) — OPENs with their capabilities, IPv4 and IPv6
//! UPDATEs with communities of all three kinds, ADD-PATH, AS4_PATH towards a two-octet session,
//! End-of-RIB, route refresh with BoRR/EoRR, KEEPALIVEs and a shutdown NOTIFICATION — decodes
//! with the capabilities its own connection negotiated, and encodes back to a message that
//! decodes the same.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use tartan_bgp::types::{Asn, Community, Family, LargeCommunity, NextHop};
use tartan_bgp::wire::{
    AsPath, Codec, Message, Open, capability::code, notification::cease, route_refresh::subtype,
};

struct Captured {
    connection: String,
    from: String,
    to: String,
    kind: String,
    bytes: Vec<u8>,
}

fn captured() -> Vec<Captured> {
    include_str!("captures/messages.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (from, to) = f[1].split_once("->").expect("direction");
            let hex = f[3];
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            Captured {
                connection: f[0].into(),
                from: from.into(),
                to: to.into(),
                kind: f[2].into(),
                bytes,
            }
        })
        .collect()
}

/// Each connection's OPEN from each speaker.
fn opens(all: &[Captured]) -> BTreeMap<(String, String), Open> {
    let mut opens = BTreeMap::new();
    for c in all.iter().filter(|c| c.kind == "OPEN") {
        let Ok(Message::Open(o)) = Codec::default().decode(&c.bytes) else {
            panic!("{}: OPEN did not decode", c.connection)
        };
        opens.insert((c.connection.clone(), c.from.clone()), o);
    }
    opens
}

/// The codec the receiver of `c` uses: negotiated from its own OPEN and the sender's.
fn receiver_codec(opens: &BTreeMap<(String, String), Open>, c: &Captured) -> Codec {
    match (
        opens.get(&(c.connection.clone(), c.to.clone())),
        opens.get(&(c.connection.clone(), c.from.clone())),
    ) {
        (Some(ours), Some(theirs)) => Codec::negotiated(ours, theirs),
        _ => Codec::default(),
    }
}

fn decoded() -> Vec<(Captured, Message)> {
    let all = captured();
    let opens = opens(&all);
    let codecs: Vec<Codec> = all.iter().map(|c| receiver_codec(&opens, c)).collect();
    all.into_iter()
        .zip(codecs)
        .map(|(c, codec)| {
            let m = codec.decode(&c.bytes).unwrap_or_else(|e| {
                panic!("{} {}->{} {}: {e}", c.connection, c.from, c.to, c.kind)
            });
            (c, m)
        })
        .collect()
}

#[test]
fn every_captured_message_decodes_with_its_connections_codec() {
    let all = decoded();
    assert!(all.len() > 40, "the capture has {} messages", all.len());
    for (c, m) in &all {
        if let Message::Update(u) = m {
            assert!(
                u.treat_as_withdraw.is_none() && u.discarded.is_empty(),
                "{} {}: {u:?}",
                c.connection,
                c.kind
            );
        }
    }
}

#[test]
fn every_captured_message_encodes_back_to_the_same_meaning() {
    let all = captured();
    let opens = opens(&all);
    let mut identical = 0;
    for c in &all {
        let rx = receiver_codec(&opens, c);
        let m = rx.decode(&c.bytes).expect("decodes");
        // The sender's codec: its side of the same negotiation.
        let tx = match (
            opens.get(&(c.connection.clone(), c.from.clone())),
            opens.get(&(c.connection.clone(), c.to.clone())),
        ) {
            (Some(ours), Some(theirs)) => Codec::negotiated(ours, theirs),
            _ => Codec::default(),
        };
        let mut out = vec![];
        tx.encode(&m, &mut out).unwrap_or_else(|e| panic!("{} {}: {e}", c.connection, c.kind));
        assert_eq!(
            rx.decode(&out).as_ref(),
            Ok(&m),
            "{} {}->{} {}",
            c.connection,
            c.from,
            c.to,
            c.kind
        );
        // Where the encoding leaves no choice, the bytes are the same. OPENs and UPDATEs may
        // differ where senders are free to choose: FRR puts each capability in its own
        // parameter and gives short attributes extended lengths; FRR and BIRD put
        // MP_REACH_NLRI first, Tartan in type order.
        if matches!(c.kind.as_str(), "KEEPALIVE" | "NOTIFICATION" | "ROUTE-REFRESH") {
            assert_eq!(out, c.bytes, "{} {}->{} {}", c.connection, c.from, c.to, c.kind);
        }
        identical += usize::from(out == c.bytes);
    }
    assert!(identical > all.len() / 2, "only {identical} of {} came back byte for byte", all.len());
}

#[test]
fn capabilities_of_real_speakers_are_understood() {
    let all = captured();
    let opens = opens(&all);
    let bird = &opens[&("frr-bird4#5".to_string(), "bird".to_string())];
    assert_eq!(bird.asn(), Asn(4_200_000_002));
    assert_eq!(bird.my_as, 23456, "BIRD sends AS_TRANS in My AS");
    for c in [
        code::ROUTE_REFRESH,
        code::ENHANCED_ROUTE_REFRESH,
        code::GRACEFUL_RESTART,
        code::ADD_PATH,
        code::EXTENDED_MESSAGE,
    ] {
        assert!(bird.has(c), "BIRD advertised capability {c}");
    }
    let frr = &opens[&("frr-bird4#5".to_string(), "frr".to_string())];
    let codec = Codec::negotiated(frr, bird);
    assert!(codec.four_octet_as && codec.extended_message);
    assert!(codec.add_path_tx.contains(Family::Ipv4Unicast), "FRR sends ADD-PATH to BIRD");
    // The session where FRR was told not to negotiate capabilities: a two-octet session.
    let gobgp_side = &opens[&("frr-gobgp#1".to_string(), "frr".to_string())];
    assert!(gobgp_side.capabilities.is_empty());
}

#[test]
fn birds_communities_of_every_kind_arrive() {
    let update = decoded()
        .into_iter()
        .filter_map(|(c, m)| match m {
            Message::Update(u) if c.from == "bird" && c.connection == "frr-bird4#5" => Some(*u),
            _ => None,
        })
        .find(|u| u.nlri.iter().any(|n| n.prefix.to_string() == "203.0.113.0/24"))
        .expect("BIRD's 203.0.113.0/24");
    let a = update.attrs.expect("attributes");
    assert_eq!(a.as_path, Some(AsPath::sequence([Asn(4_200_000_002)])));
    // (BIRD does not pass MED to an eBGP neighbour unless told to, so none arrives.)
    assert!(a.communities.contains(&Community::new(65002, 7)));
    assert!(a.large_communities.contains(&LargeCommunity([4_200_000_002, 3, 4])));
    assert_eq!(a.ext_communities.len(), 1);
}

#[test]
fn frr_sends_add_path_identifiers_to_bird() {
    let ids: Vec<u32> = decoded()
        .into_iter()
        .filter(|(c, _)| c.from == "frr" && c.connection == "frr-bird4#5")
        .filter_map(|(_, m)| match m {
            Message::Update(u) => Some(u.nlri.iter().filter_map(|n| n.path_id).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(!ids.is_empty(), "FRR's routes to BIRD carry path identifiers");
}

#[test]
fn ipv6_routes_carry_a_link_local_next_hop() {
    let nh = decoded()
        .into_iter()
        .filter(|(c, _)| c.connection.starts_with("frr-bird6"))
        .find_map(|(_, m)| match m {
            Message::Update(u) => u.mp_reach.filter(|r| !r.nlri.is_empty()).map(|r| r.next_hop),
            _ => None,
        })
        .expect("an IPv6 route");
    let NextHop::V6 { link_local: Some(ll), .. } = nh else {
        panic!("no link-local next hop in {nh:?}")
    };
    assert_eq!(ll.segments()[0] & 0xffc0, 0xfe80, "{ll} is link-local");
    let _: Ipv6Addr = ll;
}

#[test]
fn a_two_octet_session_gets_as_trans_and_as4_path_merged_back() {
    let paths: Vec<AsPath> = decoded()
        .into_iter()
        .filter(|(c, _)| c.connection == "frr-gobgp#1" && c.from == "frr")
        .filter_map(|(_, m)| match m {
            Message::Update(u) => u.attrs.and_then(|a| a.as_path).filter(|_| !u.nlri.is_empty()),
            _ => None,
        })
        .collect();
    let learned_from_bird =
        paths.iter().find(|p| p.asns().count() == 2).expect("a route FRR learned from BIRD");
    assert_eq!(*learned_from_bird, AsPath::sequence([Asn(65001), Asn(4_200_000_002)]));
    let raw = captured().into_iter().find(|c| {
        c.connection == "frr-gobgp#1"
            && c.kind == "UPDATE"
            && c.bytes.windows(2).any(|w| w == [0x5b, 0xa0])
    });
    assert!(raw.is_some(), "AS_TRANS (23456) is on the wire towards the two-octet session");
}

#[test]
fn route_refresh_end_of_rib_and_shutdown_are_recognized() {
    let all = decoded();
    let rr: Vec<u8> = all
        .iter()
        .filter_map(|(_, m)| match m {
            Message::RouteRefresh(r) => Some(r.subtype),
            _ => None,
        })
        .collect();
    assert!(
        rr.contains(&subtype::NORMAL) && rr.contains(&subtype::BEGIN) && rr.contains(&subtype::END),
        "{rr:?}"
    );
    let eors: Vec<Family> = all
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Update(u) => u.end_of_rib_family(),
            _ => None,
        })
        .collect();
    assert!(eors.contains(&Family::Ipv4Unicast) && eors.contains(&Family::Ipv6Unicast), "{eors:?}");
    let n = all
        .iter()
        .find_map(|(_, m)| match m {
            Message::Notification(n) => Some(n.clone()),
            _ => None,
        })
        .expect("the shutdown");
    // FRR sends the rest of its command line, quotes included.
    assert_eq!(
        (n.subcode, n.shutdown_message()),
        (cease::ADMIN_SHUTDOWN, Some("\"capture done\""))
    );
}
