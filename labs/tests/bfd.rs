//! Lab test of `containerlab/bfd.clab.yml`: two Tartan hosts dual-homed to an FRR 8.4 leaf
//! (bfdd) and a BIRD 2.0.12 leaf, BFD at 100ms x 3 on every session.
//!
//! - BFD comes up with FRR and with BIRD; FRR's `show bfd peers json` shows our timers; a
//!   peer that asks for slower packets slows ours, and faster again.
//! - FRR's AdminDown (`shutdown` in its BFD profile) takes neither BGP nor a route down.
//! - A leaf that goes silent (nft drops everything inside it, links stay up) during a 1000
//!   pps ping between containers on the two hosts: both hosts drop it within the detection
//!   time, far inside the 9 s hold time; traffic comes back to both leaves when it recovers.
//! - A host that goes silent is withdrawn by the leaves, so the other host loses its routes.
//! - An agent SIGKILLed and restarted with BFD on loses no packet through the FRR leaf (the
//!   TCP close reaches it before BFD expires, and it keeps our routes as a graceful-restart
//!   helper).
//!
//! Times are printed; the assertions hold them against the hold timer (what BFD replaces),
//! not against the millisecond targets, which `tartanlab bench bfd` measures.

mod fabric;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fabric::*;
use serde_json::Value;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/bfd.clab.yml");
const HOSTS: [&str; 2] = ["host1", "host2"];
const LEAVES: [&str; 2] = ["leaf-a", "leaf-b"];

/// Drops everything in and out of `node`, links up: a silent failure.
const SILENCE: &str = "nft -f - <<'EOF'
table inet silent {
  chain pre { type filter hook prerouting priority -400; policy drop; }
  chain out { type filter hook output priority -400; policy drop; }
}
EOF";
const UNSILENCE: &str = "nft delete table inet silent";

/// The BFD sessions a host reports in its NodeStatus, by peer address.
fn host_bfd(lab: &TestLab, host: &str) -> Result<Vec<(String, Value)>, String> {
    let v = json(lab, ctl_node(lab), &format!("tartanctl get nodestatus {host} -o json"))?;
    let peers = v["spec"]["peers"].as_array().cloned().unwrap_or_default();
    Ok(peers
        .iter()
        .map(|p| (p["peerIP"].as_str().unwrap_or_default().to_string(), p["bfd"].clone()))
        .collect())
}

/// Every BFD session of every host is up, sending at `tx_ms`.
fn hosts_bfd_up(lab: &TestLab, tx_ms: u64) -> Result<(), String> {
    for host in HOSTS {
        let sessions = host_bfd(lab, host)?;
        let good = sessions
            .iter()
            .filter(|(_, b)| b["state"] == "up" && b["transmitIntervalMs"] == tx_ms)
            .count();
        if good != 2 {
            return Err(format!("{host}: {sessions:?}"));
        }
    }
    Ok(())
}

/// Times host1's BFD session with `peer` left Up, as its status reports (within a status
/// interval).
fn flaps(lab: &TestLab, peer: &str) -> u64 {
    lab.sh_ok("host1", "sleep 1");
    let sessions = host_bfd(lab, "host1").unwrap_or_default();
    sessions.iter().find(|(p, _)| p == peer).and_then(|(_, b)| b["flaps"].as_u64()).unwrap_or(0)
}

/// FRR's BFD peers, as `show bfd peers json` gives them.
fn frr_bfd(lab: &TestLab) -> Result<Vec<Value>, String> {
    let v = json(lab, "leaf-a", "vtysh -c 'show bfd peers json'")?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// BIRD's BFD sessions that are Up.
fn bird_bfd_up(lab: &TestLab) -> Result<usize, String> {
    let out = lab.sh("leaf-b", "birdc -r show bfd sessions");
    if !out.success() {
        return Err(format!("birdc: {} {}", out.summary(), out.stderr));
    }
    Ok(out.stdout.lines().filter(|l| l.split_whitespace().nth(2) == Some("Up")).count())
}

/// The gateways of `node`'s kernel route to `dst`.
fn gateways(lab: &TestLab, node: &str, dst: &str) -> Result<BTreeSet<String>, String> {
    let r = kernel_route(lab, node, dst)?;
    let mut hops: BTreeSet<String> = r["gateway"].as_str().map(String::from).into_iter().collect();
    for h in r["nexthops"].as_array().into_iter().flatten() {
        hops.extend(h["gateway"].as_str().map(String::from));
    }
    Ok(hops)
}

/// Packets `leaf` received on its host-facing links.
fn leaf_rx(lab: &TestLab, leaf: &str) -> u64 {
    tartan_labs::bench::bfd::host_links_rx(
        &json(lab, leaf, "ip -j -s link show").unwrap_or_default(),
    )
}

#[test]
fn bfd_takes_a_silent_leaf_or_host_out_of_the_fabric_within_its_detection_time() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);
    lab.wait_for("each host's two sessions", CONVERGE, || sessions_established(&lab, &HOSTS, 2));
    wait_frr_sessions(&lab, &[("leaf-a", 2)]);

    // BFD up everywhere, at the configured 100 ms.
    lab.wait_for("BFD up on both hosts at 100 ms", CONVERGE, || hosts_bfd_up(&lab, 100));
    lab.wait_for("FRR's BFD peers up with our timers", CONVERGE, || {
        let peers = frr_bfd(&lab)?;
        let ok = peers.iter().filter(|p| {
            p["status"] == "up"
                && p["remote-receive-interval"] == 100
                && p["remote-transmit-interval"] == 100
                && p["remote-detect-multiplier"] == 3
        });
        if ok.count() == 2 { Ok(()) } else { Err(format!("{peers:?}")) }
    });
    lab.wait_for("BIRD's BFD sessions up", CONVERGE, || match bird_bfd_up(&lab)? {
        2 => Ok(()),
        n => Err(format!("{n} up")),
    });

    // A peer asking for slower packets slows ours; back to 100 ms after.
    let frr_timers = |ms: u32| {
        lab.sh_ok(
            "leaf-a",
            &format!(
                "vtysh -c 'configure terminal' -c 'bfd' -c 'profile fast' -c 'receive-interval {ms}' -c 'transmit-interval {ms}'"
            ),
        );
    };
    frr_timers(500);
    lab.wait_for("host1 sends at FRR's 500 ms", CONVERGE, || {
        let s = host_bfd(&lab, "host1")?;
        let slowed = s.iter().find(|(p, _)| p == "10.1.1.1").map(|(_, b)| b.clone());
        match slowed {
            Some(b) if b["transmitIntervalMs"] == 500 && b["detectionTimeMs"] == 1500 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    frr_timers(100);
    lab.wait_for("BFD at 100 ms again", CONVERGE, || hosts_bfd_up(&lab, 100));

    let wls = wait_workloads(&lab, 2);
    let blocks = blocks(&lab).expect("blocks");
    let (c1, c2) = (&wls["c1"], &wls["c2"]);
    let c2_addr = c2.v4.clone().expect("c2 has an IPv4 address");
    let h2_block = blocks["host2"][0].clone();
    let both: BTreeSet<String> = ["10.1.1.1", "10.2.1.1"].map(String::from).into();
    lab.wait_for("host1 has host2's block over both leaves", CONVERGE, || {
        let hops = gateways(&lab, "host1", &h2_block)?;
        if hops == both { Ok(()) } else { Err(format!("{hops:?}")) }
    });
    lab.wait_for("c1 pings c2", Duration::from_secs(10), || ping(&lab, c1, &c2_addr));

    // FRR puts its BFD sessions in AdminDown: a peer's AdminDown is not a path failure (RFC
    // 5882 §3.2), so BGP stays up and the routes through leaf-a stay; back up after.
    let frr_shutdown = |down: bool| {
        let no = if down { "" } else { "no " };
        lab.sh_ok(
            "leaf-a",
            &format!("vtysh -c 'configure terminal' -c 'bfd' -c 'profile fast' -c '{no}shutdown'"),
        );
    };
    frr_shutdown(true);
    lab.wait_for("both hosts see leaf-a's AdminDown", CONVERGE, || {
        for host in HOSTS {
            let s = host_bfd(&lab, host)?;
            let leaf_a = s.iter().find(|(p, _)| p.starts_with("10.1.")).map(|(_, b)| b.clone());
            match leaf_a {
                Some(b)
                    if b["state"] == "down"
                        && b["diagnostic"] == "neighbor signaled session down" => {}
                other => return Err(format!("{host}: {other:?}")),
            }
        }
        Ok(())
    });
    for _ in 0..4 {
        // Well past the 300 ms detection time, again and again: nothing was torn down.
        std::thread::sleep(Duration::from_millis(500));
        sessions_established(&lab, &HOSTS, 2).expect("BGP stays up through AdminDown");
        let hops = gateways(&lab, "host1", &h2_block).expect("route");
        assert_eq!(hops, both, "routes through leaf-a stay through its AdminDown");
    }
    frr_shutdown(false);
    lab.wait_for("BFD up again after AdminDown", CONVERGE, || hosts_bfd_up(&lab, 100));

    // The leaf that carries c1 -> c2: a burst, then the leaves' counters.
    let c1_addr = c1.v4.clone().expect("c1 has an IPv4 address");
    let before = LEAVES.map(|l| leaf_rx(&lab, l));
    lab.sh_ok(
        "host2",
        "tartan sandbox exec c2 -- tartanlab probe recv --port 9001 --idle 1 >/dev/null 2>&1 &",
    );
    std::thread::sleep(Duration::from_millis(300));
    lab.sh_ok(
        "host1",
        &format!("tartan sandbox exec c1 -- tartanlab probe send --to {c2_addr}:9001 --pps 1000 --count 500"),
    );
    let after = LEAVES.map(|l| leaf_rx(&lab, l));
    let carried = [after[0] - before[0], after[1] - before[1]];
    let busy = if carried[0] >= carried[1] { 0 } else { 1 };
    assert!(carried[busy] >= 450, "no leaf carried the flow: {carried:?}");

    for (i, leaf) in [(busy, LEAVES[busy]), (1 - busy, LEAVES[1 - busy])] {
        // 1000 pps each way for 5 s; the leaf goes silent 2 s in.
        let flows =
            [("host2", "c2", "host1", "c1", &c2_addr), ("host1", "c1", "host2", "c2", &c1_addr)];
        for (rx_host, rx_c, _, _, _) in flows {
            lab.sh_ok(
                rx_host,
                &format!("tartan sandbox exec {rx_c} -- tartanlab probe recv --port 9000 --idle 2 >/tmp/flow.json 2>&1 &"),
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        for (_, _, tx_host, tx_c, to) in flows {
            lab.sh_ok(
                tx_host,
                &format!("tartan sandbox exec {tx_c} -- tartanlab probe send --to {to}:9000 --pps 1000 --count 5000 >/dev/null 2>&1 &"),
            );
        }
        let (failed, survivor) =
            if LEAVES[i] == "leaf-a" { ("10.1.1.1", "10.2.1.1") } else { ("10.2.1.1", "10.1.1.1") };
        let flaps_before = flaps(&lab, failed);
        std::thread::sleep(Duration::from_secs(2));
        let silenced = Instant::now();
        lab.sh_ok(leaf, SILENCE);
        lab.wait_for(&format!("host1 drops {leaf}"), Duration::from_secs(5), || {
            let hops = gateways(&lab, "host1", &h2_block)?;
            if hops.len() == 1 && hops.contains(survivor) {
                Ok(())
            } else {
                Err(format!("{hops:?}"))
            }
        });
        let dropped_after = silenced.elapsed();
        let mut gaps = Vec::new();
        for (rx_host, _, _, _, _) in flows {
            let report: Value = lab.wait_for("the flow's report", Duration::from_secs(30), || {
                let out = lab.sh(rx_host, "cat /tmp/flow.json").stdout;
                serde_json::from_str(out.trim()).map_err(|e| format!("{e}: {out}"))
            });
            let highest = report["highest"].as_u64().unwrap_or(0);
            assert!(highest >= 4900, "the flow to {rx_host} did not run through: {report}");
            gaps.push(report["longest_gap"].as_u64().unwrap_or(u64::MAX));
        }
        let outage = gaps.iter().copied().max().unwrap_or(0);
        println!(
            "silent {leaf}: host1 dropped it from the route {} ms after (as polled); longest gap \
             c1->c2 {} ms, c2->c1 {} ms at 1000 pps",
            dropped_after.as_millis(),
            gaps[0],
            gaps[1]
        );
        // The hold timer (9 s) would cost about 9000 ms; BFD at 100 ms x 3 about 300.
        assert!(outage < 2000, "{leaf} silent: an outage of {outage} ms");
        if i == busy {
            assert!(gaps[0] > 0, "{leaf} carried c1 -> c2, yet its failure cost nothing: {gaps:?}");
        }
        let flaps_after = flaps(&lab, failed);
        let log = std::fs::read_to_string(lab.state().lab_dir.join("host1/tartan.log"))
            .unwrap_or_default();
        let fast: Vec<&str> =
            log.lines().filter(|l| l.contains("nexthop group(s)") && l.contains(failed)).collect();
        println!("  host1: {}", fast.last().map_or("no fast-path line", |l| l.trim()));
        assert!(!fast.is_empty(), "host1 never took {failed} out of its nexthop groups: {log}");
        lab.sh_ok(leaf, UNSILENCE);
        lab.wait_for("both leaves again", CONVERGE, || {
            let hops = gateways(&lab, "host1", &h2_block)?;
            if hops == both { Ok(()) } else { Err(format!("{hops:?}")) }
        });
        lab.wait_for("BFD up everywhere again", CONVERGE, || hosts_bfd_up(&lab, 100));
        assert!(flaps_after > flaps_before, "host1's BFD session with {leaf} never went down");
    }

    // host2 goes silent: the leaves' BFD withdraws it, so host1 loses its block.
    let silenced = Instant::now();
    lab.sh_ok("host2", SILENCE);
    lab.wait_for("host1 loses host2's block", Duration::from_secs(5), || {
        match kernel_route(&lab, "host1", &h2_block) {
            Err(_) => Ok(()),
            Ok(r) => Err(format!("{r}")),
        }
    });
    println!(
        "silent host2: withdrawn from host1 after {} ms (as polled)",
        silenced.elapsed().as_millis()
    );
    lab.sh_ok("host2", UNSILENCE);
    lab.wait_for("host2's block back", CONVERGE, || {
        let hops = gateways(&lab, "host1", &h2_block)?;
        if hops == both { Ok(()) } else { Err(format!("{hops:?}")) }
    });
    lab.wait_for("each host's two sessions again", CONVERGE, || {
        sessions_established(&lab, &HOSTS, 2)
    });
    lab.wait_for("BFD up everywhere again", CONVERGE, || hosts_bfd_up(&lab, 100));

    // host1's agent SIGKILLed and restarted with BFD on: nothing lost at 100 pps through the
    // FRR leaf, which keeps our routes as a graceful-restart helper (the TCP close arrives
    // long before its BFD expires). Both hosts' links to the BIRD leaf are down meanwhile:
    // BIRD 2.0.12 drops a killed agent's routes as soon as TCP closes (see docs/bfd.md).
    for host in HOSTS {
        lab.sh_ok(host, "ip link set eth2 down");
    }
    // Settled first, both ways: each host through leaf-a alone, its session with leaf-b over.
    let h1_block = blocks["host1"][0].clone();
    for (host, dst, via, other) in
        [("host1", &h2_block, "10.1.1.1", "10.2.1.1"), ("host2", &h1_block, "10.1.2.1", "10.2.2.1")]
    {
        let want: BTreeSet<String> = [via.to_string()].into();
        lab.wait_for(&format!("{host} through leaf-a alone"), CONVERGE, || {
            let hops = gateways(&lab, host, dst)?;
            if hops != want {
                return Err(format!("{hops:?}"));
            }
            let v =
                json(&lab, ctl_node(&lab), &format!("tartanctl get nodestatus {host} -o json"))?;
            let peers = v["spec"]["peers"].as_array().cloned().unwrap_or_default();
            let down = peers.iter().any(|p| p["peerIP"] == other && p["state"] != "Established");
            if down { Ok(()) } else { Err(format!("{host}'s session with {other} is still up")) }
        });
    }
    lab.wait_for("c1 pings c2 through leaf-a", Duration::from_secs(10), || {
        ping(&lab, c1, &c2_addr)
    });
    // The restarted agent's session with leaf-a: Established since after `killed_at`.
    let leaf_a_up = |killed_at: u64| -> Result<(), String> {
        let v = json(&lab, ctl_node(&lab), "tartanctl get nodestatus host1 -o json")?;
        let peers = v["spec"]["peers"].as_array().cloned().unwrap_or_default();
        let up = peers.iter().any(|p| {
            p["peerIP"] == "10.1.1.1"
                && p["state"] == "Established"
                && p["since"]
                    .as_str()
                    .and_then(tartan_ipam::time::parse_rfc3339)
                    .is_some_and(|since| since >= killed_at)
        });
        if up { Ok(()) } else { Err(format!("{peers:?}")) }
    };
    lab.sh_ok(
        "host1",
        &format!(
            "tartan sandbox exec c1 -- sh -c 'echo $$ >/tmp/ping.pid; exec ping -q -i 0.01 -W 1 {c2_addr}' >/tmp/ping.log 2>&1 &"
        ),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = tartan_ipam::time::now_unix();
    lab.sh_ok("host1", "pkill -KILL -x tartan");
    std::thread::sleep(Duration::from_millis(1000));
    lab.sh_ok("host1", "tartan node --as 65201 --label bfdhost=h1 >/tmp/agent-again.log 2>&1 &");
    lab.wait_for("host1's new session with leaf-a", CONVERGE, || leaf_a_up(killed_at));
    std::thread::sleep(Duration::from_millis(1000));
    let alive = lab.sh("host1", "kill -0 \"$(cat /tmp/ping.pid)\"");
    assert!(alive.success(), "the ping ended before the restart was over");
    lab.sh_ok("host1", "kill -INT \"$(cat /tmp/ping.pid)\"");
    let summary = lab.wait_for("the ping to finish", Duration::from_secs(30), || {
        let out = lab.sh("host1", "cat /tmp/ping.log").stdout;
        if out.contains("packets transmitted") { Ok(out) } else { Err(out) }
    });
    assert_no_loss(&summary, 150);
    for host in HOSTS {
        lab.sh_ok(host, "ip link set eth2 up");
    }
    lab.wait_for("each host's two sessions after the restart", CONVERGE, || {
        sessions_established(&lab, &HOSTS, 2)
    });
    lab.wait_for("BFD up again after the restart", CONVERGE, || hosts_bfd_up(&lab, 100));

    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}
