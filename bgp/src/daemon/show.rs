//! The text that `tartan bgp status` and `tartan bgp rib` print: aligned tables, the way
//! network engineers read `show bgp summary` and `show route`.

use std::fmt::Write;

use super::control::RouteJson;
use crate::io::SpeakerStatus;

/// `3d4h`, `2h05m`, `4m12s`, `9s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Lays out rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                out.push_str(c);
            } else {
                let _ = write!(out, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

pub fn status(s: &SpeakerStatus) -> String {
    let mut out = format!(
        "BGP speaker AS {}, router ID {}, up {}; {} IPv4 and {} IPv6 prefixes, {} attribute sets\n\n",
        s.asn,
        s.router_id,
        duration(s.uptime_secs),
        s.rib.prefixes_v4,
        s.rib.prefixes_v6,
        s.rib.attribute_sets
    );
    for r in &s.ranges {
        out.push_str(&format!("Dynamic neighbors may connect from {r}.\n"));
    }
    if !s.ranges.is_empty() {
        out.push('\n');
    }
    if s.peers.is_empty() {
        if s.ranges.is_empty() {
            out.push_str("No neighbors are configured (add [[neighbor]] sections).\n");
        } else {
            out.push_str("No dynamic neighbor has connected yet.\n");
        }
        return out;
    }
    let rows: Vec<Vec<String>> = s
        .peers
        .iter()
        .map(|p| {
            let c = &p.counters;
            let up = match (p.uptime_secs, p.state) {
                (Some(u), _) => duration(u),
                _ => "-".into(),
            };
            let mut note = String::new();
            if let Some(d) = &p.description {
                note.push_str(d);
                note.push_str("; ");
            }
            if !p.stale_families.is_empty() {
                note.push_str("routes stale (graceful restart); ");
            }
            if p.state != crate::fsm::State::Established {
                note.push_str(p.last_error.as_deref().unwrap_or(""));
            }
            vec![
                format!("{}{}", p.address, if p.dynamic { " (dynamic)" } else { "" }),
                p.remote_as.map(|a| a.to_string()).unwrap_or_else(|| "any".into()),
                p.state.name().to_string(),
                up,
                c.routes_received.to_string(),
                (c.accepted[0] + c.accepted[1]).to_string(),
                (c.advertised[0] + c.advertised[1]).to_string(),
                note.trim_end_matches("; ").to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["NEIGHBOR", "AS", "STATE", "UPTIME", "ANNOUNCED", "ACCEPTED", "ADVERTISED", "INFO"],
        &rows,
    ));
    out.push_str(
        "\nANNOUNCED counts every route the neighbor announced (re-announcements too); ACCEPTED and\nADVERTISED are the routes held from it and sent to it now.\n",
    );
    out.push_str(&bfd(s));
    out
}

/// The BFD sessions, if any neighbor runs BFD.
pub fn bfd(s: &SpeakerStatus) -> String {
    let mut out = String::new();
    if let Some(e) = &s.bfd_error {
        out.push_str(&format!("\nBFD could not run: {e}\n"));
    }
    if s.bfd.is_empty() {
        return out;
    }
    let rows: Vec<Vec<String>> = s
        .bfd
        .iter()
        .map(|b| {
            let since = b.uptime.or(b.downtime).map_or_else(|| "-".into(), duration);
            vec![
                b.peer.to_string(),
                b.status.clone(),
                since,
                format!("{}ms", b.negotiated_transmit_interval),
                b.detection_time.map_or_else(|| "-".into(), |d| format!("{d}ms")),
                format!("{}ms x {}", b.remote_transmit_interval, b.remote_detect_multiplier),
                b.flaps.to_string(),
                match &b.error {
                    Some(e) => format!("cannot send: {e}"),
                    None if b.diagnostic == "ok" => String::new(),
                    None => b.diagnostic.clone(),
                },
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        &["BFD PEER", "STATE", "SINCE", "TX", "DETECT", "PEER TX", "FLAPS", "LAST DIAGNOSTIC"],
        &rows,
    ));
    out
}

pub fn rib(routes: &[RouteJson]) -> String {
    if routes.is_empty() {
        return "No routes.\n".into();
    }
    let mut rows = Vec::new();
    for r in routes {
        for p in &r.paths {
            let mut flags = String::new();
            flags.push(if p.stale { 'S' } else { '*' });
            flags.push(if p.best {
                '>'
            } else if p.multipath {
                '='
            } else {
                ' '
            });
            let mut extra: Vec<String> = p.communities.clone();
            extra.extend(p.large_communities.iter().cloned());
            rows.push(vec![
                flags,
                r.prefix.clone(),
                p.next_hop.clone().unwrap_or_else(|| "self".into()),
                p.from.clone().unwrap_or_else(|| "local".into()),
                if p.as_path.is_empty() { "-".into() } else { p.as_path.clone() },
                p.origin.clone().unwrap_or_default(),
                p.local_pref.map(|x| x.to_string()).unwrap_or_default(),
                p.med.map(|x| x.to_string()).unwrap_or_default(),
                extra.join(" "),
            ]);
        }
    }
    let mut out = table(
        &["", "PREFIX", "NEXT HOP", "FROM", "AS PATH", "ORIGIN", "LOCPRF", "MED", "COMMUNITIES"],
        &rows,
    );
    out.push_str("\n* valid  > best  = multipath  S stale (graceful restart)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_router_uptimes() {
        assert_eq!(duration(9), "9s");
        assert_eq!(duration(252), "4m12s");
        assert_eq!(duration(7500), "2h05m");
        assert_eq!(duration(3 * 86400 + 4 * 3600), "3d4h");
    }

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["A", "B"],
            &[vec!["long value".into(), "x".into()], vec!["s".into(), "y".into()]],
        );
        assert_eq!(t, "A           B\nlong value  x\ns           y\n");
    }
}
