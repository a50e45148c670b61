//! `tartanlab bench ipam`: durable allocations per second and their latency through the HTTP
//! API — N clients, one node each, against a fresh `tartan apiserver` — beside the reference
//! CNI IPAM, containernetworking-plugins' `host-local`, executed the way a runtime executes it
//! (one process per ADD), in the same run. With `--datastore etcd` the same clients then run
//! against API servers on a fresh three-member etcd cluster (real `etcd` processes on
//! loopback), reported beside the sled figure of the same run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tartan_ipam::client::Method;

use tartan_ipam::store::etcd::local::LocalCluster;

use crate::apiserver::{ApiServer, tartan_binary};
use crate::error::LabError;

/// Where Debian's containernetworking-plugins put `host-local`.
pub const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

#[derive(Debug, Clone)]
pub struct IpamBenchOptions {
    pub clients: usize,
    pub allocs: usize,
    /// Allocations asked of host-local (it is one process per allocation; 0 skips it).
    pub reference_allocs: usize,
    pub work_dir: PathBuf,
    pub keep_files: bool,
    /// Also run on etcd (three members) with this many API servers; 0: sled only.
    pub etcd_replicas: usize,
}

/// One target's figures.
#[derive(Serialize, Debug, Clone)]
pub struct IpamOutcome {
    pub target: String,
    pub allocations: usize,
    pub errors: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub note: String,
}

fn outcome(
    target: &str,
    mut lat: Vec<Duration>,
    errors: usize,
    took: Duration,
    note: String,
) -> IpamOutcome {
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    IpamOutcome {
        target: target.into(),
        allocations: lat.len(),
        errors,
        seconds: took.as_secs_f64(),
        per_second: lat.len() as f64 / took.as_secs_f64().max(1e-9),
        p50_ms: pct(0.50),
        p90_ms: pct(0.90),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        note,
    }
}

fn api_error(e: tartan_ipam::client::ClientError) -> LabError {
    LabError::Usage { message: e.to_string() }
}

/// Runs both targets.
pub fn run(o: &IpamBenchOptions) -> Result<Vec<IpamOutcome>, LabError> {
    let dir = o.work_dir.join(format!("ipam-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(LabError::io("creating the bench directory"))?;
    let result = run_in(o, &dir);
    if !o.keep_files {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(o: &IpamBenchOptions, dir: &Path) -> Result<Vec<IpamOutcome>, LabError> {
    let clients = o.clients.max(1);
    let tartan_bin = tartan_binary()?;
    let server = ApiServer::start(&tartan_bin, &dir.join("data"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LabError::io("starting a runtime"))?;
    let mut results = vec![rt.block_on(tartan(
        "tartan on sled (HTTP API)",
        std::slice::from_ref(&server),
        clients,
        o.allocs,
    ))?];
    if let Some(kb) = server.rss_kb() {
        results[0].note = format!("fsync before every answer; server peak RSS {} MB", kb / 1024);
    }
    drop(server);
    if o.etcd_replicas > 0 {
        results.push(etcd(&rt, &tartan_bin, dir, o)?);
    }
    if o.reference_allocs > 0 {
        if Path::new(HOST_LOCAL).exists() {
            results.push(host_local(dir, clients, o.reference_allocs)?);
        } else {
            eprintln!(
                "host-local is not installed (apt-get install -y containernetworking-plugins); skipping the reference"
            );
        }
    }
    Ok(results)
}

/// Three etcd members on loopback and `o.etcd_replicas` API servers on them.
fn etcd(
    rt: &tokio::runtime::Runtime,
    tartan_bin: &Path,
    dir: &Path,
    o: &IpamBenchOptions,
) -> Result<IpamOutcome, LabError> {
    let cluster =
        LocalCluster::start(&dir.join("etcd"), 3).map_err(LabError::io("starting etcd"))?;
    let token = dir.join("etcd-token");
    let mut servers = Vec::new();
    for r in 0..o.etcd_replicas {
        servers.push(ApiServer::start_on_etcd(
            tartan_bin,
            &dir.join(format!("replica-{r}")),
            "127.0.0.1",
            &cluster.endpoints(),
            "/tartan/",
            &token,
        )?);
    }
    let target = format!("tartan on etcd ({} members, {} API servers)", 3, servers.len());
    let mut result = rt.block_on(tartan(&target, &servers, o.clients.max(1), o.allocs))?;
    let db = cluster.members[0]
        .post("/v3/maintenance/status", "{}")
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["dbSize"].as_str().and_then(|s| s.parse::<u64>().ok()))
        .unwrap_or(0);
    result.note = format!(
        "every write one etcd transaction; etcd database {:.1} MB of the 2 GiB default quota",
        db as f64 / 1e6
    );
    Ok(result)
}

async fn tartan(
    target: &str,
    servers: &[ApiServer],
    clients: usize,
    allocs: usize,
) -> Result<IpamOutcome, LabError> {
    let server = &servers[0];
    let setup = server.client()?;
    let pool = json!({"apiVersion": "tartan/v1", "kind": "IPPool", "metadata": {"name": "bench"},
        "spec": {"cidr": "10.128.0.0/10", "blockSize": 26}});
    setup
        .call::<serde_json::Value>(Method::PUT, "/v1/ippools/bench", Some(&pool))
        .await
        .map_err(api_error)?;
    for c in 0..clients {
        let node = json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": format!("bench-{c}")}});
        setup
            .call::<serde_json::Value>(Method::PUT, &format!("/v1/nodes/bench-{c}"), Some(&node))
            .await
            .map_err(api_error)?;
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let n = allocs / clients + usize::from(c < allocs % clients);
        let client = servers[c % servers.len()].client()?;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            let mut errors = 0;
            for i in 0..n {
                let req = json!({"node": format!("bench-{c}"), "handle": format!("bench.{c}.{i}"), "ipv4": 1});
                let t = Instant::now();
                match client.call::<serde_json::Value>(Method::POST, "/v1/ipam/allocate", Some(&req)).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) =
            t.await.map_err(|e| LabError::Usage { message: format!("client task failed: {e}") })?;
        lat.extend(l);
        errors += e;
    }
    Ok(outcome(target, lat, errors, start.elapsed(), String::new()))
}

/// host-local, one process per ADD as a runtime runs it, `clients` at a time.
fn host_local(dir: &Path, clients: usize, allocs: usize) -> Result<IpamOutcome, LabError> {
    let conf = json!({"cniVersion": "1.0.0", "name": "bench",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.128.0.0/10"}]], "dataDir": dir.join("host-local")}})
    .to_string();
    let start = Instant::now();
    let results: Vec<(Vec<Duration>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let conf = conf.clone();
                s.spawn(move || {
                    let n = allocs / clients + usize::from(c < allocs % clients);
                    let mut lat = Vec::with_capacity(n);
                    let mut errors = 0;
                    for i in 0..n {
                        let t = Instant::now();
                        let ok = Command::new(HOST_LOCAL)
                            .env("CNI_COMMAND", "ADD")
                            .env("CNI_CONTAINERID", format!("bench-{c}-{i}"))
                            .env("CNI_NETNS", "/var/run/netns/bench")
                            .env("CNI_IFNAME", "eth0")
                            .env("CNI_PATH", "/usr/lib/cni")
                            .stdin(Stdio::piped())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()
                            .and_then(|mut child| {
                                if let Some(mut stdin) = child.stdin.take() {
                                    std::io::Write::write_all(&mut stdin, conf.as_bytes())?;
                                }
                                child.wait()
                            })
                            .is_ok_and(|s| s.success());
                        if ok {
                            lat.push(t.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let took = start.elapsed();
    let errors = results.iter().map(|(_, e)| e).sum();
    let lat = results.into_iter().flat_map(|(l, _)| l).collect();
    Ok(outcome("host-local (CNI exec)", lat, errors, took, "one process per ADD; no fsync".into()))
}

/// The results as a table, each target's rate beside host-local's.
pub fn table(results: &[IpamOutcome]) -> String {
    let reference = results.iter().find(|r| r.target.starts_with("host-local"));
    let sled = results.iter().find(|r| r.target.contains("on sled"));
    let mut rows = vec![
        [
            "TARGET",
            "ALLOCATIONS",
            "ERRORS",
            "TIME",
            "ALLOCS/S",
            "P50",
            "P90",
            "P99",
            "MAX",
            "RATE VS HOST-LOCAL",
            "VS SLED",
            "NOTE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in results {
        rows.push(vec![
            r.target.clone(),
            r.allocations.to_string(),
            r.errors.to_string(),
            format!("{:.2} s", r.seconds),
            format!("{:.0}", r.per_second),
            format!("{:.2} ms", r.p50_ms),
            format!("{:.2} ms", r.p90_ms),
            format!("{:.2} ms", r.p99_ms),
            format!("{:.2} ms", r.max_ms),
            reference
                .map_or("-".into(), |h| format!("{:.1}×", r.per_second / h.per_second.max(1e-9))),
            sled.map_or("-".into(), |h| format!("{:.2}×", r.per_second / h.per_second.max(1e-9))),
            r.note.clone(),
        ]);
    }
    super::render(&rows)
}
