//! Lab test of `containerlab/dual-homed.clab.yml`: three Tartan hosts, each wired to two FRR
//! leaves and peering eBGP with both (`sourceAddress: None`), two FRR spines. Each host's own
//! connection to leaf-b leaves from its address on that link; each host has the others'
//! blocks over both leaves through one nexthop group; the leaves hear only a host's own
//! blocks from it; traffic flows both ways, survives an agent's SIGKILL and restart with no
//! loss and no change to any route (the restarted host's included), and survives losing an
//! uplink.

mod fabric;

use std::collections::BTreeSet;
use std::time::Duration;

use fabric::*;
use serde_json::Value;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/dual-homed.clab.yml");
const HOSTS: [&str; 3] = ["host1", "host2", "host3"];

/// The gateways of `node`'s kernel route to `dst`, and whether it names a nexthop object.
fn gateways(lab: &TestLab, node: &str, dst: &str) -> Result<(BTreeSet<String>, bool), String> {
    let r = kernel_route(lab, node, dst)?;
    let mut hops: BTreeSet<String> = r["gateway"].as_str().map(String::from).into_iter().collect();
    for h in r["nexthops"].as_array().into_iter().flatten() {
        hops.extend(h["gateway"].as_str().map(String::from));
    }
    Ok((hops, r["nhid"].is_u64()))
}

/// The prefixes `router` has from its neighbour `peer`.
fn heard_from(lab: &TestLab, router: &str, peer: &str) -> Result<BTreeSet<String>, String> {
    let v: Value = json(
        lab,
        router,
        &format!("vtysh -c 'show bgp ipv4 unicast neighbors {peer} routes json'"),
    )?;
    Ok(v["routes"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default())
}

#[test]
fn dual_homed_hosts_use_both_leaves_and_are_never_a_path_between_them() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);
    lab.wait_for("each host's two sessions", CONVERGE, || sessions_established(&lab, &HOSTS, 2));
    wait_frr_sessions(&lab, &[("leaf-a", 5), ("leaf-b", 5), ("spine1", 2), ("spine2", 2)]);
    // leaf-b waits for host1 to connect: host1's connection comes from eth2's address.
    let sockets = lab.sh_ok("host1", "ss -tnH state established '( dport = :179 )'");
    assert!(sockets.contains("10.2.1.2:") && sockets.contains("10.2.1.1:179"), "{sockets}");

    let wls = wait_workloads(&lab, 3);
    let blocks = blocks(&lab).expect("blocks");
    let leaves = |n: usize| [format!("10.1.{n}.1"), format!("10.2.{n}.1")];
    for (n, host) in HOSTS.iter().enumerate().map(|(i, h)| (i + 1, *h)) {
        for (owner, owned) in blocks.iter().filter(|(o, _)| o.as_str() != host) {
            for block in owned {
                lab.wait_for(
                    &format!("{host} has {owner}'s {block} over both leaves"),
                    CONVERGE,
                    || {
                        let (hops, object) = gateways(&lab, host, block)?;
                        let want: BTreeSet<String> = leaves(n).into_iter().collect();
                        if hops == want && object {
                            Ok(())
                        } else {
                            Err(format!("{hops:?} {object}"))
                        }
                    },
                );
            }
        }
        let own: BTreeSet<String> =
            blocks.get(host).cloned().unwrap_or_default().into_iter().collect();
        for (leaf, addr) in [("leaf-a", format!("10.1.{n}.2")), ("leaf-b", format!("10.2.{n}.2"))] {
            lab.wait_for(&format!("{leaf} hears only {host}'s blocks from it"), CONVERGE, || {
                let heard = heard_from(&lab, leaf, &addr)?;
                if heard == own { Ok(()) } else { Err(format!("{heard:?}, own {own:?}")) }
            });
        }
    }

    ping_matrix(&lab, &wls);
    let (c1, c3) = (&wls["c1"], &wls["c3"]);
    let c3_addr = c3.v4.clone().unwrap_or_default();
    tcp_transfer(&lab, c1, c3, &c3_addr, 5001);

    // host1's agent killed and started again during a 100 pps ping: nothing is lost, and no
    // route or nexthop object changes anywhere, host1 included (the first leaf back must not
    // shrink host1's ECMP routes to itself).
    let watched = ["host1", "host3", "leaf-a", "leaf-b"];
    for node in watched {
        start_monitor(&lab, node, "route nexthop", "changes");
    }
    let summary = ping_through_agent_restart(
        &lab,
        "host1",
        "c1",
        &c3_addr,
        "tartan node --as 65201 --label dualhost=h1",
        2,
    );
    assert_no_loss(&summary, 150);
    let host1_blocks = blocks["host1"].clone();
    for node in watched {
        let log = stop_monitor(&lab, node, "changes");
        let changed: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("proto 84")
                    || l.contains("nexthop")
                    || host1_blocks.iter().any(|b| l.contains(b.as_str()))
            })
            .collect();
        assert!(changed.is_empty(), "{node} saw routes change: {changed:?}");
    }

    // One uplink lost: host1 goes through leaf-a alone.
    lab.sh_ok("host1", "ip link set eth2 down");
    lab.wait_for("c1 still reaches c3", Duration::from_secs(20), || ping(&lab, c1, &c3_addr));
    lab.sh_ok("host1", "ip link set eth2 up");
    let block = blocks["host3"][0].clone();
    lab.wait_for("both leaves again", CONVERGE, || {
        let (hops, _) = gateways(&lab, "host1", &block)?;
        if hops.len() == 2 { Ok(()) } else { Err(format!("{hops:?}")) }
    });

    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}
