//! Import and export policy: an ordered list of rules, the first that matches decides, and a
//! default for routes no rule matches.
//!
//! A rule matches on the prefix (with a length range, like a prefix list's `ge`/`le`), on
//! communities and large communities, and on the AS path (ASes it contains, its origin and
//! neighbour AS, its length). An accepting rule may set LOCAL_PREF and MED, add or remove
//! communities, and prepend our AS.
//!
//! The default fits a fabric: accept everything both ways, as GoBGP and Calico's own BIRD
//! templates do, rather than RFC 8212's "nothing over eBGP without a policy" (which BIRD and
//! FRR's `traditional` profile apply and which leaves a fresh fabric silently empty).
//!
//! The outcome of a rule depends on the prefix only through whether it matches; what it sets
//! depends only on the attributes. So the RIB caches the attributes a rule produces per
//! attribute set, and a million routes sharing attributes cost one rewrite.

use serde::{Deserialize, Serialize};

use crate::types::{Asn, Community, LargeCommunity, Prefix};
use crate::wire::PathAttributes;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Accept,
    Reject,
}

/// An ordered list of rules and what happens to routes none of them matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub default: Action,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Every condition must hold; an empty condition list matches every route.
    pub conditions: Conditions,
    pub action: Action,
    /// Changes applied to accepted routes.
    pub set: Modifications,
}

/// What a rule matches. Each list is "any of"; empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Conditions {
    pub prefixes: Vec<PrefixMatch>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    /// The AS path contains one of these ASes.
    pub as_path_contains: Vec<Asn>,
    /// The route originated in one of these ASes (the last AS of the path).
    pub origin_as: Vec<Asn>,
    /// The route came through one of these neighbouring ASes (the first AS of the path).
    pub neighbor_as: Vec<Asn>,
    /// The AS path is at most this long.
    pub as_path_max_len: Option<usize>,
}

/// A prefix and the range of lengths it matches: `10.0.0.0/8 le 24` matches every prefix
/// inside 10.0.0.0/8 of length 8 to 24; without a range only the prefix itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixMatch {
    pub prefix: Prefix,
    pub ge: u8,
    pub le: u8,
}

impl PrefixMatch {
    pub fn exact(prefix: Prefix) -> PrefixMatch {
        PrefixMatch { prefix, ge: prefix.prefix_len(), le: prefix.prefix_len() }
    }

    pub fn matches(&self, p: Prefix) -> bool {
        let len = p.prefix_len();
        self.ge <= len && len <= self.le && self.prefix.contains(p)
    }
}

impl std::str::FromStr for PrefixMatch {
    type Err = String;

    /// `PREFIX`, `PREFIX le N`, `PREFIX ge N`, `PREFIX ge N le M`.
    fn from_str(s: &str) -> Result<PrefixMatch, String> {
        let mut words = s.split_whitespace();
        let prefix: Prefix = words
            .next()
            .ok_or_else(|| "empty prefix match".to_string())?
            .parse()
            .map_err(|e: crate::types::PrefixParseError| e.0)?;
        let max = match prefix {
            Prefix::V4(_) => 32,
            Prefix::V6(_) => 128,
        };
        let mut m = PrefixMatch::exact(prefix);
        let mut ranged = false;
        while let Some(word) = words.next() {
            let n: u8 =
                words.next().and_then(|v| v.parse().ok()).filter(|n| *n <= max).ok_or_else(
                    || format!("`{word}` needs a prefix length up to {max} after it in `{s}`"),
                )?;
            match word {
                "ge" => {
                    m.ge = n;
                    if !ranged {
                        m.le = max;
                    }
                }
                "le" => m.le = n,
                _ => return Err(format!("expected `ge` or `le`, found `{word}` in `{s}`")),
            }
            ranged = true;
        }
        if m.ge < prefix.prefix_len() || m.ge > m.le {
            return Err(format!(
                "`{s}`: lengths must satisfy {} <= ge <= le <= {max}",
                prefix.prefix_len()
            ));
        }
        Ok(m)
    }
}

/// Changes an accepting rule makes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Modifications {
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub add_communities: Vec<Community>,
    pub remove_communities: Vec<Community>,
    pub add_large_communities: Vec<LargeCommunity>,
    /// Prepend our AS this many extra times (export to eBGP).
    pub prepend: u8,
}

impl Modifications {
    pub fn is_empty(&self) -> bool {
        *self == Modifications::default()
    }

    /// Applies the changes. `prepend_as` is what `prepend` repeats — `None` where prepending
    /// makes no sense (on import, and towards iBGP peers, where our own AS in the path would
    /// make them refuse the route as a loop).
    pub fn apply(&self, a: &mut PathAttributes, prepend_as: Option<Asn>) {
        if let Some(lp) = self.local_pref {
            a.local_pref = Some(lp);
        }
        if let Some(med) = self.med {
            a.med = Some(med);
        }
        if !self.remove_communities.is_empty() {
            a.communities.retain(|c| !self.remove_communities.contains(c));
        }
        if !self.add_communities.is_empty() {
            a.communities.extend_from_slice(&self.add_communities);
            a.communities.sort();
            a.communities.dedup();
        }
        if !self.add_large_communities.is_empty() {
            a.large_communities.extend_from_slice(&self.add_large_communities);
            a.large_communities.sort();
            a.large_communities.dedup();
        }
        if let Some(asn) = prepend_as {
            for _ in 0..self.prepend {
                a.as_path.get_or_insert_with(Default::default).prepend(asn);
            }
        }
    }
}

/// What a policy decided for a route: the index of the rule that matched (`None` for the
/// default) and whether the route goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub rule: Option<usize>,
    pub action: Action,
}

impl Policy {
    /// Accept everything, change nothing.
    pub fn accept_all() -> Policy {
        Policy::default()
    }

    pub fn reject_all() -> Policy {
        Policy { rules: vec![], default: Action::Reject }
    }

    pub fn is_accept_all(&self) -> bool {
        self.rules.is_empty() && self.default == Action::Accept
    }

    /// Whether any rule looks at the prefix (if none does, one verdict serves a whole UPDATE).
    pub fn depends_on_prefix(&self) -> bool {
        self.rules.iter().any(|r| !r.conditions.prefixes.is_empty())
    }

    pub fn evaluate(&self, prefix: Prefix, attrs: &PathAttributes) -> Verdict {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.conditions.matches(prefix, attrs) {
                return Verdict { rule: Some(i), action: rule.action };
            }
        }
        Verdict { rule: None, action: self.default }
    }

    /// The modifications of the rule a verdict names.
    pub fn modifications(&self, v: Verdict) -> Option<&Modifications> {
        v.rule.and_then(|i| self.rules.get(i)).map(|r| &r.set).filter(|m| !m.is_empty())
    }
}

impl Conditions {
    pub fn matches(&self, prefix: Prefix, a: &PathAttributes) -> bool {
        let path = a.as_path.as_ref();
        (self.prefixes.is_empty() || self.prefixes.iter().any(|m| m.matches(prefix)))
            && (self.communities.is_empty()
                || self.communities.iter().any(|c| a.communities.binary_search(c).is_ok()))
            && (self.large_communities.is_empty()
                || self.large_communities.iter().any(|c| a.large_communities.contains(c)))
            && (self.as_path_contains.is_empty()
                || self.as_path_contains.iter().any(|asn| path.is_some_and(|p| p.contains(*asn))))
            && (self.origin_as.is_empty()
                || path.and_then(|p| p.origin_as()).is_some_and(|o| self.origin_as.contains(&o)))
            && (self.neighbor_as.is_empty()
                || path
                    .and_then(|p| p.neighbor_as())
                    .is_some_and(|n| self.neighbor_as.contains(&n)))
            && self.as_path_max_len.is_none_or(|max| path.map_or(0, |p| p.len()) <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::AsPath;

    fn p(s: &str) -> Prefix {
        s.parse().expect("prefix")
    }

    fn attrs(path: &[u32], communities: &[(u16, u16)]) -> PathAttributes {
        PathAttributes {
            as_path: Some(AsPath::sequence(path.iter().map(|a| Asn(*a)))),
            communities: communities.iter().map(|(a, v)| Community::new(*a, *v)).collect(),
            ..PathAttributes::default()
        }
    }

    #[test]
    fn prefix_matches_read_like_prefix_lists() {
        let m: PrefixMatch = "10.0.0.0/8 le 24".parse().expect("parses");
        assert!(m.matches(p("10.0.0.0/8")));
        assert!(m.matches(p("10.1.2.0/24")));
        assert!(!m.matches(p("10.1.2.0/25")));
        assert!(!m.matches(p("11.0.0.0/8")));
        let exact: PrefixMatch = "10.0.0.0/8".parse().expect("parses");
        assert!(exact.matches(p("10.0.0.0/8")));
        assert!(!exact.matches(p("10.0.0.0/9")));
        let ge: PrefixMatch = "2001:db8::/32 ge 64".parse().expect("parses");
        assert!(ge.matches(p("2001:db8:1::/64")) && ge.matches(p("2001:db8::1/128")));
        assert!(!ge.matches(p("2001:db8::/48")));
    }

    #[test]
    fn bad_prefix_matches_say_what_is_wrong() {
        for bad in
            ["", "10.0.0.0/8 le", "10.0.0.0/8 le 33", "10.0.0.0/8 ge 4", "10.0.0.0/8 eq 9", "10/8"]
        {
            assert!(bad.parse::<PrefixMatch>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_the_default_takes_the_rest() {
        let policy = Policy {
            rules: vec![
                Rule {
                    conditions: Conditions {
                        communities: vec![Community::new(65000, 666)],
                        ..Conditions::default()
                    },
                    action: Action::Reject,
                    set: Modifications::default(),
                },
                Rule {
                    conditions: Conditions {
                        prefixes: vec!["10.0.0.0/8 le 32".parse().expect("parses")],
                        ..Conditions::default()
                    },
                    action: Action::Accept,
                    set: Modifications { local_pref: Some(200), ..Modifications::default() },
                },
            ],
            default: Action::Reject,
        };
        let blackholed = attrs(&[65001], &[(65000, 666)]);
        assert_eq!(policy.evaluate(p("10.0.0.0/24"), &blackholed).action, Action::Reject);
        let v = policy.evaluate(p("10.0.0.0/24"), &attrs(&[65001], &[]));
        assert_eq!(v, Verdict { rule: Some(1), action: Action::Accept });
        assert_eq!(policy.modifications(v).and_then(|m| m.local_pref), Some(200));
        assert_eq!(policy.evaluate(p("192.0.2.0/24"), &attrs(&[65001], &[])).rule, None);
        assert!(policy.depends_on_prefix());
    }

    #[test]
    fn as_path_conditions_look_at_contents_ends_and_length() {
        let a = attrs(&[65001, 65002, 65003], &[]);
        let matches = |c: Conditions| c.matches(p("10.0.0.0/8"), &a);
        assert!(matches(Conditions { as_path_contains: vec![Asn(65002)], ..Default::default() }));
        assert!(!matches(Conditions { as_path_contains: vec![Asn(65009)], ..Default::default() }));
        assert!(matches(Conditions { origin_as: vec![Asn(65003)], ..Default::default() }));
        assert!(!matches(Conditions { origin_as: vec![Asn(65001)], ..Default::default() }));
        assert!(matches(Conditions { neighbor_as: vec![Asn(65001)], ..Default::default() }));
        assert!(matches(Conditions { as_path_max_len: Some(3), ..Default::default() }));
        assert!(!matches(Conditions { as_path_max_len: Some(2), ..Default::default() }));
    }

    #[test]
    fn modifications_keep_communities_canonical() {
        let m = Modifications {
            local_pref: Some(50),
            add_communities: vec![Community::new(1, 1), Community::new(65000, 1)],
            remove_communities: vec![Community::new(65000, 2)],
            prepend: 2,
            ..Modifications::default()
        };
        let mut a = attrs(&[65001], &[(65000, 2), (65000, 1)]);
        m.apply(&mut a, Some(Asn(64512)));
        assert_eq!(a.local_pref, Some(50));
        assert_eq!(a.communities, vec![Community::new(1, 1), Community::new(65000, 1)]);
        assert_eq!(a.as_path.map(|p| p.len()), Some(3));
    }
}
