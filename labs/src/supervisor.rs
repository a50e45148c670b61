//! The per-lab supervisor (`tartanlab __supervise <lab>`): a detached process that is the parent
//! of every node process, so each one is waited for and its exit recorded. It starts each
//! node's services in order — a daemon must be ready (its socket exists, or its port listens,
//! inside the node) before the next starts; a one-shot must exit 0 — honours `startup-delay`,
//! then runs the `exec` lines. It is a child subreaper: whatever the node processes or `exec`
//! lines leave behind in the background becomes its child and is reaped, never a zombie (this
//! machine's init reaps late). On SIGTERM it stops every process group it started (SIGTERM,
//! then SIGKILL after a grace period), kills anything else still inside the lab, reaps it all,
//! and exits.
//!
//! Progress goes into `/run/tartanlab/labs/<lab>/processes.json`, which deploy polls and
//! inspect reads.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::process::Child;

use crate::error::{LabError, Result};
use crate::exec::ExecOutput;
use crate::procfs::{ProcRef, ns_inode};
use crate::profile::{Readiness, Service, ServiceKind};
use crate::state::{LabState, NodeState, write_atomic};

/// How long one service may take to become ready (or a one-shot to finish).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long processes get between SIGTERM and SIGKILL when the lab stops.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long killed processes left in a lab's namespaces get to disappear.
pub const SWEEP_WAIT: Duration = Duration::from_secs(5);

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

type Shared = Arc<Mutex<Status>>;

/// PIDs the supervisor started itself; tokio waits for those. Anything else that becomes its
/// child is an orphan it adopted as subreaper, and the reaper collects it.
type Known = Arc<Mutex<HashSet<i32>>>;

fn know(known: &Known, pid: i32) {
    known.lock().unwrap_or_else(|p| p.into_inner()).insert(pid);
}

/// Forgets a child that tokio has waited for (its PID may be reused by an adopted orphan).
fn forget(known: &Known, pid: i32) {
    known.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
}

/// Reaps adopted orphans that have exited.
fn reap_orphans(known: &Known) {
    let me = std::process::id() as i32;
    let known = known.lock().unwrap_or_else(|p| p.into_inner());
    let orphans: Vec<i32> =
        crate::procfs::zombie_children(me).into_iter().filter(|p| !known.contains(p)).collect();
    drop(known);
    crate::procfs::reap(&orphans);
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Locks the shared status, changes it, and writes it out.
fn update(shared: &Shared, file: &Path, change: impl FnOnce(&mut Status)) {
    let mut status = shared.lock().unwrap_or_else(|p| p.into_inner());
    change(&mut status);
    if let Ok(json) = serde_json::to_vec_pretty(&*status) {
        if let Err(e) = write_atomic(file, &json) {
            tracing::warn!("cannot write {}: {e}", file.display());
        }
    }
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
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(
            "cannot become a child subreaper ({e}); background processes of exec lines may linger as zombies"
        );
    }
    let file = state.status_file();
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
    let shared: Shared = Arc::new(Mutex::new(Status {
        supervisor: ProcRef::of(std::process::id() as i32),
        phase: Phase::Starting,
        nodes,
        exec: vec![],
    }));
    let known: Known = Arc::default();
    update(&shared, &file, |_| {});

    // Reaps adopted orphans; and if the lab's record disappears (its lab was destroyed without
    // reaching this process), stops the lab rather than living on forever.
    let (orphaned_tx, mut orphaned) = tokio::sync::oneshot::channel::<()>();
    let reaper = {
        let known = known.clone();
        let record = state.run_dir().join("state.json");
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut orphaned_tx = Some(orphaned_tx);
            loop {
                tokio::select! {
                    _ = chld.recv() => {}
                    _ = tick.tick() => {}
                }
                reap_orphans(&known);
                if !record.exists() {
                    if let Some(tx) = orphaned_tx.take() {
                        tracing::warn!("the lab's record is gone; stopping");
                        let _ = tx.send(());
                    }
                }
            }
        })
    };

    let state = Arc::new(state);
    let run = {
        let (state, shared, file, known) =
            (state.clone(), shared.clone(), file.clone(), known.clone());
        async move {
            let mut starters = tokio::task::JoinSet::new();
            for node in state.nodes.clone() {
                let (state, shared, file, known) =
                    (state.clone(), shared.clone(), file.clone(), known.clone());
                starters
                    .spawn(async move { start_node(&state, &node, &shared, &file, &known).await });
            }
            let mut ok = true;
            while let Some(res) = starters.join_next().await {
                ok &= matches!(res, Ok(true));
            }
            if !ok {
                update(&shared, &file, |s| s.phase = Phase::Failed);
                return;
            }
            update(&shared, &file, |s| s.phase = Phase::Exec);
            run_exec_lines(&state, &shared, &file, &known).await;
            update(&shared, &file, |s| s.phase = Phase::Ready);
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
    stop_all(&state, &shared, &file, &known).await;
    reaper.abort();
    reap_orphans(&known);
    Ok(())
}

/// Runs every node's `exec` lines: nodes in parallel, each node's lines in order. A failing
/// line does not stop the next (as containerlab); deploy decides whether it fails the lab.
async fn run_exec_lines(state: &Arc<LabState>, shared: &Shared, file: &Path, known: &Known) {
    let timeout = Duration::from_secs(state.exec_timeout_secs);
    let mut nodes = tokio::task::JoinSet::new();
    for node in state.nodes.iter().filter(|n| !n.exec.is_empty()).cloned() {
        let (state, shared, file, known) =
            (state.clone(), shared.clone(), file.to_path_buf(), known.clone());
        nodes.spawn(async move {
            let log_path = state.node_dir(&node.name).join("exec.log");
            for line in &node.exec {
                let mut pid = 0;
                let out = crate::exec::run_async(&state, &node, &line.argv, timeout, |p| {
                    pid = p;
                    know(&known, p);
                })
                .await;
                forget(&known, pid);
                if out.success() {
                    tracing::info!("{}", out.summary());
                } else {
                    tracing::warn!("{}\n{}{}", out.summary(), out.stdout, out.stderr);
                }
                append(&log_path, &out.log_entry());
                update(&shared, &file, |s| s.exec.push(out));
            }
        });
    }
    while nodes.join_next().await.is_some() {}
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Starts one node's services in order; returns whether all came up.
async fn start_node(
    state: &LabState,
    node: &NodeState,
    shared: &Shared,
    file: &Path,
    known: &Known,
) -> bool {
    let set = |run: NodeRun, error: Option<String>| {
        update(shared, file, |s| {
            if let Some(n) = s.nodes.get_mut(&node.name) {
                n.state = run;
                n.error = error;
            }
        })
    };
    match start_init(state, node, known).await {
        Ok(init) => update(shared, file, |s| {
            if let Some(n) = s.nodes.get_mut(&node.name) {
                n.init = Some(init);
            }
        }),
        Err(e) => {
            tracing::error!(node = %node.name, "{e}");
            set(NodeRun::Failed, Some(e));
            return false;
        }
    }
    if node.startup_delay_secs > 0 {
        tokio::time::sleep(Duration::from_secs(node.startup_delay_secs)).await;
    }
    if node.services.is_empty() {
        set(NodeRun::Idle, None);
        return true;
    }
    set(NodeRun::Starting, None);
    for service in &node.services {
        match start_service(state, node, service, shared, file, known).await {
            Ok(None) => {}
            Ok(Some(warning)) => {
                tracing::warn!(node = %node.name, "{warning}");
                update(shared, file, |s| {
                    if let Some(n) = s.nodes.get_mut(&node.name) {
                        n.warnings.push(warning);
                    }
                });
            }
            Err(e) => {
                tracing::error!(node = %node.name, "{e}");
                set(NodeRun::Failed, Some(e));
                return false;
            }
        }
    }
    set(NodeRun::Ready, None);
    true
}

/// Gives the node its PID namespace and init (see [`crate::pidns`]) and pins the namespace.
/// The init ends up this process's child: the helper that starts it exits at once.
async fn start_init(state: &LabState, node: &NodeState, known: &Known) -> Result<ProcRef, String> {
    let ns = crate::enter::NodeNamespaces::of(state, node);
    let log = state.node_dir(&node.name).join("init.log");
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut cmd = tokio::process::Command::new(&state.tartanlab);
    cmd.arg("__pid-init")
        .arg("--net")
        .arg(&ns.net)
        .arg("--mnt")
        .arg(&ns.mnt)
        .arg("--uts")
        .arg(&ns.uts);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(err);
    let child = cmd.spawn().map_err(|e| format!("cannot start the node's init: {e}"))?;
    let helper = child.id().unwrap_or(0) as i32;
    know(known, helper);
    let output = tokio::time::timeout(READY_TIMEOUT, child.wait_with_output()).await;
    forget(known, helper);
    let output = match output {
        Ok(Ok(o)) if o.status.success() => o,
        Ok(Ok(o)) => {
            return Err(format!("the node's init failed ({}); see {}", o.status, log.display()));
        }
        Ok(Err(e)) => return Err(format!("waiting for the node's init: {e}")),
        Err(_) => {
            return Err(format!(
                "the node's init did not start within {} s",
                READY_TIMEOUT.as_secs()
            ));
        }
    };
    let pid: i32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("the node's init helper printed no PID; see {}", log.display()))?;
    let init = ProcRef::of(pid)
        .ok_or_else(|| format!("the node's init ({pid}) died at once; see {}", log.display()))?;
    crate::netns::pin(pid, "pid", &state.pin(&node.name, "pid")).map_err(|e| e.to_string())?;
    Ok(init)
}

/// Starts one service: `Ok(None)` when it is up (or a one-shot succeeded), `Ok(Some(warning))`
/// when a one-shot failed, `Err` when the node cannot run.
async fn start_service(
    state: &LabState,
    node: &NodeState,
    svc: &Service,
    shared: &Shared,
    file: &Path,
    known: &Known,
) -> Result<Option<String>, String> {
    let log = state.node_dir(&node.name).join(format!("{}.log", svc.name));
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut cmd = tokio::process::Command::from(crate::enter::command(state, node, &svc.argv));
    cmd.process_group(0).stdin(std::process::Stdio::null()).stdout(out).stderr(err);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", svc.name))?;
    let pid = child.id().unwrap_or(0) as i32;
    know(known, pid);
    let proc = ProcRef::of(pid).unwrap_or(ProcRef { pid, start_time: 0 });
    let oneshot = matches!(svc.kind, ServiceKind::Oneshot);
    update(shared, file, |s| {
        if let Some(n) = s.nodes.get_mut(&node.name) {
            n.processes.push(ProcStatus {
                name: svc.name.clone(),
                proc,
                argv: svc.argv.clone(),
                log: log.clone(),
                oneshot,
                started_unix: now_unix(),
                exit: None,
            });
        }
    });
    let see_log = format!("see {}", log.display());
    let deadline = Instant::now() + READY_TIMEOUT;
    let result = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let exit = record_exit(shared, file, &node.name, proc, status);
                forget(known, pid);
                return match (oneshot, exit.code) {
                    (true, Some(0)) => Ok(None),
                    (true, _) => Ok(Some(format!("{} failed ({exit}); {see_log}", svc.name))),
                    (false, _) => {
                        Err(format!("{} ended ({exit}) before it was ready; {see_log}", svc.name))
                    }
                };
            }
            Ok(None) => {}
            Err(e) => break Err(format!("waiting for {}: {e}", svc.name)),
        }
        if let ServiceKind::Daemon { ready } = &svc.kind {
            if is_ready(ready, pid, state, node) {
                break Ok(None);
            }
        }
        if Instant::now() > deadline {
            let what = if oneshot { "had not finished" } else { "was not ready" };
            break Err(format!(
                "{} {what} after {} s; {see_log}",
                svc.name,
                READY_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    watch(child, shared.clone(), file.to_path_buf(), node.name.clone(), proc, known.clone());
    result
}

/// Reaps the child when it ends and records how.
fn watch(
    mut child: Child,
    shared: Shared,
    file: PathBuf,
    node: String,
    proc: ProcRef,
    known: Known,
) {
    tokio::spawn(async move {
        if let Ok(status) = child.wait().await {
            forget(&known, proc.pid);
            let exit = record_exit(&shared, &file, &node, proc, status);
            tracing::info!(node = %node, pid = proc.pid, "process ended ({exit})");
        }
    });
}

fn record_exit(
    shared: &Shared,
    file: &Path,
    node: &str,
    proc: ProcRef,
    status: std::process::ExitStatus,
) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    let exit = Exit { code: status.code(), signal: status.signal() };
    update(shared, file, |s| {
        if let Some(p) =
            s.nodes.get_mut(node).and_then(|n| n.processes.iter_mut().find(|p| p.proc == proc))
        {
            p.exit = Some(exit.clone());
        }
    });
    exit
}

/// Whether the daemon with `pid` is ready. The process must already be inside the node (it
/// starts as `tartanlab __nsexec` on the host), so a host socket is never mistaken for it.
fn is_ready(ready: &Readiness, pid: i32, state: &LabState, node: &NodeState) -> bool {
    let proc_ns = |ns: &str| ns_inode(Path::new(&format!("/proc/{pid}/ns/{ns}")));
    let inside =
        proc_ns("mnt").is_some() && proc_ns("mnt") == ns_inode(&state.pin(&node.name, "mnt"));
    match ready {
        Readiness::Started => true,
        Readiness::UnixSocket(path) => {
            inside
                && Path::new(&format!("/proc/{pid}/root"))
                    .join(path.strip_prefix("/").unwrap_or(path))
                    .exists()
        }
        Readiness::TcpListen(port) => inside && tcp_listening(pid, *port),
    }
}

/// Whether something listens on TCP `port` in the network namespace of `pid`.
pub fn tcp_listening(pid: i32, port: u16) -> bool {
    ["tcp", "tcp6"].iter().any(|f| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields
                    .get(1)
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                local_port == Some(port) && fields.get(3) == Some(&"0A")
            })
        })
    })
}

/// Stops every process still running: SIGTERM to each process group, SIGKILL after the grace;
/// then kills whatever else is still inside the lab (daemons an `exec` line left behind) and
/// reaps it — those are the supervisor's children, as subreaper.
async fn stop_all(state: &LabState, shared: &Shared, file: &Path, known: &Known) {
    update(shared, file, |s| s.phase = Phase::Stopping);
    let running = || -> Vec<ProcRef> {
        let status = shared.lock().unwrap_or_else(|p| p.into_inner());
        status
            .all_processes()
            .filter(|p| p.exit.is_none())
            .map(|p| p.proc)
            .filter(ProcRef::alive)
            .collect()
    };
    // Our own children — daemons, exec lines still running, adopted orphans — and their
    // process groups.
    let children = || -> Vec<ProcRef> {
        crate::procfs::children(std::process::id() as i32)
            .into_iter()
            .filter_map(ProcRef::of)
            .filter(ProcRef::alive)
            .collect()
    };
    for p in running().into_iter().chain(children()) {
        p.signal(Signal::SIGTERM, true);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while !running().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in running().into_iter().chain(children()) {
        tracing::warn!(pid = p.pid, "did not stop after SIGTERM; killing it");
        p.signal(Signal::SIGKILL, true);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while !running().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (nets, mnts) = state.namespace_inodes();
    match crate::destroy::sweep(&nets, &mnts) {
        Ok(0) => {}
        Ok(n) => tracing::info!("killed {n} process(es) left inside the lab"),
        Err(e) => tracing::error!("{e}"),
    }
    // Wait until every child — daemons, exec lines, adopted orphans, the nodes' inits (which
    // first take their PID namespaces down) — has ended and been reaped, so none is left for
    // init to find after this process exits.
    let me = std::process::id() as i32;
    let deadline = Instant::now() + SWEEP_WAIT;
    while !crate::procfs::children(me).is_empty() && Instant::now() < deadline {
        reap_orphans(known);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    update(shared, file, |s| s.phase = Phase::Stopped);
}
