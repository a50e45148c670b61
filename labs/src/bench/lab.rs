//! A lab deployed for one benchmark run: shell commands in its nodes, polling with a deadline,
//! and teardown on drop (the files kept when asked, or when the run went wrong).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::deploy::{DeployOptions, deploy};
use crate::error::{LabError, Result};
use crate::state::LabState;

/// A deployed bench lab, destroyed on drop.
pub(crate) struct BenchLab {
    pub state: LabState,
    /// The run's directory: the topology, the files it binds, the lab directory.
    pub dir: PathBuf,
    /// Keep `dir` after the lab is destroyed.
    pub keep: bool,
    supervisor: Option<std::process::Child>,
}

impl BenchLab {
    /// Deploys `topo`, its lab directory under `dir`; exec lines must succeed.
    pub fn deploy(tartanlab: &Path, dir: &Path, topo: &Path) -> Result<BenchLab> {
        let mut opts = DeployOptions::new(tartanlab.to_path_buf());
        opts.lab_dir_base = Some(dir.to_path_buf());
        opts.strict_exec = true;
        let deployed = deploy(topo, &opts)?;
        Ok(BenchLab {
            state: deployed.state,
            dir: dir.to_path_buf(),
            keep: false,
            supervisor: deployed.supervisor,
        })
    }

    /// Runs a bash script in a node: its stdout, or an error with its stderr.
    pub fn sh(&self, node: &str, script: &str, timeout: Duration) -> Result<String> {
        let n = self.state.node(node)?;
        let argv = vec!["bash".to_string(), "-c".to_string(), script.to_string()];
        let out = crate::exec::run(&self.state, n, &argv, timeout)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(LabError::Usage {
                message: format!(
                    "{node}: `{script}` failed ({}): {}",
                    out.summary(),
                    out.stderr.trim()
                ),
            })
        }
    }

    /// Polls `f` every 200 ms until it says yes, or fails after `timeout`; an error from `f`
    /// ends the wait.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if f()? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LabError::Usage {
                    message: format!("timed out after {} s waiting for {what}", timeout.as_secs()),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for BenchLab {
    fn drop(&mut self) {
        let lab = self.state.lab.clone();
        if let Err(e) = crate::destroy::destroy_lab(&lab, self.keep) {
            eprintln!("bench: destroying {lab}: {e}");
        }
        if let Some(mut c) = self.supervisor.take() {
            let _ = c.wait();
        }
        if self.keep {
            eprintln!("bench: files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
