//! Environment-variable expansion of the raw topology text, as containerlab does it before
//! parsing: `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:=default}`, `${VAR:+alt}`,
//! `${VAR+alt}`, and `$$` for a literal `$`. An unset variable without a default is left as
//! written, so a missing variable shows up verbatim in the error or in the node, not as "";
//! [`unset`] finds them, so the loader can say which is missing where (containerlab leaves
//! them silently).

/// Expands `${...}` references in `text`, looking variables up with `lookup`.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if tail.starts_with("${") {
            match matching_brace(tail) {
                Some(end) => {
                    let inner = &tail[2..end];
                    match expand_reference(inner, lookup) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&tail[..=end]),
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    // An unterminated `${` is left alone; YAML or the field check reports it.
                    out.push_str(tail);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The references in `text` that stay unexpanded (an unset variable without a default, or
/// `${VAR:?message}`), with their 1-based lines; comment lines are skipped.
pub fn unset(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            let tail = &rest[pos..];
            if let Some(after) = tail.strip_prefix("$$") {
                rest = after;
            } else if tail.starts_with("${") {
                let Some(end) = matching_brace(tail) else { break };
                if expand_reference(&tail[2..end], lookup).is_none() {
                    out.push((tail[..=end].to_string(), i + 1));
                }
                rest = &tail[end + 1..];
            } else {
                rest = &tail[1..];
            }
        }
    }
    out
}

/// Index of the `}` closing the `${` at the start of `s`, allowing nested `${...}` in defaults.
fn matching_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Expands the inside of one `${...}`; `None` means "leave the reference as written".
fn expand_reference(inner: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let name_len = inner
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(inner.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, op_and_word) = inner.split_at(name_len);
    let value = lookup(name);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let word = |w: &str| expand(w, lookup);
    for (op, use_word) in
        [(":-", !non_empty), (":=", !non_empty), (":+", non_empty), ("-", !set), ("=", !set)]
    {
        if let Some(w) = op_and_word.strip_prefix(op) {
            return Some(if use_word { word(w) } else { value.unwrap_or_default() });
        }
    }
    if let Some(w) = op_and_word.strip_prefix('+') {
        return Some(if set { word(w) } else { String::new() });
    }
    if op_and_word.is_empty() {
        return value;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "NUM1" => Some("one".into()),
            _ => None,
        }
    }

    #[test]
    fn unset_references_are_found_with_their_lines() {
        let text = "name: ${SET}\n# ${COMMENTED}\nimage: ${MISSING}\nx: ${MISSING:-d} $${LITERAL} ${OTHER:?say}\n";
        assert_eq!(
            unset(text, &env),
            vec![("${MISSING}".to_string(), 3), ("${OTHER:?say}".to_string(), 4)]
        );
    }

    fn x(s: &str) -> String {
        expand(s, &env)
    }

    #[test]
    fn plain_reference_is_replaced() {
        assert_eq!(x("image: ${SET}:latest"), "image: value:latest");
        assert_eq!(x("${NUM1}"), "one");
    }

    #[test]
    fn unset_reference_without_default_is_left_verbatim() {
        assert_eq!(x("a ${UNSET} b"), "a ${UNSET} b");
    }

    #[test]
    fn colon_dash_default_applies_when_unset_or_empty() {
        assert_eq!(x("${UNSET:-d}"), "d");
        assert_eq!(x("${EMPTY:-d}"), "d");
        assert_eq!(x("${SET:-d}"), "value");
        assert_eq!(x("${UNSET:=d}"), "d");
    }

    #[test]
    fn dash_default_applies_only_when_unset() {
        assert_eq!(x("${UNSET-d}"), "d");
        assert_eq!(x("${EMPTY-d}"), "");
    }

    #[test]
    fn plus_alternatives() {
        assert_eq!(x("${SET:+alt}"), "alt");
        assert_eq!(x("${EMPTY:+alt}"), "");
        assert_eq!(x("${EMPTY+alt}"), "alt");
        assert_eq!(x("${UNSET+alt}"), "");
    }

    #[test]
    fn nested_default_is_expanded() {
        assert_eq!(x("${UNSET:-${SET}}"), "value");
        assert_eq!(x("${UNSET:-${ALSO_UNSET:-deep}}"), "deep");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(x("echo $$HOME and $${SET}"), "echo $HOME and ${SET}");
    }

    #[test]
    fn bare_dollar_and_unterminated_braces_are_untouched() {
        assert_eq!(x("cost $5, $SET"), "cost $5, $SET");
        assert_eq!(x("${SET"), "${SET");
        assert_eq!(x("${1abc}"), "${1abc}");
    }
}
