//! What the tests that play a BGP peer by hand share: the speaker under test with one passive
//! neighbor, and [`RawPeer`], a peer written byte by byte over a real TCP connection.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tartan_bgp::config::{PeerConfig, SpeakerConfig};
use tartan_bgp::fsm::State;
use tartan_bgp::io::Speaker;
use tartan_bgp::types::{Asn, Family, FamilySet, Prefix};
use tartan_bgp::wire::{Capability, Codec, Message, Open};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const PEER_AS: u32 = 65099;

/// The speaker under test on `addr`, with one passive neighbor at `peer`.
pub async fn speaker(addr: &str, peer: &str) -> Speaker {
    let a: IpAddr = addr.parse().expect("addr");
    let IpAddr::V4(id) = a else { panic!("v4") };
    let mut cfg = SpeakerConfig::new(Asn(65001), id);
    cfg.listen = vec![SocketAddr::new(a, 0)];
    let s = Speaker::start(cfg).await.expect("starts");
    let mut n = PeerConfig::new(peer.parse().expect("addr"), Asn(PEER_AS));
    n.passive = true;
    n.families = FamilySet::all();
    s.add_peer(n).await.expect("peer");
    s
}

/// A hand-played peer: connects from `from`, exchanges OPENs and KEEPALIVEs.
pub struct RawPeer {
    pub stream: TcpStream,
    pub codec: Codec,
}

impl RawPeer {
    pub async fn connect(from: &str, to: SocketAddr) -> RawPeer {
        let mut peer = RawPeer::connect_silent(from, to).await;
        let hello = peer.hello();
        peer.stream.write_all(&hello).await.expect("send");
        assert!(matches!(peer.next().await, Some(Message::Open(_))));
        peer
    }

    /// Connects from `from` with Nagle off, and sends nothing yet.
    pub async fn connect_silent(from: &str, to: SocketAddr) -> RawPeer {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(from.parse().expect("addr"), 0)).expect("bind");
        let stream = socket.connect(to).await.expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        RawPeer { stream, codec: Codec { four_octet_as: true, ..Codec::default() } }
    }

    /// OPEN (AS 65099, hold 90 s, IPv4 and IPv6 unicast) and KEEPALIVE, encoded.
    pub fn hello(&self) -> Vec<u8> {
        let caps = vec![
            Capability::multiprotocol(Family::Ipv4Unicast),
            Capability::multiprotocol(Family::Ipv6Unicast),
        ];
        let open = Open::new(Asn(PEER_AS), 90, Ipv4Addr::new(10, 99, 0, 1), caps);
        let mut out = Vec::new();
        self.codec.encode(&Message::Open(open), &mut out).expect("encode");
        self.codec.encode(&Message::Keepalive, &mut out).expect("encode");
        out
    }

    /// The next message, or `None` when the connection ends.
    pub async fn next(&mut self) -> Option<Message> {
        let mut header = [0u8; 19];
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut header))
            .await
            .ok()?
            .ok()?;
        let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
        let mut msg = header.to_vec();
        msg.resize(len, 0);
        self.stream.read_exact(&mut msg[19..]).await.ok()?;
        Some(self.codec.decode(&msg).expect("the speaker sends valid messages"))
    }

    pub async fn send_raw(&mut self, update_body: &[u8]) {
        let mut msg = vec![0xff; 16];
        msg.extend_from_slice(&((19 + update_body.len()) as u16).to_be_bytes());
        msg.push(2);
        msg.extend_from_slice(update_body);
        self.stream.write_all(&msg).await.expect("send");
    }
}

pub async fn routes(s: &Speaker) -> Vec<Prefix> {
    s.routes(Family::Ipv4Unicast, None).await.unwrap_or_default().iter().map(|r| r.prefix).collect()
}

pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut f: F) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

pub fn p(s: &str) -> Prefix {
    s.parse().expect("prefix")
}

pub async fn state(s: &Speaker) -> State {
    s.status().await.map(|x| x.peers[0].state).unwrap_or(State::Idle)
}
