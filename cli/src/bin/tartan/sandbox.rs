//! `tartan sandbox`: the command line of the minimal container runtime in
//! `tartan_felix::sandbox` (options, output formatting); the runtime itself lives there.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;
use tartan_felix::sandbox::{self, SandboxInfo, SandboxOptions};

pub const ABOUT: &str = "\
A minimal container runtime for debugging and labs, driving CNI plugins exactly as libcni and
cnitool do. A sandbox is a named network namespace, /run/netns/NAME (so `ip -n NAME ...` works
on it), and NAME is also its CNI container ID.

The network is loaded as libcni loads it: the *.conflist files of --conf-dir in file-name order,
the first whose name is --net (or simply the first), then single-plugin *.conf/*.json files.
Plugins are found in --cni-path. `add` runs every plugin's ADD in order, each getting the
previous result as prevResult, and caches the final result in
<cache-dir>/results/<network>-<NAME>-<ifname> (libcni's format). When an ADD fails, the plugins
that ran are deleted in reverse and the namespace removed. `del` runs DEL in reverse with the
cached result and removes the cache entry and the namespace; deleting what is gone succeeds.
`check` runs CHECK with the cached result (skipped when the list says disableCheck).
A namespace that no cache entry names (someone's `ip netns add`, a lab's) is never handed to a
plugin nor deleted.

Plugin errors are shown with their CNI code (spec 1.0: 1 incompatible version, 2 unsupported
field, 3 unknown container, 4 invalid environment, 5 I/O, 6 decoding, 7 invalid config,
11 try again later). --verbose logs every plugin's stdin, stdout and stderr.";

pub const EXAMPLES: &str = "\
Examples:
  tartan sandbox add web                      attach a sandbox to the first network
  tartan sandbox add db --net tartan --json   the raw CNI result
  tartan sandbox exec web -- ping -c1 10.65.0.7
  tartan sandbox exec web -- ip addr
  tartan sandbox list                         NAME NETWORK NETNS ADDRESSES
  tartan sandbox check web
  tartan sandbox del web
  CNI_PATH=./target/debug:/usr/lib/cni NETCONFPATH=./lab/net.d tartan sandbox add t1";

#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    #[command(subcommand)]
    command: SandboxCommand,
    /// Where network configurations are.
    #[arg(long, global = true, value_name = "DIR", env = "NETCONFPATH", default_value = sandbox::conf::DEFAULT_CONF_DIR)]
    conf_dir: PathBuf,
    /// Where CNI plugins are, `:`-separated, searched in order.
    #[arg(
        long,
        global = true,
        value_name = "DIRS",
        env = "CNI_PATH",
        default_value = "/opt/cni/bin:/usr/lib/cni"
    )]
    cni_path: String,
    /// The result cache's root (entries in <DIR>/results).
    #[arg(long, global = true, value_name = "DIR", env = "CNI_CACHE_DIR", default_value = sandbox::cache::DEFAULT_CACHE_DIR)]
    cache_dir: PathBuf,
    /// The network to use (default: the first in --conf-dir; on del and check, the cached one).
    #[arg(long = "net", global = true, value_name = "NETWORK")]
    net: Option<String>,
    /// The interface name inside the sandbox.
    #[arg(long, global = true, value_name = "NAME", env = "CNI_IFNAME", default_value = "eth0")]
    ifname: String,
    /// Arguments for the plugins, `K=V;K=V` (passed as CNI_ARGS).
    #[arg(long, global = true, value_name = "K=V;...", env = "CNI_ARGS")]
    args: Option<String>,
    /// Log every plugin run (stdin, stdout, stderr) to stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Subcommand, Debug)]
enum SandboxCommand {
    /// Create sandbox NAME and attach it to the network; prints its interfaces and addresses.
    Add {
        /// The sandbox (letters, digits, `_`, `.`, `-`; at most 64 characters).
        name: String,
        /// Print the final CNI result as JSON.
        #[arg(long)]
        json: bool,
        /// A label for the workload, for policy selectors (repeatable); passed to the plugins
        /// as `args.cni.labels`.
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
        labels: Vec<(String, String)>,
    },
    /// Detach sandbox NAME from the network and remove it (succeeds if it is already gone).
    Del {
        /// The sandbox.
        name: String,
    },
    /// Ask the plugins whether sandbox NAME is still set up as its cached result says.
    Check {
        /// The sandbox.
        name: String,
    },
    /// Run a command inside sandbox NAME's network namespace: `exec NAME -- CMD [ARG...]`.
    Exec {
        /// The sandbox.
        name: String,
        /// The command and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<OsString>,
    },
    /// The sandboxes in the cache: NAME NETWORK NETNS ADDRESSES.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `KEY=VALUE` (the value may be empty).
fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE (e.g. --label app=web)")),
    }
}

pub fn run(args: SandboxArgs) -> ExitCode {
    let level = if args.verbose {
        tracing_subscriber::filter::LevelFilter::DEBUG
    } else {
        tracing_subscriber::filter::LevelFilter::WARN
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr (`2>&1 | head`) must not panic us halfway through an ADD.
        .log_internal_errors(false)
        .with_max_level(level)
        .init();
    let opts = SandboxOptions {
        conf_dir: args.conf_dir,
        cni_path: args.cni_path.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect(),
        cache_dir: args.cache_dir,
        network: args.net,
        ifname: args.ifname,
        args: args.args.filter(|a| !a.is_empty()),
        labels: match &args.command {
            SandboxCommand::Add { labels, .. } => labels.clone(),
            _ => Vec::new(),
        },
    };
    let done = match args.command {
        SandboxCommand::Add { name, json, .. } => sandbox::add(&name, &opts).map(|result| {
            if json {
                out(&format!("{}\n", serde_json::to_string_pretty(&result).unwrap_or_default()));
            } else {
                out(&summary(&name, &opts, &result));
            }
        }),
        SandboxCommand::Del { name } => sandbox::del(&name, &opts),
        SandboxCommand::Check { name } => {
            sandbox::check(&name, &opts).map(|()| out(&format!("{name}: ok\n")))
        }
        SandboxCommand::Exec { name, command } => Err(sandbox::exec(&name, &command)),
        SandboxCommand::List { json } => sandbox::list(&opts).map(|list| {
            if json {
                out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&list_json(&list)).unwrap_or_default()
                ));
            } else {
                out(&table(&list));
            }
        }),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tartan sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints to stdout; a closed stdout is not worth a panic once the work is done.
fn out(text: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
}

/// A few lines on what ADD made: each interface with its addresses, then routes and DNS.
fn summary(name: &str, opts: &SandboxOptions, result: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    // The network is the cached one (the first in --conf-dir unless --net named it).
    let network = sandbox::list(opts)
        .ok()
        .and_then(|l| l.into_iter().find(|s| s.name == name && s.ifname == opts.ifname))
        .map_or_else(|| opts.network.clone().unwrap_or_default(), |s| s.network);
    let mut out = format!(
        "sandbox {name} ({}) on network {network}\n",
        tartan_felix::netns::path(name).display()
    );
    let interfaces = result["interfaces"].as_array().cloned().unwrap_or_default();
    let ips = result["ips"].as_array().cloned().unwrap_or_default();
    let addresses = |index: Option<usize>| -> Vec<String> {
        ips.iter()
            .filter(|ip| ip["interface"].as_u64().map(|i| i as usize) == index)
            .map(|ip| match ip["gateway"].as_str() {
                Some(gw) => format!("{} gw {gw}", s(&ip["address"])),
                None => s(&ip["address"]),
            })
            .collect()
    };
    for (i, iface) in interfaces.iter().enumerate() {
        let place = if s(&iface["sandbox"]).is_empty() { "host" } else { "sandbox" };
        let mut line = format!("  {place:<7} {}", s(&iface["name"]));
        if let Some(mac) = iface["mac"].as_str() {
            line += &format!("  {mac}");
        }
        for a in addresses(Some(i)) {
            line += &format!("  {a}");
        }
        out += &format!("{line}\n");
    }
    for a in addresses(None) {
        out += &format!("  address {a}\n");
    }
    for route in result["routes"].as_array().into_iter().flatten() {
        match route["gw"].as_str() {
            Some(gw) => out += &format!("  route   {} via {gw}\n", s(&route["dst"])),
            None => out += &format!("  route   {}\n", s(&route["dst"])),
        }
    }
    let dns: Vec<String> =
        result["dns"]["nameservers"].as_array().into_iter().flatten().map(s).collect();
    if !dns.is_empty() {
        out += &format!("  dns     {}\n", dns.join(", "));
    }
    out
}

fn table(list: &[SandboxInfo]) -> String {
    let rows: Vec<[String; 4]> = list
        .iter()
        .map(|s| {
            let netns = s.netns.display().to_string() + if s.netns_exists { "" } else { " (gone)" };
            let ips = if s.ips.is_empty() { "-".to_string() } else { s.ips.join(",") };
            [s.name.clone(), s.network.clone(), netns, ips]
        })
        .collect();
    let header = ["NAME", "NETWORK", "NETNS", "ADDRESSES"].map(String::from);
    let mut width = [0; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for [a, b, c, d] in std::iter::once(&header).chain(&rows) {
        out += &format!(
            "{a:<w0$}  {b:<w1$}  {c:<w2$}  {d}\n",
            w0 = width[0],
            w1 = width[1],
            w2 = width[2]
        );
    }
    out
}

fn list_json(list: &[SandboxInfo]) -> Value {
    list.iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name, "network": s.network, "ifname": s.ifname,
                "netns": s.netns, "netnsExists": s.netns_exists, "ips": s.ips,
            })
        })
        .collect()
}
