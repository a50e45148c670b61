//! Strict reading of YAML mappings: every key is checked against a table that says whether
//! tartanlab uses it, ignores it with a warning (a container knob with no meaning here), or
//! refuses it with the reason. Getters convert values and record a problem on a wrong type,
//! so one pass reports everything that is wrong with a file.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::error::{Problem, ProblemKind, Where};

/// What tartanlab does with a key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rule {
    /// Read and honoured.
    Use,
    /// Accepted for compatibility; has no effect here (the reason goes into a warning).
    Ignore(&'static str),
    /// Refused, with the reason.
    Reject(&'static str),
}

/// Problems and warnings gathered while reading one file.
#[derive(Debug, Default)]
pub(super) struct Ctx {
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
}

impl Ctx {
    pub fn problem(&mut self, at: &Where, kind: ProblemKind) {
        self.problems.push(Problem { at: at.clone(), kind });
    }

    pub fn bad(&mut self, at: &Where, key: &str, message: impl Into<String>) {
        self.problem(at, ProblemKind::BadValue { key: key.to_string(), message: message.into() });
    }

    fn wrong_type(&mut self, at: &Where, key: &str, expected: &'static str) {
        self.problem(at, ProblemKind::WrongType { key: key.to_string(), expected });
    }

    /// Checks every key of `map` against `rules`.
    pub fn check_keys(&mut self, at: &Where, map: &Mapping, rules: &[(&'static str, Rule)]) {
        for key in map.keys() {
            let Some(key) = scalar(key) else {
                self.wrong_type(at, "(key)", "a string");
                continue;
            };
            match rules.iter().find(|(k, _)| *k == key) {
                Some((_, Rule::Use)) => {}
                Some((_, Rule::Ignore(why))) => {
                    self.warnings.push(format!("{at}: `{key}` has no effect here: {why}"));
                }
                Some((_, Rule::Reject(reason))) => {
                    self.problem(at, ProblemKind::UnsupportedKey { key, reason });
                }
                None => {
                    let suggestion = closest(&key, rules.iter().map(|(k, _)| *k));
                    self.problem(at, ProblemKind::UnknownKey { key, suggestion });
                }
            }
        }
    }

    /// A scalar value as a string (YAML numbers and booleans are written out, as Go's YAML
    /// decoder does for string fields). Empty strings count as unset.
    pub fn string(&mut self, at: &Where, map: &Mapping, key: &str) -> Option<String> {
        match map.get(key)? {
            Value::Null => None,
            v => match scalar(v) {
                Some(s) if s.is_empty() => None,
                Some(s) => Some(s),
                None => {
                    self.wrong_type(at, key, "a string");
                    None
                }
            },
        }
    }

    pub fn u64(&mut self, at: &Where, map: &Mapping, key: &str) -> Option<u64> {
        match map.get(key)? {
            Value::Null => None,
            Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
            Value::String(s) if s.trim().parse::<u64>().is_ok() => s.trim().parse().ok(),
            _ => {
                self.wrong_type(at, key, "a non-negative whole number");
                None
            }
        }
    }

    /// A list of scalars.
    pub fn string_list(&mut self, at: &Where, map: &Mapping, key: &str) -> Vec<String> {
        match map.get(key) {
            None | Some(Value::Null) => vec![],
            Some(Value::Sequence(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match scalar(item) {
                        Some(s) => out.push(s),
                        None => {
                            self.wrong_type(at, key, "a list of strings");
                            return vec![];
                        }
                    }
                }
                out
            }
            Some(_) => {
                self.wrong_type(at, key, "a list of strings");
                vec![]
            }
        }
    }

    /// A mapping of scalars to scalars (`null` values become "").
    pub fn string_map(&mut self, at: &Where, map: &Mapping, key: &str) -> BTreeMap<String, String> {
        match map.get(key) {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Mapping(m)) => {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    let value = if v.is_null() { Some(String::new()) } else { scalar(v) };
                    match (scalar(k), value) {
                        (Some(k), Some(v)) => {
                            out.insert(k, v);
                        }
                        _ => {
                            self.wrong_type(at, key, "a mapping of names to plain values");
                            return BTreeMap::new();
                        }
                    }
                }
                out
            }
            Some(_) => {
                self.wrong_type(at, key, "a mapping of names to plain values");
                BTreeMap::new()
            }
        }
    }

    /// A nested mapping; `null` counts as an empty one.
    pub fn mapping<'a>(&mut self, at: &Where, map: &'a Mapping, key: &str) -> Option<&'a Mapping> {
        match map.get(key)? {
            Value::Mapping(m) => Some(m),
            Value::Null => None,
            _ => {
                self.wrong_type(at, key, "a mapping");
                None
            }
        }
    }
}

/// A YAML scalar as text.
pub(super) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// YAML value → JSON value, for `vars` that are only passed through to `topology-data.json`.
pub(super) fn to_json(v: &Value) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

/// The known key closest to `key`, if it is a plausible typo; among equally close keys, the one
/// sharing the longest start (`bind` → `binds`, not `kind`).
pub(super) fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let shared_start = |c: &str| key.chars().zip(c.chars()).take_while(|(a, b)| a == b).count();
    candidates
        .map(|c| (edit_distance(key, c), std::cmp::Reverse(shared_start(c)), c))
        .filter(|(d, _, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, s, _)| (*d, *s))
        .map(|(_, _, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Keys of a node definition (nodes, kinds, groups, defaults): containerlab's schema.
pub(super) const NODE_KEYS: &[(&str, Rule)] = &[
    ("kind", Rule::Use),
    ("image", Rule::Use),
    ("group", Rule::Use),
    ("cmd", Rule::Use),
    ("entrypoint", Rule::Use),
    ("binds", Rule::Use),
    ("env", Rule::Use),
    ("env-files", Rule::Use),
    ("exec", Rule::Use),
    ("labels", Rule::Use),
    ("sysctls", Rule::Use),
    ("mgmt-ipv4", Rule::Use),
    ("mgmt-ipv6", Rule::Use),
    ("network-mode", Rule::Use),
    ("startup-delay", Rule::Use),
    ("hostname", Rule::Use),
    ("aliases", Rule::Ignore("interface aliases apply to network OS kinds only")),
    ("auto-remove", Rule::Ignore("nodes are removed by `tartanlab destroy`")),
    ("cap-add", Rule::Ignore("node processes run as root with every capability")),
    ("privileged", Rule::Ignore("node processes run as root with every capability")),
    ("security-opts", Rule::Ignore("node processes run as root with every capability")),
    ("certificate", Rule::Use),
    ("cgroup-parent", Rule::Ignore("resource limits are not applied")),
    ("cgroupns-mode", Rule::Ignore("resource limits are not applied")),
    ("cpu", Rule::Ignore("resource limits are not applied")),
    ("cpu-set", Rule::Ignore("resource limits are not applied")),
    ("memory", Rule::Ignore("resource limits are not applied")),
    ("shm-size", Rule::Ignore("resource limits are not applied")),
    ("components", Rule::Ignore("applies to network OS kinds only")),
    ("config", Rule::Ignore("applies to network OS kinds only")),
    ("credentials", Rule::Ignore("applies to network OS kinds only")),
    ("extras", Rule::Ignore("applies to network OS kinds only")),
    ("license", Rule::Ignore("applies to network OS kinds only")),
    ("link-apply-mode", Rule::Ignore("applies to network OS kinds only")),
    ("type", Rule::Ignore("applies to network OS kinds only")),
    ("startup-config", Rule::Ignore("the linux kind ignores it, as containerlab does")),
    ("enforce-startup-config", Rule::Ignore("the linux kind ignores it, as containerlab does")),
    ("suppress-startup-config", Rule::Ignore("the linux kind ignores it, as containerlab does")),
    ("dns", Rule::Ignore("nodes use the machine's resolver configuration")),
    ("image-pull-policy", Rule::Ignore("nothing is pulled; the image only selects a profile")),
    ("restart-policy", Rule::Ignore("processes are not restarted; an exit shows in inspect")),
    ("runtime", Rule::Ignore("nodes are namespaces, not containers")),
    ("healthcheck", Rule::Ignore("health checks are not run")),
    ("ports", Rule::Ignore("nothing is published on the machine's own network")),
    ("devices", Rule::Ignore("every node sees the machine's /dev")),
    ("pid-mode", Rule::Ignore("nodes always share the machine's PID namespace")),
    ("stages", Rule::Reject("stage dependencies are not implemented; use startup-delay")),
    ("user", Rule::Reject("node processes run as root; daemons drop privileges themselves")),
    ("volumes", Rule::Reject("named volumes need a container engine; use binds")),
    ("tmpfs", Rule::Reject("use binds; /run and /tmp are already private to each node")),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion() {
        let keys = NODE_KEYS.iter().map(|(k, _)| *k);
        assert_eq!(closest("imgae", keys.clone()).as_deref(), Some("image"));
        assert_eq!(closest("startup-dealy", keys.clone()).as_deref(), Some("startup-delay"));
        assert_eq!(closest("bind", keys.clone()).as_deref(), Some("binds"));
        assert_eq!(closest("zzzzzzzz", keys).as_deref(), None);
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("kind", "kind"), 0);
        assert_eq!(edit_distance("kinf", "kind"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
