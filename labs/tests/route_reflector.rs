//! Lab test of `containerlab/route-reflector.clab.yml`: the mesh off, two Tartan reflectors of
//! one cluster, three client hosts. Clients peer only with the reflectors and learn each
//! other's blocks with the originating host as next hop; losing a reflector loses no route,
//! and a block claimed afterwards still reaches every client through the other.

mod fabric;

use std::time::Duration;

use fabric::*;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/route-reflector.clab.yml");
const ALL: [&str; 5] = ["rr1", "rr2", "h1", "h2", "h3"];

#[test]
fn reflectors_replace_the_mesh_and_one_can_go() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);
    // Clients: two reflectors, two families. Reflectors: the other four nodes, two families.
    lab.wait_for("client sessions", CONVERGE, || {
        sessions_established(&lab, &["h1", "h2", "h3"], 4)
    });
    lab.wait_for("reflector sessions", CONVERGE, || sessions_established(&lab, &["rr1", "rr2"], 8));
    let status = lab.sh_ok("h1", "tartanctl node status h1");
    assert!(
        status.contains("route reflector") && !status.contains("node-to-node mesh"),
        "{status}"
    );

    let wls = lab.wait_for("four containers", CONVERGE, || {
        let w = workloads(&lab)?;
        if w.len() == 4 { Ok(w) } else { Err(format!("{w:?}")) }
    });
    // Every host has every other host's blocks via the originating host (not the reflector).
    lab.wait_for("routes everywhere", CONVERGE, || fabric_routes(&lab, &ALL));
    ping_matrix(&lab, &wls);

    let (c1, c3w) = (&wls["c1"], &wls["c3"]);
    for (i, addr) in [&c3w.v4, &c3w.v6].into_iter().flatten().enumerate() {
        tcp_transfer(&lab, c1, c3w, addr, 5001 + i as u16);
    }

    // Hitless restart of a client: h1's agent killed with SIGKILL and started again during a
    // 100 pps ping from c1 to c3; the reflectors (graceful-restart helpers) keep h1's block.
    let c3 = wls["c3"].v4.clone().unwrap_or_default();
    let summary = ping_through_agent_restart(&lab, "h1", "c1", &c3, "tartan node", 4);
    assert_no_loss(&summary, 150);

    // rr1 goes for good: its agent stops and its Node is deleted. Nothing the clients learned
    // goes with it, and a new block on h1 reaches h2 and h3 through rr2 alone.
    lab.sh_ok("rr1", "pkill -TERM -x tartan");
    lab.sh_ok("apiserver", "tartanctl delete node rr1");
    lab.wait_for("clients keep their routes through rr2", CONVERGE, || {
        sessions_established(&lab, &["h1", "h2", "h3"], 2)?;
        fabric_routes(&lab, &["rr2", "h1", "h2", "h3"])
    });
    lab.sh_ok(
        "apiserver",
        "printf 'apiVersion: tartan/v1\\nkind: IPPool\\nmetadata: {name: more}\\nspec: {cidr: 10.67.0.0/24, blockSize: 26}\\n' | tartanctl apply -f -",
    );
    lab.sh_ok(
        "apiserver",
        "tartanctl patch ippool default-ipv4 -p '{\"spec\":{\"disabled\":true}}'",
    );
    lab.sh_ok("h1", "tartan sandbox add late");
    let late = lab.wait_for("the late container", CONVERGE, || {
        workloads(&lab)?.get("late").cloned().ok_or("not yet".to_string())
    });
    assert!(late.v4.as_deref().is_some_and(|a| a.starts_with("10.67.")), "{late:?}");
    lab.wait_for("the new block everywhere", CONVERGE, || {
        fabric_routes(&lab, &["rr2", "h1", "h2", "h3"])
    });
    let late_v4 = late.v4.clone().unwrap_or_default();
    lab.wait_for("c3 reaches the late container", Duration::from_secs(10), || {
        ping(&lab, &wls["c3"], &late_v4)
    });

    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}
