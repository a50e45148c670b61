//! A peer that writes its byte stream in tiny pieces (1-40 octets, TCP_NODELAY, pauses between
//! some writes) as a busy router's TCP may deliver it: every read boundary, inside a marker, a
//! length or a type field included, must leave the session up and every route learned.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{PEER_AS, RawPeer, eventually, routes, speaker, state};
use tartan_bgp::fsm::State;
use tartan_bgp::wire::{Message, Notification};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;

/// xorshift64*: the same pieces for the same seed, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `count` UPDATEs shaped like a full table's: one to four prefixes each, of the DFZ's usual
/// lengths, an AS path of one to four ASes after the peer's own, a community on about half.
/// Returns the stream and the distinct prefixes it announces.
fn updates(rng: &mut Rng, count: usize) -> (Vec<u8>, BTreeSet<String>) {
    const LENGTHS: [u8; 10] = [24, 24, 24, 24, 24, 24, 22, 23, 21, 20];
    let mut out = Vec::new();
    let mut prefixes = BTreeSet::new();
    for _ in 0..count {
        let mut attrs = vec![0x40, 1, 1, 0]; // ORIGIN IGP
        let hops = 1 + rng.below(4) as usize;
        let mut path = vec![2, (hops + 1) as u8];
        path.extend_from_slice(&PEER_AS.to_be_bytes());
        for _ in 0..hops {
            path.extend_from_slice(&(1 + rng.below(70_000) as u32).to_be_bytes());
        }
        attrs.extend_from_slice(&[0x40, 2, path.len() as u8]);
        attrs.extend_from_slice(&path);
        attrs.extend_from_slice(&[0x40, 3, 4, 10, 99, 0, 1]); // NEXT_HOP
        if rng.below(2) == 0 {
            attrs.extend_from_slice(&[0xc0, 8, 4]);
            attrs.extend_from_slice(&(rng.next() as u32).to_be_bytes());
        }
        let mut nlri = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let len = LENGTHS[rng.below(LENGTHS.len() as u64) as usize];
            // Unicast space outside 0/8, 127/8 and multicast.
            let addr = (1u32 + rng.below(126) as u32) << 24 | (rng.next() as u32 & 0x00ff_ffff);
            let addr = addr & (u32::MAX << (32 - len));
            let octets = addr.to_be_bytes();
            nlri.push(len);
            nlri.extend_from_slice(&octets[..usize::from(len).div_ceil(8)]);
            prefixes.insert(format!("{}/{len}", std::net::Ipv4Addr::from(addr)));
        }
        let body_len = 4 + attrs.len() + nlri.len();
        out.extend_from_slice(&[0xff; 16]);
        out.extend_from_slice(&((19 + body_len) as u16).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        out.extend_from_slice(&attrs);
        out.extend_from_slice(&nlri);
        if rng.below(50) == 0 {
            out.extend_from_slice(&[0xff; 16]);
            out.extend_from_slice(&[0, 19, 4]); // KEEPALIVE between UPDATEs
        }
    }
    (out, prefixes)
}

/// Reads what the speaker sends until the connection ends; returns the NOTIFICATION, if any.
async fn drain(mut rd: OwnedReadHalf, codec: tartan_bgp::wire::Codec) -> Option<Notification> {
    let mut framer = tartan_bgp::wire::Framer::new(tartan_bgp::wire::EXTENDED_MAX_LEN);
    loop {
        use tokio::io::AsyncReadExt;
        match rd.read_buf(framer.spare()).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let taken = framer.take();
        let mut rest = &taken.messages[..];
        while let Ok(Some((_, len))) = codec.frame(rest) {
            if let Ok(Message::Notification(n)) = codec.decode(&rest[..len]) {
                return Some(n);
            }
            rest = &rest[len..];
        }
        if taken.error.is_some() {
            return None;
        }
    }
}

/// Sends OPEN, KEEPALIVE and `count` UPDATEs in pieces of 1 to `biggest` octets; the session
/// must stay up and learn every prefix.
async fn in_pieces(addr: &str, peer_addr: &str, seed: u64, count: usize, biggest: u64) {
    let s = speaker(addr, peer_addr).await;
    let peer = RawPeer::connect_silent(peer_addr, s.listen_addresses()[0]).await;
    let mut rng = Rng(seed);
    let mut bytes = peer.hello();
    let (table, prefixes) = updates(&mut rng, count);
    bytes.extend_from_slice(&table);
    let (rd, mut wr) = peer.stream.into_split();
    let reader = tokio::spawn(drain(rd, peer.codec));
    let mut at = 0;
    let mut writes = 0u64;
    while at < bytes.len() {
        let n = (1 + rng.below(biggest) as usize).min(bytes.len() - at);
        wr.write_all(&bytes[at..at + n]).await.expect("the speaker keeps the connection");
        at += n;
        writes += 1;
        // A pause now and then lets the speaker's read end on whatever boundary this was.
        if rng.below(16) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    eventually("every prefix learned", async || routes(&s).await.len() == prefixes.len()).await;
    let learned: BTreeSet<String> = routes(&s).await.iter().map(|p| p.to_string()).collect();
    assert_eq!(learned, prefixes, "seed {seed}");
    assert_eq!(state(&s).await, State::Established, "seed {seed}: {writes} writes");
    let status = s.status().await.expect("status");
    let peer = &status.peers[0];
    assert_eq!((peer.flaps, &peer.last_error), (0, &None), "seed {seed}: the session reset");
    s.shutdown(false).await;
    let notification = tokio::time::timeout(Duration::from_secs(10), reader).await;
    if let Ok(Ok(Some(n))) = notification {
        assert_eq!(n.code, 6, "seed {seed}: the speaker sent {n} before its shutdown");
    }
    drop(wr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_stream_in_1_to_40_octet_pieces_keeps_the_session() {
    in_pieces("127.0.0.91", "127.0.0.92", 1, 600, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_of_1_to_3_octets_keep_the_session() {
    in_pieces("127.0.0.93", "127.0.0.94", 2, 150, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_of_up_to_a_segment_keep_the_session() {
    in_pieces("127.0.0.95", "127.0.0.96", 3, 2000, 1500).await;
}
