//! `tartanlab bench ...`: benchmarks that deploy their own labs and print Tartan's figures
//! beside the reference implementations' from the same run (never timed assertions in tests).

pub mod bfd;
pub mod bgp;
pub mod birdctl;
pub mod fabric;
pub mod ipam;
pub mod routes;

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
