//! BFD control packets from anyone: decoding never panics; what decodes encodes back to the
//! same packet; and a session fed any sequence of packets and clock steps never panics and
//! keeps its invariants (something due unless AdminDown or the peer asked for no packets, a
//! detection time only once heard).
//!
//! Input: chunks of 26 bytes, each a little-endian time step in milliseconds then 24 bytes
//! taken as a datagram.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tartan_bfd::packet::Packet;
use tartan_bfd::{Intervals, Session, State};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(data) {
        if !p.auth {
            assert_eq!(Packet::decode(&p.encode()), Ok(p));
        }
    }
    let start = Instant::now();
    let mut now = start;
    let mut s = Session::new(0x1234, Intervals::default(), 7, now);
    for chunk in data.chunks(26) {
        let Some((step, bytes)) = chunk.split_first_chunk::<2>() else { break };
        now += Duration::from_millis(u64::from(u16::from_le_bytes(*step)));
        let _ = s.poll(now);
        if let Ok(mut p) = Packet::decode(bytes) {
            // Half the time, aim it at the session so that the state machine moves.
            if step[0] & 1 == 1 {
                p.your_disc = 0x1234;
            }
            let _ = s.receive(&p, now);
        }
        let snap = s.snapshot();
        if s.state() != State::AdminDown && !snap.remote_min_rx.is_zero() {
            assert!(s.deadline().is_some(), "a live session always has something due: {snap:?}");
        }
        assert_eq!(snap.detection_time.is_some(), snap.remote_multiplier > 0);
    }
});
