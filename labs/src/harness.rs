//! A lab for Rust tests: deploy a topology file under a unique name (parallel tests never
//! collide), run commands in its nodes, poll conditions until a deadline (never a fixed sleep),
//! and tear everything down when the lab is dropped — also when the test panics. A failing
//! test keeps its lab directory (logs, `exec.log`, daemon output) and says where it is.
//!
//! ```no_run
//! use std::time::Duration;
//! use tartan_labs::harness::TestLab;
//!
//! let lab = TestLab::deploy("containerlab/routers.clab.yml");
//! let out = lab.wait_for("BGP to come up", Duration::from_secs(30), || {
//!     let o = lab.sh("bird", "birdc show protocols");
//!     if o.stdout.contains("Established") { Ok(o.stdout) } else { Err(o.stdout) }
//! });
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::deploy::{DeployOptions, Deployed, deploy};
use crate::error::Result;
use crate::exec::ExecOutput;
use crate::procfs::{ProcRef, ns_inode, processes_in};
use crate::state::LabState;
use crate::supervisor::Status;
use crate::topology::Topology;

/// Whether lab tests can run here. They need root; without it they fail loudly, unless
/// `TARTAN_SKIP_LAB_TESTS=1` says to skip them (then this prints why and returns false).
pub fn lab_tests_enabled() -> bool {
    tartan_felix::netns::root_tests_enabled()
}

/// The `tartanlab` binary: `TARTANLAB_BIN`, else next to the running test binary's directory
/// (`target/<profile>/tartanlab` for a test in `target/<profile>/deps/`).
pub fn tartanlab_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TARTANLAB_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("tartanlab");
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build -p tartan-labs` (or set TARTANLAB_BIN)",
        bin.display()
    );
    bin
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How to deploy a test lab.
#[derive(Debug, Clone)]
pub struct TestLabBuilder {
    file: PathBuf,
    vars: BTreeMap<String, String>,
    strict_exec: bool,
}

impl TestLabBuilder {
    /// A `${VAR}` value for the topology file.
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }

    /// Let `exec` lines fail without failing the deploy (the default is strict).
    pub fn lenient_exec(mut self) -> Self {
        self.strict_exec = false;
        self
    }

    pub fn try_deploy(self) -> Result<TestLab> {
        let file = std::path::absolute(&self.file).unwrap_or(self.file.clone());
        let probe = crate::topology::load(
            &file,
            &crate::topology::LoadOptions {
                vars: self.vars.clone(),
                skip_file_checks: true,
                ..Default::default()
            },
        )?;
        let name = format!(
            "{}-{}-{}",
            probe.name,
            std::process::id() % 100_000,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut opts = DeployOptions::new(tartanlab_bin());
        opts.load.vars = self.vars;
        opts.load.name = Some(name);
        opts.lab_dir_base = Some(std::env::temp_dir().join("tartanlab-tests"));
        opts.strict_exec = self.strict_exec;
        // Processes a test leaves in the background become this process's children, so they
        // can be reaped at teardown instead of lingering as zombies under init.
        let _ = nix::sys::prctl::set_child_subreaper(true);
        let Deployed { state, topology, supervisor, exec, .. } = deploy(&file, &opts)?;
        Ok(TestLab { state, topology, supervisor, exec, destroyed: false })
    }

    /// Deploys, panicking with the full error on failure.
    pub fn deploy(self) -> TestLab {
        let file = self.file.clone();
        self.try_deploy().unwrap_or_else(|e| panic!("deploying {} failed:\n{e}", file.display()))
    }
}

/// A deployed lab, destroyed on drop.
#[derive(Debug)]
pub struct TestLab {
    state: LabState,
    topology: Topology,
    supervisor: Option<Child>,
    exec: Vec<ExecOutput>,
    destroyed: bool,
}

impl TestLab {
    pub fn builder(file: impl AsRef<Path>) -> TestLabBuilder {
        TestLabBuilder {
            file: file.as_ref().to_path_buf(),
            vars: BTreeMap::new(),
            strict_exec: true,
        }
    }

    pub fn deploy(file: impl AsRef<Path>) -> TestLab {
        Self::builder(file).deploy()
    }

    /// The lab's (unique) name.
    pub fn name(&self) -> &str {
        &self.state.lab
    }

    pub fn state(&self) -> &LabState {
        &self.state
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// What the topology's `exec` lines did at deploy.
    pub fn exec_results(&self) -> &[ExecOutput] {
        &self.exec
    }

    /// The network namespace of `node`, for `ip netns exec`.
    pub fn netns(&self, node: &str) -> String {
        self.node(node).netns.clone()
    }

    fn node(&self, node: &str) -> &crate::state::NodeState {
        self.state.node(node).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `argv` in `node` (30 s deadline).
    pub fn exec(&self, node: &str, argv: &[&str]) -> ExecOutput {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        crate::exec::run(&self.state, self.node(node), &argv, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("running {argv:?} in {node}: {e}"))
    }

    /// Runs a shell command line in `node`.
    pub fn sh(&self, node: &str, script: &str) -> ExecOutput {
        self.exec(node, &["sh", "-c", script])
    }

    /// Runs a shell command line that must succeed; returns its stdout.
    pub fn sh_ok(&self, node: &str, script: &str) -> String {
        let out = self.sh(node, script);
        assert!(
            out.success(),
            "`{script}` in {node} failed ({}):\nstdout: {}\nstderr: {}",
            out.summary(),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Polls `check` every 200 ms until it returns `Ok`, or panics after `timeout` with the
    /// last reason it gave.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> T {
        wait_for(what, timeout, &mut check)
    }

    /// Everything this lab made, to check after destroy that none of it is left.
    pub fn footprint(&self) -> Footprint {
        Footprint::of(&self.state)
    }

    /// Destroys the lab now (drop does the same).
    pub fn destroy(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        let keep = std::thread::panicking();
        if keep {
            eprintln!(
                "lab {} failed; its logs are kept in {}",
                self.state.lab,
                self.state.lab_dir.display()
            );
        }
        let footprint = Footprint::of(&self.state);
        if let Err(e) = crate::destroy::destroy_lab(&self.state.lab, keep) {
            eprintln!("destroying lab {} failed: {e}", self.state.lab);
        }
        if let Some(mut child) = self.supervisor.take() {
            let _ = child.wait();
        }
        footprint.reap();
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Polls `check` until it succeeds or `timeout` passes; panics with the last reason.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    check: &mut dyn FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(reason) if Instant::now() >= deadline => {
                panic!(
                    "timed out after {} s waiting for {what}; last state:\n{reason}",
                    timeout.as_secs()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The names of the interfaces in the machine's own network namespace.
pub fn root_links() -> Vec<String> {
    let mut links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    links.sort();
    links
}

/// What a deployed lab consists of — namespaces, processes, mounts, directories — taken
/// while it runs, so a test can prove that destroy removed all of it.
#[derive(Debug, Clone)]
pub struct Footprint {
    pub lab: String,
    pub netns: Vec<String>,
    pub net_inodes: Vec<u64>,
    pub mnt_inodes: Vec<u64>,
    pub processes: Vec<ProcRef>,
    pub run_dir: PathBuf,
    pub lab_dir: PathBuf,
    pub root_links: Vec<String>,
    /// The nodes' cgroup branches in the machine's hierarchies.
    pub cgroups: Vec<PathBuf>,
}

impl Footprint {
    pub fn of(state: &LabState) -> Footprint {
        let netns: Vec<String> =
            state.nodes.iter().map(|n| n.netns.clone()).chain(state.mgmt_netns.clone()).collect();
        let mut processes: Vec<ProcRef> = state.supervisor.into_iter().collect();
        if let Some(status) = Status::load(state) {
            processes.extend(status.all_processes().map(|p| p.proc));
            processes.extend(status.inits());
        }
        let net_inodes: Vec<u64> =
            netns.iter().filter_map(|n| ns_inode(&crate::netns::path(n))).collect();
        let mnt_inodes: Vec<u64> =
            state.nodes.iter().filter_map(|n| ns_inode(&state.pin(&n.name, "mnt"))).collect();
        // Also whatever runs in the lab without being recorded (daemons an exec line forked).
        processes.extend(processes_in(&net_inodes, &mnt_inodes));
        processes.sort_by_key(|p| p.pid);
        processes.dedup();
        Footprint {
            lab: state.lab.clone(),
            net_inodes,
            mnt_inodes,
            netns,
            processes,
            run_dir: state.run_dir(),
            lab_dir: state.lab_dir.clone(),
            root_links: root_links(),
            cgroups: crate::cgroups::branches_left(
                &state.lab,
                &state.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
            ),
        }
    }

    /// Reaps those of the lab's processes that ended as this process's children (it is a child
    /// subreaper during tests), and no other child of this process.
    pub fn reap(&self) {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut waiting: Vec<ProcRef> =
            self.processes.iter().copied().filter(ProcRef::exists).collect();
        while !waiting.is_empty() && Instant::now() < deadline {
            // Keep only our children that have not ended yet (a dying PID 1 takes a moment).
            waiting.retain(|p| {
                matches!(
                    waitpid(nix::unistd::Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                )
            });
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics with a list of whatever is still there.
    pub fn assert_gone(&self) {
        let mut left = Vec::new();
        for n in &self.netns {
            if crate::netns::exists(n) {
                left.push(format!("network namespace {n}"));
            }
        }
        // Processes are checked by the identities taken while the lab ran: once its namespaces
        // are gone, their inode numbers may already belong to someone else's new namespace.
        for p in &self.processes {
            if p.exists() {
                let what = if p.alive() { "running" } else { "a zombie: nobody reaped it" };
                let parent =
                    crate::procfs::parent(p.pid).map_or("?".to_string(), |pp| pp.to_string());
                left.push(format!(
                    "process {} ({}, parent {parent}), {what}",
                    p.pid,
                    crate::procfs::comm(p.pid)
                ));
            }
        }
        left.extend(
            self.cgroups.iter().filter(|c| c.exists()).map(|c| format!("cgroup {}", c.display())),
        );
        if self.run_dir.exists() {
            left.push(format!("run directory {}", self.run_dir.display()));
        }
        if self.lab_dir.exists() {
            left.push(format!("lab directory {}", self.lab_dir.display()));
        }
        let mounts: Vec<String> = crate::procfs::mounts()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|m| {
                m.starts_with(&*self.run_dir.to_string_lossy())
                    || self.netns.iter().any(|n| *m == crate::netns::path(n).to_string_lossy())
            })
            .collect();
        left.extend(mounts.into_iter().map(|m| format!("mount {m}")));
        let links = root_links();
        if links != self.root_links {
            left.push(format!("root namespace links changed: {:?} -> {links:?}", self.root_links));
        }
        assert!(left.is_empty(), "lab {} left things behind:\n  {}", self.lab, left.join("\n  "));
    }
}
