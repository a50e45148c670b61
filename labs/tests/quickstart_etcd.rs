//! Lab test of `containerlab/quickstart-etcd.clab.yml`: the quickstart fabric with its API as
//! two replicas on a three-member etcd cluster (etcd and the replicas run as lab nodes). With
//! one etcd member and one API replica killed (SIGKILL), a new container still starts, gets its
//! addresses and reaches a container on another host.

mod fabric;

use std::time::Duration;

use fabric::*;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/quickstart-etcd.clab.yml");
const HOSTS: [&str; 3] = ["host1", "host2", "host3"];

#[test]
fn containers_start_while_an_etcd_member_and_an_api_replica_are_down() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(TOPO);
    lab.wait_for("every mesh session Established", CONVERGE, || {
        sessions_established(&lab, &HOSTS, 4)
    });
    let wls = wait_workloads(&lab, 6);
    lab.wait_for("every host's routes", CONVERGE, || fabric_routes(&lab, &HOSTS));

    // One etcd member and one API replica die.
    lab.sh_ok("etcd1", "pkill -KILL -x etcd");
    lab.sh_ok("api1", "pkill -KILL -x tartan");
    // tartanctl on a host has both replicas (TARTAN_API) and moves on to api2.
    lab.wait_for("the API answers through api2", Duration::from_secs(20), || {
        let doc = json(&lab, "host1", "tartanctl get nodes -o json")?;
        if doc["items"].as_array().map(Vec::len) == Some(3) { Ok(()) } else { Err(doc.to_string()) }
    });

    // A new container starts on host2: its agent fails over to api2.
    lab.sh_ok("host2", "tartan sandbox add web7");
    let all = wait_workloads(&lab, 7);
    let web7 = &all["web7"];
    assert!(web7.v4.is_some() && web7.v6.is_some(), "{web7:?}");
    let taken: Vec<_> = wls.values().filter_map(|w| w.v4.clone()).collect();
    assert!(!taken.contains(web7.v4.as_ref().expect("v4")), "web7 got an address in use");
    lab.wait_for("every host's routes", CONVERGE, || fabric_routes(&lab, &HOSTS));
    let target = wls["web1"].v4.clone().unwrap_or_default();
    lab.wait_for("web7 reaches web1", Duration::from_secs(20), || ping(&lab, web7, &target));

    let footprint = lab.footprint();
    lab.destroy();
    footprint.assert_gone();
}
