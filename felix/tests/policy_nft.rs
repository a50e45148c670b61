//! The policy renderer against a real kernel: a router namespace between two workload
//! namespaces, the rendered `inet tartan_policy` table loaded into the router with `nft -f`,
//! and real pings that policy lets through or not: no policy, an ingress policy by selector, a
//! label change, an egress Deny, a Pass to the profile, and a network set.
//! Root only: without root they fail and say so (TARTAN_SKIP_LAB_TESTS=1 skips them).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::json;
use tartan_felix::netns::{TempNetns, root_tests_enabled};
use tartan_felix::policy::{LocalEndpoint, render};
use tartan_ipam::policy::{Endpoint, Model, NetworkSet};
use tartan_ipam::resources::policy::{GlobalNetworkPolicySpec, ProfileSpec};

fn run(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.unwrap_or("").as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("wait")
}

fn ok(args: &[&str]) {
    let out = run(args, None);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Lab {
    router: TempNetns,
    a: TempNetns,
    b: TempNetns,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            router: TempNetns::new("pr").expect("netns"),
            a: TempNetns::new("pa").expect("netns"),
            b: TempNetns::new("pb").expect("netns"),
        };
        let r = lab.router.name.as_str();
        for (ns, host_if, net) in [(&lab.a.name, "tva", "10.9.0"), (&lab.b.name, "tvb", "10.9.1")] {
            ok(&[
                "ip", "-n", r, "link", "add", host_if, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ]);
            ok(&["ip", "-n", r, "addr", "add", &format!("{net}.1/24"), "dev", host_if]);
            ok(&["ip", "-n", r, "link", "set", host_if, "up"]);
            ok(&["ip", "-n", ns, "addr", "add", &format!("{net}.2/24"), "dev", "eth0"]);
            ok(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
            ok(&["ip", "-n", ns, "route", "add", "default", "via", &format!("{net}.1")]);
        }
        ok(&["ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        lab
    }

    fn load(&self, script: &str) {
        let out = run(&["ip", "netns", "exec", &self.router.name, "nft", "-f", "-"], Some(script));
        assert!(out.status.success(), "nft: {}\n{script}", String::from_utf8_lossy(&out.stderr));
    }

    fn pings(&self) -> bool {
        run(&["ip", "netns", "exec", &self.a.name, "ping", "-c1", "-W1", "10.9.1.2"], None)
            .status
            .success()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn model(a_app: &str, policies: &[serde_json::Value], profile: Option<serde_json::Value>) -> Model {
    let ep = |name: &str, ip: &str, app: &str| Endpoint {
        name: name.into(),
        labels: labels(&[("app", app)]),
        addresses: vec![ip.parse().expect("ip")],
        profiles: vec!["net".into()],
    };
    let policies: Vec<(String, GlobalNetworkPolicySpec)> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("p{i}"), serde_json::from_value(p.clone()).expect("policy")))
        .collect();
    let profiles: Vec<(String, ProfileSpec)> = profile
        .into_iter()
        .map(|p| ("net".to_string(), serde_json::from_value(p).expect("profile")))
        .collect();
    let set = NetworkSet {
        name: "router".into(),
        labels: labels(&[("role", "router")]),
        nets: vec!["10.9.0.1/32".parse().expect("net"), "10.9.1.1/32".parse().expect("net")],
    };
    Model::new(
        vec![ep("a", "10.9.0.2", a_app), ep("b", "10.9.1.2", "b")],
        vec![set],
        &policies,
        &profiles,
    )
    .expect("model")
}

fn local() -> Vec<LocalEndpoint> {
    vec![
        LocalEndpoint { name: "a".into(), host_if: "tva".into() },
        LocalEndpoint { name: "b".into(), host_if: "tvb".into() },
    ]
}

#[test]
fn rendered_policy_lets_through_exactly_what_the_model_allows() {
    if !root_tests_enabled() {
        return;
    }
    let lab = Lab::new();
    let ingress_b = json!({"selector": "app == 'b'", "ingress": [
        {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}, "source": {"selector": "app == 'x'"}}]});
    let cases: Vec<(&str, Model, bool)> = vec![
        ("no policy: the profile (never created) allows", model("a", &[], None), true),
        (
            "b's ingress allows only app x",
            model("a", std::slice::from_ref(&ingress_b), None),
            false,
        ),
        ("a relabelled app x", model("x", std::slice::from_ref(&ingress_b), None), true),
        (
            "a's egress denies ICMP first",
            model(
                "x",
                &[
                    ingress_b,
                    json!({"order": 1, "selector": "app == 'x'", "types": ["Egress"], "egress": [{"action": "Deny", "protocol": "ICMP"}]}),
                ],
                None,
            ),
            false,
        ),
        (
            "Pass to a profile that allows only the network set's addresses in",
            model(
                "a",
                &[
                    json!({"selector": "all()", "ingress": [{"action": "Pass"}], "egress": [{"action": "Pass"}]}),
                ],
                Some(
                    json!({"ingress": [{"action": "Allow", "source": {"selector": "role == 'router'"}}], "egress": [{"action": "Allow"}]}),
                ),
            ),
            false,
        ),
        (
            "the profile allows a's port range and ICMP echo from its nets",
            model(
                "a",
                &[],
                Some(json!({"ingress": [
                    {"action": "Log", "protocol": "TCP", "destination": {"ports": [80, "8000:8100"]}},
                    {"action": "Allow", "protocol": "ICMP", "notICMP": {"type": 8, "code": 1}, "source": {"nets": ["10.9.0.0/24"]}}],
                    "egress": [{"action": "Allow"}]})),
            ),
            true,
        ),
    ];
    for (what, m, pings) in cases {
        let script = render(&m, &local());
        lab.load(&script);
        let verdict = m.evaluate(&tartan_ipam::policy::Flow::ping(
            "10.9.0.2".parse().expect("ip"),
            "10.9.1.2".parse().expect("ip"),
        ));
        assert_eq!(
            verdict.allowed(),
            pings,
            "the model disagrees with the case: {what}\n{verdict}"
        );
        assert_eq!(lab.pings(), pings, "{what}\n{script}");
    }
    // A policy name of 200 characters: chain names stay short and the comment is cut to what
    // nft keeps.
    let long: GlobalNetworkPolicySpec =
        serde_json::from_value(json!({"selector": "all()", "ingress": [{"action": "Allow"}]}))
            .expect("policy");
    let m = Model::new(
        model("a", &[], None).endpoints().to_vec(),
        vec![],
        &[("n".repeat(200), long)],
        &[],
    )
    .expect("model");
    lab.load(&render(&m, &local()));
    assert!(lab.pings());

    // Loaded twice in a row, the table is replaced, not added to.
    let script = render(&model("a", &[], None), &local());
    lab.load(&script);
    lab.load(&script);
    let listed = run(&["ip", "netns", "exec", &lab.router.name, "nft", "list", "tables"], None);
    let tables = String::from_utf8_lossy(&listed.stdout).matches("tartan_policy").count();
    assert_eq!(tables, 1);
}
