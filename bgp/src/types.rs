//! The values BGP talks about, independent of how they are encoded: AS numbers, prefixes (always
//! canonical: host bits zero), address families, next hops and communities.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An AS number (4 octets, RFC 6793).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Asn(pub u32);

impl Asn {
    /// AS_TRANS, what a 4-octet AS shows as to a speaker that only knows 2 (RFC 6793 §9).
    pub const TRANS: Asn = Asn(23456);

    /// Whether this AS fits the 2-octet fields of old speakers.
    pub fn is_two_octet(self) -> bool {
        self.0 <= u16::MAX as u32
    }
}

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An IPv4 prefix; the address never has bits set beyond the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: u32,
    len: u8,
}

impl Ipv4Prefix {
    /// Builds a prefix, clearing host bits; `None` when `len` exceeds 32.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Ipv4Prefix> {
        (len <= 32).then(|| Ipv4Prefix { addr: u32::from(addr) & mask32(len), len })
    }

    pub fn addr(self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    pub fn prefix_len(self) -> u8 {
        self.len
    }

    pub fn bits(self) -> u32 {
        self.addr
    }

    pub fn contains(self, other: Ipv4Prefix) -> bool {
        other.len >= self.len && other.addr & mask32(self.len) == self.addr
    }
}

/// An IPv6 prefix; the address never has bits set beyond the length. The address is kept as
/// octets (big-endian, so the derived order is the numeric one) to keep the type 17 octets and
/// unaligned: every decoded route carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    addr: [u8; 16],
    len: u8,
}

impl Ipv6Prefix {
    /// Builds a prefix, clearing host bits; `None` when `len` exceeds 128.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Ipv6Prefix> {
        (len <= 128)
            .then(|| Ipv6Prefix { addr: (u128::from(addr) & mask128(len)).to_be_bytes(), len })
    }

    pub fn addr(self) -> Ipv6Addr {
        Ipv6Addr::from(self.addr)
    }

    pub fn prefix_len(self) -> u8 {
        self.len
    }

    pub fn bits(self) -> u128 {
        u128::from_be_bytes(self.addr)
    }

    pub fn contains(self, other: Ipv6Prefix) -> bool {
        other.len >= self.len && other.bits() & mask128(self.len) == self.bits()
    }
}

fn mask32(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) }
}

fn mask128(len: u8) -> u128 {
    if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) }
}

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    V4(Ipv4Prefix),
    V6(Ipv6Prefix),
}

impl Prefix {
    pub fn prefix_len(self) -> u8 {
        match self {
            Prefix::V4(p) => p.prefix_len(),
            Prefix::V6(p) => p.prefix_len(),
        }
    }

    /// The family whose unicast NLRI carries this prefix.
    pub fn family(self) -> Family {
        match self {
            Prefix::V4(_) => Family::Ipv4Unicast,
            Prefix::V6(_) => Family::Ipv6Unicast,
        }
    }

    /// Whether `other` lies inside this prefix (same family, at least as long, same leading bits).
    pub fn contains(self, other: Prefix) -> bool {
        match (self, other) {
            (Prefix::V4(a), Prefix::V4(b)) => a.contains(b),
            (Prefix::V6(a), Prefix::V6(b)) => a.contains(b),
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => write!(f, "{}/{}", p.addr(), p.prefix_len()),
            Prefix::V6(p) => write!(f, "{}/{}", p.addr(), p.prefix_len()),
        }
    }
}

/// Why a prefix did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a prefix (ADDRESS/LENGTH, with no bits set beyond LENGTH)")]
pub struct PrefixParseError(pub String);

impl FromStr for Prefix {
    type Err = PrefixParseError;

    /// Parses `10.0.0.0/8` or `2001:db8::/32`. Host bits must be zero: `10.0.0.1/8` is a
    /// mistake in a configuration, not a prefix.
    fn from_str(s: &str) -> Result<Prefix, PrefixParseError> {
        let bad = || PrefixParseError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        let prefix = if let Ok(a) = addr.parse::<Ipv4Addr>() {
            Prefix::V4(Ipv4Prefix::new(a, len).filter(|p| p.addr() == a).ok_or_else(bad)?)
        } else {
            let a: Ipv6Addr = addr.parse().map_err(|_| bad())?;
            Prefix::V6(Ipv6Prefix::new(a, len).filter(|p| p.addr() == a).ok_or_else(bad)?)
        };
        Ok(prefix)
    }
}

impl Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The address families Tartan speaks (RFC 4760 AFI/SAFI pairs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    #[serde(rename = "ipv4-unicast")]
    Ipv4Unicast,
    #[serde(rename = "ipv6-unicast")]
    Ipv6Unicast,
}

/// AFI values (IANA "Address Family Numbers").
pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
/// SAFI value for unicast (RFC 4760).
pub const SAFI_UNICAST: u8 = 1;

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    pub fn afi_safi(self) -> (u16, u8) {
        match self {
            Family::Ipv4Unicast => (AFI_IPV4, SAFI_UNICAST),
            Family::Ipv6Unicast => (AFI_IPV6, SAFI_UNICAST),
        }
    }

    pub fn from_afi_safi(afi: u16, safi: u8) -> Option<Family> {
        match (afi, safi) {
            (AFI_IPV4, SAFI_UNICAST) => Some(Family::Ipv4Unicast),
            (AFI_IPV6, SAFI_UNICAST) => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    /// The configuration name (`ipv4-unicast`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        }
    }
}

/// A set of families (for negotiated per-family capabilities such as ADD-PATH).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FamilySet(u8);

impl FamilySet {
    pub const EMPTY: FamilySet = FamilySet(0);

    pub fn contains(self, f: Family) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn insert(&mut self, f: Family) {
        self.0 |= f.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = Family> {
        Family::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn remove(&mut self, f: Family) {
        self.0 &= !f.bit();
    }

    pub fn intersection(self, other: FamilySet) -> FamilySet {
        FamilySet(self.0 & other.0)
    }

    pub fn union(self, other: FamilySet) -> FamilySet {
        FamilySet(self.0 | other.0)
    }

    pub fn difference(self, other: FamilySet) -> FamilySet {
        FamilySet(self.0 & !other.0)
    }

    pub fn all() -> FamilySet {
        Family::ALL.into_iter().collect()
    }

    pub fn single(f: Family) -> FamilySet {
        FamilySet(f.bit())
    }
}

impl FromIterator<Family> for FamilySet {
    fn from_iter<I: IntoIterator<Item = Family>>(iter: I) -> FamilySet {
        let mut s = FamilySet::default();
        for f in iter {
            s.insert(f);
        }
        s
    }
}

impl Family {
    fn bit(self) -> u8 {
        match self {
            Family::Ipv4Unicast => 1,
            Family::Ipv6Unicast => 2,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A next hop as carried by NEXT_HOP or MP_REACH_NLRI: IPv4, or IPv6 global with an optional
/// link-local (RFC 2545), also for IPv4 NLRI (RFC 8950).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    V4(Ipv4Addr),
    V6 { global: Ipv6Addr, link_local: Option<Ipv6Addr> },
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::V4(a) => write!(f, "{a}"),
            NextHop::V6 { global, link_local: None } => write!(f, "{global}"),
            NextHop::V6 { global, link_local: Some(ll) } => write!(f, "{global} ({ll})"),
        }
    }
}

/// ORIGIN (RFC 4271 §5.1.1), in preference order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// A standard community (RFC 1997), `AS:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);

    pub fn new(asn: u16, value: u16) -> Community {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Community::NO_EXPORT => f.write_str("no-export"),
            Community::NO_ADVERTISE => f.write_str("no-advertise"),
            Community::NO_EXPORT_SUBCONFED => f.write_str("no-export-subconfed"),
            Community(c) => write!(f, "{}:{}", c >> 16, c & 0xFFFF),
        }
    }
}

/// Why a community did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a community (AS:VALUE with both at most 65535, or no-export, no-advertise, no-export-subconfed)"
)]
pub struct CommunityParseError(pub String);

impl FromStr for Community {
    type Err = CommunityParseError;

    fn from_str(s: &str) -> Result<Community, CommunityParseError> {
        match s {
            "no-export" => return Ok(Community::NO_EXPORT),
            "no-advertise" => return Ok(Community::NO_ADVERTISE),
            "no-export-subconfed" => return Ok(Community::NO_EXPORT_SUBCONFED),
            _ => {}
        }
        let bad = || CommunityParseError(s.to_string());
        let (a, v) = s.split_once(':').ok_or_else(bad)?;
        Ok(Community::new(a.parse().map_err(|_| bad())?, v.parse().map_err(|_| bad())?))
    }
}

/// An extended community (RFC 4360), kept as its 8 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtCommunity(pub [u8; 8]);

/// A large community (RFC 8092), `global:local1:local2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity(pub [u32; 3]);

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0[0], self.0[1], self.0[2])
    }
}

/// Why a large community did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a large community (GLOBAL:LOCAL1:LOCAL2, each at most 4294967295)")]
pub struct LargeCommunityParseError(pub String);

impl FromStr for LargeCommunity {
    type Err = LargeCommunityParseError;

    /// `GLOBAL:LOCAL1:LOCAL2`, each a 32-bit number.
    fn from_str(s: &str) -> Result<LargeCommunity, LargeCommunityParseError> {
        let bad = || LargeCommunityParseError(s.to_string());
        let mut parts = s.split(':').map(|x| x.parse::<u32>().map_err(|_| bad()));
        let (Some(a), Some(b), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(LargeCommunity([a?, b?, c?]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_canonical() {
        let p = Ipv4Prefix::new(Ipv4Addr::new(10, 1, 2, 3), 16).expect("valid");
        assert_eq!(p.addr(), Ipv4Addr::new(10, 1, 0, 0));
        assert!(Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, 33).is_none());
        let q = Ipv6Prefix::new("2001:db8::1".parse().expect("addr"), 32).expect("valid");
        assert_eq!(q.addr(), "2001:db8::".parse::<Ipv6Addr>().expect("addr"));
        assert_eq!(Ipv4Prefix::new(Ipv4Addr::new(1, 2, 3, 4), 0).map(|p| p.bits()), Some(0));
    }

    #[test]
    fn prefixes_parse_and_print() {
        for s in ["10.0.0.0/8", "0.0.0.0/0", "192.0.2.1/32", "2001:db8::/32", "::/0"] {
            assert_eq!(s.parse::<Prefix>().expect(s).to_string(), s);
        }
        assert!("10.0.0.1/8".parse::<Prefix>().is_err(), "host bits set");
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("10.0.0.0".parse::<Prefix>().is_err());
    }

    #[test]
    fn containment_respects_family_and_length() {
        let p = |s: &str| s.parse::<Prefix>().expect(s);
        assert!(p("10.0.0.0/8").contains(p("10.1.0.0/16")));
        assert!(!p("10.1.0.0/16").contains(p("10.0.0.0/8")));
        assert!(!p("10.0.0.0/8").contains(p("11.0.0.0/16")));
        assert!(!p("::/0").contains(p("10.0.0.0/8")));
        assert!(p("0.0.0.0/0").contains(p("192.0.2.0/24")));
    }

    #[test]
    fn communities_parse_and_print() {
        assert_eq!("65000:100".parse::<Community>(), Ok(Community(65000 << 16 | 100)));
        assert_eq!(Community::new(65000, 100).to_string(), "65000:100");
        assert_eq!("no-export".parse::<Community>(), Ok(Community::NO_EXPORT));
        assert!("70000:1".parse::<Community>().is_err());
    }

    #[test]
    fn families_map_to_afi_safi() {
        for f in Family::ALL {
            let (afi, safi) = f.afi_safi();
            assert_eq!(Family::from_afi_safi(afi, safi), Some(f));
        }
        assert_eq!(Family::from_afi_safi(1, 128), None);
    }
}
