//! Entering a node: join its network, UTS, mount and PID namespaces, then start the command.
//! Only children land in a joined PID namespace, so the entering process always starts a child,
//! in one of two ways:
//!
//! - **attached** (`tartanlab exec`, `exec` lines, tests): it waits for the command and ends
//!   the way the command ended — same exit code, or killed by the same signal. The command dies
//!   with it (`PR_SET_PDEATHSIG`), and the terminal's Ctrl-C goes to the command alone.
//! - **detached** (daemons the supervisor starts): it starts the command in its own process
//!   group with its output in a log file, prints its PID and exits. The daemon is then adopted
//!   by the supervisor (a child subreaper), which signals it, waits for it and records how it
//!   ended — the daemon's own exit, not a wrapper's.
//!
//! Joining a mount namespace requires a single-threaded process, so this runs only in
//! `tartanlab __nsexec` and `tartanlab exec`, before any runtime starts threads; everything
//! else builds a [`command`] or [`detached_command`] that goes through `__nsexec`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

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
    /// The `--net`, `--mnt` and `--uts` arguments of the helpers that join them.
    pub fn args(&self) -> [&std::ffi::OsStr; 6] {
        [
            "--net".as_ref(),
            self.net.as_os_str(),
            "--mnt".as_ref(),
            self.mnt.as_os_str(),
            "--uts".as_ref(),
            self.uts.as_os_str(),
        ]
    }

    pub fn of(state: &LabState, node: &NodeState) -> NodeNamespaces {
        let pid = state.pin(&node.name, "pid");
        NodeNamespaces {
            net: crate::netns::path(&node.netns),
            mnt: state.pin(&node.name, "mnt"),
            uts: state.pin(&node.name, "uts"),
            // Pinned means mounted: the file exists a moment before the namespace is on it.
            pid: crate::procfs::is_mount_point(&pid).then_some(pid),
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

/// Joins the node's namespaces and runs `argv` there, attached — or, with `detach_log`,
/// detached with its output appended to that file. Returns only on error.
pub fn enter_and_run(
    ns: &NodeNamespaces,
    argv: &[String],
    env: Option<&BTreeMap<String, String>>,
    detach_log: Option<&Path>,
) -> LabError {
    // Opened before entering: the log lives on the host, outside the node's files.
    let log = match detach_log
        .map(|p| OpenOptions::new().create(true).append(true).open(p))
        .transpose()
    {
        Ok(log) => log,
        Err(e) => return LabError::Io { what: "opening the service log".into(), source: e },
    };
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
    let spawn_error = |e: std::io::Error| {
        match e.raw_os_error() {
        // fork() into a PID namespace whose init has died fails with ENOMEM.
        Some(libc_enomem) if libc_enomem == nix::errno::Errno::ENOMEM as i32 && ns.pid.is_some() => LabError::Usage {
            message: "the node's init has ended, and with it every process of the node; destroy and redeploy the lab".into(),
        },
        _ => LabError::Io { what: format!("running `{program}` in the node"), source: e },
    }
    };
    if let Some(log) = log {
        let err = match log.try_clone() {
            Ok(f) => f,
            Err(e) => return LabError::Io { what: "opening the service log".into(), source: e },
        };
        cmd.process_group(0).stdin(Stdio::null()).stdout(log).stderr(err);
        return match cmd.spawn() {
            Ok(child) => {
                println!("{}", child.id());
                std::process::exit(0)
            }
            Err(e) => spawn_error(e),
        };
    }
    if ns.pid.is_none() {
        let err = cmd.exec();
        return LabError::Io { what: format!("running `{program}` in the node"), source: err };
    }
    die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return spawn_error(e),
    };
    // The terminal's Ctrl-C and Ctrl-\ reach the command (same process group); this process
    // holds them back until the command has ended, to end the same way. Blocked only now, so
    // the command started with the signal mask and dispositions this process inherited.
    let mut interactive = SigSet::empty();
    interactive.add(Signal::SIGINT);
    interactive.add(Signal::SIGQUIT);
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&interactive), None);
    match child.wait() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            if let Some(signal) = status.signal() {
                // Die of the same signal (without a core dump), so callers such as a shell loop
                // see what happened to the command.
                let _ =
                    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
            std::process::exit(status.code().unwrap_or(1))
        }
        Err(e) => LabError::Io { what: format!("waiting for `{program}`"), source: e },
    }
}

/// The command dies with the process that started it, so an attached command is never left
/// running when whoever waited for it was killed.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec, and makes one
    // async-signal-safe system call (prctl); it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// A command that runs `argv` inside `node`, attached (through `tartanlab __nsexec`), with the
/// node's environment.
pub fn command(state: &LabState, node: &NodeState, argv: &[String]) -> Command {
    nsexec(state, node, None, argv)
}

/// A command that starts `argv` inside `node` detached, output appended to `log`; it prints the
/// PID of the started process and exits.
pub fn detached_command(
    state: &LabState,
    node: &NodeState,
    argv: &[String],
    log: &Path,
) -> Command {
    nsexec(state, node, Some(log), argv)
}

fn nsexec(
    state: &LabState,
    node: &NodeState,
    detach_log: Option<&Path>,
    argv: &[String],
) -> Command {
    let ns = NodeNamespaces::of(state, node);
    let mut cmd = Command::new(&state.tartanlab);
    cmd.arg("__nsexec").args(ns.args());
    if let Some(pid) = &ns.pid {
        cmd.arg("--pid").arg(pid);
    }
    if let Some(log) = detach_log {
        cmd.arg("--detach-log").arg(log);
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
