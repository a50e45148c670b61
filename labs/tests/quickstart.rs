//! Lab test of `containerlab/quickstart.clab.yml`: an API server and three `tartan node` hosts
//! in a node-to-node mesh, two containers per host made with `tartan sandbox`, IPv4 and IPv6.
//! Sessions come up; every host has a /32 (and /128) to each local veth, a blackhole per own
//! block and the other hosts' blocks via their addresses; containers on different hosts ping
//! and move data over TCP in both families; removing a container removes its route and frees
//! its address; a borrowed address is reachable through its /32; a host leaving takes its
//! blocks out of every kernel; `tartanctl` tells the truth about all of it.

mod fabric;

use std::time::Duration;

use fabric::*;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/quickstart.clab.yml");
const HOSTS: [&str; 3] = ["host1", "host2", "host3"];

#[test]
fn quickstart_fabric_routes_containers_across_hosts_over_bgp() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);

    // Sessions: each host has an IPv4 and an IPv6 session to each of the two others.
    lab.wait_for("every mesh session Established", CONVERGE, || {
        sessions_established(&lab, &HOSTS, 4)
    });
    let wls = lab.wait_for("six containers", CONVERGE, || {
        let w = workloads(&lab)?;
        if w.len() == 6 && w.values().all(|w| w.v4.is_some() && w.v6.is_some()) {
            Ok(w)
        } else {
            Err(format!("{w:?}"))
        }
    });
    lab.wait_for("every host's routes", CONVERGE, || fabric_routes(&lab, &HOSTS));

    // The API speaks HTTPS only, with a certificate of the lab's CA (made at deploy time):
    // plain HTTP gets nothing, and a client that does not trust the CA is told what to give.
    let plain = lab.sh("host1", "tartanctl --api http://apiserver:7180 get nodes");
    assert!(!plain.success() && plain.stderr.contains("https://"), "{plain:?}");
    let untrusted = lab.sh("host1", "env -u TARTAN_CA_FILE tartanctl get nodes");
    assert!(!untrusted.success() && untrusted.stderr.contains("--ca-file"), "{untrusted:?}");
    // A node credential writes its own node, and nothing of another's.
    lab.sh_ok("host1", "tartanctl node credential issue host1 -o /tmp/host1.token");
    let own = "TARTAN_TOKEN_FILE=/tmp/host1.token tartanctl label node host1 probe=yes";
    lab.sh_ok("host1", own);
    let other =
        lab.sh("host1", "TARTAN_TOKEN_FILE=/tmp/host1.token tartanctl label node host2 probe=yes");
    assert!(!other.success() && other.stderr.contains("may not"), "{other:?}");
    lab.sh_ok("host1", "tartanctl node credential revoke host1");

    // Ping matrix between containers on different hosts, IPv4 and IPv6.
    ping_matrix(&lab, &wls);

    // TCP across hosts in both families: web1 (host1) sends to web3 (host2).
    let (web1, web3) = (&wls["web1"], &wls["web3"]);
    for (i, addr) in [&web3.v4, &web3.v6].into_iter().flatten().enumerate() {
        tcp_transfer(&lab, web1, web3, addr, 5001 + i as u16);
    }

    // CNI CHECK through the runtime: interface, addresses, routes, the IPAM's record.
    lab.sh_ok("host1", "tartan sandbox check web1");

    // Both ends of a container's veth know each other's MAC for good (no ARP or ND, nothing
    // for the kernel's neighbour table limit to evict): the container its gateways, the host
    // each of the container's addresses.
    let inside = lab.sh_ok("host1", "tartan sandbox exec web1 -- ip neigh show nud permanent");
    for gateway in ["169.254.1.1 dev eth0 lladdr ee:ee:ee:ee:ee:ee", "fe80::ecee:eeff:feee:eeee"] {
        assert!(inside.contains(gateway), "web1's neighbours: {inside}");
    }
    let outside = lab.sh_ok("host1", "ip neigh show nud permanent");
    for addr in [&web1.v4, &web1.v6].into_iter().flatten() {
        assert!(outside.lines().any(|l| l.starts_with(&format!("{addr} "))), "{outside}");
    }

    // A failed ADD undoes itself: the container already has an eth0, so wiring fails after
    // the allocation, and the address goes back. DEL is idempotent.
    let plugin = |command: &str| {
        format!(
            "printf '{{\"cniVersion\":\"1.0.0\",\"name\":\"tartan\",\"type\":\"tartan\"}}' | \
             CNI_COMMAND={command} CNI_CONTAINERID=dup CNI_NETNS=/run/netns/dup CNI_IFNAME=eth0 \
             CNI_PATH=/opt/cni/bin /opt/cni/bin/tartan"
        )
    };
    lab.sh_ok("host1", "ip netns add dup && ip -n dup link add eth0 type veth peer name eth1");
    let failed = lab.sh("host1", &plugin("ADD"));
    assert!(
        !failed.success() && failed.stdout.contains("cannot wire the container"),
        "{}",
        failed.stdout
    );
    let handles = lab.sh_ok("host1", "tartanctl get ipamhandles -o json");
    assert!(!handles.contains("tartan.dup"), "the failed ADD's address was released: {handles}");
    for _ in 0..2 {
        lab.sh_ok("host1", &plugin("DEL"));
    }
    lab.sh_ok("host1", "ip netns del dup");

    // The agent's Prometheus metrics tell the same story.
    let metrics =
        lab.sh_ok("host1", "printf 'GET /metrics HTTP/1.0\r\n\r\n' | socat - TCP:127.0.0.1:9091");
    let up = metrics
        .lines()
        .filter(|l| l.starts_with("tartan_agent_bgp_session_up{") && l.ends_with(" 1"))
        .count();
    assert_eq!(up, 4, "{metrics}");
    assert!(metrics.contains("tartan_agent_endpoints 2"), "{metrics}");
    assert!(
        metrics.contains("tartan_agent_cni_request_seconds_count{command=\"ADD\",result=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("tartan_agent_routes_programmed{kind=\"blackhole\"} 2"), "{metrics}");

    // `tartanctl ipam show` counts six addresses per family.
    let show = lab.sh_ok("host1", "tartanctl ipam show");
    assert!(show.matches("| 6 (0%)").count() == 2, "{show}");

    // Labels from the runtime (args.cni.labels) and Kubernetes' CNI_ARGS reach the workload's
    // record; policy is explained over them, and a label changed by the operator counts.
    lab.sh_ok(
        "host1",
        "tartan sandbox add shop --label app=shop --label tier= --args 'K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=shop-0'",
    );
    let weps: serde_json::Value =
        serde_json::from_str(&lab.sh_ok("host1", "tartanctl get weps -o json")).expect("json");
    let shop = weps["items"]
        .as_array()
        .and_then(|l| l.iter().find(|w| w["spec"]["containerID"] == "shop"))
        .cloned()
        .unwrap_or_default();
    let labels = &shop["metadata"]["labels"];
    assert_eq!(
        (labels["app"].as_str(), labels["tier"].as_str()),
        (Some("shop"), Some("")),
        "{shop}"
    );
    assert_eq!(labels["tartan.io/namespace"], "team-a", "{shop}");
    assert_eq!(labels["tartan.io/pod"], "shop-0", "{shop}");
    assert_eq!(labels["tartan.io/node"], "host1", "{shop}");
    assert_eq!(shop["spec"]["profiles"][0], "tartan", "{shop}");
    let policy = "cat > /tmp/shop.yaml <<'END'
apiVersion: tartan/v1
kind: GlobalNetworkPolicy
metadata: {name: shop}
spec:
  selector: app == 'shop'
  ingress: [{action: Allow, protocol: TCP, source: {selector: tartan.io/namespace == 'team-a'}}]
END
tartanctl apply -f /tmp/shop.yaml";
    lab.sh_ok("host1", policy);
    let explain = lab.sh_ok("host1", "tartanctl policy explain web3 shop tcp/80");
    assert!(explain.contains(": DENIED"), "{explain}");
    let wep = shop["metadata"]["name"].as_str().unwrap_or_default();
    lab.sh_ok("host1", &format!("tartanctl label wep {wep} app=other --overwrite"));
    let explain = lab.sh_ok("host1", "tartanctl policy explain web3 shop tcp/80");
    assert!(explain.contains(": ALLOWED") && explain.contains("Profile tartan"), "{explain}");
    lab.sh_ok("host1", "tartanctl delete gnp shop && tartan sandbox del shop");

    // Removing a container removes its route and frees its address.
    let web2 = wls["web2"].clone();
    let web2_v4 = web2.v4.clone().unwrap_or_default();
    lab.sh_ok("host1", "tartan sandbox del web2");
    lab.wait_for("web2's route gone everywhere it was", Duration::from_secs(10), || {
        let r = routes(&lab, "host1")?;
        if has_route(&r, &web2_v4, |r| r["dev"].is_string() && r["type"] != "blackhole") {
            Err(format!("{r:?}"))
        } else {
            Ok(())
        }
    });
    let freed = lab.sh_ok("host1", &format!("tartanctl ipam show --ip {web2_v4}"));
    assert!(freed.contains("not assigned"), "{freed}");
    assert!(!workloads(&lab).expect("workloads").contains_key("web2"));

    // Borrowing: with only a one-block pool and strictAffinity off, host2's container borrows
    // from host1's block and is reached through its /32.
    lab.sh_ok("host1", "tartanctl patch ippool default-ipv4 -p '{\"spec\":{\"disabled\":true}}'");
    lab.sh_ok("host1", "tartanctl patch ippool default-ipv6 -p '{\"spec\":{\"disabled\":true}}'");
    lab.sh_ok(
        "host1",
        "printf 'apiVersion: tartan/v1\\nkind: IPPool\\nmetadata: {name: tiny}\\nspec: {cidr: 10.66.0.0/28, blockSize: 28}\\n' | tartanctl apply -f -",
    );
    lab.sh_ok("host1", "tartan sandbox add lender");
    lab.sh_ok("host2", "tartan sandbox add borrower");
    let borrower = lab.wait_for("the borrower's address", CONVERGE, || {
        workloads(&lab)?.get("borrower").cloned().ok_or("not yet".to_string())
    });
    let b_addr = borrower.v4.clone().unwrap_or_default();
    assert!(b_addr.starts_with("10.66.0."), "{borrower:?}");
    let borrowed = lab.sh_ok("host1", "tartanctl ipam show --show-borrowed");
    assert!(borrowed.contains(&b_addr) && borrowed.contains("host2"), "{borrowed}");
    let addrs = node_addresses(&lab).expect("nodes");
    for host in ["host1", "host3"] {
        lab.wait_for(&format!("{host} routes {b_addr} via host2"), CONVERGE, || {
            let r = routes(&lab, host)?;
            if has_route(&r, &b_addr, |r| r["gateway"] == addrs["host2"].0.as_str()) {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        });
    }
    lab.wait_for("web5 (host3) reaches the borrowed address", Duration::from_secs(10), || {
        ping(&lab, &wls["web5"], &b_addr)
    });
    let lender = workloads(&lab).expect("workloads")["lender"].clone();
    lab.wait_for("the lender reaches the borrower", Duration::from_secs(10), || {
        ping(&lab, &lender, &b_addr)
    });

    // A host leaving: its Node goes, and its blocks go from every other kernel.
    let host3_blocks = blocks(&lab).expect("blocks").get("host3").cloned().unwrap_or_default();
    assert!(!host3_blocks.is_empty());
    lab.sh_ok("apiserver", "tartanctl delete node host3");
    for host in ["host1", "host2"] {
        lab.wait_for(&format!("host3's blocks gone from {host}"), CONVERGE, || {
            let r = routes(&lab, host)?;
            match host3_blocks.iter().find(|b| has_route(&r, b, |_| true)) {
                Some(b) => Err(format!("{b} still routed: {r:?}")),
                None => Ok(()),
            }
        });
    }
    lab.wait_for("host1 and host2 still peer", CONVERGE, || {
        sessions_established(&lab, &["host1", "host2"], 2)
    });
    let status = lab.sh_ok("host1", "tartanctl node status host1");
    assert!(status.contains("Established") && !status.contains("172.20.20.5"), "{status}");

    eprintln!(
        "quickstart: {} containers pinged across hosts, {b_addr} borrowed, host3 withdrawn",
        wls.len()
    );
    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}

const P2P: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/topologies/tartan-p2p.clab.yml");

#[test]
fn hosts_whose_addresses_arrive_late_peer_and_route_over_their_own_link() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(P2P);
    lab.wait_for("both sessions over eth1", CONVERGE, || {
        sessions_established(&lab, &["a", "b"], 2)?;
        let addrs = node_addresses(&lab)?;
        match addrs.get("a") {
            Some((v4, v6)) if v4 == "10.0.12.1" && v6 == "fd00:12::1" => Ok(()),
            other => Err(format!("a registered {other:?}")),
        }
    });
    let wls = wait_workloads(&lab, 2);
    lab.wait_for("routes over the link", CONVERGE, || fabric_routes(&lab, &["a", "b"]));
    for addr in [&wls["cb"].v4, &wls["cb"].v6].into_iter().flatten() {
        lab.wait_for(&format!("ca reaches {addr}"), Duration::from_secs(10), || {
            ping(&lab, &wls["ca"], addr)
        });
    }
    let via = lab.sh_ok("a", &format!("ip route get {}", wls["cb"].v4.clone().unwrap_or_default()));
    assert!(via.contains("via 10.0.12.2 dev eth1"), "{via}");

    // A second agent on the same host refuses to start (it would take the socket).
    let second = lab.sh("a", "timeout 10 tartan node");
    assert!(
        !second.success() && second.stderr.contains("another `tartan node`"),
        "{}",
        second.stderr
    );

    // Restart a's agent: its routes stay in the kernel while it is down, b keeps a's block
    // (graceful restart), and the new agent knows its container from its local records.
    let before = routes(&lab, "a").expect("routes");
    lab.sh_ok("a", "pkill -TERM -x tartan");
    lab.wait_for("a's agent gone", Duration::from_secs(10), || {
        if lab.sh("a", "pgrep -x tartan").success() {
            Err("still running".to_string())
        } else {
            Ok(())
        }
    });
    assert_eq!(routes(&lab, "a").expect("routes"), before, "routes stay while the agent is down");
    fabric_routes(&lab, &["b"]).expect("b keeps a's routes");
    lab.sh_ok("a", "tartan node >/tmp/agent-again.log 2>&1 &");
    lab.wait_for("sessions again", CONVERGE, || sessions_established(&lab, &["a", "b"], 2));
    lab.wait_for("routes again", CONVERGE, || fabric_routes(&lab, &["a", "b"]));
    lab.wait_for("ca reaches cb again", Duration::from_secs(10), || {
        ping(&lab, &wls["ca"], wls["cb"].v4.as_deref().unwrap_or_default())
    });
    let ca = wls["ca"].v4.clone().unwrap_or_default();
    lab.sh_ok("a", "tartan sandbox del ca");
    lab.wait_for("ca's veth route gone, the restarted agent having known it", CONVERGE, || {
        let r = routes(&lab, "a")?;
        if has_route(&r, &ca, |r| r["dev"].as_str().is_some_and(|d| d.starts_with("tart"))) {
            Err(format!("{r:?}"))
        } else {
            Ok(())
        }
    });
    let freed = lab.sh_ok("a", &format!("tartanctl ipam show --ip {ca}"));
    assert!(freed.contains("not assigned"), "{freed}");

    // A container that vanished while its agent was down (as after a reboot): the restarted
    // agent finds its veth gone, releases its addresses and forgets it.
    let cb = wls["cb"].v4.clone().unwrap_or_default();
    lab.sh_ok("b", "pkill -KILL -x tartan");
    lab.sh_ok("b", "ip netns del cb");
    lab.sh_ok("b", "tartan node >/tmp/agent-again.log 2>&1 &");
    lab.wait_for("cb's addresses released by the restarted agent", CONVERGE, || {
        let shown = lab.sh("a", &format!("tartanctl ipam show --ip {cb}")).stdout;
        if shown.contains("not assigned") && !workloads(&lab)?.contains_key("cb") {
            Ok(())
        } else {
            Err(shown)
        }
    });
    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}
