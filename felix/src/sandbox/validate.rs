//! Validation of what the user names: sandbox names (libcni's container ID rule), interface
//! names (CNI spec 1.0 §2), `CNI_ARGS` pairs (as cnitool parses them) and spec versions.
//! Pure functions; owns no state.

use super::error::{Result, SandboxError};

/// Longest sandbox name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Why `s` is not a valid container ID (libcni: `^[A-Za-z0-9][A-Za-z0-9_.\-]*$`).
pub fn id_problem(s: &str) -> Option<&'static str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    match s.chars().next() {
        None => Some("is empty"),
        Some(c) if !c.is_ascii_alphanumeric() => Some("must start with a letter or digit"),
        _ if s.len() > MAX_NAME_LEN => Some("is longer than 64 characters"),
        _ if !s.chars().all(ok) => Some("has characters other than letters, digits, `_`, `.`, `-`"),
        _ => None,
    }
}

/// Why `s` is not a valid CNI_IFNAME (spec 1.0 §2).
pub fn ifname_problem(s: &str) -> Option<&'static str> {
    match s {
        "" => Some("is empty"),
        "." | ".." => Some("is a directory name"),
        _ if s.len() > 15 => Some("is longer than 15 characters"),
        _ if s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) => {
            Some("has `/`, `:` or whitespace")
        }
        _ => None,
    }
}

/// `1.0.0` → (1, 0, 0); missing parts are 0.
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    parts.next().is_none().then_some((major, minor, patch))
}

/// CNI_ARGS as cnitool parses it: `K=V` pairs separated by `;`.
pub fn parse_args(args: &str) -> Result<Vec<[String; 2]>> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    args.split(';')
        .map(|pair| match pair.split('=').collect::<Vec<_>>()[..] {
            [k, v] if !k.is_empty() && !v.is_empty() => Ok([k.to_string(), v.to_string()]),
            _ => Err(SandboxError::InvalidArgs { pair: pair.to_string() }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_libcni_container_id_rules() {
        for ok in ["a", "A0", "web-1.ns_x", &"x".repeat(64)] {
            assert_eq!(id_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("-a", "start"),
            (".a", "start"),
            ("a/b", "characters"),
            ("a b", "characters"),
            (&"x".repeat(65), "64"),
        ] {
            assert!(id_problem(bad).is_some_and(|r| r.contains(why)), "{bad}");
        }
        let e = SandboxError::InvalidName { name: "a/b".into(), reason: "has characters" };
        assert!(e.to_string().starts_with("sandbox name \"a/b\" has characters"));
    }

    #[test]
    fn ifnames_follow_the_spec() {
        assert_eq!(ifname_problem("eth0"), None);
        assert_eq!(ifname_problem("abcdefghijklmno"), None);
        for bad in ["", ".", "..", "abcdefghijklmnop", "a/b", "a:b", "a b"] {
            assert!(ifname_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn cni_args_parse_like_cnitool() {
        let got = parse_args("IgnoreUnknown=1;K8S_POD_NAME=p").expect("args");
        assert_eq!(
            got,
            [["IgnoreUnknown".to_string(), "1".into()], ["K8S_POD_NAME".into(), "p".into()]]
        );
        assert_eq!(parse_args("").expect("empty"), Vec::<[String; 2]>::new());
        for bad in ["K", "K=", "=V", "K=V=W", "A=1;;B=2"] {
            assert!(matches!(parse_args(bad), Err(SandboxError::InvalidArgs { .. })), "{bad}");
        }
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(parse_version("1.0.0"), Some((1, 0, 0)));
        assert_eq!(parse_version("0.4"), Some((0, 4, 0)));
        assert!(parse_version("0.10.0") > parse_version("0.4.0"));
        for bad in ["", "x", "1.0.0.0", "1..0", "v1"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }
}
