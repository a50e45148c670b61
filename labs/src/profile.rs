//! Image profiles: what a node runs, chosen by its image the way the real container image
//! would behave, so one topology file deploys both here and with real containerlab.
//!
//! - `*frr*`   → FRR: `zebra`, `staticd`, `bgpd` and every daemon marked `yes` in the node's
//!   `/etc/frr/daemons`, each in the foreground, then `vtysh -b` to load `/etc/frr/frr.conf`
//!   (what the FRR image's `docker-start` and `frrinit.sh` do).
//! - `*bird*`  → BIRD 2 with `/etc/bird/bird.conf`, control socket `/run/bird/bird.ctl`.
//! - `*gobgp*` → `gobgpd` with `/etc/gobgpd.conf` (TOML), gRPC API on the node's `:50051`.
//! - anything else, Tartan's own images included → the node's `cmd`, if any.
//!
//! A node's own `cmd` (with `entrypoint`) always overrides the profile; a bare shell (`bash`,
//! `sh`, ...) means "idle", as a container with a TTY would just sit at its prompt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which behaviour a node's image selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Frr,
    Bird,
    Gobgp,
    Tartan,
    Plain,
}

impl Profile {
    /// Picks the profile from the image reference, case-insensitively.
    pub fn from_image(image: &str) -> Profile {
        let image = image.to_ascii_lowercase();
        if image.contains("frr") {
            Profile::Frr
        } else if image.contains("gobgp") {
            Profile::Gobgp
        } else if image.contains("bird") {
            Profile::Bird
        } else if image.contains("tartan") {
            Profile::Tartan
        } else {
            Profile::Plain
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Frr => "frr",
            Profile::Bird => "bird",
            Profile::Gobgp => "gobgp",
            Profile::Tartan => "tartan",
            Profile::Plain => "plain",
        }
    }

    /// Routers (and Tartan hosts, which route for their containers) get IP forwarding on.
    pub fn is_router(self) -> bool {
        !matches!(self, Profile::Plain)
    }

    /// Host binaries the profile needs, with the Debian package that provides them.
    pub fn required_binaries(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::Frr => &[
                ("/usr/lib/frr/zebra", "frr"),
                ("/usr/lib/frr/bgpd", "frr"),
                ("/usr/lib/frr/staticd", "frr"),
                ("/usr/bin/vtysh", "frr"),
            ],
            Profile::Bird => &[("/usr/sbin/bird", "bird2")],
            Profile::Gobgp => &[("/usr/bin/gobgpd", "gobgpd")],
            Profile::Tartan | Profile::Plain => &[],
        }
    }

    /// Directories the profile's daemons expect, created inside the node (in its private
    /// `/run`), with the user that must own them.
    pub fn private_dirs(self) -> Vec<PrivateDir> {
        match self {
            Profile::Frr => vec![PrivateDir { path: "/run/frr".into(), owner: Some("frr".into()) }],
            Profile::Bird => vec![PrivateDir { path: "/run/bird".into(), owner: None }],
            Profile::Gobgp | Profile::Tartan | Profile::Plain => vec![],
        }
    }
}

/// A directory created inside a node before its processes start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateDir {
    pub path: PathBuf,
    /// User (and that user's group) to own it; root when `None`.
    pub owner: Option<String>,
}

/// When a started daemon counts as up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    /// As soon as it has been started.
    Started,
    /// When this Unix socket exists inside the node.
    UnixSocket(PathBuf),
    /// When BIRD answers on this control socket inside the node. (BIRD creates its socket
    /// before it reads its configuration, so the socket alone does not say it started: one
    /// whose configuration is broken has it for a moment, then exits.)
    BirdSocket(PathBuf),
    /// When something listens on this TCP port inside the node.
    TcpListen(u16),
}

/// One process of a node, started by the supervisor in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Short name, used for its log file (`<node>/<name>.log`).
    pub name: String,
    pub argv: Vec<String>,
    pub kind: ServiceKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// Runs for the life of the lab; the next service starts once it is ready.
    Daemon { ready: Readiness },
    /// Runs to completion and must exit 0 before the next service starts.
    Oneshot,
}

/// True when `cmd` is just a shell, which in a container with a TTY means "sit idle".
pub fn is_idle_shell(cmd: &[String]) -> bool {
    let [only] = cmd else { return false };
    let base = Path::new(only).file_name().and_then(|b| b.to_str()).unwrap_or(only);
    matches!(base, "bash" | "sh" | "ash" | "dash" | "zsh" | "ksh")
}

/// FRR's daemons in the order `frrcommon.sh` starts them.
const FRR_DAEMONS: &[&str] = &[
    "mgmtd", "zebra", "bgpd", "ripd", "ripngd", "ospfd", "ospf6d", "isisd", "babeld", "pimd",
    "pim6d", "ldpd", "nhrpd", "eigrpd", "sharpd", "pbrd", "staticd", "bfdd", "fabricd", "vrrpd",
    "pathd",
];

/// The enabled daemons and their options, read from an FRR `daemons` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrrDaemons {
    pub enabled: Vec<String>,
    pub options: BTreeMap<String, Vec<String>>,
}

/// Parses FRR's `daemons` file (`bgpd=yes`, `bgpd_options="  -A 127.0.0.1"`). `zebra`,
/// `staticd` and `mgmtd` (where installed) are always on, as in `frrcommon.sh`; Tartan also
/// always runs `bgpd`, the point of every lab.
pub fn parse_frr_daemons(text: &str, mgmtd_installed: bool) -> FrrDaemons {
    let mut on: BTreeMap<&str, bool> = BTreeMap::new();
    let mut options = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim().trim_matches('"').trim_matches('\'');
        if let Some(daemon) = key.strip_suffix("_options") {
            if FRR_DAEMONS.contains(&daemon) {
                options.insert(daemon.to_string(), shlex::split(value).unwrap_or_default());
            }
        } else if let Some(&d) = FRR_DAEMONS.iter().find(|d| **d == key) {
            on.insert(d, value == "yes");
        }
    }
    let enabled = FRR_DAEMONS
        .iter()
        .filter(|d| match **d {
            "zebra" | "staticd" | "bgpd" => true,
            "mgmtd" => mgmtd_installed,
            other => on.get(other).copied().unwrap_or(false),
        })
        .map(|d| d.to_string())
        .collect();
    FrrDaemons { enabled, options }
}

/// Where the host keeps what a node sees at `path`: inside the most specific bind that covers
/// it (a file bind, or a directory bind such as `./r1:/etc/frr`), else the host's own file (the
/// lower layer of the node's overlay).
pub fn node_file(binds: &[crate::topology::Bind], path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    binds
        .iter()
        .filter_map(|b| path.strip_prefix(&b.dst).ok().map(|rest| (b, rest)))
        .max_by_key(|(b, _)| b.dst.components().count())
        .map(|(b, rest)| if rest.as_os_str().is_empty() { b.src.clone() } else { b.src.join(rest) })
        .unwrap_or_else(|| path.to_path_buf())
}

/// Finds `program` as the node will: on its PATH, looking through its binds.
pub fn which_in_node(
    binds: &[crate::topology::Bind],
    program: &str,
    path: &str,
) -> Option<PathBuf> {
    let exists = |p: &Path| node_file(binds, p).is_file();
    if program.contains('/') {
        return exists(Path::new(program)).then(|| PathBuf::from(program));
    }
    path.split(':').map(|d| Path::new(d).join(program)).find(|p| exists(p))
}

/// When a Tartan node's `cmd` is up: the API server when it listens, the agent when its CNI
/// socket exists (so exec lines such as `tartan sandbox add` run against a working agent).
fn tartan_readiness(cmd: &[String]) -> Readiness {
    let flag = |name: &str| {
        cmd.iter().position(|a| a == name).and_then(|i| cmd.get(i + 1).cloned()).or_else(|| {
            cmd.iter().find_map(|a| a.strip_prefix(&format!("{name}=")).map(String::from))
        })
    };
    match cmd.get(1).map(String::as_str) {
        Some("apiserver") => {
            let port = flag("--listen")
                .and_then(|l| l.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
                .unwrap_or(7180);
            Readiness::TcpListen(port)
        }
        Some("node") => Readiness::UnixSocket(
            flag("--socket").unwrap_or_else(|| "/run/tartan/agent.sock".into()).into(),
        ),
        _ => Readiness::Started,
    }
}

/// The services a node runs, in start order.
pub fn services_for(node: &crate::topology::Node) -> Vec<Service> {
    if let Some(cmd) = &node.cmd {
        if is_idle_shell(cmd) {
            return vec![];
        }
        let name =
            Path::new(&cmd[0]).file_name().and_then(|n| n.to_str()).unwrap_or("cmd").to_string();
        let ready = match node.profile {
            Profile::Tartan => tartan_readiness(cmd),
            _ => Readiness::Started,
        };
        return vec![Service { name, argv: cmd.clone(), kind: ServiceKind::Daemon { ready } }];
    }
    match node.profile {
        Profile::Frr => {
            let text = std::fs::read_to_string(node_file(&node.binds, "/etc/frr/daemons"))
                .unwrap_or_default();
            let daemons = parse_frr_daemons(&text, Path::new("/usr/lib/frr/mgmtd").exists());
            let mut services: Vec<Service> = daemons
                .enabled
                .iter()
                .map(|d| {
                    let mut argv = vec![format!("/usr/lib/frr/{d}")];
                    argv.extend(daemons.options.get(d).cloned().unwrap_or_default());
                    argv.extend(["--log".to_string(), "stdout".to_string()]);
                    Service {
                        name: d.clone(),
                        argv,
                        kind: ServiceKind::Daemon {
                            ready: Readiness::UnixSocket(format!("/run/frr/{d}.vty").into()),
                        },
                    }
                })
                .collect();
            services.push(Service {
                name: "vtysh-boot".into(),
                argv: vec!["vtysh".into(), "-b".into()],
                kind: ServiceKind::Oneshot,
            });
            services
        }
        Profile::Bird => vec![Service {
            name: "bird".into(),
            argv: ["bird", "-f", "-c", "/etc/bird/bird.conf", "-s", "/run/bird/bird.ctl"]
                .map(String::from)
                .to_vec(),
            kind: ServiceKind::Daemon { ready: Readiness::BirdSocket("/run/bird/bird.ctl".into()) },
        }],
        Profile::Gobgp => {
            let mut argv: Vec<String> = vec!["gobgpd".into()];
            if node_file(&node.binds, "/etc/gobgpd.conf").exists() {
                argv.extend(["-f", "/etc/gobgpd.conf", "-t", "toml"].map(String::from));
            }
            argv.extend(["-p", "--pprof-disable"].map(String::from));
            vec![Service {
                name: "gobgpd".into(),
                argv,
                kind: ServiceKind::Daemon { ready: Readiness::TcpListen(50051) },
            }]
        }
        Profile::Tartan | Profile::Plain => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_selects_profile() {
        assert_eq!(Profile::from_image("quay.io/frrouting/frr:10.5.1"), Profile::Frr);
        assert_eq!(Profile::from_image("FRRouting/FRR"), Profile::Frr);
        assert_eq!(Profile::from_image("pierky/bird:2.0"), Profile::Bird);
        assert_eq!(Profile::from_image("jauderho/gobgp:latest"), Profile::Gobgp);
        assert_eq!(Profile::from_image("ghcr.io/tartan/tartan:dev"), Profile::Tartan);
        assert_eq!(Profile::from_image("alpine:3"), Profile::Plain);
    }

    #[test]
    fn bare_shells_mean_idle() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(is_idle_shell(&v(&["bash"])));
        assert!(is_idle_shell(&v(&["/bin/sh"])));
        assert!(!is_idle_shell(&v(&["sh", "-c", "sleep 1"])));
        assert!(!is_idle_shell(&v(&["sleep", "infinity"])));
    }

    #[test]
    fn frr_daemons_file_always_includes_zebra_staticd_and_bgpd() {
        let text = "bgpd=no\nospfd=yes\nisisd=no\nzebra_options=\"  -A 127.0.0.1 -s 90000000\"\n";
        let d = parse_frr_daemons(text, false);
        assert_eq!(d.enabled, ["zebra", "bgpd", "ospfd", "staticd"]);
        assert_eq!(d.options["zebra"], ["-A", "127.0.0.1", "-s", "90000000"]);
    }

    #[test]
    fn node_files_are_found_through_file_and_directory_binds() {
        use crate::topology::Bind;
        let bind =
            |src: &str, dst: &str| Bind { src: src.into(), dst: dst.into(), read_only: false };
        let binds = [
            bind("/lab/r1", "/etc/frr"),
            bind("/lab/special", "/etc/frr/daemons"),
            bind("/lab/s.sh", "/start.sh"),
        ];
        assert_eq!(node_file(&binds, "/etc/frr/frr.conf"), Path::new("/lab/r1/frr.conf"));
        assert_eq!(node_file(&binds, "/etc/frr/daemons"), Path::new("/lab/special"));
        assert_eq!(node_file(&binds, "/etc/frr"), Path::new("/lab/r1"));
        assert_eq!(node_file(&binds, "/etc/frrx"), Path::new("/etc/frrx"));
        assert_eq!(node_file(&binds, "/start.sh"), Path::new("/lab/s.sh"));
    }

    #[test]
    fn frr_daemons_file_starts_mgmtd_first_where_installed() {
        let d = parse_frr_daemons("# comment\nbfdd=yes\n", true);
        assert_eq!(d.enabled, ["mgmtd", "zebra", "bgpd", "staticd", "bfdd"]);
    }
}
