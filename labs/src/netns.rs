//! Named network namespaces, made exactly as `ip netns add` makes them (a bind mount of the
//! namespace on `/run/netns/<name>`), so `ip netns exec clab-<lab>-<node> ...` just works; and
//! pins that keep a node's mount and UTS namespaces alive between its processes.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use crate::error::{LabError, Result};
use crate::procfs::is_mount_point;

pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

pub fn open(name: &str) -> Result<File> {
    File::open(path(name)).map_err(LabError::io(format!("opening network namespace {name}")))
}

/// iproute2's setup of `/run/netns`: a shared mount, so namespaces added later are visible to
/// other mount namespaces that share it.
fn ensure_netns_dir() -> Result<()> {
    fs::create_dir_all(NETNS_DIR).map_err(LabError::io("creating /run/netns"))?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(LabError::sys("bind-mounting /run/netns"))?;
            shared().map_err(LabError::sys("making /run/netns shared"))
        }
        Err(e) => Err(LabError::Sys { what: "making /run/netns shared".into(), source: e }),
    }
}

/// Creates the named network namespace; fails if the name is taken.
pub fn create(name: &str) -> Result<()> {
    ensure_netns_dir()?;
    let target = path(name);
    OpenOptions::new().write(true).create_new(true).mode(0o0).open(&target).map_err(|e| match e
        .kind()
    {
        std::io::ErrorKind::AlreadyExists => LabError::NetnsExists { name: name.to_string() },
        _ => LabError::Io { what: format!("creating {}", target.display()), source: e },
    })?;
    // A thread of our own enters a new namespace and pins it; the process stays where it was.
    let pinned = std::thread::scope(|s| {
        s.spawn(|| -> nix::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .join()
        .unwrap_or(Err(Errno::EIO))
    });
    if let Err(e) = pinned {
        let _ = fs::remove_file(&target);
        return Err(LabError::Sys {
            what: format!("creating network namespace {name}"),
            source: e,
        });
    }
    Ok(())
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
