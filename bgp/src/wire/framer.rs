//! The streaming framer: bytes go in as TCP hands them over, in pieces of any size cut at any
//! offset, and whole messages come out. Sans-IO: the connection reader reads into
//! [`Framer::spare`] and calls [`Framer::take`]; the tests and the fuzzer feed it the same way.
//!
//! Cutting a stream into pieces never changes what comes out: the same messages, and the same
//! error at the same place, as the stream given whole. That holds because [`frame`] decides
//! only on octets it has (a marker octet that is not 0xff is wrong however the stream goes on;
//! a length or type is judged once all three header fields are in).

use super::error::DecodeError;
use super::header::frame;

/// Buffers a byte stream and splits off its whole messages.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max_len: usize,
    /// Set once the stream is broken: nothing after it is framed.
    broken: bool,
}

/// What one [`Framer::take`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Whole messages, back to back (empty when none is complete yet).
    pub messages: Vec<u8>,
    /// Set when the stream is broken right after `messages`; the offset counts from there.
    pub error: Option<DecodeError>,
}

impl Framer {
    /// A framer for messages of at most `max_len` octets (4096, or 65535 with RFC 8654).
    pub fn new(max_len: usize) -> Framer {
        Framer { buf: Vec::with_capacity(64 * 1024), max_len, broken: false }
    }

    /// The buffer to read more bytes into: at least 16 KiB of spare capacity after its end.
    pub fn spare(&mut self) -> &mut Vec<u8> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        &mut self.buf
    }

    /// Adds bytes that arrived.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Octets held that do not yet make a whole message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Splits off every whole message at the front of what arrived so far. Once an error is
    /// returned the stream is broken and later calls return nothing.
    pub fn take(&mut self) -> Taken {
        if self.broken {
            return Taken::default();
        }
        let mut end = 0;
        let error = loop {
            match frame(&self.buf[end..], self.max_len) {
                Ok(Some((_, len))) => end += len,
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        self.broken = error.is_some();
        let messages = if end == 0 {
            Vec::new()
        } else {
            // The messages leave in the buffer they were read into; the partial rest moves to
            // a new one, which `spare` grows before the next read.
            let rest = self.buf.split_off(end);
            std::mem::replace(&mut self.buf, rest)
        };
        Taken { messages, error }
    }
}

/// What a stream cut into `pieces` frames, fed piece by piece: the messages, and the error
/// that broke the stream (its offset counts from the first byte not handed out). The framer's
/// promise is that this is the same for any cut of the same bytes; the tests and the fuzzer
/// hold it to that.
pub fn frame_pieces<'a>(max_len: usize, pieces: impl IntoIterator<Item = &'a [u8]>) -> Taken {
    let mut f = Framer::new(max_len);
    let mut out = Taken::default();
    for p in pieces {
        f.extend(p);
        let t = f.take();
        out.messages.extend_from_slice(&t.messages);
        if t.error.is_some() {
            out.error = t.error;
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DecodeErrorKind, EXTENDED_MAX_LEN, MAX_LEN, MessageType};

    /// A small deterministic generator (xorshift64*): the properties run over many seeds and a
    /// failure names its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// One valid message of a random type and length; bodies are random bytes (the framer
    /// looks at headers only), so a body may hold 0xff runs that look like markers.
    fn message(rng: &mut Rng, max_len: usize) -> Vec<u8> {
        let (ty, len) = match rng.below(5) {
            0 => (MessageType::Keepalive, 19),
            1 => (MessageType::Open, 29 + rng.below(64)),
            2 => (MessageType::Notification, 21 + rng.below(32)),
            3 => (MessageType::RouteRefresh, 23),
            _ => {
                // Mostly small UPDATEs as a full table brings them, some up to the limit.
                let len = if rng.below(8) == 0 {
                    23 + rng.below(max_len - 22)
                } else {
                    23 + rng.below(80)
                };
                (MessageType::Update, len)
            }
        };
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.push(ty as u8);
        while m.len() < len {
            let b = rng.next() as u8;
            m.push(if rng.below(4) == 0 { 0xff } else { b });
        }
        m
    }

    fn stream(rng: &mut Rng, max_len: usize, count: usize) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut lens = Vec::new();
        for _ in 0..count {
            let m = message(rng, max_len);
            lens.push(m.len());
            bytes.extend_from_slice(&m);
        }
        (bytes, lens)
    }

    fn whole(max_len: usize, bytes: &[u8]) -> Taken {
        frame_pieces(max_len, [bytes])
    }

    #[test]
    fn a_stream_cut_at_every_offset_frames_as_the_whole() {
        for seed in 1..40u64 {
            let mut rng = Rng(seed);
            let max_len = if seed % 2 == 0 { MAX_LEN } else { EXTENDED_MAX_LEN };
            let (bytes, _) = stream(&mut rng, max_len.min(600), 12);
            let expected = whole(max_len, &bytes);
            assert_eq!(expected.messages, bytes, "seed {seed}: the whole stream frames");
            assert_eq!(expected.error, None);
            for cut in 0..=bytes.len() {
                let (a, b) = bytes.split_at(cut);
                assert_eq!(frame_pieces(max_len, [a, b]), expected, "seed {seed}, cut at {cut}");
            }
        }
    }

    #[test]
    fn a_stream_in_random_pieces_frames_as_the_whole() {
        for seed in 1..300u64 {
            let mut rng = Rng(seed);
            let max_len = if seed % 3 == 0 { MAX_LEN } else { EXTENDED_MAX_LEN };
            let count = 1 + rng.below(200);
            let (bytes, lens) = stream(&mut rng, max_len, count);
            // Pieces of 1-40 octets as a peer writing with TCP_NODELAY makes them, or larger.
            let biggest = if seed % 2 == 0 { 40 } else { 9000 };
            let mut pieces = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let n = (1 + rng.below(biggest)).min(bytes.len() - at);
                pieces.push(&bytes[at..at + n]);
                at += n;
            }
            let got = frame_pieces(max_len, pieces.iter().copied());
            assert_eq!(got.error, None, "seed {seed}");
            assert_eq!(got.messages.len(), lens.iter().sum::<usize>(), "seed {seed}");
            assert_eq!(got.messages, bytes, "seed {seed}");
        }
    }

    #[test]
    fn a_read_that_ends_inside_the_length_or_type_waits_for_more() {
        let mut rng = Rng(7);
        let m = message(&mut rng, MAX_LEN);
        for cut in 16..19 {
            let mut f = Framer::new(MAX_LEN);
            f.extend(&m[..cut]);
            assert_eq!(f.take(), Taken::default(), "cut at {cut}");
            f.extend(&m[cut..]);
            assert_eq!(f.take().messages, m);
            assert_eq!(f.pending(), 0);
        }
    }

    #[test]
    fn a_broken_stream_breaks_at_the_same_place_however_it_is_cut() {
        for seed in 1..60u64 {
            let mut rng = Rng(seed);
            let (mut bytes, lens) = stream(&mut rng, MAX_LEN, 6);
            // Break one header field of the fourth message: a marker octet, the length or type.
            let start: usize = lens[..3].iter().sum();
            let field = rng.below(19);
            bytes[start + field] = match field {
                16 => 0xf0,
                17 => 0x00,
                18 => 0x09,
                _ => 0x00,
            };
            let expected = whole(MAX_LEN, &bytes);
            assert_eq!(expected.messages, bytes[..start], "seed {seed}");
            let kind = expected.error.as_ref().map(|e| e.kind.clone());
            match field {
                0..16 => assert_eq!(kind, Some(DecodeErrorKind::NotSynchronized)),
                18 => assert_eq!(kind, Some(DecodeErrorKind::BadType(9))),
                _ => assert!(matches!(kind, Some(DecodeErrorKind::BadLength(_)))),
            }
            for cut in 0..=bytes.len() {
                let (a, b) = bytes.split_at(cut);
                assert_eq!(frame_pieces(MAX_LEN, [a, b]), expected, "seed {seed}, cut at {cut}");
            }
        }
    }

    #[test]
    fn nothing_is_framed_after_the_stream_broke() {
        let mut f = Framer::new(MAX_LEN);
        f.extend(&[0xff, 0x00]);
        assert!(f.take().error.is_some());
        f.extend(&[0xff; 19]);
        assert_eq!(f.take(), Taken::default());
    }
}
