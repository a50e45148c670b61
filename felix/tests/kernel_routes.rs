//! The route programmer against a real kernel: a private network namespace with a veth pair,
//! our routes written over netlink (blackholes, a link route, ECMP via two next hops, IPv6),
//! read back equal, a resync that writes nothing, and routes of other protocols never touched,
//! with learned routes naming nexthop objects and with their next hops inline; the objects
//! shared, kept across a restart, deleted once unused, and others' objects left alone.
//! Root only: without root they fail and say so (TARTAN_SKIP_LAB_TESTS=1 skips them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::{LinkUnspec, LinkVeth, RouteMessageBuilder};
use tartan_felix::netns::{self, TempNetns};
use tartan_felix::routes::batch::RawRoutes;
use tartan_felix::routes::netlink::NetlinkKernel;
use tartan_felix::routes::wire::NexthopObject;
use tartan_felix::routes::{Kernel, Programmer, Target};

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

async fn all_destinations(h: &rtnetlink::Handle) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for family in [
        rtnetlink::packet_route::AddressFamily::Inet,
        rtnetlink::packet_route::AddressFamily::Inet6,
    ] {
        let mut q = RouteMessage::default();
        q.header.address_family = family;
        let mut s = h.route().get(q).execute();
        while let Some(r) = s.try_next().await.expect("dump") {
            for a in &r.attributes {
                if let rtnetlink::packet_route::route::RouteAttribute::Destination(d) = a {
                    out.insert(format!("{d:?}/{}", r.header.destination_prefix_length));
                }
            }
        }
    }
    out
}

/// A namespace with a veth pair: v0 holds 10.0.0.1/24 and fd00::1/64.
async fn veth_namespace(ns: &TempNetns) -> rtnetlink::Handle {
    let h = netns::netlink_in(&ns.path).expect("netlink");
    h.link().add(LinkVeth::new("v0", "v1").build()).execute().await.expect("veth");
    netns::run_in(&ns.path, || netns::sysctl("ipv6/conf/v0/accept_dad", "0")).expect("dad");
    for l in ["v0", "v1"] {
        h.link().set(LinkUnspec::new_with_name(l).up().build()).execute().await.expect("up");
    }
    let v0 = tartan_felix::cni::veth::index_of(&h, "v0").await.expect("index").expect("v0");
    h.address().add(v0, ip("10.0.0.1"), 24).execute().await.expect("v4 address");
    h.address().add(v0, ip("fd00::1"), 64).execute().await.expect("v6 address");
    h
}

fn kernel(ns: &TempNetns, objects: bool) -> NetlinkKernel {
    let k = NetlinkKernel::new(Some(&ns.path), 84).expect("kernel");
    if objects { k } else { k.without_nexthop_objects() }
}

/// Our nexthop objects in the namespace (protocol 84).
fn our_objects(ns: &TempNetns) -> Vec<NexthopObject> {
    let mut raw = RawRoutes::open(Some(&ns.path)).expect("raw socket");
    raw.nexthops().expect("nexthop dump").into_iter().filter(|o| o.protocol == 84).collect()
}

/// The object each of our routes names.
fn objects_named(ns: &TempNetns) -> BTreeMap<IpNet, Option<u32>> {
    let mut raw = RawRoutes::open(Some(&ns.path)).expect("raw socket");
    let dump = raw.dump().expect("route dump");
    dump.into_iter().filter(|r| r.protocol == 84).map(|r| (r.dst, r.object)).collect()
}

#[test]
fn routes_round_trip_through_the_kernel_naming_nexthop_objects() {
    round_trip(true);
}

#[test]
fn routes_round_trip_through_the_kernel_with_next_hops_inline() {
    round_trip(false);
}

fn round_trip(objects: bool) {
    if !netns::root_tests_enabled() {
        return;
    }
    let ns = TempNetns::new("routes").expect("namespace");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let h = veth_namespace(&ns).await;
        // Somebody else's route (proto static): never ours to touch.
        let other = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .destination_prefix("10.99.0.0".parse().expect("v4"), 24)
            .gateway("10.0.0.9".parse().expect("gw"))
            .build();
        h.route().add(other).execute().await.expect("foreign route");

        let mut p = Programmer::new(kernel(&ns, objects), Duration::from_secs(10));
        p.set_learned_converged();
        p.set_blocks([net("10.65.0.0/26"), net("fd00:65::/122")].into());
        p.set_workload(net("10.65.0.5/32"), "v0");
        p.set_workload(net("fd00:65::5/128"), "v0");
        p.set_learned(net("10.65.1.0/26"), Some(vec![ip("10.0.0.3"), ip("10.0.0.2")]));
        p.set_learned(net("fd00:65::40/122"), Some(vec![ip("fd00::2")]));
        // A next hop the kernel cannot reach fails alone; the routes around it are written.
        p.set_learned(net("10.65.9.0/26"), Some(vec![ip("192.0.2.1")]));
        let first = p.apply(Instant::now()).await.expect("apply");
        assert_eq!(first.failed.len(), 1, "{:?}", first.failed);
        assert_eq!(first.failed[0].0, net("10.65.9.0/26"));
        assert_eq!(first.replaced, 6);
        p.set_learned(net("10.65.9.0/26"), None);

        // A next hop behind a router (10.99.0.0/24 via 10.0.0.9, the foreign route): the route
        // goes through the router ("gateway recursive"), and stays put on the next apply.
        p.set_learned(net("10.65.10.0/26"), Some(vec![ip("10.99.0.7")]));
        let recursive = p.apply(Instant::now()).await.expect("apply");
        assert!(recursive.failed.is_empty(), "{:?}", recursive.failed);
        let table = kernel(&ns, objects).routes().await.expect("read");
        assert_eq!(table[&net("10.65.10.0/26")], Target::via(vec![ip("10.0.0.9")]));
        assert_eq!(p.apply(Instant::now()).await.expect("again").replaced, 0);
        p.set_learned(net("10.65.10.0/26"), None);
        p.apply(Instant::now()).await.expect("remove");

        // A next hop reached only through a route of ours (a default route learned from the
        // ToR) goes through that route's gateway, once the default is in.
        p.set_learned(net("0.0.0.0/0"), Some(vec![ip("10.0.0.2")]));
        p.set_learned(net("10.65.11.0/26"), Some(vec![ip("10.77.0.9")]));
        p.apply(Instant::now()).await.expect("apply");
        let settled = p.apply(Instant::now()).await.expect("apply");
        assert!(settled.failed.is_empty(), "{:?}", settled.failed);
        let table = kernel(&ns, objects).routes().await.expect("read");
        assert_eq!(table[&net("10.65.11.0/26")], Target::via(vec![ip("10.0.0.2")]));
        p.set_learned(net("0.0.0.0/0"), None);
        p.set_learned(net("10.65.11.0/26"), None);
        p.apply(Instant::now()).await.expect("remove");

        let mut k = kernel(&ns, objects);
        let table = k.routes().await.expect("read back");
        assert_eq!(table, p.desired(), "the kernel holds exactly the desired table");
        let named = objects_named(&ns);
        let learned = [net("10.65.1.0/26"), net("fd00:65::40/122")];
        for dst in learned {
            assert_eq!(named[&dst].is_some(), objects, "{dst} names an object: {named:?}");
        }
        assert!(named[&net("10.65.0.0/26")].is_none(), "blackholes are written as before");
        assert_eq!(our_objects(&ns).is_empty(), !objects);
        assert_eq!(table[&net("10.65.1.0/26")], Target::via(vec![ip("10.0.0.2"), ip("10.0.0.3")]));

        let again = p.apply(Instant::now()).await.expect("resync");
        assert_eq!(
            (again.replaced, again.deleted, again.kernel_routes),
            (0, 0, 6),
            "a resync writes nothing"
        );

        p.remove_workload(net("10.65.0.5/32"), "v0");
        p.set_learned(net("10.65.1.0/26"), Some(vec![ip("10.0.0.2")]));
        let change = p.apply(Instant::now()).await.expect("change");
        assert_eq!((change.replaced, change.deleted), (1, 0), "the veth route waits out its grace");
        let later = p.apply(Instant::now() + Duration::from_secs(11)).await.expect("later");
        assert_eq!(later.deleted, 1);
        assert_eq!(k.routes().await.expect("read"), p.desired());

        p.set_blocks(BTreeSet::new());
        p.remove_workload(net("fd00:65::5/128"), "v0");
        p.set_learned(net("10.65.1.0/26"), None);
        p.set_learned(net("fd00:65::40/122"), None);
        let t = Instant::now();
        assert_eq!(p.apply(t).await.expect("clear").held, 1, "the veth route waits");
        p.apply(t + Duration::from_secs(11)).await.expect("clear");
        assert!(k.routes().await.expect("read").is_empty());
        assert_eq!(our_objects(&ns), vec![], "objects no route names are deleted");

        // A learned route to where someone else's route is (the foreign 10.99.0.0/24) is
        // refused rather than written over it, and theirs stays.
        p.set_learned(net("10.99.0.0/24"), Some(vec![ip("10.0.0.2")]));
        let refused = p.apply(Instant::now()).await.expect("apply");
        assert_eq!(refused.failed.len(), 1, "{refused:?}");
        assert!(k.routes().await.expect("read").is_empty());
        p.set_learned(net("10.99.0.0/24"), None);
        assert!(
            all_destinations(&h).await.iter().any(|d| d.contains("10.99.0.0")),
            "the foreign route stayed"
        );
    });
}

fn ip_in(ns: &TempNetns, args: &str) {
    let ok = std::process::Command::new("ip")
        .arg("-n")
        .arg(&ns.name)
        .args(args.split_whitespace())
        .status()
        .expect("running ip")
        .success();
    assert!(ok, "ip -n {} {args}", ns.name);
}

#[test]
fn learned_routes_share_objects_kept_across_a_restart_and_deleted_once_unused() {
    if !netns::root_tests_enabled() {
        return;
    }
    let ns = TempNetns::new("nexthops").expect("namespace");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let h = veth_namespace(&ns).await;
        // Someone else's object (proto static), and a route of theirs naming it.
        ip_in(&ns, "nexthop add id 5 via 10.0.0.9 dev v0 proto static");
        ip_in(&ns, "route add 10.99.0.0/24 nhid 5");

        let single = |i: u32| net(&format!("10.65.{}.0/24", i));
        let ecmp = |i: u32| net(&format!("10.66.{}.0/24", i));
        let v6 = |i: u32| net(&format!("fd00:65:{i:x}::/64"));
        let learn = |p: &mut Programmer<NetlinkKernel>| {
            for i in 0..100 {
                p.set_learned(single(i), Some(vec![ip("10.0.0.2")]));
            }
            for i in 0..10 {
                p.set_learned(ecmp(i), Some(vec![ip("10.0.0.3"), ip("10.0.0.2")]));
                p.set_learned(v6(i), Some(vec![ip("fd00::2")]));
            }
        };
        let mut p = Programmer::new(kernel(&ns, true), Duration::from_secs(10));
        p.set_learned_converged();
        learn(&mut p);
        let first = p.apply(Instant::now()).await.expect("apply");
        assert_eq!((first.replaced, first.failed.len()), (120, 0), "{first:?}");

        // Four objects: 10.0.0.2, 10.0.0.3, the group of both, fd00::2.
        let objects = our_objects(&ns);
        assert_eq!(objects.len(), 4, "{objects:?}");
        let group = objects.iter().find(|o| !o.group.is_empty()).expect("a group");
        assert_eq!(group.group.len(), 2);
        let named = objects_named(&ns);
        let via = |dst: IpNet| named[&dst].expect("names an object");
        assert!((1..100).all(|i| via(single(i)) == via(single(0))), "one object for 100 routes");
        assert!((0..10).all(|i| via(ecmp(i)) == group.id), "the ECMP routes name the group");
        assert!(objects.iter().all(|o| o.id != 5), "another's ID is never reused");
        let mut raw = RawRoutes::open(Some(&ns.path)).expect("raw socket");
        let found = raw.lookup(ip("10.65.7.1")).expect("lookup").expect("a route");
        assert_eq!((found.gateway, found.object), (Some(ip("10.0.0.2")), Some(via(single(0)))));

        // A restart: a new programmer over a new socket finds everything in place.
        let mut again = Programmer::new(kernel(&ns, true), Duration::from_secs(10));
        again.set_learned_converged();
        learn(&mut again);
        let resync = again.apply(Instant::now()).await.expect("resync");
        assert_eq!((resync.replaced, resync.deleted, resync.kernel_routes), (0, 0, 120));
        assert_eq!(our_objects(&ns), objects, "the same objects, none added or deleted");

        // Without compat mode the kernel reports only `nhid`: read through the objects.
        netns::run_in(&ns.path, || netns::sysctl("ipv4/nexthop_compat_mode", "0"))
            .expect("compat mode off");
        let table = kernel(&ns, true).routes().await.expect("read");
        assert_eq!(table, again.desired());
        // A next hop behind a default route of ours, which the kernel now reports as `nhid`
        // alone: the object says where it goes.
        again.set_learned(net("0.0.0.0/0"), Some(vec![ip("10.0.0.2")]));
        again.apply(Instant::now()).await.expect("apply");
        again.set_learned(net("10.67.0.0/24"), Some(vec![ip("10.77.0.9")]));
        let behind = again.apply(Instant::now()).await.expect("apply");
        assert!(behind.failed.is_empty(), "{:?}", behind.failed);
        let table = kernel(&ns, true).routes().await.expect("read");
        assert_eq!(table[&net("10.67.0.0/24")], Target::via(vec![ip("10.0.0.2")]));
        again.set_learned(net("0.0.0.0/0"), None);
        again.set_learned(net("10.67.0.0/24"), None);
        again.apply(Instant::now()).await.expect("apply");
        netns::run_in(&ns.path, || netns::sysctl("ipv4/nexthop_compat_mode", "1"))
            .expect("compat mode on");

        // The ECMP routes go to 10.0.0.2 alone: the group and 10.0.0.3 go with them.
        for i in 0..10 {
            again.set_learned(ecmp(i), Some(vec![ip("10.0.0.2")]));
        }
        let moved = again.apply(Instant::now()).await.expect("apply");
        assert_eq!((moved.replaced, moved.failed.len()), (10, 0), "{moved:?}");
        let left: Vec<_> = our_objects(&ns).into_iter().map(|o| o.gateway).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&Some(ip("10.0.0.2"))) && left.contains(&Some(ip("fd00::2"))));

        // Everything withdrawn: no object of ours is left; theirs and their route stay.
        for i in 0..100 {
            again.set_learned(single(i), None);
        }
        for i in 0..10 {
            again.set_learned(ecmp(i), None);
            again.set_learned(v6(i), None);
        }
        let cleared = again.apply(Instant::now()).await.expect("apply");
        assert_eq!((cleared.deleted, cleared.failed.len()), (120, 0), "{cleared:?}");
        assert_eq!(our_objects(&ns), vec![]);
        let theirs = raw.nexthops().expect("dump");
        assert!(theirs.iter().any(|o| o.id == 5), "their object stays: {theirs:?}");
        assert!(all_destinations(&h).await.iter().any(|d| d.contains("10.99.0.0")));
    });
}

/// Large replies: an IPv6 route of 100 paths (a 3.3 KiB message; the kernel refuses to report
/// one of about 140 or more with EMSGSIZE, to `ip` as to us) is read whole by a lookup and a
/// dump.
#[test]
fn an_ecmp_route_of_100_paths_reads_back_whole() {
    if !netns::root_tests_enabled() {
        return;
    }
    let ns = TempNetns::new("bigreply").expect("namespace");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        veth_namespace(&ns).await;
        // One path at a time (`ip` cannot parse this many `nexthop`s in one line): IPv6
        // appends each as a sibling of the same route.
        let batch: String = (0..100)
            .map(|i| format!("route append fd10::/64 via fd00::{:x} dev v0\n", 0x100 + i))
            .collect();
        let mut child = std::process::Command::new("ip")
            .args(["-n", &ns.name, "-6", "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("running ip");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), batch.as_bytes())
            .expect("writing the batch");
        assert!(child.wait().expect("ip").success(), "ip -batch");
        let mut raw = RawRoutes::open(Some(&ns.path)).expect("raw socket");
        let found = raw.lookup(ip("fd10::1")).expect("lookup").expect("a route to fd10::1");
        assert_eq!(found.dst, net("fd10::/64"));
        assert_eq!(found.multipath.len(), 100);
        let dumped = raw.dump().expect("dump");
        let route = dumped.iter().find(|r| r.dst == net("fd10::/64")).expect("in the dump");
        assert_eq!(route.multipath.len(), 100);
    });
}

/// A learned route to the subnet of one of the namespace's own addresses is never written, also
/// while that address's link is down (the connected route must come back with the link).
#[test]
fn a_learned_route_to_a_connected_subnet_stays_out_while_its_link_is_down() {
    if !netns::root_tests_enabled() {
        return;
    }
    let ns = TempNetns::new("connected").expect("namespace");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        veth_namespace(&ns).await;
        ip_in(&ns, "link add d0 type veth peer name d1");
        ip_in(&ns, "link set d1 up");
        ip_in(&ns, "addr add 10.2.1.2/30 dev d0");
        ip_in(&ns, "link set d0 down");
        let mut p = Programmer::new(kernel(&ns, true), Duration::from_secs(10));
        p.set_learned_converged();
        p.set_learned(net("10.2.1.0/30"), Some(vec![ip("10.0.0.2")]));
        p.set_learned(net("10.70.0.0/24"), Some(vec![ip("10.0.0.2")]));
        let report = p.apply(Instant::now()).await.expect("apply");
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let table = kernel(&ns, true).routes().await.expect("read");
        assert!(table.contains_key(&net("10.70.0.0/24")), "{table:?}");
        assert!(!table.contains_key(&net("10.2.1.0/30")), "{table:?}");
        ip_in(&ns, "link set d0 up");
        let out = std::process::Command::new("ip")
            .args(["-n", &ns.name, "route", "show", "10.2.1.0/30"])
            .output()
            .expect("ip route");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.contains("dev d0 proto kernel"), "the connected route is back: {shown}");
    });
}

/// BFD finds a next hop dead: 10,000 ECMP routes through it and another leave it in one
/// nexthop group replacement; the kernel forwards by the survivor at once, and BGP's own
/// withdrawal that follows finds nothing left to write.
#[test]
fn a_dead_gateway_leaves_ten_thousand_ecmp_routes_in_one_write() {
    if !netns::root_tests_enabled() {
        return;
    }
    let ns = TempNetns::new("deadgw").expect("namespace");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        veth_namespace(&ns).await;
        let mut p = Programmer::new(kernel(&ns, true), Duration::from_secs(10));
        p.set_learned_converged();
        let dsts: Vec<IpNet> = (0..10_000u32)
            .map(|i| IpNet::new(IpAddr::V4((0x0a40_0000 + (i << 8)).into()), 24).expect("prefix"))
            .collect();
        for d in &dsts {
            p.set_learned(*d, Some(vec![ip("10.0.0.2"), ip("10.0.0.3")]));
        }
        let first = p.apply(Instant::now()).await.expect("apply");
        assert_eq!(first.replaced, 10_000, "{:?}", first.failed);

        let started = Instant::now();
        let writes = p.drop_gateway(ip("10.0.0.2")).await.expect("drop");
        let took = started.elapsed();
        assert_eq!(writes, 1, "one group, however many routes");
        println!("10,000 routes off a dead next hop in {writes} write, {took:?}");
        let table = kernel(&ns, true).routes().await.expect("read");
        for d in dsts.iter().step_by(997) {
            assert_eq!(table[d], Target::via(vec![ip("10.0.0.3")]), "{d}");
        }
        let mut raw = RawRoutes::open(Some(&ns.path)).expect("raw socket");
        let found = raw.lookup(ip("10.64.7.1")).expect("lookup").expect("a route");
        assert_eq!(found.gateway, Some(ip("10.0.0.3")), "the kernel forwards by the survivor");

        // BGP's withdrawal of the dead path: the kernel already holds what it wants.
        for d in &dsts {
            p.set_learned(*d, Some(vec![ip("10.0.0.3")]));
        }
        let after = p.apply(Instant::now()).await.expect("apply");
        assert_eq!(after.replaced, 0, "nothing left to write");
        assert!(after.failed.is_empty(), "{:?}", after.failed);
        // The next hop back: a new group for both, the routes move to it.
        for d in &dsts {
            p.set_learned(*d, Some(vec![ip("10.0.0.2"), ip("10.0.0.3")]));
        }
        let back = p.apply(Instant::now()).await.expect("apply");
        assert_eq!(back.replaced, 10_000, "{:?}", back.failed);
        assert!(p.drop_gateway(ip("10.0.0.9")).await.expect("drop") == 0, "no group holds it");
    });
}
