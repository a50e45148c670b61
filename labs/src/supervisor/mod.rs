//! The per-lab supervisor (`tartanlab __supervise <lab>`): a detached process that owns every
//! process of a lab. For each node it creates the node's PID namespace and init, then starts the
//! node's services in order — a daemon must be ready (its socket exists, or its port listens,
//! inside the node) before the next starts; a one-shot must finish — honouring `startup-delay`,
//! and finally runs the `exec` lines.
//!
//! It is a child subreaper. Daemons are started detached (see [`crate::enter`]) and adopted:
//! the supervisor signals them directly, reaps them and records their own exit status. Inits
//! are adopted the same way, and a node whose init ends is marked failed. Whatever else ends up
//! its child is reaped too, so nothing lingers as a zombie (this machine's init reaps late).
//!
//! On SIGTERM it stops the daemons (SIGTERM to each process group, SIGKILL after a grace
//! period), kills the inits (which takes down everything left in each node), kills anything
//! else still inside the lab, waits until all of it is reaped, and exits. Progress goes into
//! `/run/tartanlab/labs/<lab>/processes.json`, which deploy polls and inspect reads.

mod services;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use serde::{Deserialize, Serialize};

pub use services::tcp_listening;

use crate::error::{LabError, Result};
use crate::exec::ExecOutput;
use crate::procfs::ProcRef;
use crate::state::{LabState, write_atomic};

/// How long one service may take to become ready (or a one-shot to finish).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long daemons get between SIGTERM and SIGKILL when the lab stops.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long killed processes get to disappear (a node's init first takes its namespace down).
pub const SWEEP_WAIT: Duration = Duration::from_secs(5);
/// The longest an orderly stop takes; destroy waits this long before killing the supervisor.
pub const STOP_TIME: Duration =
    Duration::from_secs(STOP_GRACE.as_secs() + 2 * SWEEP_WAIT.as_secs() + 3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Starting,
    /// Every node is up; the `exec` lines are running.
    Exec,
    Ready,
    Failed,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRun {
    Waiting,
    Starting,
    Ready,
    Idle,
    Failed,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    fn of(status: WaitStatus) -> Option<Exit> {
        match status {
            WaitStatus::Exited(_, code) => Some(Exit { code: Some(code), signal: None }),
            WaitStatus::Signaled(_, signal, _) => {
                Some(Exit { code: None, signal: Some(signal as i32) })
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            _ => write!(f, "ended"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcStatus {
    pub name: String,
    pub proc: ProcRef,
    pub argv: Vec<String>,
    pub log: PathBuf,
    pub oneshot: bool,
    pub started_unix: u64,
    pub exit: Option<Exit>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub state: NodeRun,
    pub error: Option<String>,
    pub processes: Vec<ProcStatus>,
    /// One-shots that failed without stopping the node (`vtysh -b` rejecting a line of
    /// `frr.conf`: the FRR image keeps running with the rest, and so does the node).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The node's init, PID 1 of its PID namespace.
    #[serde(default)]
    pub init: Option<ProcRef>,
}

/// The supervisor's report, as written to `processes.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub supervisor: Option<ProcRef>,
    pub phase: Phase,
    pub nodes: BTreeMap<String, NodeStatus>,
    /// What the `exec` lines did, in order per node.
    #[serde(default)]
    pub exec: Vec<ExecOutput>,
}

impl Status {
    pub fn load(state: &LabState) -> Option<Status> {
        let bytes = std::fs::read(state.status_file()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every process ever started, for destroy.
    pub fn all_processes(&self) -> impl Iterator<Item = &ProcStatus> {
        self.nodes.values().flat_map(|n| n.processes.iter())
    }

    /// The nodes' inits.
    pub fn inits(&self) -> impl Iterator<Item = ProcRef> + '_ {
        self.nodes.values().filter_map(|n| n.init)
    }
}

/// A process the supervisor adopted: it reaps it and records how it ended.
#[derive(Debug, Clone)]
enum Adopted {
    Daemon { node: String },
    Init { node: String },
}

/// The supervisor's children, by who waits for them.
#[derive(Debug, Default)]
struct Children {
    /// Started and waited for through tokio (helpers, one-shots, exec lines): not reaped here.
    awaited: HashSet<i32>,
    /// Adopted daemons and inits, reaped here.
    adopted: HashMap<i32, Adopted>,
    /// Exits reaped before their process was registered (a daemon that died at once).
    early: HashMap<i32, Exit>,
}

/// What every part of the supervisor shares.
#[derive(Debug, Clone)]
struct Sup {
    state: Arc<LabState>,
    status: Arc<Mutex<Status>>,
    file: PathBuf,
    children: Arc<Mutex<Children>>,
}

impl Sup {
    /// Changes the shared status and writes it out.
    fn update(&self, change: impl FnOnce(&mut Status)) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut status);
        if let Ok(json) = serde_json::to_vec_pretty(&*status) {
            if let Err(e) = write_atomic(&self.file, &json) {
                tracing::warn!("cannot write {}: {e}", self.file.display());
            }
        }
    }

    fn node(&self, node: &str, change: impl FnOnce(&mut NodeStatus)) {
        self.update(|s| {
            if let Some(n) = s.nodes.get_mut(node) {
                change(n);
            }
        });
    }

    fn phase(&self) -> Phase {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).phase
    }

    fn children(&self) -> std::sync::MutexGuard<'_, Children> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a child that tokio waits for.
    fn awaiting(&self, pid: i32) {
        self.children().awaited.insert(pid);
    }

    fn awaited(&self, pid: i32) {
        self.children().awaited.remove(&pid);
    }

    /// Adopts a process; returns its exit if it already ended and was reaped.
    fn adopt(&self, pid: i32, what: Adopted) -> Option<Exit> {
        let mut children = self.children();
        let early = children.early.remove(&pid);
        if early.is_none() {
            children.adopted.insert(pid, what);
        }
        early
    }

    /// Reaps every child that ended, except those tokio waits for, and records how each
    /// adopted one ended.
    fn reap(&self) {
        let me = std::process::id() as i32;
        let zombies: Vec<i32> = {
            let children = self.children();
            crate::procfs::zombie_children(me)
                .into_iter()
                .filter(|p| !children.awaited.contains(p))
                .collect()
        };
        for pid in zombies {
            let Ok(status) = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG))
            else {
                continue;
            };
            let Some(exit) = Exit::of(status) else { continue };
            let adopted = self.children().adopted.remove(&pid);
            match adopted {
                Some(Adopted::Daemon { node }) => {
                    tracing::info!(node = %node, pid, "process ended ({exit})");
                    self.node(&node, |n| {
                        if let Some(p) =
                            n.processes.iter_mut().find(|p| p.proc.pid == pid && p.exit.is_none())
                        {
                            p.exit = Some(exit);
                        }
                    });
                }
                Some(Adopted::Init { node }) => self.init_ended(&node, &exit),
                None => {
                    let mut children = self.children();
                    if children.early.len() > 1024 {
                        children.early.clear();
                    }
                    children.early.insert(pid, exit);
                }
            }
        }
    }

    /// A node's init ended: so did every process of the node. Unless the lab is stopping, the
    /// node has failed; its PID namespace can no longer be entered.
    fn init_ended(&self, node: &str, exit: &Exit) {
        if matches!(self.phase(), Phase::Stopping | Phase::Stopped) {
            return;
        }
        tracing::error!(node = %node, "the node's init ended ({exit}); every process of the node is gone");
        let _ = crate::netns::unpin(&self.state.pin(node, "pid"));
        self.node(node, |n| {
            n.state = NodeRun::Failed;
            n.error = Some(format!("its init ended ({exit}): every process of the node is gone; destroy and redeploy the lab"));
        });
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs the supervisor for `lab` until SIGTERM. Called by `tartanlab __supervise`.
pub fn run(lab: &str) -> Result<()> {
    let state =
        LabState::load(lab)?.ok_or_else(|| LabError::NotDeployed { lab: lab.to_string() })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LabError::io("starting the supervisor runtime"))?;
    rt.block_on(supervise(state))
}

async fn supervise(state: LabState) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(LabError::io("installing the SIGTERM handler"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(LabError::io("installing the SIGINT handler"))?;
    let mut chld =
        signal(SignalKind::child()).map_err(LabError::io("installing the SIGCHLD handler"))?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(LabError::sys("becoming a child subreaper"))?;
    let nodes = state
        .nodes
        .iter()
        .map(|n| {
            let status = NodeStatus {
                state: NodeRun::Waiting,
                error: None,
                processes: vec![],
                warnings: vec![],
                init: None,
            };
            (n.name.clone(), status)
        })
        .collect();
    let sup = Sup {
        file: state.status_file(),
        state: Arc::new(state),
        status: Arc::new(Mutex::new(Status {
            supervisor: ProcRef::of(std::process::id() as i32),
            phase: Phase::Starting,
            nodes,
            exec: vec![],
        })),
        children: Arc::default(),
    };
    sup.update(|_| {});

    // Reaps what ended; and if the lab's record disappears (its lab was destroyed without
    // reaching this process), stops the lab rather than living on forever.
    let (orphaned_tx, mut orphaned) = tokio::sync::oneshot::channel::<()>();
    let reaper = {
        let sup = sup.clone();
        let record = sup.state.run_dir().join("state.json");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut orphaned_tx = Some(orphaned_tx);
            loop {
                tokio::select! {
                    _ = chld.recv() => {}
                    _ = tick.tick() => {}
                }
                sup.reap();
                if !record.exists() {
                    if let Some(tx) = orphaned_tx.take() {
                        tracing::warn!("the lab's record is gone; stopping");
                        let _ = tx.send(());
                    }
                }
            }
        })
    };

    let run = {
        let sup = sup.clone();
        async move {
            let mut starters = tokio::task::JoinSet::new();
            for node in sup.state.nodes.clone() {
                let sup = sup.clone();
                starters.spawn(async move { services::start_node(&sup, &node).await });
            }
            let mut ok = true;
            while let Some(res) = starters.join_next().await {
                ok &= matches!(res, Ok(true));
            }
            if !ok {
                sup.update(|s| s.phase = Phase::Failed);
                return;
            }
            sup.update(|s| s.phase = Phase::Exec);
            run_exec_lines(&sup).await;
            sup.update(|s| s.phase = Phase::Ready);
        }
    };
    tokio::select! {
        _ = run => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = &mut orphaned => {}
            }
        }
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = &mut orphaned => {}
    }
    stop_all(&sup).await;
    reaper.abort();
    Ok(())
}

/// Runs every node's `exec` lines: nodes in parallel, each node's lines in order. A failing
/// line does not stop the next (as containerlab); deploy decides whether it fails the lab.
async fn run_exec_lines(sup: &Sup) {
    let timeout = Duration::from_secs(sup.state.exec_timeout_secs);
    let mut nodes = tokio::task::JoinSet::new();
    for node in sup.state.nodes.iter().filter(|n| !n.exec.is_empty()).cloned() {
        let sup = sup.clone();
        nodes.spawn(async move {
            let log_path = sup.state.node_dir(&node.name).join("exec.log");
            for line in &node.exec {
                let mut pid = 0;
                let out = crate::exec::run_async(&sup.state, &node, &line.argv, timeout, |p| {
                    pid = p;
                    sup.awaiting(p);
                })
                .await;
                sup.awaited(pid);
                if out.success() {
                    tracing::info!("{}", out.summary());
                } else {
                    tracing::warn!("{}\n{}{}", out.summary(), out.stdout, out.stderr);
                }
                append(&log_path, &out.log_entry());
                sup.update(|s| s.exec.push(out));
            }
        });
    }
    while nodes.join_next().await.is_some() {}
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Stops the lab: SIGTERM to each daemon's process group and a grace period for them to shut
/// down cleanly, SIGKILL to those still running; then SIGKILL to the inits (each takes its
/// node's remaining processes down) and to everything else still ours or still inside the lab;
/// then waits until all of it is reaped.
async fn stop_all(sup: &Sup) {
    sup.update(|s| s.phase = Phase::Stopping);
    let daemons = || -> Vec<ProcRef> {
        let status = sup.status.lock().unwrap_or_else(|p| p.into_inner());
        status
            .all_processes()
            .filter(|p| !p.oneshot && p.exit.is_none())
            .map(|p| p.proc)
            .filter(ProcRef::alive)
            .collect()
    };
    for p in daemons() {
        p.signal(Signal::SIGTERM, true);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while !daemons().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in daemons() {
        tracing::warn!(
            pid = p.pid,
            "did not stop within {} s of SIGTERM; killing it",
            STOP_GRACE.as_secs()
        );
        p.signal(Signal::SIGKILL, true);
    }
    let me = std::process::id() as i32;
    for p in crate::procfs::children(me).into_iter().filter_map(ProcRef::of).filter(ProcRef::alive)
    {
        p.signal(Signal::SIGKILL, false);
    }
    let (nets, mnts) = sup.state.namespace_inodes();
    match crate::destroy::sweep(&nets, &mnts) {
        Ok(0) => {}
        Ok(n) => tracing::info!("killed {n} process(es) left inside the lab"),
        Err(e) => tracing::error!("{e}"),
    }
    // Whatever tokio was waiting for has been killed with the rest and is ours to reap now.
    sup.children().awaited.clear();
    let deadline = Instant::now() + SWEEP_WAIT;
    loop {
        sup.reap();
        if crate::procfs::children(me).is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sup.update(|s| s.phase = Phase::Stopped);
}
