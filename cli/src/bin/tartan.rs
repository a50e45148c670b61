//! `tartan`: the daemons (`apiserver`, `node`, `bgp`) and, when `CNI_COMMAND` is set, the CNI
//! plugin; `sandbox` is a minimal container runtime for debugging. docs/DESIGN.md lists the modes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "tartan/logging.rs"]
mod logging;
#[path = "tartan/node.rs"]
mod node;
use tartan_bgp::daemon::{self, control, show};
use tartan_bgp::types::{Family, Prefix};

#[path = "tartan/sandbox.rs"]
mod sandbox;

const ABOUT: &str = "Tartan's daemons and CNI plugin.";

const LONG_ABOUT: &str = "\
Tartan's daemons and CNI plugin.

Modes:
  bgp -c FILE    the BGP speaker alone (route server, reflector, injector) — `tartan bgp --help`
  apiserver      the datastore and HTTP API — `tartan apiserver --help`
  node           the node agent — `tartan node --help`
  sandbox        a minimal container runtime for debugging — `tartan sandbox --help`

With CNI_COMMAND set, tartan runs as the CNI plugin of type `tartan`: it forwards ADD, DEL and
CHECK to the node agent on this host (the conflist's agentSocket, default
/run/tartan/agent.sock) and answers VERSION itself.";

#[derive(Parser, Debug)]
#[command(name = "tartan", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// The BGP speaker alone: `tartan bgp -c FILE` runs it; `status` and `rib` ask a running one.
    #[command(long_about = BGP_ABOUT, after_help = BGP_EXAMPLES)]
    Bgp(BgpArgs),
    /// The datastore and HTTP API: resources, block IPAM and watch, in sled or etcd.
    #[command(long_about = APISERVER_ABOUT)]
    Apiserver(ApiserverArgs),
    /// The node agent: registers the host, peers over BGP, programs routes, serves CNI.
    #[command(long_about = node::NODE_ABOUT)]
    Node(node::NodeArgs),
    /// A minimal container runtime for debugging: CNI plugins run as libcni runs them.
    #[command(long_about = sandbox::ABOUT, after_help = sandbox::EXAMPLES)]
    Sandbox(sandbox::SandboxArgs),
}

const BGP_ABOUT: &str = "\
The BGP speaker alone — a route server, a reflector, an injector — configured by a TOML file.

The file has a [global] table (asn, router-id, listen, cluster-id, multipath, graceful-restart,
restart-time, control-socket), [[neighbor]] tables (address or range, remote-as, passive,
hold-time, keepalive, connect-retry, families, route-reflector-client, cluster-id, next-hop-self,
next-hop-keep, password, graceful-restart, add-path-receive, extended-messages,
extended-next-hop, max-prefixes, max-prefixes-restart, import, export, local-address, port,
interface, description), [[originate]] tables (prefix, communities, large-communities, med,
local-pref) and [[policy]] tables with [[policy.rule]]s. docs/bgp.md describes every key.

Defaults fit a fabric: hold time 90 s (set 9 with keepalive 3 for fast failure detection),
connect retry 5 s, graceful restart on (restart time 120 s), every route accepted and
advertised (name an import or export policy to filter), next hop self towards eBGP peers.

Signals: SIGHUP re-reads the file and applies only what changed (neighbors added, removed or
changed without touching the others; originated prefixes). SIGTERM and SIGINT stop the speaker;
with graceful restart on, connections close without a NOTIFICATION so that peers keep our
routes until we return (up to the restart time).";

const BGP_EXAMPLES: &str = "\
Examples:
  tartan bgp -c /etc/tartan/bgp.toml            run the speaker
  tartan bgp -c /etc/tartan/bgp.toml --check    check the file and exit
  tartan bgp status                             neighbors: state, uptime, routes
  tartan bgp rib                                IPv4 routes with their attributes
  tartan bgp rib --family ipv6-unicast 2001:db8::/32 --json";

#[derive(clap::Args, Debug)]
struct BgpArgs {
    /// The configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration file and exit.
    #[arg(long, requires = "config")]
    check: bool,
    /// The control socket (default: control-socket from the file, else /run/tartan/bgp.sock).
    #[arg(long, value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: tracing_subscriber::filter::LevelFilter,
    /// Log lines as text (coloured only on a terminal) or JSON, one object per line.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Option<BgpCommand>,
}

#[derive(Subcommand, Debug)]
enum BgpCommand {
    /// A running speaker's neighbors: state, uptime, routes received, accepted and advertised;
    /// then its BFD sessions.
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A running speaker's BFD sessions: state, negotiated intervals, detection time, flaps and
    /// last diagnostic. `--json` uses the field names of FRR's `show bfd peers json`
    /// (intervals in milliseconds).
    Bfd {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A running speaker's routes, every path with its attributes, best first.
    Rib {
        /// Only routes inside this prefix.
        prefix: Option<Prefix>,
        /// ipv4-unicast or ipv6-unicast (default: the family of PREFIX, else ipv4-unicast).
        #[arg(long, value_parser = parse_family)]
        family: Option<Family>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

const APISERVER_ABOUT: &str = "\
The datastore and HTTP API of the fabric: resources (IPPool, IPAMConfig, BGPConfiguration,
BGPPeer, Node, and what the agents report), block IPAM, and a watch stream for the node agents.
Every acknowledged write is durable before the answer is sent.

Datastores:
  --datastore sled (default)  an embedded database under --data-dir: one server, a lab or a rack.
  --datastore etcd            an etcd v3 cluster (--etcd-endpoints): run any number of API
                              servers on it, each stateless; agents and tartanctl take them all
                              (--api http://A:7180,http://B:7180) and fail over. Every write is
                              one conditional etcd transaction, so no address is given twice
                              whichever server hands it out. Run etcd with --pre-vote=true and
                              compaction on (--auto-compaction-mode revision
                              --auto-compaction-retention 10000); docs/datastore.md has more.

On first start the server writes a random bearer token to --token-file (default
<data-dir>/token, mode 0600); servers of one fabric share the file. A token shorter than 32
characters, or a file others can read, is refused. Every request except /healthz must carry a
token: `Authorization: Bearer <token>`. This admin token may do everything; each node agent
should get its own credential instead (`tartanctl node credential issue NODE`), which writes
only that node's status, endpoints and addresses. tartanctl finds a token with --token-file or
TARTAN_TOKEN_FILE.

Transport: with --tls-cert and --tls-key the server speaks HTTPS only (TLS 1.2 and 1.3);
clients trust its CA with --ca-file or TARTAN_CA_FILE and check its name. A new certificate is
put in use on SIGHUP or within seconds of the files changing; connections keep theirs. Without
them the API is plain HTTP: keep it on loopback or a private network. Clients must finish their
headers within --header-timeout seconds; at most --max-connections are open at once.

Leaked addresses (of nodes that are gone, or no longer used by any workload their node reports)
and empty blocks are given back after IPAMConfig's leakGracePeriodSeconds (default 900 s).

Examples:
  tartan apiserver --data-dir /var/lib/tartan
  tartan apiserver --data-dir ./data --listen 0.0.0.0:7180 --tls-cert api.pem --tls-key api.key
  tartan apiserver --apply pools.yaml           start with these pools (applied each start)
  tartan apiserver --datastore etcd --etcd-endpoints http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379 \
      --token-file /etc/tartan/token --listen 0.0.0.0:7180    one of several servers on etcd
  TARTAN_TOKEN_FILE=./data/token TARTAN_CA_FILE=ca.pem tartanctl --api https://api1:7180 get pools";

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum DatastoreKind {
    Sled,
    Etcd,
}

#[derive(clap::Args, Debug)]
struct ApiserverArgs {
    /// Where the database and the token file live (created if missing).
    #[arg(long, value_name = "DIR", env = "TARTAN_DATA_DIR", default_value = "/var/lib/tartan")]
    data_dir: PathBuf,
    /// The address to serve on.
    #[arg(long, value_name = "ADDR:PORT", env = "TARTAN_LISTEN", default_value = "127.0.0.1:7180")]
    listen: std::net::SocketAddr,
    /// Where the data lives: `sled` (embedded, under --data-dir) or `etcd`.
    #[arg(long, value_name = "sled|etcd", env = "TARTAN_DATASTORE", default_value = "sled")]
    datastore: DatastoreKind,
    /// etcd members, comma-separated (with --datastore etcd).
    #[arg(long, value_name = "URL[,URL...]", env = "TARTAN_ETCD_ENDPOINTS", value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// The key prefix of this fabric in etcd (several fabrics can share one cluster).
    #[arg(long, value_name = "PREFIX", env = "TARTAN_ETCD_PREFIX", default_value = "/tartan/")]
    etcd_prefix: String,
    /// The CA that signs etcd's certificates (for https:// endpoints; PEM).
    #[arg(long, value_name = "FILE", env = "TARTAN_ETCD_CA_FILE")]
    etcd_ca_file: Option<PathBuf>,
    /// Client certificate for etcd (when etcd runs with --client-cert-auth; PEM).
    #[arg(long, value_name = "FILE", env = "TARTAN_ETCD_CERT_FILE", requires = "etcd_key_file")]
    etcd_cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "FILE", env = "TARTAN_ETCD_KEY_FILE", requires = "etcd_cert_file")]
    etcd_key_file: Option<PathBuf>,
    /// Serve HTTPS only, with this certificate (chain, PEM). Replaced without a restart: on
    /// SIGHUP, or within seconds of the file changing.
    #[arg(long, value_name = "FILE", env = "TARTAN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", env = "TARTAN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Connections open at once; beyond it a new one is closed at once.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a client has to finish its TLS handshake and each request's headers.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    header_timeout: u64,
    /// The bearer token's file: read, or created with a random token (mode 0600) when missing.
    /// Default: <data-dir>/token. (Not TARTAN_TOKEN_FILE: that names the file clients read,
    /// often a read-only copy.)
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Seconds between leak-collection rounds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    gc_interval: u64,
    /// Apply the resources in FILE (YAML or JSON, several documents) before serving: a lab's
    /// or a fresh cluster's pools and BGP configuration. Repeatable.
    #[arg(long, value_name = "FILE")]
    apply: Vec<PathBuf>,
    /// Log level: error, warn, info, debug, trace. At info every write and every refused
    /// credential is logged (who, what, result).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: tracing_subscriber::filter::LevelFilter,
    /// Log lines as text (coloured only on a terminal) or JSON, one object per line.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: logging::LogFormat,
}

fn apiserver(args: ApiserverArgs) -> ExitCode {
    let _ = logging::init(args.log_level, args.log_format, true);
    let mut seed = Vec::new();
    for file in &args.apply {
        match read_documents(file) {
            Ok(docs) => seed.extend(docs),
            Err(e) => {
                eprintln!("tartan apiserver: --apply {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    use tartan_ipam::api::server::Datastore;
    let datastore = match args.datastore {
        DatastoreKind::Sled => Datastore::Sled,
        DatastoreKind::Etcd => {
            if args.etcd_endpoints.is_empty() {
                eprintln!(
                    "tartan apiserver: --datastore etcd needs --etcd-endpoints http://HOST:2379[,...] \
                     (or TARTAN_ETCD_ENDPOINTS)"
                );
                return ExitCode::FAILURE;
            }
            let tls = match tartan_ipam::tls::client_config_from(
                args.etcd_ca_file.as_deref(),
                args.etcd_cert_file.as_deref(),
                args.etcd_key_file.as_deref(),
            ) {
                Ok(tls) => tls,
                Err(e) => {
                    eprintln!("tartan apiserver: TLS to etcd: {e}");
                    return ExitCode::FAILURE;
                }
            };
            Datastore::Etcd(tartan_ipam::store::etcd::EtcdConfig {
                endpoints: args.etcd_endpoints,
                prefix: args.etcd_prefix,
                tls,
            })
        }
    };
    let config = tartan_ipam::api::server::ServerConfig {
        data_dir: args.data_dir,
        datastore,
        token_file: args.token_file,
        listen: args.listen,
        gc_interval: std::time::Duration::from_secs(args.gc_interval.max(1)),
        seed,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(tartan_ipam::api::server::TlsFiles { cert, key }),
            _ => None,
        },
        limits: tartan_ipam::api::listen::Limits {
            header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
            max_connections: args.max_connections.max(1),
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tartan apiserver: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tartan_ipam::api::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tartan apiserver: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The documents of a YAML (or JSON) file, empty ones skipped.
fn read_documents(path: &std::path::Path) -> Result<Vec<serde_json::Value>, String> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value =
            serde_json::Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn parse_family(s: &str) -> Result<Family, String> {
    Family::ALL
        .into_iter()
        .find(|f| f.name() == s)
        .ok_or_else(|| format!("`{s}` is not a family: use ipv4-unicast or ipv6-unicast"))
}

fn main() -> ExitCode {
    if std::env::var_os("CNI_COMMAND").is_some() {
        return node::cni_plugin();
    }
    let cli = Cli::parse();
    if matches!(cli.mode, Mode::Bgp(_) | Mode::Apiserver(_) | Mode::Node(_)) {
        tartan_bgp::fatal::exit_on_panic();
    }
    match cli.mode {
        Mode::Bgp(args) => bgp(args),
        Mode::Apiserver(args) => apiserver(args),
        Mode::Sandbox(args) => sandbox::run(args),
        Mode::Node(args) => node::node(args),
    }
}

fn bgp(args: BgpArgs) -> ExitCode {
    // The socket: --socket, else the file's control-socket (a broken file is an error, not a
    // reason to ask another socket), else the default.
    let socket = || -> Result<PathBuf, daemon::ConfigError> {
        if let Some(s) = &args.socket {
            return Ok(s.clone());
        }
        match &args.config {
            Some(c) => daemon::DaemonConfig::load(c).map(|c| c.control_socket),
            None => Ok(PathBuf::from(daemon::config::DEFAULT_CONTROL_SOCKET)),
        }
    };
    if args.command.is_some() && args.check {
        eprintln!("tartan bgp: --check goes with -c FILE alone");
        return ExitCode::from(2);
    }
    match &args.command {
        Some(BgpCommand::Status { json }) => match socket()
            .map_err(|e| e.to_string())
            .and_then(|s| control::status(&s).map_err(|e| e.to_string()))
        {
            Ok(s) if *json => print_json(&s),
            Ok(s) => {
                print!("{}", show::status(&s));
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Some(BgpCommand::Bfd { json }) => match socket()
            .map_err(|e| e.to_string())
            .and_then(|s| control::status(&s).map_err(|e| e.to_string()))
        {
            Ok(s) if *json => print_json(&s.bfd),
            Ok(s) => {
                let text = show::bfd(&s);
                if text.is_empty() {
                    println!(
                        "No neighbor runs BFD (set `bfd = true` or its timers on a [[neighbor]])."
                    );
                } else {
                    print!("{}", text.trim_start());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Some(BgpCommand::Rib { prefix, family, json }) => {
            if let (Some(p), Some(f)) = (prefix, family) {
                if p.family() != *f {
                    eprintln!("tartan bgp rib: {p} is not an {f} prefix");
                    return ExitCode::from(2);
                }
            }
            let family = family.or(prefix.map(|p| p.family())).unwrap_or(Family::Ipv4Unicast);
            let answer = socket()
                .map_err(|e| e.to_string())
                .and_then(|s| control::rib(&s, family, *prefix).map_err(|e| e.to_string()));
            match answer {
                Ok(r) if *json => print_json(&r),
                Ok(r) => {
                    print!("{}", show::rib(&r));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        None => {
            let Some(path) = &args.config else {
                eprintln!(
                    "tartan bgp: give the configuration file with -c FILE (or run `status` or `rib`)"
                );
                return ExitCode::from(2);
            };
            if args.check {
                return match daemon::DaemonConfig::load(path) {
                    Ok(c) => {
                        println!(
                            "{}: valid ({} neighbors, {} originated prefixes)",
                            path.display(),
                            c.neighbors.len(),
                            c.originate.len()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                };
            }
            let _ = logging::init(args.log_level, args.log_format, false);
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            match rt.block_on(daemon::run(path, args.socket.clone())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> ExitCode {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("tartan: {e}");
    ExitCode::FAILURE
}
