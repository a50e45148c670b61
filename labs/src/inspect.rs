//! `tartanlab inspect`: every node of the deployed labs, from their records and the
//! supervisor's status, as a table or as containerlab's JSON
//! (`{"<lab>": [{lab_name, labPath, absLabPath, name, container_id, image, kind, state, status,
//! ipv4_address, ipv6_address, owner}]}`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::netns;
use crate::procfs::{comm, ns_inode, processes_in};
use crate::state::{LabState, NodeState, Phase};
use crate::supervisor::{NodeRun, Status};

/// One row of `inspect`, with containerlab's JSON keys.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub lab_name: String,
    #[serde(rename = "labPath")]
    pub lab_path: String,
    #[serde(rename = "absLabPath")]
    pub abs_lab_path: String,
    pub name: String,
    pub container_id: String,
    pub image: String,
    pub kind: String,
    pub state: String,
    pub status: String,
    pub ipv4_address: String,
    pub ipv6_address: String,
    pub owner: String,
    #[serde(skip)]
    pub processes: String,
}

fn ago(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} seconds"),
        60..=3599 => format!("{} minutes", secs / 60),
        _ => format!("{} hours", secs / 3600),
    }
}

/// Rows for every node of `state`.
pub fn view(state: &LabState) -> Vec<NodeView> {
    let status = Status::load(state);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let up = ago(now.saturating_sub(state.created_unix));
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| state.topology_file.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| state.topology_file.display().to_string());
    state
        .nodes
        .iter()
        .map(|node| {
            let (st, stat, procs) = node_state(state, node, status.as_ref(), &up);
            NodeView {
                lab_name: state.lab.clone(),
                lab_path: rel.clone(),
                abs_lab_path: state.topology_file.display().to_string(),
                name: node.netns.clone(),
                container_id: ns_inode(&netns::path(&node.netns))
                    .map(|i| format!("{i:012x}"))
                    .unwrap_or_default(),
                image: node.image.clone(),
                kind: node.kind.clone(),
                state: st,
                status: stat,
                ipv4_address: node.mgmt_ipv4.clone().unwrap_or_else(|| "N/A".into()),
                ipv6_address: node.mgmt_ipv6.clone().unwrap_or_else(|| "N/A".into()),
                owner: state.owner.clone(),
                processes: procs,
            }
        })
        .collect()
}

/// `(state, status, processes)` of one node.
fn node_state(
    state: &LabState,
    node: &NodeState,
    status: Option<&Status>,
    up: &str,
) -> (String, String, String) {
    if !netns::exists(&node.netns) {
        return ("missing".into(), "namespace is gone".into(), String::new());
    }
    if state.phase == Phase::Deploying {
        return ("created".into(), "deploying".into(), String::new());
    }
    let Some(ns) = status.and_then(|s| s.nodes.get(&node.name)) else {
        return ("unknown".into(), "no supervisor status".into(), String::new());
    };
    let daemons: Vec<_> = ns.processes.iter().filter(|p| !p.oneshot).collect();
    let dead: Vec<String> =
        daemons.iter().filter_map(|p| p.exit.as_ref().map(|e| format!("{} {e}", p.name))).collect();
    // What runs in the node now — including daemons an exec line started — and what ended.
    let net = ns_inode(&netns::path(&node.netns));
    let mut running: Vec<String> = processes_in(&net.into_iter().collect::<Vec<_>>(), &[])
        .iter()
        .map(|p| (comm(p.pid), p.pid))
        .filter(|(name, _)| name != "tartanlab" && name != crate::pidns::INIT_NAME)
        .map(|(name, pid)| format!("{name}({pid})"))
        .collect();
    running
        .extend(daemons.iter().filter_map(|p| p.exit.as_ref().map(|e| format!("{}[{e}]", p.name))));
    let procs = if running.is_empty() { "-".to_string() } else { running.join(" ") };
    match ns.state {
        NodeRun::Failed => ("failed".into(), ns.error.clone().unwrap_or_default(), procs),
        _ if !dead.is_empty() => ("exited".into(), dead.join(", "), procs),
        NodeRun::Ready => ("running".into(), format!("Up {up}"), procs),
        NodeRun::Idle => ("running".into(), format!("Up {up} (idle)"), procs),
        NodeRun::Waiting | NodeRun::Starting => ("starting".into(), "starting".into(), procs),
    }
}

/// containerlab's JSON shape: lab name → rows.
pub fn to_json(rows: &[NodeView]) -> String {
    let mut by_lab: BTreeMap<&str, Vec<&NodeView>> = BTreeMap::new();
    for r in rows {
        by_lab.entry(&r.lab_name).or_default().push(r);
    }
    serde_json::to_string_pretty(&by_lab).unwrap_or_else(|_| "{}".into())
}

/// A table like containerlab's.
pub fn to_table(rows: &[NodeView]) -> String {
    let header = ["Lab", "Name", "Kind/Image", "State", "IPv4 Address", "Processes"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.lab_name.clone(),
                r.name.clone(),
                format!("{}/{}", r.kind, r.image),
                if r.state == "running" {
                    r.state.clone()
                } else {
                    format!("{} ({})", r.state, r.status)
                },
                r.ipv4_address.clone(),
                r.processes.clone(),
            ]
        })
        .collect();
    render_table(&header, &cells)
}

/// Renders rows with box-drawing borders.
pub fn render_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |l: &str, m: &str, r: &str| {
        format!("{l}{}{r}\n", widths.iter().map(|w| "─".repeat(w + 2)).collect::<Vec<_>>().join(m))
    };
    let row = |cells: Vec<&str>| {
        let inner: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!(" {c}{} ", " ".repeat(w - c.chars().count())))
            .collect();
        format!("│{}│\n", inner.join("│"))
    };
    let mut out = line("╭", "┬", "╮");
    out += &row(header.to_vec());
    out += &line("├", "┼", "┤");
    for r in rows {
        out += &row(r.iter().map(String::as_str).collect());
    }
    out += &line("╰", "┴", "╯");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_padded_to_the_widest_cell() {
        let t = render_table(&["A", "Bee"], &[["xx".to_string(), "y".to_string()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "│ A  │ Bee │");
        assert_eq!(lines[3], "│ xx │ y   │");
        assert!(lines.iter().all(|l| l.chars().count() == lines[0].chars().count()));
    }
}
