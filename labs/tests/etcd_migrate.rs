//! `tartanctl datastore migrate`: a sled API server with pools, nodes and allocations is
//! stopped, its datastore copied into a real etcd, and an API server on etcd then serves the
//! same resources, blocks and handles; new allocations never reuse a migrated address. A
//! migration while the sled server runs, or into a prefix that holds data, is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tartan_ipam::client::{Client, Method};
use tartan_ipam::store::etcd::local::LocalCluster;
use tartan_labs::apiserver::{ApiServer, tartan_binary};

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tartanctl(tartan: &Path) -> PathBuf {
    tartan.with_file_name("tartanctl")
}

fn migrate(tartan: &Path, data: &Path, endpoints: &[String]) -> (bool, String) {
    let out = Command::new(tartanctl(tartan))
        .args(["datastore", "migrate", "--from-data-dir"])
        .arg(data)
        .args(["--etcd-endpoints", &endpoints.join(",")])
        .output()
        .expect("tartanctl");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn snapshot(c: &Client) -> (Value, Value, Value) {
    let pools: Value = c.get_json("/v1/ippools").await.expect("pools");
    let names = |v: &Value| -> Value {
        let mut n: Vec<Value> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| json!([i["metadata"]["name"], i["spec"]]))
            .collect();
        n.sort_by_key(|v| v.to_string());
        Value::Array(n)
    };
    let nodes: Value = c.get_json("/v1/nodes").await.expect("nodes");
    let blocks: Value = c.get_json("/v1/ipam/blocks").await.expect("blocks");
    (names(&pools), names(&nodes), blocks["items"].clone())
}

#[test]
fn a_sled_datastore_moves_to_etcd_whole() {
    let dir = TempDir(std::env::temp_dir().join(format!("tartan-migrate-{}", std::process::id())));
    let tartan = tartan_binary().expect("tartan binary");
    let data = dir.0.join("sled");
    let etcd = LocalCluster::start(&dir.0.join("etcd"), 1).expect("etcd");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut sled = ApiServer::start(&tartan, &data).expect("sled server");
    let before = rt.block_on(async {
        let c = sled.client().expect("client");
        for (name, cidr) in [("v4", "10.97.0.0/16"), ("v6", "fd00:97::/112")] {
            let pool = json!({"apiVersion": "tartan/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": {"cidr": cidr, "blockSize": if name == "v4" { 28 } else { 124 }}});
            c.call::<Value>(Method::PUT, &format!("/v1/ippools/{name}"), Some(&pool)).await.expect("pool");
        }
        for n in 0..3 {
            let node = json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": format!("n{n}"), "labels": {"rack": "a"}}});
            c.call::<Value>(Method::PUT, &format!("/v1/nodes/n{n}"), Some(&node)).await.expect("node");
        }
        for i in 0..70 {
            let req = json!({"node": format!("n{}", i % 3), "handle": format!("m.{i}"), "ipv4": 1, "ipv6": i % 2});
            c.call::<Value>(Method::POST, "/v1/ipam/allocate", Some(&req)).await.expect("allocate");
        }
        c.call::<Value>(Method::POST, "/v1/ipam/release", Some(&json!({"handle": "m.5"})))
            .await
            .expect("release");
        snapshot(&c).await
    });
    let (ok, text) = migrate(&tartan, &data, &etcd.endpoints());
    assert!(!ok, "a migration while the sled server runs must be refused: {text}");
    assert!(text.contains("stop the `tartan apiserver`"), "{text}");
    sled.kill();
    let (ok, text) = migrate(&tartan, &data, &etcd.endpoints());
    assert!(ok, "{text}");
    assert!(text.contains("keys verified"), "{text}");
    let (ok, text) = migrate(&tartan, &data, &etcd.endpoints());
    assert!(!ok && text.contains("already holds data"), "a second copy must be refused: {text}");

    let on_etcd = ApiServer::start_on_etcd(
        &tartan,
        &dir.0.join("replica"),
        "127.0.0.1",
        &etcd.endpoints(),
        "/tartan/",
        &data.join("token"),
    )
    .expect("server on etcd");
    rt.block_on(async {
        let c = on_etcd.client().expect("client");
        assert_eq!(snapshot(&c).await, before, "what etcd serves differs from sled");
        let h: Value = c.get_json("/v1/ipam/handles/m.7").await.expect("a migrated handle");
        assert_eq!(h["ips"].as_array().map(Vec::len), Some(2));
        let gone = c.get_json::<Value>("/v1/ipam/handles/m.5").await;
        assert_eq!(
            gone.err().and_then(|e| e.code().map(String::from)).as_deref(),
            Some("not_found")
        );
        // New allocations land beside the migrated ones, never on them.
        let mut all = std::collections::BTreeSet::new();
        for b in before.2.as_array().into_iter().flatten() {
            for a in b["allocations"].as_array().into_iter().flatten() {
                all.insert(a["ip"].to_string());
            }
        }
        for i in 0..20 {
            let req = json!({"node": "n1", "handle": format!("new.{i}"), "ipv4": 1});
            let got: Value =
                c.call(Method::POST, "/v1/ipam/allocate", Some(&req)).await.expect("allocate");
            let ip = got["ips"][0]
                .as_str()
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            assert!(all.insert(format!("\"{ip}\"")), "{ip} handed out twice");
        }
    });
}
