//! Running commands inside nodes: the topology's `exec` lines (run by the supervisor, so what
//! they leave in the background is its child) and ad-hoc commands for tests and tools. Output
//! goes through files, never pipes — an `exec` line that starts a daemon in the background
//! would otherwise hold the pipe open and hang the caller — and every command has a deadline,
//! after which its process group is killed.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::procfs::ProcRef;
use crate::state::{LabState, NodeState};

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

    /// The entry this command leaves in the node's `exec.log`.
    pub fn log_entry(&self) -> String {
        format!("$ {}\n{}{}[{}]\n", self.command, self.stdout, self.stderr, self.summary())
    }

    fn failed_to_start(node: &str, command: &str, error: impl std::fmt::Display) -> ExecOutput {
        ExecOutput {
            node: node.to_string(),
            command: command.to_string(),
            code: None,
            stdout: String::new(),
            stderr: error.to_string(),
            timed_out: false,
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Where a started command's output goes, and how to read it back.
#[derive(Debug)]
pub struct Outputs {
    text: String,
    node: String,
    out: PathBuf,
    err: PathBuf,
}

/// Prepares `argv` to run in `node`, in its own process group, output into fresh files.
pub fn prepare(state: &LabState, node: &NodeState, argv: &[String]) -> Result<(Command, Outputs)> {
    let dir = state.node_dir(&node.name);
    fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let base = format!(".cmd-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    let (out, err) = (dir.join(format!("{base}.out")), dir.join(format!("{base}.err")));
    let create =
        |p: &Path| File::create(p).map_err(LabError::io(format!("creating {}", p.display())));
    let (out_file, err_file) = (create(&out)?, create(&err)?);
    let mut command = crate::enter::command(state, node, argv);
    command.process_group(0).stdin(Stdio::null()).stdout(out_file).stderr(err_file);
    let text = shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "));
    Ok((command, Outputs { text, node: node.name.clone(), out, err }))
}

impl Outputs {
    /// Reads (and removes) the output files. `spawn_error` replaces stderr when the command
    /// could not even start.
    pub fn finish(
        self,
        status: Option<ExitStatus>,
        timed_out: bool,
        spawn_error: Option<String>,
    ) -> ExecOutput {
        let read = |p: &Path| {
            let text =
                fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let _ = fs::remove_file(p);
            text
        };
        let (stdout, stderr) = (read(&self.out), read(&self.err));
        ExecOutput {
            node: self.node,
            command: self.text,
            code: if timed_out { None } else { status.and_then(|s| s.code()) },
            stdout,
            stderr: spawn_error.unwrap_or(stderr),
            timed_out,
        }
    }
}

/// Runs `argv` in `node` and waits for it, at most `timeout`.
pub fn run(
    state: &LabState,
    node: &NodeState,
    argv: &[String],
    timeout: Duration,
) -> Result<ExecOutput> {
    let (mut command, outputs) = prepare(state, node, argv)?;
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return Ok(outputs.finish(None, false, Some(e.to_string()))),
    };
    let proc = ProcRef::of(child.id() as i32);
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().map_err(LabError::io("waiting for a command"))? {
            Some(status) => return Ok(outputs.finish(Some(status), false, None)),
            None if Instant::now() >= deadline => {
                if let Some(p) = proc {
                    p.signal(Signal::SIGKILL, true);
                }
                let status = child.wait().ok();
                return Ok(outputs.finish(status, true, None));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Runs one command under tokio (in the supervisor). `spawned` learns the PID before the
/// command can possibly be waited for, so the supervisor's reaper leaves it alone.
pub async fn run_async(
    state: &LabState,
    node: &NodeState,
    argv: &[String],
    timeout: Duration,
    spawned: impl FnOnce(i32),
) -> ExecOutput {
    let (command, outputs) = match prepare(state, node, argv) {
        Ok(p) => p,
        Err(e) => return ExecOutput::failed_to_start(&node.name, &argv.join(" "), e),
    };
    let mut child = match tokio::process::Command::from(command).spawn() {
        Ok(c) => c,
        Err(e) => return outputs.finish(None, false, Some(e.to_string())),
    };
    let pid = child.id().unwrap_or(0) as i32;
    spawned(pid);
    let proc = ProcRef::of(pid);
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => outputs.finish(status.ok(), false, None),
        Err(_) => {
            if let Some(p) = proc {
                p.signal(Signal::SIGKILL, true);
            }
            let status = child.wait().await.ok();
            outputs.finish(status, true, None)
        }
    }
}
