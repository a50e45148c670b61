//! Hitless agent restart, on `containerlab/quickstart.clab.yml`: an agent killed with SIGKILL
//! during a continuous ping between containers on different hosts loses no packet; its
//! routes stay in its kernel, the other hosts keep its blocks (graceful restart), and its
//! return changes no route anywhere.

mod fabric;

use std::time::Duration;

use fabric::*;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/quickstart.clab.yml");
const HOSTS: [&str; 3] = ["host1", "host2", "host3"];

#[test]
fn sigkill_and_restart_of_an_agent_loses_no_packet_and_flaps_no_route() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);
    lab.wait_for("sessions", CONVERGE, || sessions_established(&lab, &HOSTS, 4));
    let wls = wait_workloads(&lab, 6);
    lab.wait_for("routes", CONVERGE, || fabric_routes(&lab, &HOSTS));
    let (web1, web3) = (&wls["web1"], &wls["web3"]);
    let target = web3.v4.clone().unwrap_or_default();
    lab.wait_for("web1 reaches web3", Duration::from_secs(10), || ping(&lab, web1, &target));

    // Watch every other kernel's routes, then ping from host1's container at 100 pps while
    // host1's agent is killed and started again.
    for host in ["host2", "host3"] {
        start_monitor(&lab, host, "route", "routes");
    }
    let before: Vec<_> = HOSTS.iter().map(|h| routes(&lab, h).expect("routes")).collect();
    // All hosts keep their 4 sessions; host1's come back.
    let summary = ping_through_agent_restart(&lab, "host1", "web1", &target, "tartan node", 4);
    lab.wait_for("every host's sessions", CONVERGE, || sessions_established(&lab, &HOSTS, 4));
    assert_no_loss(&summary, 150);

    // Nothing changed in any kernel: no route of ours was deleted or re-added elsewhere, and
    // host1 has what it had.
    for host in ["host2", "host3"] {
        let log = stop_monitor(&lab, host, "routes");
        let ours: Vec<&str> = log.lines().filter(|l| l.contains("proto 84")).collect();
        assert!(ours.is_empty(), "{host} saw our routes change: {ours:?}");
    }
    let after: Vec<_> = HOSTS.iter().map(|h| routes(&lab, h).expect("routes")).collect();
    assert_eq!(before, after, "every kernel holds the same routes");
    // And the restarted host still carries TCP both ways.
    tcp_transfer(&lab, web1, web3, &target, 5001);
    tcp_transfer(&lab, web3, web1, web1.v6.as_deref().unwrap_or_default(), 5002);

    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}
