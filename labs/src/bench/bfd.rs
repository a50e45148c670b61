//! `tartanlab bench bfd`: failover with BFD, Tartan beside FRR 8.4 and BIRD 2.0.12 in the
//! same run, and the CPU cost of 100 sessions.
//!
//! **Failover**, for each timer setting (all three daemons at the same `T ms x 3`), on
//! `containerlab/bfd.clab.yml`: two Tartan hosts dual-homed to an FRR leaf and a BIRD leaf.
//! - The leaf carrying the flow goes silent (nft drops everything in it, links up) during a
//!   1000 pps flow each way between containers on the two hosts: Tartan's **outage** is the longest gap in
//!   either flow (RFC 6412's loss-derived time), and **silence to kernel** the time from the
//!   nft command to host1's kernel forwarding without the leaf (`ip -ts monitor`).
//! - host2 goes silent: the leaves detect it, FRR and BIRD each take its routes out of their
//!   kernel; the same **silence to kernel** for each, from their own `ip -ts monitor`.
//! - Tartan's **detection to kernel** (BFD's verdict to the nexthop group replaced) from the
//!   agent's log.
//!
//! **CPU**: the target (Tartan's `tartan bgp` with 100 neighbors running BFD only, BIRD's
//! `protocol bfd`, FRR's bfdd) against one BIRD with 100 sessions, each session its own pair of
//! addresses on one link, at 100 ms x 3; the target's user + system CPU over a window once
//! every session is Up, and the sessions still Up at its end.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::lab::BenchLab;
use super::{cpu_seconds, io};
use crate::error::{LabError, Result};
use crate::supervisor::Status;

const LAB: &str = include_str!("../../../containerlab/bfd.clab.yml");
const RESOURCES: &str = include_str!("../../../containerlab/bfd/resources.yaml");
const LEAF_A_DAEMONS: &str = include_str!("../../../containerlab/bfd/leaf-a/daemons");
const LEAF_A_FRR: &str = include_str!("../../../containerlab/bfd/leaf-a/frr.conf");
const LEAF_B_BIRD: &str = include_str!("../../../containerlab/bfd/leaf-b/bird.conf");

const SILENCE: &str = "nft -f - <<'EOF'\ntable inet silent {\n  chain pre { type filter hook prerouting priority -400; policy drop; }\n  chain out { type filter hook output priority -400; policy drop; }\n}\nEOF";
const UNSILENCE: &str = "nft delete table inet silent";

#[derive(Debug, Clone)]
pub struct BfdBenchOptions {
    pub tartanlab: PathBuf,
    pub work_dir: PathBuf,
    /// Timer settings for the failover runs, in milliseconds (each `T x 3`).
    pub timers: Vec<u32>,
    /// Sessions for the CPU run.
    pub sessions: usize,
    /// The CPU window.
    pub cpu_seconds: u64,
    /// Daemons for the CPU runs (tartan, bird, frr).
    pub cpu_targets: Vec<String>,
    /// After Tartan's CPU window: prefixes a BIRD peer announces and withdraws again and
    /// again over BGP to the same process, while its BFD sessions must stay Up (0: none).
    pub load_prefixes: usize,
    pub load_seconds: u64,
    pub keep_files: bool,
}

/// One timer setting's failover figures, in milliseconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Failover {
    pub timer_ms: u32,
    /// The longest gap in a 1000 pps flow through the leaf that went silent (Tartan hosts).
    pub tartan_outage_ms: Option<u64>,
    /// From the leaf's silence to host1's kernel without it.
    pub tartan_to_kernel_ms: Option<f64>,
    /// From BFD's verdict to the nexthop group replaced (the agent's own measure).
    pub tartan_detection_to_kernel_ms: Option<f64>,
    /// From host2's silence to the FRR leaf's kernel without its routes.
    pub frr_to_kernel_ms: Option<f64>,
    /// The same, for the BIRD leaf.
    pub bird_to_kernel_ms: Option<f64>,
    pub note: Option<String>,
}

/// One daemon's CPU for the sessions.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Cpu {
    pub target: String,
    pub sessions: usize,
    /// Sessions Up when the window closed (the counterpart's view).
    pub up_at_end: usize,
    /// Percent of one core.
    pub cpu_percent: Option<f64>,
    /// Tartan only: the BGP load run beside BFD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<Load>,
    pub note: Option<String>,
}

/// BFD while the same process takes a BGP table again and again.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Load {
    pub prefixes: usize,
    pub seconds: f64,
    /// Full announcements (and withdrawals) taken in the window.
    pub rounds: u32,
    /// Times any BFD session left Up during it (Tartan's count), and the sessions the BIRD
    /// peer did not see Up at its end.
    pub bfd_flaps: u64,
    pub peer_not_up: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BfdOutcome {
    pub failover: Vec<Failover>,
    pub cpu: Vec<Cpu>,
}

pub fn run(o: &BfdBenchOptions) -> Result<BfdOutcome> {
    if o.timers.iter().any(|t| !(10..=60_000).contains(t)) {
        return Err(LabError::Usage { message: "--timers are 10 to 60000 ms".into() });
    }
    if let Some(t) = o.cpu_targets.iter().find(|t| !["tartan", "bird", "frr"].contains(&t.as_str()))
    {
        return Err(LabError::Usage { message: format!("--cpu `{t}`: use tartan, bird or frr") });
    }
    if !(1..=250).contains(&o.sessions) {
        return Err(LabError::Usage { message: "--sessions is 1 to 250".into() });
    }
    let mut out = BfdOutcome::default();
    for t in &o.timers {
        eprintln!("bench: failover at {t} ms x 3");
        let f = failover(o, *t).unwrap_or_else(|e| Failover {
            timer_ms: *t,
            note: Some(e.to_string()),
            ..Default::default()
        });
        out.failover.push(f);
    }
    for target in o.cpu_targets.iter().map(String::as_str) {
        eprintln!("bench: CPU of {target} for {} sessions at 100 ms x 3", o.sessions);
        let c = cpu(o, target).unwrap_or_else(|e| Cpu {
            target: target.into(),
            sessions: o.sessions,
            note: Some(e.to_string()),
            ..Default::default()
        });
        out.cpu.push(c);
    }
    Ok(out)
}

fn fail(message: impl Into<String>) -> LabError {
    LabError::Usage { message: message.into() }
}

/// Runs a shell script in a node of a bench lab (a minute at most).
fn sh(lab: &BenchLab, node: &str, script: &str) -> Result<String> {
    lab.sh(node, script, Duration::from_secs(60))
}

/// Polls `check` until it holds or `secs` pass; a failing check is a "not yet" (a daemon
/// still starting, a report not written).
fn wait(
    lab: &BenchLab,
    what: &str,
    secs: u64,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    lab.wait(what, Duration::from_secs(secs), || Ok(check().unwrap_or(false)))
}

/// The BFD lab with every daemon at `t` ms x 3.
fn write_failover_lab(dir: &Path, t: u32) -> Result<PathBuf> {
    let write = |name: &str, text: &str| -> Result<()> {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating the bench directory"))?;
        }
        std::fs::write(path, text).map_err(io("writing a bench file"))
    };
    let lab = LAB.replace("name: bfd\n", &format!("name: bench-bfd-{t}\n"));
    write("bfd.clab.yml", &lab)?;
    write("bfd/resources.yaml", &RESOURCES.replace("100ms", &format!("{t}ms")))?;
    write("bfd/leaf-a/daemons", LEAF_A_DAEMONS)?;
    let frr = LEAF_A_FRR
        .replace("receive-interval 100", &format!("receive-interval {t}"))
        .replace("transmit-interval 100", &format!("transmit-interval {t}"));
    write("bfd/leaf-a/frr.conf", &frr)?;
    write("bfd/leaf-b/bird.conf", &LEAF_B_BIRD.replace("100 ms", &format!("{t} ms")))?;
    Ok(dir.join("bfd.clab.yml"))
}

/// Seconds since midnight of an `ip -ts` or `date +%H:%M:%S.%N` time (`...T22:19:47.550702`).
fn seconds_of_day(text: &str) -> Option<f64> {
    let t = text.rsplit(['T', ' ', '[']).next()?.trim_end_matches(']');
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Milliseconds from `start` to the first line of an `ip -ts monitor` log that `matches`.
fn first_change_ms(log: &str, start: f64, matches: impl Fn(&str) -> bool) -> Option<f64> {
    log.lines()
        .filter(|l| l.starts_with('[') && matches(l))
        .filter_map(|l| seconds_of_day(l.split(']').next()?))
        .map(|at| {
            let d = at - start;
            if d < -43_200.0 { d + 86_400.0 } else { d }
        })
        .find(|d| *d >= 0.0)
        .map(|d| d * 1000.0)
}

/// `now` in `node`, in `ip -ts`'s clock and format.
const NOW: &str = "date +%H:%M:%S.%N";

fn failover(o: &BfdBenchOptions, t: u32) -> Result<Failover> {
    let dir = o.work_dir.join(format!("bfd-{t}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let topo = write_failover_lab(&dir, t)?;
    let mut lab = BenchLab::deploy(&o.tartanlab, &dir, &topo)?;
    lab.keep = o.keep_files;
    let result = failover_in(&lab, t);
    if result.is_err() {
        lab.keep = true;
    }
    result
}

fn node_status(lab: &BenchLab) -> Result<serde_json::Value> {
    let out = sh(lab, "apiserver", "tartanctl get nodestatus -o json")?;
    serde_json::from_str(&out).map_err(|e| fail(format!("nodestatus: {e}")))
}

/// Every host's two sessions Established with BFD up at `t`.
fn all_up(lab: &BenchLab, t: u32) -> Result<bool> {
    let v = node_status(lab)?;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let good = |p: &serde_json::Value| {
        p["state"] == "Established"
            && p["bfd"]["state"] == "up"
            && p["bfd"]["transmitIntervalMs"] == t
    };
    let hosts_ok = items
        .iter()
        .filter(|i| {
            i["spec"]["peers"].as_array().is_some_and(|ps| ps.len() == 2 && ps.iter().all(good))
        })
        .count();
    Ok(hosts_ok == 2)
}

fn failover_in(lab: &BenchLab, t: u32) -> Result<Failover> {
    let mut f = Failover { timer_ms: t, ..Default::default() };
    wait(lab, "both hosts' sessions and BFD up", 120, || all_up(lab, t))?;
    let wls = sh(lab, "apiserver", "tartanctl get workloadendpoints -o json")?;
    let wls: serde_json::Value = serde_json::from_str(&wls).map_err(|e| fail(e.to_string()))?;
    let addr_of = |c: &str| -> Option<String> {
        wls["items"].as_array()?.iter().find(|i| i["spec"]["containerID"] == c).and_then(|i| {
            i["spec"]["ipNetworks"].as_array()?.iter().find_map(|n| {
                n.as_str()
                    .filter(|s| !s.contains(':'))
                    .and_then(|s| s.split('/').next())
                    .map(String::from)
            })
        })
    };
    let (c1, c2) = match (addr_of("c1"), addr_of("c2")) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(fail("the containers have no IPv4 addresses")),
    };
    // Both hosts' routes to each other over both leaves.
    wait(lab, "ECMP over both leaves", 60, || {
        let r = sh(lab, "host1", &format!("ip -j route get {c2}"))?;
        let g = sh(lab, "host1", "ip -j nexthop show")?;
        Ok(!r.is_empty() && g.contains("group"))
    })?;
    for node in ["host1", "leaf-a", "leaf-b"] {
        sh(lab, node, "sh -c 'exec ip -ts monitor route nexthop' >/tmp/bench-mon.log 2>&1 &")?;
    }

    // 1. The leaf that carries c1 -> c2 goes silent under 1000 pps each way (the flows keep
    // their ports, so their paths, from the burst to the end).
    let rx = |leaf: &str| -> u64 {
        let v = sh(lab, leaf, "ip -j -s link show").unwrap_or_default();
        host_links_rx(&serde_json::from_str(&v).unwrap_or_default())
    };
    let before = [rx("leaf-a"), rx("leaf-b")];
    sh(
        lab,
        "host2",
        "tartan sandbox exec c2 -- tartanlab probe recv --port 9001 --idle 1 >/dev/null 2>&1 &",
    )?;
    std::thread::sleep(Duration::from_millis(300));
    sh(
        lab,
        "host1",
        &format!(
            "tartan sandbox exec c1 -- tartanlab probe send --to {c2}:9001 --pps 1000 --count 500"
        ),
    )?;
    let after = [rx("leaf-a"), rx("leaf-b")];
    let (leaf, leaf_addr) = if after[0] - before[0] >= after[1] - before[1] {
        ("leaf-a", "10.1.1.1")
    } else {
        ("leaf-b", "10.2.1.1")
    };
    for (host, c, port) in [("host2", "c2", 9000), ("host1", "c1", 9000)] {
        sh(
            lab,
            host,
            &format!(
                "tartan sandbox exec {c} -- tartanlab probe recv --port {port} --idle 2 >/tmp/flow.json 2>&1 &"
            ),
        )?;
    }
    std::thread::sleep(Duration::from_millis(300));
    for (host, c, to) in [("host1", "c1", &c2), ("host2", "c2", &c1)] {
        sh(
            lab,
            host,
            &format!(
                "tartan sandbox exec {c} -- tartanlab probe send --to {to}:9000 --pps 1000 --count 6000 >/dev/null 2>&1 &"
            ),
        )?;
    }
    std::thread::sleep(Duration::from_secs(2));
    let start = sh(lab, leaf, &format!("{NOW}; {SILENCE}"))?;
    let start = seconds_of_day(start.trim()).ok_or_else(|| fail("no start time"))?;
    std::thread::sleep(Duration::from_secs(5));
    let mut gaps = Vec::new();
    for host in ["host2", "host1"] {
        wait(lab, "the flows' reports", 30, || {
            Ok(sh(lab, host, "cat /tmp/flow.json")?.contains("longest_gap"))
        })?;
        let r: serde_json::Value =
            serde_json::from_str(sh(lab, host, "cat /tmp/flow.json")?.trim())
                .map_err(|e| fail(e.to_string()))?;
        gaps.push(r["longest_gap"].as_u64().unwrap_or(u64::MAX));
    }
    f.tartan_outage_ms = gaps.iter().copied().max();
    let mon = sh(lab, "host1", "cat /tmp/bench-mon.log")?;
    f.tartan_to_kernel_ms =
        first_change_ms(&mon, start, |l| l.contains(" group ") || l.contains("Deleted"));
    let log =
        std::fs::read_to_string(lab.state.lab_dir.join("host1/tartan.log")).unwrap_or_default();
    f.tartan_detection_to_kernel_ms = log
        .lines()
        .rev()
        .find(|l| l.contains("nexthop group(s)") && l.contains(leaf_addr))
        .and_then(|l| l.split(" ms after detection").next()?.rsplit(' ').next()?.parse().ok());
    sh(lab, leaf, UNSILENCE)?;
    f.note = Some(format!("{leaf} silent"));
    wait(lab, "everything up again", 120, || all_up(lab, t))?;

    // 2. host2 goes silent: the leaves withdraw it.
    let block = {
        let r = sh(lab, "leaf-a", "ip -j route show proto bgp")?;
        let v: serde_json::Value = serde_json::from_str(&r).map_err(|e| fail(e.to_string()))?;
        v.as_array()
            .and_then(|a| a.iter().find(|r| r.to_string().contains("10.1.2.2")))
            .and_then(|r| r["dst"].as_str().map(String::from))
            .ok_or_else(|| fail("leaf-a has no route via host2"))?
    };
    let start = sh(lab, "host2", &format!("{NOW}; {SILENCE}"))?;
    let start = seconds_of_day(start.trim()).ok_or_else(|| fail("no start time"))?;
    std::thread::sleep(Duration::from_secs(3).max(Duration::from_millis(u64::from(t) * 8)));
    let deleted = |l: &str| l.contains("Deleted") && l.contains(block.as_str());
    f.frr_to_kernel_ms =
        first_change_ms(&sh(lab, "leaf-a", "cat /tmp/bench-mon.log")?, start, deleted);
    f.bird_to_kernel_ms =
        first_change_ms(&sh(lab, "leaf-b", "cat /tmp/bench-mon.log")?, start, deleted);
    sh(lab, "host2", UNSILENCE)?;
    Ok(f)
}

/// Packets received on a leaf's host-facing links (`eth1`, `eth2`) in `ip -j -s link show`.
pub fn host_links_rx(links: &serde_json::Value) -> u64 {
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] == "eth1" || l["ifname"] == "eth2")
        .filter_map(|l| l["stats64"]["rx"]["packets"].as_u64())
        .sum()
}

/// The CPU lab: `target` and a BIRD `peer` joined by `n` links, a session on each (as the
/// measurements in the reference were made: BIRD's BFD sends from an interface's first
/// address, so sessions cannot share a link).
fn write_cpu_lab(dir: &Path, target: &str, n: usize, load: usize) -> Result<PathBuf> {
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(io("writing a bench file"))
    };
    std::fs::create_dir_all(dir).map_err(io("creating the bench directory"))?;
    let bind = format!("{}:/bench", dir.display());
    let at = |i: usize, host: usize| format!("10.{}.{}.{}", 210 + i / 64, (i % 64) * 4, host);
    let ours = |i: usize| at(i, 1);
    let theirs = |i: usize| at(i, 2);
    let (image, daemon) = match target {
        "tartan" => (
            "ghcr.io/tartan-fabric/tartan:dev",
            "tartan bgp -c /bench/tartan.toml --socket /bench/tartan.sock --log-level warn",
        ),
        "bird" => ("pierky/bird:2.0.12", "bird -f -c /bench/target.conf -s /bench/target.ctl"),
        _ => (
            "quay.io/frrouting/frr:8.4.4",
            "/usr/lib/frr/bfdd -f /bench/bfdd.conf -A 127.0.0.1 --log stdout",
        ),
    };
    // The daemon starts once the exec lines have put the addresses on the links: FRR's bfdd
    // never retries a source address that was missing when it started.
    let cmd =
        format!("sh -c 'while [ ! -e /bench/addresses-ready ]; do sleep 0.2; done; exec {daemon}'");
    let mut y = format!(
        "# Written by `tartanlab bench bfd`: {target}'s CPU for {n} BFD sessions.\nname: bench-bfd-cpu-{target}\ntopology:\n  defaults:\n    kind: linux\n  nodes:\n    target:\n      image: {image}\n      binds: [\"{bind}\"]\n      cmd: {cmd}\n      exec:\n"
    );
    for i in 0..n {
        let _ = writeln!(y, "        - ip addr add {}/30 dev eth{}", ours(i), i + 1);
    }
    let _ = writeln!(y, "        - touch /bench/addresses-ready");
    let _ = writeln!(
        y,
        "    peer:\n      image: pierky/bird:2.0.12\n      binds: [\"{bind}\"]\n      cmd: bird -f -c /bench/peer.conf -s /bench/peer.ctl\n      exec:"
    );
    for i in 0..n {
        let _ = writeln!(y, "        - ip addr add {}/30 dev eth{}", theirs(i), i + 1);
    }
    y.push_str("  links:\n");
    for i in 1..=n {
        let _ = writeln!(y, "    - endpoints: [\"target:eth{i}\", \"peer:eth{i}\"]");
    }
    write("bench.clab.yml", &y)?;
    let bird_bfd = |local: &dyn Fn(usize) -> String, remote: &dyn Fn(usize) -> String| {
        let mut s = String::from(
            "router id 10.255.0.9;\nprotocol device { scan time 2; }\nprotocol bfd {\n  interface \"eth*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n",
        );
        for i in 0..n {
            let _ = writeln!(s, "  neighbor {} local {};", remote(i), local(i));
        }
        s.push_str("}\n");
        s
    };
    let mut peer = bird_bfd(&theirs, &ours);
    if target == "tartan" && load > 0 {
        // The BGP load: BIRD announces `load` /32s to Tartan's first neighbour address.
        let _ = writeln!(peer, "protocol static injected {{\n  ipv4;\n  disabled;");
        for k in 0..load as u32 {
            let _ = writeln!(
                peer,
                "  route {}/32 blackhole;",
                std::net::Ipv4Addr::from(0x6400_0000 + k)
            );
        }
        let _ = writeln!(
            peer,
            "}}\nprotocol bgp load {{\n  local {} as 65001;\n  neighbor {} as 64512;\n  hold time 9;\n  keepalive time 3;\n  connect retry time 1;\n  ipv4 {{ import none; export all; }};\n}}",
            theirs(0),
            ours(0)
        );
    }
    write("peer.conf", &peer)?;
    match target {
        "tartan" => {
            let mut s = String::from(
                "[global]\nasn = 64512\nrouter-id = \"10.255.0.1\"\nlisten = [\"0.0.0.0:179\"]\n",
            );
            for i in 0..n {
                let _ = writeln!(
                    s,
                    "[[neighbor]]\naddress = \"{}\"\nremote-as = 65001\nlocal-address = \"{}\"\npassive = true\nbfd = {{ min-rx = \"100ms\", min-tx = \"100ms\", multiplier = 3 }}",
                    theirs(i),
                    ours(i)
                );
            }
            write("tartan.toml", &s)?;
        }
        "bird" => write("target.conf", &bird_bfd(&ours, &theirs))?,
        _ => {
            let mut s = String::from("bfd\n");
            for i in 0..n {
                let _ = writeln!(
                    s,
                    " peer {} local-address {}\n  detect-multiplier 3\n  receive-interval 100\n  transmit-interval 100\n !",
                    theirs(i),
                    ours(i)
                );
            }
            s.push_str("!\n");
            write("bfdd.conf", &s)?;
        }
    }
    Ok(dir.join("bench.clab.yml"))
}

fn cpu(o: &BfdBenchOptions, target: &str) -> Result<Cpu> {
    let dir = o.work_dir.join(format!("bfd-cpu-{target}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let topo = write_cpu_lab(&dir, target, o.sessions, o.load_prefixes)?;
    let mut lab = BenchLab::deploy(&o.tartanlab, &dir, &topo)?;
    lab.keep = o.keep_files;
    let result = cpu_in(&lab, o, target);
    if result.is_err() {
        lab.keep = true;
    }
    result
}

fn cpu_in(lab: &BenchLab, o: &BfdBenchOptions, target: &str) -> Result<Cpu> {
    let mut c = Cpu { target: target.into(), sessions: o.sessions, ..Default::default() };
    let up = || -> Result<usize> {
        let out = sh(lab, "peer", "birdc -s /bench/peer.ctl show bfd sessions")?;
        Ok(out.lines().filter(|l| l.split_whitespace().nth(2) == Some("Up")).count())
    };
    wait(lab, "every session Up", 120, || Ok(up()? == o.sessions))?;
    let process = match target {
        "tartan" => "tartan",
        "bird" => "bird",
        _ => "bfdd",
    };
    let status = Status::load(&lab.state).ok_or_else(|| fail("no supervisor status"))?;
    let pid = status
        .nodes
        .get("target")
        .and_then(|n| {
            // The node's command: `sh -c '...; exec DAEMON'`, the same process once it execs.
            n.processes
                .iter()
                .find(|p| p.exit.is_none() && p.argv.iter().any(|a| a.contains(process)))
        })
        .map(|p| p.proc.pid)
        .ok_or_else(|| fail(format!("no {process} process in the target")))?;
    // Settled first: the handshakes run at 1 s, then the Polls move every session to 100 ms.
    std::thread::sleep(Duration::from_secs(3));
    let (before, at) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(o.cpu_seconds));
    let (after, took) = (cpu_seconds(pid), at.elapsed());
    c.cpu_percent = match (before, after) {
        (Some(b), Some(a)) => Some((a - b) / took.as_secs_f64() * 100.0),
        _ => None,
    };
    c.up_at_end = up()?;
    if target == "tartan" && o.load_prefixes > 0 {
        c.load = Some(load(lab, o, &up)?);
    }
    Ok(c)
}

/// Tartan's BFD sessions while the same process takes `load_prefixes` routes from a BIRD peer
/// and loses them again, round after round, for `load_seconds`.
fn load(lab: &BenchLab, o: &BfdBenchOptions, up: &dyn Fn() -> Result<usize>) -> Result<Load> {
    let status = || -> Result<serde_json::Value> {
        let out = sh(lab, "target", "tartan bgp status --json --socket /bench/tartan.sock")?;
        serde_json::from_str(&out).map_err(|e| fail(format!("tartan bgp status: {e}")))
    };
    let flaps = |s: &serde_json::Value| -> u64 {
        s["bfd"].as_array().into_iter().flatten().filter_map(|b| b["flaps"].as_u64()).sum()
    };
    let prefixes = |s: &serde_json::Value| s["rib"]["prefixes_v4"].as_u64().unwrap_or(0) as usize;
    wait(lab, "the BGP load session", 60, || {
        Ok(sh(lab, "peer", "birdc -s /bench/peer.ctl show protocols load")?.contains("Established"))
    })?;
    let flaps_before = flaps(&status()?);
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(o.load_seconds) {
        sh(lab, "peer", "birdc -s /bench/peer.ctl enable injected")?;
        wait(lab, "the load announced", 600, || Ok(prefixes(&status()?) >= o.load_prefixes))?;
        sh(lab, "peer", "birdc -s /bench/peer.ctl disable injected")?;
        wait(lab, "the load withdrawn", 600, || Ok(prefixes(&status()?) < 10))?;
        rounds += 1;
    }
    Ok(Load {
        prefixes: o.load_prefixes,
        seconds: started.elapsed().as_secs_f64(),
        rounds,
        bfd_flaps: flaps(&status()?) - flaps_before,
        peer_not_up: o.sessions.saturating_sub(up()?),
    })
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

pub fn table(r: &BfdOutcome) -> String {
    let mut rows = vec![vec![
        "TIMERS".to_string(),
        "TARTAN OUTAGE".into(),
        "TARTAN SILENCE->KERNEL".into(),
        "TARTAN DETECTION->KERNEL".into(),
        "FRR SILENCE->KERNEL".into(),
        "BIRD SILENCE->KERNEL".into(),
        "NOTE".into(),
    ]];
    for f in &r.failover {
        rows.push(vec![
            format!("{} ms x 3", f.timer_ms),
            f.tartan_outage_ms.map_or_else(|| "-".into(), |v| format!("{v} ms")),
            format!("{} ms", ms(f.tartan_to_kernel_ms)),
            f.tartan_detection_to_kernel_ms.map_or_else(|| "-".into(), |v| format!("{v:.1} ms")),
            format!("{} ms", ms(f.frr_to_kernel_ms)),
            format!("{} ms", ms(f.bird_to_kernel_ms)),
            f.note.clone().unwrap_or_default(),
        ]);
    }
    let mut out = super::render(&rows);
    out.push('\n');
    let mut load_lines = String::new();
    let mut rows = vec![vec![
        "DAEMON".to_string(),
        "SESSIONS".into(),
        "UP AT END".into(),
        "CPU (% OF ONE CORE)".into(),
        "NOTE".into(),
    ]];
    for c in &r.cpu {
        if let Some(l) = &c.load {
            let _ = writeln!(
                load_lines,
                "{}: {} rounds of {} prefixes announced and withdrawn over BGP in {:.0} s beside the BFD sessions: {} BFD flaps, {} sessions not Up at the peer at the end",
                c.target, l.rounds, l.prefixes, l.seconds, l.bfd_flaps, l.peer_not_up
            );
        }
        rows.push(vec![
            c.target.clone(),
            c.sessions.to_string(),
            c.up_at_end.to_string(),
            c.cpu_percent.map_or_else(|| "-".into(), |v| format!("{v:.1}")),
            c.note.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&super::render(&rows));
    out.push_str(&load_lines);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_times_are_read_against_the_start() {
        let log = "[2026-12-07T22:19:47.100000] 10.66.1.0/26 via 10.1.1.1 dev eth1\n\
                   [2026-12-07T22:19:47.550702] id 16777219 group 16777217 proto 84\n\
                   Deleted something without a time\n";
        let start = seconds_of_day("22:19:47.250000000").expect("time");
        let d = first_change_ms(log, start, |l| l.contains("group")).expect("a change");
        assert!((d - 300.702).abs() < 0.01, "{d}");
        assert_eq!(first_change_ms(log, start, |l| l.contains("via")), None, "before the start");
        // Across midnight.
        let late = seconds_of_day("23:59:59.900").expect("time");
        let d = first_change_ms("[2026-12-08T00:00:00.100000] group", late, |_| true).expect("x");
        assert!((d - 200.0).abs() < 0.01, "{d}");
    }

    #[test]
    fn the_lab_is_written_at_the_timers_asked() {
        let dir = std::env::temp_dir().join(format!("bfd-bench-test-{}", std::process::id()));
        let topo = write_failover_lab(&dir, 50).expect("written");
        let read = |p: &str| std::fs::read_to_string(dir.join(p)).expect("file");
        assert!(read("bfd.clab.yml").contains("name: bench-bfd-50"));
        assert!(read("bfd/resources.yaml").contains("minimumSendInterval: 50ms"));
        assert!(read("bfd/leaf-a/frr.conf").contains("receive-interval 50"));
        assert!(read("bfd/leaf-b/bird.conf").contains("min tx interval 50 ms"));
        assert!(topo.ends_with("bfd.clab.yml"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
