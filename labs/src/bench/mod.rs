//! `tartanlab bench ...`: benchmarks that deploy their own labs and print Tartan's figures
//! beside the reference implementations' from the same run (never timed assertions in tests).

pub mod bfd;
pub mod bgp;
pub mod birdctl;
pub mod fabric;
pub mod ipam;
mod lab;
pub mod routes;

use crate::error::LabError;

/// An I/O error with what was being done.
pub(crate) fn io(what: &'static str) -> impl Fn(std::io::Error) -> LabError {
    move |source| LabError::Io { what: what.to_string(), source }
}

/// User plus system CPU seconds of a process and its threads.
pub(crate) fn cpu_seconds(pid: i32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Rows as aligned columns, the first row the header.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r.get(c).map_or(0, |v| v.chars().count())).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> =
            r.iter().enumerate().map(|(c, v)| format!("{v:<w$}", w = widths[c])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
