//! The datastore on etcd under failure, with real processes in a private network namespace:
//! three etcd members (127.0.0.11-13), two `tartan apiserver` replicas on them (127.0.0.21-22)
//! and eight clients allocating and releasing through both replicas, failing over.
//!
//! - kill: SIGKILL the etcd leader mid-storm, then one API replica.
//! - partition: cut the etcd leader off (nft inside the namespace) for 10 s, heal, then a
//!   follower for 10 s.
//!
//! Each client retries a failed request with the same handle until it is acknowledged (as a
//! CNI ADD is retried). After the storm: every acknowledged allocation holds exactly its
//! addresses, every acknowledged release stays released, no address is held twice, `ipam check`
//! is clean, usage equals what is acknowledged, releasing again is harmless. The longest gap
//! between two acknowledged allocations is printed (the target: under 3 s).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tartan_felix::netns::{TempNetns, root_tests_enabled, run_in};
use tartan_ipam::client::{Client, Method};
use tartan_ipam::store::etcd::local::LocalCluster;
use tartan_labs::apiserver::{ApiServer, tartan_binary};

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
struct Ledger {
    held: BTreeMap<String, Vec<String>>,
    released: BTreeSet<String>,
    /// When each acknowledged allocation was answered.
    acks: Vec<Instant>,
    errors: usize,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Partition,
}

fn ips_of(v: &Value) -> Vec<String> {
    let mut ips: Vec<String> = v["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .map(|s| s.split('/').next().unwrap_or_default().to_string())
        .collect();
    ips.sort();
    ips
}

/// Sends `body` to `path` until it is acknowledged or `stop` is set and `give_up` says so.
async fn until_acked(client: &Client, path: &str, body: &Value, ledger: &Mutex<Ledger>) -> Value {
    loop {
        match client.post_idempotent::<Value>(path, body).await {
            Ok(v) => return v,
            Err(e) => {
                ledger.lock().expect("ledger").errors += 1;
                eprintln!("{path}: {e}; retrying the same request");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn storm(
    client: Client,
    node: String,
    ledger: Arc<Mutex<Ledger>>,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let handle = format!("ha.{node}.{i}");
        let req = json!({"node": node, "handle": handle, "ipv4": 1, "ipv6": i % 2});
        let got = until_acked(&client, "/v1/ipam/allocate", &req, &ledger).await;
        {
            let mut l = ledger.lock().expect("ledger");
            l.held.insert(handle.clone(), ips_of(&got));
            l.acks.push(Instant::now());
        }
        count.fetch_add(1, Ordering::SeqCst);
        if i % 4 == 3 {
            let prev = format!("ha.{node}.{}", i - 1);
            ledger.lock().expect("ledger").held.remove(&prev);
            until_acked(&client, "/v1/ipam/release", &json!({"handle": prev}), &ledger).await;
            ledger.lock().expect("ledger").released.insert(prev);
        }
        i += 1;
    }
}

async fn verify(client: &Client, ledger: &Ledger) {
    let mut total = 0;
    for (handle, ips) in &ledger.held {
        let got: Value = client
            .get_json(&format!("/v1/ipam/handles/{handle}"))
            .await
            .unwrap_or_else(|e| panic!("acknowledged handle {handle} lost: {e}"));
        assert_eq!(&ips_of(&got), ips, "handle {handle} holds other addresses than acknowledged");
        total += ips.len();
    }
    for handle in &ledger.released {
        let err = client.get_json::<Value>(&format!("/v1/ipam/handles/{handle}")).await;
        assert_eq!(
            err.err().and_then(|e| e.code().map(String::from)).as_deref(),
            Some("not_found"),
            "{handle} came back after its release was acknowledged"
        );
    }
    // Releasing again is harmless.
    if let Some(h) = ledger.released.iter().next() {
        let again: Value = client
            .post_idempotent("/v1/ipam/release", &json!({"handle": h}))
            .await
            .expect("a second release");
        assert_eq!(again["released"].as_array().map(Vec::len), Some(0), "{again}");
    }
    let blocks: Value = client.get_json("/v1/ipam/blocks").await.expect("blocks");
    let mut seen = BTreeSet::new();
    for b in blocks["items"].as_array().into_iter().flatten() {
        for a in b["allocations"].as_array().into_iter().flatten() {
            assert!(seen.insert(a["ip"].to_string()), "{} held twice", a["ip"]);
        }
    }
    assert_eq!(seen.len(), total, "usage differs from what was acknowledged (a leak)");
    let report: Value =
        client.call(Method::POST, "/v1/ipam/check", None::<&()>).await.expect("check");
    // No agent reports workloads here, so allocations without a workload are expected.
    let problems: Vec<Value> = report["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["kind"] != "allocatedNotInUse")
        .cloned()
        .collect();
    assert!(problems.is_empty(), "ipam check: {problems:?}");
}

/// Runs `nft -f -` with `script` (in the calling thread's namespace).
fn nft(script: &str) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("nft script");
    assert!(child.wait().expect("nft").success(), "nft failed: {script}");
}

/// Cuts `host` off from everything in the namespace.
fn isolate(host: &str) {
    nft(&format!(
        "table inet tartanpart {{\n chain out {{ type filter hook output priority 0; ip saddr {host} drop; ip daddr {host} drop; }}\n}}\n"
    ));
}

fn heal() {
    nft("delete table inet tartanpart\n");
}

fn scenario(dir: &Path, fault: Fault) {
    let status = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("ip");
    assert!(status.success());
    let hosts: Vec<String> = (11..=13).map(|i| format!("127.0.0.{i}")).collect();
    let mut etcd = LocalCluster::start_on(&dir.join("etcd"), &hosts).expect("etcd cluster");
    let tartan = tartan_binary().expect("tartan binary");
    let token = dir.join("token");
    let endpoints = etcd.endpoints();
    let start = |name: &str, host: &str| {
        ApiServer::start_on_etcd(&tartan, &dir.join(name), host, &endpoints, "/tartan/", &token)
            .expect("api server on etcd")
    };
    let mut a = start("a", "127.0.0.21");
    let b = start("b", "127.0.0.22");
    let both = [format!("{},{}", a.url, b.url), format!("{},{}", b.url, a.url)];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let c = Client::new(&both[0], Some(a.token.clone())).expect("client");
        for (name, cidr) in [("v4", "10.96.0.0/16"), ("v6", "fd00:96::/112")] {
            let pool = json!({"apiVersion": "tartan/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": {"cidr": cidr}});
            c.call::<Value>(Method::PUT, &format!("/v1/ippools/{name}"), Some(&pool))
                .await
                .expect("pool");
        }
        for n in 0..8 {
            let node = json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": format!("n{n}")}});
            c.call::<Value>(Method::PUT, &format!("/v1/nodes/n{n}"), Some(&node))
                .await
                .expect("node");
        }
        let mut tasks = Vec::new();
        for n in 0..8 {
            let client = Client::new(&both[n % 2], Some(a.token.clone())).expect("client");
            tasks.push(tokio::spawn(storm(
                client,
                format!("n{n}"),
                ledger.clone(),
                count.clone(),
                stop.clone(),
            )));
        }
        let wait_for = |target: usize| {
            let count = count.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                while count.load(Ordering::SeqCst) < target {
                    assert!(Instant::now() < deadline, "the storm stalled before {target}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        wait_for(200).await;
        let leader = etcd.leader().expect("a leader");
        let victim = etcd.members[leader].host.clone();
        eprintln!("fault {fault:?} on the etcd leader {victim}");
        match fault {
            Fault::Kill => etcd.members[leader].kill(),
            Fault::Partition => isolate(&victim),
        }
        let seen = count.load(Ordering::SeqCst);
        match fault {
            Fault::Kill => {
                wait_for(seen + 300).await;
                eprintln!("SIGKILL of API replica a");
                a.kill();
                let seen = count.load(Ordering::SeqCst);
                wait_for(seen + 300).await;
            }
            Fault::Partition => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                heal();
                etcd.wait_healthy(Duration::from_secs(30)).expect("healed");
                let follower = (0..3).find(|i| Some(*i) != etcd.leader()).expect("a follower");
                let victim = etcd.members[follower].host.clone();
                eprintln!("partition of the etcd follower {victim}");
                isolate(&victim);
                tokio::time::sleep(Duration::from_secs(10)).await;
                heal();
                let seen = count.load(Ordering::SeqCst);
                wait_for(seen + 100).await;
            }
        }
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.expect("storm task");
        }
        let l = std::mem::take(&mut *ledger.lock().expect("ledger"));
        let mut gap = Duration::ZERO;
        let mut acks = l.acks.clone();
        acks.sort();
        for w in acks.windows(2) {
            gap = gap.max(w[1] - w[0]);
        }
        eprintln!(
            "{fault:?}: {} allocations acknowledged, {} held, {} released, {} failed tries retried; \
             longest gap between acknowledged allocations {:.0} ms (target < 3000 ms)",
            l.acks.len(),
            l.held.len(),
            l.released.len(),
            l.errors,
            gap.as_secs_f64() * 1000.0
        );
        assert!(gap < Duration::from_secs(15), "writes stopped for {gap:?}");
        let verifier = Client::new(&b.url, Some(b.token.clone())).expect("client");
        verify(&verifier, &l).await;
        let health: Value = verifier.get_json("/healthz").await.expect("healthz");
        assert_eq!(health["etcd"]["quorum"], true, "{health}");
        if let Fault::Kill = fault {
            // One member left of three: no quorum, and the replica says so.
            let running: Vec<usize> = (0..3).filter(|i| etcd.members[*i].is_running()).collect();
            etcd.members[running[0]].kill();
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let status = verifier.send(Method::GET, "/healthz", None, &[]).await;
                // The client hands a 503 back as an error (it would try another server).
                let code = match &status {
                    Ok((s, _)) => Some(s.as_u16()),
                    Err(e) => e.status().map(|s| s.as_u16()),
                };
                if code == Some(503) {
                    break;
                }
                assert!(Instant::now() < deadline, "healthz still answers {status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
}

fn run(fault: Fault) {
    if !root_tests_enabled() {
        return;
    }
    let dir = TempDir(
        std::env::temp_dir().join(format!("tartan-etcd-ha-{fault:?}-{}", std::process::id())),
    );
    let ns = TempNetns::new("etcdha").expect("namespace");
    run_in(&ns.path, || {
        scenario(&dir.0, fault);
        Ok(())
    })
    .expect("scenario");
}

#[test]
fn etcd_leader_and_api_replica_killed_mid_storm_lose_nothing() {
    run(Fault::Kill);
}

#[test]
fn etcd_leader_then_follower_partitioned_lose_nothing() {
    run(Fault::Partition);
}

async fn put_node(c: &Client, name: &str) {
    let node = json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": name}});
    c.call::<Value>(Method::PUT, &format!("/v1/nodes/{name}"), Some(&node)).await.expect("node");
}

/// The next `n` Node events of a watch (bookmarks skipped): (revision, name).
async fn node_events(w: &mut tartan_ipam::client::Watch, n: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream stays open");
        if ev["type"] == "BOOKMARK" {
            continue;
        }
        let name = ev["object"]["metadata"]["name"].as_str().unwrap_or_default().to_string();
        out.push((ev["revision"].as_u64().unwrap_or(0), name));
    }
    out
}

#[test]
fn a_watcher_resumes_on_another_replica_and_relists_once_after_compaction() {
    let dir =
        TempDir(std::env::temp_dir().join(format!("tartan-etcd-watch-{}", std::process::id())));
    let etcd = LocalCluster::start(&dir.0.join("etcd"), 3).expect("etcd");
    let tartan = tartan_binary().expect("tartan binary");
    let token = dir.0.join("token");
    let start = |name: &str| {
        ApiServer::start_on_etcd(
            &tartan,
            &dir.0.join(name),
            "127.0.0.1",
            &etcd.endpoints(),
            "/tartan/",
            &token,
        )
        .expect("api server")
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut a = start("a");
    let writer = start("c");
    rt.block_on(async {
        let ca = a.client().expect("client");
        let cw = writer.client().expect("client");
        let list: Value = ca.get_json("/v1/nodes").await.expect("list");
        let since = list["revision"].as_u64().expect("revision");
        let mut w = ca.watch(since, "nodes").await.expect("watch on a");
        for i in 0..5 {
            put_node(&cw, &format!("n{i}")).await;
        }
        let seen = node_events(&mut w, 5).await;
        let last = seen.last().map(|(r, _)| *r).expect("events");
        // The replica being watched dies; changes go on elsewhere; a replica that starts only
        // now must still give the watcher everything after its last revision.
        a.kill();
        for i in 5..10 {
            put_node(&cw, &format!("n{i}")).await;
        }
        let b = start("b");
        let cb = b.client().expect("client");
        let mut w = cb.watch(last, "nodes").await.expect("resume on b");
        let resumed = node_events(&mut w, 5).await;
        let names: Vec<&str> = resumed.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            ["n5", "n6", "n7", "n8", "n9"],
            "events lost or repeated across the replica loss"
        );
        // Compaction removes the history: a watcher from before it gets 410, lists once, and
        // goes on from the list's revision without another relist.
        let current: Value = cb.get_json("/v1/nodes").await.expect("list");
        let rev = current["revision"].as_u64().expect("revision");
        let answer = etcd.members[0]
            .post("/v3/kv/compaction", &format!("{{\"revision\":\"{rev}\",\"physical\":true}}"))
            .expect("compaction");
        assert!(!answer.contains("error"), "{answer}");
        put_node(&cw, "n10").await;
        let d = start("d");
        let cd = d.client().expect("client");
        let mut relists = 0;
        let mut from = last;
        let mut watch = loop {
            match cd.watch(from, "nodes").await {
                Ok(w) => break w,
                Err(e) if e.status().map(|s| s.as_u16()) == Some(410) => {
                    relists += 1;
                    assert!(relists <= 1, "relisted twice");
                    let list: Value = cd.get_json("/v1/nodes").await.expect("relist");
                    assert_eq!(list["items"].as_array().map(Vec::len), Some(11));
                    from = list["revision"].as_u64().expect("revision");
                }
                Err(e) => panic!("watch: {e}"),
            }
        };
        assert_eq!(relists, 1, "a watch from before the compaction must be told to list again");
        put_node(&cw, "n11").await;
        let after = node_events(&mut watch, 1).await;
        assert_eq!(after[0].1, "n11");
        drop(d);
        drop(b);
    });
}
