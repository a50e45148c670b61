//! The standalone daemon's configuration file (TOML), read into the speaker's own
//! configuration. Every mistake is reported with the key it is in — `neighbor[2].hold-time`
//! — and, for unknown keys and wrong types, the line.
//!
//! ```toml
//! [global]
//! asn = 65001
//! router-id = "10.0.0.1"
//! listen = ["[::]:179"]
//!
//! [[neighbor]]
//! address = "10.0.0.2"
//! remote-as = 65002
//! hold-time = 9
//! keepalive = 3
//! bfd = { min-rx = "100ms", min-tx = "100ms", multiplier = 3 }   # or `bfd = true`: 300ms x 3
//!
//! [[originate]]
//! prefix = "10.244.0.0/24"
//! communities = ["65001:100"]
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{PeerAddress, PeerConfig, SpeakerConfig, defaults};
use crate::fsm::GracefulRestart;
use crate::policy::{Action, Conditions, Modifications, Policy, PrefixMatch, Rule};
use crate::rib::{NextHopMode, Origination};
use crate::types::{Asn, Community, Family, FamilySet, LargeCommunity, Prefix};

/// Where `tartan bgp` and its status commands meet unless told otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/tartan/bgp.sock";

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    global: RawGlobal,
    #[serde(default)]
    neighbor: Vec<RawNeighbor>,
    #[serde(default)]
    originate: Vec<RawOriginate>,
    #[serde(default)]
    policy: Vec<RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGlobal {
    asn: u32,
    router_id: String,
    listen: Option<Vec<String>>,
    cluster_id: Option<String>,
    #[serde(default)]
    multipath: bool,
    graceful_restart: Option<bool>,
    restart_time: Option<u16>,
    control_socket: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNeighbor {
    address: Option<String>,
    range: Option<String>,
    interface: Option<String>,
    remote_as: Option<u32>,
    local_as: Option<u32>,
    local_address: Option<String>,
    port: Option<u16>,
    description: Option<String>,
    passive: Option<bool>,
    hold_time: Option<u16>,
    keepalive: Option<u16>,
    connect_retry: Option<u16>,
    families: Option<Vec<String>>,
    route_reflector_client: Option<bool>,
    cluster_id: Option<String>,
    next_hop_self: Option<bool>,
    next_hop_keep: Option<bool>,
    password: Option<String>,
    graceful_restart: Option<bool>,
    add_path_receive: Option<bool>,
    extended_messages: Option<bool>,
    extended_next_hop: Option<bool>,
    max_prefixes: Option<u32>,
    max_prefixes_restart: Option<u64>,
    import: Option<String>,
    export: Option<String>,
    bfd: Option<RawBfd>,
}

/// `bfd = true`, or its timers; anything left out is the default (300ms x 3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawBfd {
    On(bool),
    Timers(RawBfdTimers),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBfdTimers {
    min_rx: Option<String>,
    min_tx: Option<String>,
    multiplier: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOriginate {
    prefix: String,
    #[serde(default)]
    communities: Vec<String>,
    #[serde(default)]
    large_communities: Vec<String>,
    med: Option<u32>,
    local_pref: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    name: String,
    #[serde(default)]
    default: Action,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRule {
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    communities: Vec<String>,
    #[serde(default)]
    large_communities: Vec<String>,
    #[serde(default)]
    as_path_contains: Vec<u32>,
    #[serde(default)]
    origin_as: Vec<u32>,
    #[serde(default)]
    neighbor_as: Vec<u32>,
    as_path_max_length: Option<usize>,
    action: Action,
    set_local_pref: Option<u32>,
    set_med: Option<u32>,
    #[serde(default)]
    add_communities: Vec<String>,
    #[serde(default)]
    remove_communities: Vec<String>,
    #[serde(default)]
    add_large_communities: Vec<String>,
    #[serde(default)]
    prepend: u8,
}

/// A route the daemon originates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originate {
    pub prefix: Prefix,
    pub attrs: Origination,
}

/// A configuration file, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub speaker: SpeakerConfig,
    pub neighbors: Vec<PeerConfig>,
    pub originate: Vec<Originate>,
    pub control_socket: PathBuf,
}

impl DaemonConfig {
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        DaemonConfig::parse(&text, path)
    }

    /// Parses `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<DaemonConfig, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Resolver { path }.file(raw)
    }
}

struct Resolver<'a> {
    path: &'a Path,
}

impl Resolver<'_> {
    fn bfd_timers(&self, key: &str, t: RawBfdTimers) -> Result<tartan_bfd::Intervals, ConfigError> {
        let mut iv = tartan_bfd::Intervals::default();
        for (name, raw, slot) in
            [("min-rx", t.min_rx, &mut iv.min_rx), ("min-tx", t.min_tx, &mut iv.min_tx)]
        {
            if let Some(raw) = raw {
                *slot = tartan_bfd::session::duration_str::parse(&raw)
                    .map_err(|m| self.invalid(format!("{key}.{name}"), m))?;
            }
        }
        if let Some(m) = t.multiplier {
            iv.multiplier = m;
        }
        iv.validate().map_err(|e| self.invalid(key.to_string(), e.to_string()))?;
        Ok(iv)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn err<T>(&self, key: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.into(),
            message: message.into(),
        })
    }

    fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        value: &str,
        what: &str,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        value.parse().or_else(|e: T::Err| self.err(key, format!("`{value}` is not {what}: {e}")))
    }

    fn file(&self, raw: RawFile) -> Result<DaemonConfig, ConfigError> {
        let g = raw.global;
        if g.asn == 0 {
            return self.err("global.asn", "AS 0 is reserved (RFC 7607)");
        }
        let router_id: Ipv4Addr =
            self.parse("global.router-id", &g.router_id, "an IPv4 address")?;
        if router_id.is_unspecified() {
            return self
                .err("global.router-id", "0.0.0.0 is not a valid BGP identifier (RFC 6286)");
        }
        let mut speaker = SpeakerConfig::new(Asn(g.asn), router_id);
        if let Some(listen) = &g.listen {
            speaker.listen = listen
                .iter()
                .enumerate()
                .map(|(i, a)| self.listen_address(&format!("global.listen[{i}]"), a))
                .collect::<Result<_, _>>()?;
        }
        if let Some(c) = &g.cluster_id {
            speaker.cluster_id = Some(self.parse("global.cluster-id", c, "an IPv4 address")?);
        }
        speaker.multipath = g.multipath;
        if g.graceful_restart == Some(false) && g.restart_time.is_some() {
            return self.err("global.restart-time", "set, but graceful-restart is false");
        }
        speaker.graceful_restart = match g.graceful_restart {
            Some(false) => None,
            _ => Some(GracefulRestart {
                restart_time: g.restart_time.unwrap_or(defaults::RESTART_TIME),
                forwarding_preserved: true,
            }),
        };
        if let Some(t) = g.restart_time {
            if t > 4095 {
                return self.err(
                    "global.restart-time",
                    "at most 4095 seconds (RFC 4724 gives it 12 bits)",
                );
            }
        }
        let policies = self.policies(raw.policy)?;
        let mut neighbors = Vec::new();
        for (i, n) in raw.neighbor.into_iter().enumerate() {
            neighbors.push(self.neighbor(i, n, &policies, &mut speaker)?);
        }
        let mut seen = HashMap::new();
        for (i, n) in neighbors.iter().enumerate() {
            if let Some(j) = seen.insert(n.address, i) {
                return self.err(
                    format!("neighbor[{i}]"),
                    format!("{} is already neighbor[{j}]", n.address),
                );
            }
        }
        let originate = raw
            .originate
            .into_iter()
            .enumerate()
            .map(|(i, o)| self.originate(i, o))
            .collect::<Result<_, _>>()?;
        Ok(DaemonConfig {
            speaker,
            neighbors,
            originate,
            control_socket: g
                .control_socket
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET)),
        })
    }

    /// `ADDR:PORT`, or a bare address for port 179.
    fn listen_address(&self, key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(a);
        }
        match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SocketAddr::new(ip, defaults::PORT)),
            Err(_) => self.err(
                key,
                format!("`{s}` is not an address (`0.0.0.0:179`, `[::]:179`, `10.0.0.1`)"),
            ),
        }
    }

    fn neighbor(
        &self,
        i: usize,
        n: RawNeighbor,
        policies: &HashMap<String, Arc<Policy>>,
        speaker: &mut SpeakerConfig,
    ) -> Result<PeerConfig, ConfigError> {
        let key = |k: &str| format!("neighbor[{i}].{k}");
        let mut c = match (&n.address, &n.range) {
            (Some(_), Some(_)) => {
                return self.err(format!("neighbor[{i}]"), "give `address` or `range`, not both");
            }
            (None, None) => {
                return self.err(
                    format!("neighbor[{i}]"),
                    "needs `address` (or `range` for dynamic neighbors)",
                );
            }
            (Some(a), None) => {
                // `fe80::1%eth0`: a link-local neighbour and its interface.
                let (addr, scope) = match a.split_once('%') {
                    Some((a, s)) => (a, Some(s.to_string())),
                    None => (a.as_str(), None),
                };
                let addr: IpAddr = self.parse(&key("address"), addr, "an IP address")?;
                let Some(remote) = n.remote_as else {
                    return self.err(key("remote-as"), "missing: the neighbor's AS number");
                };
                let mut c = PeerConfig::new(addr, Asn(remote));
                c.interface = scope;
                c
            }
            (None, Some(r)) => {
                let range: Prefix = self.parse(&key("range"), r, "a prefix")?;
                if n.passive == Some(false) {
                    return self.err(key("passive"), "dynamic neighbors are always passive");
                }
                PeerConfig::range(range, n.remote_as.map(Asn))
            }
        };
        if let Some(ifname) = n.interface {
            c.interface = Some(ifname);
        }
        if let PeerAddress::Single(IpAddr::V6(a)) = c.address {
            if a.segments()[0] & 0xffc0 == 0xfe80 && c.interface.is_none() {
                return self.err(key("interface"), "a link-local neighbor needs its interface (`fe80::1%eth0` or `interface = \"eth0\"`)");
            }
        }
        c.local_as = n.local_as.map(Asn);
        if let Some(a) = &n.local_address {
            c.local_address = Some(self.parse(&key("local-address"), a, "an IP address")?);
        }
        c.port = n.port.unwrap_or(defaults::PORT);
        c.description = n.description;
        c.bfd = match n.bfd {
            None | Some(RawBfd::On(false)) => None,
            Some(RawBfd::On(true)) => Some(tartan_bfd::Intervals::default()),
            Some(RawBfd::Timers(t)) => Some(self.bfd_timers(&key("bfd"), t)?),
        };
        if c.bfd.is_some() && matches!(c.address, PeerAddress::Range(_)) {
            return self.err(key("bfd"), "BFD runs with single neighbors, not ranges");
        }
        c.passive = n.passive.unwrap_or(c.passive);
        if let Some(h) = n.hold_time {
            if h == 1 || h == 2 {
                return self.err(
                    key("hold-time"),
                    "must be 0 (no keepalives) or at least 3 seconds (RFC 4271 §4.2)",
                );
            }
            c.hold_time = h;
        }
        if let Some(k) = n.keepalive {
            if c.hold_time == 0 {
                return self.err(key("keepalive"), "set, but hold-time 0 means no keepalives");
            }
            if k > c.hold_time / 3 {
                return self.err(
                    key("keepalive"),
                    format!("{k} s is more than a third of hold-time {} s", c.hold_time),
                );
            }
            c.keepalive = Some(k);
        }
        if let Some(r) = n.connect_retry {
            if r == 0 {
                return self.err(key("connect-retry"), "must be at least 1 second");
            }
            c.connect_retry = r;
        }
        if let Some(fams) = &n.families {
            let mut set = FamilySet::EMPTY;
            for (j, f) in fams.iter().enumerate() {
                match Family::ALL.iter().find(|x| x.name() == f) {
                    Some(x) => set.insert(*x),
                    None => {
                        return self.err(
                            format!("neighbor[{i}].families[{j}]"),
                            format!(
                                "`{f}` is not a family: use \"ipv4-unicast\" or \"ipv6-unicast\""
                            ),
                        );
                    }
                }
            }
            if set.is_empty() {
                return self.err(key("families"), "must name at least one family");
            }
            c.families = set;
        }
        c.route_reflector_client = n.route_reflector_client.unwrap_or(false);
        if let Some(cid) = &n.cluster_id {
            let cid: Ipv4Addr = self.parse(&key("cluster-id"), cid, "an IPv4 address")?;
            match speaker.cluster_id {
                Some(g) if g != cid => {
                    return self.err(
                        key("cluster-id"),
                        format!("{cid} differs from the cluster ID {g}; Tartan reflects with one cluster ID"),
                    );
                }
                _ => speaker.cluster_id = Some(cid),
            }
        }
        c.next_hop = match (n.next_hop_self, n.next_hop_keep) {
            (Some(true), Some(true)) => {
                return self.err(key("next-hop-keep"), "cannot be set with `next-hop-self = true`");
            }
            (Some(true), _) => NextHopMode::SelfAddress,
            (_, Some(true)) => NextHopMode::Keep,
            _ => NextHopMode::Auto,
        };
        if let Some(p) = n.password {
            if p.is_empty() || p.len() > 80 {
                return self.err(
                    key("password"),
                    "must be 1 to 80 characters (the kernel's TCP-MD5 limit)",
                );
            }
            c.password = Some(p);
        }
        c.graceful_restart = n.graceful_restart.unwrap_or(true);
        c.add_path_receive = n.add_path_receive.unwrap_or(false);
        c.extended_message = n.extended_messages.unwrap_or(false);
        c.extended_next_hop = n.extended_next_hop.unwrap_or(false);
        c.max_prefixes = n.max_prefixes;
        if let Some(s) = n.max_prefixes_restart {
            c.max_prefixes_restart = Duration::from_secs(s);
        }
        for (k, name, slot) in
            [("import", n.import, &mut c.import), ("export", n.export, &mut c.export)]
        {
            if let Some(name) = name {
                *slot = match name.as_str() {
                    "accept" => Arc::new(Policy::accept_all()),
                    "reject" => Arc::new(Policy::reject_all()),
                    other => match policies.get(other) {
                        Some(p) => p.clone(),
                        None => {
                            let known: Vec<&str> = policies.keys().map(String::as_str).collect();
                            return self.err(
                                key(k),
                                format!(
                                    "no [[policy]] named `{other}` (known: accept, reject{}{})",
                                    if known.is_empty() { "" } else { ", " },
                                    known.join(", ")
                                ),
                            );
                        }
                    },
                };
            }
        }
        Ok(c)
    }

    fn originate(&self, i: usize, o: RawOriginate) -> Result<Originate, ConfigError> {
        let key = |k: &str| format!("originate[{i}].{k}");
        let prefix: Prefix = self.parse(&key("prefix"), &o.prefix, "a prefix")?;
        let communities =
            self.list::<Community>(&key("communities"), &o.communities, "a community")?;
        let large_communities = self.list::<LargeCommunity>(
            &key("large-communities"),
            &o.large_communities,
            "a large community",
        )?;
        Ok(Originate {
            prefix,
            attrs: Origination {
                communities,
                large_communities,
                med: o.med,
                local_pref: o.local_pref,
            },
        })
    }

    fn list<T: std::str::FromStr>(
        &self,
        key: &str,
        values: &[String],
        what: &str,
    ) -> Result<Vec<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        values
            .iter()
            .enumerate()
            .map(|(j, v)| self.parse(&format!("{key}[{j}]"), v, what))
            .collect()
    }

    fn policies(&self, raw: Vec<RawPolicy>) -> Result<HashMap<String, Arc<Policy>>, ConfigError> {
        let mut out = HashMap::new();
        for (i, p) in raw.into_iter().enumerate() {
            if matches!(p.name.as_str(), "accept" | "reject") {
                return self.err(format!("policy[{i}].name"), "`accept` and `reject` are built in");
            }
            let mut rules = Vec::new();
            for (j, r) in p.rule.into_iter().enumerate() {
                let key = |k: &str| format!("policy[{i}].rule[{j}].{k}");
                let conditions = Conditions {
                    prefixes: self.list::<PrefixMatch>(
                        &key("prefixes"),
                        &r.prefixes,
                        "a prefix match (`10.0.0.0/8 le 24`)",
                    )?,
                    communities: self.list(&key("communities"), &r.communities, "a community")?,
                    large_communities: self.list(
                        &key("large-communities"),
                        &r.large_communities,
                        "a large community",
                    )?,
                    as_path_contains: r.as_path_contains.into_iter().map(Asn).collect(),
                    origin_as: r.origin_as.into_iter().map(Asn).collect(),
                    neighbor_as: r.neighbor_as.into_iter().map(Asn).collect(),
                    as_path_max_len: r.as_path_max_length,
                };
                let set = Modifications {
                    local_pref: r.set_local_pref,
                    med: r.set_med,
                    add_communities: self.list(
                        &key("add-communities"),
                        &r.add_communities,
                        "a community",
                    )?,
                    remove_communities: self.list(
                        &key("remove-communities"),
                        &r.remove_communities,
                        "a community",
                    )?,
                    add_large_communities: self.list(
                        &key("add-large-communities"),
                        &r.add_large_communities,
                        "a large community",
                    )?,
                    prepend: r.prepend,
                };
                if r.action == Action::Reject && !set.is_empty() {
                    return self.err(key("action"), "a rejecting rule cannot set anything");
                }
                rules.push(Rule { conditions, action: r.action, set });
            }
            if out.insert(p.name.clone(), Arc::new(Policy { rules, default: p.default })).is_some()
            {
                return self
                    .err(format!("policy[{i}].name"), format!("`{}` is defined twice", p.name));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DaemonConfig, ConfigError> {
        DaemonConfig::parse(s, Path::new("bgp.toml"))
    }

    fn error(s: &str) -> String {
        match parse(s) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    const GLOBAL: &str = "[global]\nasn = 65001\nrouter-id = \"10.0.0.1\"\n";

    #[test]
    fn bfd_is_off_unless_asked_and_takes_calico_style_durations() {
        let n = |extra: &str| {
            let c = parse(&format!(
                "{GLOBAL}[[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 65002\n{extra}"
            ))
            .expect("parses");
            c.neighbors[0].bfd
        };
        assert_eq!(n(""), None);
        assert_eq!(n("bfd = false\n"), None);
        assert_eq!(n("bfd = true\n"), Some(tartan_bfd::Intervals::default()));
        let iv =
            n("bfd = { min-rx = \"100ms\", min-tx = \"50ms\", multiplier = 5 }\n").expect("on");
        assert_eq!(iv.min_rx, Duration::from_millis(100));
        assert_eq!(iv.min_tx, Duration::from_millis(50));
        assert_eq!(iv.multiplier, 5);
        let e = error(&format!(
            "{GLOBAL}[[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 65002\nbfd = {{ min-tx = \"5ms\" }}\n"
        ));
        assert!(e.contains("neighbor[0].bfd") && e.contains("10ms..60s"), "{e}");
        let e = error(&format!(
            "{GLOBAL}[[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 65002\nbfd = {{ min-tx = \"fast\" }}\n"
        ));
        assert!(e.contains("neighbor[0].bfd.min-tx"), "{e}");
    }

    #[test]
    fn a_full_configuration_reads_into_the_speakers_settings() {
        let c = parse(&format!(
            "{GLOBAL}listen = [\"127.0.0.1:1179\", \"10.0.0.1\"]\ncluster-id = \"1.1.1.1\"\nmultipath = true\n\
             [[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 65002\nhold-time = 9\nkeepalive = 3\npassive = true\n\
             families = [\"ipv4-unicast\", \"ipv6-unicast\"]\nroute-reflector-client = true\nnext-hop-self = true\n\
             password = \"secret\"\nmax-prefixes = 1000\nimport = \"from-tor\"\n\
             [[neighbor]]\nrange = \"10.1.0.0/16\"\n\
             [[neighbor]]\naddress = \"fe80::2%eth0\"\nremote-as = 65003\n\
             [[originate]]\nprefix = \"10.244.0.0/24\"\ncommunities = [\"65001:100\", \"no-export\"]\nlarge-communities = [\"65001:1:2\"]\n\
             [[policy]]\nname = \"from-tor\"\ndefault = \"reject\"\n\
             [[policy.rule]]\nprefixes = [\"10.0.0.0/8 le 24\"]\naction = \"accept\"\nset-local-pref = 200\n"
        ))
        .expect("valid");
        assert_eq!(c.speaker.listen.len(), 2);
        assert_eq!(c.speaker.listen[1].port(), 179);
        assert!(c.speaker.multipath);
        let n = &c.neighbors[0];
        assert_eq!((n.hold_time, n.keepalive, n.passive), (9, Some(3), true));
        assert_eq!(n.families, FamilySet::all());
        assert_eq!(n.next_hop, NextHopMode::SelfAddress);
        assert_eq!(n.import.default, Action::Reject);
        assert_eq!(n.import.rules[0].set.local_pref, Some(200));
        assert!(matches!(c.neighbors[1].address, PeerAddress::Range(_)));
        assert!(c.neighbors[1].passive);
        assert_eq!(c.neighbors[2].interface.as_deref(), Some("eth0"));
        assert_eq!(c.originate[0].attrs.communities.len(), 2);
        assert_eq!(c.control_socket, PathBuf::from(DEFAULT_CONTROL_SOCKET));
    }

    #[test]
    fn errors_name_the_key_that_is_wrong() {
        let cases = [
            ("[[neighbor]]\naddress = \"10.0.0.2\"\n", "remote-as"),
            ("[[neighbor]]\naddress = \"10.0.0.300\"\nremote-as = 1\n", "neighbor[0].address"),
            (
                "[[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 1\nhold-time = 2\n",
                "neighbor[0].hold-time",
            ),
            (
                "[[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 1\nhold-time = 9\nkeepalive = 5\n",
                "neighbor[0].keepalive",
            ),
            (
                "[[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 1\nfamilies = [\"ipv4\"]\n",
                "neighbor[0].families[0]",
            ),
            (
                "[[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 1\nexport = \"nope\"\n",
                "neighbor[0].export",
            ),
            ("[[neighbor]]\naddress = \"fe80::1\"\nremote-as = 1\n", "neighbor[0].interface"),
            ("[[originate]]\nprefix = \"10.0.0.1/8\"\n", "originate[0].prefix"),
            (
                "[[originate]]\nprefix = \"10.0.0.0/8\"\ncommunities = [\"1:2:3\"]\n",
                "originate[0].communities[0]",
            ),
            (
                "[[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 1\n[[neighbor]]\naddress = \"10.0.0.2\"\nremote-as = 2\n",
                "neighbor[1]",
            ),
        ];
        for (tail, key) in cases {
            let e = error(&format!("{GLOBAL}{tail}"));
            assert!(e.contains(key), "{key} not named in: {e}");
        }
        let e = error("[global]\nasn = 65001\nrouter-id = \"10.0.0.1\"\nhold-tme = 9\n");
        assert!(e.contains("hold-tme") && e.contains("line"), "{e}");
        let e = error("[global]\nasn = \"x\"\nrouter-id = \"10.0.0.1\"\n");
        assert!(e.contains("asn"), "{e}");
        let e = error("[global]\nasn = 0\nrouter-id = \"10.0.0.1\"\n");
        assert!(e.contains("global.asn"), "{e}");
    }
}
