//! The streaming framer: any bytes, cut into any pieces, frame exactly as the same bytes given
//! whole: the same messages and the same error at the same place.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tartan_bgp::wire::framer::frame_pieces;
use tartan_bgp::wire::{EXTENDED_MAX_LEN, MAX_LEN};

// Layout: one byte for the limit, one for how many piece sizes follow, the sizes (1-256 octets
// each, used in turn), then the stream.
fuzz_target!(|data: &[u8]| {
    let [flags, n, rest @ ..] = data else { return };
    let n = usize::from(*n).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let max_len = if flags & 1 != 0 { EXTENDED_MAX_LEN } else { MAX_LEN };
    let whole = frame_pieces(max_len, [stream]);
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < stream.len() {
        let size = sizes.get(i % sizes.len().max(1)).map_or(1, |&s| usize::from(s) + 1);
        let end = (at + size).min(stream.len());
        pieces.push(&stream[at..end]);
        at = end;
        i += 1;
    }
    let cut = frame_pieces(max_len, pieces.iter().copied());
    assert_eq!(cut, whole, "cutting the stream changed what it frames");
    assert!(whole.messages.len() <= stream.len());
});
