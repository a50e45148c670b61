//! Lab test of `containerlab/routers.clab.yml`: FRR, BIRD and GoBGP in a ring. Every session
//! comes up (read from each daemon's own output), the routers that program the kernel hold the
//! others' prefixes, a ping between two loopbacks works directly and — with the direct link
//! down — across the third router, and destroy leaves nothing behind.

use std::time::Duration;

use serde_json::Value;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/routers.clab.yml");
const CONVERGE: Duration = Duration::from_secs(40);

fn json(lab: &TestLab, node: &str, cmd: &str) -> Result<Value, String> {
    let out = lab.sh(node, cmd);
    if !out.success() {
        return Err(format!("`{cmd}`: {} {}", out.summary(), out.stderr));
    }
    serde_json::from_str(&out.stdout)
        .map_err(|e| format!("`{cmd}` printed no JSON ({e}): {}", out.stdout))
}

/// FRR: `show bgp summary json` → every peer Established.
fn frr_established(lab: &TestLab) -> Result<(), String> {
    let v = json(lab, "frr", "vtysh -c 'show bgp summary json'")?;
    let peers = v["ipv4Unicast"]["peers"].as_object().ok_or(format!("no peers: {v}"))?;
    let states: Vec<(String, String)> = peers
        .iter()
        .map(|(ip, p)| (ip.clone(), p["state"].as_str().unwrap_or("?").to_string()))
        .collect();
    if peers.len() == 2 && states.iter().all(|(_, s)| s == "Established") {
        Ok(())
    } else {
        Err(format!("{states:?}"))
    }
}

/// BIRD has no JSON: `birdc show protocols` rows for both BGP protocols say Established.
fn bird_established(lab: &TestLab) -> Result<(), String> {
    let out = lab.sh("bird", "birdc show protocols").stdout;
    let ok = ["frr", "gobgp"]
        .iter()
        .all(|p| out.lines().any(|l| l.starts_with(p) && l.contains("Established")));
    if ok { Ok(()) } else { Err(out) }
}

/// GoBGP: `gobgp neighbor -j` → `state.session_state` 6 (established) for both.
fn gobgp_established(lab: &TestLab) -> Result<(), String> {
    let v = json(lab, "gobgp", "gobgp neighbor -j")?;
    let states: Vec<i64> = v
        .as_array()
        .map(|a| a.iter().filter_map(|n| n["state"]["session_state"].as_i64()).collect())
        .unwrap_or_default();
    if states == [6, 6] { Ok(()) } else { Err(format!("session states {states:?}")) }
}

/// The destinations of the node's kernel routes installed by `proto`.
fn kernel_routes(lab: &TestLab, node: &str, proto: &str) -> Result<Vec<String>, String> {
    let v = json(lab, node, &format!("ip -j route show proto {proto}"))?;
    Ok(v.as_array()
        .map(|a| a.iter().filter_map(|r| r["dst"].as_str().map(String::from)).collect())
        .unwrap_or_default())
}

fn has_routes(lab: &TestLab, node: &str, proto: &str, want: &[&str]) -> Result<(), String> {
    let got = kernel_routes(lab, node, proto)?;
    if want.iter().all(|w| got.iter().any(|g| g == w)) {
        Ok(())
    } else {
        Err(format!("{node} has {got:?}, wants {want:?}"))
    }
}

/// The gateway the node's kernel uses towards `dst`.
fn gateway(lab: &TestLab, node: &str, dst: &str) -> Result<String, String> {
    let v = json(lab, node, &format!("ip -j route get {dst}"))?;
    v[0]["gateway"].as_str().map(String::from).ok_or(format!("no gateway: {v}"))
}

fn rx_packets(lab: &TestLab, node: &str, ifname: &str) -> u64 {
    lab.sh_ok(node, &format!("cat /sys/class/net/{ifname}/statistics/rx_packets"))
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn router_ring_converges_programs_kernels_and_reroutes_across_the_third() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);

    lab.wait_for("FRR's sessions", CONVERGE, || frr_established(&lab));
    lab.wait_for("BIRD's sessions", CONVERGE, || bird_established(&lab));
    lab.wait_for("GoBGP's sessions", CONVERGE, || gobgp_established(&lab));

    lab.wait_for("FRR's kernel routes", CONVERGE, || {
        has_routes(&lab, "frr", "bgp", &["10.255.0.2", "10.255.0.3"])
    });
    lab.wait_for("BIRD's kernel routes", CONVERGE, || {
        has_routes(&lab, "bird", "bird", &["10.255.0.1", "10.255.0.3"])
    });
    let rib = json(&lab, "gobgp", "gobgp global rib -j").expect("gobgp rib");
    for prefix in ["10.255.0.1/32", "10.255.0.2/32", "10.255.0.3/32"] {
        assert!(rib.get(prefix).is_some(), "gobgp's RIB lacks {prefix}: {rib}");
    }

    // Directly: frr's loopback to bird's over the frr–bird link.
    assert_eq!(gateway(&lab, "frr", "10.255.0.2").as_deref(), Ok("10.0.12.2"));
    lab.sh_ok("frr", "ping -c 3 -W 1 -I 10.255.0.1 10.255.0.2");

    // With the frr–bird link down, both routers reroute through gobgp, and traffic crosses it.
    lab.sh_ok("frr", "ip link set eth1 down");
    lab.wait_for("frr to route via gobgp", CONVERGE, || {
        match gateway(&lab, "frr", "10.255.0.2")? {
            gw if gw == "10.0.13.3" => Ok(()),
            gw => Err(format!("still via {gw}")),
        }
    });
    lab.wait_for("bird to route via gobgp", CONVERGE, || {
        match gateway(&lab, "bird", "10.255.0.1")? {
            gw if gw == "10.0.23.3" => Ok(()),
            gw => Err(format!("still via {gw}")),
        }
    });
    let before = rx_packets(&lab, "gobgp", "eth2");
    lab.sh_ok("frr", "ping -c 5 -W 1 -I 10.255.0.1 10.255.0.2");
    let crossed = rx_packets(&lab, "gobgp", "eth2") - before;
    assert!(crossed >= 5, "only {crossed} packets entered gobgp from frr");

    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}
