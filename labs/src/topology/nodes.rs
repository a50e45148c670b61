//! Node definitions and containerlab's inheritance rules (`types/topology.go`):
//!
//! - kind: the node's, else its group's, else the default group's, else `defaults.kind`;
//! - group: the node's, else its kind's, else `defaults.group`;
//! - scalars (`image`, `cmd`, ...): first non-empty of node, group, kind, defaults;
//! - maps (`env`, `labels`, `sysctls`): merged, the more specific level winning per key;
//! - `exec`, `env-files`: concatenated defaults, kind, group, node, duplicates dropped;
//! - `binds`: concatenated the same way, then indexed by destination (the more specific level
//!   wins) and sorted by destination.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

use serde_yaml::Value;

use super::error::{ProblemKind, Where};
use super::fields::{Ctx, NODE_KEYS};
use super::model::{Bind, ExecLine, NetworkMode};

/// One level of node settings, as written.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeDef {
    pub kind: Option<String>,
    pub image: Option<String>,
    pub group: Option<String>,
    pub cmd: Option<String>,
    pub entrypoint: Option<String>,
    pub hostname: Option<String>,
    pub network_mode: Option<String>,
    pub mgmt_ipv4: Option<String>,
    pub mgmt_ipv6: Option<String>,
    pub startup_delay: Option<u64>,
    pub binds: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub env_files: Vec<String>,
    pub exec: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub sysctls: BTreeMap<String, String>,
    /// `certificate.issue`: a certificate signed by the lab's CA (each field inherits on its
    /// own, as containerlab merges it).
    pub certificate_issue: Option<bool>,
    /// `certificate.sans`: more names for it.
    pub certificate_sans: Option<Vec<String>>,
}

/// The keys of a node's `certificate`.
const CERTIFICATE_KEYS: &[(&str, super::fields::Rule)] = &[
    ("issue", super::fields::Rule::Use),
    ("sans", super::fields::Rule::Use),
    ("key-size", super::fields::Rule::Ignore("certificates use ECDSA P-256 keys")),
    (
        "validity-duration",
        super::fields::Rule::Ignore("lab certificates do not expire (valid until 4096)"),
    ),
];

impl NodeDef {
    pub fn parse(ctx: &mut Ctx, at: &Where, value: Option<&Value>) -> NodeDef {
        let map = match value {
            None | Some(Value::Null) => return NodeDef::default(),
            Some(Value::Mapping(m)) => m,
            Some(_) => {
                ctx.problem(
                    at,
                    ProblemKind::WrongType { key: "(definition)".into(), expected: "a mapping" },
                );
                return NodeDef::default();
            }
        };
        ctx.check_keys(at, map, NODE_KEYS);
        let mut def = NodeDef {
            kind: ctx.string(at, map, "kind").map(|k| k.to_ascii_lowercase()),
            image: ctx.string(at, map, "image"),
            group: ctx.string(at, map, "group"),
            cmd: ctx.string(at, map, "cmd"),
            entrypoint: ctx.string(at, map, "entrypoint"),
            hostname: ctx.string(at, map, "hostname"),
            network_mode: ctx.string(at, map, "network-mode"),
            mgmt_ipv4: ctx.string(at, map, "mgmt-ipv4"),
            mgmt_ipv6: ctx.string(at, map, "mgmt-ipv6"),
            startup_delay: ctx.u64(at, map, "startup-delay"),
            binds: ctx.string_list(at, map, "binds"),
            env: ctx.string_map(at, map, "env"),
            env_files: ctx.string_list(at, map, "env-files"),
            exec: ctx.string_list(at, map, "exec"),
            labels: ctx.string_map(at, map, "labels"),
            sysctls: ctx.string_map(at, map, "sysctls"),
            certificate_issue: None,
            certificate_sans: None,
        };
        if let Some(c) = ctx.mapping(at, map, "certificate") {
            ctx.check_keys(at, c, CERTIFICATE_KEYS);
            def.certificate_issue = match ctx.string(at, c, "issue").as_deref() {
                None => None,
                Some("false") => Some(false),
                Some("true") => Some(true),
                Some(_) => {
                    ctx.bad(at, "certificate.issue", "must be true or false");
                    None
                }
            };
            def.certificate_sans = c.contains_key("sans").then(|| ctx.string_list(at, c, "sans"));
        }
        if !matches!(at, Where::Node(_)) {
            for key in ["mgmt-ipv4", "mgmt-ipv6"] {
                if map.contains_key(key) {
                    ctx.bad(at, key, "a management address can only be set on a node");
                }
            }
        }
        def
    }
}

/// The four levels that apply to one node, most specific first.
pub(super) struct Levels<'a> {
    pub node: &'a NodeDef,
    pub group: Option<&'a NodeDef>,
    pub kind: Option<&'a NodeDef>,
    pub defaults: &'a NodeDef,
}

impl<'a> Levels<'a> {
    fn most_specific_first(&self) -> impl Iterator<Item = &'a NodeDef> + '_ {
        [Some(self.node), self.group, self.kind, Some(self.defaults)].into_iter().flatten()
    }

    fn least_specific_first(&self) -> impl Iterator<Item = &'a NodeDef> + '_ {
        [Some(self.defaults), self.kind, self.group, Some(self.node)].into_iter().flatten()
    }

    /// First non-empty scalar, node first.
    pub fn scalar<T: Clone>(&self, field: impl Fn(&NodeDef) -> &Option<T>) -> Option<T> {
        self.most_specific_first().find_map(|d| field(d).clone())
    }

    /// Maps merged, the more specific level winning per key.
    pub fn map(
        &self,
        field: impl Fn(&NodeDef) -> &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for d in self.least_specific_first() {
            out.extend(field(d).iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        out
    }

    /// Lists concatenated, least specific first, keeping the first of any duplicates.
    pub fn list(&self, field: impl Fn(&NodeDef) -> &Vec<String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in self.least_specific_first() {
            for item in field(d) {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
        }
        out
    }

    /// Bind strings of every level, as `(level-ordered)` list for [`resolve_binds`].
    pub fn binds(&self) -> Vec<String> {
        self.least_specific_first().flat_map(|d| d.binds.iter().cloned()).collect()
    }
}

/// The node's kind by containerlab's rule (which consults groups before kinds).
pub(super) fn node_kind(
    node: &NodeDef,
    defaults: &NodeDef,
    groups: &BTreeMap<String, NodeDef>,
) -> Option<String> {
    let group_kind =
        |g: &Option<String>| g.as_ref().and_then(|g| groups.get(g)).and_then(|d| d.kind.clone());
    node.kind
        .clone()
        .or_else(|| group_kind(&node.group))
        .or_else(|| group_kind(&defaults.group))
        .or_else(|| defaults.kind.clone())
}

/// The node's group by containerlab's rule.
pub(super) fn node_group(
    node: &NodeDef,
    kind: Option<&NodeDef>,
    defaults: &NodeDef,
) -> Option<String> {
    node.group
        .clone()
        .or_else(|| kind.and_then(|k| k.group.clone()))
        .or_else(|| defaults.group.clone())
}

/// containerlab's node and lab name pattern: `^[a-zA-Z0-9][a-zA-Z0-9-._]*$`.
pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// Splits `cmd`/`entrypoint`/`exec` text the way containerlab does: shell words, no shell.
pub(super) fn split_command(
    ctx: &mut Ctx,
    at: &Where,
    key: &str,
    text: &str,
) -> Option<Vec<String>> {
    match shlex::split(text) {
        Some(argv) if !argv.is_empty() => Some(argv),
        Some(_) => {
            ctx.bad(at, key, "is empty");
            None
        }
        None => {
            ctx.bad(at, key, format!("`{text}` has unbalanced quotes"));
            None
        }
    }
}

pub(super) fn exec_lines(ctx: &mut Ctx, at: &Where, lines: Vec<String>) -> Vec<ExecLine> {
    lines
        .into_iter()
        .filter_map(|text| {
            let argv = split_command(ctx, at, "exec", &text)?;
            Some(ExecLine { text, argv })
        })
        .collect()
}

pub(super) fn network_mode(ctx: &mut Ctx, at: &Where, mode: Option<String>) -> NetworkMode {
    match mode.as_deref() {
        None | Some("bridge") => NetworkMode::Bridge,
        Some("none") => NetworkMode::None,
        Some("host") => {
            ctx.problem(at, ProblemKind::HostTouching { what: "`network-mode: host`".into() });
            NetworkMode::Bridge
        }
        Some(m) if m.starts_with("container:") => {
            ctx.problem(
                at,
                ProblemKind::UnsupportedKey {
                    key: format!("network-mode: {m}"),
                    reason: "joining another node's namespace is not implemented",
                },
            );
            NetworkMode::Bridge
        }
        Some(m) => {
            ctx.bad(at, "network-mode", format!("`{m}` is not one of: none, bridge"));
            NetworkMode::Bridge
        }
    }
}

/// Only namespaced `net.*` sysctls may be set: anything else would change the whole machine.
pub(super) fn check_sysctls(ctx: &mut Ctx, at: &Where, sysctls: &BTreeMap<String, String>) {
    for key in sysctls.keys() {
        if !(key.starts_with("net.") || key.starts_with("net/")) || key.contains("..") {
            ctx.bad(
                at,
                "sysctls",
                format!(
                    "`{key}` is not a per-namespace `net.*` sysctl; setting it would change \
                     the whole machine"
                ),
            );
        }
    }
}

/// Parses `src:dst[:mode]` strings, resolves sources against `dir` (symlinks resolved on the
/// host, where the source lives), keeps the most specific bind per destination and sorts by
/// destination. Sources inside the lab directory may not exist yet: deploy creates them, as
/// containerlab does for `__clabNodeDir__` binds.
pub(super) fn resolve_binds(
    ctx: &mut Ctx,
    at: &Where,
    binds: &[String],
    dir: &Path,
    lab_dir: &Path,
    check_files: bool,
) -> Vec<Bind> {
    let mut by_dst: BTreeMap<PathBuf, Bind> = BTreeMap::new();
    for text in binds {
        let parts: Vec<&str> = text.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [src, dst] => (*src, *dst, ""),
            [src, dst, mode] => (*src, *dst, *mode),
            _ => {
                ctx.bad(at, "binds", format!("`{text}` is not `source:destination[:ro]`"));
                continue;
            }
        };
        let mut read_only = false;
        for flag in mode.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "ro" => read_only = true,
                "rw" => read_only = false,
                "z" | "Z" | "rshared" | "shared" | "rslave" | "slave" | "rprivate" | "private" => {}
                other => ctx.bad(at, "binds", format!("`{text}`: unknown mode `{other}`")),
            }
        }
        let dst = PathBuf::from(dst);
        if !dst.is_absolute() || dst.components().any(|c| c == Component::ParentDir) {
            ctx.bad(
                at,
                "binds",
                format!("`{text}`: the destination must be an absolute path without `..`"),
            );
            continue;
        }
        if dst == Path::new("/") || ["/proc", "/sys", "/dev"].iter().any(|p| dst.starts_with(p)) {
            ctx.bad(at, "binds", format!("`{text}`: cannot bind over `{}`", dst.display()));
            continue;
        }
        let src = expand_home(src);
        let src = if src.is_absolute() { src } else { dir.join(src) };
        let src = std::fs::canonicalize(&src).unwrap_or(src);
        if check_files && !src.exists() && !src.starts_with(lab_dir) {
            ctx.bad(at, "binds", format!("`{text}`: the source {} does not exist", src.display()));
            continue;
        }
        by_dst.insert(dst.clone(), Bind { src, dst, read_only });
    }
    by_dst.into_values().collect()
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Reads `KEY=VALUE` lines of env files (relative to `dir`); comments and blanks are skipped.
pub(super) fn read_env_files(
    ctx: &mut Ctx,
    at: &Where,
    files: &[String],
    dir: &Path,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for file in files {
        let path = dir.join(expand_home(file));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().map(str::trim) {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let line = line.strip_prefix("export ").unwrap_or(line);
                    match line.split_once('=') {
                        Some((k, v)) => {
                            env.insert(
                                k.trim().to_string(),
                                v.trim().trim_matches('"').to_string(),
                            );
                        }
                        None => ctx.bad(
                            at,
                            "env-files",
                            format!("{}: `{line}` is not KEY=VALUE", path.display()),
                        ),
                    }
                }
            }
            Err(e) => ctx.bad(at, "env-files", format!("cannot read {}: {e}", path.display())),
        }
    }
    env
}

/// `CLAB_LABEL_<KEY>` for a label, as containerlab exports labels into the environment.
pub(super) fn label_env_name(label: &str) -> String {
    let key: String = label
        .chars()
        .map(|c| if matches!(c, '-' | '+' | '.' | '/') { '_' } else { c.to_ascii_uppercase() })
        .collect();
    format!("CLAB_LABEL_{key}")
}

pub(super) fn parse_ipv4(ctx: &mut Ctx, at: &Where, key: &str, text: &str) -> Option<Ipv4Addr> {
    match text.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            ctx.bad(at, key, format!("`{text}` is not an IPv4 address"));
            None
        }
    }
}

pub(super) fn parse_ipv6(ctx: &mut Ctx, at: &Where, key: &str, text: &str) -> Option<Ipv6Addr> {
    match text.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            ctx.bad(at, key, format!("`{text}` is not an IPv6 address"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_containerlab_pattern() {
        assert!(valid_name("r1"));
        assert!(valid_name("leaf-1.rack_2"));
        assert!(!valid_name("-r1"));
        assert!(!valid_name("r 1"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn label_env_names_are_upper_cased_and_sanitised() {
        assert_eq!(label_env_name("clab-node-name"), "CLAB_LABEL_CLAB_NODE_NAME");
        assert_eq!(label_env_name("app.kubernetes.io/role"), "CLAB_LABEL_APP_KUBERNETES_IO_ROLE");
    }

    #[test]
    fn binds_keep_most_specific_per_destination_sorted() {
        let mut ctx = Ctx::default();
        let at = Where::Node("n".into());
        let binds = [
            "/etc/hosts:/etc/frr/frr.conf".to_string(),
            "/etc/passwd:/etc/frr:ro".to_string(),
            "/etc/group:/etc/frr/frr.conf".to_string(),
        ];
        let out = resolve_binds(&mut ctx, &at, &binds, Path::new("/"), Path::new("/lab"), true);
        assert!(ctx.problems.is_empty(), "{:?}", ctx.problems);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].dst, Path::new("/etc/frr"));
        assert!(out[0].read_only);
        assert_eq!(out[1].src, Path::new("/etc/group"));
    }

    #[test]
    fn binds_reject_relative_and_pseudo_destinations() {
        let mut ctx = Ctx::default();
        let at = Where::Node("n".into());
        let binds =
            ["/etc/hosts:etc/x".to_string(), "/etc/hosts:/proc/x".to_string(), "x".to_string()];
        assert!(
            resolve_binds(&mut ctx, &at, &binds, Path::new("/"), Path::new("/lab"), false)
                .is_empty()
        );
        assert_eq!(ctx.problems.len(), 3);
    }
}
