//! Bringing one node up: its init first, then each service in order — a detached daemon that is
//! adopted and must become ready, or a one-shot that must finish — after `startup-delay`.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

use super::{Adopted, NodeRun, ProcStatus, READY_TIMEOUT, Sup, now_unix};
use crate::procfs::{ProcRef, ns_inode};
use crate::profile::{Readiness, Service, ServiceKind};
use crate::state::{LabState, NodeState};

/// Starts one node; returns whether it came up.
pub(super) async fn start_node(sup: &Sup, node: &NodeState) -> bool {
    let set = |run: NodeRun, error: Option<String>| {
        sup.node(&node.name, |n| {
            n.state = run;
            n.error = error;
        })
    };
    match start_init(sup, node).await {
        Ok(init) => sup.node(&node.name, |n| n.init = Some(init)),
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
        let started = match service.kind {
            ServiceKind::Daemon { ref ready } => start_daemon(sup, node, service, ready).await,
            ServiceKind::Oneshot => run_oneshot(sup, node, service).await,
        };
        match started {
            Ok(None) => {}
            Ok(Some(warning)) => {
                tracing::warn!(node = %node.name, "{warning}");
                sup.node(&node.name, |n| n.warnings.push(warning));
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

fn log_file(path: &Path) -> Result<std::fs::File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Gives the node its PID namespace and init (see [`crate::pidns`]), checks the init really is
/// ours, pins the namespace and adopts the init.
async fn start_init(sup: &Sup, node: &NodeState) -> Result<ProcRef, String> {
    let ns = crate::enter::NodeNamespaces::of(&sup.state, node);
    let log = sup.state.node_dir(&node.name).join("init.log");
    let mut cmd = tokio::process::Command::new(&sup.state.tartanlab);
    cmd.arg("__pid-init").args(ns.args());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log_file(&log)?).kill_on_drop(true);
    let mut helper = cmd.spawn().map_err(|e| format!("cannot start the node's init: {e}"))?;
    let helper_pid = helper.id().unwrap_or(0) as i32;
    sup.awaiting(helper_pid);
    // The init keeps the helper's stdout open: read its one line, not to the end.
    let mut line = String::new();
    let read = async {
        if let Some(out) = helper.stdout.take() {
            let _ = tokio::io::BufReader::new(out).read_line(&mut line).await;
        }
        helper.wait().await
    };
    let helper_exit = tokio::time::timeout(READY_TIMEOUT, read).await;
    sup.awaited(helper_pid);
    match helper_exit {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => {
            return Err(format!("the node's init failed ({status}); see {}", log.display()));
        }
        Ok(Err(e)) => return Err(format!("waiting for the node's init: {e}")),
        Err(_) => {
            return Err(format!(
                "the node's init did not start within {} s; see {}",
                READY_TIMEOUT.as_secs(),
                log.display()
            ));
        }
    }
    let pid: i32 = line
        .trim()
        .parse()
        .map_err(|_| format!("the node's init helper printed no PID; see {}", log.display()))?;
    // Only pin a namespace whose init is alive, ours, and what we started.
    let me = std::process::id() as i32;
    let init = ProcRef::of(pid)
        .filter(|p| {
            p.alive()
                && crate::procfs::parent(pid) == Some(me)
                && crate::procfs::comm(pid) == crate::pidns::INIT_NAME
        })
        .ok_or_else(|| format!("the node's init ({pid}) is not running; see {}", log.display()))?;
    if let Some(exit) = sup.adopt(pid, Adopted::Init { node: node.name.clone() }) {
        return Err(format!("the node's init ended at once ({exit}); see {}", log.display()));
    }
    crate::netns::pin(pid, "pid", &sup.state.pin(&node.name, "pid")).map_err(|e| e.to_string())?;
    Ok(init)
}

/// Records a started process in the node's status.
fn record(sup: &Sup, node: &NodeState, svc: &Service, proc: ProcRef, log: &Path, oneshot: bool) {
    sup.node(&node.name, |n| {
        n.processes.push(ProcStatus {
            name: svc.name.clone(),
            proc,
            argv: svc.argv.clone(),
            log: log.to_path_buf(),
            oneshot,
            started_unix: now_unix(),
            exit: None,
        })
    });
}

/// The recorded exit of a process of the node, if it has ended.
fn exit_of(sup: &Sup, node: &NodeState, proc: ProcRef) -> Option<super::Exit> {
    let status = sup.status.lock().unwrap_or_else(|p| p.into_inner());
    status.nodes.get(&node.name)?.processes.iter().find(|p| p.proc == proc)?.exit.clone()
}

/// How long a node's own command must keep running to count as started.
const SETTLE: Duration = Duration::from_millis(500);

/// A process that counts as ready once started (a node's own `cmd`) but ends at once: the
/// warning that says so, with the end of its output (a container would have stopped).
async fn ended_at_once(
    sup: &Sup,
    node: &NodeState,
    svc: &Service,
    proc: ProcRef,
    ready: &Readiness,
    log: &Path,
) -> Option<String> {
    if !matches!(ready, Readiness::Started) {
        return None;
    }
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        if let Some(exit) = exit_of(sup, node, proc) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Some(format!(
                "`{}` ended at once ({exit}): nothing runs in the node (a container would have \
                 stopped){}; see {}",
                svc.name,
                if tail.is_empty() { String::new() } else { format!(": {}", tail.join(" / ")) },
                log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Starts a daemon detached, adopts it and waits until it is ready; a warning when it counted
/// as ready but ended at once.
async fn start_daemon(
    sup: &Sup,
    node: &NodeState,
    svc: &Service,
    ready: &Readiness,
) -> Result<Option<String>, String> {
    let log = sup.state.node_dir(&node.name).join(format!("{}.log", svc.name));
    let mut cmd = tokio::process::Command::from(crate::enter::detached_command(
        &sup.state, node, &svc.argv, &log,
    ));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let starter = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", svc.name))?;
    let starter_pid = starter.id().unwrap_or(0) as i32;
    sup.awaiting(starter_pid);
    let started = tokio::time::timeout(READY_TIMEOUT, starter.wait_with_output()).await;
    sup.awaited(starter_pid);
    let out = match started {
        Ok(Ok(out)) if out.status.success() => out,
        Ok(Ok(out)) => {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(format!("cannot start {}: {why}", svc.name));
        }
        Ok(Err(e)) => return Err(format!("cannot start {}: {e}", svc.name)),
        Err(_) => {
            return Err(format!("starting {} took over {} s", svc.name, READY_TIMEOUT.as_secs()));
        }
    };
    let pid: i32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("starting {} printed no PID", svc.name))?;
    let proc = ProcRef::of(pid).unwrap_or(ProcRef { pid, start_time: 0 });
    record(sup, node, svc, proc, &log, false);
    if let Some(exit) = sup.adopt(pid, Adopted::Daemon { node: node.name.clone() }) {
        sup.node(&node.name, |n| {
            if let Some(p) = n.processes.iter_mut().find(|p| p.proc == proc) {
                p.exit = Some(exit.clone());
            }
        });
    }
    let see_log = format!("see {}", log.display());
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(exit) = exit_of(sup, node, proc) {
            return Err(format!("{} ended ({exit}) before it was ready; {see_log}", svc.name));
        }
        if is_ready(ready, pid, &sup.state, node) {
            return Ok(ended_at_once(sup, node, svc, proc, ready, &log).await);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} was not ready after {} s; {see_log}",
                svc.name,
                READY_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a one-shot (attached) to completion: `Ok(None)` on success, `Ok(Some(warning))` when it
/// failed (the node keeps running), `Err` when it could not be run at all.
async fn run_oneshot(sup: &Sup, node: &NodeState, svc: &Service) -> Result<Option<String>, String> {
    let log = sup.state.node_dir(&node.name).join(format!("{}.log", svc.name));
    let mut cmd = tokio::process::Command::from(crate::enter::command(&sup.state, node, &svc.argv));
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(log_file(&log)?)
        .stderr(log_file(&log)?)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", svc.name))?;
    let pid = child.id().unwrap_or(0) as i32;
    sup.awaiting(pid);
    let proc = ProcRef::of(pid).unwrap_or(ProcRef { pid, start_time: 0 });
    record(sup, node, svc, proc, &log, true);
    let ended = tokio::time::timeout(READY_TIMEOUT, child.wait()).await;
    sup.awaited(pid);
    let status = match ended {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(format!("waiting for {}: {e}", svc.name)),
        Err(_) => {
            return Err(format!(
                "{} had not finished after {} s; see {}",
                svc.name,
                READY_TIMEOUT.as_secs(),
                log.display()
            ));
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let exit = super::Exit { code: status.code(), signal: status.signal() };
    sup.node(&node.name, |n| {
        if let Some(p) = n.processes.iter_mut().find(|p| p.proc == proc) {
            p.exit = Some(exit.clone());
        }
    });
    Ok((exit.code != Some(0))
        .then(|| format!("{} failed ({exit}); see {}", svc.name, log.display())))
}

/// Whether the daemon with `pid` is ready. It must be inside the node (a host socket or port is
/// never mistaken for it).
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
        Readiness::BirdSocket(path) => {
            let socket = Path::new(&format!("/proc/{pid}/root"))
                .join(path.strip_prefix("/").unwrap_or(path));
            inside && bird_answers(&socket)
        }
        Readiness::TcpListen(port) => inside && tcp_listening(pid, *port),
    }
}

/// Whether a BIRD answers on its control socket with its greeting (`0001 BIRD ... ready.`).
fn bird_answers(socket: &Path) -> bool {
    use std::io::BufRead;
    let Ok(stream) = std::os::unix::net::UnixStream::connect(socket) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("0001")
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
