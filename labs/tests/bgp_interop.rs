//! Lab tests of `containerlab/bgp-interop.clab.yml`: Tartan's speaker against FRR 8.4, BIRD 2,
//! GoBGP 3.10, a speaker without four-octet AS support and an iBGP FRR. Every check reads both
//! ends — Tartan's own `tartan bgp status/rib --json` and each peer's own CLI — and looks at the
//! AS path, the next hop and the communities, not just at the route being there.

use std::time::Duration;

use serde_json::Value;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/bgp-interop.clab.yml");
const CONVERGE: Duration = Duration::from_secs(60);

fn json(lab: &TestLab, node: &str, cmd: &str) -> Result<Value, String> {
    let out = lab.sh(node, cmd);
    if !out.success() {
        return Err(format!("`{cmd}` in {node}: {} {} {}", out.summary(), out.stdout, out.stderr));
    }
    serde_json::from_str(&out.stdout)
        .map_err(|e| format!("`{cmd}` printed no JSON ({e}): {}", out.stdout))
}

/// Tartan's neighbors that are not Established, from `tartan bgp status --json`.
fn tartan_down(lab: &TestLab) -> Result<Value, String> {
    let v = json(lab, "tartan", "tartan bgp status --json")?;
    let peers = v["peers"].as_array().ok_or(format!("no peers: {v}"))?;
    let down: Vec<String> = peers
        .iter()
        .filter(|p| p["state"] != "Established")
        .map(|p| format!("{} {} {}", p["address"], p["state"], p["last_error"]))
        .collect();
    if peers.len() == 7 && down.is_empty() {
        Ok(v)
    } else {
        Err(format!("not established: {down:?}"))
    }
}

/// The paths of `prefix` in Tartan's RIB.
fn tartan_paths(lab: &TestLab, prefix: &str) -> Result<Vec<Value>, String> {
    let v = json(lab, "tartan", &format!("tartan bgp rib --json {prefix}"))?;
    let route = v
        .as_array()
        .and_then(|a| a.iter().find(|r| r["prefix"] == prefix))
        .ok_or(format!("{prefix} not in Tartan's RIB: {v}"))?;
    Ok(route["paths"].as_array().cloned().unwrap_or_default())
}

/// The best path of `prefix` at an FRR node (`show bgp ... json`).
fn frr_best(lab: &TestLab, node: &str, afi: &str, prefix: &str) -> Result<Value, String> {
    let v = json(lab, node, &format!("vtysh -c 'show bgp {afi} unicast {prefix} json'"))?;
    v["paths"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["bestpath"]["overall"] == true).cloned())
        .ok_or(format!("{prefix} has no best path at {node}: {v}"))
}

fn communities(path: &Value) -> String {
    format!(
        "{} {}",
        path["community"]["string"].as_str().unwrap_or(""),
        path["largeCommunity"]["string"].as_str().unwrap_or("")
    )
}

/// BIRD's `show route PREFIX all` for one prefix, if it has the route.
fn bird_route(lab: &TestLab, prefix: &str) -> Result<String, String> {
    let out = lab.sh("bird", &format!("birdc show route {prefix} all")).stdout;
    if out.contains("BGP.as_path") { Ok(out) } else { Err(out) }
}

fn deploy() -> Option<TestLab> {
    if !lab_tests_enabled() {
        return None;
    }
    let lab = TestLab::deploy(TOPO);
    lab.wait_for("every Tartan session", CONVERGE, || tartan_down(&lab));
    Some(lab)
}

#[test]
fn tartan_exchanges_routes_with_frr_bird_gobgp_an_old_speaker_and_ibgp() {
    let Some(lab) = deploy() else { return };

    // What Tartan learned: each peer's route with its path, next hop and communities.
    let frr = lab.wait_for("FRR's route at Tartan", CONVERGE, || tartan_paths(&lab, "10.2.0.0/24"));
    assert_eq!(frr[0]["as_path"], "65002");
    assert_eq!(frr[0]["next_hop"], "10.0.12.2");
    assert_eq!(frr[0]["communities"], serde_json::json!(["65002:2"]));
    assert_eq!(frr[0]["large_communities"], serde_json::json!(["65002:2:2"]));
    let bird =
        lab.wait_for("BIRD's route at Tartan", CONVERGE, || tartan_paths(&lab, "10.3.0.0/24"));
    assert_eq!(
        (bird[0]["as_path"].clone(), bird[0]["next_hop"].clone()),
        ("65003".into(), "10.0.13.3".into())
    );
    assert_eq!(bird[0]["communities"], serde_json::json!(["65003:3"]));
    let gobgp =
        lab.wait_for("GoBGP's route at Tartan", CONVERGE, || tartan_paths(&lab, "10.4.0.0/24"));
    assert_eq!(
        (gobgp[0]["as_path"].clone(), gobgp[0]["origin"].clone()),
        ("65004".into(), "incomplete".into())
    );
    assert_eq!(gobgp[0]["communities"], serde_json::json!(["65004:4"]));
    let old = lab.wait_for("the old speaker's route at Tartan", CONVERGE, || {
        tartan_paths(&lab, "10.5.0.0/24")
    });
    assert_eq!(old[0]["as_path"], "65005");
    let ibgp =
        lab.wait_for("the iBGP route at Tartan", CONVERGE, || tartan_paths(&lab, "10.6.0.0/24"));
    assert_eq!(
        (ibgp[0]["as_path"].clone(), ibgp[0]["local_pref"].clone()),
        ("".into(), 200.into())
    );
    let v6 =
        lab.wait_for("FRR's IPv6 route at Tartan", CONVERGE, || tartan_paths(&lab, "fd00:2::/48"));
    let nh = v6[0]["next_hop"].as_str().unwrap_or_default().to_string();
    assert!(nh.starts_with("fd00:12::2 (fe80::"), "global and link-local next hop: {nh}");
    let bird6 =
        lab.wait_for("BIRD's IPv6 route at Tartan", CONVERGE, || tartan_paths(&lab, "fd00:3::/48"));
    // BIRD's link-local next hop: fe80::13:3, or the address the kernel made for eth1 if BIRD
    // read the interface before the exec line added that one (a race of the lab, not ours).
    assert!(bird6[0]["next_hop"].as_str().is_some_and(|n| n.contains("(fe80::")), "{bird6:?}");
    // Attributes passed on: an extended community, and OTC (type 35, RFC 9234), which Tartan does
    // not know — an optional transitive attribute goes on (RFC 4271 §5).
    let ext = lab
        .wait_for("FRR's second route at Tartan", CONVERGE, || tartan_paths(&lab, "10.2.1.0/24"));
    assert_eq!(ext[0]["ext_communities"], serde_json::json!(["0002fdea00000014"]), "{ext:?}");
    assert_eq!(ext[0]["unknown_attributes"], serde_json::json!([35]), "{ext:?}");
    let b =
        lab.wait_for("FRR's second route at BIRD", CONVERGE, || bird_route(&lab, "10.2.1.0/24"));
    assert!(
        b.contains("BGP.ext_community: (rt, 65002, 20)") && b.contains("BGP.otc: 65002"),
        "{b}"
    );
    assert!(!b.contains("BGP.med"), "a neighbour's MED stays in its AS: {b}");
    // AIGP (optional non-transitive, unknown to Tartan) stops here; AGGREGATOR goes on.
    let g =
        lab.wait_for("GoBGP's second route at BIRD", CONVERGE, || bird_route(&lab, "10.4.1.0/24"));
    assert!(g.contains("BGP.aggregator: 10.255.0.4 AS65004") && g.contains("(65004, 4, 4)"), "{g}");
    assert!(!g.contains("aigp") && !g.contains("BGP.med"), "{g}");
    // The speaker without capabilities negotiated two-octet AS numbers.
    let status = tartan_down(&lab).unwrap_or_default();
    let old_peer = status["peers"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["address"] == "10.0.15.5").cloned());
    let caps = old_peer.map(|p| p["capabilities"].clone()).unwrap_or_default();
    assert!(!caps.to_string().contains("four-octet-as"), "{caps}");

    // What the peers learned from Tartan.
    let at_frr = lab.wait_for("Tartan's route at FRR", CONVERGE, || {
        frr_best(&lab, "frr", "ipv4", "10.1.0.0/24")
    });
    assert_eq!(at_frr["aspath"]["string"], "4200000001");
    assert_eq!(at_frr["nexthops"][0]["ip"], "10.0.12.1");
    assert_eq!(communities(&at_frr), "64512:1 4200000001:1:1");
    let via = lab
        .wait_for("BIRD's route at FRR", CONVERGE, || frr_best(&lab, "frr", "ipv4", "10.3.0.0/24"));
    assert_eq!(via["aspath"]["string"], "4200000001 65003");
    assert_eq!(communities(&via), "65003:3 65003:3:3");
    let v6 = lab.wait_for("Tartan's IPv6 route at FRR", CONVERGE, || {
        frr_best(&lab, "frr", "ipv6", "fd00:1::/48")
    });
    let hops: Vec<(String, String)> = v6["nexthops"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    (
                        h["ip"].as_str().unwrap_or("").into(),
                        h["scope"].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(hops.first().map(|h| h.0.as_str()), Some("fd00:12::1"), "{hops:?}");
    assert!(
        hops.iter().any(|(ip, scope)| scope == "link-local" && ip.starts_with("fe80::")),
        "{hops:?}"
    );

    let b = lab.wait_for("Tartan's route at BIRD", CONVERGE, || bird_route(&lab, "10.1.0.0/24"));
    assert!(b.contains("BGP.as_path: 4200000001\n"), "{b}");
    assert!(b.contains("BGP.next_hop: 10.0.13.1\n"), "{b}");
    assert!(
        b.contains("BGP.community: (64512,1)")
            && b.contains("BGP.large_community: (4200000001, 1, 1)"),
        "{b}"
    );
    let b6 =
        lab.wait_for("Tartan's IPv6 route at BIRD", CONVERGE, || bird_route(&lab, "fd00:1::/48"));
    assert!(
        b6.contains("BGP.next_hop: fd00:13::1 fe80::13:1"),
        "over the link-local session: {b6}"
    );

    let g = lab.wait_for("Tartan's route at GoBGP", CONVERGE, || {
        let v = json(&lab, "gobgp", "gobgp -j global rib -a ipv4")?;
        v.get("10.2.0.0/24").cloned().ok_or(format!("{v}"))
    });
    let g = g.to_string();
    assert!(
        g.contains(r#""asns":[4200000001,65002]"#) && g.contains(r#""nexthop":"10.0.14.1""#),
        "{g}"
    );

    // The two-octet speaker sees AS_TRANS where Tartan's four-octet AS is.
    let o = lab.wait_for("Tartan's route at the old speaker", CONVERGE, || {
        frr_best(&lab, "old", "ipv4", "10.2.0.0/24")
    });
    assert_eq!(o["aspath"]["string"], "23456 65002");

    // iBGP: no AS added, LOCAL_PREF sent, next hop ours (next-hop-self).
    let i = lab.wait_for("Tartan's eBGP route at the iBGP peer", CONVERGE, || {
        frr_best(&lab, "ibgp", "ipv4", "10.4.0.0/24")
    });
    assert_eq!(i["aspath"]["string"], "65004");
    assert_eq!(i["locPrf"], 100);
    assert_eq!(i["nexthops"][0]["ip"], "10.0.16.1");
    let i = frr_best(&lab, "frr", "ipv4", "10.6.0.0/24").unwrap_or_default();
    assert_eq!(
        i["aspath"]["string"], "4200000001",
        "the iBGP route leaves the AS with our AS only"
    );

    // TCP-MD5: the kernel signs the FRR session (FRR would drop unsigned segments).
    let n = json(&lab, "frr", "vtysh -c 'show bgp neighbors 10.0.12.1 json'").unwrap_or_default();
    assert_eq!(n["10.0.12.1"]["bgpState"], "Established");
    lab.destroy();
}

#[test]
fn graceful_restart_keeps_tartans_routes_at_frr_until_it_returns() {
    let Some(lab) = deploy() else { return };
    lab.wait_for("Tartan's route at FRR", CONVERGE, || {
        frr_best(&lab, "frr", "ipv4", "10.1.0.0/24")
    });
    // Kill Tartan: no NOTIFICATION, the kernel closes its connections.
    lab.sh_ok("tartan", "pkill -KILL -x tartan");
    let stale = lab.wait_for("FRR to keep the route, stale", CONVERGE, || {
        let p = frr_best(&lab, "frr", "ipv4", "10.1.0.0/24")?;
        if p["stale"] == true { Ok(p) } else { Err(format!("not stale yet: {p}")) }
    });
    assert_eq!(stale["aspath"]["string"], "4200000001");
    // BIRD and GoBGP help too (both are graceful restart helpers by default).
    assert!(
        bird_route(&lab, "10.1.0.0/24").is_ok(),
        "BIRD dropped the route while Tartan restarted"
    );
    // Tartan comes back (as a node agent restarted by its supervisor would), sends its routes
    // and End-of-RIB: the route is fresh again.
    lab.sh_ok("tartan", "setsid tartan bgp -c /run/bgp.toml >/tmp/restarted.log 2>&1 </dev/null &");
    lab.wait_for("the route to be fresh", CONVERGE, || {
        let p = frr_best(&lab, "frr", "ipv4", "10.1.0.0/24")?;
        if p.get("stale").is_none() { Ok(()) } else { Err(format!("still stale: {p}")) }
    });
    let n = json(&lab, "frr", "vtysh -c 'show bgp neighbors 10.0.12.1 json'").unwrap_or_default();
    let eor = &n["10.0.12.1"]["gracefulRestartInfo"]["ipv4Unicast"]["endOfRibStatus"];
    assert_eq!(eor["endOfRibRecv"], true, "FRR got Tartan's End-of-RIB: {n}");
    lab.destroy();
}

#[test]
fn route_refresh_works_both_ways_without_resetting_sessions() {
    let Some(lab) = deploy() else { return };
    lab.wait_for("FRR's route at Tartan", CONVERGE, || tartan_paths(&lab, "10.2.0.0/24"));
    let stats = |lab: &TestLab| -> Value {
        let n =
            json(lab, "frr", "vtysh -c 'show bgp neighbors 10.0.12.1 json'").unwrap_or_default();
        n["10.0.12.1"].clone()
    };
    let count = |v: &Value, key: &str| v["messageStats"][key].as_u64().unwrap_or(0);
    let before = stats(&lab);
    let established = before["connectionsEstablished"].as_u64();
    // FRR asks Tartan for its routes again (RFC 2918): Tartan sends them (UPDATEs arrive).
    lab.sh_ok("frr", "vtysh -c 'clear bgp ipv4 unicast 10.0.12.1 soft in'");
    lab.wait_for("Tartan to answer the refresh", CONVERGE, || {
        let now = stats(&lab);
        let (sent, updates) = (count(&now, "routeRefreshSent"), count(&now, "updatesRecv"));
        if sent > count(&before, "routeRefreshSent") && updates > count(&before, "updatesRecv") {
            Ok(())
        } else {
            Err(format!("{}", now["messageStats"]))
        }
    });
    frr_best(&lab, "frr", "ipv4", "10.1.0.0/24").expect("Tartan's route is still there");
    // Tartan's import policy refuses 10.2.9.0/24; accepting it makes Tartan ask FRR for its
    // routes again, and the route appears without the session going down.
    assert!(tartan_paths(&lab, "10.2.9.0/24").is_err(), "refused by the import policy");
    lab.sh_ok("tartan", "sed -i 's/^import = \"from-frr\"/import = \"accept\"/' /run/bgp.toml && pkill -HUP -x tartan");
    let p =
        lab.wait_for("the route after the refresh", CONVERGE, || tartan_paths(&lab, "10.2.9.0/24"));
    assert_eq!(p[0]["as_path"], "65002");
    let after = stats(&lab);
    assert!(
        count(&after, "routeRefreshRecv") > count(&before, "routeRefreshRecv"),
        "{}",
        after["messageStats"]
    );
    assert_eq!(after["connectionsEstablished"].as_u64(), established, "no session was reset");
    lab.destroy();
}
