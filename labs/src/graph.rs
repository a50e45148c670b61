//! `tartanlab graph`: the topology drawn as text, Mermaid or Graphviz dot, grouped by `group`.
//! Needs nothing deployed (and no root).

use std::collections::BTreeMap;

use crate::topology::Topology;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Mermaid,
    Dot,
}

pub fn render(topo: &Topology, format: Format) -> String {
    match format {
        Format::Text => text(topo),
        Format::Mermaid => mermaid(topo),
        Format::Dot => dot(topo),
    }
}

fn groups(topo: &Topology) -> BTreeMap<&str, Vec<&crate::topology::Node>> {
    let mut groups: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for n in &topo.nodes {
        groups.entry(n.group.as_str()).or_default().push(n);
    }
    groups
}

fn text(topo: &Topology) -> String {
    let mut out =
        format!("lab {}: {} nodes, {} links\n", topo.name, topo.nodes.len(), topo.links.len());
    for (group, nodes) in groups(topo) {
        out += &format!(
            "\n{}\n",
            if group.is_empty() { "nodes".to_string() } else { format!("group {group}") }
        );
        let w = nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
        for n in nodes {
            let mgmt = n.mgmt.as_ref().map(|m| format!("  eth0 {}", m.ipv4)).unwrap_or_default();
            out += &format!("  {:w$}  {} ({}){mgmt}\n", n.name, n.image, n.profile.name());
        }
    }
    if !topo.links.is_empty() {
        out += "\nlinks\n";
        let w = topo
            .links
            .iter()
            .map(|l| l.endpoints[0].node.len() + l.endpoints[0].interface.len() + 1)
            .max()
            .unwrap_or(0);
        for l in &topo.links {
            let [a, z] = &l.endpoints;
            let left = format!("{}:{}", a.node, a.interface);
            out += &format!("  {left:>w$} ──── {}:{}  (mtu {})\n", z.node, z.interface, l.mtu);
        }
    }
    out
}

fn mermaid_id(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn mermaid(topo: &Topology) -> String {
    let mut out = String::from("graph LR\n");
    for (group, nodes) in groups(topo) {
        let indent = if group.is_empty() { "  " } else { "    " };
        if !group.is_empty() {
            out += &format!("  subgraph {}[\"{group}\"]\n", mermaid_id(&format!("group_{group}")));
        }
        for n in nodes {
            out += &format!(
                "{indent}{}[\"{}<br/><small>{}</small>\"]\n",
                mermaid_id(&n.name),
                n.name,
                n.image
            );
        }
        if !group.is_empty() {
            out += "  end\n";
        }
    }
    for l in &topo.links {
        let [a, z] = &l.endpoints;
        out += &format!(
            "  {} ---|\"{} — {}\"| {}\n",
            mermaid_id(&a.node),
            a.interface,
            z.interface,
            mermaid_id(&z.node)
        );
    }
    out
}

fn dot(topo: &Topology) -> String {
    let mut out = format!("graph \"{}\" {{\n  node [shape=box];\n", topo.name);
    for (group, nodes) in groups(topo) {
        let indent = if group.is_empty() { "  " } else { "    " };
        if !group.is_empty() {
            out += &format!("  subgraph \"cluster_{group}\" {{\n    label=\"{group}\";\n");
        }
        for n in nodes {
            out += &format!("{indent}\"{}\" [label=\"{}\\n{}\"];\n", n.name, n.name, n.image);
        }
        if !group.is_empty() {
            out += "  }\n";
        }
    }
    for l in &topo.links {
        let [a, z] = &l.endpoints;
        out += &format!(
            "  \"{}\" -- \"{}\" [taillabel=\"{}\", headlabel=\"{}\"];\n",
            a.node, z.node, a.interface, z.interface
        );
    }
    out + "}\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        let text = "name: g\ntopology:\n  defaults: {kind: linux, image: frr}\n  nodes: {a: {group: spine}, b-1: {}}\n  links:\n    - endpoints: [\"a:eth1\", \"b-1:eth1\"]\n";
        let opts = crate::topology::LoadOptions { skip_file_checks: true, ..Default::default() };
        crate::topology::parse(text, std::path::Path::new("/g.yml"), &opts).expect("parses")
    }

    #[test]
    fn text_lists_nodes_by_group_and_links() {
        let t = render(&topo(), Format::Text);
        assert!(t.contains("group spine"), "{t}");
        assert!(t.contains("a:eth1 ──── b-1:eth1  (mtu 9500)"), "{t}");
    }

    #[test]
    fn mermaid_sanitises_ids_and_labels_links() {
        let m = render(&topo(), Format::Mermaid);
        assert!(m.starts_with("graph LR\n"));
        assert!(m.contains("a ---|\"eth1 — eth1\"| b_1"), "{m}");
        assert!(m.contains("subgraph group_spine[\"spine\"]"), "{m}");
    }

    #[test]
    fn dot_is_an_undirected_graph_with_clusters() {
        let d = render(&topo(), Format::Dot);
        assert!(d.contains("subgraph \"cluster_spine\""), "{d}");
        assert!(d.contains("\"a\" -- \"b-1\""), "{d}");
    }
}
