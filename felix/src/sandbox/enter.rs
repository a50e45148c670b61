//! `tartan sandbox exec`: replace the calling process with a program running in a sandbox's
//! network namespace, as `ip netns exec` does (including a private mount namespace in which
//! `/sys` shows the sandbox's interfaces).
//!
//! It changes the namespaces of the calling thread, so it must only be called from a
//! single-threaded process that is about to become the program; it returns only on failure.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use super::error::SandboxError;

/// Runs `argv` inside sandbox `name`; returns only if that could not be done.
pub fn exec(name: &str, argv: &[OsString]) -> SandboxError {
    if let Some(reason) = super::validate::id_problem(name) {
        return SandboxError::InvalidName { name: name.to_string(), reason };
    }
    let Some((program, args)) = argv.split_first() else {
        return SandboxError::NoCommand;
    };
    let netns = crate::netns::path(name);
    let file = match File::open(&netns) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return SandboxError::NotFound { name: name.to_string(), netns };
        }
        Err(e) => return SandboxError::io(format!("opening {}", netns.display()))(e),
    };
    if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
        let what = format!(
            "joining {} (a stale sandbox? `tartan sandbox del {name}` removes it)",
            netns.display()
        );
        return SandboxError::io(what)(e.into());
    }
    if let Err(e) = private_sys(name) {
        tracing::warn!("/sys still shows the host's interfaces: {e}");
    }
    let error = Command::new(program).args(args).exec();
    SandboxError::Exec { program: program.to_string_lossy().into_owned(), source: error }
}

/// iproute2's `netns_switch`: a mount namespace of our own (slave to the host's, so nothing
/// leaks back) with a sysfs mounted for the namespace we just joined.
fn private_sys(name: &str) -> nix::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS)?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)?;
    umount2("/sys", MntFlags::MNT_DETACH)?;
    mount(Some(name), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>)
}
