//! Calico's manifests, as `calicoctl get -o yaml` writes them, read as Tartan's: the apiVersion
//! `projectcalico.org/v3`, Calico's kind names (`IPAMConfiguration`), the metadata calicoctl
//! prints, and every field of IPPool, BGPConfiguration, BGPPeer, Node and IPAMConfiguration —
//! each either turned into what Tartan does with it, or refused with what to do instead.
//! [`to_calico`] writes Tartan's resources back in Calico's apiVersion and kind names.
//!
//! Calico's field names are accepted in `tartan/v1` documents too; only `projectcalico.org/v3`
//! documents drop another datastore's `resourceVersion`, `uid` and `status` and take Calico's
//! meaning where it differs (IPAMConfiguration `maxBlocksPerHost: 0` is 20 blocks).

use serde_json::{Map, Value, json};

use super::API_VERSION;
use super::kinds::Kind;

/// Calico's API version.
pub const CALICO_API_VERSION: &str = "projectcalico.org/v3";

/// What Calico means by IPAMConfiguration `maxBlocksPerHost: 0` (or none).
const CALICO_DEFAULT_MAX_BLOCKS: u64 = 20;
/// Calico's largest `maxBlocksPerHost`: what Tartan's "unlimited" (0) is written as.
const CALICO_MAX_BLOCKS: u64 = 1_000_000;

const NO_ENCAPSULATION: &str = "Tartan routes without encapsulation: every host advertises its \
     blocks over BGP and the fabric routes them";

/// A document in Calico's or Tartan's shape, as Tartan stores it; the error names the field.
pub fn to_tartan(kind: Kind, mut doc: Value) -> Result<Value, String> {
    let Some(obj) = doc.as_object_mut() else {
        return Ok(doc);
    };
    let calico = obj.get("apiVersion").and_then(Value::as_str) == Some(CALICO_API_VERSION);
    if calico {
        obj.insert("apiVersion".into(), API_VERSION.into());
        obj.insert("kind".into(), kind.info().kind.into());
        // Output of another datastore, meaningless here.
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in ["uid", "resourceVersion", "creationTimestamp", "generation", "selfLink"] {
                meta.remove(key);
            }
            if meta.get("namespace").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
                return Err(format!(
                    "metadata.namespace: {} is not namespaced (in Calico either): remove it",
                    kind.info().kind
                ));
            }
            meta.remove("namespace");
        }
    }
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(doc);
    };
    match kind {
        Kind::IpPool => pool(spec)?,
        Kind::BgpConfiguration => bgp_configuration(spec, &name)?,
        Kind::BgpPeer => peer(spec)?,
        Kind::Node => node(spec)?,
        Kind::IpamConfig => ipam_config(spec, calico)?,
        Kind::GlobalNetworkPolicy => super::calico_policy::global_network_policy(spec)?,
        Kind::Profile => super::calico_policy::profile(spec)?,
        _ => {}
    }
    Ok(doc)
}

/// A resource (or a list of them) as Calico names it: `projectcalico.org/v3`, Calico's kind
/// names. Applied back to Tartan it means the same.
pub fn to_calico(mut doc: Value) -> Value {
    if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            *item = to_calico(std::mem::take(item));
        }
    }
    let Some(obj) = doc.as_object_mut() else { return doc };
    obj.insert("apiVersion".into(), CALICO_API_VERSION.into());
    let kind_text = obj.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
    let (base, list) = match kind_text.strip_suffix("List") {
        Some(b) if obj.contains_key("items") => (b.to_string(), "List"),
        _ => (kind_text.clone(), ""),
    };
    if let Some(kind) = Kind::from_document_kind(&base) {
        let name = kind.info().calico_kind.unwrap_or(kind.info().kind);
        obj.insert("kind".into(), format!("{name}{list}").into());
        if kind == Kind::IpamConfig {
            if let Some(m) = obj.get_mut("spec").and_then(|s| s.get_mut("maxBlocksPerHost")) {
                if m.as_u64() == Some(0) {
                    *m = CALICO_MAX_BLOCKS.into();
                }
            }
        }
    }
    doc
}

fn refuse(field: &str, value: &Value, why: &str) -> String {
    format!("spec.{field}: {} is not supported: {why}", short(value))
}

fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() <= 80 {
        return text;
    }
    let mut cut = 80;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// Removes `field`; `allowed` says which values Tartan honours (anything else is refused).
pub(crate) fn only(
    spec: &mut Map<String, Value>,
    field: &str,
    allowed: &[&str],
    why: &str,
) -> Result<(), String> {
    match spec.remove(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s))
            if s.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(&s)) =>
        {
            Ok(())
        }
        Some(v) => Err(refuse(field, &v, why)),
    }
}

/// Removes `field` when it is empty, false or zero; refuses anything else.
pub(crate) fn unset(spec: &mut Map<String, Value>, field: &str, why: &str) -> Result<(), String> {
    match spec.remove(field) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(Value::String(s)) if s.is_empty() => Ok(()),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(()),
        Some(Value::Array(a)) if a.is_empty() => Ok(()),
        Some(Value::Object(o)) if o.is_empty() => Ok(()),
        Some(v) => Err(refuse(field, &v, why)),
    }
}

/// Go's `time.ParseDuration` forms Calico writes (`120s`, `2m0s`, `1h30m`, `500ms`), or
/// seconds as a number: whole seconds.
pub fn duration_seconds(field: &str, v: &Value) -> Result<u64, String> {
    let bad = || {
        format!(
            "spec.{field}: {} is not a duration: write seconds (120) or Go's form (120s, 2m)",
            short(v)
        )
    };
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) => match s.trim().parse::<u64>() {
            Ok(n) => Ok(n),
            Err(_) => super::duration::millis(s).map(|ms| ms.div_ceil(1000)).ok_or_else(bad),
        },
        _ => Err(bad()),
    }
}

/// Replaces a duration field by whole seconds under `to` (at most 65535).
fn seconds(spec: &mut Map<String, Value>, field: &str, to: &str) -> Result<(), String> {
    let Some(v) = spec.remove(field) else { return Ok(()) };
    if v.is_null() {
        return Ok(());
    }
    let secs = duration_seconds(field, &v)?;
    if secs > u64::from(u16::MAX) {
        return Err(format!("spec.{field}: {secs} s is too long: at most 65535 s"));
    }
    spec.insert(to.into(), secs.into());
    Ok(())
}

/// Calico's AS numbers: a number, or a string in decimal or asdot (`1.10` = 65546).
fn as_number(spec: &mut Map<String, Value>, field: &str) -> Result<(), String> {
    let Some(Value::String(s)) = spec.get(field) else { return Ok(()) };
    let bad = || format!("spec.{field}: {s:?} is not an AS number (65001, or asdot 1.10)");
    let asn = match s.split_once('.') {
        None => s.trim().parse::<u32>().map_err(|_| bad())?,
        Some((hi, lo)) => {
            let hi: u32 = hi.parse().map_err(|_| bad())?;
            let lo: u32 = lo.parse().map_err(|_| bad())?;
            if hi > 0xffff || lo > 0xffff {
                return Err(bad());
            }
            (hi << 16) | lo
        }
    };
    spec.insert(field.into(), asn.into());
    Ok(())
}

fn pool(spec: &mut Map<String, Value>) -> Result<(), String> {
    let encapsulation = format!("{NO_ENCAPSULATION}; set it to Never or remove it");
    only(spec, "ipipMode", &["Never"], &encapsulation)?;
    only(spec, "vxlanMode", &["Never"], &encapsulation)?;
    // APIv1 leftovers that Calico itself required off.
    if let Some(ipip) = spec.remove("ipip") {
        if ipip.get("enabled").and_then(Value::as_bool) == Some(true) {
            return Err(refuse("ipip", &ipip, NO_ENCAPSULATION));
        }
    }
    if let Some(nat) = spec.remove("nat-outgoing") {
        if nat.as_bool() == Some(true) {
            return Err(refuse("nat-outgoing", &nat, "write natOutgoing: true"));
        }
    }
    if let Some(uses) = spec.remove("allowedUses") {
        let list: Vec<&str> =
            uses.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if list.iter().any(|u| !matches!(*u, "Workload" | "Tunnel")) {
            return Err(refuse(
                "allowedUses",
                &uses,
                "Tartan pools give addresses to workloads (Workload; Tunnel is accepted and unused, \
                 as Tartan has no tunnels); LoadBalancer needs Kubernetes services",
            ));
        }
        if !list.contains(&"Workload") {
            return Err(refuse(
                "allowedUses",
                &uses,
                "a pool without Workload gives no container an address: add Workload",
            ));
        }
    }
    only(
        spec,
        "assignmentMode",
        &["Automatic"],
        "every Tartan pool hands out addresses automatically to the nodes its nodeSelector \
         selects; to keep a pool for explicit requests only, give it a nodeSelector no node matches",
    )?;
    match spec.remove("namespaceSelector") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.trim().is_empty() || s.trim() == "all()" => {}
        Some(v) => {
            return Err(refuse(
                "namespaceSelector",
                &v,
                "Tartan has no Kubernetes namespaces: select nodes with nodeSelector",
            ));
        }
    }
    Ok(())
}

fn bgp_configuration(spec: &mut Map<String, Value>, name: &str) -> Result<(), String> {
    if name.starts_with("node.") {
        return Err(format!(
            "BGPConfiguration {name:?}: per-node BGP configurations are not supported: set a \
             node's AS in its Node (spec.bgp.asNumber) and its peerings with BGPPeers"
        ));
    }
    as_number(spec, "asNumber")?;
    seconds(spec, "nodeMeshMaxRestartTime", "nodeMeshMaxRestartTime")?;
    if let Some(level) = spec.get("logSeverityScreen").and_then(Value::as_str) {
        // Calico accepts any case; Tartan stores Calico's spelling.
        let canonical = ["Trace", "Debug", "Info", "Warning", "Error", "Fatal"]
            .into_iter()
            .find(|l| l.eq_ignore_ascii_case(level));
        match canonical {
            Some(l) => {
                spec.insert("logSeverityScreen".into(), l.into());
            }
            None if level.is_empty() => {
                spec.remove("logSeverityScreen");
            }
            None => {
                return Err(format!(
                    "spec.logSeverityScreen: {level:?} is not a level: use Trace, Debug, Info, \
                     Warning, Error or Fatal"
                ));
            }
        }
    }
    if let Some(pw) = spec.get("nodeMeshPassword") {
        if !pw.is_null() {
            return Err(refuse(
                "nodeMeshPassword",
                pw,
                "Tartan has no Kubernetes secrets, and node-to-node mesh sessions take no \
                 password yet: give ToR sessions one with a BGPPeer's password.value (stored \
                 write-only) or password.file (read on each host)",
            ));
        }
        spec.remove("nodeMeshPassword");
    }
    only(
        spec,
        "serviceLoadBalancerAggregation",
        &["Enabled"],
        "Tartan advertises each service range whole (Enabled); it has no Kubernetes services \
         to advertise one by one",
    )?;
    only(
        spec,
        "bindMode",
        &["None"],
        "Tartan's speaker listens on every address of the host (None); restrict who connects \
         with nftables, or TCP-MD5 passwords",
    )?;
    let workload_peering = "Tartan has no workloads that peer with their host";
    unset(spec, "localWorkloadPeeringIPV4", workload_peering)?;
    unset(spec, "localWorkloadPeeringIPV6", workload_peering)?;
    only(
        spec,
        "programClusterRoutes",
        &["EnabledNoEncapOnly"],
        "Tartan programs the routes it learns, without encapsulation (EnabledNoEncapOnly)",
    )?;
    for field in ["ipv4NormalRoutePriority", "ipv6NormalRoutePriority"] {
        match spec.get(field) {
            None | Some(Value::Null) => {
                spec.remove(field);
            }
            Some(v) if v.as_u64() == Some(1024) => {
                spec.remove(field);
            }
            Some(v) => {
                return Err(refuse(
                    field,
                    v,
                    "Tartan's routes have the kernel's default metric (1024); \
                     they are told apart by their protocol (84)",
                ));
            }
        }
    }
    Ok(())
}

/// `peerIP` as Calico writes it: `IP`, `IPv4:port` or `[IPv6]:port`.
fn peer_address(spec: &mut Map<String, Value>) -> Result<(), String> {
    let Some(Value::String(text)) = spec.get("peerIP").cloned() else { return Ok(()) };
    let bad = || {
        format!(
            "spec.peerIP: {text:?} is not an address: write 10.0.0.1, 10.0.0.1:179 or [fd00::1]:179"
        )
    };
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let (ip, port) = match text.strip_prefix('[') {
        Some(rest) => rest.split_once("]:").ok_or_else(bad)?,
        None => text.rsplit_once(':').ok_or_else(bad)?,
    };
    let ip: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    if spec.get("port").is_some_and(|p| p.as_u64() != Some(u64::from(port))) {
        return Err(format!("spec.peerIP {text:?} and spec.port disagree: give the port once"));
    }
    spec.insert("peerIP".into(), ip.to_string().into());
    spec.insert("port".into(), port.into());
    Ok(())
}

fn peer(spec: &mut Map<String, Value>) -> Result<(), String> {
    peer_address(spec)?;
    as_number(spec, "asNumber")?;
    // With peerSelector Calico takes an empty or zero asNumber: each node's own.
    if spec.contains_key("peerSelector") && spec.get("asNumber").and_then(Value::as_u64) == Some(0)
    {
        spec.remove("asNumber");
    }
    as_number(spec, "localASNumber")?;
    if let Some(keep) = spec.remove("keepOriginalNextHop") {
        if keep.as_bool() == Some(true) {
            if spec.get("nextHopMode").is_some_and(|m| m != "Keep") {
                return Err(
                    "spec.keepOriginalNextHop and spec.nextHopMode disagree: keep nextHopMode only"
                        .into(),
                );
            }
            spec.insert("nextHopMode".into(), "Keep".into());
        }
    }
    if let Some(v) = spec.remove("maxRestartTime") {
        if !v.is_null() {
            let secs = duration_seconds("maxRestartTime", &v)?;
            if !(1..=4095).contains(&secs) {
                return Err(format!(
                    "spec.maxRestartTime: {secs} s is out of range: graceful restart times are \
                     1 to 4095 s (RFC 4724)"
                ));
            }
            let gr = spec.entry("gracefulRestart").or_insert_with(|| json!({"enabled": true}));
            if let Some(gr) = gr.as_object_mut() {
                gr.insert("restartTime".into(), secs.into());
            }
        }
    }
    seconds(spec, "keepaliveTime", "keepaliveTime")?;
    if let Some(pw) = spec.get("password") {
        if pw.get("secretKeyRef").is_some() {
            return Err(refuse(
                "password.secretKeyRef",
                &pw["secretKeyRef"],
                "Tartan has no Kubernetes secrets: give the password as password.value (stored \
                 write-only: never shown again) or password.file (a file on each host, read by \
                 its agent)",
            ));
        }
    }
    unset(
        spec,
        "numAllowedLocalASNumbers",
        "Tartan's speaker drops routes whose AS path holds its own AS (no allowas-in)",
    )?;
    unset(
        spec,
        "ttlSecurity",
        "Tartan's speaker does not do GTSM (RFC 5082) yet; protect the session with a \
         password (password.value or password.file)",
    )?;
    unset(
        spec,
        "reachableBy",
        "Tartan adds no static route towards a peer: route to it yourself (the peer must be \
         reachable from the node)",
    )?;
    unset(spec, "filters", "Tartan has no BGPFilter resource yet")?;
    unset(spec, "localWorkloadSelector", "Tartan has no workloads that peer with their host")?;
    only(
        spec,
        "reversePeering",
        &["Auto"],
        "peerSelector peerings are made from both ends (Auto)",
    )?;
    Ok(())
}

fn node(spec: &mut Map<String, Value>) -> Result<(), String> {
    let tunnels = format!("{NO_ENCAPSULATION}: remove it");
    if let Some(bgp) = spec.get_mut("bgp").and_then(Value::as_object_mut) {
        unset(bgp, "ipv4IPIPTunnelAddr", &tunnels).map_err(|e| e.replace("spec.", "spec.bgp."))?;
        as_number(bgp, "asNumber").map_err(|e| e.replace("spec.", "spec.bgp."))?;
    }
    for field in [
        "ipv4VXLANTunnelAddr",
        "ipv6VXLANTunnelAddr",
        "vxlanTunnelMACAddr",
        "vxlanTunnelMACAddrV6",
        "wireguard",
    ] {
        unset(spec, field, &tunnels)?;
    }
    Ok(())
}

fn ipam_config(spec: &mut Map<String, Value>, calico: bool) -> Result<(), String> {
    if calico {
        let blocks = spec.get("maxBlocksPerHost").and_then(Value::as_u64).unwrap_or(0);
        if blocks == 0 {
            spec.insert("maxBlocksPerHost".into(), CALICO_DEFAULT_MAX_BLOCKS.into());
        }
    }
    match spec.remove("autoAllocateBlocks") {
        None | Some(Value::Null) | Some(Value::Bool(true)) => {}
        Some(v) => {
            return Err(refuse(
                "autoAllocateBlocks",
                &v,
                "Tartan nodes always claim blocks as they need them; cap them with \
                 maxBlocksPerHost, and strictAffinity: true stops borrowing",
            ));
        }
    }
    unset(spec, "kubeVirtVMAddressPersistence", "Tartan runs no KubeVirt virtual machines")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_form_or_seconds() {
        let s = |v: Value| duration_seconds("t", &v);
        assert_eq!(s(json!("120s")), Ok(120));
        assert_eq!(s(json!("2m0s")), Ok(120));
        assert_eq!(s(json!("1h30m")), Ok(5400));
        assert_eq!(s(json!("500ms")), Ok(1));
        assert_eq!(s(json!(90)), Ok(90));
        assert_eq!(s(json!("90")), Ok(90));
        for bad in [json!("soon"), json!("10x"), json!(""), json!(-1), json!("s")] {
            assert!(s(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn peer_addresses_with_ports_and_asdot() {
        let mut spec = json!({"peerIP": "[fd00::1]:1179", "asNumber": "1.10"});
        peer(spec.as_object_mut().expect("object")).expect("valid");
        assert_eq!(spec, json!({"peerIP": "fd00::1", "port": 1179, "asNumber": 65546}));
        let mut spec = json!({"peerIP": "10.0.0.1:179"});
        peer(spec.as_object_mut().expect("object")).expect("valid");
        assert_eq!(spec["port"], 179);
        for bad in ["10.0.0.1:0", "10.0.0.1:x", "fd00::1:179x", "[fd00::1]179"] {
            let mut spec = json!({ "peerIP": bad });
            assert!(peer(spec.as_object_mut().expect("object")).is_err(), "{bad}");
        }
    }
}
