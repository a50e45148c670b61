//! Lab test of `containerlab/podman.clab.yml`: a real container runtime on Tartan hosts.
//! Podman 4.3 (Debian's, with its CNI backend, runc, cgroupfs, vfs storage) runs inside each
//! host, in the host's own namespaces, and attaches containers to the `tartan` network that
//! `tartan node` installed. A podman container on host1 pings one on host2 and a `tartan
//! sandbox` container over the fabric, in both families; the host routes to it over its veth;
//! `podman rm` takes the route away and frees the address; and destroy leaves nothing of
//! podman's on the machine (storage, CNI cache, network namespaces, cgroups).

mod fabric;

use std::path::Path;
use std::time::Duration;

use fabric::*;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const TOPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/podman.clab.yml");
const HOSTS: [&str; 2] = ["host1", "host2"];

/// Where podman and libcni write when they run on the machine itself: none of it may appear
/// because a lab ran podman.
const MACHINE_DIRS: [&str; 5] =
    ["/var/lib/containers", "/var/lib/cni", "/run/containers", "/run/libpod", "/etc/cni/net.d"];

/// What of podman's is on the machine: the contents of [`MACHINE_DIRS`], podman's network
/// namespaces (`netns-…`; other labs' come and go) and the cgroups its cgroupfs manager makes.
fn podman_traces() -> Vec<String> {
    let list = |dir: &Path| -> Option<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Some(names)
    };
    let mut out: Vec<String> =
        MACHINE_DIRS.iter().map(|d| format!("{d}: {:?}", list(Path::new(d)))).collect();
    let netns = list(Path::new("/run/netns")).unwrap_or_default();
    out.extend(netns.into_iter().filter(|n| n.starts_with("netns-")).map(|n| format!("netns {n}")));
    for hierarchy in list(Path::new("/sys/fs/cgroup")).unwrap_or_default() {
        let parent = Path::new("/sys/fs/cgroup").join(hierarchy).join("libpod_parent");
        if parent.exists() {
            out.push(format!("cgroup {}", parent.display()));
        }
    }
    out
}

fn require_podman() {
    let missing: Vec<&str> = ["/usr/bin/podman", "/usr/sbin/runc", "/bin/busybox"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the podman lab test needs {}: apt-get install -y podman runc busybox-static \
         (scripts/test.sh and .ci/run install them)",
        missing.join(", ")
    );
}

/// A podman container's ID (the CNI container ID), by its name.
fn podman_id(lab: &TestLab, host: &str, name: &str) -> String {
    lab.sh_ok(host, &format!("podman inspect -f '{{{{.Id}}}}' {name}")).trim().to_string()
}

fn podman_ping(lab: &TestLab, host: &str, name: &str, to: &str) -> Result<(), String> {
    let out = lab.exec(host, &["podman", "exec", name, "ping", "-c1", "-W2", to]);
    if out.success() {
        Ok(())
    } else {
        Err(format!("{name} -> {to}: {} {}{}", out.summary(), out.stdout, out.stderr))
    }
}

#[test]
fn podman_containers_on_the_tartan_network_reach_each_other_across_hosts() {
    if !lab_tests_enabled() {
        return;
    }
    require_podman();
    let before = podman_traces();
    let lab = TestLab::deploy(TOPO);

    lab.wait_for("both hosts' sessions Established", CONVERGE, || {
        sessions_established(&lab, &HOSTS, 2)
    });
    for (host, name) in [("host1", "p1"), ("host2", "p2")] {
        lab.sh_ok(
            host,
            &format!("podman run -d --name {name} --network tartan localhost/bbox sleep 600"),
        );
    }
    let (p1_id, p2_id) = (podman_id(&lab, "host1", "p1"), podman_id(&lab, "host2", "p2"));
    // The plugin's endpoints carry podman's container IDs.
    let wls = lab.wait_for("p1, p2 and sb2 recorded", CONVERGE, || {
        let w = workloads(&lab)?;
        let all = [&p1_id, &p2_id, &"sb2".to_string()]
            .iter()
            .all(|id| w.get(*id).is_some_and(|w| w.v4.is_some() && w.v6.is_some()));
        if all && w.len() == 3 { Ok(w) } else { Err(format!("{w:?}")) }
    });
    let (p1, p2, sb2) = (wls[&p1_id].clone(), wls[&p2_id].clone(), wls["sb2"].clone());
    assert_eq!((p1.host.as_str(), p2.host.as_str()), ("host1", "host2"), "{wls:?}");

    // Podman reports the addresses the plugin gave.
    let inspect = lab.sh_ok(
        "host2",
        "podman inspect -f '{{.NetworkSettings.Networks.tartan.IPAddress}} \
         {{.NetworkSettings.Networks.tartan.GlobalIPv6Address}}' p2",
    );
    assert_eq!(
        inspect.split_whitespace().collect::<Vec<_>>(),
        [p2.v4.as_deref().unwrap_or_default(), p2.v6.as_deref().unwrap_or_default()],
        "{inspect}"
    );
    lab.wait_for("both hosts' routes", CONVERGE, || fabric_routes(&lab, &HOSTS));

    // Podman to podman and podman to `tartan sandbox`, across hosts, both families; and back.
    for to in [&p2, &sb2] {
        for addr in [&to.v4, &to.v6].into_iter().flatten() {
            lab.wait_for(
                &format!("p1 pings {} at {addr}", to.name),
                Duration::from_secs(10),
                || podman_ping(&lab, "host1", "p1", addr),
            );
        }
    }
    for addr in [&p1.v4, &p1.v6].into_iter().flatten() {
        lab.wait_for(&format!("sb2 pings p1 at {addr}"), Duration::from_secs(10), || {
            ping(&lab, &sb2, addr)
        });
    }

    // TCP from podman to podman across hosts: 1 MB from p1's network namespace into p2's
    // (socat entered into the namespaces podman made: busybox's nc drops the tail when it
    // closes early, which says nothing about the fabric).
    let p2_v4 = p2.v4.clone().unwrap_or_default();
    let sandbox = |host: &str, name: &str| {
        lab.sh_ok(host, &format!("podman inspect -f '{{{{.NetworkSettings.SandboxKey}}}}' {name}"))
            .trim()
            .to_string()
    };
    let (ns1, ns2) = (sandbox("host1", "p1"), sandbox("host2", "p2"));
    lab.sh_ok(
        "host2",
        &format!("nsenter --net={ns2} timeout 20 socat -u TCP4-LISTEN:5001,reuseaddr OPEN:/tmp/rx,creat,trunc >/dev/null 2>&1 &"),
    );
    lab.wait_for("a TCP transfer p1 -> p2", Duration::from_secs(15), || {
        let out = lab.sh(
            "host1",
            &format!(
                "head -c 1000000 /dev/zero | nsenter --net={ns1} socat -u - TCP4:{p2_v4}:5001"
            ),
        );
        if out.success() { Ok(()) } else { Err(out.stderr) }
    });
    lab.wait_for("all the bytes at p2", Duration::from_secs(10), || {
        let n = lab.sh("host2", "stat -c %s /tmp/rx").stdout.trim().to_string();
        if n == "1000000" { Ok(()) } else { Err(n) }
    });

    // host1 routes p1's /32 over its veth.
    let p1_v4 = p1.v4.clone().unwrap_or_default();
    let r = routes(&lab, "host1").expect("routes");
    assert!(
        has_route(&r, &p1_v4, |r| r["dev"].as_str().is_some_and(|d| d.starts_with("tart"))),
        "{r:?}"
    );
    let netns = lab.sh_ok("host1", "ls /run/netns");
    assert!(netns.contains("netns-"), "podman's namespace is the host's own: {netns}");

    // `podman rm` runs the plugin's DEL: route gone, address free, endpoint gone.
    lab.sh_ok("host1", "podman rm -f -t 0 p1");
    lab.wait_for("p1's route gone", Duration::from_secs(10), || {
        let r = routes(&lab, "host1")?;
        if has_route(&r, &p1_v4, |r| r["dev"].is_string() && r["type"] != "blackhole") {
            Err(format!("{r:?}"))
        } else {
            Ok(())
        }
    });
    for addr in [&p1.v4, &p1.v6].into_iter().flatten() {
        let freed = lab.sh_ok("host1", &format!("tartanctl ipam show --ip {addr}"));
        assert!(freed.contains("not assigned"), "{freed}");
    }
    assert!(!workloads(&lab).expect("workloads").contains_key(&p1_id));
    let netns = lab.sh_ok("host1", "ls /run/netns");
    assert!(!netns.contains("netns-"), "podman removed its namespace: {netns}");

    eprintln!("podman: p1 ({p1_v4}) reached p2 and sb2 across hosts, and was removed");
    // p2 still runs: destroy takes it down with its host, cgroups and all.
    let footprint = lab.footprint();
    assert!(!footprint.cgroups.is_empty(), "the nodes have cgroup branches");
    lab.destroy();
    footprint.assert_gone();
    assert_eq!(podman_traces(), before, "podman left something on the machine");
}
