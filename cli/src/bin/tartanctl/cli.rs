//! The command line of `tartanctl`: every command, option and help text (clap derive). Only
//! parsing lives here; the commands themselves are in the sibling modules.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::kinds;

const ABOUT: &str = "Operate a Tartan fabric: resources, IP address management, BGP status.";

const LONG_ABOUT: &str = "\
Operate a Tartan fabric: resources, IP address management, BGP status.

tartanctl talks to the API server (`tartan apiserver`) over HTTP with a bearer token. Where to
find both, highest precedence first: the --api / --token-file options, the TARTAN_API /
TARTAN_TOKEN_FILE variables, the config file (-c, TARTANCTL_CONFIG, else
/etc/tartan/tartanctl.yaml if it exists; YAML `{api: URL, tokenFile: FILE, caFile: FILE}`), and the defaults
http://127.0.0.1:7180 and /var/lib/tartan/token.

Resources (IPPool, BGPPeer, Node, ...) are YAML or JSON documents in calicoctl's shape:
apiVersion tartan/v1, kind, metadata {name, labels}, spec. `tartanctl get --help` lists every
kind with its aliases.

Exit status: 0 on success, 1 on any error (the message on stderr says what to do).";

const EXAMPLES: &str = "\
Examples:
  tartanctl apply -f fabric.yaml                 create or update every resource in a file
  tartanctl get pools -o wide                    the IP pools, with block size and NAT
  tartanctl get node node1 -o yaml               one resource as YAML
  tartanctl ipam show --show-blocks              address usage per pool and block
  tartanctl ipam check -o report.json            find leaked addresses
  tartanctl ipam release --from-report report.json
  tartanctl node status                          every node's BGP sessions
  TARTAN_TOKEN_FILE=./data/token tartanctl get nodes";

/// `tartanctl`.
#[derive(Parser, Debug)]
#[command(
    name = "tartanctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the API is and how to authenticate; accepted before or after the command.
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// The API server, or several separated by commas, tried in turn [default: `api` from the
    /// config file, else http://127.0.0.1:7180].
    #[arg(long, global = true, env = "TARTAN_API", value_name = "URL[,URL...]")]
    pub api: Option<String>,
    /// The file holding the API's bearer token [default: `tokenFile` from the config file, else
    /// /var/lib/tartan/token if readable].
    #[arg(long, global = true, env = "TARTAN_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The CA that signs the API servers' certificates, for https:// addresses [default:
    /// `caFile` from the config file, else the system's CAs].
    #[arg(long, global = true, env = "TARTAN_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// tartanctl's config file, YAML `{api: URL, tokenFile: FILE, caFile: FILE}` [default:
    /// /etc/tartan/tartanctl.yaml if it exists].
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        env = "TARTANCTL_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show resources of one kind as a table, YAML or JSON.
    #[command(long_about = GET_ABOUT, after_help = kinds::kinds_help())]
    Get(GetArgs),
    /// Create or update the resources in a file (each document's kind decides where it goes).
    #[command(after_help = APPLY_EXAMPLES)]
    Apply(FileArgs),
    /// Create the resources in a file; fails on one that already exists.
    #[command(after_help = CREATE_EXAMPLES)]
    Create(FileArgs),
    /// Replace the resources in a file; fails on one that does not exist.
    #[command(after_help = REPLACE_EXAMPLES)]
    Replace(FileArgs),
    /// Delete resources by kind and name, or those in a file.
    #[command(after_help = DELETE_EXAMPLES)]
    Delete(DeleteArgs),
    /// Change fields of a resource with a JSON merge patch (RFC 7396).
    #[command(after_help = PATCH_EXAMPLES)]
    Patch(PatchArgs),
    /// Set or remove labels of a resource.
    #[command(after_help = LABEL_EXAMPLES)]
    Label(LabelArgs),
    /// IP address management: usage, consistency check, release, settings.
    #[command(subcommand)]
    Ipam(IpamCommand),
    /// Node commands: the BGP sessions each node reports.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Datastore commands: migrate a sled datastore into etcd.
    #[command(subcommand)]
    Datastore(DatastoreCommand),
    /// Network policy: explain what the policies do to a packet.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print the client's version and the API server's.
    #[command(after_help = VERSION_EXAMPLES)]
    Version(VersionArgs),
    /// Print a shell completion script.
    #[command(after_help = COMPLETION_EXAMPLES)]
    Completion(CompletionArgs),
}

const GET_ABOUT: &str = "\
Show resources of one kind as a table, YAML or JSON.

KIND is a kind name, its plural or an alias (see below), in any case. Without NAME every
resource of the kind is shown (narrowed with -l SELECTOR, e.g. `rack == 'a'`); with names, just
those. `-o yaml` prints one document for a single resource and a List document otherwise; both
can be fed back to `tartanctl apply`. `-o json` is the API's JSON; `-o name` prints
`kind/name`; `-o custom-columns=NAME:.metadata.name,CIDR:.spec.cidr` the fields you choose.
`--api-version projectcalico.org/v3` writes YAML and JSON as calicoctl does, and `apply` takes
calicoctl's files (projectcalico.org/v3, every kind's Calico name and fields; a field Tartan
cannot honour is refused with what to do instead).

Examples:
  tartanctl get pools -o wide
  tartanctl get bgppeers -o yaml --api-version projectcalico.org/v3 > peers.yaml
  tartanctl get nodes -o custom-columns=NAME:.metadata.name,AS:.spec.bgp.asNumber
  tartanctl get pools -o name";

/// How `get` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// The table with more columns.
    Wide,
    /// YAML documents.
    Yaml,
    /// The API's JSON, pretty-printed.
    Json,
    /// `kind/name`, one a line (as kubectl's `-o name`).
    Name,
    /// `custom-columns=HEADER:.path,...`: chosen fields as a table (kubectl's form; paths like
    /// `.metadata.name`, `.spec.cidr`, `.spec.communities[0].value`).
    CustomColumns(Vec<(String, String)>),
}

/// `-o`: table, wide, yaml, json, name, or custom-columns=HEADER:.path[,...].
pub fn parse_output(text: &str) -> Result<Output, String> {
    Ok(match text {
        "table" => Output::Table,
        "wide" => Output::Wide,
        "yaml" => Output::Yaml,
        "json" => Output::Json,
        "name" => Output::Name,
        _ => {
            let Some(spec) = text.strip_prefix("custom-columns=") else {
                return Err(format!(
                    "{text:?} is not an output format: use table, wide, yaml, json, name or \
                     custom-columns=NAME:.metadata.name,CIDR:.spec.cidr"
                ));
            };
            let mut columns = Vec::new();
            for column in spec.split(',') {
                match column.split_once(':') {
                    Some((header, path)) if !header.is_empty() && path.starts_with('.') => {
                        columns.push((header.to_string(), path.to_string()));
                    }
                    _ => {
                        return Err(format!(
                            "custom-columns: {column:?} is not HEADER:.path (e.g. CIDR:.spec.cidr)"
                        ));
                    }
                }
            }
            Output::CustomColumns(columns)
        }
    })
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// The kind: ippool, bgppeer, node, ... (any alias).
    pub kind: String,
    /// Names of the resources (default: all of the kind).
    pub names: Vec<String>,
    /// Output format: table, wide, yaml, json, name, custom-columns=HEADER:.path[,...].
    #[arg(short = 'o', long, value_parser = parse_output, default_value = "table")]
    pub output: Output,
    /// The apiVersion of YAML and JSON output: tartan/v1, or projectcalico.org/v3 (Calico's
    /// kind names too) for files that calicoctl users keep; either applies back unchanged.
    #[arg(long, value_name = "VERSION", default_value = "tartan/v1", value_parser = ["tartan/v1", "projectcalico.org/v3"])]
    pub api_version: String,
    /// Only resources whose labels match this selector (`key == 'value'`, `has(key)`, `&&`, ...).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR", conflicts_with = "names")]
    pub selector: Option<String>,
}

const APPLY_EXAMPLES: &str = "\
Documents are YAML (separated by ---) or JSON, one resource each or a List of them; processing
stops at the first one that fails.

Examples:
  tartanctl apply -f pools.yaml
  cat peer.yaml | tartanctl apply -f -
  tartanctl get pools -o yaml > pools.yaml && tartanctl apply -f pools.yaml";

const CREATE_EXAMPLES: &str = "\
Examples:
  tartanctl create -f pool.yaml     fails with `already exists` if the pool is there";

const REPLACE_EXAMPLES: &str = "\
A document carrying metadata.resourceVersion replaces only that version (409 otherwise).

Examples:
  tartanctl replace -f pool.yaml    fails with `not found` if the pool is not there";

#[derive(Args, Debug)]
pub struct FileArgs {
    /// The file of resources (`-` for standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: String,
}

const DELETE_EXAMPLES: &str = "\
Examples:
  tartanctl delete bgppeer tor-a tor-b
  tartanctl delete -f pools.yaml
  tartanctl delete node old-node --skip-not-found

An IPPool that still holds addresses is not deleted: disable it, release or move its workloads,
then delete it.";

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The kind (any alias), when deleting by name.
    #[arg(required_unless_present = "file")]
    pub kind: Option<String>,
    /// The names to delete.
    pub names: Vec<String>,
    /// Delete the resources named in this file (`-` for standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE", conflicts_with_all = ["kind", "names"])]
    pub file: Option<String>,
    /// A resource that does not exist is not an error.
    #[arg(long)]
    pub skip_not_found: bool,
}

const PATCH_EXAMPLES: &str = "\
The patch is merged into the resource: objects merge, other values replace, null removes.

Examples:
  tartanctl patch pool pool-v4 -p '{\"spec\": {\"natOutgoing\": true}}'
  tartanctl patch bgpconfig default -p 'spec: {asNumber: 64513}'
  tartanctl patch node node1 -p '{\"spec\": {\"bgp\": {\"asNumber\": null}}}'";

#[derive(Args, Debug)]
pub struct PatchArgs {
    /// The kind (any alias).
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// The merge patch, as JSON or YAML.
    #[arg(short = 'p', long = "patch", value_name = "PATCH")]
    pub patch: String,
}

const LABEL_EXAMPLES: &str = "\
Examples:
  tartanctl label node node1 rack=a zone=eu-1
  tartanctl label node node1 rack=b --overwrite
  tartanctl label node node1 --remove rack";

#[derive(Args, Debug)]
pub struct LabelArgs {
    /// The kind (any alias).
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// Labels to set, as key=value.
    #[arg(value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Allow changing the value of a label that is already set.
    #[arg(long)]
    pub overwrite: bool,
    /// Remove this label (repeatable).
    #[arg(long, value_name = "KEY")]
    pub remove: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum DatastoreCommand {
    /// Copy a sled datastore into etcd (stop its API server first), verify, unlock.
    #[command(long_about = MIGRATE_ABOUT, after_help = MIGRATE_EXAMPLES)]
    Migrate(MigrateArgs),
}

const MIGRATE_ABOUT: &str = "\
Copy a sled datastore into etcd, as `calicoctl datastore migrate` does.

The sled database is opened directly, so its `tartan apiserver` must be stopped (the database
stays locked while a server holds it): nothing can change under the copy. Under the etcd prefix
a read-only marker is set first (API servers on etcd refuse writes while it exists), every key
is created only if absent, everything is read back and compared byte for byte, and only then is
the marker removed. The target prefix must be empty. On failure the marker stays, holding what
went wrong; delete the prefix and run the migration again.";

const MIGRATE_EXAMPLES: &str = "\
Examples:
  systemctl stop tartan-apiserver
  tartanctl datastore migrate --from-data-dir /var/lib/tartan \\
      --etcd-endpoints http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379
  tartan apiserver --datastore etcd --etcd-endpoints ... --token-file /var/lib/tartan/token";

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// The sled API server's data directory.
    #[arg(long, value_name = "DIR")]
    pub from_data_dir: PathBuf,
    /// The etcd members, comma-separated.
    #[arg(
        long,
        value_name = "URL[,URL...]",
        env = "TARTAN_ETCD_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    pub etcd_endpoints: Vec<String>,
    /// The key prefix to copy into (must be empty).
    #[arg(long, value_name = "PREFIX", default_value = "/tartan/")]
    pub etcd_prefix: String,
    /// The CA that signs etcd's certificates (for https:// endpoints).
    #[arg(long, value_name = "FILE", env = "TARTAN_ETCD_CA_FILE")]
    pub etcd_ca_file: Option<PathBuf>,
    /// Client certificate for etcd (when etcd asks for one).
    #[arg(long, value_name = "FILE", env = "TARTAN_ETCD_CERT_FILE", requires = "etcd_key_file")]
    pub etcd_cert_file: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, value_name = "FILE", env = "TARTAN_ETCD_KEY_FILE", requires = "etcd_cert_file")]
    pub etcd_key_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum IpamCommand {
    /// Address usage per pool (and block, node), borrowed addresses, one address, or settings.
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
    /// Look for leaked addresses and other inconsistencies; optionally write a report.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Release addresses: by address, by handle, or every leak found by `ipam check -o`.
    #[command(after_help = RELEASE_EXAMPLES)]
    Release(ReleaseArgs),
    /// Change the IPAM settings (IPAMConfig `default`).
    #[command(after_help = CONFIGURE_EXAMPLES)]
    Configure(ConfigureArgs),
    /// Allocate addresses by hand — a debugging aid; the CNI plugin allocates for containers.
    #[command(after_help = ALLOCATE_EXAMPLES)]
    Allocate(AllocateArgs),
}

const SHOW_EXAMPLES: &str = "\
Examples:
  tartanctl ipam show                        per pool, and blocks per node
  tartanctl ipam show --show-blocks          with a row for every block
  tartanctl ipam show --show-borrowed        addresses taken from another node's block
  tartanctl ipam show --ip 10.65.0.5         who holds one address
  tartanctl ipam show --show-configuration   strictAffinity, maxBlocksPerHost, ...";

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Add a row for every block under its pool.
    #[arg(long)]
    pub show_blocks: bool,
    /// List the addresses borrowed from other nodes' blocks instead.
    #[arg(long, conflicts_with_all = ["show_blocks", "ip", "show_configuration"])]
    pub show_borrowed: bool,
    /// Show who holds this address instead.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["show_blocks", "show_configuration"])]
    pub ip: Option<String>,
    /// Show the IPAM settings instead.
    #[arg(long, conflicts_with = "show_blocks")]
    pub show_configuration: bool,
}

const CHECK_EXAMPLES: &str = "\
Compares the blocks with the pools, the nodes and the workload endpoints the agents report. An
address allocated but used by no workload is a leak; the server also collects leaks by itself
after IPAMConfig's leakGracePeriodSeconds.

Exit status: 0 when nothing is wrong, 2 when problems were found (the report is still printed
and written), 1 when the check could not run. So it can gate CI or an alert.

Examples:
  tartanctl ipam check
  tartanctl ipam check || alert 'IPAM has problems'
  tartanctl ipam check -o report.json; tartanctl ipam release --from-report report.json";

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Write the report as JSON to this file (input of `ipam release --from-report`).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

const RELEASE_EXAMPLES: &str = "\
--from-report releases every address the report found allocated but unused, each only if it is
still the allocation the report saw (by sequence number): an address handed out again since is
skipped. Reports older than an hour are refused unless --force.

Examples:
  tartanctl ipam release --ip 10.65.0.5 --ip 10.65.0.6
  tartanctl ipam release --handle tartan-net.0123abcd
  tartanctl ipam release --from-report report.json";

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["ips", "handle", "from_report"])))]
pub struct ReleaseArgs {
    /// Release these addresses (`--ip A B` or `--ip A --ip B`).
    #[arg(long = "ip", value_name = "ADDR", num_args = 1..)]
    pub ips: Vec<String>,
    /// Release every address held under this handle.
    #[arg(long, value_name = "HANDLE")]
    pub handle: Option<String>,
    /// Release the leaks listed in a report of `tartanctl ipam check -o FILE`.
    #[arg(long, value_name = "FILE")]
    pub from_report: Option<PathBuf>,
    /// Accept a report older than an hour.
    #[arg(long, requires = "from_report")]
    pub force: bool,
}

const CONFIGURE_EXAMPLES: &str = "\
Reads IPAMConfig `default` (created if absent), changes the given fields and writes it back
guarded by its resourceVersion, then prints the result.

Examples:
  tartanctl ipam configure --strict-affinity=true
  tartanctl ipam configure --max-blocks-per-host 4 --ip-cooldown-seconds 30
  tartanctl ipam configure --leak-grace-period-seconds 0    turn leak collection off";

#[derive(Args, Debug)]
pub struct ConfigureArgs {
    /// Never borrow addresses from blocks affine to other nodes (alone: true).
    #[arg(long, value_name = "true|false", num_args = 0..=1, default_missing_value = "true")]
    pub strict_affinity: Option<bool>,
    /// At most this many blocks per node; 0 means unlimited.
    #[arg(long, value_name = "N")]
    pub max_blocks_per_host: Option<u32>,
    /// A released address is not handed out again for this many seconds.
    #[arg(long, value_name = "N")]
    pub ip_cooldown_seconds: Option<u32>,
    /// Leaked addresses and empty blocks are given back after this many seconds; 0 = never.
    #[arg(long, value_name = "N")]
    pub leak_grace_period_seconds: Option<u64>,
}

const ALLOCATE_EXAMPLES: &str = "\
A debugging aid: the addresses stay allocated until released (`ipam release --handle H`) or,
since no workload uses them, collected as leaks after the grace period.

Examples:
  tartanctl ipam allocate --node node1 --handle debug-1
  tartanctl ipam allocate --node node1 --handle debug-2 --ipv4 1 --ipv6 1
  tartanctl ipam allocate --node node2 --handle debug-3 --ip 10.65.0.70";

#[derive(Args, Debug)]
pub struct AllocateArgs {
    /// The node the addresses are for.
    #[arg(long, value_name = "NODE")]
    pub node: String,
    /// The handle to hold them under.
    #[arg(long, value_name = "HANDLE")]
    pub handle: String,
    /// How many IPv4 addresses [default: 1 unless --ipv6 or --ip is given].
    #[arg(long, value_name = "N")]
    pub ipv4: Option<u32>,
    /// How many IPv6 addresses.
    #[arg(long, value_name = "N")]
    pub ipv6: Option<u32>,
    /// This exact address.
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<String>,
    /// An attribute recorded with the allocation, as key=value (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub attribute: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// The BGP sessions of every node, or of one, as its agent last reported them.
    #[command(after_help = NODE_STATUS_EXAMPLES)]
    Status(NodeStatusArgs),
    /// A node agent's own credential: issue (or replace), revoke, list.
    #[command(subcommand)]
    Credential(CredentialCommand),
}

const CREDENTIAL_ABOUT: &str = "\
A node credential lets one node's agent (`tartan node`) read what it needs and write only its
own Node, NodeStatus, WorkloadEndpoints and addresses; the admin token (the API server's token
file) does everything. Give each agent its own instead of the admin token:

  1. tartanctl node credential issue host1 --output /etc/tartan/host1.token   (as admin)
  2. copy the file to host1 (mode 0600) and run `tartan node --token-file FILE` there
  3. to revoke: tartanctl node credential revoke host1 (the token stops working at once)

Issuing again replaces the node's credential: the old token stops working. The server keeps
only the SHA-256 of the secret; the token is shown once.";

#[derive(Subcommand, Debug)]
#[command(about = "A node agent's own credential", long_about = CREDENTIAL_ABOUT)]
pub enum CredentialCommand {
    /// Issue a credential for NODE (replacing any earlier one); print the token or write it.
    #[command(long_about = CREDENTIAL_ABOUT)]
    Issue(CredentialIssueArgs),
    /// Revoke NODE's credential: its token stops working at once.
    Revoke(CredentialNodeArgs),
    /// The nodes that have a credential, and when each was issued.
    List,
}

#[derive(Args, Debug)]
pub struct CredentialIssueArgs {
    /// The node's name (its Node resource's, usually its hostname).
    pub node: String,
    /// Write the token to this file (created with mode 0600) instead of printing it.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CredentialNodeArgs {
    /// The node's name.
    pub node: String,
}

const NODE_STATUS_EXAMPLES: &str = "\
Each node's agent (`tartan node`) reports its sessions in a NodeStatus resource; the age of the
report is shown, since a node that stopped reporting keeps its last one.

Examples:
  tartanctl node status
  tartanctl node status node1";

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Which policy (or profile, or default) allows or denies a packet from SRC to DST, and why.
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
}

const EXPLAIN_EXAMPLES: &str = "\
The workloads' labels, the GlobalNetworkPolicies, Profiles and GlobalNetworkSets are read from
the API and evaluated as the node agents enforce them: the source's egress, then the
destination's ingress. A side that is not a workload of the fabric is not policed.

Examples:
  tartanctl policy explain node1.tvethab12cd 10.65.0.9 tcp/5432
  tartanctl policy explain web-1 db-1 udp/53          (container IDs)
  tartanctl policy explain 192.0.2.7 10.65.0.9 icmp/8
  tartanctl policy explain fd00::5 fd00::9 icmpv6/128";

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The source: a workload (its name or container ID) or an IP address.
    pub src: String,
    /// The destination: a workload (its name or container ID) or an IP address.
    pub dst: String,
    /// The packet: tcp/PORT, udp/PORT, sctp/PORT, PORT (TCP), icmp[/TYPE[/CODE]],
    /// icmpv6[/TYPE[/CODE]] or proto/NUMBER.
    pub packet: String,
}

#[derive(Args, Debug)]
pub struct NodeStatusArgs {
    /// Only this node.
    pub node: Option<String>,
}

const VERSION_EXAMPLES: &str = "\
Examples:
  tartanctl version
  tartanctl version --client      without asking the server";

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Only the client's version; do not contact the server.
    #[arg(long)]
    pub client: bool,
}

const COMPLETION_EXAMPLES: &str = "\
Examples:
  tartanctl completion bash > /etc/bash_completion.d/tartanctl
  tartanctl completion zsh > \"${fpath[1]}/_tartanctl\"
  tartanctl completion fish > ~/.config/fish/completions/tartanctl.fish";

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}
