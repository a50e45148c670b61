//! Prefixes as NLRI (RFC 4271 §4.3, RFC 4760 §5): a length in bits and as many octets as that
//! length needs, optionally preceded by an ADD-PATH path identifier (RFC 7911 §3). This is the
//! hottest decoding loop of a full-table load, so it is a plain loop, not combinators.
//!
//! ```text
//! +---------------------------+
//! |   Path Identifier (4)     |   only with ADD-PATH
//! +---------------------------+
//! |   Length (1 octet)        |
//! +---------------------------+
//! |   Prefix (variable)       |
//! +---------------------------+
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::types::{Family, Ipv4Prefix, Ipv6Prefix, Prefix};

/// A prefix as carried in an UPDATE, with its ADD-PATH path identifier when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    pub prefix: Prefix,
    pub path_id: Option<u32>,
}

impl Nlri {
    pub fn new(prefix: Prefix) -> Nlri {
        Nlri { prefix, path_id: None }
    }
}

/// Decodes every prefix of `input` (all of `family`) into `out`. On error, returns the offset
/// within `input` and what is wrong; the prefixes decoded so far stay in `out`.
pub fn decode(
    input: &[u8],
    family: Family,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), (usize, &'static str)> {
    let max_bits: u8 = match family {
        Family::Ipv4Unicast => 32,
        Family::Ipv6Unicast => 128,
    };
    let mut i = 0;
    while i < input.len() {
        let start = i;
        let path_id = if add_path {
            let id = input.get(i..i + 4).ok_or((start, "path identifier cut short"))?;
            i += 4;
            Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]))
        } else {
            None
        };
        let len = *input.get(i).ok_or((start, "prefix length missing"))?;
        if len > max_bits {
            return Err((i, "prefix length exceeds the address size"));
        }
        i += 1;
        let n = usize::from(len).div_ceil(8);
        let bytes = input.get(i..i + n).ok_or((start, "prefix cut short"))?;
        i += n;
        let prefix = match family {
            Family::Ipv4Unicast => {
                let mut a = [0u8; 4];
                a[..n].copy_from_slice(bytes);
                Ipv4Prefix::new(Ipv4Addr::from(a), len).map(Prefix::V4)
            }
            Family::Ipv6Unicast => {
                let mut a = [0u8; 16];
                a[..n].copy_from_slice(bytes);
                Ipv6Prefix::new(Ipv6Addr::from(a), len).map(Prefix::V6)
            }
        };
        // `len` was checked above, so the prefix is valid; the match keeps that local.
        let prefix = prefix.ok_or((start, "prefix length exceeds the address size"))?;
        out.push(Nlri { prefix, path_id });
    }
    Ok(())
}

/// The encoded size of one NLRI.
pub fn encoded_len(nlri: &Nlri, add_path: bool) -> usize {
    let path_id = if add_path { 4 } else { 0 };
    path_id + 1 + usize::from(nlri.prefix.prefix_len()).div_ceil(8)
}

/// Appends one NLRI. With `add_path`, a missing path identifier is sent as 0.
pub fn encode(nlri: &Nlri, add_path: bool, out: &mut Vec<u8>) {
    if add_path {
        out.extend_from_slice(&nlri.path_id.unwrap_or(0).to_be_bytes());
    }
    let len = nlri.prefix.prefix_len();
    out.push(len);
    let n = usize::from(len).div_ceil(8);
    match nlri.prefix {
        Prefix::V4(p) => out.extend_from_slice(&p.bits().to_be_bytes()[..n]),
        Prefix::V6(p) => out.extend_from_slice(&p.bits().to_be_bytes()[..n]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Nlri {
        Nlri::new(s.parse().expect(s))
    }

    #[test]
    fn ipv4_prefixes_use_only_the_octets_their_length_needs() {
        let mut out = vec![];
        for n in [p("10.0.0.0/8"), p("192.0.2.0/24"), p("0.0.0.0/0"), p("203.0.113.7/32")] {
            encode(&n, false, &mut out);
        }
        assert_eq!(out, [8, 10, 24, 192, 0, 2, 0, 32, 203, 0, 113, 7]);
        let mut back = vec![];
        decode(&out, Family::Ipv4Unicast, false, &mut back).expect("decodes");
        assert_eq!(back, [p("10.0.0.0/8"), p("192.0.2.0/24"), p("0.0.0.0/0"), p("203.0.113.7/32")]);
    }

    #[test]
    fn trailing_bits_beyond_the_length_are_cleared() {
        let mut out = vec![];
        decode(&[20, 10, 1, 0xff], Family::Ipv4Unicast, false, &mut out).expect("decodes");
        assert_eq!(out, [p("10.1.240.0/20")]);
    }

    #[test]
    fn ipv6_and_add_path_round_trip() {
        let mut n = p("2001:db8:1::/48");
        n.path_id = Some(7);
        let mut out = vec![];
        encode(&n, true, &mut out);
        assert_eq!(out, [0, 0, 0, 7, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 1]);
        assert_eq!(encoded_len(&n, true), out.len());
        let mut back = vec![];
        decode(&out, Family::Ipv6Unicast, true, &mut back).expect("decodes");
        assert_eq!(back, [n]);
    }

    #[test]
    fn bad_lengths_and_truncation_are_located() {
        let mut out = vec![];
        assert_eq!(
            decode(&[8, 10, 33, 1, 2, 3, 4, 5], Family::Ipv4Unicast, false, &mut out),
            Err((2, "prefix length exceeds the address size"))
        );
        assert_eq!(out.len(), 1, "what decoded before the error is kept");
        assert_eq!(
            decode(&[24, 10, 1], Family::Ipv4Unicast, false, &mut vec![]),
            Err((0, "prefix cut short"))
        );
        assert_eq!(
            decode(&[0, 0, 0], Family::Ipv4Unicast, true, &mut vec![]),
            Err((0, "path identifier cut short"))
        );
    }
}

#[cfg(test)]
mod size {
    #[test]
    fn a_decoded_route_stays_small() {
        // Every route of a full table passes through this type on its way to the RIB.
        assert!(size_of::<super::Nlri>() <= 28, "{}", size_of::<super::Nlri>());
    }
}
