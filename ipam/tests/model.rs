//! Model-based tests: random sequences of allocate / release / restart against the real sled
//! store, checked after every step against a plain map of handle → addresses: no address held
//! twice, none leaked, `free + cooling + used == size` in every block, and the view rebuilt
//! after a restart equal to the one before.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::{Backend, Rng, TempDir, nodes, open, put};
use serde_json::json;
use tartan_ipam::ipam::allocate::AllocateRequest;
use tartan_ipam::ipam::release::{ReleaseItem, ReleaseRequest};
use tartan_ipam::ipam::{Ipam, IpamError};
use tartan_ipam::resources::Kind;

type Model = BTreeMap<String, BTreeSet<IpAddr>>;

fn assert_consistent(ipam: &Ipam, model: &Model, step: usize) {
    let mut in_blocks: BTreeMap<IpAddr, String> = BTreeMap::new();
    for b in ipam.raw_blocks().expect("blocks") {
        b.check_invariants().unwrap_or_else(|e| panic!("step {step}: {e}"));
        for (ord, a) in &b.allocations {
            assert!(
                in_blocks.insert(b.ip(*ord), a.handle.clone()).is_none(),
                "step {step}: duplicate"
            );
        }
    }
    let mut in_model: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (h, ips) in model {
        for ip in ips {
            assert!(in_model.insert(*ip, h.clone()).is_none(), "step {step}: {ip} held twice");
        }
    }
    assert_eq!(in_blocks, in_model, "step {step}: blocks and model disagree (leak or loss)");
    for (h, ips) in model {
        let held: BTreeSet<IpAddr> = ipam.handle(h).expect("handle").into_iter().collect();
        assert_eq!(&held, ips, "step {step}: handle {h}");
    }
}

fn run(seed: u64, steps: usize, backend: Backend) {
    let dir = TempDir::with("ipam-model", backend);
    let (mut store, mut ipam) = open(&dir);
    put(&store, Kind::IpPool, "v4", json!({"cidr": "10.65.0.0/25", "blockSize": 28}));
    put(&store, Kind::IpPool, "v6", json!({"cidr": "fd00:65::/121", "blockSize": 125}));
    nodes(&store, 4);
    let mut rng = Rng(seed);
    let mut model = Model::new();
    for step in 0..steps {
        match rng.below(100) {
            0..=49 => {
                let handle = format!("net.c{}", rng.below(40));
                let req = AllocateRequest {
                    node: format!("n{}", rng.below(4)),
                    handle: handle.clone(),
                    ipv4: rng.below(3) as u32,
                    ipv6: rng.below(2) as u32,
                    ..AllocateRequest::default()
                };
                let before = model.get(&handle).cloned().unwrap_or_default();
                match ipam.allocate(&req) {
                    Ok(got) => {
                        let ips: BTreeSet<IpAddr> = got.ips.iter().map(|n| n.addr()).collect();
                        assert!(
                            before.is_subset(&ips),
                            "step {step}: a retried allocate lost addresses"
                        );
                        let v4 = ips.iter().filter(|i| i.is_ipv4()).count() as u32;
                        assert!(
                            v4 >= req.ipv4 && ips.len() as u32 - v4 >= req.ipv6,
                            "step {step}: too few"
                        );
                        model.insert(handle, ips);
                    }
                    Err(IpamError::Exhausted(_)) => {}
                    Err(IpamError::Invalid(_)) if req.ipv4 == 0 && req.ipv6 == 0 => {}
                    Err(e) => panic!("step {step}: {e}"),
                }
            }
            50..=69 => {
                let handle = format!("net.c{}", rng.below(40));
                let req = ReleaseRequest { handle: Some(handle.clone()), ips: vec![] };
                match ipam.release(&req) {
                    Ok(_) => {
                        model.remove(&handle);
                    }
                    Err(e) => panic!("step {step}: {e}"),
                }
            }
            70..=84 => {
                // One address, by address; sometimes guarded by a stale sequence number.
                let all: Vec<(String, IpAddr)> = model
                    .iter()
                    .flat_map(|(h, ips)| ips.iter().map(|ip| (h.clone(), *ip)))
                    .collect();
                if all.is_empty() {
                    continue;
                }
                let (h, ip) = all[rng.below(all.len() as u64) as usize].clone();
                let stale = rng.below(3) == 0;
                let item = if stale {
                    ReleaseItem::Guarded { ip: ip.to_string(), handle: None, sequence: Some(1) }
                } else {
                    ReleaseItem::Address(format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }))
                };
                let out = ipam
                    .release(&ReleaseRequest { handle: None, ips: vec![item] })
                    .expect("release");
                if stale {
                    assert_eq!(out.skipped.len(), 1, "step {step}: a stale sequence freed {ip}");
                } else {
                    assert_eq!(out.released.len(), 1, "step {step}");
                    if let Some(set) = model.get_mut(&h) {
                        set.remove(&ip);
                        if set.is_empty() {
                            model.remove(&h);
                        }
                    }
                }
            }
            85..=92 => {
                // Releasing something never allocated is success and changes nothing.
                let ip = format!("10.65.0.{}", 128 + rng.below(100));
                let out = ipam
                    .release(&ReleaseRequest { handle: None, ips: vec![ReleaseItem::Address(ip)] })
                    .expect("idempotent");
                assert_eq!(out.not_allocated.len(), 1);
            }
            93..=96 => {
                let strict = rng.below(2) == 0;
                put(&store, Kind::IpamConfig, "default", json!({"strictAffinity": strict}));
            }
            _ => {
                let before = ipam.raw_blocks().expect("blocks");
                store.flush_now().expect("flush");
                drop(ipam);
                drop(store);
                (store, ipam) = open(&dir);
                assert_eq!(
                    ipam.raw_blocks().expect("blocks"),
                    before,
                    "step {step}: restart changed blocks"
                );
            }
        }
        assert_consistent(&ipam, &model, step);
    }
}

both! {
    fn random_allocate_release_restart_sequences_keep_every_invariant(backend: Backend) {
    // etcd costs a few round trips per step: fewer, shorter runs there.
    let (seeds, steps) = if backend == Backend::Etcd { (3, 300) } else { (6, 600) };
    for seed in 1..=seeds {
        run(seed, steps, backend);
    }
}
}

both! {
    fn a_node_fills_its_own_block_before_claiming_another_and_borrows_only_when_allowed(backend: Backend) {
    let dir = TempDir::with("ipam-affinity", backend);
    let (store, ipam) = open(&dir);
    put(&store, Kind::IpPool, "p", json!({"cidr": "10.66.0.0/27", "blockSize": 28}));
    nodes(&store, 3);
    let alloc = |node: &str, handle: &str, n: u32| {
        ipam.allocate(&AllocateRequest {
            node: node.into(),
            handle: handle.into(),
            ipv4: n,
            ..Default::default()
        })
    };
    let a = alloc("n0", "a", 10).expect("n0 claims a block");
    let block_a = a.ips[0].addr();
    assert!(
        a.ips
            .iter()
            .all(|ip| ipnet::IpNet::new(block_a, 28).expect("net").trunc().contains(&ip.addr()))
    );
    alloc("n1", "b", 16).expect("n1 claims the other block");
    let c = alloc("n0", "c", 6).expect("n0 fills its own block");
    assert_eq!(c.ips.len(), 6);
    // Both blocks claimed; n2 must borrow.
    put(&store, Kind::IpamConfig, "default", json!({"strictAffinity": true}));
    let err = alloc("n2", "d", 1).expect_err("strict: no borrowing");
    assert!(err.to_string().contains("strictAffinity"), "{err}");
    ipam.release(&ReleaseRequest { handle: Some("c".into()), ips: vec![] }).expect("release");
    assert!(alloc("n2", "d", 1).is_err(), "strict affinity still forbids n2");
    put(&store, Kind::IpamConfig, "default", json!({"strictAffinity": false}));
    let d = alloc("n2", "d", 2).expect("borrows");
    let usage = ipam.usage().expect("usage");
    let borrowed: Vec<_> = usage.pools[0].blocks.iter().flat_map(|b| b.borrowed.clone()).collect();
    assert_eq!(borrowed.len(), 2);
    assert!(borrowed.iter().all(|b| b.node == "n2" && d.ips.iter().any(|ip| ip.addr() == b.ip)));
}
}

both! {
    fn allocation_copies_only_the_block_it_writes_however_many_full_blocks_a_node_has(backend: Backend) {
    let dir = TempDir::with("ipam-full-blocks", backend);
    let (store, ipam) = open(&dir);
    put(&store, Kind::IpPool, "p", json!({"cidr": "10.66.0.0/26", "blockSize": 29}));
    nodes(&store, 1);
    let alloc = |handle: &str| {
        ipam.allocate(&AllocateRequest {
            node: "n0".into(),
            handle: handle.into(),
            ipv4: 1,
            ..Default::default()
        })
    };
    for i in 0..40 {
        alloc(&format!("fill{i}")).expect("fill five blocks");
    }
    let before = ipam.block_copies();
    alloc("next").expect("a sixth block");
    alloc("again").expect("same block");
    // Five full blocks are skipped, not copied and found full (that made allocation slow
    // down with every block a node filled).
    assert_eq!(ipam.block_copies() - before, 2);
}
}

both! {
    fn dual_stack_is_all_or_nothing_and_a_retry_returns_the_same_addresses(backend: Backend) {
    let dir = TempDir::with("ipam-dual", backend);
    let (store, ipam) = open(&dir);
    put(&store, Kind::IpPool, "v4", json!({"cidr": "10.67.0.0/28", "blockSize": 28}));
    put(&store, Kind::IpPool, "v6", json!({"cidr": "fd00:67::/124", "blockSize": 124}));
    nodes(&store, 1);
    let req = |h: &str| AllocateRequest {
        node: "n0".into(),
        handle: h.into(),
        ipv4: 1,
        ipv6: 1,
        ..Default::default()
    };
    let first = ipam.allocate(&req("k8s.c1")).expect("dual stack");
    assert_eq!(first.ips.len(), 2);
    assert_eq!(
        ipam.allocate(&req("k8s.c1")).expect("retry"),
        first,
        "a retried ADD gets the same addresses"
    );
    for i in 2..=16 {
        ipam.allocate(&req(&format!("k8s.c{i}"))).expect("fill");
    }
    // v4 and v6 both full now; drain v6 only by releasing one v4 address.
    ipam.release(&ReleaseRequest {
        handle: None,
        ips: vec![ReleaseItem::Address(first.ips[0].addr().to_string())],
    })
    .expect("release v4");
    let err = ipam.allocate(&req("k8s.c17")).expect_err("no v6 left");
    assert!(matches!(err, IpamError::Exhausted(_)), "{err}");
    assert!(ipam.handle("k8s.c17").expect("handle").is_empty(), "the v4 address went back");
    let usage = ipam.usage().expect("usage");
    assert_eq!(usage.pools.iter().find(|p| p.name == "v4").map(|p| p.used), Some(15));
}
}

both! {
    fn specific_addresses_are_granted_once_and_name_their_holder(backend: Backend) {
    let dir = TempDir::with("ipam-specific", backend);
    let (store, ipam) = open(&dir);
    put(&store, Kind::IpPool, "v4", json!({"cidr": "10.68.0.0/24"}));
    nodes(&store, 2);
    let ip: IpAddr = "10.68.0.77".parse().expect("ip");
    let req = |node: &str, h: &str| AllocateRequest {
        node: node.into(),
        handle: h.into(),
        ip: Some(ip),
        ..Default::default()
    };
    let got = ipam.allocate(&req("n0", "a")).expect("free address");
    assert_eq!(got.ips, vec!["10.68.0.77/32".parse().expect("net")]);
    let err = ipam.allocate(&req("n1", "b")).expect_err("taken");
    assert!(err.to_string().contains("\"a\""), "{err}");
    let outside = AllocateRequest { ip: Some("10.99.0.1".parse().expect("ip")), ..req("n0", "c") };
    assert!(matches!(ipam.allocate(&outside), Err(IpamError::Invalid(_))));
}
}

both! {
    fn cooldown_holds_released_addresses_back(backend: Backend) {
    let dir = TempDir::with("ipam-cooldown", backend);
    let (store, ipam) = open(&dir);
    put(&store, Kind::IpPool, "v4", json!({"cidr": "10.69.0.0/28", "blockSize": 28}));
    put(&store, Kind::IpamConfig, "default", json!({"ipCooldownSeconds": 600}));
    nodes(&store, 1);
    let alloc = |h: &str| {
        ipam.allocate(&AllocateRequest {
            node: "n0".into(),
            handle: h.into(),
            ipv4: 1,
            ..Default::default()
        })
    };
    let first = alloc("a").expect("first");
    ipam.release(&ReleaseRequest { handle: Some("a".into()), ips: vec![] }).expect("release");
    for i in 0..15 {
        let got = alloc(&format!("h{i}")).expect("fill");
        assert_ne!(got.ips, first.ips, "a cooling address came back");
    }
    assert!(
        matches!(alloc("last"), Err(IpamError::Exhausted(_))),
        "the cooling address is not free yet"
    );
}
}

both! {
    fn pools_with_addresses_cannot_be_deleted_and_block_caps_hold(backend: Backend) {
    let dir = TempDir::with("ipam-pooldel", backend);
    let (store, ipam) = open(&dir);
    put(&store, Kind::IpPool, "v4", json!({"cidr": "10.70.0.0/26", "blockSize": 29}));
    put(
        &store,
        Kind::IpamConfig,
        "default",
        json!({"maxBlocksPerHost": 1, "strictAffinity": true}),
    );
    nodes(&store, 1);
    let alloc = |h: &str, n: u32| {
        ipam.allocate(&AllocateRequest {
            node: "n0".into(),
            handle: h.into(),
            ipv4: n,
            ..Default::default()
        })
    };
    alloc("a", 8).expect("one block");
    let err = alloc("b", 1).expect_err("cap");
    assert!(err.to_string().contains("maxBlocksPerHost (1)"), "{err}");
    let err = ipam.delete_pool("v4", None).expect_err("in use");
    assert!(err.to_string().contains("still holds 8 allocated address(es) in 1 block(s)"), "{err}");
    ipam.release(&ReleaseRequest { handle: Some("a".into()), ips: vec![] }).expect("release");
    ipam.delete_pool("v4", None).expect("empty pool deletes, blocks with it");
    assert!(ipam.raw_blocks().expect("blocks").is_empty());
    assert!(ipam.affinities().expect("affinities").is_empty());
}
}

both! {
    fn attributes_and_handles_are_bounded_and_a_block_never_outgrows_the_limit(backend: Backend) {
        let dir = TempDir::with("ipam-limits", backend);
        let (store, ipam) = open(&dir);
        put(&store, Kind::IpPool, "big", json!({"cidr": "10.80.0.0/20", "blockSize": 20}));
        nodes(&store, 1);
        let req = |handle: &str, attrs: Vec<(String, String)>| AllocateRequest {
            node: "n0".into(),
            handle: handle.into(),
            ipv4: 1,
            attributes: attrs.into_iter().collect(),
            ..AllocateRequest::default()
        };
        let too_many: Vec<(String, String)> = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(matches!(ipam.allocate(&req("a", too_many)), Err(IpamError::Invalid(_))));
        let too_big = vec![("k".to_string(), "x".repeat(3000))];
        assert!(matches!(ipam.allocate(&req("a", too_big)), Err(IpamError::Invalid(_))));
        assert!(matches!(ipam.allocate(&req("bad\nhandle", vec![])), Err(IpamError::Invalid(_))));
        // Near-limit attributes on every address: the block stops growing at the limit (lowered
        // here from 1 MiB so the test writes 30 blocks, not 500).
        ipam.limit_block_bytes(64 << 10);
        let attrs = || vec![("note".to_string(), "y".repeat(2000))];
        let mut refused = None;
        for i in 0..1000 {
            match ipam.allocate(&req(&format!("h{i}"), attrs())) {
                Ok(_) => {}
                Err(IpamError::Refused(m)) => {
                    refused = Some((i, m));
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        let (i, message) = refused.expect("the block limit is reached");
        assert!(i > 15, "refused after {i}: {message}");
        assert!(message.contains("smaller blockSize"), "{message}");
        for b in ipam.raw_blocks().expect("blocks") {
            let bytes = serde_json::to_vec(&b).expect("json").len();
            assert!(bytes <= 64 << 10, "{bytes}");
        }
        // Without attributes the same block still takes allocations.
        ipam.allocate(&req("plain", vec![])).expect("a plain allocation fits");
    }
}
