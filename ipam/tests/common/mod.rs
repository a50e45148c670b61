//! Helpers shared by the IPAM integration tests: a temporary data directory on either backend
//! (sled, or a real etcd member started for the test process), a seeded PRNG, and a store
//! with pools and nodes. [`both!`] runs one test body on each backend.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use std::sync::OnceLock;
use tartan_ipam::ipam::Ipam;
use tartan_ipam::resources::validate::{Context, validate};
use tartan_ipam::resources::{Kind, RawResource};
use tartan_ipam::store::etcd::EtcdConfig;
use tartan_ipam::store::etcd::local::{self, LocalCluster};
use tartan_ipam::store::{Store, WriteMode};

/// Runs a test body (`fn name(backend) { ... }`) once on sled and once on etcd.
#[macro_export]
macro_rules! both {
    ($(#[$meta:meta])* fn $name:ident($backend:ident: Backend) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($backend: $crate::common::Backend) $body
            $(#[$meta])*
            #[test]
            fn sled() {
                body($crate::common::Backend::Sled)
            }
            $(#[$meta])*
            #[test]
            fn etcd() {
                body($crate::common::Backend::Etcd)
            }
        }
    };
    ($(#[$meta:meta])* async fn $name:ident($backend:ident: Backend) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($backend: $crate::common::Backend) $body
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sled() {
                body($crate::common::Backend::Sled).await
            }
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                body($crate::common::Backend::Etcd).await
            }
        }
    };
}

/// Which datastore a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sled,
    Etcd,
}

/// A directory removed on drop; on etcd also a key prefix of its own in the test process's
/// etcd member.
pub struct TempDir(pub PathBuf, pub Backend, pub String);

/// The one etcd member of this test process (killed with it), and the runtime its client
/// runs on (the store's blocking calls are made from test threads).
pub fn etcd() -> &'static (LocalCluster, tokio::runtime::Runtime) {
    static ETCD: OnceLock<(LocalCluster, tokio::runtime::Runtime)> = OnceLock::new();
    ETCD.get_or_init(|| {
        assert!(
            local::available(),
            "these tests run a real etcd: apt-get install etcd-server (scripts/test.sh does)"
        );
        let dir = std::env::temp_dir().join(format!("tartan-etcd-test-{}", std::process::id()));
        let cluster = LocalCluster::start(&dir, 1).expect("start etcd");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        (cluster, rt)
    })
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir::with(tag, Backend::Sled)
    }

    pub fn with(tag: &str, backend: Backend) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let unique = format!("{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(format!("tartan-{unique}"));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path, backend, format!("/test/{unique}/"))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// splitmix64: small, seeded, good enough to drive model tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Validates and stores a resource.
pub fn put(store: &Store, kind: Kind, name: &str, spec: serde_json::Value) {
    let raw = RawResource::new(kind, name, spec);
    let (pools, _) = store.list(Kind::IpPool).expect("list pools");
    let existing = store.get(kind, name).expect("get");
    let ctx = Context { existing: existing.as_ref(), pools: &pools };
    let valid = validate(kind, raw, &ctx).expect("valid resource");
    store.put(kind, valid, WriteMode::Apply).expect("put");
}

/// Opens the store and IPAM of `dir` (call it from a thread outside any async runtime, or
/// through [`open_async`]).
pub fn open(dir: &TempDir) -> (Arc<Store>, Ipam) {
    open_at(dir.path(), dir.1, &dir.2)
}

fn open_at(path: &Path, backend: Backend, prefix: &str) -> (Arc<Store>, Ipam) {
    let store = match backend {
        Backend::Sled => Store::open(path).expect("open store"),
        Backend::Etcd => {
            let (cluster, rt) = etcd();
            let config = EtcdConfig {
                endpoints: cluster.endpoints(),
                prefix: prefix.to_string(),
                tls: None,
            };
            rt.block_on(Store::open_etcd(config)).expect("open the etcd store")
        }
    };
    let store = Arc::new(store);
    let ipam = Ipam::open(store.clone()).expect("open ipam");
    (store, ipam)
}

/// [`open`] from async code.
pub async fn open_async(dir: &TempDir) -> (Arc<Store>, Ipam) {
    let (path, backend, prefix) = (dir.0.clone(), dir.1, dir.2.clone());
    tokio::task::spawn_blocking(move || open_at(&path, backend, &prefix)).await.expect("open")
}

/// Registers nodes `n0`..`n{count-1}`.
pub fn nodes(store: &Store, count: usize) {
    for i in 0..count {
        put(store, Kind::Node, &format!("n{i}"), json!({}));
    }
}
