//! Destroying a lab from its record alone — after a clean deploy, a failed one, a crash, or a
//! topology file that changed or vanished:
//!
//! 1. stop the supervisor (it stops its children: SIGTERM, then SIGKILL);
//! 2. kill any recorded process that is still the one we started;
//! 3. sweep: kill every process still inside one of the lab's network or mount namespaces
//!    (daemons an `exec` line forked, a shell someone left in a node), by PID, never by group;
//! 4. unpin the nodes' mount and UTS namespaces and delete the network namespaces — their
//!    veths and the management bridge go with them;
//! 5. remove the record and, unless asked to keep it, the lab directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{LabError, Result};
use crate::netns;
use crate::procfs::{ProcRef, processes_in};
use crate::state::{LabLock, LabState, Phase, known_labs};
use crate::supervisor::{STOP_TIME, SWEEP_WAIT, Status};
use crate::topology::{self, LoadOptions};

/// What destroy removed.
#[derive(Debug, Clone, Default)]
pub struct DestroyReport {
    pub lab: String,
    /// Processes that had to be killed outside the supervisor's orderly stop.
    pub swept: usize,
    pub namespaces: usize,
    pub lab_dir_removed: Option<PathBuf>,
    /// The lab directory left in place (it existed before the lab, or `--keep-lab-dir`).
    pub lab_dir_kept: Option<PathBuf>,
    /// False when there was nothing to destroy.
    pub was_deployed: bool,
}

impl DestroyReport {
    fn not_deployed(lab: &str) -> DestroyReport {
        DestroyReport { lab: lab.to_string(), ..Default::default() }
    }
}

/// What destroy does with the lab directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabDir {
    /// Keep it (`--keep-lab-dir`, or a rollback that leaves the logs).
    Keep,
    /// Remove it, unless it existed before the lab was deployed (containerlab's default).
    Auto,
    /// Remove it whatever (`--cleanup`).
    Cleanup,
}

impl From<bool> for LabDir {
    /// `true`: keep it; `false`: the default.
    fn from(keep: bool) -> LabDir {
        if keep { LabDir::Keep } else { LabDir::Auto }
    }
}

/// Destroys the lab a topology file describes. The lab's record decides what is removed; the
/// file is only needed for the lab's name — read leniently, so a file that has since become
/// invalid still works. Without a record nothing is removed unless `force`, which then removes
/// every namespace the (valid) file names.
pub fn destroy_file(
    file: &Path,
    load: &LoadOptions,
    lab_dir_base: Option<&Path>,
    keep_lab_dir: impl Into<LabDir>,
    force: bool,
) -> Result<DestroyReport> {
    let keep_lab_dir = keep_lab_dir.into();
    let name = topology::lab_name(file, load)?;
    let lock = LabLock::acquire(&name)?;
    let record = match LabState::load(&name) {
        Ok(Some(s)) => Some(s),
        Ok(None) | Err(_) => {
            let mut load = load.clone();
            load.skip_file_checks = true;
            let topo = topology::load(file, &load).ok();
            let lab_dir = topo.as_ref().map(|t| t.lab_dir(lab_dir_base));
            match lab_dir.map(|d| LabState::load_file(&d.join("state.json"))) {
                Some(Ok(Some(s))) => Some(s),
                _ if force => topo.as_ref().map(|t| skeleton(t, &t.lab_dir(lab_dir_base))),
                _ => None,
            }
        }
    };
    let Some(state) = record else {
        lock.release_and_remove();
        // Nothing recorded and nothing of the lab on the machine: it is simply not deployed,
        // which is fine for destroy (as containerlab; `destroy; deploy` scripts rely on it).
        // Namespaces with its names but no record: someone's, or a wiped record — ask.
        let mut load = load.clone();
        load.skip_file_checks = true;
        let names = topology::load(file, &load).ok().map(|t| {
            t.nodes.iter().map(|n| n.long_name.clone()).chain([t.mgmt_netns()]).collect::<Vec<_>>()
        });
        return match names {
            Some(names) if !names.iter().any(|n| netns::exists(n)) => {
                let mut report = DestroyReport::not_deployed(&name);
                // `--cleanup` of a lab that is not running still removes its directory (what
                // a failed deploy left, for one), as containerlab's does.
                if keep_lab_dir == LabDir::Cleanup {
                    let dir = topology::load(file, &load).ok().map(|t| t.lab_dir(lab_dir_base));
                    if let Some(dir) = dir.filter(|d| d.exists()) {
                        fs::remove_dir_all(&dir)
                            .map_err(LabError::io(format!("removing {}", dir.display())))?;
                        report.lab_dir_removed = Some(dir);
                    }
                }
                Ok(report)
            }
            _ => Err(LabError::NoRecord { lab: name }),
        };
    };
    let report = teardown(&state, keep_lab_dir);
    lock.release_and_remove();
    report
}

/// Destroys a lab by name, from its record.
pub fn destroy_lab(lab: &str, keep_lab_dir: impl Into<LabDir>) -> Result<DestroyReport> {
    let keep_lab_dir = keep_lab_dir.into();
    let lock = LabLock::acquire(lab)?;
    let report = teardown_by_name(lab, keep_lab_dir);
    lock.release_and_remove();
    report
}

/// Destroys every lab with a record.
pub fn destroy_all(keep_lab_dir: impl Into<LabDir>) -> Vec<(String, Result<DestroyReport>)> {
    let keep_lab_dir = keep_lab_dir.into();
    known_labs()
        .into_iter()
        .map(|lab| {
            let r = destroy_lab(&lab, keep_lab_dir);
            (lab, r)
        })
        .collect()
}

/// Destroys a lab by name; the caller holds its lock. A lab with no record is not deployed:
/// nothing to do.
pub(crate) fn teardown_by_name(lab: &str, keep_lab_dir: LabDir) -> Result<DestroyReport> {
    match LabState::load(lab)? {
        Some(state) => teardown(&state, keep_lab_dir),
        None => Ok(DestroyReport::not_deployed(lab)),
    }
}

/// A record for a lab whose own record is gone: every name the topology implies.
fn skeleton(topo: &topology::Topology, lab_dir: &Path) -> LabState {
    let mut state = LabState::new(&topo.name, &topo.file, lab_dir, Path::new(""));
    state.mgmt_netns = Some(topo.mgmt_netns());
    state.nodes = topo
        .nodes
        .iter()
        .map(|n| crate::state::NodeState {
            name: n.name.clone(),
            netns: n.long_name.clone(),
            kind: n.kind.clone(),
            image: n.image.clone(),
            group: n.group.clone(),
            profile: n.profile,
            mgmt_ipv4: None,
            mgmt_ipv6: None,
            env: Default::default(),
            services: vec![],
            startup_delay_secs: 0,
            exec: vec![],
            labels: Default::default(),
        })
        .collect();
    state
}

/// Removes everything the record lists; the caller holds the lab's lock.
pub(crate) fn teardown(state: &LabState, keep_lab_dir: LabDir) -> Result<DestroyReport> {
    let mut report =
        DestroyReport { lab: state.lab.clone(), was_deployed: true, ..Default::default() };
    let mut marked = state.clone();
    marked.phase = Phase::Destroying;
    if state.run_dir().exists() {
        let _ = marked.save();
    }

    // Recorded processes are ours only in the boot that recorded them.
    if state.same_boot() {
        let status = Status::load(state);
        // The deployer records the supervisor after starting it; the supervisor records itself
        // first thing. Either record finds it.
        let mut supervisors: Vec<ProcRef> = state
            .supervisor
            .into_iter()
            .chain(status.as_ref().and_then(|s| s.supervisor))
            .collect();
        supervisors.dedup();
        for sup in supervisors.into_iter().filter(ProcRef::alive) {
            sup.signal(Signal::SIGTERM, false);
            if !wait_gone(&[sup], STOP_TIME) {
                tracing::warn!(pid = sup.pid, "the supervisor did not stop; killing it");
                sup.signal(Signal::SIGKILL, false);
                wait_gone(&[sup], Duration::from_secs(2));
            }
        }
        if let Some(status) = status {
            for p in status.all_processes().map(|p| p.proc).filter(ProcRef::alive) {
                p.signal(Signal::SIGKILL, true);
                report.swept += 1;
            }
            // A node's init takes every process of its PID namespace with it.
            for init in status.inits().filter(ProcRef::alive) {
                init.signal(Signal::SIGKILL, false);
                report.swept += 1;
            }
        }
    }

    let (nets, mnts) = state.namespace_inodes();
    report.swept += sweep(&nets, &mnts)?;
    // A dying init leaves its namespaces first, then waits for everything in its PID namespace:
    // only once it has exited is the node really gone.
    if state.same_boot() {
        let inits: Vec<ProcRef> =
            Status::load(state).map(|s| s.inits().collect()).unwrap_or_default();
        wait_gone(&inits, SWEEP_WAIT);
    }

    let mut first_error = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r {
            tracing::error!("{e}");
            first_error.get_or_insert(e);
        }
    };
    // The nodes' cgroup branches, with whatever a runtime in a node created below them.
    let nodes: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    keep(crate::cgroups::remove_branches(&state.lab, &nodes));
    for node in &state.nodes {
        for ns in ["mnt", "uts", "pid"] {
            keep(netns::unpin(&state.pin(&node.name, ns)));
        }
    }
    for name in state.network_namespaces() {
        if netns::exists(&name) {
            report.namespaces += 1;
        }
        keep(netns::delete(&name));
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let run_dir = state.run_dir();
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir)
            .map_err(LabError::io(format!("removing {}", run_dir.display())))?;
    }
    let remove = match keep_lab_dir {
        LabDir::Keep => false,
        LabDir::Auto => !state.lab_dir_existed,
        LabDir::Cleanup => true,
    };
    if remove && state.lab_dir.exists() && state.lab_dir.join("topology-data.json").exists() {
        fs::remove_dir_all(&state.lab_dir)
            .map_err(LabError::io(format!("removing {}", state.lab_dir.display())))?;
        report.lab_dir_removed = Some(state.lab_dir.clone());
    } else if state.lab_dir.exists() {
        let _ = fs::remove_file(state.lab_dir.join("state.json"));
        report.lab_dir_kept = Some(state.lab_dir.clone());
    }
    tracing::info!(
        "destroyed lab {} ({} namespaces, {} stray processes killed)",
        state.lab,
        report.namespaces,
        report.swept
    );
    Ok(report)
}

/// Kills every process inside the namespaces and waits until none is left.
pub(crate) fn sweep(nets: &[u64], mnts: &[u64]) -> Result<usize> {
    let mut killed = std::collections::HashSet::new();
    let deadline = Instant::now() + SWEEP_WAIT;
    loop {
        let left = processes_in(nets, mnts);
        if left.is_empty() {
            return Ok(killed.len());
        }
        if Instant::now() > deadline {
            let pids: Vec<String> = left.iter().map(|p| p.pid.to_string()).collect();
            return Err(LabError::Timeout {
                what: format!("processes {} in the lab to exit", pids.join(", ")),
                secs: SWEEP_WAIT.as_secs(),
            });
        }
        for p in &left {
            tracing::debug!(pid = p.pid, "killing a process left in the lab");
            if p.signal(Signal::SIGKILL, false) {
                killed.insert(p.pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_gone(procs: &[ProcRef], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while procs.iter().any(ProcRef::alive) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
