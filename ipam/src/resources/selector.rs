//! Label selectors in Calico's syntax: `all()`, `has(k)`, `!has(k)`, `k == 'v'`, `k != 'v'`,
//! `k in {'a', 'b'}`, `k not in {...}`, `!`, `&&`, `||` and parentheses.
//!
//! Used by `IPPool.nodeSelector`, `BGPPeer.nodeSelector` and list queries. A selector is parsed
//! once when a resource is validated; evaluation never fails.

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
    Not(Box<Selector>),
    And(Box<Selector>, Box<Selector>),
    Or(Box<Selector>, Box<Selector>),
}

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
        let mut p = Parser { s: input.as_bytes(), pos: 0, input };
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

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |vs: &[String]| vs.iter().map(|v| quoted(v)).collect::<Vec<_>>().join(", ");
        match self {
            Selector::All => write!(f, "all()"),
            Selector::Has(k) => write!(f, "has({k})"),
            Selector::Eq(k, v) => write!(f, "{k} == {}", quoted(v)),
            Selector::Ne(k, v) => write!(f, "{k} != {}", quoted(v)),
            Selector::In(k, vs) => write!(f, "{k} in {{{}}}", list(vs)),
            Selector::NotIn(k, vs) => write!(f, "{k} not in {{{}}}", list(vs)),
            Selector::Not(s) => write!(f, "!({s})"),
            Selector::And(a, b) => write!(f, "({a}) && ({b})"),
            Selector::Or(a, b) => write!(f, "({a}) || ({b})"),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    input: &'a str,
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
        if self.eat("all()") {
            return Ok(Selector::All);
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
        } else if self.eat("not in") {
            Ok(Selector::NotIn(key, self.set()?))
        } else if self.eat("in") {
            Ok(Selector::In(key, self.set()?))
        } else {
            Err(self.error("expected `==`, `!=`, `in` or `not in` after the label name"))
        }
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
    fn display_round_trips_through_parse() {
        let s = Selector::parse("a == 'x' || !has(b) && c in {'1','2'}").expect("parses");
        assert_eq!(Selector::parse(&s.to_string()), Ok(s));
        // A value holding a single quote prints in double quotes (found by the fuzzer).
        for text in ["n != \"'\"", "n in {\"it's\", 'b'}", "!!n == \"a'b\""] {
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
