//! Lab tests of the runner itself, on `tests/topologies/mixed.clab.yml`: FRR, BIRD, GoBGP and
//! plain hosts; brief and extended links; groups, kinds, defaults and variables. Nodes must
//! behave like containers (own hostname, /run, /tmp, binds, writes that stay inside), links
//! must be what the file says, and destroy must leave nothing behind.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tartan_labs::harness::{TestLab, lab_tests_enabled};
use tartan_labs::supervisor::Status;

const MIXED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/topologies/mixed.clab.yml");
const TARTANLAB: &str = env!("CARGO_BIN_EXE_tartanlab");

fn link(lab: &TestLab, node: &str, ifname: &str) -> Value {
    let out = lab.sh_ok(node, &format!("ip -j link show dev {ifname}"));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j link: {e}: {out}"));
    v[0].clone()
}

/// The IPv4 addresses of an interface.
fn addresses(lab: &TestLab, node: &str, ifname: &str) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&lab.sh_ok(node, &format!("ip -j -4 addr show dev {ifname}")))
            .expect("ip -j addr");
    v[0]["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

fn frr_peers_established(lab: &TestLab, node: &str, peers: &[&str]) -> Result<(), String> {
    let out = lab.sh(node, "vtysh -c 'show bgp summary json'").stdout;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    let bad: Vec<String> = peers
        .iter()
        .filter(|p| v["ipv4Unicast"]["peers"][**p]["state"] != "Established")
        .map(|p| format!("{p}: {}", v["ipv4Unicast"]["peers"][*p]["state"]))
        .collect();
    if bad.is_empty() { Ok(()) } else { Err(bad.join(", ")) }
}

#[test]
fn mixed_topology_deploys_nodes_that_behave_like_containers_and_leaves_nothing() {
    if !lab_tests_enabled() {
        return;
    }
    let host_marker = Path::new("/etc/tartan-lab-test-marker");
    assert!(
        !host_marker.exists() && !Path::new("/srv/tartan-test").exists(),
        "leftovers from an earlier run on the host"
    );
    let lab = TestLab::builder(MIXED)
        .var("FRR_TAG", "8.4.4-test")
        .var("MGMT_SUBNET", "10.77.0.0/24")
        .deploy();
    let name = lab.name().to_string();

    // Names, variables, inheritance.
    for node in ["r1", "r2", "b1", "g1", "h1", "h2"] {
        assert_eq!(lab.netns(node), format!("clab-{name}-{node}"));
        assert_eq!(lab.sh_ok(node, "hostname").trim(), node);
        assert_eq!(
            lab.sh_ok(node, "cat /tmp/kind-exec-ran").trim(),
            node,
            "the kind's exec line ran in {node}"
        );
        assert_eq!(lab.sh_ok(node, "echo $FROM_DEFAULTS $CLAB_LABEL_LAB_ROLE").trim(), "yes test");
    }
    assert_eq!(
        lab.state().node("r1").map(|n| n.image.as_str()).ok(),
        Some("quay.io/frrouting/frr:8.4.4-test")
    );
    assert_eq!(lab.sh_ok("r1", "echo $LEVEL").trim(), "node");
    assert_eq!(lab.sh_ok("r2", "echo $LEVEL").trim(), "group");
    assert_eq!(lab.sh_ok("h1", "echo $LEVEL").trim(), "defaults");
    assert!(lab.exec_results().iter().all(|o| o.success()), "{:?}", lab.exec_results());

    // Links: names, MTU, MAC, up, no addresses from the runner.
    let r1e1 = link(&lab, "r1", "eth1");
    assert_eq!((r1e1["mtu"].as_u64(), r1e1["operstate"].as_str()), (Some(1500), Some("UP")));
    assert_eq!(link(&lab, "r1", "eth2")["mtu"].as_u64(), Some(9500), "default MTU");
    let to_gobgp = link(&lab, "r2", "to-gobgp");
    assert_eq!(
        (to_gobgp["address"].as_str(), to_gobgp["mtu"].as_u64()),
        (Some("aa:c1:ab:12:34:56"), Some(9000))
    );
    assert_eq!(link(&lab, "g1", "eth1")["mtu"].as_u64(), Some(9000));
    assert!(
        link(&lab, "b1", "eth1")["address"].as_str().is_some_and(|m| m.starts_with("aa:c1:ab:"))
    );
    assert_eq!(
        lab.sh_ok("h2", "ip -br link | grep -c '^eth0'").trim(),
        "1",
        "h2's data link is its eth0"
    );
    assert!(
        lab.sh_ok("h2", "ip route show default").trim().is_empty(),
        "network-mode none: no management route"
    );
    lab.sh_ok("h1", "ping -c 2 -W 1 192.168.10.3");

    // Management network: static address honoured, others sequential, names resolve.
    assert_eq!(addresses(&lab, "r2", "eth0"), ["10.77.0.42/24"]);
    assert_eq!(addresses(&lab, "b1", "eth0"), ["10.77.0.2/24"]);
    assert_eq!(addresses(&lab, "r1", "eth0"), ["10.77.0.5/24"]);
    lab.sh_ok("r1", "ping -c 1 -W 1 r2");
    lab.sh_ok("h1", &format!("ping -c 1 -W 1 clab-{name}-g1"));

    // Sysctls: the node's own, and forwarding by role.
    assert_eq!(lab.sh_ok("h1", "cat /proc/sys/net/ipv4/conf/all/rp_filter").trim(), "2");
    assert_eq!(lab.sh_ok("r1", "cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(lab.sh_ok("h1", "cat /proc/sys/net/ipv4/ip_forward").trim(), "0");

    // Files: binds at their container paths, read-only where asked; writes stay in the node.
    assert_eq!(lab.sh_ok("h1", "cat /srv/tartan-test/hello.txt").trim(), "bound into h1 read-only");
    assert!(
        !lab.sh("h1", "echo x > /srv/tartan-test/hello.txt").success(),
        "a :ro bind must be read-only"
    );
    assert!(
        !Path::new("/srv/tartan-test").exists(),
        "the bind's mount point must not appear on the host"
    );
    lab.sh_ok("r1", &format!("echo r1 > {}", host_marker.display()));
    assert!(!host_marker.exists(), "a node's write reached the host's /etc");
    assert!(
        !lab.sh("r2", &format!("test -e {}", host_marker.display())).success(),
        "r2 sees r1's file"
    );

    // Two FRR nodes share no socket, pid file or config.
    lab.wait_for("r1's BGP sessions", Duration::from_secs(40), || {
        frr_peers_established(&lab, "r1", &["10.1.12.2", "10.1.13.2"])
    });
    lab.wait_for("r2's BGP sessions", Duration::from_secs(40), || {
        frr_peers_established(&lab, "r2", &["10.1.12.1", "10.1.24.2"])
    });
    lab.sh_ok("r1", "touch /run/frr/r1-was-here");
    assert!(!lab.sh("r2", "test -e /run/frr/r1-was-here").success(), "r1 and r2 share /run/frr");
    assert!(lab.sh_ok("r2", "vtysh -c 'show running-config'").contains("hostname r2"));
    assert!(lab.sh_ok("b1", "birdc show protocols").contains("Established"));
    assert!(
        lab.sh_ok("r1", "ls /tmp").contains("kind-exec-ran")
            && !Path::new("/tmp/kind-exec-ran").exists()
    );

    // Each node has its own PID namespace: its own processes, its init as PID 1, and a pkill
    // that reaches nothing outside it.
    let ps = lab.sh_ok("r1", "ps -eo pid,comm");
    assert!(
        ps.contains("zebra")
            && ps.contains("bgpd")
            && !ps.contains("bird")
            && !ps.contains("gobgpd"),
        "{ps}"
    );
    assert_eq!(lab.sh_ok("r1", "cat /proc/1/comm").trim(), "tartan-init");
    assert!(!lab.sh("h1", "pkill -x bird").success(), "pkill in h1 must not find b1's bird");
    assert!(
        lab.sh_ok("b1", "birdc show status").contains("Daemon is up"),
        "b1's bird survived h1's pkill"
    );

    // The project's binaries come first on every node's PATH.
    assert_eq!(lab.sh_ok("h1", "command -v tartanlab").trim(), TARTANLAB);

    // startup-delay: g1's daemon started at least a second after r1's.
    let status = Status::load(lab.state()).expect("supervisor status");
    let started = |n: &str| status.nodes[n].processes[0].started_unix;
    assert!(started("g1") > started("r1"), "g1 started {} vs r1 {}", started("g1"), started("r1"));

    // The CLI: inspect in containerlab's JSON shape, exec's exit code passes through.
    let out = Command::new(TARTANLAB)
        .args(["inspect", "--lab", &name, "--format", "json"])
        .output()
        .expect("inspect");
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    let rows = v[&name].as_array().expect("rows for the lab");
    assert_eq!(rows.len(), 6);
    for key in [
        "lab_name",
        "labPath",
        "absLabPath",
        "name",
        "container_id",
        "image",
        "kind",
        "state",
        "status",
        "ipv4_address",
        "ipv6_address",
        "owner",
    ] {
        assert!(rows[0].get(key).is_some(), "inspect json lacks {key}: {}", rows[0]);
    }
    assert!(rows.iter().all(|r| r["state"] == "running"), "{rows:?}");
    let status = Command::new(TARTANLAB)
        .args(["exec", "--lab", &name, "h1", "--", "sh", "-c", "exit 7"])
        .status()
        .expect("exec");
    assert_eq!(status.code(), Some(7));

    // A process an exec line left in the background is part of the lab, and goes with it.
    let footprint = lab.footprint();
    assert!(
        footprint.processes.len() >= 8,
        "daemons, supervisor and the background sleep: {:?}",
        footprint.processes
    );
    lab.destroy();
    footprint.assert_gone();
}
