//! End-to-end tests of `tartanctl`: each test starts a real `tartan apiserver` on a free port
//! with a temporary data directory (a guard kills it and removes the directory, also when the
//! test panics) and runs the `tartanctl` binary against it, checking what an operator sees.

mod common;

use common::Out;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("tartanctl-test-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `tartan apiserver`; killed on drop (also on panic). Fields drop in order: the
/// server stops before its directory is removed.
struct Server {
    child: Child,
    url: String,
    token_file: PathBuf,
    dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait Fails {
    /// Asserts failure (status 1) with nothing printed but the error; the stderr.
    fn fails(self) -> String;
}

impl Fails for Out {
    fn fails(self) -> String {
        self.fails_with("tartanctl: ", true)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn healthy(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

impl Server {
    fn start() -> Server {
        let dir = TempDir::new("server");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_tartan"))
            .args(["apiserver", "--log-level", "warn", "--listen", &addr, "--data-dir"])
            .arg(dir.0.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tartan apiserver");
        let server = Server {
            child,
            url: format!("http://{addr}"),
            token_file: dir.0.join("data/token"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(healthy(&addr) && server.token_file.exists()) {
            assert!(Instant::now() < deadline, "the apiserver did not become healthy on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// A file in the test's directory.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.0.join(name);
        std::fs::write(&path, text).expect("write file");
        path.to_string_lossy().into_owned()
    }

    /// `tartanctl ARGS` with this server's address and token.
    fn ctl(&self, args: &[&str]) -> Out {
        self.ctl_env(args, &[], None)
    }

    fn ctl_env(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
        let token = self.token_file.to_string_lossy().into_owned();
        let mut all: Vec<(&str, &str)> =
            vec![("TARTAN_API", &self.url), ("TARTAN_TOKEN_FILE", &token)];
        all.extend_from_slice(env);
        run(args, &all, stdin)
    }
}

/// Runs `tartanctl` with exactly these tartanctl variables set (others removed).
fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tartanctl"));
    cmd.args(args)
        .env_remove("TARTAN_API")
        .env_remove("TARTAN_TOKEN_FILE")
        .env_remove("TARTANCTL_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run tartanctl");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.unwrap_or("").as_bytes()).expect("write stdin");
    }
    Out::from(child.wait_with_output().expect("tartanctl finished"))
}

const FABRIC: &str = "\
apiVersion: tartan/v1
kind: IPPool
metadata:
  name: pool-v4
spec:
  cidr: 10.65.0.0/16
  natOutgoing: true
---
apiVersion: tartan/v1
kind: IPPool
metadata:
  name: pool-v6
spec:
  cidr: fd00:65::/48
---
apiVersion: tartan/v1
kind: BGPPeer
metadata:
  name: tor-a
spec:
  peerIP: 192.0.2.1
  asNumber: 65001
---
apiVersion: tartan/v1
kind: Node
metadata:
  name: node1
  labels:
    rack: a
spec:
  bgp:
    ipv4Address: 10.0.0.1/24
    ipv6Address: fd00::1/64
";

const NODE2: &str = "\
apiVersion: tartan/v1
kind: Node
metadata: {name: node2, labels: {rack: b}}
spec: {bgp: {ipv4Address: 10.0.0.2/24, asNumber: 65010}}
";

/// The row of a table whose first cell is `first`, split into cells.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| {
            l.trim_matches('|').split(['|', ' ']).filter(|c| !c.is_empty()).collect::<Vec<_>>()
        })
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} in\n{table}"))
}

#[test]
fn resources_apply_get_create_replace_patch_label_delete() {
    let s = Server::start();
    let fabric = s.file("fabric.yaml", FABRIC);
    assert_eq!(s.ctl(&["apply", "-f", &fabric]).ok(), "Successfully applied 4 resource(s)\n");

    // Tables, by several aliases.
    let pools = s.ctl(&["get", "pools"]).ok();
    assert_eq!(pools.lines().next(), Some("NAME      CIDR           SELECTOR"));
    assert_eq!(row(&pools, "pool-v4"), ["pool-v4", "10.65.0.0/16", "all()"]);
    let wide = s.ctl(&["get", "IPPool", "-o", "wide"]).ok();
    assert!(
        wide.starts_with(
            "NAME      CIDR           SELECTOR   BLOCKSIZE   NAT     DISABLED   DISABLEBGPEXPORT\n"
        ),
        "{wide}"
    );
    assert_eq!(row(&wide, "pool-v4")[3..], ["26", "true", "false", "false"]);
    assert_eq!(row(&wide, "pool-v6")[3..], ["122", "false", "false", "false"]);
    let peers = s.ctl(&["get", "bgpp"]).ok();
    assert_eq!(row(&peers, "NAME"), ["NAME", "PEERIP", "NODE", "ASN"]);
    assert_eq!(row(&peers, "tor-a"), ["tor-a", "192.0.2.1", "(global)", "65001"]);
    let nodes = s.ctl(&["get", "no"]).ok();
    assert_eq!(row(&nodes, "node1"), ["node1", "(64512)", "10.0.0.1/24", "fd00::1/64"]);

    // YAML: one document for one resource, a List otherwise; JSON: the API's.
    let yaml = s.ctl(&["get", "ipp", "pool-v4", "-o", "yaml"]).ok();
    let doc: serde_json::Value = serde_yaml::from_str(&yaml).expect("yaml");
    assert_eq!(doc["kind"], "IPPool");
    assert_eq!(doc["spec"]["cidr"], "10.65.0.0/16");
    assert!(yaml.starts_with("apiVersion: tartan/v1\nkind: IPPool\nmetadata:\n"), "{yaml}");
    let list: serde_json::Value =
        serde_json::from_str(&s.ctl(&["get", "pools", "-o", "json"]).ok()).expect("json");
    assert_eq!(list["kind"], "IPPoolList");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    let list_yaml = s.ctl(&["get", "nodes", "-o", "yaml"]).ok();
    assert!(
        list_yaml.contains("kind: NodeList\n") && list_yaml.contains("- apiVersion: tartan/v1")
    );
    // What get -o yaml prints applies back unchanged.
    let back = s.file("back.yaml", &list_yaml);
    assert_eq!(s.ctl(&["apply", "-f", &back]).ok(), "Successfully applied 1 'Node' resource(s)\n");

    // A label selector, a missing name.
    assert!(s.ctl_env(&["apply", "-f", "-"], &[], Some(NODE2)).ok().contains("applied 1"));
    let rack_a = s.ctl(&["get", "nodes", "-l", "rack == 'a'"]).ok();
    assert!(rack_a.contains("node1") && !rack_a.contains("node2"), "{rack_a}");
    assert_eq!(row(&s.ctl(&["get", "nodes"]).ok(), "node2")[1], "65010");
    let missing = s.ctl(&["get", "pool", "pool-v4", "nope"]);
    assert!(missing.stdout.contains("pool-v4"));
    assert!(missing.fails().contains("IPPool \"nope\" not found"));
    assert!(s.ctl(&["get", "frobs"]).fails().contains("unknown resource type \"frobs\""));

    // The fabric's AS is inherited by nodes without their own.
    let bgp = s.file("bgp.yaml", "apiVersion: tartan/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 64513}\n");
    s.ctl(&["apply", "-f", &bgp]).ok();
    assert_eq!(row(&s.ctl(&["get", "nodes"]).ok(), "node1")[1], "(64513)");

    // create refuses what exists, and says which document and what to do.
    let err = s.ctl(&["create", "-f", &fabric]).fails();
    assert!(
        err.contains("failed to create document 1 (IPPool \"pool-v4\"): IPPool \"pool-v4\" already exists; use `tartanctl apply` or `tartanctl replace`"),
        "{err}"
    );
    assert!(err.contains("3 resource(s) after it were not processed"), "{err}");

    // replace changes what exists, refuses what does not.
    let peer = |name: &str, asn: u32| {
        format!(
            "apiVersion: tartan/v1\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec: {{peerIP: 192.0.2.1, asNumber: {asn}, node: node1}}\n"
        )
    };
    let replaced = s.file("peer.yaml", &peer("tor-a", 65002));
    assert_eq!(
        s.ctl(&["replace", "-f", &replaced]).ok(),
        "Successfully replaced 1 'BGPPeer' resource(s)\n"
    );
    assert_eq!(
        row(&s.ctl(&["get", "peers"]).ok(), "tor-a"),
        ["tor-a", "192.0.2.1", "node1", "65002"]
    );
    let absent = s.file("absent.yaml", &peer("tor-z", 65003));
    let err = s.ctl(&["replace", "-f", &absent]).fails();
    assert!(err.contains("BGPPeer \"tor-z\" not found; use `tartanctl create`"), "{err}");

    // A failure in the middle of a file: what came before is reported, processing stops.
    let mixed = s.file(
        "mixed.yaml",
        &format!(
            "{}---\n{}---\n{}",
            peer("tor-b", 65004),
            "apiVersion: tartan/v1\nkind: Node\nmetadata: {name: n9}\nspec: {}\nbogus: 1\n",
            peer("tor-c", 65005)
        ),
    );
    let out = s.ctl(&["apply", "-f", &mixed]);
    assert!(
        out.stdout.contains("Partial success: applied the first 1 of 3 resource(s)."),
        "{out:?}"
    );
    let err = out.fails();
    assert!(err.contains("failed to apply document 2 (Node \"n9\"): "), "{err}");
    assert!(err.contains("unknown field `bogus`"), "the server's message: {err}");
    assert!(s.ctl(&["get", "peer", "tor-c"]).fails().contains("not found"));

    // patch: JSON or YAML merge patch; the server's message for a wrong field.
    let ok = s.ctl(&["patch", "pool", "pool-v4", "-p", r#"{"spec": {"natOutgoing": false}}"#]).ok();
    assert_eq!(ok, "Successfully patched 1 'IPPool' resource\n");
    s.ctl(&["patch", "pool", "pool-v6", "-p", "spec: {disabled: true}"]).ok();
    let wide = s.ctl(&["get", "pools", "-o", "wide"]).ok();
    assert_eq!(row(&wide, "pool-v4")[4], "false");
    assert_eq!(row(&wide, "pool-v6")[5], "true");
    let err = s.ctl(&["patch", "pool", "pool-v4", "-p", "spec: {bogus: 1}"]).fails();
    assert!(err.contains("spec.bogus: unknown field `bogus`"), "{err}");
    assert!(
        s.ctl(&["patch", "pool", "pool-v4", "-p", "[1]"])
            .fails()
            .contains("one JSON or YAML object")
    );

    // label: set, refuse to change without --overwrite, overwrite and remove.
    s.ctl(&["label", "node", "node1", "zone=eu-1"]).ok();
    let err = s.ctl(&["label", "node", "node1", "rack=b"]).fails();
    assert!(err.contains("already has label rack=a; pass --overwrite"), "{err}");
    let ok = s.ctl(&["label", "nodes", "node1", "rack=b", "--overwrite", "--remove", "zone"]).ok();
    assert_eq!(ok, "Successfully set label(s) rack and removed label(s) zone on Node node1\n");
    let node: serde_json::Value =
        serde_json::from_str(&s.ctl(&["get", "node", "node1", "-o", "json"]).ok()).expect("json");
    assert_eq!(node["metadata"]["labels"], serde_json::json!({"rack": "b"}));
    assert!(
        s.ctl(&["label", "node", "node1", "--remove", "zone"])
            .fails()
            .contains("no label \"zone\"")
    );

    // delete -f, by name, --skip-not-found.
    let out = s.ctl(&["delete", "-f", &replaced]).ok();
    assert_eq!(out, "Successfully deleted 1 resource(s)\n");
    let err = s.ctl(&["delete", "-f", &replaced]).fails();
    assert!(
        err.contains("BGPPeer \"tor-a\" not found") && err.contains("--skip-not-found"),
        "{err}"
    );
    let out = s.ctl(&["delete", "peers", "tor-b", "tor-a", "--skip-not-found"]).ok();
    assert_eq!(out, "Successfully deleted 1 resource(s); not found, skipped: BGPPeer \"tor-a\"\n");
    assert_eq!(s.ctl(&["get", "peers"]).ok(), "NAME   PEERIP   NODE   ASN\n");
}

#[test]
fn ipam_allocate_show_check_release_configure() {
    let s = Server::start();
    let fabric = s.file("fabric.yaml", &format!("{FABRIC}---\n{NODE2}"));
    s.ctl(&["apply", "-f", &fabric]).ok();

    let out = s
        .ctl(&[
            "ipam",
            "allocate",
            "--node",
            "node1",
            "--handle",
            "h1",
            "--ipv4",
            "2",
            "--ipv6",
            "1",
            "--attribute",
            "pod=web",
        ])
        .ok();
    assert!(out.starts_with("Handle h1 on node node1 holds:\n"), "{out}");
    let ips: Vec<&str> = out.lines().filter(|l| l.starts_with("  ")).map(str::trim).collect();
    assert_eq!(ips.len(), 3, "{out}");
    let first = ips[0].trim_end_matches("/32");
    assert!(first.starts_with("10.65."), "{out}");
    let block = s.ctl(&["get", "blocks"]).ok();
    let v4_block = block.lines().find(|l| l.starts_with("10.65.")).expect("a v4 block");
    let cells: Vec<&str> = v4_block.split_whitespace().collect();
    assert_eq!(cells[1..], ["host:node1", "2", "62"]);
    let block_cidr = cells[0];

    // node2 borrows an address of node1's block.
    let base = block_cidr.trim_end_matches("/26");
    let (prefix, last) = base.rsplit_once('.').expect("v4");
    let borrowed_ip = format!("{prefix}.{}", last.parse::<u8>().expect("octet") + 40);
    s.ctl(&["ipam", "allocate", "--node", "node2", "--handle", "h2", "--ip", &borrowed_ip]).ok();

    let show = s.ctl(&["ipam", "show"]).ok();
    assert_eq!(
        row(&show, "GROUPING")[..],
        ["GROUPING", "CIDR", "IPS", "TOTAL", "IPS", "IN", "USE", "IPS", "FREE"]
    );
    assert!(
        show.contains("| IP Pool  | 10.65.0.0/16 | 65536      | 3 (0%)     | 65533 (100%)      |"),
        "{show}"
    );
    assert!(
        show.contains("| IP Pool  | fd00:65::/48 | 1.2089e+24 | 1 (0%)     | 1.2089e+24 (100%) |"),
        "{show}"
    );
    assert!(!show.contains("| Block"), "{show}");
    assert_eq!(row(&show, "node1"), ["node1", "2", "3"]);
    assert_eq!(row(&show, "node2"), ["node2", "0", "1"]);
    let blocks = s.ctl(&["ipam", "show", "--show-blocks"]).ok();
    let line = blocks.lines().find(|l| l.contains(&format!("| {block_cidr} "))).expect("block row");
    let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells, ["Block", block_cidr, "64", "3 (5%)", "61 (95%)"], "{blocks}");
    let borrowed = s.ctl(&["ipam", "show", "--show-borrowed"]).ok();
    assert_eq!(row(&borrowed, "IP"), ["IP", "BORROWING-NODE", "BLOCK", "BLOCK", "OWNER", "HANDLE"]);
    assert_eq!(
        row(&borrowed, &borrowed_ip),
        [borrowed_ip.as_str(), "node2", block_cidr, "node1", "h2"]
    );

    let ip = s.ctl(&["ipam", "show", "--ip", first]).ok();
    assert!(ip.starts_with(&format!("IP {first} is in use\nHandle ID: h1\nNode: node1\n")), "{ip}");
    assert!(ip.contains("Attributes:\n  pod: web\n"), "{ip}");
    assert!(s.ctl(&["ipam", "show", "--ip", &borrowed_ip]).ok().contains("borrowed"));
    assert_eq!(
        s.ctl(&["ipam", "show", "--ip", "10.65.255.200"]).ok(),
        "IP 10.65.255.200 is not assigned\n"
    );
    assert!(s.ctl(&["ipam", "show", "--ip", "nonsense"]).fails().contains("not an IP address"));

    // No workload uses these: check finds 4 leaks and writes a report.
    let report = s.dir.0.join("report.json");
    let report_arg = report.to_string_lossy().into_owned();
    // Problems found: the report is printed and written, and the exit status is 2.
    let check = s.ctl(&["ipam", "check", "-o", &report_arg]);
    assert_eq!(check.code, 2, "{check:#?}");
    assert!(check.stderr.contains("ipam check found 4 problem(s)"), "{check:#?}");
    let check = check.stdout;
    assert!(check.starts_with("Checking IPAM for inconsistencies...\n"), "{check}");
    assert!(check.contains("Found 2 IPAM blocks.\n"), "{check}");
    assert!(check.contains("Found 4 allocated IPs.\n"), "{check}");
    assert!(
        check.contains(&format!(
            "  {first} is allocated to handle h1 on node node1 but no workload uses it\n"
        )),
        "{check}"
    );
    assert!(
        check.contains("Found 4 IPs that are allocated in IPAM but not actually in use.\n"),
        "{check}"
    );
    assert!(check.contains("Check complete; found 4 problems.\n"), "{check}");
    assert!(check.contains("tartanctl ipam release --from-report"), "{check}");
    let parsed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(parsed["problems"][0]["kind"], "allocatedNotInUse");

    // One leaked address is released and handed out again before the report is acted on.
    let out = s.ctl(&["ipam", "release", "--ip", first, "10.65.255.201"]).ok();
    assert!(out.contains(&format!("Released {first} (handle h1)\n")), "{out}");
    assert!(out.contains("10.65.255.201 was already free\n"), "{out}");
    s.ctl(&["ipam", "allocate", "--node", "node1", "--handle", "h3", "--ip", first]).ok();
    let out = s.ctl(&["ipam", "release", "--from-report", &report_arg]).ok();
    assert!(out.contains(&format!("Skipped {first}: allocated again since")), "{out}");
    assert!(out.contains("Released 3 IP(s); skipped 1; 0 already free.\n"), "{out}");
    s.ctl(&["ipam", "release", "--handle", "h3"]).ok();
    assert_eq!(
        s.ctl(&["ipam", "release", "--handle", "h3"]).ok(),
        "Handle h3 holds no address; nothing to release.\n"
    );
    let check = s.ctl(&["ipam", "check"]).ok();
    assert!(check.contains("Check complete; found 0 problems.\n"), "{check}");

    // A stale report is refused unless --force; acting on it again frees nothing twice.
    let old = std::fs::read_to_string(&report).expect("report");
    let generated = parsed["generatedAt"].as_str().expect("generatedAt");
    std::fs::write(&report, old.replace(generated, "2020-01-01T00:00:00Z")).expect("write");
    let err = s.ctl(&["ipam", "release", "--from-report", &report_arg]).fails();
    assert!(err.contains("was generated") && err.contains("--force"), "{err}");
    let out = s.ctl(&["ipam", "release", "--from-report", &report_arg, "--force"]).ok();
    assert!(out.contains("Released 0 IP(s); skipped 0; 4 already free.\n"), "{out}");

    // configure: read-modify-write of IPAMConfig default, created on first use.
    let cfg = s.ctl(&["ipam", "show", "--show-configuration"]).ok();
    assert_eq!(row(&cfg, "maxBlocksPerHost"), ["maxBlocksPerHost", "0", "(unlimited)"]);
    assert_eq!(row(&cfg, "strictAffinity"), ["strictAffinity", "false"]);
    assert!(s.ctl(&["ipam", "configure"]).fails().contains("nothing to change"));
    let out = s.ctl(&["ipam", "configure", "--strict-affinity", "--max-blocks-per-host", "4"]).ok();
    assert!(out.starts_with("IPAM configuration updated (resourceVersion "), "{out}");
    assert_eq!(row(&out, "strictAffinity"), ["strictAffinity", "true"]);
    assert_eq!(row(&out, "maxBlocksPerHost"), ["maxBlocksPerHost", "4"]);
    let out = s.ctl(&["ipam", "configure", "--ip-cooldown-seconds", "5"]).ok();
    assert_eq!(row(&out, "strictAffinity"), ["strictAffinity", "true"], "other fields kept");
    assert_eq!(row(&out, "ipCooldownSeconds"), ["ipCooldownSeconds", "5"]);
    let table = s.ctl(&["get", "ipamconfig"]).ok();
    assert_eq!(row(&table, "default"), ["default", "true", "4", "5", "900"]);
    // Strict affinity now forbids the borrowing above.
    let err = s
        .ctl(&["ipam", "allocate", "--node", "node2", "--handle", "h4", "--ip", &borrowed_ip])
        .fails();
    assert!(err.contains("strictAffinity forbids borrowing"), "{err}");
}

#[test]
fn node_status_and_version() {
    let s = Server::start();
    let fabric = s.file("fabric.yaml", &format!("{FABRIC}---\n{NODE2}"));
    s.ctl(&["apply", "-f", &fabric]).ok();
    let now = tartan_ipam::time::rfc3339(tartan_ipam::time::now_unix());
    let status = serde_json::json!({
        "apiVersion": "tartan/v1", "kind": "NodeStatus", "metadata": {"name": "node1"},
        "spec": {"reportedAt": now, "agentVersion": "0.1.0", "peers": [
            {"peerIP": "10.0.0.2", "peerType": "node-to-node mesh", "state": "Established", "since": now},
            {"peerIP": "192.0.2.1", "peerType": "global", "state": "Active", "info": "Connection refused"},
        ]},
    });
    // NodeStatus is written by the agents; the test plays node1's agent through the API.
    let token = std::fs::read_to_string(&s.token_file).expect("token").trim().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    runtime.block_on(async {
        let client = tartan_ipam::client::Client::new(&s.url, Some(token)).expect("client");
        let _: serde_json::Value = client
            .call(hyper::Method::PUT, "/v1/nodestatuses/node1", Some(&status))
            .await
            .expect("put NodeStatus");
    });

    let out = s.ctl(&["node", "status"]).ok();
    assert!(out.starts_with("Node node1: agent 0.1.0, reported "), "{out}");
    assert!(out.contains("\nIPv4 BGP status\n"), "{out}");
    assert_eq!(
        row(&out, "PEER")[..],
        ["PEER", "ADDRESS", "PEER", "TYPE", "STATE", "SINCE", "INFO"]
    );
    assert_eq!(
        row(&out, "10.0.0.2"),
        ["10.0.0.2", "node-to-node", "mesh", "up", &now[11..19], "Established"]
    );
    assert_eq!(
        row(&out, "192.0.2.1"),
        ["192.0.2.1", "global", "down", "Active", "(Connection", "refused)"]
    );
    assert!(out.contains("\nIPv6 BGP status\nNo IPv6 peers found.\n"), "{out}");
    assert!(
        out.contains("node node2 has not reported (is `tartan node` running there?)\n"),
        "{out}"
    );
    assert!(s.ctl(&["node", "status", "node1"]).ok().starts_with("Node node1: "));
    let err = s.ctl(&["node", "status", "node2"]).fails();
    assert!(err.contains("node node2 has not reported (is `tartan node` running there?)"), "{err}");
    assert_eq!(row(&s.ctl(&["get", "nodestatus"]).ok(), "node1")[4..], ["1/2", "established"]);

    let version = s.ctl(&["version"]).ok();
    let v = env!("CARGO_PKG_VERSION");
    assert!(
        version.starts_with(&format!(
            "Client Version:    v{v}\nServer Version:    v{v}\nAPI:               {}",
            s.url
        )),
        "{version}"
    );
    assert_eq!(s.ctl(&["version", "--client"]).ok(), format!("Client Version:    v{v}\n"));
}

#[test]
fn errors_say_what_to_do_and_config_is_layered() {
    let s = Server::start();
    let dead = format!("http://127.0.0.1:{}", free_port());

    // Unreachable server.
    let err = run(
        &["get", "pools"],
        &[("TARTAN_API", &dead), ("TARTAN_TOKEN_FILE", &s.token_file.to_string_lossy())],
        None,
    )
    .fails();
    assert!(err.contains(&format!("cannot reach {dead}: is `tartan apiserver` running?")), "{err}");
    let out = run(&["version"], &[("TARTAN_API", &dead)], None);
    assert!(out.stdout.starts_with("Client Version:    v"), "{out:?}");
    assert!(out.fails().contains("cannot reach"));
    let client_only = &[("TARTAN_API", dead.as_str()), ("TARTANCTL_CONFIG", "/nonexistent.yaml")];
    assert!(run(&["version", "--client"], client_only, None).ok().starts_with("Client Version:"));
    let usage = s.ctl(&["ipam", "configure", "--strict-affinity=maybe"]);
    assert!(usage.code == 1 && usage.stderr.contains("invalid value 'maybe'"), "{usage:?}");

    // Wrong token, missing token file, no token at all.
    let wrong = s.file("wrong-token", "not-the-token\n");
    let err = s.ctl_env(&["get", "pools"], &[("TARTAN_TOKEN_FILE", &wrong)], None).fails();
    assert!(
        err.contains(&format!("refused the token in {wrong}")) && err.contains("--token-file"),
        "{err}"
    );
    let err =
        s.ctl_env(&["get", "pools"], &[("TARTAN_TOKEN_FILE", "/nonexistent/token")], None).fails();
    assert!(
        err.contains("cannot read the token file /nonexistent/token")
            && err.contains("--token-file FILE"),
        "{err}"
    );
    if std::fs::File::open("/var/lib/tartan/token").is_err() {
        let err = run(&["get", "pools"], &[("TARTAN_API", &s.url)], None).fails();
        assert!(err.contains("needs a token: give its token file with --token-file"), "{err}");
    }

    // Config file: used when nothing else says; env and flags win over it.
    let token = s.token_file.to_string_lossy().into_owned();
    let config = s.file("tartanctl.yaml", &format!("api: {}\ntokenFile: {token}\n", s.url));
    assert!(run(&["get", "pools", "-c", &config], &[], None).ok().starts_with("NAME"));
    assert!(
        run(&["get", "pools"], &[("TARTANCTL_CONFIG", &config)], None).ok().starts_with("NAME")
    );
    let err = run(&["get", "pools", "-c", &config], &[("TARTAN_API", &dead)], None).fails();
    assert!(err.contains(&dead), "env beats the config file: {err}");
    let err =
        run(&["get", "pools", "-c", &config, "--api", &dead], &[("TARTAN_API", &s.url)], None)
            .fails();
    assert!(err.contains(&dead), "the flag beats env: {err}");
    let bad = s.file("bad.yaml", "apiserver: x\n");
    let err = run(&["get", "pools", "-c", &bad], &[], None).fails();
    assert!(err.contains(&format!("the config file {bad} is not valid")), "{err}");
    let err = run(&["get", "pools", "-c", "/nonexistent.yaml"], &[], None).fails();
    assert!(err.contains("cannot read the config file /nonexistent.yaml"), "{err}");

    // Usage errors are errors too; help teaches.
    assert_eq!(run(&["frobnicate"], &[], None).code, 1);
    assert!(run(&["get", "pools", "-o", "xml"], &[], None).stderr.contains("invalid value 'xml'"));
    for args in [&["--help"][..], &["ipam", "release", "--help"], &["get", "--help"]] {
        let help = run(args, &[], None).ok();
        assert!(help.contains("Examples:\n"), "{args:?}: {help}");
    }
    assert!(run(&["get", "--help"], &[], None).ok().contains("ippool, ippools, pool, pools, ipp"));

    // Completion scripts.
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completion", shell], &[], None).ok();
        assert!(script.len() > 1000 && script.contains("tartanctl"), "{shell}");
    }
    assert_eq!(run(&["completion", "tcsh"], &[], None).code, 1);

    // Files that are not resources.
    let notes = s.file("notes.yaml", "just: text\n");
    assert!(s.ctl(&["apply", "-f", &notes]).fails().contains("document 1 has no kind"));
    let alias = s.file("alias.yaml", "kind: pool\nmetadata: {name: p}\n");
    assert!(s.ctl(&["apply", "-f", &alias]).fails().contains("unknown kind \"pool\""));
    assert!(
        s.ctl(&["apply", "-f", "/nonexistent.yaml"])
            .fails()
            .contains("cannot read /nonexistent.yaml")
    );
}

const POLICY: &str = "\
apiVersion: tartan/v1
kind: GlobalNetworkPolicy
metadata: {name: db-ingress}
spec:
  order: 10
  selector: app == 'db'
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: app == 'web'}
    destination: {ports: [5432]}
---
apiVersion: tartan/v1
kind: Profile
metadata: {name: net1}
spec:
  labelsToApply: {net1: ''}
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
apiVersion: tartan/v1
kind: GlobalNetworkSet
metadata: {name: partners, labels: {role: partner}}
spec: {nets: [198.51.100.0/24]}
";

#[test]
fn policy_apply_get_and_explain() {
    let s = Server::start();
    let applied = s.ctl(&["apply", "-f", &s.file("policy.yaml", POLICY)]);
    assert!(applied.stdout.contains("Successfully applied"), "{}", applied.stdout);
    assert!(applied.stderr.contains("do not enforce it yet"), "{}", applied.stderr);
    let wide = s.ctl(&["get", "gnp", "-o", "wide"]).ok();
    assert_eq!(row(&wide, "db-ingress"), ["db-ingress", "10.0", "app", "==", "'db'", "Ingress"]);
    assert_eq!(
        row(&s.ctl(&["get", "netsets", "-o", "wide"]).ok(), "partners")[1],
        "198.51.100.0/24"
    );

    // Two workloads, as their agents report them (the test plays the agents).
    let token = std::fs::read_to_string(&s.token_file).expect("token").trim().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    runtime.block_on(async {
        let client = tartan_ipam::client::Client::new(&s.url, Some(token)).expect("client");
        for (name, app, ip, id) in [
            ("node1.tvweb", "web", "10.65.0.4/32", "web-1"),
            ("node2.tvdb", "db", "10.65.1.9/32", "db-1"),
        ] {
            let wep = serde_json::json!({
                "apiVersion": "tartan/v1", "kind": "WorkloadEndpoint",
                "metadata": {"name": name, "labels": {"app": app}},
                "spec": {"node": &name[..5], "containerID": id, "handle": format!("net1.{id}"),
                         "interfaceName": &name[6..], "ipNetworks": [ip]},
            });
            let _: serde_json::Value = client
                .call(hyper::Method::PUT, &format!("/v1/workloadendpoints/{name}"), Some(&wep))
                .await
                .expect("put WorkloadEndpoint");
        }
    });

    let ok = s.ctl(&["policy", "explain", "web-1", "db-1", "tcp/5432"]).ok();
    assert!(ok.starts_with("tcp 10.65.0.4 -> 10.65.1.9 port 5432: ALLOWED\n"), "{ok}");
    assert!(ok.contains("egress of node1.tvweb: allowed by Profile net1 egress rule 1"), "{ok}");
    assert!(
        ok.contains("allowed by GlobalNetworkPolicy db-ingress ingress rule 1 (Allow)"),
        "{ok}"
    );
    let denied = s.ctl(&["policy", "explain", "198.51.100.7", "node2.tvdb", "5432"]).ok();
    assert!(denied.contains(": DENIED\n"), "{denied}");
    assert!(denied.contains("egress: 198.51.100.7 is not a workload"), "{denied}");
    assert!(
        denied.contains("default deny: selected by GlobalNetworkPolicy db-ingress"),
        "{denied}"
    );
    // The db's egress is not selected: its profile allows.
    assert!(s.ctl(&["policy", "explain", "db-1", "web-1", "icmp"]).ok().contains("ALLOWED"));

    let err = s.ctl(&["policy", "explain", "nobody", "db-1", "tcp/1"]).fails();
    assert!(err.contains("neither an IP address nor a workload"), "{err}");
    let err = s.ctl(&["policy", "explain", "web-1", "db-1", "tcp"]).fails();
    assert!(err.contains("the port is missing"), "{err}");
    let bad = "apiVersion: tartan/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: bad}\nspec:\n  ingress: [{action: Allow, destination: {ports: [80]}}]\n";
    let err = s.ctl(&["apply", "-f", &s.file("bad.yaml", bad)]).fails();
    assert!(err.contains("spec.ingress[0].destination.ports needs protocol"), "{err}");
}
