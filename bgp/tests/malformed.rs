//! RFC 7606 end to end: a peer played by hand over a real TCP connection sends malformed
//! UPDATEs to a running speaker. Treat-as-withdraw really withdraws and keeps the session,
//! a broken optional attribute is discarded, and only a broken MP_REACH_NLRI resets.

mod common;

use common::{RawPeer, eventually, p, routes, speaker, state};
use tartan_bgp::fsm::State;
use tartan_bgp::types::Family;
use tartan_bgp::wire::Message;

/// An UPDATE body: no withdrawals, `attrs`, and NLRI `10.0.<n>.0/24`.
fn update(attrs: &[u8], nets: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    for n in nets {
        b.extend_from_slice(&[24, 10, 0, *n]);
    }
    b
}

/// ORIGIN IGP, AS_PATH [65099], NEXT_HOP 10.99.0.1.
const BASE: &[u8] = &[
    0x40, 1, 1, 0, // ORIGIN
    0x40, 2, 6, 2, 1, 0, 0, 0xfe, 0x4b, // AS_PATH: one sequence of one four-octet AS
    0x40, 3, 4, 10, 99, 0, 1, // NEXT_HOP
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn treat_as_withdraw_removes_the_route_and_keeps_the_session() {
    let s = speaker("127.0.0.61", "127.0.0.62").await;
    let mut peer = RawPeer::connect("127.0.0.62", s.listen_addresses()[0]).await;
    eventually("Established", async || state(&s).await == State::Established).await;
    peer.send_raw(&update(BASE, &[1, 2])).await;
    eventually("both routes", async || routes(&s).await.len() == 2).await;
    // The same routes again with a COMMUNITIES attribute whose length is not a multiple of
    // four: RFC 7606 §7.8 says treat-as-withdraw.
    let mut attrs = BASE.to_vec();
    attrs.extend_from_slice(&[0xc0, 8, 3, 1, 2, 3]);
    peer.send_raw(&update(&attrs, &[1])).await;
    eventually("10.0.1.0/24 withdrawn", async || routes(&s).await == vec![p("10.0.2.0/24")]).await;
    assert_eq!(state(&s).await, State::Established);
    let counters = s.status().await.expect("status").peers[0].counters;
    assert_eq!(counters.treat_as_withdraw, 1);
    s.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_optional_attribute_is_discarded_and_the_route_kept() {
    let s = speaker("127.0.0.63", "127.0.0.64").await;
    let mut peer = RawPeer::connect("127.0.0.64", s.listen_addresses()[0]).await;
    eventually("Established", async || state(&s).await == State::Established).await;
    // AGGREGATOR of the wrong length: RFC 7606 §7.7 says discard the attribute.
    let mut attrs = BASE.to_vec();
    attrs.extend_from_slice(&[0xc0, 7, 3, 1, 2, 3]);
    peer.send_raw(&update(&attrs, &[3])).await;
    eventually("the route", async || routes(&s).await == vec![p("10.0.3.0/24")]).await;
    let r = s.routes(Family::Ipv4Unicast, None).await.expect("routes");
    assert_eq!(r[0].paths[0].attrs.attrs.aggregator, None);
    assert_eq!(state(&s).await, State::Established);
    s.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_mp_reach_resets_the_session_with_the_right_notification() {
    let s = speaker("127.0.0.65", "127.0.0.66").await;
    let mut peer = RawPeer::connect("127.0.0.66", s.listen_addresses()[0]).await;
    eventually("Established", async || state(&s).await == State::Established).await;
    // MP_REACH_NLRI for IPv6 with a next hop length of 7: its routes cannot be found, so
    // RFC 7606 §7.11 resets the session (UPDATE Message Error / Optional Attribute Error).
    let mut attrs = BASE[..13].to_vec();
    attrs.extend_from_slice(&[0x80, 14, 12, 0, 2, 1, 7, 1, 2, 3, 4, 5, 6, 7, 0]);
    peer.send_raw(&update(&attrs, &[])).await;
    let mut notification = None;
    while let Some(m) = peer.next().await {
        if let Message::Notification(n) = m {
            notification = Some(n);
            break;
        }
    }
    let n = notification.expect("a NOTIFICATION before the close");
    assert_eq!((n.code, n.subcode), (3, 9), "{n}");
    eventually("the session down", async || state(&s).await != State::Established).await;
    s.shutdown(false).await;
}
