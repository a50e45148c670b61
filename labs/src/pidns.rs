//! Each node's PID namespace and its init, so that `ps` in a node shows the node's processes and
//! `pkill` in an `exec` line cannot reach another node (or another lab running beside it).
//!
//! The supervisor starts `tartanlab __pid-init` for every node before its services. That helper
//! joins the node's network, UTS and mount namespaces, unshares a PID namespace and starts
//! `tartanlab __node-init-pid1` — the node's PID 1 — then prints its PID and exits, so the init
//! becomes the supervisor's child (the supervisor is a subreaper). The init mounts the node's
//! `/proc` (which then shows only the node's processes), keeps `/proc/sys` read-only except
//! `/proc/sys/net`, and reaps whatever is orphaned inside the node for the life of the lab.
//! The supervisor pins the PID namespace beside the node's other pins, and every process that
//! enters the node joins it (see [`crate::enter`]).

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::waitpid;

use crate::enter::NodeNamespaces;

/// The name the node's init shows in `ps` (its `comm`).
pub const INIT_NAME: &str = "tartan-init";

/// `tartanlab __pid-init`: creates the node's PID namespace and its init; prints the init's PID
/// as the machine sees it. Must be called single-threaded.
pub fn run_helper(ns: &NodeNamespaces) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding tartanlab: {e}"))?;
    crate::enter::enter(ns).map_err(|e| e.to_string())?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unsharing a PID namespace: {e}"))?;
    let mut init = Command::new(&exe)
        .arg("__node-init-pid1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the node's init ({}): {e}", exe.display()))?;
    let mut line = String::new();
    if let Some(out) = init.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let _ = init.kill();
        let _ = init.wait();
        return Err(format!("the node's init did not start: {}", line.trim()));
    }
    println!("{}", init.id());
    Ok(())
}

/// `tartanlab __node-init-pid1`: the node's PID 1. Never returns while the lab runs.
pub fn run_init() -> Result<(), String> {
    let _ = nix::sys::prctl::set_name(&std::ffi::CString::new(INIT_NAME).unwrap_or_default());
    // The /proc the node was built with shows the machine's processes; this one shows the node's.
    match umount2("/proc", MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(format!("unmounting the old /proc: {e}")),
    }
    mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), None::<&str>)
        .map_err(|e| format!("mounting /proc: {e}"))?;
    crate::node_init::protect_proc()?;
    let mut out = std::io::stdout();
    out.write_all(b"ready\n")
        .and_then(|_| out.flush())
        .map_err(|e| format!("signalling ready: {e}"))?;
    reap_forever()
}

/// What PID 1 does: wait for any child, forever. Orphans in the node become its children.
fn reap_forever() -> ! {
    loop {
        match waitpid(None::<nix::unistd::Pid>, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(500)),
        }
    }
}
