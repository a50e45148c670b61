//! RIB behaviour end to end: UPDATEs in from one peer, UPDATEs out to others, decoded again.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::*;
use crate::policy::{Action, Conditions, Modifications, Policy, Rule};
use crate::types::{Asn, Community, Family, FamilySet, Ipv4Prefix, NextHop, Origin, Prefix};
use crate::wire::{AsPath, AttrProblem, Codec, Message, MpReach, Nlri, PathAttributes, Update};

const LOCAL_AS: Asn = Asn(64512);

struct Lab {
    rib: Rib,
}

struct PeerSpec {
    asn: u32,
    n: u8,
    rr_client: bool,
    four_octet: bool,
}

fn ebgp(n: u8) -> PeerSpec {
    PeerSpec { asn: 65000 + u32::from(n), n, rr_client: false, four_octet: true }
}

fn ibgp(n: u8) -> PeerSpec {
    PeerSpec { asn: LOCAL_AS.0, n, rr_client: false, four_octet: true }
}

fn client(n: u8) -> PeerSpec {
    PeerSpec { rr_client: true, ..ibgp(n) }
}

fn codec(four_octet: bool) -> Codec {
    Codec { four_octet_as: four_octet, ..Codec::default() }
}

fn p(s: &str) -> Prefix {
    s.parse().expect("prefix")
}

fn v4(n: u32) -> Prefix {
    Prefix::V4(Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + n), 32).expect("prefix"))
}

impl Lab {
    fn new() -> Lab {
        Lab::with(false)
    }

    fn with(multipath: bool) -> Lab {
        Lab {
            rib: Rib::new(RibConfig {
                local_as: LOCAL_AS,
                router_id: Ipv4Addr::new(10, 0, 0, 1),
                cluster_id: None,
                multipath,
            }),
        }
    }

    fn settings(spec: &PeerSpec) -> PeerSettings {
        PeerSettings {
            name: format!("peer{}", spec.n),
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, spec.n)),
            local_as: LOCAL_AS,
            rr_client: spec.rr_client,
            next_hop: NextHopMode::Auto,
            import: Arc::new(Policy::accept_all()),
            export: Arc::new(Policy::accept_all()),
            max_prefixes: None,
        }
    }

    /// Adds a peer and brings its session up (both families), draining the empty initial
    /// walk so tests see only what they cause.
    fn peer(&mut self, spec: PeerSpec) -> PeerIdx {
        self.peer_with(spec, |_| {})
    }

    fn peer_with(&mut self, spec: PeerSpec, f: impl FnOnce(&mut PeerSettings)) -> PeerIdx {
        let mut s = Lab::settings(&spec);
        f(&mut s);
        let idx = self.rib.add_peer(s);
        self.up(idx, &spec);
        idx
    }

    fn up(&mut self, idx: PeerIdx, spec: &PeerSpec) {
        self.up_with(idx, spec, FamilySet::all());
    }

    fn up_with(&mut self, idx: PeerIdx, spec: &PeerSpec, families: FamilySet) {
        self.rib.peer_up(
            idx,
            SessionInfo {
                remote_as: Asn(spec.asn),
                remote_id: Ipv4Addr::new(10, 0, 0, spec.n),
                families,
                encode: codec(spec.four_octet).update_encode(),
                extended_next_hop: false,
                local_v4: Some(Ipv4Addr::new(192, 0, 2, 100 + spec.n)),
                local_v6: Some(format!("2001:db8::{}", 100 + spec.n).parse().expect("addr")),
                local_v6_link_local: Some(format!("fe80::{}", 100 + spec.n).parse().expect("addr")),
                enhanced_route_refresh: true,
            },
        );
    }

    /// Everything waiting for the peer, decoded.
    fn drain(&mut self, idx: PeerIdx, four_octet: bool) -> Vec<Message> {
        let mut out = Vec::new();
        while self.rib.export(idx, 64 * 1024, &mut out) {}
        let c = codec(four_octet);
        let mut msgs = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let (_, len) = c.frame(rest).expect("frames").expect("whole");
            msgs.push(c.decode(&rest[..len]).expect("decodes"));
            rest = &rest[len..];
        }
        self.rib.collect();
        msgs
    }

    fn updates(&mut self, idx: PeerIdx) -> Vec<Update> {
        self.drain(idx, true)
            .into_iter()
            .filter_map(|m| match m {
                Message::Update(u) => Some(*u),
                _ => None,
            })
            .collect()
    }

    /// Drains the initial walk of a fresh session (its End-of-RIB markers).
    fn settle(&mut self, idx: PeerIdx) {
        let _ = self.updates(idx);
    }
}

fn attrs_from(asns: &[u32], nh: [u8; 4]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(asns.iter().map(|a| Asn(*a)))),
        next_hop: Some(Ipv4Addr::from(nh)),
        ..PathAttributes::default()
    }
}

fn announce(attrs: PathAttributes, prefixes: &[Prefix]) -> Update {
    Update {
        attrs: Some(attrs),
        nlri: prefixes.iter().map(|p| Nlri::new(*p)).collect(),
        ..Update::default()
    }
}

fn withdraw(prefixes: &[Prefix]) -> Update {
    Update { withdrawn: prefixes.iter().map(|p| Nlri::new(*p)).collect(), ..Update::default() }
}

/// Routes announced across `updates`, with their attributes.
fn announced(updates: &[Update]) -> Vec<(Prefix, PathAttributes)> {
    updates
        .iter()
        .flat_map(|u| {
            u.announced()
                .map(|n| (n.prefix, u.attrs.clone().unwrap_or_default()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn withdrawn(updates: &[Update]) -> Vec<Prefix> {
    updates.iter().flat_map(|u| u.withdrawals().map(|n| n.prefix).collect::<Vec<_>>()).collect()
}

#[test]
fn a_new_session_gets_the_table_then_end_of_rib_for_each_family() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    let b = lab.peer(ebgp(2));
    let u = lab.updates(b);
    assert_eq!(announced(&u).len(), 1);
    let eors: Vec<Family> = u.iter().filter_map(Update::end_of_rib_family).collect();
    assert_eq!(eors, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
    let last_route = u.iter().rposition(|u| u.announced().count() > 0);
    let first_eor = u.iter().position(|u| u.end_of_rib_family().is_some());
    assert!(last_route < first_eor);
}

#[test]
fn ebgp_routes_go_to_other_ebgp_peers_with_our_as_and_our_next_hop() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    lab.settle(a);
    lab.settle(b);
    let mut attrs = attrs_from(&[65001, 65100], [192, 0, 2, 1]);
    attrs.med = Some(5);
    attrs.local_pref = Some(300);
    attrs.communities = vec![Community::new(65001, 1)];
    lab.rib.apply_update(a, &announce(attrs, &[p("10.1.0.0/16")]));
    let got = announced(&lab.updates(b));
    assert_eq!(got.len(), 1);
    let (prefix, a2) = &got[0];
    assert_eq!(*prefix, p("10.1.0.0/16"));
    assert_eq!(a2.as_path, Some(AsPath::sequence([LOCAL_AS, Asn(65001), Asn(65100)])));
    assert_eq!(a2.next_hop, Some(Ipv4Addr::new(192, 0, 2, 102)));
    assert_eq!(a2.med, None, "RFC 4271 §5.1.4: a neighbour's MED is not passed on");
    assert_eq!(a2.local_pref, None, "no LOCAL_PREF over eBGP");
    assert_eq!(a2.communities, vec![Community::new(65001, 1)]);
    assert!(lab.updates(a).is_empty(), "never back to the peer it came from");
}

#[test]
fn ibgp_routes_do_not_go_to_other_ibgp_peers_without_reflection() {
    let mut lab = Lab::new();
    let a = lab.peer(ibgp(1));
    let b = lab.peer(ibgp(2));
    let e = lab.peer(ebgp(3));
    for x in [a, b, e] {
        lab.settle(x);
    }
    lab.rib.apply_update(a, &announce(attrs_from(&[65100], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    assert!(announced(&lab.updates(b)).is_empty());
    let to_ebgp = announced(&lab.updates(e));
    assert_eq!(to_ebgp.len(), 1);
    assert_eq!(to_ebgp[0].1.as_path, Some(AsPath::sequence([LOCAL_AS, Asn(65100)])));
}

#[test]
fn a_reflector_passes_client_routes_to_non_clients_with_originator_and_cluster() {
    let mut lab = Lab::new();
    let c = lab.peer(client(1));
    let n = lab.peer(ibgp(2));
    lab.settle(c);
    lab.settle(n);
    let mut attrs = attrs_from(&[], [192, 0, 2, 1]);
    attrs.local_pref = Some(150);
    lab.rib.apply_update(c, &announce(attrs, &[p("10.1.0.0/16")]));
    let got = announced(&lab.updates(n));
    assert_eq!(got.len(), 1);
    let a = &got[0].1;
    assert_eq!(a.originator_id, Some(Ipv4Addr::new(10, 0, 0, 1)), "the client's router id");
    assert_eq!(a.cluster_list, vec![Ipv4Addr::new(10, 0, 0, 1)], "our router id as cluster id");
    assert_eq!(a.next_hop, Some(Ipv4Addr::new(192, 0, 2, 1)), "iBGP keeps the next hop");
    assert_eq!(a.local_pref, Some(150));
    assert_eq!(a.as_path, Some(AsPath::default()), "no AS added inside the AS");
    // And non-client routes reach clients.
    lab.rib.apply_update(n, &announce(attrs_from(&[], [192, 0, 2, 2]), &[p("10.2.0.0/16")]));
    assert_eq!(announced(&lab.updates(c)).len(), 1);
}

#[test]
fn a_reflected_route_that_comes_back_is_refused() {
    let mut lab = Lab::new();
    let c = lab.peer(client(1));
    lab.settle(c);
    let mut attrs = attrs_from(&[], [192, 0, 2, 1]);
    attrs.cluster_list = vec![Ipv4Addr::new(10, 0, 0, 1)];
    lab.rib.apply_update(c, &announce(attrs, &[p("10.1.0.0/16")]));
    assert_eq!(lab.rib.prefix_counts(), [0, 0]);
    assert_eq!(lab.rib.counters(c).map(|c| c.routes_rejected), Some(1));
}

#[test]
fn a_route_with_our_as_in_its_path_is_refused_and_replaces_the_old_one() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    assert_eq!(lab.rib.prefix_counts(), [1, 0]);
    lab.rib.apply_update(
        a,
        &announce(attrs_from(&[65001, 64512], [192, 0, 2, 1]), &[p("10.1.0.0/16")]),
    );
    lab.rib.collect();
    assert_eq!(lab.rib.prefix_counts(), [0, 0], "implicit withdrawal of the earlier route");
}

#[test]
fn treat_as_withdraw_really_removes_an_installed_route() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    lab.settle(b);
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    assert_eq!(announced(&lab.updates(b)).len(), 1);
    let mut bad = announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]);
    bad.treat_as_withdraw = Some(AttrProblem { type_code: 8, offset: 30, reason: "malformed" });
    lab.rib.apply_update(a, &bad);
    assert_eq!(withdrawn(&lab.updates(b)), vec![p("10.1.0.0/16")]);
    assert_eq!(lab.rib.counters(a).map(|c| (c.treat_as_withdraw, c.accepted[0])), Some((1, 0)));
}

#[test]
fn withdrawals_propagate_only_to_peers_that_had_the_route() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    lab.settle(a);
    lab.settle(b);
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    lab.updates(b);
    lab.rib.apply_update(a, &withdraw(&[p("10.1.0.0/16"), p("10.9.0.0/16")]));
    let u = lab.updates(b);
    assert_eq!(withdrawn(&u), vec![p("10.1.0.0/16")]);
    assert!(lab.updates(a).is_empty());
}

#[test]
fn routes_sharing_attributes_share_one_set_and_pack_into_few_updates() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    lab.settle(b);
    let prefixes: Vec<Prefix> = (0..5000).map(v4).collect();
    for chunk in prefixes.chunks(500) {
        lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), chunk));
    }
    assert_eq!(lab.rib.attribute_sets(), 1);
    let u = lab.updates(b);
    assert_eq!(announced(&u).len(), 5000);
    assert!(u.len() <= 8, "5000 /32s at 5 octets need 7 messages of 4096, got {}", u.len());
    assert_eq!(lab.rib.counters(b).map(|c| c.advertised[0]), Some(5000));
    assert_eq!(lab.rib.counters(a).map(|c| c.accepted[0]), Some(5000));
}

#[test]
fn a_prefix_that_changed_many_times_before_export_is_sent_once_as_it_is_now() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    lab.settle(b);
    for med in 1..=5 {
        let mut attrs = attrs_from(&[65001], [192, 0, 2, 1]);
        attrs.communities = vec![Community::new(1, med)];
        lab.rib.apply_update(a, &announce(attrs, &[p("10.1.0.0/16")]));
    }
    let got = announced(&lab.updates(b));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.communities, vec![Community::new(1, 5)]);
}

#[test]
fn a_better_path_replaces_the_best_and_its_loss_brings_the_old_one_back() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    let c = lab.peer(ebgp(3));
    lab.settle(c);
    lab.rib.apply_update(
        a,
        &announce(attrs_from(&[65001, 1, 2], [192, 0, 2, 1]), &[p("10.1.0.0/16")]),
    );
    lab.rib.apply_update(b, &announce(attrs_from(&[65002], [192, 0, 2, 2]), &[p("10.1.0.0/16")]));
    let got = announced(&lab.updates(c));
    assert_eq!(got.len(), 1, "only the final best is sent");
    assert_eq!(got[0].1.as_path.as_ref().map(|x| x.len()), Some(2));
    lab.rib.apply_update(b, &withdraw(&[p("10.1.0.0/16")]));
    let got = announced(&lab.updates(c));
    assert_eq!(got[0].1.as_path.as_ref().map(|x| x.len()), Some(4));
}

#[test]
fn no_export_stays_inside_the_as_and_no_advertise_goes_nowhere() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let e = lab.peer(ebgp(2));
    let i = lab.peer(ibgp(3));
    lab.settle(e);
    lab.settle(i);
    let mut no_export = attrs_from(&[65001], [192, 0, 2, 1]);
    no_export.communities = vec![Community::NO_EXPORT];
    let mut no_adv = attrs_from(&[65001], [192, 0, 2, 1]);
    no_adv.communities = vec![Community::NO_ADVERTISE];
    lab.rib.apply_update(a, &announce(no_export, &[p("10.1.0.0/16")]));
    lab.rib.apply_update(a, &announce(no_adv, &[p("10.2.0.0/16")]));
    let to_e: Vec<Prefix> = announced(&lab.updates(e)).into_iter().map(|x| x.0).collect();
    let to_i: Vec<Prefix> = announced(&lab.updates(i)).into_iter().map(|x| x.0).collect();
    assert!(to_e.is_empty());
    assert_eq!(to_i, vec![p("10.1.0.0/16")]);
}

#[test]
fn import_policy_rejects_and_sets_local_preference() {
    let mut lab = Lab::new();
    let policy = Policy {
        rules: vec![
            Rule {
                conditions: Conditions {
                    prefixes: vec!["10.1.0.0/16 le 24".parse().expect("match")],
                    ..Conditions::default()
                },
                action: Action::Accept,
                set: Modifications { local_pref: Some(250), ..Modifications::default() },
            },
            Rule {
                conditions: Conditions {
                    communities: vec![Community::new(65001, 666)],
                    ..Conditions::default()
                },
                action: Action::Reject,
                set: Modifications::default(),
            },
        ],
        default: Action::Accept,
    };
    let a = lab.peer_with(ibgp(1), |s| s.import = Arc::new(policy));
    let mut attrs = attrs_from(&[65100], [192, 0, 2, 1]);
    attrs.communities = vec![Community::new(65001, 666)];
    lab.rib.apply_update(a, &announce(attrs, &[p("10.1.2.0/24"), p("10.2.0.0/16")]));
    let routes = lab.rib.routes(Family::Ipv4Unicast, |_| true);
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].prefix, p("10.1.2.0/24"));
    assert_eq!(routes[0].paths[0].attrs.attrs.local_pref, Some(250));
    assert_eq!(lab.rib.counters(a).map(|c| c.routes_rejected), Some(1));
}

#[test]
fn a_new_export_policy_withdraws_what_it_no_longer_allows() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    lab.settle(b);
    lab.rib.apply_update(
        a,
        &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16"), p("10.2.0.0/16")]),
    );
    assert_eq!(announced(&lab.updates(b)).len(), 2);
    let mut s = Lab::settings(&ebgp(2));
    s.export = Arc::new(Policy {
        rules: vec![Rule {
            conditions: Conditions {
                prefixes: vec!["10.2.0.0/16".parse().expect("match")],
                ..Conditions::default()
            },
            action: Action::Reject,
            set: Modifications::default(),
        }],
        default: Action::Accept,
    });
    let refresh = lab.rib.set_peer_settings(b, s);
    assert!(!refresh, "only the export side changed");
    let u = lab.updates(b);
    assert_eq!(withdrawn(&u), vec![p("10.2.0.0/16")]);
    assert_eq!(announced(&u).iter().map(|x| x.0).collect::<Vec<_>>(), vec![p("10.1.0.0/16")]);
}

#[test]
fn a_peer_going_down_takes_its_routes_with_it() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    lab.settle(b);
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    lab.updates(b);
    lab.rib.peer_down(a, FamilySet::EMPTY);
    assert_eq!(withdrawn(&lab.updates(b)), vec![p("10.1.0.0/16")]);
    assert_eq!(lab.rib.prefix_counts(), [0, 0]);
    lab.rib.peer_down(b, FamilySet::EMPTY);
    assert_eq!(lab.rib.attribute_sets(), 0, "no attribute set outlives its routes");
}

#[test]
fn graceful_restart_keeps_routes_stale_until_purged_without_re_advertising() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    lab.settle(b);
    lab.rib.apply_update(
        a,
        &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16"), p("10.2.0.0/16")]),
    );
    lab.updates(b);
    lab.rib.peer_down(a, FamilySet::single(Family::Ipv4Unicast));
    assert!(lab.updates(b).is_empty(), "stale routes stay advertised, unchanged");
    let r = lab.rib.routes(Family::Ipv4Unicast, |_| true);
    assert!(r.iter().all(|r| r.paths[0].stale));
    // The peer returns and re-sends one route; End-of-RIB purges the other.
    lab.up(a, &ebgp(1));
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    lab.rib.purge_stale(a, FamilySet::single(Family::Ipv4Unicast));
    let u = lab.updates(b);
    assert_eq!(withdrawn(&u), vec![p("10.2.0.0/16")]);
    assert!(announced(&u).is_empty(), "the refreshed route did not change");
    assert!(lab.rib.routes(Family::Ipv4Unicast, |_| true).iter().all(|r| !r.paths[0].stale));
}

#[test]
fn exceeding_the_prefix_limit_raises_an_event() {
    let mut lab = Lab::new();
    let a = lab.peer_with(ebgp(1), |s| s.max_prefixes = Some(3));
    let prefixes: Vec<Prefix> = (0..3).map(v4).collect();
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &prefixes));
    assert!(lab.rib.take_events().is_empty());
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[v4(9)]));
    assert_eq!(
        lab.rib.take_events(),
        vec![RibEvent::MaxPrefixes { peer: a, family: Family::Ipv4Unicast, limit: 3 }]
    );
}

#[test]
fn originated_routes_carry_our_as_and_address_to_ebgp_and_local_pref_to_ibgp() {
    let mut lab = Lab::new();
    let e = lab.peer(ebgp(1));
    let i = lab.peer(ibgp(2));
    lab.settle(e);
    lab.settle(i);
    let o = Origination { communities: vec![Community::new(64512, 10)], ..Origination::default() };
    lab.rib.originate(p("10.244.0.0/26"), &o);
    lab.rib.originate(p("fd00:244::/122"), &o);
    let to_e = announced(&lab.updates(e));
    assert_eq!(to_e.len(), 2);
    let v4 = to_e.iter().find(|x| x.0 == p("10.244.0.0/26")).expect("v4");
    assert_eq!(v4.1.as_path, Some(AsPath::sequence([LOCAL_AS])));
    assert_eq!(v4.1.next_hop, Some(Ipv4Addr::new(192, 0, 2, 101)));
    assert_eq!(v4.1.communities, vec![Community::new(64512, 10)]);
    let to_i = lab.updates(i);
    let v6 = to_i.iter().find_map(|u| u.mp_reach.clone()).expect("MP_REACH");
    assert_eq!(
        v6.next_hop,
        NextHop::V6 {
            global: "2001:db8::102".parse().expect("addr"),
            link_local: Some("fe80::102".parse().expect("addr"))
        }
    );
    let a = to_i.iter().find_map(|u| u.attrs.clone()).expect("attrs");
    assert_eq!(a.local_pref, Some(DEFAULT_LOCAL_PREF));
    assert_eq!(a.as_path, Some(AsPath::default()));
    lab.rib.withdraw_origination(p("10.244.0.0/26"));
    assert_eq!(withdrawn(&lab.updates(e)), vec![p("10.244.0.0/26")]);
}

#[test]
fn ipv6_routes_keep_the_global_next_hop_over_ibgp_and_drop_the_link_local() {
    let mut lab = Lab::new();
    let a = lab.peer(ibgp(1));
    let e = lab.peer(ebgp(2));
    let c = lab.peer(client(3));
    for x in [e, c] {
        lab.settle(x);
    }
    let nh = NextHop::V6 {
        global: "2001:db8:1::1".parse().expect("addr"),
        link_local: Some("fe80::1".parse().expect("addr")),
    };
    let u = Update {
        attrs: Some(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..PathAttributes::default()
        }),
        mp_reach: Some(MpReach {
            family: Family::Ipv6Unicast,
            next_hop: nh,
            nlri: vec![Nlri::new(p("2001:db8:99::/48"))],
        }),
        ..Update::default()
    };
    lab.rib.apply_update(a, &u);
    let to_c = lab.updates(c);
    let r = to_c.iter().find_map(|u| u.mp_reach.clone()).expect("reflected");
    assert_eq!(
        r.next_hop,
        NextHop::V6 { global: "2001:db8:1::1".parse().expect("addr"), link_local: None }
    );
    let to_e = lab.updates(e);
    let r = to_e.iter().find_map(|u| u.mp_reach.clone()).expect("to eBGP");
    assert_eq!(
        r.next_hop,
        NextHop::V6 {
            global: "2001:db8::102".parse().expect("addr"),
            link_local: Some("fe80::102".parse().expect("addr"))
        }
    );
}

#[test]
fn a_route_refresh_request_sends_everything_again_between_borr_and_eorr() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(2));
    lab.settle(b);
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    lab.updates(b);
    lab.rib.refresh_requested(b, Family::Ipv4Unicast);
    let msgs = lab.drain(b, true);
    assert!(matches!(msgs.first(), Some(Message::RouteRefresh(r)) if r.subtype == 1));
    assert!(matches!(msgs.last(), Some(Message::RouteRefresh(r)) if r.subtype == 2));
    let updates: Vec<Update> = msgs
        .into_iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(announced(&updates).len(), 1);
}

#[test]
fn a_two_octet_peer_gets_as_trans_and_the_real_path_in_as4_path() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let spec = PeerSpec { four_octet: false, ..ebgp(2) };
    let b = lab.peer(spec);
    let _ = lab.drain(b, false);
    lab.rib.apply_update(
        a,
        &announce(attrs_from(&[65001, 4_200_000_000], [192, 0, 2, 1]), &[p("10.1.0.0/16")]),
    );
    let msgs = lab.drain(b, false);
    let u = msgs
        .iter()
        .find_map(|m| match m {
            Message::Update(u) => Some(u.clone()),
            _ => None,
        })
        .expect("update");
    // Decoding merged AS4_PATH back: the path is whole again.
    assert_eq!(
        u.attrs.as_ref().and_then(|a| a.as_path.clone()),
        Some(AsPath::sequence([LOCAL_AS, Asn(65001), Asn(4_200_000_000)]))
    );
}

#[test]
fn the_feed_reports_every_route_then_changes_with_all_multipath_next_hops() {
    let mut lab = Lab::with(true);
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ebgp(3));
    lab.rib.apply_update(a, &announce(attrs_from(&[65100], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    let feed = lab.rib.subscribe();
    let first = lab.rib.drain_feed(feed, 100);
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].best.as_ref().map(|b| b.next_hops.clone()),
        Some(vec![NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))])
    );
    lab.rib.apply_update(b, &announce(attrs_from(&[65100], [192, 0, 2, 3]), &[p("10.1.0.0/16")]));
    let second = lab.rib.drain_feed(feed, 100);
    let mut hops = second[0].best.as_ref().map(|b| b.next_hops.clone()).unwrap_or_default();
    hops.sort();
    assert_eq!(
        hops,
        vec![NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)), NextHop::V4(Ipv4Addr::new(192, 0, 2, 3))]
    );
    lab.rib.peer_down(a, FamilySet::EMPTY);
    lab.rib.peer_down(b, FamilySet::EMPTY);
    let gone = lab.rib.drain_feed(feed, 100);
    assert_eq!(gone.last().map(|c| c.best.is_none()), Some(true));
    assert!(!lab.rib.feed_pending(feed));
}

#[test]
fn nothing_leaks_once_every_peer_is_gone() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let b = lab.peer(ibgp(2));
    let c = lab.peer(client(3));
    for (i, x) in [a, b, c].into_iter().enumerate() {
        let prefixes: Vec<Prefix> = (0..100).map(|n| v4(n + 1000 * i as u32)).collect();
        lab.rib
            .apply_update(x, &announce(attrs_from(&[65001 + i as u32], [192, 0, 2, 1]), &prefixes));
    }
    for x in [a, b, c] {
        lab.updates(x);
    }
    for x in [a, b, c] {
        lab.rib.remove_peer(x);
    }
    lab.rib.collect();
    assert_eq!(lab.rib.attribute_sets(), 0);
    assert_eq!(lab.rib.prefix_counts(), [0, 0]);
}

#[test]
fn routes_of_a_family_the_session_did_not_negotiate_are_ignored() {
    let mut lab = Lab::new();
    let a = lab.rib.add_peer(Lab::settings(&ebgp(1)));
    lab.up_with(a, &ebgp(1), FamilySet::single(Family::Ipv4Unicast));
    let nh = NextHop::V6 { global: "2001:db8::1".parse().expect("addr"), link_local: None };
    let u = Update {
        attrs: Some(attrs_from(&[65001], [192, 0, 2, 1])),
        mp_reach: Some(MpReach {
            family: Family::Ipv6Unicast,
            next_hop: nh,
            nlri: vec![Nlri::new(p("2001:db8:5::/48"))],
        }),
        ..Update::default()
    };
    lab.rib.apply_update(a, &u);
    assert_eq!(lab.rib.prefix_counts(), [0, 0]);
}

#[test]
fn a_route_exported_unchanged_does_not_keep_its_attributes_alive() {
    let mut lab = Lab::new();
    let policy = Policy {
        rules: vec![Rule {
            conditions: Conditions::default(),
            action: Action::Accept,
            set: Modifications { local_pref: Some(300), ..Modifications::default() },
        }],
        default: Action::Accept,
    };
    let a = lab.peer_with(ebgp(1), |s| s.import = Arc::new(policy));
    let b = lab.peer(ibgp(2));
    lab.settle(b);
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    // To iBGP the route goes as it is stored (LOCAL_PREF 300, next hop kept): the same set.
    let got = announced(&lab.updates(b));
    assert_eq!(got[0].1.local_pref, Some(300));
    assert_eq!(lab.rib.attribute_sets(), 1);
    lab.rib.apply_update(a, &withdraw(&[p("10.1.0.0/16")]));
    lab.updates(b);
    assert_eq!(lab.rib.attribute_sets(), 0, "b's export cache must not hold the set");
}

#[test]
fn a_route_refused_on_re_announcement_no_longer_counts_as_accepted() {
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    lab.rib.apply_update(a, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    assert_eq!(lab.rib.counters(a).map(|c| c.accepted[0]), Some(1));
    lab.rib.apply_update(
        a,
        &announce(attrs_from(&[65001, 64512], [192, 0, 2, 1]), &[p("10.1.0.0/16")]),
    );
    assert_eq!(lab.rib.counters(a).map(|c| c.accepted[0]), Some(0));
}

#[test]
fn a_path_with_confederation_segments_is_refused() {
    use crate::wire::{Segment, SegmentKind};
    let mut lab = Lab::new();
    let a = lab.peer(ebgp(1));
    let mut attrs = attrs_from(&[65001], [192, 0, 2, 1]);
    attrs.as_path = Some(AsPath {
        segments: vec![
            Segment { kind: SegmentKind::ConfedSequence, asns: vec![Asn(65100)] },
            Segment { kind: SegmentKind::Sequence, asns: vec![Asn(65001)] },
        ],
    });
    lab.rib.apply_update(a, &announce(attrs, &[p("10.1.0.0/16")]));
    assert_eq!(lab.rib.prefix_counts(), [0, 0]);
}

#[test]
fn making_a_peer_a_client_sends_its_routes_to_the_other_non_clients() {
    let mut lab = Lab::new();
    let a = lab.peer(ibgp(1));
    let b = lab.peer(ibgp(2));
    lab.settle(a);
    lab.settle(b);
    lab.rib.apply_update(a, &announce(attrs_from(&[], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    assert!(announced(&lab.updates(b)).is_empty(), "non-client to non-client: not reflected");
    let mut s = Lab::settings(&client(1));
    s.rr_client = true;
    lab.rib.set_peer_settings(a, s);
    let got = announced(&lab.updates(b));
    assert_eq!(got.len(), 1, "a is a client now: its route is reflected to b");
    assert_eq!(got[0].1.originator_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    let mut s = Lab::settings(&ibgp(1));
    s.rr_client = false;
    lab.rib.set_peer_settings(a, s);
    assert_eq!(withdrawn(&lab.updates(b)), vec![p("10.1.0.0/16")]);
}

#[test]
fn export_policy_prepends_only_towards_ebgp_and_never_sends_local_pref_there() {
    let mut lab = Lab::new();
    let policy = Arc::new(Policy {
        rules: vec![Rule {
            conditions: Conditions::default(),
            action: Action::Accept,
            set: Modifications { prepend: 2, local_pref: Some(50), ..Modifications::default() },
        }],
        default: Action::Accept,
    });
    let src = lab.peer(ebgp(1));
    let e = lab.peer_with(ebgp(2), |s| s.export = policy.clone());
    let i = lab.peer_with(ibgp(3), |s| s.export = policy.clone());
    lab.settle(e);
    lab.settle(i);
    lab.rib.apply_update(src, &announce(attrs_from(&[65001], [192, 0, 2, 1]), &[p("10.1.0.0/16")]));
    let to_e = announced(&lab.updates(e));
    assert_eq!(
        to_e[0].1.as_path.as_ref().map(|x| x.len()),
        Some(4),
        "ours three times, then 65001"
    );
    assert_eq!(to_e[0].1.local_pref, None);
    let to_i = announced(&lab.updates(i));
    assert_eq!(to_i[0].1.as_path, Some(AsPath::sequence([Asn(65001)])));
    assert_eq!(to_i[0].1.local_pref, Some(50));
}
