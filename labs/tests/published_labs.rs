//! Labs written in containerlab's published style, with the quirks real ones have (written for
//! this repo, not copied): frr01's `daemons` file (`--daemon` in every `*_options`, `bgpd=no`),
//! a BIRD route server from the srl-labs image that reads `/etc/bird.conf`, exec by label as
//! frr01's README does, and destroy keeping a lab directory that was there before.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tartan_labs::harness::{TestLab, lab_tests_enabled};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/topologies/published");
const TARTANLAB: &str = env!("CARGO_BIN_EXE_tartanlab");
const CONVERGE: Duration = Duration::from_secs(60);

#[test]
fn frr01_style_daemons_files_run_ospf_in_the_foreground_and_exec_by_label() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(format!("{DIR}/frr01.clab.yml"));
    // Every router's OSPF reaches Full with its two neighbours; PC1 reaches PC2 across it.
    for r in ["router1", "router2", "router3"] {
        lab.wait_for(&format!("{r}'s OSPF neighbours Full"), CONVERGE, || {
            let out = lab.sh(r, "vtysh -c 'show ip ospf neighbor json'").stdout;
            let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
            // FRR 8: {"neighbors": {"10.10.10.2": [{"state": "Full/DR", ...}]}}.
            let full = v["neighbors"]
                .as_object()
                .into_iter()
                .flat_map(|n| n.values())
                .filter_map(Value::as_array)
                .flatten()
                .filter(|x| {
                    ["state", "nbrState", "converged"]
                        .iter()
                        .any(|k| x[*k].as_str().is_some_and(|s| s.starts_with("Full")))
                })
                .count();
            if full == 2 { Ok(()) } else { Err(out) }
        });
    }
    lab.wait_for("PC1 pings PC2 over OSPF", CONVERGE, || {
        let out = lab.sh("PC1", "ping -c1 -W1 192.168.13.2");
        if out.success() { Ok(()) } else { Err(out.stdout) }
    });
    // bgpd=no is honoured; zebra runs in the foreground (its --daemon was dropped, and said).
    let procs = lab.sh_ok("router1", "ps -eo args");
    assert!(!procs.contains("bgpd"), "{procs}");
    assert!(procs.contains("/usr/lib/frr/zebra -s 90000000 -A 127.0.0.1"), "{procs}");

    // containerlab's exec: by label, several commands, JSON keyed by container name.
    let name = lab.name().to_string();
    let out = Command::new(TARTANLAB)
        .args([
            "exec",
            "--name",
            &name,
            "--label",
            "clab-node-name=router2",
            "--cmd",
            "hostname",
            "-f",
            "json",
        ])
        .output()
        .expect("tartanlab exec");
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let router2 = &v[format!("clab-{name}-router2")];
    assert_eq!(router2[0]["return-code"], 0, "{v}");
    assert_eq!(router2[0]["stdout"].as_str().map(str::trim), Some("router2"));
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    let out = Command::new(TARTANLAB)
        .args(["exec", "--name", &name, "--label", "clab-node-kind=linux", "--cmd", "true"])
        .output()
        .expect("tartanlab exec");
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout).matches(&format!("--- clab-{name}-")).count();
    assert_eq!(shown, 5, "{out:?}");
}

#[test]
fn a_route_server_from_the_srl_labs_bird_image_loads_etc_bird_conf() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(format!("{DIR}/ixp.clab.yml"));
    // The route server runs the bound /etc/bird.conf: both members' sessions come up and each
    // hears the other's prefix through it.
    for (member, other) in [("member1", "203.0.113.2/32"), ("member2", "203.0.113.1/32")] {
        lab.wait_for(&format!("{member} learns {other} from the route server"), CONVERGE, || {
            let out = lab.sh(member, "vtysh -c 'show ip bgp json'").stdout;
            let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
            if v["routes"].get(other).is_some() { Ok(()) } else { Err(out) }
        });
    }
    let conf = lab.sh_ok("rs", "ps -eo args");
    assert!(conf.contains("-c /etc/bird.conf"), "{conf}");
}

#[test]
fn a_bridge_node_is_one_segment_for_the_route_server_and_its_members() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = TestLab::deploy(format!("{DIR}/ixp-bridge.clab.yml"));
    for (member, other) in [("member1", "203.0.113.2/32"), ("member2", "203.0.113.1/32")] {
        lab.wait_for(&format!("{member} learns {other} from the route server"), CONVERGE, || {
            let out = lab.sh(member, "vtysh -c 'show ip bgp json'").stdout;
            let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
            if v["routes"].get(other).is_some() { Ok(()) } else { Err(out) }
        });
    }
    // One L2 segment: the members reach each other directly, not through the route server.
    lab.sh_ok("member1", "ping -c1 -W2 192.0.2.2");
    // The bridge and its three ports are in the lab's private namespace, not the machine's.
    let ns = format!("tartanlab-{}", lab.name());
    let out = Command::new("ip")
        .args(["-n", &ns, "-j", "link", "show", "master", "ixp-net"])
        .output()
        .expect("ip");
    let ports: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(ports.as_array().map(Vec::len), Some(3), "{ports}");
    let root = Command::new("ip").args(["link", "show", "ixp-net"]).output().expect("ip");
    assert!(!root.status.success(), "a bridge appeared in the machine's own namespace");
}

/// A topology file in a directory of its own, removed (with whatever a failed test left) on drop.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let file = self.0.join("t.clab.yml");
        let _ = Command::new(TARTANLAB).args(["destroy", "--cleanup", "-t"]).arg(&file).output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_node_that_exits_at_once_is_said_and_a_lab_directory_that_was_there_is_kept() {
    if !lab_tests_enabled() {
        return;
    }
    let lab = format!("quit{}", std::process::id() % 100_000);
    let scratch = Scratch(std::env::temp_dir().join(format!("tartanlab-{lab}")));
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).expect("scratch dir");
    let file = scratch.0.join("t.clab.yml");
    std::fs::write(
        &file,
        format!("name: {lab}\ntopology:\n  nodes:\n    a: {{kind: linux, image: alpine, cmd: \"sh -c 'echo boom >&2; exit 3'\"}}\n"),
    )
    .expect("topology");
    // The lab directory exists before the lab, holding the user's notes.
    let lab_dir = scratch.0.join(format!("clab-{lab}"));
    std::fs::create_dir_all(&lab_dir).expect("lab dir");
    std::fs::write(lab_dir.join("notes.txt"), "mine").expect("notes");
    let run = |args: &[&str]| {
        let out = Command::new(TARTANLAB).args(args).arg("-t").arg(&file).output().expect("run");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run(&["deploy"]);
    assert!(ok, "{text}");
    assert!(text.contains("ended at once") && text.contains("boom"), "{text}");
    let (ok, text) = run(&["destroy"]);
    assert!(ok && text.contains("kept the lab directory"), "{text}");
    assert!(lab_dir.join("notes.txt").exists(), "the user's directory was removed");
    // --strict-exec makes it a failed deploy (rolled back); --cleanup removes the directory.
    let (ok, text) = run(&["deploy", "--strict-exec"]);
    assert!(!ok && text.contains("ended at once"), "{text}");
    let (ok, text) = run(&["destroy", "--cleanup"]);
    assert!(ok, "{text}");
    assert!(!lab_dir.exists(), "--cleanup leaves {}", lab_dir.display());
}
