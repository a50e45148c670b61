//! Parser rules and errors, one behaviour per test.

use std::path::Path;

use super::*;

const FILE: &str = "/labs/test.clab.yml";

fn parse_ok(text: &str) -> Topology {
    let opts = LoadOptions { skip_file_checks: true, ..Default::default() };
    match parse(text, Path::new(FILE), &opts) {
        Ok(t) => t,
        Err(e) => panic!("expected the topology to parse, got:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    let opts = LoadOptions { skip_file_checks: true, ..Default::default() };
    match parse(text, Path::new(FILE), &opts) {
        Ok(_) => panic!("expected problems, the topology parsed"),
        Err(e) => {
            assert!(!e.problems().is_empty(), "expected validation problems, got: {e}");
            e.problems().to_vec()
        }
    }
}

fn has(problems: &[Problem], at: &Where, pred: impl Fn(&ProblemKind) -> bool) -> bool {
    problems.iter().any(|p| &p.at == at && pred(&p.kind))
}

fn node(n: &str) -> Where {
    Where::Node(n.to_string())
}

const RING: &str = r#"
name: ring
topology:
  defaults:
    kind: linux
  nodes:
    r1: {image: quay.io/frrouting/frr:10.0.0}
    r2: {image: pierky/bird:2}
    r3: {image: gobgp}
  links:
    - endpoints: ["r1:eth1", "r2:eth1"]
    - endpoints: ["r2:eth2", "r3:eth1"]
      mtu: 1500
    - type: veth
      endpoints:
        - {node: r3, interface: eth2, mac: "aa:c1:ab:00:00:03"}
        - {node: r1, interface: eth2}
"#;

#[test]
fn minimal_ring_resolves_nodes_links_and_profiles() {
    let t = parse_ok(RING);
    assert_eq!(t.name, "ring");
    let names: Vec<_> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["r1", "r2", "r3"]);
    assert_eq!(t.nodes[0].profile, Profile::Frr);
    assert_eq!(t.nodes[1].profile, Profile::Bird);
    assert_eq!(t.nodes[2].profile, Profile::Gobgp);
    assert_eq!(t.links.len(), 3);
    assert_eq!(t.links[0].mtu, DEFAULT_LINK_MTU);
    assert_eq!(t.links[1].mtu, 1500);
    assert_eq!(t.links[2].endpoints[0].mac, Some([0xaa, 0xc1, 0xab, 0, 0, 3]));
    assert_eq!(t.links[2].describe(), "r3:eth2 <-> r1:eth2");
    // r2 runs BIRD without a configuration of its own: said, not silent.
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    assert!(t.warnings[0].contains("node `r2` binds no BIRD configuration"), "{:?}", t.warnings);
}

#[test]
fn long_names_follow_prefix_rules() {
    let t = parse_ok(RING);
    assert_eq!(t.nodes[0].long_name, "clab-ring-r1");
    let with = |prefix: &str| {
        parse_ok(&RING.replacen("name: ring", &format!("name: ring\nprefix: {prefix}"), 1))
    };
    assert_eq!(with("lab").nodes[0].long_name, "lab-ring-r1");
    assert_eq!(with("__lab-name").nodes[0].long_name, "ring-r1");
    assert_eq!(with("\"\"").nodes[0].long_name, "r1");
    assert_eq!(t.mgmt_netns(), "tartanlab-ring");
    assert_eq!(t.lab_dir(None), Path::new("/labs/clab-ring"));
}

#[test]
fn management_addresses_are_sequential_and_skip_statics() {
    let t = parse_ok(
        r#"
name: m
mgmt: {ipv4-subnet: 10.9.0.0/24}
topology:
  defaults: {kind: linux, image: alpine}
  nodes:
    a: {}
    b: {mgmt-ipv4: 10.9.0.2}
    c:
    d: {network-mode: none}
"#,
    );
    let ip = |n: &str| t.node(n).and_then(|n| n.mgmt.as_ref()).map(|m| m.ipv4.to_string());
    assert_eq!(t.mgmt.ipv4_gw.to_string(), "10.9.0.1");
    assert_eq!(ip("a").as_deref(), Some("10.9.0.3/24"));
    assert_eq!(ip("b").as_deref(), Some("10.9.0.2/24"));
    assert_eq!(ip("c").as_deref(), Some("10.9.0.4/24"));
    assert_eq!(ip("d"), None);
    assert_eq!(t.mgmt.bridge, "br-clab");
}

#[test]
fn default_management_subnet_is_containerlabs() {
    let t = parse_ok(RING);
    assert_eq!(t.mgmt.ipv4_subnet.to_string(), "172.20.20.0/24");
    assert_eq!(
        t.nodes[0].mgmt.as_ref().map(|m| m.ipv4.to_string()).as_deref(),
        Some("172.20.20.2/24")
    );
    assert_eq!(t.mgmt.mtu, 1500);
}

#[test]
fn ipv6_management_is_assigned_when_a_subnet_is_given() {
    let t = parse_ok(
        r#"
name: m
mgmt: {ipv6-subnet: "fd00:20::/64"}
topology:
  defaults: {kind: linux, image: alpine}
  nodes: {a: {}, b: {mgmt-ipv6: "fd00:20::2"}}
"#,
    );
    let v6 = |n: &str| {
        t.node(n).and_then(|n| n.mgmt.as_ref()).and_then(|m| m.ipv6).map(|v| v.to_string())
    };
    assert_eq!(v6("a").as_deref(), Some("fd00:20::3/64"));
    assert_eq!(v6("b").as_deref(), Some("fd00:20::2/64"));
}

const INHERIT: &str = r#"
name: inh
topology:
  defaults:
    kind: linux
    image: alpine
    env: {LEVEL: defaults, D: "1"}
    exec: ["echo defaults", "echo shared"]
    binds: ["/etc/hosts:/etc/a"]
    labels: {tier: default}
  kinds:
    LINUX:
      group: fromkind
      env: {LEVEL: kind, K: "1"}
      exec: ["echo kind", "echo shared"]
      binds: ["/etc/passwd:/etc/a"]
  groups:
    routers:
      image: quay.io/frrouting/frr:8
      cmd: bash
      env: {LEVEL: group, G: "1"}
      exec: ["echo group"]
      sysctls: {net.ipv4.ip_forward: 1}
    fromkind:
      image: gobgp:3
  nodes:
    r1:
      group: routers
      env: {LEVEL: node}
      exec: ["echo node"]
      binds: ["/etc/group:/etc/b:ro"]
      labels: {tier: node}
    h1:
"#;

#[test]
fn scalars_come_from_the_most_specific_level() {
    let t = parse_ok(INHERIT);
    let r1 = t.node("r1").expect("r1");
    assert_eq!(r1.image, "quay.io/frrouting/frr:8");
    assert_eq!(r1.cmd.as_deref(), Some(&["bash".to_string()][..]));
    assert_eq!(r1.kind, "linux");
    assert_eq!(r1.group, "routers");
}

#[test]
fn group_comes_from_the_kind_when_the_node_has_none() {
    let t = parse_ok(INHERIT);
    let h1 = t.node("h1").expect("h1");
    assert_eq!(h1.group, "fromkind");
    assert_eq!(h1.image, "gobgp:3");
    assert_eq!(h1.profile, Profile::Gobgp);
}

#[test]
fn maps_merge_with_the_more_specific_level_winning() {
    let t = parse_ok(INHERIT);
    let r1 = t.node("r1").expect("r1");
    assert_eq!(r1.env["LEVEL"], "node");
    assert_eq!((r1.env["D"].as_str(), r1.env["K"].as_str(), r1.env["G"].as_str()), ("1", "1", "1"));
    assert_eq!(r1.labels["tier"], "node");
    assert_eq!(r1.env["CLAB_LABEL_TIER"], "node");
    assert_eq!(r1.env["CLAB_LABEL_CLAB_NODE_NAME"], "r1");
    assert_eq!(r1.sysctls["net.ipv4.ip_forward"], "1");
    let h1 = t.node("h1").expect("h1");
    assert_eq!(h1.env["LEVEL"], "kind");
}

#[test]
fn exec_concatenates_defaults_kind_group_node_without_duplicates() {
    let t = parse_ok(INHERIT);
    let lines: Vec<_> = t.node("r1").expect("r1").exec.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(lines, ["echo defaults", "echo shared", "echo kind", "echo group", "echo node"]);
}

#[test]
fn binds_are_indexed_by_destination_with_the_specific_level_winning() {
    let t = parse_ok(INHERIT);
    let binds = &t.node("r1").expect("r1").binds;
    assert_eq!(binds.len(), 2);
    assert_eq!(
        (binds[0].src.as_path(), binds[0].dst.as_path()),
        (Path::new("/etc/passwd"), Path::new("/etc/a"))
    );
    assert!(binds[1].read_only);
}

#[test]
fn kind_can_come_from_the_nodes_group() {
    let t = parse_ok(
        r#"
name: g
topology:
  groups: {hosts: {kind: linux, image: alpine}}
  nodes: {h: {group: hosts}}
"#,
    );
    assert_eq!(t.nodes[0].kind, "linux");
}

#[test]
fn relative_bind_sources_resolve_against_the_topology_directory() {
    let t = parse_ok(
        r#"
name: b
topology:
  nodes: {r: {kind: linux, image: frr, binds: ["r/frr.conf:/etc/frr/frr.conf"]}}
"#,
    );
    assert_eq!(t.nodes[0].binds[0].src, Path::new("/labs/r/frr.conf"));
}

#[test]
fn variables_expand_with_defaults() {
    let opts = LoadOptions {
        vars: [("IMG".to_string(), "bird2".to_string())].into(),
        skip_file_checks: true,
        ..Default::default()
    };
    let text = "name: ${LABNAME:-vars}\ntopology:\n  nodes:\n    r: {kind: linux, image: \"${IMG}\", env: {A: \"$${NOT}\"}}\n";
    let t = parse(text, Path::new(FILE), &opts).expect("parses");
    assert_eq!(t.name, "vars");
    assert_eq!(t.nodes[0].image, "bird2");
    assert_eq!(t.nodes[0].profile, Profile::Bird);
    assert_eq!(t.nodes[0].env["A"], "${NOT}");
}

#[test]
fn name_override_replaces_the_lab_name() {
    let opts =
        LoadOptions { name: Some("ring-7".into()), skip_file_checks: true, ..Default::default() };
    let t = parse(RING, Path::new(FILE), &opts).expect("parses");
    assert_eq!(t.nodes[0].long_name, "clab-ring-7-r1");
}

#[test]
fn entrypoint_and_cmd_are_split_and_joined() {
    let t = parse_ok(
        "name: c\ntopology:\n  nodes:\n    r: {kind: linux, image: x, entrypoint: \"tini --\", cmd: \"tartan bgp -c '/etc/tartan/bgp.toml'\"}\n",
    );
    assert_eq!(
        t.nodes[0].cmd.as_deref().expect("cmd"),
        ["tini", "--", "tartan", "bgp", "-c", "/etc/tartan/bgp.toml"]
    );
}

#[test]
fn ignored_container_keys_become_warnings() {
    let t = parse_ok(
        "name: w\ntopology:\n  nodes:\n    r: {kind: linux, image: x, memory: 1Gb, restart-policy: always}\n",
    );
    assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
    assert!(t.warnings[0].contains("node `r`"));
}

#[test]
fn interface_counts_are_exported_as_clab_intfs() {
    let t = parse_ok(RING);
    assert_eq!(t.node("r2").expect("r2").env["CLAB_INTFS"], "2");
}

// ---- errors -------------------------------------------------------------------------------

#[test]
fn unknown_node_key_is_named_with_a_suggestion() {
    let p = problems("name: e\ntopology:\n  nodes:\n    r1: {kind: linux, imgae: alpine}\n");
    assert!(has(&p, &node("r1"), |k| matches!(k,
        ProblemKind::UnknownKey { key, suggestion: Some(s) } if key == "imgae" && s == "image")));
    // and the missing image is reported in the same pass
    assert!(has(&p, &node("r1"), |k| matches!(k, ProblemKind::Missing { key: "image" })));
}

#[test]
fn unknown_top_level_and_mgmt_keys_are_errors() {
    let p = problems(
        "name: e\nmgmt: {ipv4_subnet: 10.0.0.0/24}\nfoo: 1\ntopology:\n  nodes: {r: {kind: linux, image: x}}\n",
    );
    assert!(has(
        &p,
        &Where::Top,
        |k| matches!(k, ProblemKind::UnknownKey { key, .. } if key == "foo")
    ));
    assert!(has(&p, &Where::Mgmt, |k| matches!(k,
        ProblemKind::UnknownKey { key, suggestion: Some(s) } if key == "ipv4_subnet" && s == "ipv4-subnet")));
}

#[test]
fn unknown_node_in_a_link_names_the_link() {
    let p = problems(&RING.replace("\"r2:eth2\", \"r3:eth1\"", "\"r2:eth2\", \"r9:eth1\""));
    let at = Where::Link { index: 1, endpoints: "r2:eth2 <-> r9:eth1".into() };
    assert!(has(&p, &at, |k| matches!(k, ProblemKind::UnknownNode { node } if node == "r9")));
    let msg = p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n");
    assert!(msg.contains("link #2 (r2:eth2 <-> r9:eth1)"), "{msg}");
}

#[test]
fn duplicate_interfaces_name_both_links() {
    let p = problems(&RING.replace("\"r2:eth2\", \"r3:eth1\"", "\"r2:eth1\", \"r3:eth1\""));
    assert!(p.iter().any(|p| matches!(&p.kind,
        ProblemKind::DuplicateInterface { node, interface, first_link: 0 } if node == "r2" && interface == "eth1")));
}

#[test]
fn interface_names_over_15_characters_are_rejected() {
    let p = problems(&RING.replace("r1:eth1", "r1:a-very-long-name0"));
    assert!(p.iter().any(|p| matches!(&p.kind,
        ProblemKind::BadInterface { interface, reason, .. } if interface == "a-very-long-name0" && reason.contains("15"))));
}

#[test]
fn eth0_is_reserved_unless_network_mode_none() {
    let p = problems(&RING.replace("r1:eth1", "r1:eth0"));
    assert!(p.iter().any(
        |p| matches!(&p.kind, ProblemKind::BadInterface { interface, .. } if interface == "eth0")
    ));
    let ok =
        RING.replace("r1:eth1", "r1:eth0").replace("r1: {image", "r1: {network-mode: none, image");
    assert_eq!(parse_ok(&ok).links[0].endpoints[0].interface, "eth0");
}

#[test]
fn unsupported_kinds_are_named() {
    let p = problems(
        "name: e\ntopology:\n  nodes:\n    srl: {kind: nokia_srlinux, image: ghcr.io/nokia/srlinux}\n",
    );
    assert!(has(
        &p,
        &node("srl"),
        |k| matches!(k, ProblemKind::UnsupportedKind { kind } if kind == "nokia_srlinux")
    ));
}

#[test]
fn missing_kind_is_an_error() {
    let p = problems("name: e\ntopology:\n  nodes:\n    r: {image: x}\n");
    assert!(has(&p, &node("r"), |k| matches!(k, ProblemKind::Missing { .. })));
}

#[test]
fn anything_touching_the_host_network_is_refused() {
    let p = problems(&RING.replace("\"r1:eth1\", \"r2:eth1\"", "\"r1:eth1\", \"host:veth-r1\""));
    assert!(p.iter().any(|p| matches!(p.kind, ProblemKind::HostTouching { .. })));
    let p = problems(
        "name: e\ntopology:\n  nodes:\n    r: {kind: linux, image: x, network-mode: host}\n",
    );
    assert!(has(&p, &node("r"), |k| matches!(k, ProblemKind::HostTouching { .. })));
    let p = problems(&format!(
        "{RING}    - type: host\n      endpoint: {{node: r1, interface: eth9}}\n      host-interface: r1-eth9\n"
    ));
    assert!(p.iter().any(|p| matches!(p.kind, ProblemKind::HostTouching { .. })));
}

#[test]
fn only_namespaced_sysctls_are_allowed() {
    let p = problems(
        "name: e\ntopology:\n  nodes:\n    r: {kind: linux, image: x, sysctls: {kernel.panic: 1}}\n",
    );
    assert!(has(
        &p,
        &node("r"),
        |k| matches!(k, ProblemKind::BadValue { key, .. } if key == "sysctls")
    ));
}

#[test]
fn unsupported_link_types_say_why() {
    let p = problems(&format!(
        "{RING}    - type: dummy\n      endpoint: {{node: r1, interface: d0}}\n"
    ));
    assert!(p.iter().any(
        |p| matches!(&p.kind, ProblemKind::UnsupportedKey { key, .. } if key == "type: dummy")
    ));
}

#[test]
fn extended_link_keys_are_strict() {
    let p = problems(&format!(
        "{RING}    - type: veth\n      endpoints:\n        - {{node: r1, interface: eth5, macc: x}}\n        - {{node: r2, interface: eth5}}\n"
    ));
    assert!(p.iter().any(|p| matches!(&p.kind,
        ProblemKind::UnknownKey { key, suggestion: Some(s) } if key == "macc" && s == "mac")));
}

#[test]
fn bad_management_addresses_are_reported_on_the_node() {
    let p = problems(
        "name: e\nmgmt: {ipv4-subnet: 10.1.0.0/24}\ntopology:\n  defaults: {kind: linux, image: x}\n  nodes:\n    a: {mgmt-ipv4: 10.2.0.5}\n    b: {mgmt-ipv4: 10.1.0.1}\n",
    );
    assert!(has(
        &p,
        &node("a"),
        |k| matches!(k, ProblemKind::BadValue { key, .. } if key == "mgmt-ipv4")
    ));
    assert!(has(
        &p,
        &node("b"),
        |k| matches!(k, ProblemKind::BadValue { key, .. } if key == "mgmt-ipv4")
    ));
}

#[test]
fn go_templates_are_detected_with_their_line() {
    let opts = LoadOptions::default();
    let err = parse("name: t\ntopology:\n  nodes: {{ .Nodes }}\n", Path::new(FILE), &opts)
        .expect_err("template");
    assert!(matches!(err, TopologyError::Template { line: 3, .. }), "{err}");
}

#[test]
fn yaml_syntax_errors_are_reported() {
    let err = parse("name: [\n", Path::new(FILE), &LoadOptions::default()).expect_err("syntax");
    assert!(matches!(err, TopologyError::Yaml { .. }));
}

#[test]
fn missing_bind_sources_are_caught_before_deploy() {
    let err = parse(
        "name: b\ntopology:\n  nodes: {r: {kind: linux, image: x, binds: [\"/nonexistent/x:/etc/x\"]}}\n",
        Path::new(FILE),
        &LoadOptions::default(),
    )
    .expect_err("missing source");
    assert!(err.to_string().contains("/nonexistent/x does not exist"), "{err}");
}

#[test]
fn all_problems_are_reported_in_one_pass() {
    let p = problems(
        r#"
name: many
topology:
  nodes:
    a: {kind: linux, image: x, colour: red}
    b: {kind: vr-sros, image: y}
  links:
    - endpoints: ["a:eth1", "zz:eth1"]
    - endpoints: ["a:this-name-is-too-long", "b:eth1"]
"#,
    );
    assert!(p.len() >= 4, "{p:?}");
}

#[test]
fn error_message_lists_every_problem() {
    let err = parse(
        "name: e\ntopology:\n  nodes:\n    r1: {kind: linux}\n    r2: {kind: linux}\n",
        Path::new(FILE),
        &LoadOptions::default(),
    )
    .expect_err("invalid");
    let msg = err.to_string();
    assert!(msg.contains("2 problems"), "{msg}");
    assert!(msg.contains("node `r1`: `image` is required"), "{msg}");
    assert!(msg.contains("node `r2`: `image` is required"), "{msg}");
}

#[test]
fn magic_variables_expand_in_binds_and_exec() {
    let opts = LoadOptions {
        skip_file_checks: true,
        lab_dir_base: Some("/labs/base".into()),
        ..Default::default()
    };
    let text = "name: mv\ntopology:\n  nodes:\n    n1: {kind: linux, image: x, binds: [\"__clabNodeDir__/conf:/conf\", \"__clabDir__/data.json:/data.json:ro\"], exec: [\"echo __clabNodeName__ __clabLabName__\"]}\n";
    let t = parse(text, Path::new(FILE), &opts).expect("parses");
    let n = &t.nodes[0];
    assert_eq!(n.binds[0].src, Path::new("/labs/base/clab-mv/n1/conf"));
    assert_eq!(n.binds[1].src, Path::new("/labs/base/clab-mv/data.json"));
    assert_eq!(n.exec[0].argv, ["echo", "n1", "mv"]);
}

#[test]
fn bind_sources_inside_the_lab_directory_need_not_exist_yet() {
    let text = "name: mv\ntopology:\n  nodes:\n    n1: {kind: linux, image: x, binds: [\"__clabNodeDir__/run:/rtr/run\"]}\n";
    let opts = LoadOptions { lab_dir_base: Some("/nonexistent-base".into()), ..Default::default() };
    let t = parse(text, Path::new(FILE), &opts)
        .expect("a bind under the lab directory is created at deploy");
    assert_eq!(t.nodes[0].binds[0].src, Path::new("/nonexistent-base/clab-mv/n1/run"));
}

#[test]
fn a_node_may_not_take_the_management_namespaces_name() {
    let p = problems(
        "name: x\nprefix: \"\"\ntopology:\n  nodes:\n    tartanlab-x: {kind: linux, image: alpine}\n",
    );
    assert!(has(
        &p,
        &node("tartanlab-x"),
        |k| matches!(k, ProblemKind::BadValue { key, .. } if key == "prefix")
    ));
}

#[test]
fn lab_name_is_read_even_from_an_invalid_file() {
    let dir = std::env::temp_dir().join(format!("tartanlab-name-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad.clab.yml");
    std::fs::write(
        &file,
        "name: ${N:-still-named}\ntopology:\n  nodes:\n    a: {kind: nonsense, bogus: 1}\n",
    )
    .expect("write");
    assert!(load(&file, &LoadOptions::default()).is_err());
    assert_eq!(lab_name(&file, &LoadOptions::default()).expect("name"), "still-named");
    let named = LoadOptions { name: Some("given".into()), ..Default::default() };
    assert_eq!(lab_name(&file, &named).expect("name"), "given");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn certificates_are_issued_as_containerlab_issues_them_and_the_ca_is_kept() {
    let text = "name: tls\nmgmt: {ipv4-subnet: 172.30.9.0/24}\ntopology:\n  kinds:\n    linux: {certificate: {issue: true}}\n  nodes:\n    api: {kind: linux, image: x, certificate: {sans: [api.example]}}\n    host: {kind: linux, image: x, certificate: {issue: false}}\n    plain: {kind: linux, image: x}\n";
    let t = parse_ok(text);
    let by = |n: &str| t.nodes.iter().find(|x| x.name == n).map(|x| x.certificate.clone());
    // Inherited from the kind, with the node's own sans; turned off on `host`.
    assert_eq!(by("api"), Some(Some(vec!["api.example".to_string()])));
    assert_eq!(by("host"), Some(None));
    assert_eq!(by("plain"), Some(Some(vec![])));
    assert!(problems("name: x\ntopology:\n  nodes:\n    a: {kind: linux, image: x, certificate: {isue: true}}\n")
        .iter()
        .any(|p| matches!(&p.kind, ProblemKind::UnknownKey { key, .. } if key == "isue")));

    let dir = std::env::temp_dir().join(format!("tartanlab-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let written = crate::pki::issue_certificates(&t, &dir).expect("issue");
    assert_eq!(written.len(), 2, "{written:?}");
    let ca = std::fs::read_to_string(dir.join(".tls/ca/ca.pem")).expect("CA");
    let key = dir.join(".tls/api/api.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).expect("key").permissions().mode() & 0o777, 0o600);
    // A server with the node's certificate is trusted by a client of the CA under each name.
    let config = tartan_ipam::tls::client_config(Some(&dir.join(".tls/ca/ca.pem")), None)
        .expect("client config");
    let cert = tartan_ipam::tls::ReloadingCert::load(&dir.join(".tls/api/api.pem"), &key)
        .expect("the pair fits");
    drop((config, cert));
    // Deployed again: the CA stays, so clients that trust it keep working.
    crate::pki::issue_certificates(&t, &dir).expect("issue again");
    assert_eq!(std::fs::read_to_string(dir.join(".tls/ca/ca.pem")).expect("CA"), ca);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn typos_in_groups_kinds_and_variables_are_named() {
    let p = problems(
        "name: t\ntopology:\n  groups:\n    spine: {kind: linux}\n  kinds:\n    linx: {image: x}\n  nodes:\n    a: {kind: linux, image: x, group: spnie}\n",
    );
    assert!(p.iter().any(|p| matches!(&p.kind, ProblemKind::UnknownGroup { group, suggestion } if group == "spnie" && suggestion.as_deref() == Some("spine"))), "{p:?}");
    assert!(p.iter().any(|p| matches!(&p.kind, ProblemKind::UnknownKind { kind, suggestion } if kind == "linx" && suggestion.as_deref() == Some("linux"))), "{p:?}");
    // Without a groups section a group is free-form, as in containerlab (it sorts the graph).
    parse_ok("name: t\ntopology:\n  nodes:\n    a: {kind: linux, image: x, group: spine}\n");
    let opts = LoadOptions { skip_file_checks: true, ..Default::default() };
    let err = parse(
        "name: ${TARTAN_TEST_UNSET_LABNAME}\ntopology: {nodes: {a: {kind: linux, image: x}}}\n",
        Path::new(FILE),
        &opts,
    )
    .expect_err("unset variable");
    let text = err.to_string();
    assert!(text.contains("${TARTAN_TEST_UNSET_LABNAME} on line 1 is not set"), "{text}");
}

#[test]
fn bridge_nodes_need_no_image_and_their_ports_are_named_apart() {
    let t = parse_ok(
        "name: br\ntopology:\n  nodes:\n    lan: {kind: bridge}\n    a: {kind: linux, image: x}\n    b: {kind: linux, image: x}\n  links:\n    - endpoints: [\"a:eth1\", \"lan:p1\"]\n    - endpoints: [\"b:eth1\", \"lan:p2\"]\n",
    );
    assert_eq!(t.bridges, ["lan"]);
    assert_eq!(t.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(t.nodes[1].index, 1, "indexes count nodes only");
    let p = problems(
        "name: br\ntopology:\n  nodes:\n    l1: {kind: bridge}\n    l2: {kind: bridge}\n    a: {kind: linux, image: x}\n  links:\n    - endpoints: [\"a:eth1\", \"l1:p1\"]\n    - endpoints: [\"a:eth2\", \"l2:p1\"]\n",
    );
    assert!(
        p.iter().any(
            |p| matches!(&p.kind, ProblemKind::BadInterface { interface, .. } if interface == "p1")
        ),
        "{p:?}"
    );
    // Another unsupported kind is named once, without an `image is required` beside it.
    let p = problems("name: x\ntopology:\n  nodes:\n    r: {kind: nokia_srlinux}\n");
    assert_eq!(p.len(), 1, "{p:?}");
}
