//! calicoctl's manifests through `tartanctl` and a real `tartan apiserver`: a corpus written in
//! calicoctl's published style (tests/calico/*.yaml: lists, Calico's defaults and metadata,
//! `projectcalico.org/v3`, every kind's Calico name) applies unchanged, reads back with
//! `--api-version projectcalico.org/v3`, and applies again; each field Tartan cannot honour is
//! refused with what to do instead.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Out;

struct Server {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    fn start(tag: &str) -> Server {
        let dir = std::env::temp_dir().join(format!("tartan-calico-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_tartan"))
            .args(["apiserver", "--log-level", "warn", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tartan apiserver");
        let server = Server { child, dir, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.ctl(&["get", "pools"], None).code != 0 {
            assert!(Instant::now() < deadline, "the apiserver did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn ctl(&self, args: &[&str], stdin: Option<&str>) -> Out {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_tartanctl"))
            .args(args)
            .env("TARTAN_API", &self.url)
            .env("TARTAN_TOKEN_FILE", self.dir.join("data/token"))
            .env_remove("TARTAN_CA_FILE")
            .env_remove("TARTANCTL_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tartanctl");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.unwrap_or("").as_bytes());
        }
        Out::from(child.wait_with_output().expect("tartanctl finished"))
    }

    fn apply(&self, yaml: &str) -> Out {
        self.ctl(&["apply", "-f", "-"], Some(yaml))
    }

    fn get_json(&self, kind: &str, name: &str) -> serde_json::Value {
        let out = self.ctl(&["get", kind, name, "-o", "json"], None).ok();
        serde_json::from_str(&out).expect("json")
    }
}

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/calico");

#[test]
fn calicoctl_manifests_apply_unchanged_and_round_trip() {
    let s = Server::start("corpus");
    for file in ["ippools.yaml", "bgp.yaml", "policy.yaml"] {
        let path = format!("{CORPUS}/{file}");
        let out = s.ctl(&["apply", "-f", &path], None).ok();
        assert!(out.contains("Successfully applied"), "{file}: {out}");
    }

    // What each Calico field became.
    let v4 = s.get_json("ippool", "default-ipv4-ippool");
    assert_eq!(v4["apiVersion"], "tartan/v1");
    assert_eq!(v4["spec"]["natOutgoing"], true);
    assert_eq!(v4["metadata"]["annotations"]["team"], "platform");
    assert!(v4["metadata"].get("uid").is_none(), "{v4}");
    assert_ne!(v4["metadata"]["resourceVersion"], "1234", "another datastore's version");
    let v6 = s.get_json("ippool", "default-ipv6-ippool");
    assert_eq!(
        (v6["spec"]["disableBGPExport"].as_bool(), v6["spec"]["nodeSelector"].as_str()),
        (Some(true), Some("rack == 'a'"))
    );
    let config = s.get_json("bgpconfig", "default");
    assert_eq!(config["spec"]["logSeverityScreen"], "Info");
    assert_eq!(config["spec"]["asNumber"], 64512);
    assert_eq!(config["spec"]["nodeMeshMaxRestartTime"], 120);
    assert_eq!(config["spec"]["serviceClusterIPs"][0]["cidr"], "10.96.0.0/12");
    let rr = s.get_json("bgppeer", "peer-with-route-reflectors");
    assert_eq!(rr["spec"]["peerSelector"], "route-reflector == 'true'");
    assert_eq!(rr["spec"]["localASNumber"], 65546, "asdot 1.10");
    let tor = s.get_json("bgppeer", "rack-a-tor");
    assert_eq!(
        (tor["spec"]["peerIP"].as_str(), tor["spec"]["port"].as_u64()),
        (Some("10.1.1.1"), Some(1179))
    );
    assert_eq!(tor["spec"]["nextHopMode"], "Keep", "keepOriginalNextHop");
    assert_eq!(tor["spec"]["gracefulRestart"]["restartTime"], 120, "maxRestartTime");
    assert_eq!(tor["spec"]["keepaliveTime"], 20);
    assert_eq!(tor["spec"]["password"]["value"], "(redacted)");
    assert_eq!(tor["spec"]["failureDetectionMode"], "BFDIfDirectlyConnected");
    let v6tor = s.get_json("bgppeer", "v6-tor");
    assert_eq!(
        (v6tor["spec"]["peerIP"].as_str(), v6tor["spec"]["asNumber"].as_u64()),
        (Some("fd00:1::1"), Some(65102))
    );
    let node = s.get_json("node", "rr1");
    assert_eq!(node["spec"]["bgp"]["routeReflectorClusterID"], "244.0.0.1");
    assert_eq!(node["spec"]["orchRefs"][0]["orchestrator"], "k8s");
    let ipam = s.get_json("ipamconfig", "default");
    assert_eq!(ipam["spec"]["strictAffinity"], true);
    assert_eq!(ipam["spec"]["maxBlocksPerHost"], 20, "Calico's 0 means 20");
    let gnp = s.get_json("gnp", "allow-web-to-db");
    assert_eq!(gnp["spec"]["order"], 100.0);
    assert_eq!(gnp["spec"]["ingress"][0]["destination"]["ports"][1], "6000:6010");
    assert!(gnp["spec"].get("tier").is_none() && gnp["spec"].get("doNotTrack").is_none(), "{gnp}");
    let egress = s.get_json("globalnetworkpolicy", "default-deny-egress");
    assert_eq!(egress["spec"]["types"], serde_json::json!(["Egress"]), "Calico's default types");
    assert_eq!(s.get_json("gns", "partners")["spec"]["nets"][1], "2001:db8:100::/48");
    assert_eq!(s.get_json("profile", "net1")["spec"]["labelsToApply"]["net1"], "");

    // Read back as Calico writes it, and applied again: the same resources.
    for kind in [
        "ippools",
        "bgpconfigs",
        "bgppeers",
        "nodes",
        "ipamconfigs",
        "globalnetworkpolicies",
        "globalnetworksets",
        "profiles",
    ] {
        let yaml =
            s.ctl(&["get", kind, "-o", "yaml", "--api-version", "projectcalico.org/v3"], None).ok();
        assert!(yaml.contains("apiVersion: projectcalico.org/v3"), "{yaml}");
        if kind == "ipamconfigs" {
            assert!(
                yaml.contains("kind: IPAMConfigurationList")
                    && yaml.contains("kind: IPAMConfiguration\n"),
                "{yaml}"
            );
        }
        let before = s.ctl(&["get", kind, "-o", "json"], None).ok();
        let out = s.apply(&yaml).ok();
        assert!(out.contains("Successfully applied"), "{kind}: {out}");
        let after = s.ctl(&["get", kind, "-o", "json"], None).ok();
        let strip = |text: &str| {
            let mut v: serde_json::Value = serde_json::from_str(text).expect("json");
            v["revision"] = serde_json::Value::Null;
            for item in v["items"].as_array_mut().into_iter().flatten() {
                item["metadata"]["resourceVersion"] = serde_json::Value::Null;
            }
            v
        };
        assert_eq!(strip(&before), strip(&after), "{kind} changed on the round trip");
    }
    // The password survived the round trip without ever being shown.
    let list = s
        .ctl(&["get", "bgppeers", "-o", "yaml", "--api-version", "projectcalico.org/v3"], None)
        .ok();
    assert!(!list.contains("rack-a-secret"), "{list}");

    // -o name and -o custom-columns, as kubectl has them.
    let names = s.ctl(&["get", "pools", "-o", "name"], None).ok();
    assert_eq!(names, "ippool/default-ipv4-ippool\nippool/default-ipv6-ippool\n");
    let cols = s.ctl(&["get", "pools", "-o", "custom-columns=NAME:.metadata.name,CIDR:.spec.cidr,TEAM:.metadata.annotations.team"], None).ok();
    assert!(cols.starts_with("NAME"), "{cols}");
    assert!(cols.contains("default-ipv4-ippool   10.70.0.0/16    platform"), "{cols}");
    assert!(cols.contains("<none>"), "{cols}");
    let bad = s.ctl(&["get", "pools", "-o", "custom-columns=NAME"], None);
    assert_eq!(bad.code, 1);
}

#[test]
fn fields_tartan_cannot_honour_are_refused_with_what_to_do() {
    let s = Server::start("refused");
    let doc = |kind: &str, name: &str, spec: &str| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        )
    };
    let cases = [
        (
            doc("IPPool", "p", "{cidr: 10.71.0.0/16, ipipMode: Always}"),
            "Tartan routes without encapsulation",
        ),
        (doc("IPPool", "p", "{cidr: 10.71.0.0/16, vxlanMode: CrossSubnet}"), "set it to Never"),
        (
            doc("IPPool", "p", "{cidr: 10.71.0.0/16, allowedUses: [LoadBalancer]}"),
            "LoadBalancer needs Kubernetes services",
        ),
        (
            doc("IPPool", "p", "{cidr: 10.71.0.0/16, assignmentMode: Manual}"),
            "nodeSelector no node matches",
        ),
        (
            doc("IPPool", "p", "{cidr: 10.71.0.0/16, namespaceSelector: \"team == 'a'\"}"),
            "no Kubernetes namespaces",
        ),
        (
            doc(
                "BGPPeer",
                "x",
                "{peerIP: 10.0.0.1, asNumber: 1, password: {secretKeyRef: {name: s, key: k}}}",
            ),
            "password.value",
        ),
        (doc("BGPPeer", "x", "{peerIP: 10.0.0.1, asNumber: 1, ttlSecurity: 1}"), "GTSM"),
        (
            doc("BGPPeer", "x", "{peerIP: 10.0.0.1, asNumber: 1, numAllowedLocalASNumbers: 2}"),
            "allowas-in",
        ),
        (doc("BGPPeer", "x", "{peerIP: 10.0.0.1, asNumber: 1, filters: [f]}"), "BGPFilter"),
        (
            doc("BGPPeer", "x", "{peerIP: 10.0.0.1, asNumber: 1, reachableBy: 10.0.0.254}"),
            "route to it yourself",
        ),
        (doc("BGPPeer", "x", "{peerIP: 10.0.0.1, asNumber: 1, maxRestartTime: 2h}"), "1 to 4095 s"),
        (
            doc("BGPPeer", "x", "{peerIP: 10.0.0.1, asNumber: 1, keepaliveTime: soon}"),
            "not a duration",
        ),
        (doc("BGPPeer", "x", "{peerIP: \"10.0.0.1:http\", asNumber: 1}"), "[fd00::1]:179"),
        (
            doc("BGPPeer", "x", "{peerSelector: all(), asNumber: 1}"),
            "each selected node peers with its own AS",
        ),
        (
            doc(
                "BGPConfiguration",
                "default",
                "{nodeMeshPassword: {secretKeyRef: {name: s, key: k}}}",
            ),
            "no Kubernetes secrets",
        ),
        (doc("BGPConfiguration", "default", "{bindMode: NodeIP}"), "listens on every address"),
        (
            doc("BGPConfiguration", "default", "{logSeverityScreen: Loud}"),
            "Warning, Error or Fatal",
        ),
        (doc("BGPConfiguration", "node.host1", "{listenPort: 179}"), "per-node BGP configurations"),
        (
            doc("Node", "n", "{bgp: {ipv4Address: 10.0.0.5/24, ipv4IPIPTunnelAddr: 10.70.0.1}}"),
            "spec.bgp.ipv4IPIPTunnelAddr",
        ),
        (
            doc("Node", "n", "{wireguard: {interfaceIPv4Address: 10.70.0.2}}"),
            "without encapsulation",
        ),
        (doc("IPAMConfiguration", "default", "{autoAllocateBlocks: false}"), "maxBlocksPerHost"),
        (
            doc(
                "BGPPeer",
                "fast",
                "{peerIP: 10.0.0.1, asNumber: 65001, bfd: {minimumSendInterval: 5ms}}",
            ),
            "bfd.minimumSendInterval: 5ms is out of range: 10ms to 60s",
        ),
        (
            doc("BGPConfiguration", "default", "{bfd: {multiplier: 1}}"),
            "bfd.multiplier: 1 is out of range: 2 to 255",
        ),
        (
            doc(
                "BGPPeer",
                "fast",
                "{peerIP: 10.0.0.1, asNumber: 65001, failureDetectionMode: Always}",
            ),
            "failureDetectionMode",
        ),
    ];
    for (yaml, want) in cases {
        let out = s.apply(&yaml);
        assert_eq!(out.code, 1, "{yaml}: {out:#?}");
        assert!(out.stderr.contains(want), "{yaml}\nwanted {want:?} in:\n{}", out.stderr);
    }
    // Nothing of them was written.
    assert_eq!(s.ctl(&["get", "pools", "-o", "name"], None).ok(), "");
}
