//! `tartanlab`: containerlab topology files on Linux network namespaces. The commands mirror
//! containerlab's; the hidden ones are the helpers the runner starts itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tartan_labs::error::{LabError, Result};
use tartan_labs::state::LabState;
use tartan_labs::topology::{self, LoadOptions};
use tartan_labs::{deploy, destroy, enter, graph, inspect, node_init, pidns, procfs, supervisor};

const ABOUT: &str = "Deploy containerlab topology files onto Linux network namespaces — no Docker.";

const LONG_ABOUT: &str = "\
Deploy containerlab topology files onto Linux network namespaces — no Docker.

Every node becomes a network namespace named clab-<lab>-<node> (so `ip netns exec` works), with
its own mount and UTS namespaces: it sees an overlay of this machine's files (what it writes stays
in the node), private /run and /tmp, and its `binds` at their container paths. Links are veth
pairs; the management network is a bridge in a private namespace, with eth0 in every node. The
image picks what a node runs: *frr* → the FRR daemons its /etc/frr/daemons turns on, with
/etc/frr/frr.conf, *bird* → BIRD 2 with the config it binds (/etc/bird/bird.conf or
/etc/bird.conf), *gobgp* → gobgpd with /etc/gobgpd.conf, anything else → its `cmd`.
Nothing is ever created in this machine's own network namespace.

deploy, destroy and exec need root.";

const EXAMPLES: &str = "\
Examples:
  sudo tartanlab deploy -t containerlab/routers.clab.yml
  sudo tartanlab inspect
  sudo tartanlab exec -t containerlab/routers.clab.yml frr -- vtysh -c 'show bgp summary'
  sudo tartanlab exec -t containerlab/routers.clab.yml bird -- birdc show protocols
  tartanlab graph -t containerlab/routers.clab.yml --format mermaid
  sudo tartanlab destroy -t containerlab/routers.clab.yml
  sudo tartanlab destroy --all";

#[derive(Parser, Debug)]
#[command(name = "tartanlab", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// More output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Which lab a command is about.
#[derive(Args, Debug, Clone)]
struct LabArgs {
    /// Topology file (default: the only *.clab.yml / *.clab.yaml in the current directory).
    #[arg(short = 't', long = "topo", value_name = "FILE")]
    topo: Option<PathBuf>,
    /// Use this lab name instead of the file's `name:` (run one file several times at once).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// A value for `${VAR}` in the file (repeatable); the environment is used otherwise.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
}

#[derive(Subcommand, Debug)]
enum ProbeCommand {
    /// Send COUNT datagrams to ADDR:PORT at PPS, each carrying its sequence number.
    Send {
        #[arg(long, value_name = "ADDR:PORT")]
        to: std::net::SocketAddr,
        #[arg(long, default_value_t = 1000)]
        pps: u32,
        #[arg(long, default_value_t = 5000)]
        count: u64,
    },
    /// Receive on PORT; print what arrived (JSON) once the flow has been quiet for IDLE
    /// seconds.
    Recv {
        #[arg(long, default_value_t = 9000)]
        port: u16,
        #[arg(long, default_value_t = 2.0, value_name = "SECS")]
        idle: f64,
        /// Give up when nothing at all arrives for this long.
        #[arg(long, default_value_t = 60.0, value_name = "SECS")]
        first: f64,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// BGP convergence, bgperf-style: N BIRD injectors each send P unique /32s through the
    /// target to a BIRD monitor; time from the injectors' start until the monitor holds every
    /// route, the target's peak memory and CPU, and any session that dropped (3 s / 9 s timers).
    #[command(
        after_help = "Example:\n  sudo tartanlab bench bgp --peers 10 --prefixes 100000 --targets tartan,bird,frr,gobgp"
    )]
    Bgp {
        /// Injector peers.
        #[arg(long, default_value_t = 10)]
        peers: usize,
        /// Unique prefixes each injector sends.
        #[arg(long, default_value_t = 100_000)]
        prefixes: usize,
        /// Targets to measure, in order (tartan, bird, frr, gobgp).
        #[arg(long, value_delimiter = ',', default_value = "tartan,bird")]
        targets: Vec<tartan_labs::bench::bgp::Target>,
        /// Give up on a target after this many seconds.
        #[arg(long, default_value_t = 400)]
        timeout: u64,
        /// Print the results as JSON too.
        #[arg(long)]
        json: bool,
        /// Keep each run's configurations and daemon logs (under /tmp/tartanlab-bench/).
        #[arg(long)]
        keep_files: bool,
    },
    /// IPAM: durable allocations per second and latency percentiles through the HTTP API, N
    /// clients (one node each) against a fresh `tartan apiserver` on loopback, beside the
    /// reference CNI IPAM `host-local` executed one process per ADD as a runtime does.
    #[command(
        after_help = "Examples:\n  tartanlab bench ipam --clients 8 --allocs 20000\n  tartanlab bench ipam --datastore etcd --allocs 20000    sled, then 3 etcd members"
    )]
    Ipam {
        /// `sled` (one server, embedded) or `etcd`: sled, then the same run on a fresh
        /// three-member etcd cluster (Debian's etcd-server), each figure beside sled's.
        #[arg(long, value_name = "sled|etcd", default_value = "sled")]
        datastore: String,
        /// API servers on etcd (with --datastore etcd); clients are spread over them.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// Concurrent clients, each allocating for its own node.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Allocations in all (one IPv4 address each).
        #[arg(long, default_value_t = 20_000)]
        allocs: usize,
        /// Allocations asked of host-local (0 skips the reference).
        #[arg(long, default_value_t = 2_000)]
        reference_allocs: usize,
        /// Print the results as JSON too.
        #[arg(long)]
        json: bool,
        /// Keep the server's data directory and log (under /tmp/tartanlab-bench/).
        #[arg(long)]
        keep_files: bool,
    },
    /// CNI: ADD and DEL latency through `tartan sandbox` on a lab host, beside the reference
    /// bridge + host-local plugins driven the same way on the same host.
    #[command(after_help = "Example:\n  sudo tartanlab bench cni --count 100")]
    Cni {
        /// ADDs (then DELs) per target.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Print the results as JSON too.
        #[arg(long)]
        json: bool,
    },
    /// Burst: N containers started at once on one host; the time until all of them answer a
    /// ping from a container on another host.
    #[command(after_help = "Example:\n  sudo tartanlab bench burst --containers 100")]
    Burst {
        #[arg(long, default_value_t = 100)]
        containers: usize,
        /// ADDs in flight at once.
        #[arg(long, default_value_t = 10)]
        parallel: usize,
        #[arg(long)]
        json: bool,
    },
    /// Datapath: iperf3 TCP between containers on two hosts, beside the hosts themselves over
    /// the same link.
    #[command(after_help = "Example:\n  sudo tartanlab bench datapath --seconds 5")]
    Datapath {
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        #[arg(long)]
        json: bool,
    },
    /// BFD: failover with a silent leaf and a silent host at each timer setting (Tartan's
    /// outage, and silence-to-kernel for Tartan, FRR and BIRD in the same lab), and the CPU of
    /// 100 sessions at 100 ms x 3 for Tartan, BIRD and FRR's bfdd.
    #[command(after_help = "Example:\n  sudo tartanlab bench bfd --timers 300,100,50")]
    Bfd {
        /// Timer settings for the failover runs, in ms (each `T x 3`), comma-separated; none
        /// (`--timers ''`) skips them.
        #[arg(long, value_delimiter = ',', default_value = "300,100,50")]
        timers: Vec<String>,
        /// Daemons for the CPU runs, comma-separated; none (`--cpu ''`) skips them.
        #[arg(long = "cpu", value_delimiter = ',', default_value = "tartan,bird,frr")]
        cpu_targets: Vec<String>,
        /// BFD sessions for the CPU runs.
        #[arg(long, default_value_t = 100)]
        sessions: usize,
        /// The CPU window, in seconds.
        #[arg(long, default_value_t = 20)]
        cpu_seconds: u64,
        /// After Tartan's CPU window: a BIRD peer announces and withdraws this many prefixes
        /// over BGP to the same process, round after round, while its BFD sessions must stay
        /// Up (0: skip).
        #[arg(long, default_value_t = 200_000)]
        load_prefixes: usize,
        /// How long the load runs, in seconds (whole rounds).
        #[arg(long, default_value_t = 60)]
        load_seconds: u64,
        /// Keep each run's lab directory (logs, configurations).
        #[arg(long)]
        keep_files: bool,
        /// Print the results as JSON too.
        #[arg(long)]
        json: bool,
    },
    /// Routes: the node agent's route programmer writing N /32 routes into a fresh network
    /// namespace and resyncing them unchanged, beside `ip -batch` adding the same routes.
    #[command(after_help = "Example:\n  sudo tartanlab bench routes --routes 10000")]
    Routes {
        /// How many /32 routes.
        #[arg(long, default_value_t = 10_000)]
        routes: usize,
        /// Runs of each; the best is kept.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Print the results as JSON too.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the lab: namespaces, links, management network, node processes, exec lines.
    #[command(visible_alias = "dep")]
    Deploy {
        #[command(flatten)]
        lab: LabArgs,
        /// Destroy a running lab of the same name first and wipe its lab directory.
        #[arg(short = 'c', long)]
        reconfigure: bool,
        /// Fail (and roll back) when an exec line fails, instead of warning.
        #[arg(long)]
        strict_exec: bool,
        /// Deadline for each exec line, in seconds.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        exec_timeout: u64,
    },
    /// Remove the lab: processes, namespaces, veths, bridge and lab directory.
    Destroy {
        #[command(flatten)]
        lab: LabArgs,
        /// Destroy every lab tartanlab knows of.
        #[arg(short, long, conflicts_with_all = ["topo", "lab_name"])]
        all: bool,
        /// Destroy the lab with this name (works without its topology file).
        #[arg(long = "lab", value_name = "NAME", conflicts_with = "topo")]
        lab_name: Option<String>,
        /// Keep the lab directory (logs, topology-data.json). Without it, the directory is
        /// removed unless it existed before the lab was deployed.
        #[arg(short, long, conflicts_with = "cleanup")]
        keep_lab_dir: bool,
        /// Remove the lab directory even if it existed before the lab (containerlab's -c).
        #[arg(short = 'c', long)]
        cleanup: bool,
        /// With no record of the lab (it was never deployed here, or /run/tartanlab was wiped),
        /// remove every namespace the topology file names, and what runs in them.
        #[arg(long, requires = "topo")]
        force: bool,
    },
    /// Show the nodes of one lab, or of all deployed labs.
    #[command(visible_alias = "ins")]
    Inspect {
        /// Topology file; all labs when omitted.
        #[arg(short = 't', long = "topo", value_name = "FILE")]
        topo: Option<PathBuf>,
        /// Lab name (instead of a file).
        #[arg(long = "lab", value_name = "NAME", conflicts_with = "topo")]
        lab_name: Option<String>,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Run a command inside a node (its network, mount and UTS namespaces, its environment).
    Exec {
        #[command(flatten)]
        lab: LabArgs,
        /// Lab name (instead of a file).
        #[arg(long = "lab", value_name = "NAME", conflicts_with = "topo")]
        lab_name: Option<String>,
        /// The node. With `--cmd` it may be left out: every node, or those `--label` picks.
        node: Option<String>,
        /// The command and its arguments (after `--`), run in NODE with its terminal.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
        /// containerlab's form: run this command (split into words, no shell; repeatable) in
        /// each selected node, and print what each printed.
        #[arg(long = "cmd", value_name = "CMD")]
        cmds: Vec<String>,
        /// With `--cmd`, only the nodes with these labels (KEY=VALUE, repeatable or
        /// comma-separated), e.g. `clab-node-name=r1` or `clab-node-kind=linux`.
        #[arg(long = "label", value_name = "KEY=VALUE", value_delimiter = ',', requires = "cmds")]
        labels: Vec<String>,
        /// With `--cmd`: plain text, or JSON keyed by container name.
        #[arg(short = 'f', long = "format", value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// With `--cmd`: seconds each command may take.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        timeout: u64,
    },
    /// Draw the topology (nothing needs to be deployed).
    Graph {
        #[command(flatten)]
        lab: LabArgs,
        #[arg(short, long, value_enum, default_value_t = graph::Format::Text)]
        format: graph::Format,
    },
    /// Check a topology file without deploying it.
    Validate {
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Benchmarks: each deploys its own labs and prints Tartan beside the reference daemons.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A paced UDP flow and its receiver, to measure a failover inside a lab: run `recv` in
    /// one node (or container), `send` in another, fail something; the receiver reports the
    /// longest gap, which at 1000 pps is the outage in milliseconds (RFC 6412).
    #[command(subcommand)]
    Probe(ProbeCommand),
    #[command(name = "__nsexec", hide = true)]
    NsExec {
        #[command(flatten)]
        ns: NsArgs,
        /// Start the command detached, output appended to this file; print its PID.
        #[arg(long)]
        detach_log: Option<PathBuf>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    #[command(name = "__pid-init", hide = true)]
    PidInit {
        #[command(flatten)]
        ns: NsArgs,
    },

    #[command(name = "__node-init", hide = true)]
    NodeInit { spec: String },
    #[command(name = "__supervise", hide = true)]
    Supervise { lab: String },
}

/// A node's namespace files, for the hidden helpers.
#[derive(Args, Debug, Clone)]
struct NsArgs {
    #[arg(long)]
    net: PathBuf,
    #[arg(long)]
    mnt: PathBuf,
    #[arg(long)]
    uts: PathBuf,
    #[arg(long)]
    pid: Option<PathBuf>,
}

impl NsArgs {
    fn namespaces(&self) -> enter::NodeNamespaces {
        enter::NodeNamespaces {
            net: self.net.clone(),
            mnt: self.mnt.clone(),
            uts: self.uts.clone(),
            pid: self.pid.clone(),
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OutputFormat {
    /// Text (`plain` as containerlab's exec calls it).
    #[value(alias = "plain")]
    Table,
    Json,
}

/// `exec --cmd`: each command in every selected node, containerlab's way; fails when any
/// command does (containerlab exits 0 regardless).
fn exec_cmds(
    state: &LabState,
    node: Option<&str>,
    cmds: &[String],
    labels: &[String],
    format: OutputFormat,
    timeout: u64,
) -> Result<ExitCode, LabError> {
    let mut wanted = Vec::new();
    for l in labels {
        let Some((k, v)) = l.split_once('=') else {
            return Err(LabError::Usage { message: format!("--label {l:?} is not KEY=VALUE") });
        };
        wanted.push((k.to_string(), v.to_string()));
    }
    let nodes: Vec<_> = state
        .nodes
        .iter()
        .filter(|n| node.is_none_or(|want| n.name == want))
        .filter(|n| wanted.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
        .collect();
    if nodes.is_empty() {
        let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(LabError::Usage {
            message: format!(
                "no node of lab `{}` matches (nodes: {}; labels are shown by `tartanlab inspect -f json`)",
                state.lab,
                names.join(", ")
            ),
        });
    }
    let mut all_ok = true;
    let mut json = serde_json::Map::new();
    for n in nodes {
        let mut runs = Vec::new();
        for cmd in cmds {
            let argv = shlex::split(cmd).filter(|a| !a.is_empty()).ok_or_else(|| {
                LabError::Usage { message: format!("--cmd {cmd:?} is not a command line") }
            })?;
            let out = tartan_labs::exec::run(state, n, &argv, Duration::from_secs(timeout))?;
            all_ok &= out.success();
            match format {
                OutputFormat::Table => {
                    println!("--- {} $ {cmd} (exit {})", n.netns, out.code.map_or("signal".to_string(), |c| c.to_string()));
                    print!("{}", out.stdout);
                    eprint!("{}", out.stderr);
                }
                OutputFormat::Json => runs.push(serde_json::json!({
                    "cmd": argv, "return-code": out.code, "stdout": out.stdout, "stderr": out.stderr,
                })),
            }
        }
        if format == OutputFormat::Json {
            json.insert(n.netns.clone(), serde_json::Value::Array(runs));
        }
    }
    if format == OutputFormat::Json {
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(json))
            .map_err(|e| LabError::Usage { message: format!("printing the results: {e}") })?;
        println!("{text}");
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn parse_var(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The helpers must stay single-threaded until they have joined a mount namespace.
    match &cli.command {
        Command::NsExec { ns, detach_log, command } => {
            let err = enter::enter_and_run(&ns.namespaces(), command, None, detach_log.as_deref());
            eprintln!("tartanlab: {err}");
            return ExitCode::from(127);
        }
        Command::PidInit { ns } => return helper_exit(pidns::run_helper(&ns.namespaces())),
        Command::NodeInit { spec } => {
            let result = serde_json::from_str::<node_init::NodeInitSpec>(spec)
                .map_err(|e| format!("bad node spec: {e}"))
                .and_then(|spec| node_init::run(&spec));
            return helper_exit(result);
        }
        _ => {}
    }
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => tracing::Level::WARN,
        (_, 0) => tracing::Level::INFO,
        (_, 1) => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    // Colour only on a terminal, and never with NO_COLOR set (no escapes in log files).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .with_max_level(level)
        .init();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How a hidden helper ends: its error on stderr, for the process that started it.
fn helper_exit(result: std::result::Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn lab_dir_base() -> Option<PathBuf> {
    std::env::var_os("CLAB_LABDIR_BASE").map(PathBuf::from)
}

fn load_options(lab: &LabArgs, skip_file_checks: bool) -> LoadOptions {
    LoadOptions {
        vars: lab.vars.iter().cloned().collect::<BTreeMap<_, _>>(),
        name: lab.name.clone(),
        skip_file_checks,
        lab_dir_base: lab_dir_base(),
    }
}

/// The topology file: given, or the only `*.clab.y(a)ml` in the current directory.
fn topo_file(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let found: Vec<PathBuf> = std::fs::read_dir(".")
        .map_err(LabError::io("reading the current directory"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".clab.yml") || n.ends_with(".clab.yaml"))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(usage(
            "no topology file given (-t FILE) and no *.clab.yml in the current directory",
        )),
        _ => Err(usage("several *.clab.yml files here; choose one with -t FILE")),
    }
}

fn usage(message: &str) -> LabError {
    LabError::Usage { message: format!("{message} (see tartanlab --help)") }
}

fn require_root(what: &'static str) -> Result<()> {
    if procfs::is_root() { Ok(()) } else { Err(LabError::NotRoot { what }) }
}

/// The deployed lab a command refers to, by `--lab NAME` or by file.
fn lab_state(lab: &LabArgs, lab_name: Option<&str>) -> Result<LabState> {
    let name = match lab_name.or(lab.name.as_deref()) {
        Some(n) => n.to_string(),
        None => topology::lab_name(&topo_file(lab.topo.as_deref())?, &load_options(lab, true))?,
    };
    LabState::load(&name)?.ok_or(LabError::NotDeployed { lab: name })
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Deploy { lab, reconfigure, strict_exec, exec_timeout } => {
            require_root("tartanlab deploy")?;
            let file = topo_file(lab.topo.as_deref())?;
            let exe =
                std::env::current_exe().map_err(LabError::io("finding the tartanlab binary"))?;
            let mut opts = deploy::DeployOptions::new(exe);
            opts.load = load_options(&lab, false);
            opts.reconfigure = reconfigure;
            opts.strict_exec = strict_exec;
            opts.exec_timeout = Duration::from_secs(exec_timeout);
            let deployed = deploy::deploy(&file, &opts)?;
            print!("{}", inspect::to_table(&inspect::view(&deployed.state)));
            if !deployed.warnings.is_empty() {
                eprintln!(
                    "warning: the lab runs, but {} thing(s) failed (listed above); the nodes' logs are in {}",
                    deployed.warnings.len(),
                    deployed.state.lab_dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Destroy { lab, all, lab_name, keep_lab_dir, cleanup, force } => {
            require_root("tartanlab destroy")?;
            let keep_lab_dir = if cleanup {
                destroy::LabDir::Cleanup
            } else {
                destroy::LabDir::from(keep_lab_dir)
            };
            if all {
                let results = destroy::destroy_all(keep_lab_dir);
                if results.is_empty() {
                    println!("no labs to destroy");
                }
                let mut ok = true;
                for (name, r) in results {
                    match r {
                        Ok(_) => println!("destroyed {name}"),
                        Err(e) => {
                            ok = false;
                            eprintln!("Error: destroying {name}: {e}");
                        }
                    }
                }
                return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
            let report = match lab_name {
                Some(name) => destroy::destroy_lab(&name, keep_lab_dir)?,
                None => {
                    let file = topo_file(lab.topo.as_deref())?;
                    let opts = load_options(&lab, true);
                    destroy::destroy_file(
                        &file,
                        &opts,
                        opts.lab_dir_base.as_deref(),
                        keep_lab_dir,
                        force,
                    )?
                }
            };
            if report.was_deployed {
                println!("destroyed {}", report.lab);
                if let Some(dir) = &report.lab_dir_kept {
                    println!(
                        "kept the lab directory {} (it was there before the lab, or \
                         --keep-lab-dir; --cleanup removes it)",
                        dir.display()
                    );
                }
            } else if let Some(dir) = &report.lab_dir_removed {
                println!(
                    "lab {} is not deployed; removed its directory {}",
                    report.lab,
                    dir.display()
                );
            } else {
                println!("lab {} is not deployed; nothing to destroy", report.lab);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { topo, lab_name, format } => {
            let states: Vec<LabState> = match (topo, lab_name) {
                (None, None) => tartan_labs::state::known_labs()
                    .iter()
                    .filter_map(|l| LabState::load(l).ok().flatten())
                    .collect(),
                (topo, name) => {
                    let args = LabArgs { topo, name: None, vars: vec![] };
                    vec![lab_state(&args, name.as_deref())?]
                }
            };
            let rows: Vec<_> = states.iter().flat_map(inspect::view).collect();
            match format {
                OutputFormat::Json => println!("{}", inspect::to_json(&rows)),
                OutputFormat::Table if rows.is_empty() => println!("no labs are deployed"),
                OutputFormat::Table => print!("{}", inspect::to_table(&rows)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec { lab, lab_name, node, command, cmds, labels, format, timeout } => {
            require_root("tartanlab exec")?;
            let state = lab_state(&lab, lab_name.as_deref())?;
            if !cmds.is_empty() {
                return exec_cmds(&state, node.as_deref(), &cmds, &labels, format, timeout);
            }
            let Some(node) = node else {
                return Err(LabError::Usage {
                    message:
                        "exec needs a NODE and `-- CMD`, or `--cmd CMD` (every node, or those \
                              --label KEY=VALUE picks)"
                            .into(),
                });
            };
            if command.is_empty() {
                return Err(LabError::Usage {
                    message: format!("exec {node}: give the command after `--` (or use --cmd)"),
                });
            }
            let node = state.node(&node)?;
            let mut env = node.env.clone();
            if let Ok(term) = std::env::var("TERM") {
                env.insert("TERM".into(), term);
            }
            Err(enter::enter_and_run(
                &enter::NodeNamespaces::of(&state, node),
                &command,
                Some(&env),
                None,
            ))
        }
        Command::Graph { lab, format } => {
            let topo = topology::load(&topo_file(lab.topo.as_deref())?, &load_options(&lab, true))?;
            print!("{}", graph::render(&topo, format));
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Bgp {
            peers,
            prefixes,
            targets,
            timeout,
            json,
            keep_files,
        }) => {
            require_root("tartanlab bench")?;
            let opts = tartan_labs::bench::bgp::BenchOptions {
                peers,
                prefixes,
                targets,
                timeout: Duration::from_secs(timeout),
                work_dir: bench_dir(),
                tartanlab: std::env::current_exe().map_err(LabError::io("finding tartanlab"))?,
                keep_files,
            };
            let results = tartan_labs::bench::bgp::run(&opts)?;
            println!(
                "BGP convergence: {peers} peers × {prefixes} prefixes ({} routes), BIRD injectors and monitor, 3 s / 9 s timers",
                peers * prefixes
            );
            print!("{}", tartan_labs::bench::bgp::table(&opts, &results));
            print_json(json, &results);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Ipam {
            datastore,
            replicas,
            clients,
            allocs,
            reference_allocs,
            json,
            keep_files,
        }) => {
            let opts = tartan_labs::bench::ipam::IpamBenchOptions {
                clients,
                allocs,
                reference_allocs,
                work_dir: bench_dir(),
                keep_files,
                etcd_replicas: match datastore.as_str() {
                    "sled" => 0,
                    "etcd" => replicas.max(1),
                    other => {
                        return Err(LabError::Usage {
                            message: format!("--datastore {other:?}: use sled or etcd"),
                        });
                    }
                },
            };
            let results = tartan_labs::bench::ipam::run(&opts)?;
            println!(
                "IPAM allocation: {clients} clients, {allocs} allocations through the HTTP API (host-local: {reference_allocs})"
            );
            print!("{}", tartan_labs::bench::ipam::table(&results));
            print_json(json, &results);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Cni { count, json }) => {
            require_root("tartanlab bench")?;
            let me = std::env::current_exe().map_err(LabError::io("finding tartanlab"))?;
            let rows = tartan_labs::bench::fabric::cni(&me, &bench_dir(), count)?;
            println!(
                "CNI latency: {count} ADDs then {count} DELs per target through `tartan sandbox`, on one lab host"
            );
            print!("{}", tartan_labs::bench::fabric::cni_table(&rows));
            print_json(json, &rows);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Burst { containers, parallel, json }) => {
            require_root("tartanlab bench")?;
            let me = std::env::current_exe().map_err(LabError::io("finding tartanlab"))?;
            let r = tartan_labs::bench::fabric::burst(&me, &bench_dir(), containers, parallel)?;
            println!(
                "Burst: {containers} containers on host1, {parallel} ADDs at a time, pinged from a container on host2"
            );
            println!(
                "all added after {:.2} s; all reachable after {:.2} s (target: under 3 s)",
                r.added_s, r.reachable_s
            );
            print_json(json, &r);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Datapath { seconds, json }) => {
            require_root("tartanlab bench")?;
            let me = std::env::current_exe().map_err(LabError::io("finding tartanlab"))?;
            let r = tartan_labs::bench::fabric::datapath(&me, &bench_dir(), seconds)?;
            println!("Datapath: iperf3 TCP for {seconds} s over the hosts' link");
            println!(
                "host to host {:.2} Gbit/s; container to container {:.2} Gbit/s = {:.2}× (target: at least 0.95×)",
                r.host_gbps,
                r.container_gbps,
                r.container_gbps / r.host_gbps
            );
            print_json(json, &r);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Bfd {
            timers,
            cpu_targets,
            sessions,
            cpu_seconds,
            load_prefixes,
            load_seconds,
            keep_files,
            json,
        }) => {
            require_root("tartanlab bench")?;
            let o = tartan_labs::bench::bfd::BfdBenchOptions {
                tartanlab: std::env::current_exe()
                    .map_err(|source| LabError::Io { what: "finding tartanlab".into(), source })?,
                work_dir: bench_dir(),
                timers: timers
                    .iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        t.parse().map_err(|_| LabError::Usage {
                            message: format!("--timers: `{t}` is not a number of milliseconds"),
                        })
                    })
                    .collect::<Result<_, _>>()?,
                sessions,
                cpu_seconds,
                cpu_targets: cpu_targets.into_iter().filter(|t| !t.is_empty()).collect(),
                load_prefixes,
                load_seconds,
                keep_files,
            };
            let result = tartan_labs::bench::bfd::run(&o)?;
            println!("BFD: failover (every daemon at the same timers) and CPU");
            print!("{}", tartan_labs::bench::bfd::table(&result));
            print_json(json, &result);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Routes { routes, runs, json }) => {
            require_root("tartanlab bench")?;
            let result = tartan_labs::bench::routes::run(routes, runs)?;
            println!(
                "Route programming: {routes} /32 routes into a fresh namespace (best of {runs})"
            );
            print!("{}", tartan_labs::bench::routes::table(&result));
            print_json(json, &result);
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe(ProbeCommand::Send { to, pps, count }) => {
            let errors = tartan_labs::probe::send(to, pps, count)
                .map_err(|source| LabError::Io { what: format!("probe send to {to}"), source })?;
            if errors > 0 {
                eprintln!("{errors} of {count} datagrams could not be sent (no route at the time)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe(ProbeCommand::Recv { port, idle, first }) => {
            let secs = |s: f64| Duration::from_secs_f64(s.clamp(0.01, 86_400.0));
            let report =
                tartan_labs::probe::receive(port, secs(idle), secs(first)).map_err(|source| {
                    LabError::Io { what: format!("probe receive on {port}"), source }
                })?;
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { lab } => {
            let topo =
                topology::load(&topo_file(lab.topo.as_deref())?, &load_options(&lab, false))?;
            for w in &topo.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: valid ({} nodes, {} links)",
                topo.file.display(),
                topo.nodes.len(),
                topo.links.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Supervise { lab } => {
            supervisor::run(&lab)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::NsExec { .. } | Command::NodeInit { .. } | Command::PidInit { .. } => {
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where benchmarks keep their files.
fn bench_dir() -> PathBuf {
    std::env::temp_dir().join("tartanlab-bench")
}

/// A benchmark's results as JSON too, when asked.
fn print_json<T: serde::Serialize>(json: bool, results: &T) {
    if json {
        println!("{}", serde_json::to_string_pretty(results).unwrap_or_default());
    }
}
