//! Deploying a lab, in the order containerlab does it and with nothing left to chance:
//!
//! 1. load and validate the whole file, and check every binary a node will run (nothing is
//!    created before this passes);
//! 2. write the lab's state *before* creating anything (so `destroy` can always undo it);
//! 3. create the namespaces, wire loopbacks, the management network and the links;
//! 4. build each node's mount/UTS namespaces and file system, apply its sysctls, pin them;
//! 5. start the node processes under the lab's supervisor and wait until they are ready;
//! 6. run the `exec` lines, every node's in order.
//!
//! Any failure rolls back what was made (the lab directory and its logs are kept), and says so.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::exec::ExecOutput;
use crate::node_init::{NodeInitSpec, Sysctl};
use crate::procfs::{ProcRef, is_root};
use crate::profile::services_for;
use crate::state::{LabLock, LabState, NodeState, Phase};
use crate::supervisor::{self, NodeRun, Status};
use crate::topology::{self, LoadOptions, Node, Topology};
use crate::{destroy, netns, topology_data, wiring};

/// How long building one node's namespaces may take.
const NODE_INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub load: LoadOptions,
    /// Destroy a running lab of the same name first (and wipe its lab directory).
    pub reconfigure: bool,
    /// Where `clab-<lab>/` goes; beside the topology file when `None` (`CLAB_LABDIR_BASE`).
    pub lab_dir_base: Option<PathBuf>,
    /// The `tartanlab` binary that supervises nodes and enters them.
    pub tartanlab: PathBuf,
    /// Fail (and roll back) when an `exec` line fails, instead of warning.
    pub strict_exec: bool,
    pub exec_timeout: Duration,
}

impl DeployOptions {
    pub fn new(tartanlab: PathBuf) -> DeployOptions {
        DeployOptions {
            load: LoadOptions::default(),
            reconfigure: false,
            lab_dir_base: std::env::var_os("CLAB_LABDIR_BASE").map(PathBuf::from),
            tartanlab,
            strict_exec: false,
            exec_timeout: Duration::from_secs(60),
        }
    }
}

/// A deployed lab.
#[derive(Debug)]
pub struct Deployed {
    pub state: LabState,
    pub topology: Topology,
    pub exec: Vec<ExecOutput>,
    /// What went wrong without stopping the lab: failed `exec` lines, failed one-shots.
    pub warnings: Vec<String>,
    /// The supervisor, a child of this process: a long-lived caller (the test harness) waits
    /// for it after destroy so it never lingers as a zombie.
    pub supervisor: Option<Child>,
}

/// Deploys the topology in `file`.
pub fn deploy(file: &Path, opts: &DeployOptions) -> Result<Deployed> {
    if !is_root() {
        return Err(LabError::NotRoot { what: "tartanlab deploy" });
    }
    let mut load = opts.load.clone();
    load.lab_dir_base = opts.lab_dir_base.clone();
    let topo = topology::load(file, &load)?;
    for w in &topo.warnings {
        tracing::warn!("{w}");
    }
    let bin_dir = crate::enter::bin_dir(&opts.tartanlab);
    preflight(&topo, &bin_dir)?;

    netns::ensure_private_mount(&crate::state::run_dir())?;
    let lock = LabLock::acquire(&topo.name)?;
    if LabState::load(&topo.name)?.is_some() {
        if !opts.reconfigure {
            return Err(LabError::AlreadyDeployed { lab: topo.name.clone() });
        }
        tracing::info!("destroying the running lab {} first (--reconfigure)", topo.name);
        destroy::teardown_by_name(&topo.name, destroy::LabDir::Auto)?;
    }
    for name in topo.nodes.iter().map(|n| n.long_name.clone()).chain([topo.mgmt_netns()]) {
        if netns::exists(&name) {
            return Err(LabError::NetnsExists { name });
        }
    }

    let lab_dir = topo.lab_dir(opts.lab_dir_base.as_deref());
    if opts.reconfigure && lab_dir.exists() {
        fs::remove_dir_all(&lab_dir)
            .map_err(LabError::io(format!("wiping {}", lab_dir.display())))?;
    }
    let state = plan(&topo, &lab_dir, opts, &bin_dir);
    fs::create_dir_all(state.run_dir().join("ns"))
        .map_err(LabError::io("creating the lab's run directory"))?;
    // Before the bind sources are looked at: nodes bind their certificates.
    for cert in crate::pki::issue_certificates(&topo, &lab_dir)? {
        tracing::info!("issued {}", cert.display());
    }
    for node in &topo.nodes {
        let dir = state.node_dir(&node.name);
        fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
        // `__clabNodeDir__/run:/rtr/run`: a bind source under the lab directory is created,
        // as a directory, when the file does not provide it.
        for bind in node.binds.iter().filter(|b| b.src.starts_with(&lab_dir) && !b.src.exists()) {
            fs::create_dir_all(&bind.src)
                .map_err(LabError::io(format!("creating {}", bind.src.display())))?;
        }
    }
    state.save()?;
    topology_data::write(&topo, &state)?;
    tracing::info!(
        "deploying lab {} ({} nodes, {} links) in {}",
        topo.name,
        topo.nodes.len(),
        topo.links.len(),
        lab_dir.display()
    );

    let mut state = state;
    let mut supervisor = None;
    match build(&topo, &mut state, opts, &mut supervisor) {
        Ok((exec, warnings)) => {
            state.phase = Phase::Running;
            state.save()?;
            drop(lock);
            Ok(Deployed { state, topology: topo, exec, warnings, supervisor })
        }
        Err(e) => {
            tracing::info!(
                "deploy failed; rolling back lab {} (logs are kept in {})",
                topo.name,
                lab_dir.display()
            );
            if let Err(undo) = destroy::teardown(&state, destroy::LabDir::Keep) {
                tracing::error!(
                    "rollback incomplete: {undo}; run `tartanlab destroy -t {}`",
                    file.display()
                );
            }
            if let Some(mut child) = supervisor {
                let _ = child.wait();
            }
            lock.release_and_remove();
            Err(e)
        }
    }
}

/// Checks, before anything is created, that every node can run what its profile needs.
fn preflight(topo: &Topology, bin_dir: &Path) -> Result<()> {
    let path = crate::enter::node_path(bin_dir);
    for node in &topo.nodes {
        // Tartan's images run the project's own `tartan`, whatever shell line wraps it.
        if node.profile == crate::profile::Profile::Tartan
            && crate::profile::which_in_node(&node.binds, "tartan", &path).is_none()
        {
            return Err(LabError::TartanNotBuilt {
                node: node.name.clone(),
                bin_dir: bin_dir.display().to_string(),
            });
        }
        match &node.cmd {
            Some(cmd) if !crate::profile::is_idle_shell(cmd) => {
                let program = &cmd[0];
                let node_path = node.env.get("PATH").cloned().unwrap_or_else(|| path.clone());
                if crate::profile::which_in_node(&node.binds, program, &node_path).is_none() {
                    return Err(LabError::CommandNotFound {
                        node: node.name.clone(),
                        command: program.clone(),
                        path: node_path,
                    });
                }
            }
            Some(_) => {}
            None => {
                for (binary, package) in node.profile.required_binaries() {
                    if !Path::new(binary).exists() {
                        return Err(LabError::MissingBinary {
                            node: node.name.clone(),
                            path: binary.to_string(),
                            package,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// The state of the lab to be, written before anything is created.
fn plan(topo: &Topology, lab_dir: &Path, opts: &DeployOptions, bin_dir: &Path) -> LabState {
    let mut state = LabState::new(&topo.name, &topo.file, lab_dir, &opts.tartanlab);
    state.exec_timeout_secs = opts.exec_timeout.as_secs().max(1);
    // The lab's private namespace: the management bridge, and the `kind: bridge` segments.
    state.mgmt_netns = (topo.nodes.iter().any(|n| n.mgmt.is_some()) || !topo.bridges.is_empty())
        .then(|| topo.mgmt_netns());
    state.links = topo.links.iter().map(|l| l.describe()).collect();
    state.nodes = topo
        .nodes
        .iter()
        .map(|node| {
            let mut env: BTreeMap<String, String> = [
                ("PATH".to_string(), crate::enter::node_path(bin_dir)),
                ("HOME".to_string(), "/root".to_string()),
                ("USER".to_string(), "root".to_string()),
                ("HOSTNAME".to_string(), node.hostname.clone()),
            ]
            .into();
            env.extend(node.env.clone());
            NodeState {
                name: node.name.clone(),
                netns: node.long_name.clone(),
                kind: node.kind.clone(),
                image: node.image.clone(),
                group: node.group.clone(),
                profile: node.profile,
                mgmt_ipv4: node.mgmt.as_ref().map(|m| m.ipv4.to_string()),
                mgmt_ipv6: node.mgmt.as_ref().and_then(|m| m.ipv6).map(|v| v.to_string()),
                env,
                services: services_for(node),
                startup_delay_secs: node.startup_delay_secs,
                exec: node.exec.clone(),
                labels: node.labels.clone(),
            }
        })
        .collect();
    state
}

/// Creates everything; the caller rolls back on error.
fn build(
    topo: &Topology,
    state: &mut LabState,
    opts: &DeployOptions,
    supervisor: &mut Option<Child>,
) -> Result<(Vec<ExecOutput>, Vec<String>)> {
    let started = Instant::now();
    let names: Vec<String> = state.network_namespaces();
    for name in names {
        if let Err(e) = netns::create(&name) {
            if matches!(e, LabError::NetnsExists { .. }) {
                // Someone made it between our check and now: it is theirs, never ours to remove.
                state.not_ours.push(name);
                state.save()?;
            }
            return Err(e);
        }
    }
    crash_point("netns");
    wiring::wire(topo)?;
    tracing::info!("wired {} links and the management network", topo.links.len());
    crash_point("links");
    let hosts = hosts_file(topo);
    for node in &topo.nodes {
        init_node(state, node, &hosts, &opts.tartanlab)?;
    }
    crash_point("nodes");

    let log_path = state.lab_dir.join("supervisor.log");
    let log = fs::File::create(&log_path)
        .map_err(LabError::io(format!("creating {}", log_path.display())))?;
    let log_err = log.try_clone().map_err(LabError::io("opening the supervisor log"))?;
    let child = Command::new(&opts.tartanlab)
        .arg("__supervise")
        .arg(&state.lab)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(LabError::io(format!("starting the supervisor ({})", opts.tartanlab.display())))?;
    state.supervisor = ProcRef::of(child.id() as i32);
    *supervisor = Some(child);
    state.save()?;
    let status = wait_ready(state, &log_path)?;
    tracing::info!("nodes ready and exec lines run after {:.1} s", started.elapsed().as_secs_f64());
    crash_point("processes");

    // Failed exec lines and one-shots leave the lab running (as containerlab and the FRR image
    // do) with a warning each — or fail it, with `--strict-exec`.
    let mut warnings: Vec<String> = status
        .nodes
        .iter()
        .flat_map(|(node, n)| n.warnings.iter().map(move |w| format!("node `{node}`: {w}")))
        .collect();
    for out in status.exec.iter().filter(|o| !o.success()) {
        let detail = out.stderr.trim().lines().last().unwrap_or("").to_string();
        warnings.push(format!(
            "{}{}",
            out.summary(),
            if detail.is_empty() { String::new() } else { format!(": {detail}") }
        ));
    }
    if opts.strict_exec {
        if let Some(first) = status.exec.iter().find(|o| !o.success()) {
            let mut message = first.summary();
            if !first.stderr.trim().is_empty() {
                message = format!("{message}\n{}", first.stderr.trim());
            }
            return Err(LabError::Exec {
                node: first.node.clone(),
                line: first.command.clone(),
                message,
            });
        }
        if let Some(w) = warnings.first() {
            return Err(LabError::NodeFailed {
                node: state.lab.clone(),
                message: w.clone(),
                log: None,
            });
        }
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok((status.exec, warnings))
}

/// Test hook: `TARTANLAB_CRASH_AFTER=<step>` aborts the process right after that step, exactly
/// as a crash would (no rollback, no destructors), so tests can prove destroy cleans up.
fn crash_point(step: &str) {
    if std::env::var("TARTANLAB_CRASH_AFTER").is_ok_and(|s| s == step) {
        eprintln!("tartanlab: TARTANLAB_CRASH_AFTER={step}: aborting");
        std::process::abort();
    }
}

/// `/etc/hosts` for every node: each node's management address with its short and long names.
fn hosts_file(topo: &Topology) -> String {
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for node in &topo.nodes {
        if let Some(m) = &node.mgmt {
            hosts.push_str(&format!("{}\t{} {}\n", m.ipv4.addr(), node.name, node.long_name));
            if let Some(v6) = m.ipv6 {
                hosts.push_str(&format!("{}\t{} {}\n", v6.addr(), node.name, node.long_name));
            }
        }
    }
    hosts
}

/// The sysctls a node gets: IPv6 on (as containerlab's linux kind), forwarding on for routers
/// and off for hosts (a new namespace would otherwise inherit the machine's setting), then the
/// node's own, which win.
fn node_sysctls(node: &Node) -> Vec<Sysctl> {
    let forward = if node.profile.is_router() { "1" } else { "0" };
    let mut out: Vec<Sysctl> = [
        ("net.ipv6.conf.all.disable_ipv6", "0"),
        ("net.ipv4.ip_forward", forward),
        ("net.ipv6.conf.all.forwarding", forward),
    ]
    .into_iter()
    .filter(|(k, _)| !node.sysctls.contains_key(*k))
    .map(|(k, v)| Sysctl { key: k.into(), value: v.into(), required: false })
    .collect();
    out.extend(node.sysctls.iter().map(|(k, v)| Sysctl {
        key: k.clone(),
        value: v.clone(),
        required: true,
    }));
    out
}

/// Runs `tartanlab __node-init` for one node and pins its mount and UTS namespaces.
fn init_node(state: &LabState, node: &Node, hosts: &str, tartanlab: &Path) -> Result<()> {
    let scratch = state.pin(&node.name, "root");
    fs::create_dir_all(&scratch)
        .map_err(LabError::io(format!("creating {}", scratch.display())))?;
    let mut hosts = hosts.to_string();
    if node.mgmt.is_none() {
        hosts.push_str(&format!("127.0.1.1\t{}\n", node.hostname));
    }
    let spec = NodeInitSpec {
        node: node.name.clone(),
        netns: netns::path(&node.long_name),
        scratch,
        hostname: node.hostname.clone(),
        sysctls: node_sysctls(node),
        binds: node.binds.clone(),
        dirs: node.profile.private_dirs(),
        hosts,
        bin_dir: Some(crate::enter::bin_dir(tartanlab)).filter(|d| d.is_dir()),
        cgroup_branch: Some(crate::cgroups::branch_name(&state.lab, &node.name)),
    };
    let spec_json = serde_json::to_string(&spec)
        .map_err(|e| LabError::NodeInit { node: node.name.clone(), message: e.to_string() })?;
    let mut child = Command::new(tartanlab)
        .arg("__node-init")
        .arg(&spec_json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(LabError::io(format!("starting node setup for {}", node.name)))?;
    let pid = child.id() as i32;
    // The helper says `ready` once the node's world is built (milliseconds); a helper stuck
    // on a mount must not hang deploy.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
    }
    let line = rx.recv_timeout(NODE_INIT_TIMEOUT).unwrap_or_else(|_| {
        let _ = child.kill();
        format!("timed out after {} s", NODE_INIT_TIMEOUT.as_secs())
    });
    let pinned = if line.trim() == "ready" {
        netns::pin(pid, "mnt", &state.pin(&node.name, "mnt"))
            .and_then(|_| netns::pin(pid, "uts", &state.pin(&node.name, "uts")))
    } else {
        Ok(())
    };
    drop(child.stdin.take());
    let output = child
        .wait_with_output()
        .map_err(LabError::io(format!("waiting for node setup of {}", node.name)))?;
    if line.trim() != "ready" || !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(LabError::NodeInit {
            node: node.name.clone(),
            message: if message.is_empty() && line.starts_with("timed out") {
                line
            } else if message.is_empty() {
                format!("exited with {}", output.status)
            } else {
                message
            },
        });
    }
    pinned?;
    tracing::debug!(node = %node.name, profile = node.profile.name(), "namespaces ready");
    Ok(())
}

/// Waits for the supervisor to report every node ready and the `exec` lines run (or a
/// failure); returns what the `exec` lines did.
fn wait_ready(state: &LabState, log: &Path) -> Result<Status> {
    let longest = state
        .nodes
        .iter()
        .map(|n| {
            n.startup_delay_secs
                + supervisor::READY_TIMEOUT.as_secs() * (n.services.len() as u64 + 1)
                + state.exec_timeout_secs * n.exec.len() as u64
        })
        .max()
        .unwrap_or(0);
    let timeout = Duration::from_secs(longest + 10);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = Status::load(state) {
            match status.phase {
                supervisor::Phase::Ready => return Ok(status),
                supervisor::Phase::Failed => return Err(first_failure(state, &status)),
                _ => {}
            }
        }
        if !state.supervisor.is_some_and(|s| s.alive()) {
            let tail = fs::read_to_string(log).unwrap_or_default();
            return Err(LabError::NodeFailed {
                node: "(supervisor)".into(),
                message: format!(
                    "the supervisor exited: {}",
                    tail.lines().last().unwrap_or("no output")
                ),
                log: Some(log.to_path_buf()),
            });
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                what: "node processes to start".into(),
                secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn first_failure(state: &LabState, status: &Status) -> LabError {
    let failed = status.nodes.iter().find(|(_, n)| n.state == NodeRun::Failed);
    match failed {
        Some((name, n)) => {
            let log = n.processes.last().map(|p| p.log.clone());
            let tail = log
                .as_ref()
                .and_then(|l| fs::read_to_string(l).ok())
                .map(|t| {
                    t.lines()
                        .rev()
                        .take(5)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n    ")
                })
                .filter(|t| !t.is_empty())
                .map(|t| format!("\n  last lines:\n    {t}"))
                .unwrap_or_default();
            LabError::NodeFailed {
                node: name.clone(),
                message: format!("{}{tail}", n.error.clone().unwrap_or_default()),
                log,
            }
        }
        None => LabError::NodeFailed {
            node: state.lab.clone(),
            message: "a node failed to start".into(),
            log: None,
        },
    }
}
