//! Named network namespaces, made exactly as `ip netns add` makes them (a bind mount of the
//! namespace on `/run/netns/<name>`), so `ip netns exec clab-<lab>-<node> ...` just works; and
//! pins that keep a node's mount and UTS namespaces alive between its processes.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{LabError, Result};
use crate::procfs::is_mount_point;

pub use tartan_felix::netns::{NETNS_DIR, path};

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

pub fn open(name: &str) -> Result<File> {
    File::open(path(name)).map_err(LabError::io(format!("opening network namespace {name}")))
}

/// Creates the named namespace (as `ip netns add` does; see `tartan_felix::netns`); fails if
/// the name is taken.
pub fn create(name: &str) -> Result<()> {
    match tartan_felix::netns::create(name) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(LabError::NetnsExists { name: name.to_string() })
        }
        Err(e) => {
            Err(LabError::Io { what: format!("creating network namespace {name}"), source: e })
        }
    }
}

/// Removes the named namespace; an absent one is not an error. The namespace itself (and the
/// veths in it) goes away once no process and no mount refers to it any more.
pub fn delete(name: &str) -> Result<()> {
    unpin(&path(name))
}

/// Pins namespace `ns` (`mnt`, `uts`, ...) of process `pid` on the file `at`.
pub fn pin(pid: i32, ns: &str, at: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o0)
        .open(at)
        .map_err(LabError::io(format!("creating {}", at.display())))?;
    mount(
        Some(format!("/proc/{pid}/ns/{ns}").as_str()),
        at,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(LabError::sys(format!("pinning the {ns} namespace on {}", at.display())))
}

/// Unmounts a pin (or a netns file) and removes the file; absent is fine.
pub fn unpin(at: &Path) -> Result<()> {
    match umount2(at, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(LabError::Sys { what: format!("unmounting {}", at.display()), source: e });
        }
    }
    match fs::remove_file(at) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::Io { what: format!("removing {}", at.display()), source: e }),
    }
}

/// Makes `dir` a private mount of itself, so mount-namespace pins can live in it (the kernel
/// refuses pins that could propagate into the namespace they pin).
pub fn ensure_private_mount(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    if !is_mount_point(dir) {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(LabError::sys(format!("bind-mounting {}", dir.display())))?;
    }
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(LabError::sys(format!("making {} private", dir.display())))
}

/// Undoes [`ensure_private_mount`] and removes the (empty) directory.
pub fn release_private_mount(dir: &Path) -> Result<()> {
    if is_mount_point(dir) {
        umount2(dir, MntFlags::MNT_DETACH)
            .map_err(LabError::sys(format!("unmounting {}", dir.display())))?;
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::Io { what: format!("removing {}", dir.display()), source: e }),
    }
}
