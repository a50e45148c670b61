//! Whatever decodes encodes back (with the sending side of the same negotiation) to bytes that
//! decode to the same message — apart from the RFC 7606 notes, which describe the input, not
//! the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tartan_bgp::types::{Family, FamilySet};
use tartan_bgp::wire::{Codec, EncodeError, Message};

fn codec(b: u8) -> Codec {
    let mut add_path = FamilySet::default();
    if b & 2 != 0 {
        add_path.insert(Family::Ipv4Unicast);
    }
    if b & 4 != 0 {
        add_path.insert(Family::Ipv6Unicast);
    }
    Codec {
        four_octet_as: b & 1 != 0,
        add_path_rx: add_path,
        add_path_tx: add_path,
        extended_message: b & 8 != 0,
    }
}

fn normalized(m: Message) -> Message {
    match m {
        Message::Update(mut u) => {
            u.treat_as_withdraw = None;
            u.discarded.clear();
            Message::Update(u)
        }
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&b, msg)) = data.split_first() else { return };
    let codec = codec(b);
    let Ok(m) = codec.decode(msg) else { return };
    let mut out = Vec::new();
    match codec.encode(&m, &mut out) {
        Ok(()) => {}
        // Re-encoding can legitimately grow a message (AS4_PATH for a two-octet session).
        Err(EncodeError::TooLong { .. }) => return,
    }
    let again = codec
        .decode(&out)
        .unwrap_or_else(|e| panic!("re-encoded message does not decode: {e}\n{m:?}"));
    assert_eq!(normalized(again), normalized(m));
});
