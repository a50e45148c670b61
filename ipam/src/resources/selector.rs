//! Label selectors in Calico's syntax: `all()`, `has(k)`, `!has(k)`, `k == 'v'`, `k != 'v'`,
//! `k in {'a', 'b'}`, `k not in {...}`, `k contains 'v'`, `k starts with 'v'`,
//! `k ends with 'v'`, `!`, `&&`, `||` and parentheses, with Calico's precedence (the match
//! operators, then parentheses, `!`, `&&`, `||`). `!=` and `not in` match when the label is
//! absent; the other comparisons need it.
//!
//! Used by `IPPool.nodeSelector`, `BGPPeer.nodeSelector`, the policy kinds and list queries. A
//! selector is parsed once when a resource is validated; evaluation never fails.

use std::collections::BTreeMap;
use std::fmt;

/// A parsed selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    All,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Selector>),
    And(Box<Selector>, Box<Selector>),
    Or(Box<Selector>, Box<Selector>),
}

/// Calico's longest selector, in characters.
pub const MAX_SELECTOR_LEN: usize = 1024;

/// How deep parentheses and `!` may nest (a bound on the parser's recursion).
const MAX_DEPTH: usize = 128;

/// Why a selector did not parse, with the character offset where it went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("selector {input:?}: {what} at character {offset}")]
pub struct SelectorError {
    pub input: String,
    pub offset: usize,
    pub what: String,
}

impl Selector {
    /// Parses a selector; the empty string means `all()`.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let mut p = Parser { s: input.as_bytes(), pos: 0, input, depth: 0 };
        if input.chars().count() > MAX_SELECTOR_LEN {
            return Err(SelectorError {
                input: input.chars().take(64).chain("...".chars()).collect(),
                offset: MAX_SELECTOR_LEN,
                what: format!("a selector is at most {MAX_SELECTOR_LEN} characters"),
            });
        }
        p.skip_ws();
        if p.pos == p.s.len() {
            return Ok(Selector::All);
        }
        let sel = p.or()?;
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(p.error("unexpected text"));
        }
        Ok(sel)
    }

    /// Whether a set of labels matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::All => true,
            Selector::Has(k) => labels.contains_key(k),
            Selector::Eq(k, v) => labels.get(k) == Some(v),
            Selector::Ne(k, v) => labels.get(k) != Some(v),
            Selector::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Selector::NotIn(k, vs) => !labels.get(k).is_some_and(|v| vs.contains(v)),
            Selector::Contains(k, s) => labels.get(k).is_some_and(|v| v.contains(s.as_str())),
            Selector::StartsWith(k, s) => labels.get(k).is_some_and(|v| v.starts_with(s.as_str())),
            Selector::EndsWith(k, s) => labels.get(k).is_some_and(|v| v.ends_with(s.as_str())),
            Selector::Not(s) => !s.matches(labels),
            Selector::And(a, b) => a.matches(labels) && b.matches(labels),
            Selector::Or(a, b) => a.matches(labels) || b.matches(labels),
        }
    }
}

/// A value in quotes the parser reads back: single ones, or double ones for a value that holds
/// a single quote (it came from a double-quoted string; strings have no escapes, so no value
/// holds both).
fn quoted(v: &str) -> String {
    if v.contains('\'') { format!("\"{v}\"") } else { format!("'{v}'") }
}

/// Where a selector is printed, for the parentheses it needs there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// At the top, or left of `||`.
    Free,
    /// Right of `||`.
    OrRight,
    /// Left of `&&`.
    AndLeft,
    /// Right of `&&`.
    AndRight,
    /// After `!`.
    Negated,
}

impl Selector {
    /// Prints with the parentheses the structure needs and no more, so the text parses back to
    /// the same tree and nests no deeper than the text it was parsed from.
    fn write(&self, f: &mut fmt::Formatter<'_>, place: Place) -> fmt::Result {
        let list = |vs: &[String]| vs.iter().map(|v| quoted(v)).collect::<Vec<_>>().join(", ");
        let parens = match self {
            Selector::Or(..) => place != Place::Free,
            Selector::And(..) => matches!(place, Place::AndRight | Place::Negated),
            _ => false,
        };
        if parens {
            f.write_str("(")?;
        }
        match self {
            Selector::All => write!(f, "all()")?,
            Selector::Has(k) => write!(f, "has({k})")?,
            Selector::Eq(k, v) => write!(f, "{k} == {}", quoted(v))?,
            Selector::Ne(k, v) => write!(f, "{k} != {}", quoted(v))?,
            Selector::In(k, vs) => write!(f, "{k} in {{{}}}", list(vs))?,
            Selector::NotIn(k, vs) => write!(f, "{k} not in {{{}}}", list(vs))?,
            Selector::Contains(k, v) => write!(f, "{k} contains {}", quoted(v))?,
            Selector::StartsWith(k, v) => write!(f, "{k} starts with {}", quoted(v))?,
            Selector::EndsWith(k, v) => write!(f, "{k} ends with {}", quoted(v))?,
            Selector::Not(s) => {
                f.write_str("!")?;
                s.write(f, Place::Negated)?;
            }
            Selector::And(a, b) => {
                a.write(f, Place::AndLeft)?;
                f.write_str(" && ")?;
                b.write(f, Place::AndRight)?;
            }
            Selector::Or(a, b) => {
                a.write(f, Place::Free)?;
                f.write_str(" || ")?;
                b.write(f, Place::OrRight)?;
            }
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, Place::Free)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    input: &'a str,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> SelectorError {
        SelectorError { input: self.input.to_string(), offset: self.pos, what: what.to_string() }
    }

    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.s[self.pos..].starts_with(token.as_bytes()) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// Words separated by any whitespace (`not in`, `starts  with`), the last one not run
    /// into a label name (`contains` but not `containsx`).
    fn eat_words(&mut self, words: &[&str]) -> bool {
        let start = self.pos;
        for w in words {
            if !self.eat(w) {
                self.pos = start;
                return false;
            }
        }
        if self.s.get(self.pos).is_some_and(|c| c.is_ascii_alphanumeric() || b"_./-".contains(c)) {
            self.pos = start;
            return false;
        }
        true
    }

    fn or(&mut self) -> Result<Selector, SelectorError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Selector::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Selector, SelectorError> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            left = Selector::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Selector, SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(&format!("nested more than {MAX_DEPTH} deep")));
        }
        let r = self.term();
        self.depth -= 1;
        r
    }

    fn term(&mut self) -> Result<Selector, SelectorError> {
        if self.eat("!") {
            return Ok(Selector::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected `)`"));
            }
            return Ok(inner);
        }
        if self.eat_call("all") {
            return Ok(Selector::All);
        }
        if self.eat_call("global") {
            return Err(self.error(
                "global() selects what has no namespace, and Tartan has no namespaces: use all()",
            ));
        }
        if self.eat("has(") {
            let key = self.key()?;
            if !self.eat(")") {
                return Err(self.error("expected `)` after the label name"));
            }
            return Ok(Selector::Has(key));
        }
        let key = self.key()?;
        if self.eat("==") {
            Ok(Selector::Eq(key, self.string()?))
        } else if self.eat("!=") {
            Ok(Selector::Ne(key, self.string()?))
        } else if self.eat_words(&["not", "in"]) {
            Ok(Selector::NotIn(key, self.set()?))
        } else if self.eat_words(&["in"]) {
            Ok(Selector::In(key, self.set()?))
        } else if self.eat_words(&["contains"]) {
            Ok(Selector::Contains(key, self.string()?))
        } else if self.eat_words(&["starts", "with"]) {
            Ok(Selector::StartsWith(key, self.string()?))
        } else if self.eat_words(&["ends", "with"]) {
            Ok(Selector::EndsWith(key, self.string()?))
        } else {
            Err(self.error(
                "expected `==`, `!=`, `in`, `not in`, `contains`, `starts with` or `ends with` after the label name",
            ))
        }
    }

    /// `name()` with any whitespace inside the parentheses.
    fn eat_call(&mut self, name: &str) -> bool {
        let start = self.pos;
        if self.eat(name) && self.eat("(") && self.eat(")") {
            return true;
        }
        self.pos = start;
        false
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|c| c.is_ascii_alphanumeric() || b"_./-".contains(c))
        {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error("expected a label name"));
        }
        Ok(self.input[start..self.pos].to_string())
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let quote = match self.s.get(self.pos) {
            Some(q @ (b'\'' | b'"')) => *q,
            _ => return Err(self.error("expected a quoted value like 'rack-1'")),
        };
        let start = self.pos + 1;
        let Some(len) = self.s[start..].iter().position(|c| *c == quote) else {
            return Err(self.error("unterminated quoted value"));
        };
        self.pos = start + len + 1;
        Ok(self.input[start..start + len].to_string())
    }

    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        if !self.eat("{") {
            return Err(self.error("expected `{` to open a set of values"));
        }
        let mut values = Vec::new();
        if self.eat("}") {
            return Ok(values);
        }
        loop {
            values.push(self.string()?);
            if self.eat("}") {
                return Ok(values);
            }
            if !self.eat(",") {
                return Err(self.error("expected `,` or `}` in a set of values"));
            }
            // A trailing comma, as Calico allows.
            if self.eat("}") {
                return Ok(values);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_empty_selector_and_all_match_everything() {
        assert_eq!(Selector::parse("").unwrap_or(Selector::Has("x".into())), Selector::All);
        assert!(Selector::parse("all()").is_ok_and(|s| s.matches(&labels(&[]))));
    }

    #[test]
    fn equality_membership_and_boolean_operators_combine() {
        let s =
            Selector::parse("rack == 'r1' && (has(gpu) || zone in {'a', \"b\"}) && !has(drain)")
                .expect("parses");
        assert!(s.matches(&labels(&[("rack", "r1"), ("gpu", "")])));
        assert!(s.matches(&labels(&[("rack", "r1"), ("zone", "b")])));
        assert!(!s.matches(&labels(&[("rack", "r1"), ("zone", "c")])));
        assert!(!s.matches(&labels(&[("rack", "r1"), ("gpu", ""), ("drain", "1")])));
        assert!(!s.matches(&labels(&[("rack", "r2"), ("gpu", "")])));
        let n = Selector::parse("zone not in {'a'} && rack != 'r1'").expect("parses");
        assert!(n.matches(&labels(&[])));
        assert!(!n.matches(&labels(&[("zone", "a")])));
    }

    #[test]
    fn substring_operators_need_the_label() {
        let s = Selector::parse(
            "name contains 'web' && zone starts  with \"eu-\" && !(host ends with '-old')",
        )
        .expect("parses");
        assert!(s.matches(&labels(&[("name", "my-web-1"), ("zone", "eu-west"), ("host", "h1")])));
        assert!(s.matches(&labels(&[("name", "web"), ("zone", "eu-")])), "host absent");
        assert!(!s.matches(&labels(&[("name", "web"), ("zone", "us-east")])));
        assert!(!s.matches(&labels(&[("zone", "eu-west")])), "name absent");
        assert!(!s.matches(&labels(&[("name", "web"), ("zone", "eu-1"), ("host", "h-old")])));
        // Keywords are words: a label may start with one.
        let k = Selector::parse("containsx == 'a' && all() && has(in) && notin notin {'b'}")
            .expect("parses");
        assert!(k.matches(&labels(&[("containsx", "a"), ("in", "")])));
        assert!(Selector::parse("all( )").is_ok());
        assert!(Selector::parse("a in {'x',}").is_ok_and(|s| s.matches(&labels(&[("a", "x")]))));
    }

    #[test]
    fn limits_and_global() {
        let long = format!("a == '{}'", "x".repeat(1100));
        assert!(Selector::parse(&long).expect_err("too long").to_string().contains("1024"));
        let deep = format!("{}has(a){}", "(".repeat(200), ")".repeat(200));
        assert!(Selector::parse(&deep).expect_err("too deep").to_string().contains("nested"));
        let nots = format!("{}has(a)", "!".repeat(100));
        assert!(Selector::parse(&nots).is_ok());
        assert!(
            Selector::parse("global()").expect_err("no namespaces").to_string().contains("all()")
        );
    }

    #[test]
    fn display_round_trips_through_parse() {
        let s = Selector::parse("a == 'x' || !has(b) && c in {'1','2'} || d contains 'y' && e starts with 'z' || f ends with '.'").expect("parses");
        assert_eq!(Selector::parse(&s.to_string()), Ok(s));
        // A value holding a single quote prints in double quotes (found by the fuzzer); the
        // printed text nests no deeper than what was parsed (found by the fuzzer: 69 `!`s
        // printed as `!(!(...))` went past the nesting limit).
        let nots = format!("{}a contains 'x'", "!".repeat(100));
        let chain = (0..60).map(|i| format!("k{i} == 'v'")).collect::<Vec<_>>().join(" && ");
        let shapes = "!(a == 'x' || b == 'y') && (c == 'z' || d == 'w') && (e == '1' && f == '2') || !!has(g)";
        for text in ["n != \"'\"", "n in {\"it's\", 'b'}", "!!n == \"a'b\"", &nots, &chain, shapes]
        {
            let s = Selector::parse(text).expect("parses");
            assert_eq!(Selector::parse(&s.to_string()), Ok(s), "{text}");
        }
    }

    #[test]
    fn errors_name_the_offset_and_what_was_expected() {
        let e = Selector::parse("rack = 'r1'").expect_err("single = is wrong");
        assert_eq!(e.offset, 5);
        assert!(e.to_string().contains("expected `==`"), "{e}");
        assert!(Selector::parse("rack == r1").is_err());
        assert!(Selector::parse("has(rack").is_err());
        assert!(Selector::parse("a == 'x' extra").is_err());
        assert!(Selector::parse("a in {'x'").is_err());
        assert!(Selector::parse("(a == 'x'").is_err());
    }
}
