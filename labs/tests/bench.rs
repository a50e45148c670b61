//! The benchmark still runs end to end (a tiny one: it measures nothing worth keeping, and its
//! times are never asserted): labs come up, routes flow through each target to the monitor,
//! the table is printed, and every lab is gone afterwards.

use std::process::Command;

use tartan_labs::harness::{lab_tests_enabled, tartanlab_bin};

/// Whether a network namespace whose name contains `part` exists.
fn namespace_left(part: &str) -> bool {
    let list = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    String::from_utf8_lossy(&list.stdout).contains(part)
}

#[test]
fn a_tiny_bgp_benchmark_runs_for_tartan_and_bird() {
    if !lab_tests_enabled() {
        return;
    }
    let out = Command::new(tartanlab_bin())
        .args([
            "bench",
            "bgp",
            "--peers",
            "2",
            "--prefixes",
            "300",
            "--targets",
            "tartan,bird",
            "--timeout",
            "60",
            "--json",
        ])
        .output()
        .expect("tartanlab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let json_start = stdout.find('[').expect("JSON results");
    let results: serde_json::Value =
        serde_json::from_str(&stdout[json_start..]).expect("valid JSON");
    for r in results.as_array().expect("a list") {
        assert_eq!(r["routes"], 600, "{r}");
        assert!(r["seconds"].is_number(), "{r}");
        assert_eq!(r["session_drops"], 0, "{r}");
        assert!(r["peak_rss_bytes"].as_u64().is_some_and(|b| b > 0), "{r}");
    }
    assert!(stdout.contains("TIME VS BIRD"), "{stdout}");
    // Its own labs only: another bench test's lab may be up at the same time.
    for lab in ["clab-bench-tartan-", "clab-bench-bird-"] {
        assert!(!namespace_left(lab), "a bench lab ({lab}*) was left behind");
    }
}

#[test]
fn a_tiny_routes_benchmark_runs_and_leaves_no_namespace() {
    if !lab_tests_enabled() {
        return;
    }
    let out = Command::new(tartanlab_bin())
        .args(["bench", "routes", "--routes", "300", "--runs", "1", "--json"])
        .output()
        .expect("tartanlab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("tartan programmer (no-op resync)") && stdout.contains("\"routes\": 300"),
        "{stdout}"
    );
    assert!(!namespace_left("bench-routes"), "namespaces left behind");
}

#[test]
fn tiny_cni_and_burst_benchmarks_run_on_their_own_labs() {
    if !lab_tests_enabled() {
        return;
    }
    for args in [
        &["bench", "cni", "--count", "3", "--json"][..],
        &["bench", "burst", "--containers", "5", "--parallel", "2", "--json"][..],
    ] {
        let out = Command::new(tartanlab_bin()).args(args).output().expect("tartanlab runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("\"samples\": 3") || stdout.contains("\"containers\": 5"),
            "{stdout}"
        );
    }
    assert!(!namespace_left("clab-fabric-bench"), "namespaces left behind");
}

/// The BFD bench's CPU scene with its BGP load, tiny: every session comes up, none flaps, and
/// the lab is gone afterwards. (Its failover scene is what `labs/tests/bfd.rs` checks.)
#[test]
fn a_tiny_bfd_benchmark_runs_its_sessions_and_load() {
    if !lab_tests_enabled() {
        return;
    }
    let out = Command::new(tartanlab_bin())
        .args(["bench", "bfd", "--timers", "", "--cpu", "tartan", "--sessions", "5"])
        .args(["--cpu-seconds", "2", "--load-prefixes", "1000", "--load-seconds", "2", "--json"])
        .output()
        .expect("tartanlab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let json_start = stdout.find('{').expect("JSON results");
    let results: serde_json::Value =
        serde_json::from_str(&stdout[json_start..]).expect("valid JSON");
    let cpu = &results["cpu"][0];
    assert_eq!(cpu["target"], "tartan", "{results}");
    assert_eq!(cpu["up_at_end"], 5, "{results}");
    assert!(cpu["cpu_percent"].is_number(), "{results}");
    assert!(cpu["load"]["rounds"].as_u64().is_some_and(|r| r >= 1), "{results}");
    assert_eq!(cpu["load"]["bfd_flaps"], 0, "{results}");
    assert!(!namespace_left("clab-bench-bfd"), "a bench lab was left behind");
}
