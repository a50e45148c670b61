//! Entering a node: join its network, UTS, mount and PID namespaces, then run the command. Only
//! children land in a joined PID namespace, so the entering process starts the command and waits
//! for it, passing its exit status on (and surviving the terminal's Ctrl-C, which the command
//! gets). Joining a mount namespace requires a single-threaded process, so this runs only in
//! `tartanlab __nsexec` and `tartanlab exec`, before any runtime starts threads; everything
//! else builds a [`command`] that goes through `__nsexec`.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{CloneFlags, setns};

use crate::error::{LabError, Result};
use crate::state::{LabState, NodeState};

/// The namespace files of a node.
#[derive(Debug, Clone)]
pub struct NodeNamespaces {
    pub net: PathBuf,
    pub mnt: PathBuf,
    pub uts: PathBuf,
    /// The node's PID namespace, once its init runs (see [`crate::pidns`]).
    pub pid: Option<PathBuf>,
}

impl NodeNamespaces {
    pub fn of(state: &LabState, node: &NodeState) -> NodeNamespaces {
        let pid = state.pin(&node.name, "pid");
        NodeNamespaces {
            net: crate::netns::path(&node.netns),
            mnt: state.pin(&node.name, "mnt"),
            uts: state.pin(&node.name, "uts"),
            pid: pid.exists().then_some(pid),
        }
    }
}

/// Joins the node's namespaces. The caller must be single-threaded.
pub fn enter(ns: &NodeNamespaces) -> Result<()> {
    let open = |p: &Path| File::open(p).map_err(LabError::io(format!("opening {}", p.display())));
    let (net, uts, mnt) = (open(&ns.net)?, open(&ns.uts)?, open(&ns.mnt)?);
    let pid = ns.pid.as_deref().map(open).transpose()?;
    setns(&net, CloneFlags::CLONE_NEWNET)
        .map_err(LabError::sys("joining the node's network namespace"))?;
    setns(&uts, CloneFlags::CLONE_NEWUTS)
        .map_err(LabError::sys("joining the node's UTS namespace"))?;
    if let Some(pid) = pid {
        // Children started from now on are in the node's PID namespace.
        setns(&pid, CloneFlags::CLONE_NEWPID)
            .map_err(LabError::sys("joining the node's PID namespace"))?;
    }
    setns(&mnt, CloneFlags::CLONE_NEWNS)
        .map_err(LabError::sys("joining the node's mount namespace"))?;
    nix::unistd::chdir("/").map_err(LabError::sys("changing to the node's /"))
}

/// Joins the node's namespaces and runs `argv` there: as a child in the node's PID namespace,
/// exiting with its status; or, for a node without one yet, by replacing this process.
/// Returns only on error.
pub fn enter_and_run(
    ns: &NodeNamespaces,
    argv: &[String],
    env: Option<&BTreeMap<String, String>>,
) -> LabError {
    if let Err(e) = enter(ns) {
        return e;
    }
    let Some((program, args)) = argv.split_first() else {
        return LabError::Usage { message: "no command given".into() };
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(env) = env {
        cmd.env_clear().envs(env);
    }
    if ns.pid.is_none() {
        let err = cmd.exec();
        return LabError::Io { what: format!("running `{program}` in the node"), source: err };
    }
    // The terminal's Ctrl-C and Ctrl-\ are for the command; this process outlives them to pass
    // its status on. (A handler, unlike an ignored signal, is not inherited by the command.)
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT] {
        let _ = signal_hook::flag::register(signal, std::sync::Arc::default());
    }
    match cmd.status() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            std::process::exit(code)
        }
        Err(err) => LabError::Io { what: format!("running `{program}` in the node"), source: err },
    }
}

/// A command that runs `argv` inside `node` (through `tartanlab __nsexec`), with the node's
/// environment.
pub fn command(state: &LabState, node: &NodeState, argv: &[String]) -> Command {
    let ns = NodeNamespaces::of(state, node);
    let mut cmd = Command::new(&state.tartanlab);
    cmd.arg("__nsexec")
        .arg("--net")
        .arg(&ns.net)
        .arg("--mnt")
        .arg(&ns.mnt)
        .arg("--uts")
        .arg(&ns.uts);
    if let Some(pid) = &ns.pid {
        cmd.arg("--pid").arg(pid);
    }
    cmd.arg("--").args(argv).env_clear().envs(&node.env);
    cmd
}

/// The PATH of every node process: the project's own binaries first.
pub fn node_path(bin_dir: &Path) -> String {
    format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display())
}

/// The directory holding the project's binaries (`tartan`, `tartanctl`, `tartanlab`):
/// `TARTAN_BIN_DIR` if set, else the directory of the running `tartanlab`.
pub fn bin_dir(tartanlab: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("TARTAN_BIN_DIR") {
        return PathBuf::from(dir);
    }
    tartanlab.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/usr/local/bin"))
}
