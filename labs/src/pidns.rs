//! Each node's PID namespace and its init, so that `ps` in a node shows the node's processes and
//! `pkill` in an `exec` line cannot reach another node (or another lab running beside it).
//!
//! The supervisor starts `tartanlab __pid-init` for every node before its services. That helper
//! joins the node's network, UTS and mount namespaces, unshares a PID namespace and forks: the
//! child is the node's PID 1 (no exec, so nothing has to be found inside the node). The init
//! mounts the node's `/proc` (which then shows only the node's processes), keeps `/proc/sys`
//! read-only except `/proc/sys/net`, says ready, and reaps whatever is orphaned inside the node
//! for the life of the lab. The helper prints the init's PID and exits, so the init becomes the
//! supervisor's child (the supervisor is a subreaper); the supervisor checks it, pins the PID
//! namespace beside the node's other pins, and notices if it ever ends. Every process that
//! enters the node joins the namespace (see [`crate::enter`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

use crate::enter::NodeNamespaces;

/// The name the node's init shows in `ps` (its `comm`).
pub const INIT_NAME: &str = "tartan-init";

/// `tartanlab __pid-init`: creates the node's PID namespace and its init; prints the init's PID
/// as the machine sees it. Must be called single-threaded.
pub fn run_helper(ns: &NodeNamespaces) -> Result<(), String> {
    crate::enter::enter(ns).map_err(|e| e.to_string())?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unsharing a PID namespace: {e}"))?;
    let (ready_read, ready_write) =
        nix::unistd::pipe().map_err(|e| format!("creating a pipe: {e}"))?;
    match fork_single_threaded().map_err(|e| format!("forking the node's init: {e}"))? {
        ForkResult::Child => {
            drop(ready_read);
            let err = run_init(File::from(ready_write));
            eprintln!("tartan-init: {err}");
            std::process::exit(1)
        }
        ForkResult::Parent { child } => {
            drop(ready_write);
            let mut line = String::new();
            let _ = BufReader::new(File::from(ready_read)).read_line(&mut line);
            if line.trim() != "ready" {
                return Err("the node's init did not start (see the node's init.log)".into());
            }
            println!("{child}");
            Ok(())
        }
    }
}

/// `fork()`, for the helper above.
#[allow(unsafe_code)]
fn fork_single_threaded() -> nix::Result<ForkResult> {
    // SAFETY: `tartanlab __pid-init` is single-threaded (no runtime, no threads started), so the
    // child inherits no lock held by another thread and may run ordinary Rust code.
    unsafe { nix::unistd::fork() }
}

/// The node's PID 1: mounts its `/proc`, reports on `ready`, then reaps forever. Returns only on
/// error.
fn run_init(mut ready: File) -> String {
    let _ = nix::sys::prctl::set_name(&std::ffi::CString::new(INIT_NAME).unwrap_or_default());
    // The /proc the node was built with shows the machine's processes; this one shows the node's.
    match umount2("/proc", MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(e) => return format!("unmounting the old /proc: {e}"),
    }
    if let Err(e) = mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), None::<&str>) {
        return format!("mounting /proc: {e}");
    }
    if let Err(e) = crate::node_init::protect_proc() {
        return e;
    }
    if let Err(e) = ready.write_all(b"ready\n") {
        return format!("signalling ready: {e}");
    }
    drop(ready);
    loop {
        match waitpid(None::<nix::unistd::Pid>, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(500)),
        }
    }
}
