//! The route programmer against a real kernel: a private network namespace with a veth pair,
//! our routes written over netlink (blackholes, a link route, ECMP via two next hops, IPv6),
//! read back equal, a resync that writes nothing, and routes of other protocols never touched.
//! Root only; skipped (with a message) otherwise.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::{LinkUnspec, LinkVeth, RouteMessageBuilder};
use tartan_felix::netns::{self, TempNetns};
use tartan_felix::routes::netlink::NetlinkKernel;
use tartan_felix::routes::{Kernel, Programmer, Target};

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
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

#[test]
fn routes_round_trip_through_the_kernel_and_others_are_left_alone() {
    if !is_root() {
        eprintln!("skipping: needs root for a network namespace");
        return;
    }
    let ns = TempNetns::new("routes").expect("namespace");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let h = netns::netlink_in(&ns.path).expect("netlink");
        h.link().add(LinkVeth::new("v0", "v1").build()).execute().await.expect("veth");
        netns::run_in(&ns.path, || netns::sysctl("ipv6/conf/v0/accept_dad", "0")).expect("dad");
        for l in ["v0", "v1"] {
            h.link().set(LinkUnspec::new_with_name(l).up().build()).execute().await.expect("up");
        }
        let v0 = tartan_felix::cni::veth::index_of(&h, "v0").await.expect("index").expect("v0");
        h.address().add(v0, ip("10.0.0.1"), 24).execute().await.expect("v4 address");
        h.address().add(v0, ip("fd00::1"), 64).execute().await.expect("v6 address");
        // Somebody else's route (proto static): never ours to touch.
        let other = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .destination_prefix("10.99.0.0".parse().expect("v4"), 24)
            .gateway("10.0.0.9".parse().expect("gw"))
            .build();
        h.route().add(other).execute().await.expect("foreign route");

        let mut p = Programmer::new(
            NetlinkKernel::new(h.clone(), Some(&ns.path), 84).expect("kernel"),
            Duration::from_secs(10),
        );
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
        let table = NetlinkKernel::new(h.clone(), Some(&ns.path), 84)
            .expect("kernel")
            .routes()
            .await
            .expect("read");
        assert_eq!(table[&net("10.65.10.0/26")], Target::via(vec![ip("10.0.0.9")]));
        assert_eq!(p.apply(Instant::now()).await.expect("again").replaced, 0);
        p.set_learned(net("10.65.10.0/26"), None);
        p.apply(Instant::now()).await.expect("remove");

        let mut k = NetlinkKernel::new(h.clone(), Some(&ns.path), 84).expect("kernel");
        let table = k.routes().await.expect("read back");
        assert_eq!(table, p.desired(), "the kernel holds exactly the desired table");
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
