//! Each node's own branch of the machine's cgroup hierarchies.
//!
//! A container runtime inside a node (podman with runc and the cgroupfs manager) creates
//! cgroups for its containers under `/sys/fs/cgroup`. Were that the machine's root, those
//! directories (`libpod_parent/...`) would outlive the lab. So every hierarchy is shown in the
//! node at a directory of its own, `tartanlab.<lab>.<node>`, which the node's setup creates
//! and destroy removes with everything below it, once the node's processes are gone. Processes
//! are never moved: a node's own processes stay in whichever cgroups they were started in.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::procfs::MountEntry;

/// The name of a node's branch in every hierarchy.
pub fn branch_name(lab: &str, node: &str) -> String {
    format!("tartanlab.{lab}.{node}")
}

/// Whether a mount is a cgroup hierarchy (v1 or v2).
pub fn is_hierarchy(m: &MountEntry) -> bool {
    m.fstype == "cgroup" || m.fstype == "cgroup2"
}

/// Creates `branch` in the hierarchy mounted at `hierarchy`. A v1 cpuset branch starts with no
/// CPUs and memory nodes, and a runtime below it copies them only as far up as the node's root,
/// so it gets its parent's.
pub fn create_branch(hierarchy: &Path, branch: &str) -> Result<PathBuf, String> {
    let dir = hierarchy.join(branch);
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("creating cgroup {}: {e}", dir.display())),
    }
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        let Ok(current) = fs::read_to_string(&own) else { continue };
        if current.trim().is_empty() {
            let parent = fs::read_to_string(hierarchy.join(file)).unwrap_or_default();
            fs::write(&own, parent.trim())
                .map_err(|e| format!("writing {}: {e}", own.display()))?;
        }
    }
    Ok(dir)
}

/// The branches of one lab's nodes that still exist in the machine's hierarchies.
pub fn branches_left(lab: &str, nodes: &[String]) -> Vec<PathBuf> {
    crate::procfs::mounts()
        .iter()
        .filter(|m| is_hierarchy(m))
        .flat_map(|m| nodes.iter().map(|n| Path::new(&m.mount_point).join(branch_name(lab, n))))
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes the lab's branches with every cgroup below them. Their processes must be gone; a
/// cgroup whose last process is still exiting is retried for a moment.
pub fn remove_branches(lab: &str, nodes: &[String]) -> crate::error::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    for branch in branches_left(lab, nodes) {
        loop {
            match remove_tree(&branch) {
                Ok(()) => break,
                Err(e)
                    if e.raw_os_error() == Some(nix::libc::EBUSY) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(crate::error::LabError::Io {
                        what: format!("removing cgroup {}", branch.display()),
                        source: e,
                    });
                }
            }
        }
    }
    Ok(())
}

/// `rmdir` depth first: a cgroup directory goes with its control files, never with children.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_are_named_by_lab_and_node_and_removed_depth_first() {
        assert_eq!(branch_name("podman", "host1"), "tartanlab.podman.host1");
        // On a plain directory tree (no cgroupfs needed) the removal is the same walk.
        let root = std::env::temp_dir().join(format!("tartanlab-cgroups-{}", std::process::id()));
        fs::create_dir_all(root.join("a/b/c")).expect("dirs");
        fs::create_dir_all(root.join("a/d")).expect("dirs");
        remove_tree(&root.join("a")).expect("removed");
        assert!(!root.join("a").exists());
        remove_tree(&root.join("a")).expect("absent is fine");
        fs::remove_dir(&root).expect("cleanup");
    }
}
