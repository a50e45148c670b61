//! The containerlab topology file, read the way containerlab reads it: Go templates are
//! detected (and refused, with a hint), `${VAR}` references are expanded, the YAML is parsed
//! strictly (unknown keys are errors, with a suggestion), inheritance is applied and every
//! name, address and path is checked — all before anything is created.

mod error;
mod expand;
mod fields;
mod links;
mod mgmt;
mod model;
mod nodes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

pub use error::{Problem, ProblemKind, TopologyError, Where};
pub use expand::expand;
pub use model::*;

use fields::{Ctx, Rule, scalar};
use nodes::{Levels, NodeDef};

use crate::profile::Profile;

/// How to read a topology file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Variables for `${VAR}` expansion, consulted before the process environment.
    pub vars: BTreeMap<String, String>,
    /// Replaces the lab's `name:` (tests use this to give parallel labs unique names).
    pub name: Option<String>,
    /// Do not require bind sources and env files to exist (for `graph`, which creates nothing).
    pub skip_file_checks: bool,
    /// Where lab directories go (`CLAB_LABDIR_BASE`); beside the file when `None`. Magic
    /// variables such as `__clabNodeDir__` expand under it.
    pub lab_dir_base: Option<PathBuf>,
}

/// Reads only the lab's name (`name:` after `${VAR}` expansion, or the override), without
/// validating anything else: destroy must work even when the file has since become invalid.
pub fn lab_name(path: &Path, opts: &LoadOptions) -> Result<String, TopologyError> {
    if let Some(name) = &opts.name {
        return Ok(name.clone());
    }
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let text = std::fs::read_to_string(&file)
        .map_err(|source| TopologyError::Read { path: file.clone(), source })?;
    let lookup = |name: &str| opts.vars.get(name).cloned().or_else(|| std::env::var(name).ok());
    let doc: Value = serde_yaml::from_str(&expand(&text, &lookup))
        .map_err(|source| TopologyError::Yaml { path: file.clone(), source })?;
    match doc.get("name").and_then(scalar) {
        Some(name) if nodes::valid_name(&name) => Ok(name),
        _ => Err(TopologyError::Invalid {
            path: file,
            problems: vec![Problem { at: Where::Top, kind: ProblemKind::Missing { key: "name" } }],
        }),
    }
}

/// containerlab's magic variables, as `ExpandMagicVariables` expands them in binds and exec
/// lines: `__clabNodeName__`, `__clabLabName__`, `__clabDir__` (`clab-<lab>`) and
/// `__clabNodeDir__` (`clab-<lab>/<node>`), the directories under the lab directory base.
fn expand_magic(text: &str, lab: &str, node: &str, base: Option<&Path>) -> String {
    let under_base = |rel: String| match base {
        Some(b) => b.join(rel).display().to_string(),
        None => rel,
    };
    text.replace("__clabNodeDir__", &under_base(format!("clab-{lab}/{node}")))
        .replace("__clabDir__", &under_base(format!("clab-{lab}")))
        .replace("__clabNodeName__", node)
        .replace("__clabLabName__", lab)
}

const TOP_KEYS: &[(&str, Rule)] = &[
    ("name", Rule::Use),
    ("prefix", Rule::Use),
    ("mgmt", Rule::Use),
    ("topology", Rule::Use),
    ("settings", Rule::Ignore("certificate settings have no effect without TLS nodes")),
    ("debug", Rule::Ignore("use `tartanlab -v`")),
];

const TOPOLOGY_KEYS: &[(&str, Rule)] = &[
    ("nodes", Rule::Use),
    ("links", Rule::Use),
    ("kinds", Rule::Use),
    ("defaults", Rule::Use),
    ("groups", Rule::Use),
];

/// The only node kind tartanlab deploys; the image selects the behaviour.
pub const SUPPORTED_KINDS: &[&str] = &["linux"];

/// Every kind containerlab knows (`topology.kinds` may only name these; only `linux` deploys).
const CONTAINERLAB_KINDS: &[&str] = &[
    "linux",
    "bridge",
    "ovs-bridge",
    "host",
    "ext-container",
    "nokia_srlinux",
    "srl",
    "nokia_sros",
    "vr-sros",
    "nokia_srsim",
    "arista_ceos",
    "ceos",
    "arista_veos",
    "vr-veos",
    "juniper_crpd",
    "crpd",
    "juniper_vmx",
    "vr-vmx",
    "juniper_vsrx",
    "juniper_vqfx",
    "juniper_vjunosrouter",
    "juniper_vjunosswitch",
    "juniper_vjunosevolved",
    "juniper_cjunosevolved",
    "cisco_xrd",
    "xrd",
    "cisco_xrv",
    "cisco_xrv9k",
    "cisco_csr1000v",
    "cisco_n9kv",
    "cisco_c8000",
    "cisco_c8000v",
    "cisco_cat9kv",
    "cisco_iol",
    "cisco_ftdv",
    "cisco_sdwan",
    "sonic-vs",
    "sonic-vm",
    "cumulus_cvx",
    "cvx",
    "dell_ftosv",
    "dell_sonic",
    "mikrotik_ros",
    "vr-ros",
    "fortinet_fortigate",
    "paloalto_panos",
    "ipinfusion_ocnos",
    "checkpoint_cloudguard",
    "keysight_ixia-c-one",
    "openbsd",
    "freebsd",
    "generic_vm",
    "rare",
    "k8s-kind",
    "ostinato",
    "huawei_vrp",
    "6wind_vsr",
    "openwrt",
    "fdio_vpp",
    "vyosnetworks_vyos",
    "arista_cvx",
];

/// Reads and resolves a topology file.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Topology, TopologyError> {
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let text = std::fs::read_to_string(&file)
        .map_err(|source| TopologyError::Read { path: file.clone(), source })?;
    parse(&text, &file, opts)
}

/// Resolves topology text as if it had been read from `file`.
pub fn parse(text: &str, file: &Path, opts: &LoadOptions) -> Result<Topology, TopologyError> {
    let path = file.to_path_buf();
    if let Some(line) =
        text.lines().position(|l| l.contains("{{") && !l.trim_start().starts_with('#'))
    {
        return Err(TopologyError::Template { path, line: line + 1 });
    }
    let lookup = |name: &str| opts.vars.get(name).cloned().or_else(|| std::env::var(name).ok());
    let unset: Vec<Problem> = expand::unset(text, &lookup)
        .into_iter()
        .map(|(reference, line)| Problem {
            at: Where::Top,
            kind: ProblemKind::UnsetVariable { reference, line },
        })
        .collect();
    if !unset.is_empty() {
        return Err(TopologyError::Invalid { path, problems: unset });
    }
    let expanded = expand(text, &lookup);
    let mut doc: Value = serde_yaml::from_str(&expanded)
        .map_err(|source| TopologyError::Yaml { path: path.clone(), source })?;
    doc.apply_merge().map_err(|source| TopologyError::Yaml { path: path.clone(), source })?;
    let mut ctx = Ctx::default();
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let topo = resolve(&mut ctx, &doc, &path, dir, opts);
    if ctx.problems.is_empty() {
        if let Some(mut topo) = topo {
            for node in &topo.nodes {
                ctx.warnings.extend(crate::profile::unloaded_configs(node));
            }
            topo.warnings = ctx.warnings;
            return Ok(topo);
        }
    }
    Err(TopologyError::Invalid { path, problems: ctx.problems })
}

fn resolve(
    ctx: &mut Ctx,
    doc: &Value,
    file: &Path,
    dir: PathBuf,
    opts: &LoadOptions,
) -> Option<Topology> {
    let Value::Mapping(top) = doc else {
        ctx.problem(
            &Where::Top,
            ProblemKind::WrongType { key: "(file)".into(), expected: "a mapping" },
        );
        return None;
    };
    ctx.check_keys(&Where::Top, top, TOP_KEYS);
    let name = opts.name.clone().or_else(|| ctx.string(&Where::Top, top, "name"));
    let Some(name) = name else {
        ctx.problem(&Where::Top, ProblemKind::Missing { key: "name" });
        return None;
    };
    if !nodes::valid_name(&name) {
        ctx.bad(&Where::Top, "name", format!("`{name}` must match [a-zA-Z0-9][a-zA-Z0-9-._]*"));
    }
    let prefix = match top.get("prefix") {
        None | Some(Value::Null) => None,
        Some(v) => scalar(v),
    };
    let mgmt_map = ctx.mapping(&Where::Top, top, "mgmt");
    let mgmt_section = mgmt::parse_mgmt(ctx, mgmt_map);

    let Some(topology) = ctx.mapping(&Where::Top, top, "topology") else {
        ctx.problem(&Where::Top, ProblemKind::Missing { key: "topology" });
        return None;
    };
    ctx.check_keys(&Where::Topology, topology, TOPOLOGY_KEYS);
    let defaults = NodeDef::parse(ctx, &Where::Defaults, topology.get("defaults"));
    let kinds = named_defs(ctx, topology, "kinds", |k| Where::Kind(k.to_string()), true);
    let groups = named_defs(ctx, topology, "groups", |g| Where::Group(g.to_string()), false);
    for kind in kinds.keys().filter(|k| !CONTAINERLAB_KINDS.contains(&k.as_str())) {
        let suggestion = fields::closest(kind, CONTAINERLAB_KINDS.iter().copied());
        ctx.problem(
            &Where::Kind(kind.clone()),
            ProblemKind::UnknownKind { kind: kind.clone(), suggestion },
        );
    }
    let node_defs = named_defs(ctx, topology, "nodes", |n| Where::Node(n.to_string()), false);
    if !topology.contains_key("nodes") {
        ctx.problem(&Where::Topology, ProblemKind::Missing { key: "nodes" });
    }

    let mut resolved = Vec::with_capacity(node_defs.len());
    let mut bridges = Vec::new();
    for (node_name, def) in node_defs.iter() {
        let index = resolved.len();
        let at = Where::Node(node_name.clone());
        if !nodes::valid_name(node_name) {
            ctx.bad(&at, "(name)", "node names must match [a-zA-Z0-9][a-zA-Z0-9-._]*");
        }
        let kind_name = nodes::node_kind(def, &defaults, &groups);
        let kind_def = kind_name.as_ref().and_then(|k| kinds.get(k));
        let group = nodes::node_group(def, kind_def, &defaults).unwrap_or_default();
        // containerlab takes any group (it only sorts the graph); a file that defines groups
        // and names one it does not define has a typo that silently drops its settings.
        if !group.is_empty() && topology.contains_key("groups") && !groups.contains_key(&group) {
            let suggestion = fields::closest(&group, groups.keys().map(String::as_str));
            ctx.problem(&at, ProblemKind::UnknownGroup { group: group.clone(), suggestion });
        }
        let levels =
            Levels { node: def, group: groups.get(&group), kind: kind_def, defaults: &defaults };
        if kind_name.as_deref() == Some("bridge") {
            bridge(ctx, &at, node_name, def, &mgmt_section.mgmt.bridge);
            bridges.push(node_name.clone());
            continue;
        }
        let unsupported =
            kind_name.as_ref().is_some_and(|k| !SUPPORTED_KINDS.contains(&k.as_str()));
        let kind = match kind_name {
            Some(k) if SUPPORTED_KINDS.contains(&k.as_str()) => k,
            Some(k) => {
                ctx.problem(&at, ProblemKind::UnsupportedKind { kind: k.clone() });
                k
            }
            None => {
                ctx.problem(
                    &at,
                    ProblemKind::Missing {
                        key: "kind (on the node, its group, or topology.defaults)",
                    },
                );
                String::new()
            }
        };
        let image = levels.scalar(|d| &d.image).unwrap_or_default();
        // An unsupported kind is reported as such; its missing image would only add noise.
        if image.is_empty() && !unsupported {
            ctx.problem(&at, ProblemKind::Missing { key: "image" });
        }
        let entrypoint = levels
            .scalar(|d| &d.entrypoint)
            .and_then(|t| nodes::split_command(ctx, &at, "entrypoint", &t));
        let cmd = levels.scalar(|d| &d.cmd).and_then(|t| nodes::split_command(ctx, &at, "cmd", &t));
        let cmd = match (entrypoint, cmd) {
            (None, None) => None,
            (e, c) => Some(e.into_iter().chain(c).flatten().collect()),
        };
        let magic = |t: String| expand_magic(&t, &name, node_name, opts.lab_dir_base.as_deref());
        let exec =
            nodes::exec_lines(ctx, &at, levels.list(|d| &d.exec).into_iter().map(magic).collect());
        let network_mode = nodes::network_mode(ctx, &at, levels.scalar(|d| &d.network_mode));
        let sysctls = levels.map(|d| &d.sysctls);
        nodes::check_sysctls(ctx, &at, &sysctls);
        let lab_dir = opts.lab_dir_base.as_deref().unwrap_or(&dir).join(format!("clab-{name}"));
        let bind_texts: Vec<String> = levels.binds().into_iter().map(magic).collect();
        let binds =
            nodes::resolve_binds(ctx, &at, &bind_texts, &dir, &lab_dir, !opts.skip_file_checks);
        let env_files = levels.list(|d| &d.env_files);
        let mut env = if opts.skip_file_checks {
            BTreeMap::new()
        } else {
            nodes::read_env_files(ctx, &at, &env_files, &dir)
        };
        let mut labels = levels.map(|d| &d.labels);
        labels.insert("containerlab".into(), name.clone());
        labels.insert("clab-node-name".into(), node_name.clone());
        labels.insert("clab-node-kind".into(), kind.clone());
        labels.insert("clab-node-group".into(), group.clone());
        labels.insert("clab-topo-file".into(), file.display().to_string());
        env.extend(labels.iter().map(|(k, v)| (nodes::label_env_name(k), v.clone())));
        env.extend(levels.map(|d| &d.env));
        let hostname = levels.scalar(|d| &d.hostname).unwrap_or_else(|| node_name.clone());
        let long_name = long_name(&name, prefix.as_deref(), node_name);
        if long_name.contains('/') || long_name == "." || long_name == ".." {
            ctx.bad(
                &at,
                "prefix",
                format!("the namespace name `{long_name}` is not a valid file name"),
            );
        }
        if long_name == mgmt_netns_name(&name) {
            ctx.bad(
                &at,
                "prefix",
                format!("the namespace name `{long_name}` is the lab's management namespace; rename the node"),
            );
        }
        resolved.push(Node {
            name: node_name.clone(),
            index,
            long_name,
            kind,
            profile: Profile::from_image(&image),
            image,
            group,
            cmd,
            exec,
            env,
            labels,
            binds,
            sysctls,
            mgmt: None,
            network_mode,
            startup_delay_secs: levels.scalar(|d| &d.startup_delay).unwrap_or(0),
            hostname,
            certificate: levels
                .scalar(|d| &d.certificate_issue)
                .unwrap_or(false)
                .then(|| levels.scalar(|d| &d.certificate_sans).unwrap_or_default()),
        });
    }

    let wants: Vec<mgmt::Want> = resolved
        .iter()
        .filter(|n| n.network_mode == NetworkMode::Bridge)
        .filter_map(|n| node_defs.get(&n.name).map(|def| (&n.name, def)))
        .map(|(node_name, def)| {
            let at = Where::Node(node_name.clone());
            mgmt::Want {
                node: node_name.clone(),
                ipv4: def
                    .mgmt_ipv4
                    .as_ref()
                    .and_then(|t| nodes::parse_ipv4(ctx, &at, "mgmt-ipv4", t)),
                ipv6: def
                    .mgmt_ipv6
                    .as_ref()
                    .and_then(|t| nodes::parse_ipv6(ctx, &at, "mgmt-ipv6", t)),
            }
        })
        .collect();
    let addrs = mgmt::assign(ctx, &mgmt_section, &wants);
    for (want, addr) in wants.iter().zip(addrs) {
        if let Some(node) = resolved.iter_mut().find(|n| n.name == want.node) {
            node.mgmt = addr;
        }
    }

    // A bridge's ports have no management interface to collide with: like `network-mode: none`.
    let modes: BTreeMap<String, NetworkMode> = resolved
        .iter()
        .map(|n| (n.name.clone(), n.network_mode))
        .chain(bridges.iter().map(|b| (b.clone(), NetworkMode::None)))
        .collect();
    let links = links::parse_links(ctx, topology.get("links"), &modes);
    links::check_bridge_ports(ctx, &links, &bridges);
    let mut topo = Topology {
        name,
        prefix,
        file: file.to_path_buf(),
        dir,
        mgmt: mgmt_section.mgmt,
        nodes: resolved,
        bridges,
        links,
        warnings: vec![],
    };
    // containerlab exports the number of data interfaces as CLAB_INTFS.
    let counts: Vec<usize> =
        topo.nodes.iter().map(|n| topo.interfaces_of(&n.name).count()).collect();
    for (node, count) in topo.nodes.iter_mut().zip(counts) {
        node.env.insert("CLAB_INTFS".into(), count.to_string());
    }
    Some(topo)
}

/// A `kind: bridge` node: a Linux bridge in the lab's private namespace (containerlab's
/// bridge is in the machine's own, made by the user; here the lab makes it, and never there).
fn bridge(ctx: &mut Ctx, at: &Where, name: &str, def: &NodeDef, mgmt_bridge: &str) {
    if name.len() > 15 || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        ctx.bad(
            at,
            "(name)",
            "a bridge's name is its interface name: at most 15 characters, no `/`, `:` or spaces",
        );
    }
    if name == mgmt_bridge {
        ctx.bad(at, "(name)", format!("`{name}` is the management network's bridge; rename one"));
    }
    let ignored: Vec<&str> = [
        ("image", def.image.is_some()),
        ("cmd", def.cmd.is_some()),
        ("binds", !def.binds.is_empty()),
        ("exec", !def.exec.is_empty()),
        ("env", !def.env.is_empty()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if !ignored.is_empty() {
        ctx.warnings.push(format!(
            "node `{name}` is a bridge: {} have no effect on it",
            ignored.join(", ")
        ));
    }
}

/// `topology.<section>` as name → definition, names sorted; kind names match lower-cased.
fn named_defs(
    ctx: &mut Ctx,
    topology: &serde_yaml::Mapping,
    section: &str,
    at: impl Fn(&str) -> Where,
    lowercase: bool,
) -> BTreeMap<String, NodeDef> {
    let mut out = BTreeMap::new();
    let Some(map) = ctx.mapping(&Where::Topology, topology, section) else { return out };
    for (key, value) in map {
        let Some(mut name) = scalar(key) else {
            ctx.problem(
                &Where::Topology,
                ProblemKind::WrongType { key: section.into(), expected: "a mapping keyed by name" },
            );
            continue;
        };
        if lowercase {
            name = name.to_ascii_lowercase();
        }
        let def = NodeDef::parse(ctx, &at(&name), Some(value));
        out.insert(name, def);
    }
    out
}

#[cfg(test)]
mod tests;
