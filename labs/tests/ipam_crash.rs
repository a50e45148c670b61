//! Crash test: eight clients allocating and releasing through the HTTP API, the server killed
//! with SIGKILL mid-storm and restarted on the same data directory, three times. Every
//! acknowledged allocation must still be held by its handle, every acknowledged release must
//! stay released, no address may be held twice, and every block must keep its invariants.
//! Also a small run of `tartanlab bench ipam`, so the benchmark itself stays working.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tartan_ipam::client::{Client, Method};
use tartan_labs::apiserver::{ApiServer, tartan_binary};

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
struct Acked {
    held: BTreeMap<String, Vec<String>>,
    released: BTreeSet<String>,
}

async fn storm(
    client: Client,
    node: String,
    round: usize,
    acked: Arc<Mutex<Acked>>,
    count: Arc<AtomicUsize>,
) {
    for i in 0.. {
        let handle = format!("crash.{round}.{node}.{i}");
        let req = json!({"node": node, "handle": handle, "ipv4": 1, "ipv6": i % 2});
        let Ok(got) = client.call::<Value>(Method::POST, "/v1/ipam/allocate", Some(&req)).await
        else {
            return;
        };
        let ips: Vec<String> = got["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        acked.lock().expect("lock").held.insert(handle.clone(), ips);
        count.fetch_add(1, Ordering::SeqCst);
        if i % 4 == 3 {
            // Release the one before. Once sent its fate is in doubt (the server may apply it
            // and die before answering); once acknowledged it must stay released.
            let prev = format!("crash.{round}.{node}.{}", i - 1);
            acked.lock().expect("lock").held.remove(&prev);
            let req = json!({"handle": prev});
            if client.call::<Value>(Method::POST, "/v1/ipam/release", Some(&req)).await.is_err() {
                return;
            }
            acked.lock().expect("lock").released.insert(prev);
        }
    }
}

async fn verify(client: &Client, acked: &Acked) {
    for (handle, ips) in &acked.held {
        let got: Value = client
            .get_json(&format!("/v1/ipam/handles/{handle}"))
            .await
            .unwrap_or_else(|e| panic!("acknowledged handle {handle} lost: {e}"));
        let mut held: Vec<String> = got["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let mut want: Vec<String> =
            ips.iter().map(|n| n.split('/').next().unwrap_or_default().to_string()).collect();
        held.sort();
        want.sort();
        assert_eq!(held, want, "handle {handle}");
    }
    for handle in &acked.released {
        let err = client.get_json::<Value>(&format!("/v1/ipam/handles/{handle}")).await;
        assert_eq!(
            err.err().and_then(|e| e.code().map(String::from)).as_deref(),
            Some("not_found"),
            "{handle} came back"
        );
    }
    let blocks: Value = client.get_json("/v1/ipam/blocks").await.expect("blocks");
    let mut seen = BTreeSet::new();
    for b in blocks["items"].as_array().into_iter().flatten() {
        for a in b["allocations"].as_array().into_iter().flatten() {
            assert!(seen.insert(a["ip"].to_string()), "{} held twice", a["ip"]);
        }
    }
    let report: Value =
        client.call(Method::POST, "/v1/ipam/check", None::<&()>).await.expect("check");
    let invalid: Vec<&Value> = report["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["kind"] == "invalidBlock")
        .collect();
    assert!(invalid.is_empty(), "{invalid:?}");
}

#[test]
fn acknowledged_allocations_survive_sigkill_mid_storm() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("tartan-ipam-crash-{}", std::process::id())));
    let data = dir.0.join("data");
    let tartan = tartan_binary().expect("tartan binary");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut server = ApiServer::start(&tartan, &data).expect("server");
    rt.block_on(async {
        let c = server.client().expect("client");
        for (name, cidr) in [("v4", "10.96.0.0/16"), ("v6", "fd00:96::/112")] {
            let pool = json!({"apiVersion": "tartan/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": {"cidr": cidr}});
            c.call::<Value>(Method::PUT, &format!("/v1/ippools/{name}"), Some(&pool)).await.expect("pool");
        }
        for n in 0..8 {
            let node = json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": format!("n{n}")}});
            c.call::<Value>(Method::PUT, &format!("/v1/nodes/n{n}"), Some(&node)).await.expect("node");
        }
    });
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..3 {
        let count = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let mut tasks = Vec::new();
            for n in 0..8 {
                let client = server.client().expect("client");
                tasks.push(tokio::spawn(storm(
                    client,
                    format!("n{n}"),
                    round,
                    acked.clone(),
                    count.clone(),
                )));
            }
            let target = 150 + 97 * round;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while count.load(Ordering::SeqCst) < target {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: the storm stalled before {target} allocations"
                );
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            server.kill();
            for t in tasks {
                let _ = t.await;
            }
        });
        server = ApiServer::start(&tartan, &data).expect("restart");
        let a = acked.lock().expect("lock");
        assert!(a.held.len() >= 100, "round {round}: only {} acknowledged", a.held.len());
        rt.block_on(verify(&server.client().expect("client"), &a));
    }
}

#[test]
fn the_ipam_benchmark_runs_and_reports_both_targets() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("tartan-ipam-bench-{}", std::process::id())));
    let opts = tartan_labs::bench::ipam::IpamBenchOptions {
        clients: 2,
        allocs: 200,
        reference_allocs: if std::path::Path::new(tartan_labs::bench::ipam::HOST_LOCAL).exists() {
            20
        } else {
            0
        },
        work_dir: dir.0.clone(),
        keep_files: false,
        etcd_replicas: 1,
    };
    let results = tartan_labs::bench::ipam::run(&opts).expect("bench");
    assert_eq!(results[0].allocations, 200);
    assert_eq!(results[0].errors, 0);
    let on_etcd = results.iter().find(|r| r.target.contains("on etcd")).expect("etcd run");
    assert_eq!((on_etcd.allocations, on_etcd.errors), (200, 0));
    let table = tartan_labs::bench::ipam::table(&results);
    assert!(table.contains("tartan on sled (HTTP API)"), "{table}");
}
