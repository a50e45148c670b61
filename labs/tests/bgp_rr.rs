//! Lab test of `containerlab/bgp-rr.clab.yml`: Tartan as a route reflector for an FRR and a
//! BIRD client, and Tartan as a client of an FRR reflector. Reflected routes carry
//! ORIGINATOR_ID and CLUSTER_LIST (RFC 4456 §8) and keep the originator's next hop.

use std::time::Duration;

use serde_json::Value;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/bgp-rr.clab.yml");
const CONVERGE: Duration = Duration::from_secs(60);

fn json(lab: &TestLab, node: &str, cmd: &str) -> Result<Value, String> {
    let out = lab.sh(node, cmd);
    if !out.success() {
        return Err(format!("`{cmd}` in {node}: {} {}", out.summary(), out.stderr));
    }
    serde_json::from_str(&out.stdout)
        .map_err(|e| format!("`{cmd}` printed no JSON ({e}): {}", out.stdout))
}

fn bird_route(lab: &TestLab, node: &str, prefix: &str) -> Result<String, String> {
    let out = lab.sh(node, &format!("birdc show route {prefix} all")).stdout;
    if out.contains("BGP.as_path") { Ok(out) } else { Err(out) }
}

fn tartan_path(lab: &TestLab, node: &str, prefix: &str) -> Result<Value, String> {
    let v = json(lab, node, &format!("tartan bgp rib --json {prefix}"))?;
    v.as_array()
        .and_then(|a| a.iter().find(|r| r["prefix"] == prefix))
        .map(|r| r["paths"][0].clone())
        .ok_or(format!("{prefix} not at {node}: {v}"))
}

#[test]
fn tartan_reflects_between_frr_and_bird_clients_and_is_a_client_of_frr() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);

    // Tartan reflects c1's (FRR) route to c2 (BIRD)...
    let at_c2 =
        lab.wait_for("c1's route at c2", CONVERGE, || bird_route(&lab, "c2", "10.11.0.0/24"));
    assert!(at_c2.contains("BGP.originator_id: 10.255.0.11\n"), "{at_c2}");
    assert!(at_c2.contains("BGP.cluster_list: 10.255.0.100\n"), "{at_c2}");
    assert!(at_c2.contains("BGP.next_hop: 10.1.11.11\n"), "the originator's next hop: {at_c2}");
    assert!(at_c2.contains("BGP.as_path: \n"), "{at_c2}");
    // ...and c2's to c1.
    let at_c1 = lab.wait_for("c2's route at c1", CONVERGE, || {
        let v = json(&lab, "c1", "vtysh -c 'show bgp ipv4 unicast 10.12.0.0/24 json'")?;
        v["paths"].get(0).cloned().ok_or(format!("{v}"))
    });
    assert_eq!(at_c1["originatorId"], "10.255.0.12", "{at_c1}");
    assert_eq!(at_c1["clusterList"]["list"], serde_json::json!(["10.255.0.100"]), "{at_c1}");
    assert_eq!(at_c1["nexthops"][0]["ip"], "10.1.12.12");
    // The reflector's own route reaches both, without reflection attributes.
    let own = lab.wait_for("the reflector's route at c2", CONVERGE, || {
        bird_route(&lab, "c2", "10.1.0.0/24")
    });
    assert!(!own.contains("originator_id") && own.contains("BGP.community: (65000,1)"), "{own}");

    // Tartan as a client: its route reaches c3 through FRR, c3's reaches Tartan.
    let at_c3 =
        lab.wait_for("t2's route at c3", CONVERGE, || bird_route(&lab, "c3", "10.20.0.0/24"));
    assert!(at_c3.contains("BGP.originator_id: 10.255.0.20\n"), "{at_c3}");
    assert!(at_c3.contains("BGP.cluster_list: 10.255.0.200\n"), "{at_c3}");
    assert!(
        at_c3.contains("BGP.next_hop: 10.2.20.20\n") && at_c3.contains("(65000,20)"),
        "{at_c3}"
    );
    let at_t2 =
        lab.wait_for("c3's route at t2", CONVERGE, || tartan_path(&lab, "t2", "10.23.0.0/24"));
    assert_eq!(at_t2["originator_id"], "10.255.0.23", "{at_t2}");
    assert_eq!(at_t2["cluster_list"], serde_json::json!(["10.255.0.200"]), "{at_t2}");
    assert_eq!(at_t2["next_hop"], "10.2.23.23");
    assert_eq!(at_t2["local_pref"], 100);
    lab.destroy();
}
