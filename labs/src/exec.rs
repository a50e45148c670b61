//! Running commands inside nodes: the topology's `exec` lines at deploy, and ad-hoc commands for
//! tests and tools. Output goes through files, never pipes — an `exec` line that starts a
//! daemon in the background would otherwise hold the pipe open and hang the caller — and every
//! command has a deadline, after which its process group is killed.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;

use crate::error::{LabError, Result};
use crate::procfs::ProcRef;
use crate::state::{LabState, NodeState};

/// What a command did.
#[derive(Debug, Clone, Serialize)]
pub struct ExecOutput {
    pub node: String,
    pub command: String,
    /// Exit code; `None` when killed by a signal or timed out.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// One line for logs: `node: `cmd` -> exit 0`.
    pub fn summary(&self) -> String {
        let result = match (self.code, self.timed_out) {
            (_, true) => "timed out".to_string(),
            (Some(c), _) => format!("exit {c}"),
            (None, _) => "killed".to_string(),
        };
        format!("{}: `{}` -> {result}", self.node, self.command)
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Runs `argv` in `node` and waits for it, at most `timeout`.
pub fn run(
    state: &LabState,
    node: &NodeState,
    argv: &[String],
    timeout: Duration,
) -> Result<ExecOutput> {
    let dir = state.node_dir(&node.name);
    fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let base = format!(".cmd-{}-{seq}", std::process::id());
    let (out_path, err_path) = (dir.join(format!("{base}.out")), dir.join(format!("{base}.err")));
    let create =
        |p: &Path| File::create(p).map_err(LabError::io(format!("creating {}", p.display())));
    let (out, err) = (create(&out_path)?, create(&err_path)?);
    let command =
        shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "));
    let mut child = crate::enter::command(state, node, argv)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(LabError::io(format!("starting `{command}` in node {}", node.name)))?;
    let proc = ProcRef::of(child.id() as i32);
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().map_err(LabError::io("waiting for a command"))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                timed_out = true;
                if let Some(p) = proc {
                    p.signal(Signal::SIGKILL, true);
                }
                break child.wait().map_err(LabError::io("waiting for a killed command"))?;
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let read = |p: &Path| {
        let text =
            fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let _ = fs::remove_file(p);
        text
    };
    Ok(ExecOutput {
        node: node.name.clone(),
        command,
        code: if timed_out { None } else { status.code() },
        stdout: read(&out_path),
        stderr: read(&err_path),
        timed_out,
    })
}

/// Runs every node's `exec` lines, nodes in parallel, each node's lines in order, logging
/// each to `<lab>/<node>/exec.log`. A failing line does not stop the next (as containerlab).
pub fn run_exec_lines(state: &LabState, timeout: Duration) -> Vec<ExecOutput> {
    let per_node: Vec<Vec<ExecOutput>> = std::thread::scope(|s| {
        let handles: Vec<_> = state
            .nodes
            .iter()
            .filter(|n| !n.exec.is_empty())
            .map(|node| s.spawn(move || exec_node(state, node, timeout)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    per_node.into_iter().flatten().collect()
}

fn exec_node(state: &LabState, node: &NodeState, timeout: Duration) -> Vec<ExecOutput> {
    let log_path = state.node_dir(&node.name).join("exec.log");
    let mut log = OpenOptions::new().create(true).append(true).open(&log_path).ok();
    let mut outputs = Vec::new();
    for line in &node.exec {
        let out = run(state, node, &line.argv, timeout).unwrap_or_else(|e| ExecOutput {
            node: node.name.clone(),
            command: line.text.clone(),
            code: None,
            stdout: String::new(),
            stderr: e.to_string(),
            timed_out: false,
        });
        if let Some(log) = log.as_mut() {
            let mut entry = format!("$ {}\n{}{}", line.text, out.stdout, out.stderr);
            let _ = writeln!(entry, "[{}]", out.summary());
            let _ = log.write_all(entry.as_bytes());
        }
        if out.success() {
            tracing::info!("{}", out.summary());
        } else {
            tracing::warn!("{}\n{}{}", out.summary(), out.stdout, out.stderr);
        }
        outputs.push(out);
    }
    outputs
}
