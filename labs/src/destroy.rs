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
use crate::state::{LabLock, LabState, Phase, known_labs, lab_run_dir};
use crate::supervisor::{STOP_GRACE, Status};
use crate::topology::{self, LoadOptions};

/// What destroy removed.
#[derive(Debug, Clone, Default)]
pub struct DestroyReport {
    pub lab: String,
    /// Processes that had to be killed outside the supervisor's orderly stop.
    pub swept: usize,
    pub namespaces: usize,
    pub lab_dir_removed: Option<PathBuf>,
}

/// Destroys the lab a topology file describes. The lab's record decides what is removed; the
/// file is only needed for the lab's name (and, if there is no record, for the names to sweep).
pub fn destroy_file(
    file: &Path,
    load: &LoadOptions,
    lab_dir_base: Option<&Path>,
    keep_lab_dir: bool,
) -> Result<DestroyReport> {
    let mut load = load.clone();
    load.skip_file_checks = true;
    let topo = topology::load(file, &load)?;
    let lock = LabLock::acquire(&topo.name)?;
    let lab_dir = topo.lab_dir(lab_dir_base);
    let state = match LabState::load(&topo.name)? {
        Some(s) => s,
        None => match LabState::load_file(&lab_dir.join("state.json"))? {
            Some(s) => s,
            None => skeleton(&topo, &lab_dir),
        },
    };
    let report = teardown(&state, keep_lab_dir);
    lock.release_and_remove();
    report
}

/// Destroys a lab by name, from its record.
pub fn destroy_lab(lab: &str, keep_lab_dir: bool) -> Result<DestroyReport> {
    let lock = LabLock::acquire(lab)?;
    let report = teardown_by_name(lab, keep_lab_dir);
    lock.release_and_remove();
    report
}

/// Destroys every lab with a record.
pub fn destroy_all(keep_lab_dir: bool) -> Vec<(String, Result<DestroyReport>)> {
    known_labs()
        .into_iter()
        .map(|lab| {
            let r = destroy_lab(&lab, keep_lab_dir);
            (lab, r)
        })
        .collect()
}

/// Destroys a lab by name; the caller holds its lock.
pub(crate) fn teardown_by_name(lab: &str, keep_lab_dir: bool) -> Result<DestroyReport> {
    let state =
        LabState::load(lab)?.ok_or_else(|| LabError::NotDeployed { lab: lab.to_string() })?;
    teardown(&state, keep_lab_dir)
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
pub(crate) fn teardown(state: &LabState, keep_lab_dir: bool) -> Result<DestroyReport> {
    let mut report = DestroyReport { lab: state.lab.clone(), ..Default::default() };
    let mut marked = state.clone();
    marked.phase = Phase::Destroying;
    if state.run_dir().exists() {
        let _ = marked.save();
    }

    if let Some(sup) = state.supervisor.filter(ProcRef::alive) {
        sup.signal(Signal::SIGTERM, false);
        if !wait_gone(&[sup], STOP_GRACE * 2 + Duration::from_secs(2)) {
            tracing::warn!(pid = sup.pid, "the supervisor did not stop; killing it");
            sup.signal(Signal::SIGKILL, false);
            wait_gone(&[sup], Duration::from_secs(2));
        }
    }
    if let Some(status) = Status::load(state) {
        for p in status.all_processes().map(|p| p.proc).filter(ProcRef::alive) {
            p.signal(Signal::SIGKILL, true);
            report.swept += 1;
        }
    }

    let (nets, mnts) = state.namespace_inodes();
    report.swept += sweep(&nets, &mnts)?;

    let mut first_error = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r {
            tracing::error!("{e}");
            first_error.get_or_insert(e);
        }
    };
    for node in &state.nodes {
        for ns in ["mnt", "uts"] {
            keep(netns::unpin(&state.pin(&node.name, ns)));
        }
        if netns::exists(&node.netns) {
            report.namespaces += 1;
        }
        keep(netns::delete(&node.netns));
    }
    if let Some(mgmt) = &state.mgmt_netns {
        if netns::exists(mgmt) {
            report.namespaces += 1;
        }
        keep(netns::delete(mgmt));
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let run_dir = lab_run_dir(&state.lab);
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir)
            .map_err(LabError::io(format!("removing {}", run_dir.display())))?;
    }
    if !keep_lab_dir && state.lab_dir.exists() && state.lab_dir.join("topology-data.json").exists()
    {
        fs::remove_dir_all(&state.lab_dir)
            .map_err(LabError::io(format!("removing {}", state.lab_dir.display())))?;
        report.lab_dir_removed = Some(state.lab_dir.clone());
    } else if state.lab_dir.exists() {
        let _ = fs::remove_file(state.lab_dir.join("state.json"));
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
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_in(nets, mnts);
        if left.is_empty() {
            return Ok(killed);
        }
        if Instant::now() > deadline {
            let pids: Vec<String> = left.iter().map(|p| p.pid.to_string()).collect();
            return Err(LabError::Timeout {
                what: format!("processes {} in the lab to exit", pids.join(", ")),
                secs: 10,
            });
        }
        for p in &left {
            tracing::debug!(pid = p.pid, "killing a process left in the lab");
            if p.signal(Signal::SIGKILL, false) {
                killed += 1;
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
