//! Any bytes, any negotiated codec: decoding never panics, and a message that frames decodes
//! or fails with an error whose offset lies inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tartan_bgp::types::{Family, FamilySet};
use tartan_bgp::wire::Codec;

/// The first byte chooses what the session negotiated.
pub fn codec(b: u8) -> Codec {
    let set = |v4: bool, v6: bool| {
        let mut s = FamilySet::default();
        if v4 {
            s.insert(Family::Ipv4Unicast);
        }
        if v6 {
            s.insert(Family::Ipv6Unicast);
        }
        s
    };
    Codec {
        four_octet_as: b & 1 != 0,
        add_path_rx: set(b & 2 != 0, b & 4 != 0),
        add_path_tx: set(b & 8 != 0, b & 16 != 0),
        extended_message: b & 32 != 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&b, msg)) = data.split_first() else { return };
    let codec = codec(b);
    let _ = codec.frame(msg);
    if let Err(e) = codec.decode(msg) {
        assert!(e.offset <= msg.len(), "offset {} beyond a {}-byte message", e.offset, msg.len());
        let _ = e.notification();
    }
});
