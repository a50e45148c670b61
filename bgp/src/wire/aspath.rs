//! AS_PATH and AS4_PATH (RFC 4271 §4.3, §5.1.2; RFC 6793; RFC 5065 confederation segments).
//!
//! The width of AS numbers in AS_PATH is decided by the negotiated four-octet AS capability,
//! never guessed. Towards a speaker without it, four-octet numbers become AS_TRANS and the real
//! path travels in AS4_PATH; from such a speaker, the two are merged back (RFC 6793 §4.2.3).
//!
//! ```text
//! +--------------+---------------+----------------------------+
//! | type (1)     | count (1)     | count x AS (2 or 4 octets) |  ...repeated
//! +--------------+---------------+----------------------------+
//! ```

use std::fmt;

use crate::types::Asn;

/// Segment types (RFC 4271 §4.3, RFC 5065 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentKind {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

impl SegmentKind {
    fn from_u8(t: u8) -> Option<SegmentKind> {
        Some(match t {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return None,
        })
    }

    fn is_confed(self) -> bool {
        matches!(self, SegmentKind::ConfedSequence | SegmentKind::ConfedSet)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    pub kind: SegmentKind,
    pub asns: Vec<Asn>,
}

/// An AS path: its segments, leftmost first (the most recent AS first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsPath {
    pub segments: Vec<Segment>,
}

impl AsPath {
    /// A path of one sequence.
    pub fn sequence(asns: impl IntoIterator<Item = Asn>) -> AsPath {
        let asns: Vec<Asn> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath { segments: vec![Segment { kind: SegmentKind::Sequence, asns }] }
    }

    /// The length used by the decision process (RFC 4271 §9.1.2.2): a set counts as one,
    /// confederation segments do not count (RFC 5065 §5.3).
    pub fn len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Whether `asn` appears anywhere in the path (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: Asn) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// The neighbouring AS: the first AS of a leading sequence (RFC 4271 §9.1.2.2 c).
    pub fn neighbor_as(&self) -> Option<Asn> {
        self.segments
            .iter()
            .find(|s| !s.kind.is_confed())
            .filter(|s| s.kind == SegmentKind::Sequence)
            .and_then(|s| s.asns.first().copied())
    }

    /// The originating AS: the last AS of a trailing sequence.
    pub fn origin_as(&self) -> Option<Asn> {
        self.segments
            .last()
            .filter(|s| s.kind == SegmentKind::Sequence)
            .and_then(|s| s.asns.last().copied())
    }

    /// Prepends `asn` as an eBGP speaker does (RFC 4271 §5.1.2): into a leading sequence that has
    /// room, else as a new sequence.
    pub fn prepend(&mut self, asn: Asn) {
        match self.segments.first_mut() {
            Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < 255 => {
                s.asns.insert(0, asn)
            }
            _ => self.segments.insert(0, Segment { kind: SegmentKind::Sequence, asns: vec![asn] }),
        }
    }

    /// Whether any segment is a confederation segment (RFC 5065).
    pub fn has_confed(&self) -> bool {
        self.segments.iter().any(|s| s.kind.is_confed())
    }

    /// Removes leading confederation segments (when leaving a confederation, RFC 5065 §4.1).
    pub fn strip_confed(&mut self) {
        while self.segments.first().is_some_and(|s| s.kind.is_confed()) {
            self.segments.remove(0);
        }
    }

    /// Every AS number, in order.
    pub fn asns(&self) -> impl Iterator<Item = Asn> + '_ {
        self.segments.iter().flat_map(|s| s.asns.iter().copied())
    }

    /// What a speaker without four-octet AS sees: AS_TRANS for the big numbers, and the
    /// AS4_PATH that carries the real path if any number was replaced (RFC 6793 §4.2.2).
    pub fn for_two_octet_peer(&self) -> (AsPath, Option<AsPath>) {
        if self.asns().all(Asn::is_two_octet) {
            return (self.clone(), None);
        }
        let narrow = AsPath {
            segments: self
                .segments
                .iter()
                .map(|s| Segment {
                    kind: s.kind,
                    asns: s
                        .asns
                        .iter()
                        .map(|&a| if a.is_two_octet() { a } else { Asn::TRANS })
                        .collect(),
                })
                .collect(),
        };
        // AS4_PATH never carries confederation segments (RFC 6793 §3).
        let as4 = AsPath {
            segments: self.segments.iter().filter(|s| !s.kind.is_confed()).cloned().collect(),
        };
        (narrow, Some(as4))
    }

    /// Rebuilds the real path from AS_PATH and AS4_PATH received from a speaker without
    /// four-octet AS (RFC 6793 §4.2.3): if AS_PATH is shorter than AS4_PATH the latter is
    /// ignored; otherwise the leading AS_PATH entries that AS4_PATH does not cover are kept and
    /// AS4_PATH follows them.
    pub fn merge_as4(&self, as4: &AsPath) -> AsPath {
        // Counting as in §4.2.3: sets count one, confederation segments are not counted in
        // AS4_PATH (where they should not appear) but are kept in front.
        let count = |p: &AsPath| p.len();
        let (n, n4) = (count(self), count(as4));
        if n < n4 {
            return self.clone();
        }
        let mut keep = n - n4;
        let mut segments = Vec::new();
        for s in &self.segments {
            if s.kind.is_confed() {
                segments.push(s.clone());
                continue;
            }
            if keep == 0 {
                break;
            }
            match s.kind {
                SegmentKind::Sequence => {
                    let take = keep.min(s.asns.len());
                    segments.push(Segment { kind: s.kind, asns: s.asns[..take].to_vec() });
                    keep -= take;
                }
                _ => {
                    segments.push(s.clone());
                    keep -= 1;
                }
            }
        }
        segments.extend(as4.segments.iter().filter(|s| !s.kind.is_confed()).cloned());
        let mut merged = AsPath { segments };
        merged.normalize();
        merged
    }

    /// Joins adjacent sequences (of at most 255 numbers each), as a merge can leave them split.
    fn normalize(&mut self) {
        let mut out: Vec<Segment> = Vec::with_capacity(self.segments.len());
        for s in self.segments.drain(..) {
            match out.last_mut() {
                Some(last)
                    if last.kind == s.kind
                        && s.kind == SegmentKind::Sequence
                        && last.asns.len() + s.asns.len() <= 255 =>
                {
                    last.asns.extend(s.asns)
                }
                _ => out.push(s),
            }
        }
        self.segments = out;
    }
}

impl fmt::Display for AsPath {
    /// `65001 65002 {65010,65011} (65100)`, as routers print paths.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let list =
                |sep: &str| s.asns.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(sep);
            match s.kind {
                SegmentKind::Sequence => f.write_str(&list(" "))?,
                SegmentKind::Set => write!(f, "{{{}}}", list(","))?,
                SegmentKind::ConfedSequence => write!(f, "({})", list(" "))?,
                SegmentKind::ConfedSet => write!(f, "[{}]", list(","))?,
            }
        }
        Ok(())
    }
}

/// Decodes an AS_PATH or AS4_PATH value with 2- or 4-octet AS numbers. A segment of unknown
/// type, an empty segment or a length that does not add up is malformed (RFC 7606 §7.2).
pub fn decode(mut v: &[u8], four_octet: bool) -> Result<AsPath, &'static str> {
    let width = if four_octet { 4 } else { 2 };
    let mut segments = Vec::new();
    while !v.is_empty() {
        let (&t, rest) = v.split_first().ok_or("segment cut short")?;
        let kind = SegmentKind::from_u8(t).ok_or("unknown segment type")?;
        let (&count, rest) = rest.split_first().ok_or("segment cut short")?;
        if count == 0 {
            return Err("empty segment");
        }
        let body =
            rest.get(..usize::from(count) * width).ok_or("segment longer than the attribute")?;
        let asns = body
            .chunks_exact(width)
            .map(|c| {
                Asn(if four_octet {
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                } else {
                    u32::from(u16::from_be_bytes([c[0], c[1]]))
                })
            })
            .collect();
        // Confederation segments lead the path (RFC 5065 §5.3: they are stripped on leaving
        // the confederation, so none can follow an ordinary segment). One after an ordinary
        // segment is malformed, as FRR holds it; it could not survive AS4_PATH either (RFC
        // 6793 §4.2.3 keeps only leading ones).
        if kind.is_confed() && segments.last().is_some_and(|s: &Segment| !s.kind.is_confed()) {
            return Err("confederation segment after an ordinary one");
        }
        segments.push(Segment { kind, asns });
        v = &rest[usize::from(count) * width..];
    }
    Ok(AsPath { segments })
}

/// Appends a path value with 2- or 4-octet numbers (numbers that do not fit two octets must
/// already have been replaced, see [`AsPath::for_two_octet_peer`]); long segments are split.
pub fn encode(path: &AsPath, four_octet: bool, out: &mut Vec<u8>) {
    for s in &path.segments {
        for chunk in s.asns.chunks(255) {
            out.push(s.kind as u8);
            out.push(chunk.len() as u8);
            for a in chunk {
                if four_octet {
                    out.extend_from_slice(&a.0.to_be_bytes());
                } else {
                    out.extend_from_slice(&(a.0.min(u32::from(u16::MAX)) as u16).to_be_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(asns: &[u32]) -> AsPath {
        AsPath::sequence(asns.iter().map(|&a| Asn(a)))
    }

    #[test]
    fn sets_count_one_and_confederations_none() {
        let p = AsPath {
            segments: vec![
                Segment { kind: SegmentKind::ConfedSequence, asns: vec![Asn(65100), Asn(65101)] },
                Segment { kind: SegmentKind::Sequence, asns: vec![Asn(1), Asn(2)] },
                Segment { kind: SegmentKind::Set, asns: vec![Asn(3), Asn(4), Asn(5)] },
            ],
        };
        assert_eq!(p.len(), 3);
        assert_eq!(p.to_string(), "(65100 65101) 1 2 {3,4,5}");
        assert_eq!(p.neighbor_as(), Some(Asn(1)));
        assert_eq!(p.origin_as(), None, "a trailing set has no single origin");
    }

    #[test]
    fn prepend_extends_a_leading_sequence() {
        let mut p = seq(&[65002]);
        p.prepend(Asn(65001));
        assert_eq!(p, seq(&[65001, 65002]));
        let mut s =
            AsPath { segments: vec![Segment { kind: SegmentKind::Set, asns: vec![Asn(9)] }] };
        s.prepend(Asn(1));
        assert_eq!(s.to_string(), "1 {9}");
    }

    #[test]
    fn two_and_four_octet_encodings_round_trip() {
        let p = seq(&[65001, 4_200_000_000, 1]);
        let mut v = vec![];
        encode(&p, true, &mut v);
        assert_eq!(v, [2, 3, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x00, 0, 0, 0, 1]);
        assert_eq!(decode(&v, true), Ok(p.clone()));
        let (narrow, as4) = p.for_two_octet_peer();
        assert_eq!(narrow, seq(&[65001, 23456, 1]));
        assert_eq!(as4, Some(p.clone()));
        let mut v2 = vec![];
        encode(&narrow, false, &mut v2);
        assert_eq!(v2, [2, 3, 0xfd, 0xe9, 0x5b, 0xa0, 0, 1]);
        assert_eq!(decode(&v2, false), Ok(narrow));
    }

    #[test]
    fn long_paths_are_split_into_segments_of_255() {
        let p = seq(&(0..300).collect::<Vec<_>>());
        let mut v = vec![];
        encode(&p, true, &mut v);
        let back = decode(&v, true).expect("decodes");
        assert_eq!(back.segments.len(), 2);
        assert_eq!(back.asns().count(), 300);
    }

    #[test]
    fn malformed_paths_are_reported() {
        assert_eq!(decode(&[2, 0], true), Err("empty segment"));
        assert_eq!(decode(&[9, 1, 0, 0, 0, 1], true), Err("unknown segment type"));
        assert_eq!(decode(&[2, 2, 0, 0, 0, 1], true), Err("segment longer than the attribute"));
        assert_eq!(decode(&[2], true), Err("segment cut short"));
        // Found by the round-trip fuzzer: a confederation segment in the middle of a path.
        let middle = [2, 1, 0, 1, 3, 1, 1, 1, 1, 1, 0, 2];
        assert_eq!(decode(&middle, false), Err("confederation segment after an ordinary one"));
        let leading = [3, 1, 1, 1, 2, 1, 0, 1];
        assert_eq!(decode(&leading, false).map(|p| p.segments.len()), Ok(2));
    }

    #[test]
    fn as4_path_replaces_the_covered_tail() {
        // RFC 6793 §4.2.3: AS_PATH 65001 23456 23456, AS4_PATH 4200000000 4200000001.
        let merged = seq(&[65001, 23456, 23456]).merge_as4(&seq(&[4_200_000_000, 4_200_000_001]));
        assert_eq!(merged, seq(&[65001, 4_200_000_000, 4_200_000_001]));
    }

    #[test]
    fn an_as4_path_longer_than_as_path_is_ignored() {
        let p = seq(&[65001]);
        assert_eq!(p.merge_as4(&seq(&[1, 2])), p);
    }
}
