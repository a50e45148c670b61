//! Everything that formats output: calicoctl's two table styles (aligned columns for `get`,
//! bordered for `ipam` and `node status`), YAML and JSON, counts in `%.5g` style, ages, and
//! writing to stdout without panicking on a closed pipe.

use std::io::Write;

use serde::Serialize;

use crate::context::{Error, Result};

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// `get`'s tables: upper-case headers, columns three spaces apart.
pub fn plain(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            line.push_str(cell);
            line.push_str(&" ".repeat(w - width(cell) + 3));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The bordered tables of `ipam show` and `node status`, headers centred.
pub fn bordered(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let rule: String =
        widths.iter().map(|w| format!("+{}", "-".repeat(w + 2))).collect::<String>() + "+\n";
    let mut out = rule.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let pad = w - width(h);
        out.push_str(&format!("| {}{h}{} ", " ".repeat(pad / 2), " ".repeat(pad - pad / 2)));
    }
    out.push_str("|\n");
    out.push_str(&rule);
    for row in rows {
        for (cell, w) in row.iter().zip(&widths) {
            out.push_str(&format!("| {cell}{} ", " ".repeat(w - width(cell))));
        }
        out.push_str("|\n");
    }
    out.push_str(&rule);
    out
}

/// A count as calicoctl prints it: exact below 100000, else Go's `%.5g` (`1.2089e+24`).
pub fn count(n: u128) -> String {
    if n < 100_000 {
        return n.to_string();
    }
    // `{:.4e}` rounds to five significant digits: `1.2089e24`.
    let text = format!("{:.4e}", n as f64);
    let Some((mantissa, exp)) = text.split_once('e') else { return n.to_string() };
    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mantissa}e+{exp:02}")
}

/// `N (pct%)` of a total.
pub fn count_pct(n: u128, total: u128) -> String {
    let pct = if total == 0 { 0.0 } else { n as f64 * 100.0 / total as f64 };
    format!("{} ({pct:.0}%)", count(n))
}

/// A duration in seconds for people: `42s`, `3m12s`, `2h5m`, `3d4h`.
pub fn age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// The age of an RFC 3339 time written by the server, if it parses.
pub fn age_of(rfc3339: &str) -> Option<u64> {
    let then = tartan_ipam::time::parse_rfc3339(rfc3339)?;
    Some(tartan_ipam::time::now_unix().saturating_sub(then))
}

/// One YAML document (no leading `---`).
pub fn yaml(value: &impl Serialize) -> Result<String> {
    serde_yaml::to_string(value).map_err(|e| Error::new(format!("cannot print as YAML: {e}")))
}

/// Pretty JSON with a final newline.
pub fn json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| Error::new(format!("cannot print as JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_go_percent_5g() {
        assert_eq!(count(0), "0");
        assert_eq!(count(65_536), "65536");
        assert_eq!(count(100_000), "1e+05");
        assert_eq!(count(1_048_576), "1.0486e+06");
        assert_eq!(count(1u128 << 80), "1.2089e+24");
        assert_eq!(count(1u128 << 64), "1.8447e+19");
        assert_eq!(count_pct(5, 256), "5 (2%)");
        assert_eq!(count_pct((1u128 << 64) - 2, 1u128 << 64), "1.8447e+19 (100%)");
    }

    #[test]
    fn tables_align() {
        let rows = vec![vec!["a".to_string(), "10.0.0.0/8".to_string()]];
        assert_eq!(plain(&["NAME", "CIDR"], &rows), "NAME   CIDR\na      10.0.0.0/8\n");
        let b = bordered(&["NAME", "CIDR"], &rows);
        assert_eq!(
            b,
            "+------+------------+\n| NAME |    CIDR    |\n+------+------------+\n\
             | a    | 10.0.0.0/8 |\n+------+------------+\n"
        );
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(192), "3m12s");
        assert_eq!(age(7500), "2h5m");
        assert_eq!(age(273_600), "3d4h");
    }
}
