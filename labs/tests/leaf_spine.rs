//! Lab test of `containerlab/leaf-spine.clab.yml`: four Tartan hosts, two racks, each rack's
//! hosts peering eBGP with TCP-MD5 with their FRR leaf (an AS per rack, selected by a
//! BGPPeer's nodeSelector), two FRR spines. Every kernel has the routes it should; the leaves
//! have both spines as ECMP next hops; traffic between racks takes five routed hops (host,
//! leaf, spine, leaf, host) and survives losing a spine link.

mod fabric;

use std::time::Duration;

use fabric::*;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/leaf-spine.clab.yml");
const HOSTS: [&str; 4] = ["host1", "host2", "host3", "host4"];

#[test]
fn racks_reach_each_other_through_leaves_and_both_spines() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);
    lab.wait_for("each host's session to its leaf", CONVERGE, || {
        sessions_established(&lab, &HOSTS, 1)
    });
    wait_frr_sessions(&lab, &[("leaf-a", 4), ("leaf-b", 4), ("spine1", 2), ("spine2", 2)]);
    let status = lab.sh_ok("host1", "tartanctl node status host1");
    assert!(status.contains("10.1.1.1") && status.contains("node specific"), "{status}");

    let wls = wait_workloads(&lab, 4);
    let blocks = blocks(&lab).expect("blocks");
    let rack_b: Vec<String> = ["host3", "host4"]
        .iter()
        .flat_map(|h| blocks.get(*h).cloned().unwrap_or_default())
        .collect();
    let rack_a: Vec<String> = ["host1", "host2"]
        .iter()
        .flat_map(|h| blocks.get(*h).cloned().unwrap_or_default())
        .collect();
    assert_eq!((rack_a.len(), rack_b.len()), (2, 2), "{blocks:?}");

    for block in &rack_b {
        // host1 -> its leaf.
        lab.wait_for(&format!("host1 routes {block} to leaf-a"), CONVERGE, || {
            let r = kernel_route(&lab, "host1", block)?;
            if r["gateway"] == "10.1.1.1" { Ok(()) } else { Err(r.to_string()) }
        });
        // leaf-a -> both spines.
        lab.wait_for(&format!("leaf-a has {block} over both spines"), CONVERGE, || {
            let r = kernel_route(&lab, "leaf-a", block)?;
            let hops: Vec<&str> = r["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h["gateway"].as_str())
                .collect();
            if hops.contains(&"10.0.11.0") && hops.contains(&"10.0.21.0") {
                Ok(())
            } else {
                Err(r.to_string())
            }
        });
    }
    for block in &rack_a {
        for spine in ["spine1", "spine2"] {
            lab.wait_for(&format!("{spine} routes {block} to leaf-a"), CONVERGE, || {
                let r = kernel_route(&lab, spine, block)?;
                let gw = r["gateway"].as_str().unwrap_or_default();
                if gw == "10.0.11.1" || gw == "10.0.21.1" { Ok(()) } else { Err(r.to_string()) }
            });
        }
    }

    ping_matrix(&lab, &wls);
    // Five routers between racks (each needs a TTL above 1 to forward): a TTL of 6 arrives,
    // 5 does not.
    let (c1, c3) = (&wls["c1"], &wls["c3"]);
    let c3_addr = c3.v4.clone().unwrap_or_default();
    let ttl = |t: &str| {
        lab.exec(
            "host1",
            &["tartan", "sandbox", "exec", "c1", "--", "ping", "-c1", "-W1", "-t", t, &c3_addr],
        )
    };
    assert!(ttl("6").success(), "host, leaf, spine, leaf, host");
    assert!(!ttl("5").success(), "no shorter path");

    // TCP between racks.
    tcp_transfer(&lab, c1, c3, &c3_addr, 5001);

    // Hitless restart against real routers: host1's agent killed with SIGKILL and started
    // again during a 100 pps ping from c1 to c3. FRR keeps host1's block (graceful restart
    // helper), host1's kernel keeps everything, and no router withdraws the block.
    let host1_block = blocks["host1"][0].clone();
    for router in ["leaf-a", "spine1", "spine2", "leaf-b", "host3"] {
        start_monitor(&lab, router, "route", "routes");
    }
    let summary = ping_through_agent_restart(
        &lab,
        "host1",
        "c1",
        &c3_addr,
        "tartan node --as 65201 --label rack=a",
        1,
    );
    assert_no_loss(&summary, 150);
    for router in ["leaf-a", "spine1", "spine2", "leaf-b", "host3"] {
        let log = stop_monitor(&lab, router, "routes");
        let withdrawn: Vec<&str> =
            log.lines().filter(|l| l.starts_with("Deleted") && l.contains(&host1_block)).collect();
        assert!(withdrawn.is_empty(), "{router} withdrew {host1_block}: {withdrawn:?}");
    }

    // Losing a spine link: leaf-a falls back to the other spine.
    lab.sh_ok("leaf-a", "ip link set eth1 down");
    lab.wait_for("c1 still reaches c3 over spine2", Duration::from_secs(20), || {
        ping(&lab, c1, &c3_addr)
    });

    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}
