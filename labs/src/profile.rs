//! Image profiles: what a node runs, chosen by its image the way the real container image
//! would behave, so one topology file deploys both here and with real containerlab.
//!
//! - `*frr*`   → FRR: `zebra`, `staticd`, `bgpd` and every daemon marked `yes` in the node's
//!   `/etc/frr/daemons`, each in the foreground, then `vtysh -b` to load `/etc/frr/frr.conf`
//!   (what the FRR image's `docker-start` and `frrinit.sh` do).
//! - `*bird*`  → BIRD 2 with the configuration the node binds (`/etc/bird/bird.conf`, or
//!   `/etc/bird.conf` as ghcr.io/srl-labs/bird reads it), control socket `/run/bird/bird.ctl`.
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
    /// `frr_global_options`, and `-F PROFILE` from `frr_profile`: given to every daemon.
    pub global_options: Vec<String>,
    /// `vtysh_enable` (default yes): load `frr.conf` through vtysh once the daemons are up.
    pub vtysh: bool,
    /// What was read differently from FRR's scripts, for the node's log.
    pub notes: Vec<String>,
}

/// Whether a `daemons` file value turns a daemon on, as `frrcommon.sh` decides.
fn turned_on(value: &str) -> bool {
    !value.is_empty() && value != "no" && value != "0"
}

/// Parses FRR's `daemons` file as FRR's scripts read it: a daemon runs when its value is set
/// and not `no` or `0`; `zebra`, `staticd` and `mgmtd` (where installed) always run;
/// `<daemon>_options`, `frr_global_options` and `frr_profile` are passed on, except `-d` /
/// `--daemon` (FRR's scripts add it themselves; here daemons run in the foreground under the
/// node's supervisor, so it is dropped, with a note); `vtysh_enable=no` skips loading
/// `frr.conf`; `watchfrr_options` has no effect (the supervisor watches the daemons).
pub fn parse_frr_daemons(text: &str, mgmtd_installed: bool) -> FrrDaemons {
    let mut on: BTreeMap<&str, bool> = BTreeMap::new();
    let mut out = FrrDaemons { vtysh: true, ..Default::default() };
    let strip = |key: &str, words: Vec<String>, notes: &mut Vec<String>| -> Vec<String> {
        let (daemonize, kept): (Vec<String>, Vec<String>) =
            words.into_iter().partition(|w| w == "-d" || w == "--daemon");
        if let Some(flag) = daemonize.first() {
            notes.push(format!(
                "dropped `{flag}` from {key}: daemons run in the foreground under the node's supervisor"
            ));
        }
        kept
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim();
        let value = value.trim().trim_matches('"').trim_matches('\'').trim();
        let words = || shlex::split(value).unwrap_or_default();
        if let Some(daemon) = key.strip_suffix("_options") {
            if FRR_DAEMONS.contains(&daemon) {
                let kept = strip(key, words(), &mut out.notes);
                out.options.insert(daemon.to_string(), kept);
            } else if daemon == "frr_global" {
                out.global_options.extend(strip(key, words(), &mut out.notes));
            } else if daemon == "watchfrr" && !value.is_empty() {
                out.notes.push(format!(
                    "watchfrr_options {value:?} has no effect: the node's supervisor watches the daemons"
                ));
            }
        } else if key == "frr_profile" && !value.is_empty() {
            out.global_options.extend(["-F".to_string(), value.to_string()]);
        } else if key == "vtysh_enable" {
            out.vtysh = turned_on(value) && value != "false";
        } else if let Some(&d) = FRR_DAEMONS.iter().find(|d| **d == key) {
            on.insert(d, turned_on(value));
        }
    }
    out.enabled = FRR_DAEMONS
        .iter()
        .filter(|d| match **d {
            "zebra" | "staticd" => true,
            "mgmtd" => mgmtd_installed,
            other => on.get(other).copied().unwrap_or(false),
        })
        .map(|d| d.to_string())
        .collect();
    out
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

/// Whether the node binds something at `path` (a file bind, or a directory bind holding it).
fn binds_at(binds: &[crate::topology::Bind], path: &str) -> bool {
    binds.iter().any(|b| Path::new(path).starts_with(&b.dst))
}

/// The configuration BIRD loads in a node: the one the node binds, at `/etc/bird/bird.conf`
/// (Debian's and most images') or `/etc/bird.conf` (ghcr.io/srl-labs/bird's ENTRYPOINT);
/// otherwise the image's usual path.
pub fn bird_config(node: &crate::topology::Node) -> String {
    const DEBIAN: &str = "/etc/bird/bird.conf";
    const SRL: &str = "/etc/bird.conf";
    match (binds_at(&node.binds, DEBIAN), binds_at(&node.binds, SRL)) {
        (true, _) => DEBIAN.into(),
        (false, true) => SRL.into(),
        (false, false) if node.image.contains("srl-labs/bird") => SRL.into(),
        (false, false) => DEBIAN.into(),
    }
}

/// Daemon configuration files a node binds that none of its daemons reads (a BIRD config at
/// the other path, FRR files under a GoBGP image, ...), and a BIRD node that binds none: each
/// a warning, since the daemon then runs with something else, and its peers sit in Active.
pub fn unloaded_configs(node: &crate::topology::Node) -> Vec<String> {
    if node.cmd.is_some() {
        return Vec::new();
    }
    let loaded: Vec<String> = match node.profile {
        Profile::Bird => vec![bird_config(node)],
        Profile::Frr => vec!["/etc/frr/frr.conf".into(), "/etc/frr/daemons".into()],
        Profile::Gobgp => vec!["/etc/gobgpd.conf".into()],
        Profile::Tartan | Profile::Plain => Vec::new(),
    };
    let known = [
        "/etc/bird/bird.conf",
        "/etc/bird.conf",
        "/etc/frr/frr.conf",
        "/etc/frr/daemons",
        "/etc/gobgpd.conf",
    ];
    let mut out: Vec<String> = node
        .binds
        .iter()
        .filter_map(|b| b.dst.to_str())
        .filter(|dst| known.contains(dst) && !loaded.iter().any(|l| l == dst))
        .map(|dst| {
            let runs = match node.profile {
                Profile::Bird => format!("BIRD loads {}", loaded[0]),
                Profile::Frr => "FRR loads /etc/frr/frr.conf".into(),
                Profile::Gobgp => "GoBGP loads /etc/gobgpd.conf".into(),
                Profile::Tartan | Profile::Plain => {
                    format!("its image ({}) runs no routing daemon", node.image)
                }
            };
            format!("node `{}` binds {dst}, but {runs}: nothing reads it", node.name)
        })
        .collect();
    if node.profile == Profile::Bird && !binds_at(&node.binds, &bird_config(node)) {
        out.push(format!(
            "node `{}` binds no BIRD configuration: BIRD runs with this machine's {}",
            node.name,
            bird_config(node)
        ));
    }
    out
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
            let file = node_file(&node.binds, "/etc/frr/daemons");
            let bound = file != Path::new("/etc/frr/daemons");
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let mut daemons = parse_frr_daemons(&text, Path::new("/usr/lib/frr/mgmtd").exists());
            if !bound && !daemons.enabled.iter().any(|d| d == "bgpd") {
                // No daemons file of its own: the lab still wants BGP (and always has here).
                daemons.enabled.push("bgpd".into());
                daemons.enabled.sort_by_key(|d| FRR_DAEMONS.iter().position(|f| f == d));
                daemons.notes.push(
                    "binds no /etc/frr/daemons: running zebra, bgpd and staticd (bind one to choose)"
                        .into(),
                );
            }
            for note in &daemons.notes {
                tracing::info!("node `{}`: {}: {note}", node.name, file.display());
            }
            let mut services: Vec<Service> = daemons
                .enabled
                .iter()
                .map(|d| {
                    let mut argv = vec![format!("/usr/lib/frr/{d}")];
                    argv.extend(daemons.global_options.iter().cloned());
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
            // FRR's own rule: `vtysh -b` only when enabled and frr.conf is there.
            if daemons.vtysh && node_file(&node.binds, "/etc/frr/frr.conf").exists() {
                services.push(Service {
                    name: "vtysh-boot".into(),
                    argv: vec!["vtysh".into(), "-b".into()],
                    kind: ServiceKind::Oneshot,
                });
            }
            services
        }
        Profile::Bird => vec![Service {
            name: "bird".into(),
            argv: ["bird", "-f", "-c", &bird_config(node), "-s", "/run/bird/bird.ctl"]
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
    fn frr_daemons_file_is_read_as_frrs_scripts_read_it() {
        let text = "bgpd=no\nospfd=yes\nisisd=no\nzebra_options=\"  -A 127.0.0.1 -s 90000000\"\n";
        let d = parse_frr_daemons(text, false);
        assert_eq!(d.enabled, ["zebra", "ospfd", "staticd"], "bgpd=no is honoured");
        assert_eq!(d.options["zebra"], ["-A", "127.0.0.1", "-s", "90000000"]);
        assert!(d.vtysh && d.notes.is_empty());

        // As containerlab's frr01 lab ships it: --daemon dropped (and said), 1 means on.
        let frr01 = "zebra=yes\nbgpd=1\nripd=0\nvtysh_enable=no\n\
                     zebra_options=\" -s 90000000 --daemon -A 127.0.0.1\"\n\
                     bgpd_options=\"   -d -A 127.0.0.1\"\n\
                     watchfrr_options=\"-r '/usr/lib/frr/watchfrr.sh restart %s'\"\n\
                     frr_profile=\"datacenter\"\n";
        let d = parse_frr_daemons(frr01, true);
        assert_eq!(d.enabled, ["mgmtd", "zebra", "bgpd", "staticd"]);
        assert_eq!(d.options["zebra"], ["-s", "90000000", "-A", "127.0.0.1"]);
        assert_eq!(d.options["bgpd"], ["-A", "127.0.0.1"]);
        assert_eq!(d.global_options, ["-F", "datacenter"]);
        assert!(!d.vtysh, "vtysh_enable=no");
        assert_eq!(d.notes.len(), 3, "{:?}", d.notes);
        assert!(d.notes[0].contains("dropped `--daemon` from zebra_options"), "{:?}", d.notes);
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
    fn bird_loads_the_config_the_node_binds_and_a_stray_one_is_named() {
        let text = |image: &str, dst: &str| {
            format!(
                "name: b\ntopology:\n  nodes:\n    rs: {{kind: linux, image: {image}, binds: [\"/etc/hostname:{dst}\"]}}\n"
            )
        };
        let parse = |t: String| {
            let opts =
                crate::topology::LoadOptions { skip_file_checks: true, ..Default::default() };
            crate::topology::parse(&t, Path::new("/labs/b.clab.yml"), &opts).expect("parses")
        };
        let srl = parse(text("ghcr.io/srl-labs/bird:2.13", "/etc/bird.conf"));
        assert_eq!(bird_config(&srl.nodes[0]), "/etc/bird.conf");
        assert!(srl.warnings.is_empty(), "{:?}", srl.warnings);
        let debian = parse(text("pierky/bird:2", "/etc/bird/bird.conf"));
        assert_eq!(bird_config(&debian.nodes[0]), "/etc/bird/bird.conf");
        // An FRR node that binds a BIRD config: nothing reads it, and the file says so.
        let stray = parse(text("quay.io/frrouting/frr:10.0.0", "/etc/bird.conf"));
        assert!(
            stray.warnings.iter().any(|w| w.contains("binds /etc/bird.conf, but FRR loads")),
            "{:?}",
            stray.warnings
        );
    }

    #[test]
    fn frr_daemons_file_starts_mgmtd_first_where_installed() {
        let d = parse_frr_daemons("# comment\nbfdd=yes\n", true);
        assert_eq!(d.enabled, ["mgmtd", "zebra", "staticd", "bfdd"]);
    }
}
