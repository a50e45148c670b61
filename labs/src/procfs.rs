//! What `/proc` says about processes: identity (PID plus start time, so a recycled PID is
//! never mistaken for ours), liveness (a zombie counts as gone: it holds no namespace and
//! `kill -0` would lie about it), and which processes live inside a given namespace.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A process we started, identified beyond its PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRef {
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time: u64,
}

/// The fields of `/proc/<pid>/stat` this module needs.
#[derive(Debug, Clone, Copy)]
struct Stat {
    state: char,
    ppid: i32,
    /// Field 22: clock ticks since boot.
    start_time: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let mut fields = text[text.rfind(')')? + 2..].split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // The fields so far are 3 (state) and 4 (ppid); the start time is field 22.
    let start_time = fields.nth(17)?.parse().ok()?;
    Some(Stat { state, ppid, start_time })
}

/// Every PID in `/proc`.
fn all_pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).collect()
}

impl ProcRef {
    /// Identifies a running process.
    pub fn of(pid: i32) -> Option<ProcRef> {
        stat(pid).map(|st| ProcRef { pid, start_time: st.start_time })
    }

    /// True while this very process exists and has not exited (zombies count as exited).
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some(st) if st.start_time == self.start_time && st.state != 'Z' && st.state != 'X')
    }

    /// True while any process — even a zombie not yet reaped — holds this identity.
    pub fn exists(&self) -> bool {
        stat(self.pid).is_some_and(|st| st.start_time == self.start_time)
    }

    /// Sends `signal` to the process (and, with `group`, to its process group) if it is
    /// still the process we started. Returns whether it was.
    pub fn signal(&self, signal: Signal, group: bool) -> bool {
        if !self.alive() {
            return false;
        }
        if group {
            let _ = killpg(Pid::from_raw(self.pid), signal);
        }
        let _ = kill(Pid::from_raw(self.pid), signal);
        true
    }
}

/// PIDs of the zombie children of `parent`.
pub fn zombie_children(parent: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| stat(pid).is_some_and(|st| st.ppid == parent && st.state == 'Z'))
        .collect()
}

/// Reaps the given zombie children of this process (others are left alone).
pub fn reap(pids: &[i32]) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    for &pid in pids {
        let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    }
}

/// The inode of a namespace file (`/run/netns/x`, `/proc/<pid>/ns/net`, a pinned mount
/// namespace), which identifies the namespace.
pub fn ns_inode(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

/// Every live process whose network namespace is one of `net` or whose mount namespace is one
/// of `mnt` (inodes).
pub fn processes_in(net: &[u64], mnt: &[u64]) -> Vec<ProcRef> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            let ino = |ns: &str| ns_inode(Path::new(&format!("/proc/{pid}/ns/{ns}")));
            ino("net").is_some_and(|i| net.contains(&i))
                || ino("mnt").is_some_and(|i| mnt.contains(&i))
        })
        .filter_map(ProcRef::of)
        .filter(ProcRef::alive)
        .collect()
}

/// Whether `path` is a mount point (listed in `/proc/self/mountinfo`).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| unescape_mount(m) == want))
}

/// One line of `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: String,
    pub fstype: String,
    /// Per-mount options (`rw,nosuid,nodev,relatime`).
    pub options: String,
}

/// The mounts listed in `/proc/self/mountinfo`.
pub fn mounts() -> Vec<MountEntry> {
    mounts_in(Path::new("/proc/self/mountinfo"))
}

/// The mounts listed in a `mountinfo` file.
pub fn mounts_in(mountinfo: &Path) -> Vec<MountEntry> {
    let Ok(info) = fs::read_to_string(mountinfo) else { return vec![] };
    info.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(MountEntry {
                mount_point: unescape_mount(fields.get(4)?),
                options: fields.get(5)?.to_string(),
                fstype: fields.get(sep + 1)?.to_string(),
            })
        })
        .collect()
}

/// `/proc/self/mountinfo` escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(b as char),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The parent of a process.
pub fn parent(pid: i32) -> Option<i32> {
    stat(pid).map(|st| st.ppid)
}

/// The command name of a process (`/proc/<pid>/comm`), or `?`.
pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// This boot's identity (`/proc/sys/kernel/random/boot_id`). Process identities recorded under
/// another boot mean nothing now: after a reboot, a PID and start time can belong to anyone.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// PIDs of every child of `parent`, zombies included.
pub fn children(parent: i32) -> Vec<i32> {
    all_pids().into_iter().filter(|&pid| stat(pid).is_some_and(|st| st.ppid == parent)).collect()
}

/// Whether the effective user is root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_identified() {
        let me = ProcRef::of(std::process::id() as i32).expect("own stat");
        assert!(me.alive());
        let recycled = ProcRef { start_time: me.start_time + 1, ..me };
        assert!(!recycled.alive(), "a different start time means a different process");
    }

    #[test]
    fn a_reaped_child_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let r = ProcRef::of(child.id() as i32);
        child.wait().expect("wait");
        assert!(r.is_none_or(|r| !r.alive()));
    }

    #[test]
    fn mount_escapes_are_decoded() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/")));
        assert!(mounts().iter().any(|m| m.mount_point == "/"));
    }
}
