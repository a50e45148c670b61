//! natOutgoing, on `tests/topologies/tartan-nat.clab.yml`: a container of a pool with
//! `natOutgoing: true` reaches a host outside every pool behind its host's address; between
//! containers the source address is never changed; turning natOutgoing off removes the rule
//! (and the outside host, with no route to the pool, can no longer answer).

mod fabric;

use std::time::Duration;

use fabric::*;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/topologies/tartan-nat.clab.yml");

/// What `to` (a node, or a container on a node) sees as the source of a TCP connection from
/// container `c1`.
fn seen_source(lab: &TestLab, addr: &str) -> Result<String, String> {
    let out = lab.sh(
        "host1",
        &format!(
            "tartan sandbox exec c1 -- socat -T2 - TCP4:{addr}:7000,connect-timeout=2 </dev/null"
        ),
    );
    let seen = out.stdout.trim().to_string();
    if out.success() && !seen.is_empty() {
        Ok(seen)
    } else {
        Err(format!("{} {}", out.summary(), out.stderr))
    }
}

const ECHO_PEER: &str =
    "socat TCP4-LISTEN:7000,fork,reuseaddr SYSTEM:'echo $SOCAT_PEERADDR' >/dev/null 2>&1 &";

#[test]
fn natoutgoing_masquerades_only_traffic_leaving_the_pools() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);
    lab.wait_for("sessions", CONVERGE, || sessions_established(&lab, &["host1", "host2"], 1));
    let wls = wait_workloads(&lab, 2);
    lab.wait_for("routes", CONVERGE, || fabric_routes(&lab, &["host1", "host2"]));
    let hosts = node_addresses(&lab).expect("nodes");
    let ext = lab
        .sh_ok("ext", "ip -4 -o addr show dev eth0 | awk '{split($4,a,\"/\"); print a[1]}'")
        .trim()
        .to_string();
    lab.sh_ok("ext", ECHO_PEER);
    lab.sh_ok("host2", &format!("tartan sandbox exec c2 -- {ECHO_PEER}"));

    lab.wait_for("c1 pings c2", Duration::from_secs(10), || {
        ping(&lab, &wls["c1"], wls["c2"].v4.as_deref().unwrap_or_default())
    });

    // Out of the pools: masqueraded behind host1.
    let seen = lab.wait_for("c1 reaches ext", Duration::from_secs(15), || seen_source(&lab, &ext));
    assert_eq!(seen, hosts["host1"].0, "ext sees host1's address");
    let table = lab.sh_ok("host1", "nft list table inet tartan");
    assert!(table.contains("masquerade") && table.contains("10.65.0.0/16"), "{table}");
    // Between containers: never.
    let c1 = wls["c1"].v4.clone().unwrap_or_default();
    let c2 = wls["c2"].v4.clone().unwrap_or_default();
    let seen = lab.wait_for("c1 reaches c2", Duration::from_secs(15), || seen_source(&lab, &c2));
    assert_eq!(seen, c1, "c2 sees c1's own address");

    // natOutgoing off: the rule goes, and ext (no route back to the pool) cannot answer.
    lab.sh_ok(
        "apiserver",
        "tartanctl patch ippool nat-ipv4 -p '{\"spec\":{\"natOutgoing\":false}}'",
    );
    lab.wait_for("the nft table gone", CONVERGE, || {
        if lab.sh("host1", "nft list table inet tartan").success() {
            Err("still there".into())
        } else {
            Ok(())
        }
    });
    assert!(
        seen_source(&lab, &ext).is_err(),
        "without masquerade ext cannot answer a pool address"
    );

    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}
