//! The record of a deployed lab. It is written *before* anything is created (write-ahead) and
//! updated as deploy goes, so `destroy` can undo a lab from the record alone: after a failed or
//! killed deploy, after a crash, and after the topology file changed or disappeared.
//!
//! The authoritative copy lives in `/run/tartanlab/labs/<lab>/state.json` (on most machines a
//! tmpfs; where it is not, the record's boot id keeps a stale record from signalling anyone);
//! a copy goes into the lab directory for people to read. Mount-namespace pins live beside it, in
//! `/run/tartanlab/labs/<lab>/ns/`, which must be on a private mount.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::procfs::ProcRef;
use crate::profile::{Profile, Service};
use crate::topology::ExecLine;

/// Where lab records, namespace pins and locks live.
pub const RUN_DIR: &str = "/run/tartanlab";

/// [`RUN_DIR`], or `TARTANLAB_RUN_DIR` when set (tests give themselves a private registry, so
/// `destroy --all` sees only their labs).
pub fn run_dir() -> PathBuf {
    std::env::var_os("TARTANLAB_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(RUN_DIR))
}
const STATE_VERSION: u32 = 1;

/// `/run/tartanlab/labs/<lab>`.
pub fn lab_run_dir(lab: &str) -> PathBuf {
    run_dir().join("labs").join(lab)
}

/// Names of every lab with a record.
pub fn known_labs() -> Vec<String> {
    let Ok(dir) = fs::read_dir(run_dir().join("labs")) else { return vec![] };
    let mut labs: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    labs.sort();
    labs
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Deploying,
    Running,
    Destroying,
}

/// Everything about one deployed lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub version: u32,
    pub lab: String,
    /// The lab's run directory (record, pins, supervisor status), fixed at deploy.
    pub run_dir: PathBuf,
    pub topology_file: PathBuf,
    pub lab_dir: PathBuf,
    /// The lab directory was there before the lab was deployed: destroy keeps it unless
    /// `--cleanup` (containerlab's rule).
    #[serde(default)]
    pub lab_dir_existed: bool,
    pub created_unix: u64,
    /// Who deployed it (`SUDO_USER`, else the user name), shown by inspect.
    pub owner: String,
    pub phase: Phase,
    /// The private namespace with the management bridge, when the lab has one.
    pub mgmt_netns: Option<String>,
    /// The `tartanlab` binary that enters nodes and supervises them.
    pub tartanlab: PathBuf,
    pub nodes: Vec<NodeState>,
    pub links: Vec<String>,
    pub supervisor: Option<ProcRef>,
    /// The boot this record was made in; recorded processes of another boot are never
    /// signalled.
    #[serde(default)]
    pub boot_id: String,
    /// Planned namespace names that turned out to exist already (another lab's, someone's):
    /// never ours to sweep or delete.
    #[serde(default)]
    pub not_ours: Vec<String>,
    /// Deadline for each `exec` line.
    #[serde(default = "default_exec_timeout")]
    pub exec_timeout_secs: u64,
}

fn default_exec_timeout() -> u64 {
    60
}

/// One node of a deployed lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    /// The network namespace (`clab-<lab>-<node>`), also the node's "container name".
    pub netns: String,
    pub kind: String,
    pub image: String,
    pub group: String,
    pub profile: Profile,
    pub mgmt_ipv4: Option<String>,
    pub mgmt_ipv6: Option<String>,
    /// The full environment of the node's processes (PATH, HOME, env, labels...).
    pub env: BTreeMap<String, String>,
    pub services: Vec<Service>,
    pub startup_delay_secs: u64,
    pub exec: Vec<ExecLine>,
    pub labels: BTreeMap<String, String>,
}

impl LabState {
    pub fn new(lab: &str, topology_file: &Path, lab_dir: &Path, tartanlab: &Path) -> LabState {
        LabState {
            version: STATE_VERSION,
            lab: lab.to_string(),
            run_dir: lab_run_dir(lab),
            topology_file: topology_file.to_path_buf(),
            lab_dir: lab_dir.to_path_buf(),
            // A directory holding only state.json is one an earlier deploy of this lab left.
            lab_dir_existed: lab_dir.exists() && !lab_dir.join("topology-data.json").exists(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            owner: std::env::var("SUDO_USER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "root".into()),
            phase: Phase::Deploying,
            mgmt_netns: None,
            tartanlab: tartanlab.to_path_buf(),
            nodes: vec![],
            links: vec![],
            supervisor: None,
            boot_id: crate::procfs::boot_id(),
            not_ours: vec![],
            exec_timeout_secs: default_exec_timeout(),
        }
    }

    pub fn run_dir(&self) -> PathBuf {
        self.run_dir.clone()
    }

    /// Where a node's namespace of type `ns` (`mnt`, `uts`) is pinned.
    pub fn pin(&self, node: &str, ns: &str) -> PathBuf {
        self.run_dir().join("ns").join(format!("{node}.{ns}"))
    }

    /// Inodes of the lab's network namespaces and of its nodes' pinned mount namespaces: every
    /// process inside one of them belongs to the lab.
    pub fn namespace_inodes(&self) -> (Vec<u64>, Vec<u64>) {
        let nets = self
            .network_namespaces()
            .iter()
            .filter_map(|n| crate::procfs::ns_inode(&crate::netns::path(n)))
            .collect();
        let mnts = self
            .nodes
            .iter()
            .filter_map(|n| crate::procfs::ns_inode(&self.pin(&n.name, "mnt")))
            .collect();
        (nets, mnts)
    }

    /// The network namespaces this lab made (or was making): its nodes' and the management one.
    pub fn network_namespaces(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.netns.clone())
            .chain(self.mgmt_netns.clone())
            .filter(|n| !self.not_ours.contains(n))
            .collect()
    }

    /// Whether PIDs in this record can be trusted: same boot.
    pub fn same_boot(&self) -> bool {
        self.boot_id.is_empty() || self.boot_id == crate::procfs::boot_id()
    }

    /// The node's log directory inside the lab directory.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.lab_dir.join(node)
    }

    /// The status file the supervisor keeps.
    pub fn status_file(&self) -> PathBuf {
        self.run_dir().join("processes.json")
    }

    pub fn node(&self, name: &str) -> Result<&NodeState> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| LabError::UnknownNode {
            lab: self.lab.clone(),
            node: name.to_string(),
            known: self.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// Writes the record (atomically) and its copy in the lab directory.
    pub fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| LabError::State { path: self.run_dir(), message: e.to_string() })?;
        write_atomic(&self.run_dir().join("state.json"), &json)?;
        if self.lab_dir.is_dir() {
            // The copy is for people; failing to write it must not fail the lab.
            let _ = write_atomic(&self.lab_dir.join("state.json"), &json);
        }
        Ok(())
    }

    /// The record of `lab`, if it is deployed.
    pub fn load(lab: &str) -> Result<Option<LabState>> {
        Self::load_file(&lab_run_dir(lab).join("state.json"))
    }

    /// A record read from any file (the run directory, or the copy in a lab directory).
    pub fn load_file(path: &Path) -> Result<Option<LabState>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(LabError::Io {
                    what: format!("reading {}", path.display()),
                    source: e,
                });
            }
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| LabError::State {
            path: path.to_path_buf(),
            message: format!("unreadable: {e}"),
        })
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        LabError::Io { what: format!("writing {}", path.display()), source: e }
    })
}

/// An exclusive lock on one lab, held while it is deployed or destroyed, so two commands never
/// work on the same lab at once. The holder writes its PID into the file; a waiter gives up
/// after [`LOCK_WAIT`] and names it.
#[derive(Debug)]
pub struct LabLock {
    lock: Flock<File>,
    path: PathBuf,
}

/// How long a command waits for another one working on the same lab.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl LabLock {
    pub fn acquire(lab: &str) -> Result<LabLock> {
        use std::os::unix::fs::MetadataExt;
        let dir = run_dir().join("locks");
        fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
        let path = dir.join(format!("{lab}.lock"));
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(LabError::io(format!("opening {}", path.display())))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(mut lock) => {
                    // The previous holder may have removed the file after we opened it: then
                    // this lock guards nothing, and we start over on the new file.
                    let same = match (lock.metadata(), fs::metadata(&path)) {
                        (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
                        _ => false,
                    };
                    if !same {
                        continue;
                    }
                    let _ = lock.set_len(0);
                    let _ = writeln!(lock, "{}", std::process::id());
                    return Ok(LabLock { lock, path });
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    return Err(LabError::Busy {
                        lab: lab.to_string(),
                        holder: holder.trim().to_string(),
                    });
                }
                Err((_, e)) => {
                    return Err(LabError::Sys {
                        what: format!("locking {}", path.display()),
                        source: e,
                    });
                }
            }
        }
    }

    /// Removes the lock file, then releases the lock (after destroy, nothing of the lab remains;
    /// a waiter notices the file was replaced and retries).
    pub fn release_and_remove(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.lock);
    }
}
