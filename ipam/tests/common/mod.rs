//! Helpers shared by the IPAM integration tests: a temporary data directory, a seeded PRNG,
//! and a store with pools and nodes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tartan_ipam::ipam::Ipam;
use tartan_ipam::resources::validate::{Context, validate};
use tartan_ipam::resources::{Kind, RawResource};
use tartan_ipam::store::{Store, WriteMode};

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tartan-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
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

/// Opens the store and IPAM in `dir`.
pub fn open(dir: &Path) -> (Arc<Store>, Ipam) {
    let store = Arc::new(Store::open(dir).expect("open store"));
    let ipam = Ipam::open(store.clone()).expect("open ipam");
    (store, ipam)
}

/// Registers nodes `n0`..`n{count-1}`.
pub fn nodes(store: &Store, count: usize) {
    for i in 0..count {
        put(store, Kind::Node, &format!("n{i}"), json!({}));
    }
}
