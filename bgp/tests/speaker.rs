//! Speaker against speaker over loopback: real sockets, real timers, the whole I/O layer.
//! Each test starts its own speakers on their own 127.0.0.x addresses and ephemeral ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tartan_bgp::config::{PeerAddress, PeerConfig, SpeakerConfig};
use tartan_bgp::fsm::State;
use tartan_bgp::io::Speaker;
use tartan_bgp::rib::{BestChange, Origination};
use tartan_bgp::types::{Asn, Community, Family, Prefix};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn p(s: &str) -> Prefix {
    s.parse().expect("prefix")
}

/// A speaker on `addr` (a loopback address of its own) with an ephemeral port.
async fn speaker(asn: u32, addr: &str) -> Speaker {
    let a = ip(addr);
    let IpAddr::V4(id) = a else { panic!("v4 only") };
    let mut cfg = SpeakerConfig::new(Asn(asn), id);
    cfg.listen = vec![SocketAddr::new(a, 0)];
    Speaker::start(cfg).await.expect("speaker starts")
}

fn port(s: &Speaker) -> u16 {
    s.listen_addresses()[0].port()
}

/// `from`'s neighbour `to`, reached at `to`'s listening port, with short timers.
fn neighbor(from_addr: &str, to: &Speaker, to_addr: &str) -> PeerConfig {
    let mut c = PeerConfig::new(ip(to_addr), to.config().asn);
    c.port = port(to);
    c.local_address = Some(ip(from_addr));
    c.hold_time = 9;
    c.connect_retry = 1;
    c
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A TCP counter of this namespace's kernel (`/proc/net/netstat`, `TcpExt:`): how the tests
/// see that a connection was tried and refused, rather than sleeping and hoping it was.
fn tcp_ext(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").expect("/proc/net/netstat");
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        panic!("no TcpExt counters in /proc/net/netstat")
    };
    let at = names.split_whitespace().position(|n| n == name).expect("a TcpExt counter");
    values.split_whitespace().nth(at).and_then(|v| v.parse().ok()).expect("a number")
}

async fn state_of(s: &Speaker, peer: &str) -> Option<State> {
    let st = s.status().await.ok()?;
    st.peers.iter().find(|x| x.address == peer).map(|x| x.state)
}

async fn established(s: &Speaker, peer: &str) -> bool {
    state_of(s, peer).await == Some(State::Established)
}

async fn has_route(s: &Speaker, prefix: &str) -> bool {
    let routes = s.routes(Family::Ipv4Unicast, None).await.unwrap_or_default();
    routes.iter().any(|r| r.prefix == p(prefix))
}

/// Two eBGP speakers, A (65001 on 127.0.0.11) and B (65002 on 127.0.0.12), peered.
async fn pair(a_addr: &str, b_addr: &str) -> (Speaker, Speaker) {
    let a = speaker(65001, a_addr).await;
    let b = speaker(65002, b_addr).await;
    a.add_peer(neighbor(a_addr, &b, b_addr)).await.expect("peer added");
    b.add_peer(neighbor(b_addr, &a, a_addr)).await.expect("peer added");
    wait_for("the session", || async {
        established(&a, b_addr).await && established(&b, a_addr).await
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_exchange_routes_with_path_next_hop_and_communities() {
    let (a, b) = pair("127.0.0.11", "127.0.0.12").await;
    let mut feed = b.subscribe().await.expect("feed");
    let o = Origination { communities: vec![Community::new(65001, 42)], ..Origination::default() };
    a.originate(p("10.1.0.0/24"), o).await.expect("originate");
    wait_for("the route at B", || has_route(&b, "10.1.0.0/24")).await;
    let routes = b.routes(Family::Ipv4Unicast, None).await.expect("routes");
    let path = &routes[0].paths[0];
    assert_eq!(path.from, Some(ip("127.0.0.11")));
    let attrs = &path.attrs.attrs;
    assert_eq!(
        attrs.as_path.as_ref().map(|x| x.asns().collect::<Vec<_>>()),
        Some(vec![Asn(65001)])
    );
    assert_eq!(attrs.communities, vec![Community::new(65001, 42)]);
    assert_eq!(
        path.attrs.next_hop,
        Some(tartan_bgp::types::NextHop::V4(Ipv4Addr::new(127, 0, 0, 11)))
    );
    // The kernel feed saw it too.
    let mut seen: Vec<BestChange> = Vec::new();
    while !seen.iter().any(|c| c.prefix == p("10.1.0.0/24") && c.best.is_some()) {
        let batch = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("feed")
            .expect("open");
        seen.extend(batch);
    }
    // Withdrawal.
    a.withdraw(p("10.1.0.0/24")).await.expect("withdraw");
    wait_for("the withdrawal at B", || async { !has_route(&b, "10.1.0.0/24").await }).await;
    let status = b.status().await.expect("status");
    let peer = &status.peers[0];
    assert_eq!(peer.remote_as, Some(65001));
    assert!(peer.capabilities.iter().any(|c| c == "four-octet-as"));
    assert!(peer.counters.routes_received >= 1);
    a.shutdown(false).await;
    b.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_neighbor_ends_its_session_and_its_routes() {
    let (a, b) = pair("127.0.0.21", "127.0.0.22").await;
    a.originate(p("10.2.0.0/24"), Origination::default()).await.expect("originate");
    wait_for("the route at B", || has_route(&b, "10.2.0.0/24")).await;
    b.remove_peer(PeerAddress::Single(ip("127.0.0.21"))).await.expect("removed");
    wait_for("the route gone", || async { !has_route(&b, "10.2.0.0/24").await }).await;
    wait_for("A to see the session end", || async { !established(&a, "127.0.0.22").await }).await;
    let st = a.status().await.expect("status");
    let err = st.peers[0].last_error.clone().unwrap_or_default();
    assert!(err.contains("De-configured") || err.contains("closed"), "{err}");
    a.shutdown(false).await;
    b.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_routes_until_the_restarted_speaker_sends_end_of_rib() {
    let (a, b) = pair("127.0.0.31", "127.0.0.32").await;
    a.originate(p("10.3.0.0/24"), Origination::default()).await.expect("originate");
    a.originate(p("10.3.1.0/24"), Origination::default()).await.expect("originate");
    wait_for("the routes at B", || has_route(&b, "10.3.1.0/24")).await;
    let b_port = port(&b);
    // A goes away without a NOTIFICATION, as a killed process would.
    a.shutdown(true).await;
    wait_for("B to see A go", || async { !established(&b, "127.0.0.31").await }).await;
    let routes = b.routes(Family::Ipv4Unicast, None).await.expect("routes");
    assert_eq!(routes.len(), 2, "the routes stay while A restarts");
    assert!(routes.iter().all(|r| r.paths[0].stale));
    // A comes back with one of its two routes; End-of-RIB takes the other away.
    let a2 = speaker(65001, "127.0.0.31").await;
    a2.originate(p("10.3.0.0/24"), Origination::default()).await.expect("originate");
    let mut n = PeerConfig::new(ip("127.0.0.32"), Asn(65002));
    n.port = b_port;
    n.local_address = Some(ip("127.0.0.31"));
    n.connect_retry = 1;
    a2.add_peer(n).await.expect("peer");
    wait_for("the stale route to go", || async { !has_route(&b, "10.3.1.0/24").await }).await;
    let routes = b.routes(Family::Ipv4Unicast, None).await.expect("routes");
    assert_eq!(routes.len(), 1);
    assert!(!routes[0].paths[0].stale);
    a2.shutdown(false).await;
    b.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_neighbor_from_a_range_is_accepted_and_forgotten_when_it_leaves() {
    let a = speaker(65001, "127.0.0.41").await;
    let b = speaker(65002, "127.0.0.42").await;
    b.add_peer(PeerConfig::range(p("127.0.0.40/30"), None)).await.expect("range");
    a.add_peer(neighbor("127.0.0.41", &b, "127.0.0.42")).await.expect("peer");
    wait_for("the dynamic session", || established(&b, "127.0.0.41")).await;
    let st = b.status().await.expect("status");
    assert!(st.peers[0].dynamic);
    a.shutdown(false).await;
    wait_for("the dynamic neighbor to go", || async {
        b.status()
            .await
            .map(|s| s.peers.iter().all(|x| x.state != State::Established))
            .unwrap_or(false)
    })
    .await;
    b.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_md5_sessions_come_up_with_the_same_password_and_not_with_another() {
    let a = speaker(65001, "127.0.0.51").await;
    let b = speaker(65002, "127.0.0.52").await;
    let mut na = neighbor("127.0.0.51", &b, "127.0.0.52");
    na.password = Some("s3cret".into());
    let mut nb = neighbor("127.0.0.52", &a, "127.0.0.51");
    nb.password = Some("s3cret".into());
    a.add_peer(na).await.expect("peer");
    b.add_peer(nb).await.expect("peer");
    wait_for("the signed session", || established(&a, "127.0.0.52")).await;
    a.shutdown(false).await;
    b.shutdown(false).await;

    let c = speaker(65001, "127.0.0.53").await;
    let d = speaker(65002, "127.0.0.54").await;
    let mut nc = neighbor("127.0.0.53", &d, "127.0.0.54");
    nc.password = Some("one".into());
    let mut nd = neighbor("127.0.0.54", &c, "127.0.0.53");
    nd.password = Some("two".into());
    let refused = tcp_ext("TCPMD5Failure");
    c.add_peer(nc).await.expect("peer");
    d.add_peer(nd).await.expect("peer");
    // Seen trying: the kernel refused segments signed with the other key, more than once.
    wait_for("connections refused for their key", || async {
        tcp_ext("TCPMD5Failure") >= refused + 2
    })
    .await;
    assert!(!established(&c, "127.0.0.54").await, "different keys must not connect");
    c.shutdown(false).await;
    d.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_prefix_limit_is_stopped_with_cease_1_and_retried_later() {
    let a = speaker(65001, "127.0.0.71").await;
    let b = speaker(65002, "127.0.0.72").await;
    a.add_peer(neighbor("127.0.0.71", &b, "127.0.0.72")).await.expect("peer");
    let mut limited = neighbor("127.0.0.72", &a, "127.0.0.71");
    limited.max_prefixes = Some(2);
    limited.max_prefixes_restart = Duration::from_secs(60);
    b.add_peer(limited).await.expect("peer");
    wait_for("the session", || established(&b, "127.0.0.71")).await;
    for n in 0..3 {
        a.originate(p(&format!("10.7.{n}.0/24")), Origination::default()).await.expect("originate");
    }
    wait_for("A to hear why", || async {
        let st = a.status().await.expect("status");
        st.peers[0].last_error.as_deref().is_some_and(|e| e.contains("Maximum Number of Prefixes"))
    })
    .await;
    wait_for("B to drop A's routes", || async {
        b.routes(Family::Ipv4Unicast, None).await.is_ok_and(|r| r.is_empty())
    })
    .await;
    let st = b.status().await.expect("status");
    assert_eq!(st.peers[0].state, State::Idle, "it waits max-prefixes-restart before trying again");
    a.shutdown(false).await;
    b.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_password_takes_the_key_off_the_listener() {
    let a = speaker(65001, "127.0.0.81").await;
    let b = speaker(65002, "127.0.0.82").await;
    let mut na = neighbor("127.0.0.81", &b, "127.0.0.82");
    na.passive = true;
    na.password = Some("old-secret".into());
    a.add_peer(na.clone()).await.expect("peer");
    let unsigned = tcp_ext("TCPMD5NotFound");
    b.add_peer(neighbor("127.0.0.82", &a, "127.0.0.81")).await.expect("peer");
    // Seen trying: the listener dropped unsigned segments from B, more than once.
    wait_for("unsigned connections dropped", || async {
        tcp_ext("TCPMD5NotFound") >= unsigned + 2
    })
    .await;
    assert!(!established(&a, "127.0.0.82").await, "an unsigned peer must not get through");
    na.password = None;
    a.update_peer(na).await.expect("updated");
    wait_for("the unsigned session", || established(&a, "127.0.0.82")).await;
    a.shutdown(false).await;
    b.shutdown(false).await;
}
