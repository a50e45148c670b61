//! End-to-end tests of `tartan sandbox` with Debian's reference CNI plugins (`/usr/lib/cni`).
//!
//! Root only (skipped with a message otherwise). Nothing here touches the machine's own network
//! namespace: each test makes a temporary "host" namespace and runs `tartan` in it with
//! `nsenter --net=...`. (Not `ip netns exec`: that also gives the command a private mount
//! namespace, so the `/run/netns/NAME` mounts `tartan sandbox add` makes would vanish with it.)
//! A guard deletes the sandboxes, the host namespace and the temporary directory on drop, also
//! when a test panics.

mod common;

use common::Out;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tartan_felix::netns::TempNetns;
use tartan_ipam::b64;

const PLUGINS: &str = "/usr/lib/cni";

trait Fails {
    /// Asserts failure (status 1) with `tartan sandbox: ` on the last stderr line.
    fn fails(self) -> String;
}

impl Fails for Out {
    fn fails(self) -> String {
        self.fails_with("tartan sandbox: ", false)
    }
}

/// A host namespace with a conf dir, a cache dir and IPAM state of its own. Fields drop after
/// `drop` has deleted the sandboxes: the namespace goes last.
struct Lab {
    dir: PathBuf,
    names: Vec<String>,
    host: TempNetns,
}

impl Lab {
    /// A lab whose network `ttnet` is the bridge plugin with host-local IPAM, followed by
    /// `extra` plugin objects; `None` (the test skips) only when not root and
    /// `TARTAN_SKIP_LAB_TESTS=1`.
    fn new(version: &str, extra: &str) -> Option<Lab> {
        if !tartan_felix::netns::root_tests_enabled() {
            return None;
        }
        assert!(
            Path::new(PLUGINS).join("bridge").is_file(),
            "the reference CNI plugins are not in {PLUGINS}: apt-get install containernetworking-plugins"
        );
        let host = TempNetns::new("sbx").expect("host namespace");
        let dir = std::env::temp_dir().join(format!("{}-dir", host.name));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("net.d")).expect("temp dir");
        let conflist = format!(
            r#"{{"cniVersion":"{version}","name":"ttnet","plugins":[
              {{"type":"bridge","bridge":"ttbr0","isGateway":true,"ipMasq":false,
                "ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.99.0.0/24"}}]],
                         "dataDir":"{}"}}}}{extra}]}}"#,
            dir.join("ipam").display()
        );
        fs::write(dir.join("net.d/10-ttnet.conflist"), conflist).expect("conflist");
        let names = ["a", "b"].iter().map(|s| format!("{}-{s}", host.name)).collect();
        Some(Lab { dir, names, host })
    }

    fn tartan(&self, args: &[&str]) -> Out {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.host.path.display()))
            .arg(env!("CARGO_BIN_EXE_tartan"))
            .arg("sandbox")
            .args(args)
            .env("NETCONFPATH", self.dir.join("net.d"))
            .env("CNI_CACHE_DIR", self.dir.join("cache"))
            .env("CNI_PATH", format!("/nonexistent:{PLUGINS}"))
            .env_remove("CNI_COMMAND")
            .env_remove("CNI_IFNAME")
            .env_remove("CNI_ARGS")
            .output()
            .expect("run nsenter");
        Out::from(out)
    }

    fn cache_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("cache/results/ttnet-{name}-eth0"))
    }

    /// IP addresses host-local still has reserved.
    fn leases(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir(self.dir.join("ipam/ttnet")) else { return Vec::new() };
        dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.tartan(&["del", name]);
            let _ = tartan_felix::netns::delete(name);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn netns_exists(name: &str) -> bool {
    tartan_felix::netns::path(name).exists()
}

#[test]
fn two_sandboxes_ping_each_other_and_del_cleans_up() {
    let Some(lab) = Lab::new("1.0.0", "") else { return };
    let (a, b) = (&lab.names[0], &lab.names[1]);

    let summary = lab.tartan(&["add", a]).ok();
    assert!(summary.contains("on network ttnet") && summary.contains("10.99.0."), "{summary}");
    let result: Value =
        serde_json::from_str(&lab.tartan(&["add", b, "--json"]).ok()).expect("json");
    let b_ip = result["ips"][0]["address"].as_str().expect("b's address");
    let b_ip = b_ip.split('/').next().expect("address");
    assert!(netns_exists(a) && netns_exists(b));

    // libcni's cache format and modes.
    let file = lab.cache_file(b);
    let entry: Value = serde_json::from_slice(&fs::read(&file).expect("cache file")).expect("json");
    assert_eq!(entry["kind"], "cniCacheV1");
    assert_eq!(
        (entry["containerId"].as_str(), entry["ifName"].as_str()),
        (Some(b.as_str()), Some("eth0"))
    );
    assert_eq!(entry["networkName"], "ttnet");
    assert_eq!(entry["netns"], format!("/run/netns/{b}"));
    assert_eq!(entry["result"], result);
    let config = b64::decode(entry["config"].as_str().expect("config")).expect("base64");
    assert_eq!(config, fs::read(lab.dir.join("net.d/10-ttnet.conflist")).expect("conflist"));
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!((mode(file.parent().expect("dir")), mode(&file)), (0o700, 0o600));

    lab.tartan(&["exec", a, "--", "ping", "-c1", "-W2", b_ip]).ok();
    // Like `ip netns exec`: /sys shows the sandbox's interfaces, not the host's bridge.
    let sys = lab.tartan(&["exec", a, "--", "ls", "/sys/class/net"]).ok();
    assert!(sys.contains("eth0") && !sys.contains("ttbr0"), "{sys}");

    let list = lab.tartan(&["list"]).ok();
    let mut lines = list.lines();
    assert!(lines.next().is_some_and(|h| h.split_whitespace().eq([
        "NAME",
        "NETWORK",
        "NETNS",
        "ADDRESSES"
    ])));
    for (line, name) in lines.zip([a, b]) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[..3], [name.as_str(), "ttnet", &format!("/run/netns/{name}")], "{list}");
        assert!(cols[3].starts_with("10.99.0."), "{list}");
    }
    lab.tartan(&["check", a]).ok();

    let again = lab.tartan(&["add", a]).fails();
    assert!(
        again.contains(&format!("sandbox {a} exists; `tartan sandbox del {a}` first")),
        "{again}"
    );

    lab.tartan(&["del", a]).ok();
    assert!(!netns_exists(a) && !lab.cache_file(a).exists());
    lab.tartan(&["del", a]).ok();
    lab.tartan(&["del", b]).ok();
    assert!(!netns_exists(b) && !lab.cache_file(b).exists());
    assert_eq!(lab.leases(), Vec::<String>::new(), "DEL released the addresses");
    assert_eq!(lab.tartan(&["list"]).ok().lines().count(), 1);
}

#[test]
fn failed_add_leaves_no_namespace_cache_or_address_behind() {
    let Some(lab) = Lab::new("1.0.0", r#",{"type":"tt-no-such-plugin"}"#) else { return };
    let a = &lab.names[0];
    let err = lab.tartan(&["add", a]).fails();
    assert!(
        err.contains(&format!(
            "CNI plugin `tt-no-such-plugin` not found in /nonexistent:{PLUGINS}: set CNI_PATH or --cni-path"
        )),
        "{err}"
    );
    assert!(!netns_exists(a), "the namespace was removed");
    assert!(!lab.cache_file(a).exists(), "nothing was cached");
    assert_eq!(lab.leases(), Vec::<String>::new(), "the bridge's address was released");
}

#[test]
fn plugin_errors_show_their_cni_code_and_bad_input_says_what_to_do() {
    let Some(lab) = Lab::new("9.9.9", "") else { return };
    let a = &lab.names[0];
    let err = lab.tartan(&["add", a]).fails();
    assert!(
        err.contains("plugin bridge failed on ADD (code 1: incompatible CNI versions)"),
        "{err}"
    );
    assert!(!netns_exists(a) && !lab.cache_file(a).exists());

    let err = lab.tartan(&["add", "_bad"]).fails();
    assert!(err.contains("must start with a letter or digit"), "{err}");
    let err = lab.tartan(&["exec", a, "--", "true"]).fails();
    assert!(err.contains(&format!("no sandbox {a}")), "{err}");
    let err = lab.tartan(&["check", a]).fails();
    assert!(err.contains(&format!("`tartan sandbox add {a}` first")), "{err}");

    // A namespace that is not a sandbox (here: the lab's host) is neither used nor deleted.
    let host = &lab.host.name;
    for cmd in ["add", "del"] {
        let err = lab.tartan(&[cmd, host]).fails();
        assert!(err.contains(&format!("{host} exists but is not a sandbox")), "{err}");
    }
    assert!(netns_exists(host));
}
