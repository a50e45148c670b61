//! Validation: turns a resource as submitted into the resource as stored — checked, with its
//! defaults written out — or says exactly what is wrong and how to fix it.
//!
//! Checks that need other resources (overlapping pools, immutable fields) take them as
//! arguments; this module never reads storage itself.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::kinds::Kind;
use super::policy::{GlobalNetworkPolicySpec, GlobalNetworkSetSpec, ProfileSpec};
use super::selector::Selector;
use super::specs::*;
use super::validate_policy;
use super::{API_VERSION, RawResource, Resource};

/// What validation needs to know about the rest of the store.
#[derive(Debug, Default)]
pub struct Context<'a> {
    /// The stored resource of the same kind and name, when this is an update.
    pub existing: Option<&'a RawResource>,
    /// Every stored pool (for overlap checks; may include `existing`).
    pub pools: &'a [RawResource],
}

/// Checks `raw` as a resource of `kind` and fills in its defaults.
pub fn validate(kind: Kind, raw: RawResource, ctx: &Context<'_>) -> Result<RawResource, String> {
    if raw.api_version != API_VERSION {
        return Err(format!("apiVersion must be {API_VERSION:?}, not {:?}", raw.api_version));
    }
    if Kind::from_document_kind(&raw.kind) != Some(kind) {
        return Err(format!(
            "kind is {:?} but this is the {} endpoint",
            raw.kind,
            kind.info().plural
        ));
    }
    check_name(&raw.metadata.name)?;
    if let Some(only) = kind.info().singleton {
        if raw.metadata.name != only {
            return Err(format!("{kind} is a singleton: its name must be {only:?}"));
        }
    }
    check_labels(&raw.metadata.labels)?;
    let noted: usize = raw.metadata.annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if noted > 64 << 10 {
        return Err(format!("metadata.annotations hold {noted} bytes: at most 64 KiB"));
    }
    let mut raw = raw;
    raw.kind = kind.info().kind.to_string();
    match kind {
        Kind::IpPool => typed(&raw, |r: &mut Resource<IpPoolSpec>| pool(r, ctx)),
        Kind::IpamConfig => typed(&raw, |r: &mut Resource<IpamConfigSpec>| ipam_config(&r.spec)),
        Kind::BgpConfiguration => {
            typed(&raw, |r: &mut Resource<BgpConfigurationSpec>| bgp_config(&r.spec))
        }
        Kind::BgpPeer => typed(&raw, |r: &mut Resource<BgpPeerSpec>| bgp_peer(&r.spec)),
        Kind::Node => typed(&raw, |r: &mut Resource<NodeSpec>| node(&r.spec)),
        Kind::WorkloadEndpoint => {
            typed(&raw, |r: &mut Resource<WorkloadEndpointSpec>| workload(&r.spec))
        }
        Kind::NodeStatus => typed(&raw, |_: &mut Resource<NodeStatusSpec>| Ok(())),
        Kind::NodeCredential => {
            typed(&raw, |r: &mut Resource<NodeCredentialSpec>| node_credential(r))
        }
        Kind::GlobalNetworkPolicy => typed(&raw, |r: &mut Resource<GlobalNetworkPolicySpec>| {
            validate_policy::global_network_policy(&mut r.spec)
        }),
        Kind::Profile => {
            typed(&raw, |r: &mut Resource<ProfileSpec>| validate_policy::profile(&r.spec))
        }
        Kind::GlobalNetworkSet => typed(&raw, |r: &mut Resource<GlobalNetworkSetSpec>| {
            validate_policy::network_set(&mut r.spec)
        }),
        Kind::IpamBlock | Kind::BlockAffinity | Kind::IpamHandle => Err(format!(
            "{kind} is a read-only view of the IPAM; change it through `tartanctl ipam ...`"
        )),
    }
}

fn typed<S: DeserializeOwned + Serialize>(
    raw: &RawResource,
    check: impl FnOnce(&mut Resource<S>) -> Result<(), String>,
) -> Result<RawResource, String> {
    let mut r = raw.typed::<S>()?;
    check(&mut r)?;
    Ok(r.raw())
}

/// Names are DNS-1123 subdomains, as in Kubernetes and calicoctl.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() {
        return Err("metadata.name is missing".into());
    }
    if name.len() > 253
        || !name.chars().all(ok_char)
        || !edge(name.chars().next())
        || !edge(name.chars().last())
    {
        return Err(format!(
            "metadata.name {name:?} is not valid: use at most 253 lower-case letters, digits, `-` and `.`, \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    let ok = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    for (k, v) in labels {
        if k.is_empty() || k.len() > 253 || !ok(k) {
            return Err(format!(
                "label key {k:?} is not valid: use letters, digits, `-`, `_`, `.` and `/`"
            ));
        }
        if v.len() > 63 || !ok(v) {
            return Err(format!(
                "label {k}={v:?}: values are at most 63 letters, digits, `-`, `_`, `.`"
            ));
        }
    }
    Ok(())
}

fn selector(field: &str, text: Option<&str>) -> Result<(), String> {
    match text {
        Some(t) => Selector::parse(t).map(|_| ()).map_err(|e| format!("{field}: {e}")),
        None => Ok(()),
    }
}

fn check_as(field: &str, asn: u32) -> Result<(), String> {
    match asn {
        0 => Err(format!("{field}: AS 0 is reserved (RFC 7607)")),
        23456 => Err(format!("{field}: AS 23456 is AS_TRANS (RFC 6793), not a real AS")),
        _ => Ok(()),
    }
}

fn node_credential(r: &Resource<NodeCredentialSpec>) -> Result<(), String> {
    if r.spec.node != r.metadata.name {
        return Err(
            "a NodeCredential is named after its node: spec.node must equal metadata.name".into()
        );
    }
    let hash = &r.spec.token_sha256;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err("spec.tokenSha256 must be 64 lower-case hex digits".into());
    }
    Ok(())
}

fn masked(field: &str, net: IpNet) -> Result<(), String> {
    if net.trunc() != net {
        return Err(format!("{field} {net} is not masked: did you mean {}?", net.trunc()));
    }
    Ok(())
}

fn pool(r: &mut Resource<IpPoolSpec>, ctx: &Context<'_>) -> Result<(), String> {
    let spec = &mut r.spec;
    let cidr = spec.cidr;
    masked("spec.cidr", cidr)?;
    let reserved: [(&str, IpNet); 10] = [
        ("\"this network\" (RFC 791)", "0.0.0.0/8".parse().map_err(|_| "internal")?),
        ("link-local", "169.254.0.0/16".parse().map_err(|_| "internal")?),
        ("link-local", "fe80::/10".parse().map_err(|_| "internal")?),
        ("loopback", "127.0.0.0/8".parse().map_err(|_| "internal")?),
        ("loopback", "::1/128".parse().map_err(|_| "internal")?),
        ("unspecified", "::/128".parse().map_err(|_| "internal")?),
        ("multicast", "224.0.0.0/4".parse().map_err(|_| "internal")?),
        ("multicast", "ff00::/8".parse().map_err(|_| "internal")?),
        // 255.255.255.255, the limited broadcast address, is in it.
        ("reserved (RFC 1112) and broadcast", "240.0.0.0/4".parse().map_err(|_| "internal")?),
        ("IPv4-mapped IPv6", "::ffff:0:0/96".parse().map_err(|_| "internal")?),
    ];
    for (what, net) in reserved {
        if overlaps(cidr, net) {
            return Err(format!(
                "spec.cidr {cidr} overlaps the {what} range {net}; containers cannot use it"
            ));
        }
    }
    if cidr.addr().is_multicast() {
        return Err(format!("spec.cidr {cidr} is a multicast range"));
    }
    let size = spec.block_prefix();
    let (lo, hi) = match cidr {
        IpNet::V4(_) => (20, 32),
        IpNet::V6(_) => (116, 128),
    };
    if !(lo..=hi).contains(&size) {
        return Err(format!(
            "spec.blockSize {size} is out of range: use {lo} to {hi} for this family"
        ));
    }
    if cidr.prefix_len() > size {
        return Err(format!(
            "spec.blockSize {size} is larger than the pool {cidr}: a block cannot be bigger than its pool; \
             use a blockSize of at least {}",
            cidr.prefix_len()
        ));
    }
    selector("spec.nodeSelector", spec.node_selector.as_deref())?;
    spec.block_size = Some(size);
    spec.node_selector = Some(spec.selector_text().to_string());
    if let Some(old) = ctx.existing {
        let old = old.typed::<IpPoolSpec>()?.spec;
        if old.cidr != cidr {
            return Err(format!(
                "spec.cidr cannot change ({} → {cidr}): create a new pool, disable this one \
                 (`disabled: true`), and delete it once its addresses are released",
                old.cidr
            ));
        }
        if old.block_prefix() != size {
            return Err(format!(
                "spec.blockSize cannot change ({} → {size}): blocks already cut would overlap new ones. \
                 Create a new pool with the new size, disable this one, and delete it once its addresses \
                 are released",
                old.block_prefix()
            ));
        }
    }
    for other in ctx.pools {
        if other.metadata.name == r.metadata.name {
            continue;
        }
        let Ok(o) = other.typed::<IpPoolSpec>() else { continue };
        if overlaps(cidr, o.spec.cidr) {
            return Err(format!(
                "spec.cidr {cidr} overlaps pool {:?} ({}): pools may not overlap",
                other.metadata.name, o.spec.cidr
            ));
        }
    }
    Ok(())
}

/// Whether two networks share any address.
pub fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn ipam_config(spec: &IpamConfigSpec) -> Result<(), String> {
    if spec.ip_cooldown_seconds > 3600 {
        return Err(format!(
            "spec.ipCooldownSeconds {} is too long: use 0 to 3600",
            spec.ip_cooldown_seconds
        ));
    }
    Ok(())
}

fn community(field: &str, text: &str) -> Result<(), String> {
    let parts: Vec<&str> = text.split(':').collect();
    let ok = match parts.len() {
        2 => parts.iter().all(|p| p.parse::<u16>().is_ok()),
        3 => parts.iter().all(|p| p.parse::<u32>().is_ok()),
        _ => false,
    };
    if !ok {
        return Err(format!(
            "{field} {text:?} is not a community: use `AS:N` (each 0–65535) or a large community `A:B:C`"
        ));
    }
    Ok(())
}

fn bgp_config(spec: &BgpConfigurationSpec) -> Result<(), String> {
    check_as("spec.asNumber", spec.as_number)?;
    if let Some(t) = spec.node_mesh_max_restart_time {
        if !(1..=4095).contains(&t) {
            return Err(format!(
                "spec.nodeMeshMaxRestartTime: {t} s is out of range: 1 to 4095 s (RFC 4724)"
            ));
        }
    }
    if let Some(level) = &spec.log_severity_screen {
        if !["Trace", "Debug", "Info", "Warning", "Error", "Fatal"].contains(&level.as_str()) {
            return Err(format!(
                "spec.logSeverityScreen {level:?}: use Trace, Debug, Info, Warning, Error or Fatal"
            ));
        }
    }
    for name in &spec.ignored_interfaces {
        let ok = !name.is_empty()
            && name.len() <= 15
            && name != "*"
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.*-".contains(c));
        if !ok {
            return Err(format!(
                "spec.ignoredInterfaces: {name:?} is not an interface name or pattern (1 to 15 \
                 letters, digits, `_`, `.`, `-`, `*`; not `*` alone)"
            ));
        }
    }
    for (field, list) in [
        ("serviceClusterIPs", &spec.service_cluster_ips),
        ("serviceExternalIPs", &spec.service_external_ips),
        ("serviceLoadBalancerIPs", &spec.service_load_balancer_ips),
    ] {
        for (i, s) in list.iter().enumerate() {
            masked(&format!("spec.{field}[{i}].cidr"), s.cidr)?;
        }
    }
    if spec.listen_port == 0 {
        return Err("spec.listenPort must not be 0".into());
    }
    if let Some(b) = &spec.bfd {
        b.resolve(None).map_err(|e| format!("spec.{e}"))?;
    }
    for (i, c) in spec.communities.iter().enumerate() {
        if c.name.is_empty() {
            return Err(format!("spec.communities[{i}].name is empty"));
        }
        community(&format!("spec.communities[{i}].value"), &c.value)?;
    }
    for (i, adv) in spec.prefix_advertisements.iter().enumerate() {
        masked(&format!("spec.prefixAdvertisements[{i}].cidr"), adv.cidr)?;
        for c in &adv.communities {
            if !spec.communities.iter().any(|n| &n.name == c) {
                community(&format!("spec.prefixAdvertisements[{i}].communities"), c)
                    .map_err(|e| format!("{e}, or the name of one in spec.communities"))?;
            }
        }
    }
    Ok(())
}

fn bgp_peer(spec: &BgpPeerSpec) -> Result<(), String> {
    if let Some(b) = &spec.bfd {
        b.resolve(None).map_err(|e| format!("spec.{e}"))?;
    }
    match (&spec.peer_ip, &spec.peer_selector, spec.as_number) {
        (Some(_), Some(_), _) => {
            return Err("spec.peerIP and spec.peerSelector are exclusive: peer with one address, \
                 or with the nodes a selector picks"
                .into());
        }
        (None, None, _) => {
            return Err("spec.peerIP is missing: give the peer's address (or spec.peerSelector \
                 to peer with nodes of the fabric)"
                .into());
        }
        (Some(_), None, None) => {
            return Err("spec.asNumber is missing: give the peer's AS".into());
        }
        (None, Some(_), Some(_)) => {
            return Err("spec.asNumber must be empty with spec.peerSelector: each selected node \
                 peers with its own AS"
                .into());
        }
        (_, _, Some(asn)) => check_as("spec.asNumber", asn)?,
        (None, Some(_), None) => {}
    }
    selector("spec.peerSelector", spec.peer_selector.as_deref())?;
    if let Some(asn) = spec.local_as_number {
        check_as("spec.localASNumber", asn)?;
    }
    if spec.port == Some(0) {
        return Err("spec.port must not be 0".into());
    }
    if spec.node.is_some() && spec.node_selector.is_some() {
        return Err(
            "spec.node and spec.nodeSelector are exclusive: name one node, or select several"
                .into(),
        );
    }
    if let Some(node) = &spec.node {
        check_name(node).map_err(|e| format!("spec.node: {e}"))?;
    }
    selector("spec.nodeSelector", spec.node_selector.as_deref())?;
    if let Some(p) = &spec.password {
        match (&p.value, &p.file) {
            (Some(v), None) if v.is_empty() || v.len() > 80 => {
                return Err(
                    "spec.password.value must be 1 to 80 characters (the TCP-MD5 key limit)".into(),
                );
            }
            (None, Some(f)) if !f.starts_with('/') || f.len() > 4096 || f.contains('\0') => {
                return Err(format!(
                    "spec.password.file {f:?} must be an absolute path (the agent reads it on its host)"
                ));
            }
            (None, Some(f)) if f.starts_with("/dev/") || f.starts_with("/proc/") => {
                return Err(format!(
                    "spec.password.file {f:?} must be a regular file holding the password"
                ));
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => return Err("spec.password needs exactly one of `value` or `file`".into()),
        }
    }
    if let Some(hold) = spec.hold_time {
        if hold == 1 || hold == 2 {
            return Err(
                "spec.holdTime must be 0 (no keepalives) or at least 3 seconds (RFC 4271 §4.2)"
                    .into(),
            );
        }
        if let Some(ka) = spec.keepalive_time {
            if hold > 0 && ka >= hold {
                return Err(format!(
                    "spec.keepaliveTime {ka} must be shorter than spec.holdTime {hold}"
                ));
            }
        }
    }
    if let Some(gr) = &spec.graceful_restart {
        if gr.restart_time > 4095 {
            return Err(
                "spec.gracefulRestart.restartTime is at most 4095 seconds (RFC 4724)".into()
            );
        }
    }
    if let Some(ip) = spec.peer_ip {
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(format!("spec.peerIP {ip} is not a peer's address"));
        }
    }
    Ok(())
}

fn node(spec: &NodeSpec) -> Result<(), String> {
    let Some(bgp) = &spec.bgp else { return Ok(()) };
    if let Some(a) = bgp.ipv4_address {
        if !matches!(a.addr(), IpAddr::V4(_)) {
            return Err(format!("spec.bgp.ipv4Address {a} is not an IPv4 address"));
        }
    }
    if let Some(a) = bgp.ipv6_address {
        if !matches!(a.addr(), IpAddr::V6(_)) {
            return Err(format!("spec.bgp.ipv6Address {a} is not an IPv6 address"));
        }
    }
    if let Some(asn) = bgp.as_number {
        check_as("spec.bgp.asNumber", asn)?;
    }
    Ok(())
}

fn workload(spec: &WorkloadEndpointSpec) -> Result<(), String> {
    check_name(&spec.node).map_err(|e| format!("spec.node: {e}"))?;
    if spec.ip_networks.is_empty() {
        return Err("spec.ipNetworks is empty: a workload endpoint has at least one address".into());
    }
    if spec.interface_name.is_empty() || spec.interface_name.len() > 15 {
        return Err("spec.interfaceName must be 1 to 15 characters (a Linux interface name)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool_raw(name: &str, spec: serde_json::Value) -> RawResource {
        RawResource::new(Kind::IpPool, name, spec)
    }

    fn check(kind: Kind, raw: RawResource, ctx: &Context<'_>) -> Result<RawResource, String> {
        validate(kind, raw, ctx)
    }

    #[test]
    fn a_pool_gets_its_defaults_written_out() {
        let v4 = check(
            Kind::IpPool,
            pool_raw("p4", json!({"cidr": "10.65.0.0/16"})),
            &Context::default(),
        );
        let v4 = v4.expect("valid");
        assert_eq!(v4.spec["blockSize"], 26);
        assert_eq!(v4.spec["nodeSelector"], "all()");
        let v6 = check(
            Kind::IpPool,
            pool_raw("p6", json!({"cidr": "fd00:65::/48"})),
            &Context::default(),
        );
        assert_eq!(v6.expect("valid").spec["blockSize"], 122);
    }

    #[test]
    fn pool_errors_say_what_is_wrong_and_what_to_do() {
        let ctx = Context::default();
        let cases = [
            (json!({"cidr": "10.65.0.1/16"}), "did you mean 10.65.0.0/16"),
            (json!({"cidr": "10.65.0.0/16", "blockSize": 19}), "out of range"),
            (json!({"cidr": "10.65.0.0/28", "blockSize": 26}), "larger than the pool"),
            (json!({"cidr": "169.254.0.0/16"}), "link-local"),
            (json!({"cidr": "0.0.0.0/8"}), "\"this network\""),
            (json!({"cidr": "0.0.0.0/24"}), "\"this network\""),
            (json!({"cidr": "240.0.0.0/4"}), "broadcast"),
            (json!({"cidr": "255.255.255.0/24"}), "broadcast"),
            (json!({"cidr": "::ffff:0:0/96", "blockSize": 122}), "IPv4-mapped"),
            (json!({"cidr": "::ffff:10.0.0.0/120", "blockSize": 122}), "IPv4-mapped"),
            (json!({"cidr": "ff02::/16", "blockSize": 122}), "multicast"),
            (json!({"cidr": "10.65.0.0/16", "nodeSelector": "rack = 'a'"}), "spec.nodeSelector"),
            (json!({"cidr": "10.65.0.0/16", "natOutgoin": true}), "unknown field `natOutgoin`"),
            (json!({"cidr": "nonsense"}), "spec.cidr"),
        ];
        for (spec, want) in cases {
            let err = check(Kind::IpPool, pool_raw("p", spec.clone()), &ctx).expect_err("invalid");
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn pools_may_not_overlap_and_cidr_and_block_size_are_immutable() {
        let a = check(
            Kind::IpPool,
            pool_raw("a", json!({"cidr": "10.65.0.0/16"})),
            &Context::default(),
        )
        .expect("valid");
        let pools = [a.clone()];
        let ctx = Context { existing: None, pools: &pools };
        let err = check(Kind::IpPool, pool_raw("b", json!({"cidr": "10.65.128.0/17"})), &ctx)
            .expect_err("overlap");
        assert!(err.contains("overlaps pool \"a\""), "{err}");
        let ctx = Context { existing: Some(&a), pools: &pools };
        let err = check(
            Kind::IpPool,
            pool_raw("a", json!({"cidr": "10.65.0.0/16", "blockSize": 24})),
            &ctx,
        )
        .expect_err("immutable");
        assert!(err.contains("blockSize cannot change (26 → 24)"), "{err}");
        let ok = check(
            Kind::IpPool,
            pool_raw("a", json!({"cidr": "10.65.0.0/16", "disabled": true})),
            &ctx,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn envelope_errors_name_the_field() {
        let ctx = Context::default();
        let mut raw = pool_raw("UPPER", json!({"cidr": "10.65.0.0/16"}));
        assert!(
            check(Kind::IpPool, raw.clone(), &ctx).expect_err("name").contains("metadata.name")
        );
        raw.metadata.name = "ok".into();
        raw.api_version = "projectcalico.org/v3".into();
        assert!(
            check(Kind::IpPool, raw.clone(), &ctx).expect_err("version").contains("apiVersion")
        );
        let cfg = RawResource::new(Kind::IpamConfig, "other", json!({}));
        assert!(check(Kind::IpamConfig, cfg, &ctx).expect_err("singleton").contains("singleton"));
        let node = RawResource::new(Kind::Node, "n1", json!({"bgp": {"ipv4Adress": "10.0.0.1"}}));
        let err = check(Kind::Node, node, &ctx).expect_err("typo");
        assert!(err.starts_with("spec.bgp.ipv4Adress: unknown field `ipv4Adress`"), "{err}");
    }

    #[test]
    fn peers_and_bgp_configuration_are_checked() {
        let ctx = Context::default();
        let peer = |spec| check(Kind::BgpPeer, RawResource::new(Kind::BgpPeer, "tor", spec), &ctx);
        assert!(peer(json!({"peerIP": "10.0.0.254", "asNumber": 65001, "holdTime": 9})).is_ok());
        assert!(
            peer(json!({"peerIP": "10.0.0.254", "asNumber": 0}))
                .expect_err("as 0")
                .contains("RFC 7607")
        );
        assert!(peer(json!({"peerIP": "10.0.0.254", "asNumber": 1, "holdTime": 2})).is_err());
        assert!(
            peer(
                json!({"peerIP": "10.0.0.254", "asNumber": 1, "node": "a", "nodeSelector": "all()"})
            )
            .is_err()
        );
        assert!(peer(json!({"peerIP": "10.0.0.254", "asNumber": 1, "password": {}})).is_err());
        assert!(peer(json!({"asNumber": 1})).expect_err("no peer").contains("peerIP is missing"));
        assert!(peer(json!({"peerIP": "10.0.0.254"})).expect_err("no AS").contains("asNumber"));
        assert!(peer(json!({"peerSelector": "rr == 'true'"})).is_ok());
        assert!(peer(json!({"peerSelector": "rr == 'true'", "asNumber": 1})).is_err());
        assert!(peer(json!({"peerSelector": "rr == 'true'", "peerIP": "10.0.0.1"})).is_err());
        for bad in ["/dev/zero", "relative/md5", "/proc/self/environ"] {
            let p = json!({"peerIP": "10.0.0.254", "asNumber": 1, "password": {"file": bad}});
            assert!(peer(p).expect_err(bad).contains("spec.password.file"), "{bad}");
        }
        let ok =
            json!({"peerIP": "10.0.0.254", "asNumber": 1, "password": {"file": "/etc/tartan/md5"}});
        assert!(peer(ok).is_ok());
        for source in ["UseNodeIP", "None"] {
            let spec = json!({"peerIP": "10.0.0.254", "asNumber": 1, "sourceAddress": source});
            assert_eq!(peer(spec).expect("valid").spec["sourceAddress"], source);
        }
        let bad = json!({"peerIP": "10.0.0.254", "asNumber": 1, "sourceAddress": "eth2"});
        assert!(peer(bad).is_err());
        let node = RawResource::new(Kind::Node, "n1", json!({"bgp": {"ipv4Address": "10.0.0.1"}}));
        let node = check(Kind::Node, node, &ctx).expect("bare address is /32");
        assert_eq!(node.spec["bgp"]["ipv4Address"], "10.0.0.1/32");
        let cfg = |spec| {
            check(
                Kind::BgpConfiguration,
                RawResource::new(Kind::BgpConfiguration, "default", spec),
                &ctx,
            )
        };
        let ok = cfg(json!({})).expect("defaults");
        assert_eq!(ok.spec["asNumber"], 64512);
        assert_eq!(ok.spec["nodeToNodeMeshEnabled"], true);
        assert!(
            cfg(json!({"prefixAdvertisements": [{"cidr": "10.65.0.0/16", "communities": ["x"]}]}))
                .is_err()
        );
        assert!(cfg(json!({"communities": [{"name": "x", "value": "65000:100"}],
                           "prefixAdvertisements": [{"cidr": "10.65.0.0/16", "communities": ["x", "1:2:3"]}]}))
            .is_ok());
    }
}
