//! `tartan node`: the node agent's command line (the agent itself is `tartan_felix::agent`).

use std::path::PathBuf;
use std::process::ExitCode;

use tartan_felix::agent::autodetect::Method;
use tartan_felix::agent::{AddressSource, AgentConfig, run};

pub const NODE_ABOUT: &str = "\
The node agent, one per host beside the container runtime. It registers this host as a Node
(with its BGP addresses), peers over BGP as the datastore says (node-to-node mesh, route
reflectors, BGPPeers such as ToR routers), advertises the address blocks affine to this host,
installs the routes it learns (proto 84), and serves the `tartan` CNI plugin on a unix socket.

It installs <cni-conf-dir>/10-tartan.conflist; a runtime (or `tartan sandbox add NAME`) then
gets containers with a routable address from the IP pools. Kernel routes stay in place when the
agent stops; a restarted agent resyncs and removes only what is stale.

Address detection (--ip-autodetection-method, as Calico's IP_AUTODETECTION_METHOD):
  first-found             the first global address on an interface that is not a container
                          veth, bridge or tunnel (default)
  interface=REGEX,...     the first address on an interface matching one of the expressions
  skip-interface=REGEX    first-found, skipping these interfaces too
  can-reach=DEST          the address the kernel would use to reach DEST
  cidr=CIDR,...           the first address inside one of the CIDRs

Examples:
  tartan node --api http://10.0.0.1:7180 --token-file /etc/tartan/token
  tartan node --ip 10.0.0.11/24 --ip6 autodetect --as 64513
  NODENAME=host1 IP_AUTODETECTION_METHOD=interface=eth1 tartan node";

#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// This host's Node name (default: the hostname).
    #[arg(long, env = "NODENAME")]
    name: Option<String>,
    /// The API server, or several on one datastore (`http://a:7180,http://b:7180`): calls
    /// fail over to the next when one cannot be reached.
    #[arg(
        long,
        env = "TARTAN_API",
        value_name = "URL[,URL...]",
        default_value = "http://127.0.0.1:7180"
    )]
    api: String,
    /// The API token file: this node's credential (`tartanctl node credential issue NODE`), or
    /// the admin token `tartan apiserver` writes in its data directory.
    #[arg(long, env = "TARTAN_TOKEN_FILE", default_value = "/var/lib/tartan/token")]
    token_file: PathBuf,
    /// The CA that signs the API servers' certificates, for https:// addresses (default: the
    /// system's CAs).
    #[arg(long, env = "TARTAN_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// The IPv4 BGP address: `autodetect`, `none`, or an address with its prefix length.
    #[arg(long, env = "IP", default_value = "autodetect")]
    ip: String,
    /// How `--ip autodetect` finds the address.
    #[arg(long, env = "IP_AUTODETECTION_METHOD", default_value = "first-found")]
    ip_autodetection_method: Method,
    /// The IPv6 BGP address: `autodetect` (none found: IPv6 routing off), `none`, or an
    /// address with its prefix length.
    #[arg(long, env = "IP6", default_value = "autodetect")]
    ip6: String,
    /// How `--ip6 autodetect` finds the address.
    #[arg(long, env = "IP6_AUTODETECTION_METHOD", default_value = "first-found")]
    ip6_autodetection_method: Method,
    /// This node's AS (default: the BGPConfiguration's, 64512).
    #[arg(long = "as", env = "AS", value_name = "ASN")]
    asn: Option<u32>,
    /// Labels for this host's Node, `KEY=VALUE` (repeatable, or comma-separated in
    /// TARTAN_NODE_LABELS): BGPPeers and pools select nodes by them, e.g. `rack=a`.
    #[arg(long = "label", env = "TARTAN_NODE_LABELS", value_delimiter = ',', value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Make this node a route reflector with this cluster ID (an IPv4-formatted number; nodes
    /// with the same ID form one cluster). Turn the mesh off in the BGPConfiguration.
    #[arg(long, env = "TARTAN_RR_CLUSTER_ID", value_name = "ID")]
    route_reflector_cluster_id: Option<std::net::Ipv4Addr>,
    /// Where local endpoint records live.
    #[arg(long, env = "TARTAN_STATE_DIR", default_value = "/var/lib/tartan/node")]
    state_dir: PathBuf,
    /// The unix socket the CNI plugin talks to.
    #[arg(long, env = "TARTAN_AGENT_SOCKET", default_value = "/run/tartan/agent.sock")]
    socket: PathBuf,
    /// Where to install the CNI network configuration.
    #[arg(long, env = "CNI_CONF_DIR", default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// Where runtimes find CNI plugins; `tartan` is linked there unless one exists.
    #[arg(long, env = "CNI_BIN_DIR", default_value = "/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// Install neither the CNI network configuration nor the plugin.
    #[arg(long)]
    no_cni_config: bool,
    /// The CNI network name (handles are `<network>.<containerID>`).
    #[arg(long, default_value = "tartan")]
    network: String,
    /// The route protocol number of our kernel routes; only routes with it are ever removed.
    #[arg(long, default_value_t = tartan_felix::routes::DEFAULT_PROTOCOL)]
    route_protocol: u8,
    /// Write learned routes with their next hops inline (`via 10.0.0.2`) instead of naming
    /// shared nexthop objects (`nhid N`, Linux 5.3+, about 40 % less kernel time per route).
    /// For tools that cannot read `nhid` routes; kernels without objects are detected anyway.
    #[arg(long, env = "TARTAN_NO_NEXTHOP_OBJECTS")]
    no_nexthop_objects: bool,
    /// Workload MTU (0: the MTU of the interface holding the node's address).
    #[arg(long, default_value_t = 0)]
    mtu: u32,
    /// Serve Prometheus metrics here (`none`: not at all).
    #[arg(long, env = "TARTAN_METRICS_LISTEN", default_value = "127.0.0.1:9091")]
    metrics_listen: String,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: tracing_subscriber::filter::LevelFilter,
    /// Log lines as text (coloured only on a terminal) or JSON, one object per line.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: crate::logging::LogFormat,
}

fn source(text: &str, method: &Method) -> Result<AddressSource, String> {
    match text {
        "autodetect" => Ok(AddressSource::Detect(method.clone())),
        "none" | "" => Ok(AddressSource::None),
        t if t.contains('/') => {
            t.parse().map(AddressSource::Explicit).map_err(|e| format!("{t:?}: {e}"))
        }
        t => {
            t.parse::<std::net::IpAddr>().map(|a| AddressSource::Explicit(a.into())).map_err(|_| {
                format!("{t:?} is not an address: give ADDRESS/LEN, `autodetect` or `none`")
            })
        }
    }
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

pub fn node(args: NodeArgs) -> ExitCode {
    let set_level = crate::logging::init(args.log_level, args.log_format, true);
    let name = args.name.clone().unwrap_or_else(hostname);
    if name.is_empty() {
        eprintln!("tartan node: no Node name: give --name or NODENAME");
        return ExitCode::FAILURE;
    }
    let mut cfg = AgentConfig::new(&name, &args.api);
    let addresses = source(&args.ip, &args.ip_autodetection_method)
        .and_then(|v4| source(&args.ip6, &args.ip6_autodetection_method).map(|v6| (v4, v6)));
    match addresses {
        Ok((v4, v6)) => {
            cfg.ipv4 = v4;
            cfg.ipv6 = v6;
        }
        Err(e) => {
            eprintln!("tartan node: {e}");
            return ExitCode::FAILURE;
        }
    }
    cfg.token_file = Some(args.token_file);
    cfg.ca_file = args.ca_file;
    cfg.asn = args.asn;
    cfg.rr_cluster_id = args.route_reflector_cluster_id;
    cfg.labels = args.labels.into_iter().collect();
    cfg.state_dir = args.state_dir;
    cfg.socket = args.socket;
    cfg.cni_conf_dir = (!args.no_cni_config).then_some(args.cni_conf_dir);
    cfg.cni_bin_dir = (!args.no_cni_config).then_some(args.cni_bin_dir);
    cfg.network_name = args.network;
    cfg.route_protocol = args.route_protocol;
    cfg.nexthop_objects = !args.no_nexthop_objects;
    cfg.mtu = args.mtu;
    cfg.log_level = args.log_level;
    cfg.set_log_level = Some(tartan_felix::agent::LogLevelHook(set_level));
    cfg.metrics_listen = match args.metrics_listen.as_str() {
        "none" | "" => None,
        text => match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                eprintln!("tartan node: --metrics-listen {text:?} is not ADDRESS:PORT or `none`");
                return ExitCode::FAILURE;
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tartan node: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tartan node: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The CNI plugin: the runtime executes `tartan` with CNI_COMMAND set.
pub fn cni_plugin() -> ExitCode {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut stdin) {
        eprintln!("tartan (CNI): reading stdin: {e}");
    }
    let out = tartan_felix::cni::plugin::run(|k| std::env::var(k).ok(), &stdin);
    println!("{}", out.stdout);
    if out.success { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
