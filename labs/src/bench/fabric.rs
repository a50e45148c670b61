//! `tartanlab bench cni|burst|datapath`: the fabric measured on a lab of its own — an API
//! server and two `tartan node` hosts on a management network, one IPv4 pool.
//!
//! - `cni`: CNI ADD and DEL latency through `tartan sandbox` (a runtime's exact behaviour),
//!   beside the reference `bridge` + `host-local` plugins driven the same way on the same host.
//! - `burst`: 100 containers started at once on one host; the time until every one answers a
//!   ping from a container on the other host.
//! - `datapath`: iperf3 TCP throughput between containers on the two hosts, beside the hosts'
//!   own throughput over the same link.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::io;
use super::lab::BenchLab;
use crate::error::{LabError, Result};

const TOPOLOGY: &str = "\
# Written by `tartanlab bench`: an API server and two Tartan hosts.
name: fabric-bench
mgmt:
  ipv4-subnet: 172.20.40.0/24
topology:
  defaults:
    kind: linux
    image: ghcr.io/tartan-fabric/tartan:dev
    env:
      TARTAN_API: http://apiserver:7180
      TARTAN_TOKEN_FILE: /etc/tartan/api/token
      IP6: none
    binds:
      - __clabDir__/api:/etc/tartan/api:ro
      - BENCH:/bench
  nodes:
    apiserver:
      binds:
        - __clabDir__/api:/var/lib/tartan
      env:
        TARTAN_TOKEN_FILE: /var/lib/tartan/token
      cmd: tartan apiserver --listen 0.0.0.0:7180 --data-dir /var/lib/tartan --apply /bench/pool.yaml --log-level warn
    host1:
      cmd: tartan node --log-level warn
    host2:
      cmd: tartan node --log-level warn
";

const POOL: &str = "apiVersion: tartan/v1\nkind: IPPool\nmetadata: {name: bench}\nspec: {cidr: 10.70.0.0/16, blockSize: 26}\n";

/// The reference network: a bridge with host-local IPAM, as a runtime without Tartan has.
const REFERENCE: &str = r#"{"cniVersion": "1.0.0", "name": "reference", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/16"}]], "dataDir": "/run/bench-host-local"}}]}"#;

fn usage(message: impl Into<String>) -> LabError {
    LabError::Usage { message: message.into() }
}

/// Deploys the fabric bench's lab (two hosts and an API server) and waits until the hosts
/// peer.
fn fabric_lab(tartanlab: &Path, work_dir: &Path) -> Result<BenchLab> {
    let dir = work_dir.join(format!("fabric-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bench = dir.join("files");
    std::fs::create_dir_all(&bench).map_err(io("creating the bench directory"))?;
    std::fs::write(bench.join("pool.yaml"), POOL).map_err(io("writing the pool"))?;
    std::fs::create_dir_all(bench.join("reference.d"))
        .map_err(io("writing the reference network"))?;
    std::fs::write(bench.join("reference.d/10-reference.conflist"), REFERENCE)
        .map_err(io("writing the reference network"))?;
    std::fs::write(bench.join("times.sh"), TIMES).map_err(io("writing the timing script"))?;
    let topo = dir.join("fabric-bench.clab.yml");
    std::fs::write(&topo, TOPOLOGY.replace("BENCH", &bench.display().to_string()))
        .map_err(io("writing the topology"))?;
    let lab = BenchLab::deploy(tartanlab, &dir, &topo)?;
    lab.wait("the hosts' BGP session", Duration::from_secs(60), || {
        let v = lab.sh("apiserver", "tartanctl get nodestatus -o json", Duration::from_secs(10))?;
        Ok(v.matches("\"Established\"").count() >= 2)
    })?;
    Ok(lab)
}

/// Times N sandbox ADDs then N DELs with bash's clock (no process per sample), printing
/// `add <µs>` and `del <µs>` lines. Arguments: count, prefix, extra `tartan sandbox` options.
const TIMES: &str = r#"set -e
n=$1; prefix=$2; shift 2
us() { local t=${EPOCHREALTIME/./}; echo $t; }
for i in $(seq 1 $n); do s=$(us); tartan sandbox add $prefix$i "$@" >/dev/null; e=$(us); echo "add $((e-s))"; done
for i in $(seq 1 $n); do s=$(us); tartan sandbox del $prefix$i "$@" >/dev/null; e=$(us); echo "del $((e-s))"; done
"#;

#[derive(Serialize, Debug, Clone)]
pub struct Latency {
    pub target: String,
    pub samples: usize,
    pub add_p50_ms: f64,
    pub add_p99_ms: f64,
    pub del_p50_ms: f64,
    pub del_p99_ms: f64,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn latency(target: &str, out: &str) -> Latency {
    let mut add = Vec::new();
    let mut del = Vec::new();
    for line in out.lines() {
        let mut it = line.split_whitespace();
        let (Some(kind), Some(us)) = (it.next(), it.next().and_then(|u| u.parse::<f64>().ok()))
        else {
            continue;
        };
        match kind {
            "add" => add.push(us / 1000.0),
            "del" => del.push(us / 1000.0),
            _ => {}
        }
    }
    Latency {
        target: target.to_string(),
        samples: add.len(),
        add_p50_ms: pct(&mut add, 0.5),
        add_p99_ms: pct(&mut add, 0.99),
        del_p50_ms: pct(&mut del, 0.5),
        del_p99_ms: pct(&mut del, 0.99),
    }
}

/// `bench cni`: ADD/DEL latency of the tartan network and of bridge + host-local.
pub fn cni(tartanlab: &Path, work_dir: &Path, count: usize) -> Result<Vec<Latency>> {
    let lab = fabric_lab(tartanlab, work_dir)?;
    let limit = Duration::from_secs(60 + count as u64);
    // One warm-up each (the first ADD claims a block, the first bridge ADD makes the bridge).
    lab.sh("host1", "bash /bench/times.sh 1 warm", limit)?;
    lab.sh(
        "host1",
        "bash /bench/times.sh 1 warmref --conf-dir /bench/reference.d --cni-path /usr/lib/cni",
        limit,
    )?;
    let tartan = lab.sh("host1", &format!("bash /bench/times.sh {count} t"), limit)?;
    let reference = lab.sh(
        "host1",
        &format!(
            "bash /bench/times.sh {count} r --conf-dir /bench/reference.d --cni-path /usr/lib/cni"
        ),
        limit,
    )?;
    Ok(vec![latency("tartan (agent + API)", &tartan), latency("bridge + host-local", &reference)])
}

pub fn cni_table(rows: &[Latency]) -> String {
    let reference = rows.iter().find(|r| r.target.starts_with("bridge"));
    let mut out = vec![
        ["TARGET", "SAMPLES", "ADD P50", "ADD P99", "DEL P50", "DEL P99", "ADD P50 VS REFERENCE"]
            .map(String::from)
            .to_vec(),
    ];
    for r in rows {
        out.push(vec![
            r.target.clone(),
            r.samples.to_string(),
            format!("{:.1} ms", r.add_p50_ms),
            format!("{:.1} ms", r.add_p99_ms),
            format!("{:.1} ms", r.del_p50_ms),
            format!("{:.1} ms", r.del_p99_ms),
            reference.map(|b| format!("{:.2}×", r.add_p50_ms / b.add_p50_ms)).unwrap_or_default(),
        ]);
    }
    super::render(&out)
}

#[derive(Serialize, Debug, Clone)]
pub struct Burst {
    pub containers: usize,
    pub parallel: usize,
    /// Until the last ADD returned.
    pub added_s: f64,
    /// Until every container answered from the other host.
    pub reachable_s: f64,
}

/// `bench burst`: `count` containers on host1 at once (`parallel` ADDs in flight), pinged
/// from a container on host2 until all answer.
pub fn burst(tartanlab: &Path, work_dir: &Path, count: usize, parallel: usize) -> Result<Burst> {
    let lab = fabric_lab(tartanlab, work_dir)?;
    lab.sh("host2", "tartan sandbox add prober >/dev/null", Duration::from_secs(60))?;
    let started = Instant::now();
    let adds = format!(
        "seq 1 {count} | xargs -P {parallel} -I{{}} sh -c 'tartan sandbox add b{{}} >/dev/null' && echo done"
    );
    let adder = {
        let n = lab.state.node("host1")?;
        let argv = vec!["bash".to_string(), "-c".to_string(), adds];
        let (mut command, _outputs) = crate::exec::prepare(&lab.state, n, &argv)?;
        command.spawn().map_err(io("starting the burst"))?
    };
    let mut adder = Some(adder);
    let mut added_s = None;
    let mut reached: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while reached.len() < count {
        if Instant::now() > deadline {
            return Err(usage(format!(
                "only {} of {count} containers reachable after 120 s",
                reached.len()
            )));
        }
        if let Some(child) = adder.as_mut() {
            if let Some(status) = child.try_wait().map_err(io("waiting for the burst"))? {
                if !status.success() {
                    return Err(usage("a container of the burst failed to start"));
                }
                added_s = Some(started.elapsed().as_secs_f64());
                adder = None;
            }
        }
        let list = lab.sh(
            "apiserver",
            "tartanctl get workloadendpoints -o json",
            Duration::from_secs(10),
        )?;
        let v: serde_json::Value =
            serde_json::from_str(&list).map_err(|e| usage(format!("endpoints: {e}")))?;
        let pending: Vec<String> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["spec"]["node"] == "host1")
            .filter_map(|i| {
                i["spec"]["ipNetworks"][0]
                    .as_str()
                    .and_then(|a| a.split('/').next())
                    .map(String::from)
            })
            .filter(|a| !reached.contains(a))
            .collect();
        if !pending.is_empty() {
            let script = format!(
                "for a in {}; do (ping -c1 -W1 $a >/dev/null 2>&1 && echo $a) & done; wait",
                pending.join(" ")
            );
            let ok = lab.sh(
                "host2",
                &format!("tartan sandbox exec prober -- bash -c '{script}'"),
                Duration::from_secs(20),
            )?;
            reached.extend(ok.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
        }
    }
    let reachable_s = started.elapsed().as_secs_f64();
    if let Some(mut child) = adder {
        let _ = child.wait();
    }
    Ok(Burst { containers: count, parallel, added_s: added_s.unwrap_or(reachable_s), reachable_s })
}

#[derive(Serialize, Debug, Clone)]
pub struct Datapath {
    pub host_gbps: f64,
    pub container_gbps: f64,
    pub seconds: u32,
}

fn iperf_gbps(json: &str) -> Result<f64> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| usage(format!("iperf3 output: {e}")))?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .ok_or_else(|| usage(format!("iperf3 output has no throughput: {json}")))
}

/// `bench datapath`: iperf3 container to container across hosts, and host to host.
pub fn datapath(tartanlab: &Path, work_dir: &Path, seconds: u32) -> Result<Datapath> {
    let lab = fabric_lab(tartanlab, work_dir)?;
    let limit = Duration::from_secs(u64::from(seconds) + 60);
    lab.sh("host1", "tartan sandbox add c1 >/dev/null", limit)?;
    lab.sh("host2", "tartan sandbox add c2 >/dev/null", limit)?;
    let c2 = lab.sh(
        "host2",
        "ip -n c2 -4 -o addr show dev eth0 | awk '{split($4,a,\"/\"); print a[1]}'",
        limit,
    )?;
    let host2 = lab.sh(
        "host2",
        "ip -4 -o addr show dev eth0 | awk '{split($4,a,\"/\"); print a[1]}'",
        limit,
    )?;
    let (c2, host2) = (c2.trim().to_string(), host2.trim().to_string());
    lab.sh(
        "host2",
        "iperf3 -s -D -p 5201 && tartan sandbox exec c2 -- iperf3 -s -D -p 5202",
        limit,
    )?;
    lab.wait("c1 reaching c2", Duration::from_secs(30), || {
        Ok(lab.sh("host1", &format!("tartan sandbox exec c1 -- ping -c1 -W1 {c2}"), limit).is_ok())
    })?;
    let host = lab.sh("host1", &format!("iperf3 -c {host2} -p 5201 -t {seconds} -J"), limit)?;
    let container = lab.sh(
        "host1",
        &format!("tartan sandbox exec c1 -- iperf3 -c {c2} -p 5202 -t {seconds} -J"),
        limit,
    )?;
    Ok(Datapath { host_gbps: iperf_gbps(&host)?, container_gbps: iperf_gbps(&container)?, seconds })
}
