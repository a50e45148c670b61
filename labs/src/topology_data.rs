//! `clab-<lab>/topology-data.json`, with the fields containerlab's `auto.tmpl` export writes, so
//! tools that read containerlab's export read ours.

use serde_json::{Map, Value, json};

use crate::error::{LabError, Result};
use crate::state::LabState;
use crate::topology::{Endpoint, Topology, format_mac};
use crate::wiring::assign_macs;

/// Builds the document.
pub fn document(topo: &Topology, state: &LabState) -> Value {
    let macs = assign_macs(topo);
    let m = &topo.mgmt;
    let mut mgmt = json!({
        "network": m.network,
        "bridge": m.bridge,
        "ipv4-subnet": m.ipv4_subnet.to_string(),
        "ipv4-gw": m.ipv4_gw.to_string(),
        "mtu": m.mtu,
    });
    if let (Some(net), Some(gw)) = (m.ipv6_subnet, m.ipv6_gw) {
        mgmt["ipv6-subnet"] = json!(net.to_string());
        mgmt["ipv6-gw"] = json!(gw.to_string());
    }
    let nodes: Map<String, Value> =
        topo.nodes
            .iter()
            .map(|n| {
                let (v4, v4len) = n.mgmt.as_ref().map_or((String::new(), 0), |a| {
                    (a.ipv4.addr().to_string(), a.ipv4.prefix_len())
                });
                let (v6, v6len) = n
                    .mgmt
                    .as_ref()
                    .and_then(|a| a.ipv6)
                    .map_or((String::new(), 0), |a| (a.addr().to_string(), a.prefix_len()));
                let node = json!({
                    "index": n.index.to_string(),
                    "shortname": n.name,
                    "longname": n.long_name,
                    "fqdn": format!("{}.{}.io", n.name, topo.name),
                    "group": n.group,
                    "labdir": state.node_dir(&n.name).display().to_string(),
                    "kind": n.kind,
                    "image": n.image,
                    "mgmt-net": m.network,
                    "mgmt-intf": if n.mgmt.is_some() { "eth0" } else { "" },
                    "mgmt-ipv4-address": v4,
                    "mgmt-ipv4-prefix-length": v4len,
                    "mgmt-ipv6-address": v6,
                    "mgmt-ipv6-prefix-length": v6len,
                    "mac-address": "",
                    "labels": n.labels,
                    "port-bindings": [],
                });
                (n.name.clone(), node)
            })
            .collect();
    let endpoint = |e: &Endpoint, peer: &str| {
        let mac =
            macs.get(&(e.node.clone(), e.interface.clone())).map(format_mac).unwrap_or_default();
        let mut v = json!({ "node": e.node, "interface": e.interface, "mac": mac });
        if let Some(ip) = &e.ipv4 {
            v["ipv4"] = json!(ip);
        }
        if let Some(ip) = &e.ipv6 {
            v["ipv6"] = json!(ip);
        }
        if let Some(vars) = &e.vars {
            v["vars"] = vars.clone();
        }
        v["peer"] = json!(peer);
        v
    };
    let links: Vec<Value> = topo
        .links
        .iter()
        .map(|l| {
            let mut v = json!({ "endpoints": { "a": endpoint(&l.endpoints[0], "z"), "z": endpoint(&l.endpoints[1], "a") } });
            if let Some(vars) = &l.vars {
                v["vars"] = vars.clone();
            }
            v
        })
        .collect();
    json!({
        "name": topo.name,
        "type": "clab",
        "clab": { "config": { "prefix": topo.prefix.clone().unwrap_or_else(|| "clab".into()), "mgmt": mgmt } },
        "ssh-pub-keys": [],
        "nodes": nodes,
        "links": links,
    })
}

/// Writes `topology-data.json` into the lab directory.
pub fn write(topo: &Topology, state: &LabState) -> Result<()> {
    let path = state.lab_dir.join("topology-data.json");
    let text = serde_json::to_string_pretty(&document(topo, state))
        .map_err(|e| LabError::State { path: path.clone(), message: e.to_string() })?;
    std::fs::write(&path, text + "\n").map_err(LabError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_has_containerlabs_fields() {
        let text = "name: d\ntopology:\n  defaults: {kind: linux, image: frr}\n  nodes: {a: {group: g}, b: {}}\n  links:\n    - endpoints: [\"a:eth1\", \"b:eth1\"]\n      vars: {cost: 10}\n";
        let opts = crate::topology::LoadOptions { skip_file_checks: true, ..Default::default() };
        let topo = crate::topology::parse(text, std::path::Path::new("/l/d.clab.yml"), &opts)
            .expect("parses");
        let state =
            LabState::new("d", &topo.file, &topo.lab_dir(None), std::path::Path::new("/bin/true"));
        let doc = document(&topo, &state);
        assert_eq!(doc["name"], "d");
        assert_eq!(doc["clab"]["config"]["prefix"], "clab");
        assert_eq!(doc["nodes"]["a"]["longname"], "clab-d-a");
        assert_eq!(doc["nodes"]["a"]["fqdn"], "a.d.io");
        assert_eq!(doc["nodes"]["a"]["group"], "g");
        assert_eq!(doc["nodes"]["a"]["mgmt-ipv4-address"], "172.20.20.2");
        assert_eq!(doc["nodes"]["a"]["mgmt-ipv4-prefix-length"], 24);
        assert_eq!(doc["nodes"]["a"]["labdir"], "/l/clab-d/a");
        assert_eq!(doc["links"][0]["endpoints"]["a"]["peer"], "z");
        assert_eq!(doc["links"][0]["endpoints"]["z"]["interface"], "eth1");
        assert_eq!(doc["links"][0]["vars"]["cost"], 10);
        assert!(
            doc["links"][0]["endpoints"]["a"]["mac"]
                .as_str()
                .is_some_and(|m| m.starts_with("aa:c1:ab:"))
        );
    }
}
