//! The evaluator against hand-worked cases: default allow through the profile, default deny
//! once selected, order and name, Pass, Log, nets and selectors (and their negations), ports
//! and ranges, ICMP, IP version, network sets, labels inherited from profiles.

use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::resources::policy::{GlobalNetworkPolicySpec, ProfileSpec, Protocol};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn workload(name: &str, address: &str, l: &[(&str, &str)]) -> Endpoint {
    Endpoint {
        name: name.into(),
        labels: labels(l),
        addresses: vec![ip(address)],
        profiles: vec!["net1".into()],
    }
}

fn policy(name: &str, spec: serde_json::Value) -> (String, GlobalNetworkPolicySpec) {
    (name.into(), serde_json::from_value(spec).expect("policy spec"))
}

fn allow_all_profile() -> (String, ProfileSpec) {
    let spec = json!({"labelsToApply": {"net1": ""}, "ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]});
    ("net1".into(), serde_json::from_value(spec).expect("profile"))
}

/// web (10.0.0.1, app=web, tier=front), db (10.0.0.2, app=db), cache (10.0.0.3, no app).
fn model(policies: &[(String, GlobalNetworkPolicySpec)], sets: Vec<NetworkSet>) -> Model {
    Model::new(
        vec![
            workload("web", "10.0.0.1", &[("app", "web"), ("tier", "front")]),
            workload("db", "10.0.0.2", &[("app", "db")]),
            workload("cache", "10.0.0.3", &[]),
            workload("web6", "fd00::1", &[("app", "web")]),
            workload("db6", "fd00::2", &[("app", "db")]),
        ],
        sets,
        policies,
        &[allow_all_profile()],
    )
    .expect("model")
}

fn tcp(m: &Model, src: &str, dst: &str, port: u16) -> Verdict {
    m.evaluate(&Flow::to_port(ip(src), ip(dst), Protocol::Tcp, port))
}

#[test]
fn no_policy_means_the_profile_allows_everything() {
    let m = model(&[], vec![]);
    let v = tcp(&m, "10.0.0.1", "10.0.0.2", 5432);
    assert!(v.allowed(), "{v}");
    assert!(
        matches!(v.ingress.as_ref().map(|d| &d.reason), Some(Reason::Rule(r)) if r.owner == "Profile net1")
    );
    // Outside the fabric: only the workload side is policed.
    let v = tcp(&m, "192.0.2.9", "10.0.0.2", 5432);
    assert!(v.egress.is_none() && v.allowed(), "{v}");
}

#[test]
fn a_selecting_policy_makes_its_direction_default_deny_and_only_that_one() {
    let p = policy(
        "db-ingress",
        json!({"selector": "app == 'db'", "ingress": [{"action": "Allow", "protocol": "TCP",
               "source": {"selector": "app == 'web'"}, "destination": {"ports": [5432]}}]}),
    );
    let m = model(&[p], vec![]);
    assert!(tcp(&m, "10.0.0.1", "10.0.0.2", 5432).allowed());
    let v = tcp(&m, "10.0.0.3", "10.0.0.2", 5432);
    assert!(!v.allowed());
    assert_eq!(
        v.ingress.map(|d| d.reason),
        Some(Reason::PoliciesDidNotAllow(vec!["db-ingress".into()]))
    );
    assert!(!tcp(&m, "10.0.0.1", "10.0.0.2", 5433).allowed(), "another port");
    // Egress of db is not selected (types defaulted to Ingress): db reaches anything.
    assert!(tcp(&m, "10.0.0.2", "10.0.0.3", 80).allowed());
    // A source outside the fabric has no labels: the selector does not match it.
    assert!(!tcp(&m, "192.0.2.9", "10.0.0.2", 5432).allowed());
}

#[test]
fn order_then_name_decides_and_none_runs_last() {
    let deny = policy("a-deny", json!({"selector": "all()", "ingress": [{"action": "Deny"}]}));
    let allow = policy(
        "b-allow",
        json!({"order": 10, "selector": "all()", "ingress": [{"action": "Allow"}]}),
    );
    let m = model(&[deny.clone(), allow.clone()], vec![]);
    let v = tcp(&m, "10.0.0.1", "10.0.0.2", 80);
    assert!(v.allowed(), "order 10 runs before no order: {v}");
    let mut deny_first = deny.clone();
    deny_first.1.order = Some(10.0);
    let m = model(&[allow, deny_first], vec![]);
    assert!(!tcp(&m, "10.0.0.1", "10.0.0.2", 80).allowed(), "same order: by name, a-deny first");
    // Felix compares `<name>/`: `a-b` sorts before `a`.
    let a = policy("a", json!({"order": 1, "selector": "all()", "ingress": [{"action": "Allow"}]}));
    let ab =
        policy("a-b", json!({"order": 1, "selector": "all()", "ingress": [{"action": "Deny"}]}));
    let m = model(&[a, ab], vec![]);
    assert!(!tcp(&m, "10.0.0.1", "10.0.0.2", 80).allowed());
}

#[test]
fn pass_goes_to_the_profiles_and_log_goes_on() {
    let pass = policy(
        "pass-web",
        json!({"order": 1, "selector": "all()", "ingress": [
            {"action": "Log", "protocol": "TCP"},
            {"action": "Pass", "source": {"selector": "app == 'web'"}}]}),
    );
    let deny =
        policy("deny", json!({"order": 2, "selector": "all()", "ingress": [{"action": "Deny"}]}));
    let m = model(&[pass, deny], vec![]);
    let v = tcp(&m, "10.0.0.1", "10.0.0.2", 80);
    assert!(v.allowed(), "{v}");
    let d = v.ingress.expect("ingress");
    assert_eq!(d.logged.len(), 1);
    assert!(d.passed_by.is_some_and(|r| r.owner == "GlobalNetworkPolicy pass-web" && r.index == 2));
    assert!(!tcp(&m, "10.0.0.3", "10.0.0.2", 80).allowed(), "not web: the deny policy");
}

#[test]
fn negations_nets_sets_ports_and_ranges() {
    let sets = vec![NetworkSet {
        name: "partners".into(),
        labels: labels(&[("role", "partner")]),
        nets: vec!["198.51.100.0/24".parse().expect("net")],
    }];
    let p = policy(
        "edge",
        json!({"selector": "app == 'web'", "ingress": [
            {"action": "Deny", "source": {"notSelector": "role == 'partner'", "nets": ["198.51.0.0/16"]}},
            {"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'partner'"},
             "destination": {"ports": ["8000:8100"], "notPorts": [8080]}},
            {"action": "Allow", "protocol": "UDP", "source": {"notNets": ["10.0.0.0/8"]}}]}),
    );
    let m = model(&[p], sets);
    assert!(tcp(&m, "198.51.100.7", "10.0.0.1", 8050).allowed());
    assert!(!tcp(&m, "198.51.100.7", "10.0.0.1", 8080).allowed(), "notPorts");
    assert!(!tcp(&m, "198.51.100.7", "10.0.0.1", 8101).allowed(), "outside the range");
    let v = tcp(&m, "198.51.7.7", "10.0.0.1", 8050);
    assert!(matches!(v.ingress.map(|d| d.reason), Some(Reason::Rule(r)) if r.index == 1));
    let udp = |src: &str| m.evaluate(&Flow::to_port(ip(src), ip("10.0.0.1"), Protocol::Udp, 53));
    assert!(udp("203.0.113.1").allowed());
    assert!(!udp("10.0.0.3").allowed(), "notNets");
    // A rule with IPv4 nets is IPv4's only: an IPv6 packet does not match it.
    let v6 = m.evaluate(&Flow::to_port(ip("fd00::9"), ip("fd00::1"), Protocol::Udp, 53));
    assert!(!v6.allowed(), "{v6}");
}

#[test]
fn icmp_type_and_code_and_ip_version() {
    let p = policy(
        "ping",
        json!({"selector": "app == 'db'", "ingress": [
            {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}},
            {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6", "notICMP": {"type": 1}}]}),
    );
    let m = model(&[p], vec![]);
    assert!(m.evaluate(&Flow::ping(ip("10.0.0.1"), ip("10.0.0.2"))).allowed());
    let mut reply = Flow::ping(ip("10.0.0.1"), ip("10.0.0.2"));
    reply.icmp = Some((0, 0));
    assert!(!m.evaluate(&reply).allowed(), "only echo requests");
    assert!(m.evaluate(&Flow::ping(ip("fd00::1"), ip("fd00::2"))).allowed());
    let mut unreachable = Flow::ping(ip("fd00::1"), ip("fd00::2"));
    unreachable.icmp = Some((1, 4));
    assert!(!m.evaluate(&unreachable).allowed(), "notICMP type 1");
    assert!(!tcp(&m, "10.0.0.1", "10.0.0.2", 80).allowed());
}

#[test]
fn egress_and_ingress_both_have_to_allow() {
    let p = policy(
        "web-out",
        json!({"selector": "tier == 'front'", "types": ["Egress"],
               "egress": [{"action": "Allow", "destination": {"selector": "app == 'db'"}}]}),
    );
    let m = model(&[p], vec![]);
    assert!(tcp(&m, "10.0.0.1", "10.0.0.2", 5432).allowed());
    let v = tcp(&m, "10.0.0.1", "10.0.0.3", 80);
    assert!(!v.allowed());
    assert!(v.egress.is_some_and(|d| !d.allowed) && v.ingress.is_some_and(|d| d.allowed));
}

#[test]
fn profile_labels_are_inherited_and_the_workloads_own_win() {
    let p = policy("net", json!({"selector": "has(net1)", "ingress": [{"action": "Deny"}]}));
    let m = model(&[p], vec![]);
    assert_eq!(m.effective_labels("cache").map(|l| l.contains_key("net1")), Some(true));
    assert!(!tcp(&m, "10.0.0.1", "10.0.0.3", 80).allowed());
    // A profile never created allows everything; one without an allowing rule denies.
    let mut lone = workload("lone", "10.0.0.9", &[]);
    lone.profiles = vec!["none-yet".into()];
    let m = Model::new(vec![lone.clone()], vec![], &[], &[]).expect("model");
    let v = tcp(&m, "192.0.2.1", "10.0.0.9", 80);
    assert!(v.allowed());
    assert!(v.to_string().contains("until it is created it allows everything"), "{v}");
    let strict: ProfileSpec =
        serde_json::from_value(json!({"egress": [{"action": "Allow"}]})).expect("profile");
    let m = Model::new(vec![lone], vec![], &[], &[("none-yet".into(), strict)]).expect("model");
    let v = tcp(&m, "192.0.2.1", "10.0.0.9", 80);
    assert_eq!(
        v.ingress.map(|d| d.reason),
        Some(Reason::ProfilesDidNotAllow(vec!["none-yet".into()]))
    );
}

#[test]
fn a_bad_selector_names_its_owner() {
    let p = policy("broken", json!({"selector": "app = 'x'"}));
    let e = Model::new(vec![], vec![], &[p], &[]).expect_err("bad selector");
    assert!(e.to_string().starts_with("GlobalNetworkPolicy broken"), "{e}");
}
