//! `policy explain SRC DST PACKET`: what the fabric's policies do to one packet, from the
//! workloads, network sets, policies and profiles in the datastore, evaluated by the same model
//! the node agents' rules follow; which rule (or default) decides each side, and why.

use std::net::IpAddr;

use tartan_ipam::policy::{Endpoint, Flow, Model, NetworkSet};
use tartan_ipam::resources::policy::Protocol;
use tartan_ipam::resources::{
    GlobalNetworkPolicySpec, GlobalNetworkSetSpec, ProfileSpec, Resource, WorkloadEndpointSpec,
};

use crate::cli::ExplainArgs;
use crate::context::{Ctx, Error, Result};
use crate::output::emit;

pub async fn explain(ctx: &Ctx, args: ExplainArgs) -> Result<()> {
    let api = ctx.connect()?;
    let (weps, sets, policies, profiles) = tokio::try_join!(
        api.list::<WorkloadEndpointSpec>(),
        api.list::<GlobalNetworkSetSpec>(),
        api.list::<GlobalNetworkPolicySpec>(),
        api.list::<ProfileSpec>(),
    )?;
    let endpoints: Vec<Endpoint> = weps.iter().map(endpoint).collect();
    let sets = sets
        .into_iter()
        .map(|s| NetworkSet { name: s.metadata.name, labels: s.metadata.labels, nets: s.spec.nets })
        .collect();
    let model = Model::new(endpoints.clone(), sets, &named(policies), &named(profiles))
        .map_err(|e| Error::new(format!("the stored policy does not parse: {e}")))?;
    let flow = flow(&endpoints, &weps, &args)?;
    emit(&model.evaluate(&flow).to_string());
    Ok(())
}

fn named<S>(items: Vec<Resource<S>>) -> Vec<(String, S)> {
    items.into_iter().map(|r| (r.metadata.name, r.spec)).collect()
}

fn endpoint(w: &Resource<WorkloadEndpointSpec>) -> Endpoint {
    Endpoint {
        name: w.metadata.name.clone(),
        labels: w.metadata.labels.clone(),
        addresses: w.spec.ip_networks.iter().map(|n| n.addr()).collect(),
        profiles: w.spec.profile_names(),
    }
}

/// The addresses `text` stands for: an address, or a workload by name or container ID.
fn addresses(
    endpoints: &[Endpoint],
    weps: &[Resource<WorkloadEndpointSpec>],
    text: &str,
    side: &str,
) -> Result<Vec<IpAddr>> {
    if let Ok(a) = text.parse::<IpAddr>() {
        return Ok(vec![a]);
    }
    let found =
        endpoints.iter().zip(weps).find(|(e, w)| e.name == text || w.spec.container_id == text);
    match found {
        Some((e, _)) => Ok(e.addresses.clone()),
        None => Err(Error::new(format!(
            "{side} {text:?} is neither an IP address nor a workload: give an address, or a \
             workload's name or container ID (`tartanctl get weps` lists them)"
        ))),
    }
}

fn flow(
    endpoints: &[Endpoint],
    weps: &[Resource<WorkloadEndpointSpec>],
    args: &ExplainArgs,
) -> Result<Flow> {
    let src = addresses(endpoints, weps, &args.src, "SRC")?;
    let dst = addresses(endpoints, weps, &args.dst, "DST")?;
    // The first pair of one IP version, IPv4 first.
    let pair = [true, false].into_iter().find_map(|v4| {
        let s = src.iter().find(|a| a.is_ipv4() == v4)?;
        let d = dst.iter().find(|a| a.is_ipv4() == v4)?;
        Some((*s, *d))
    });
    let Some((src, dst)) = pair else {
        return Err(Error::new(format!(
            "{} and {} have no addresses of the same IP version",
            args.src, args.dst
        )));
    };
    packet(src, dst, &args.packet)
}

/// `tcp/80`, `udp/53`, `sctp/9`, `80` (TCP), `icmp`, `icmp/8`, `icmp/3/1`, `icmpv6/128`,
/// `proto/47`.
pub fn packet(src: IpAddr, dst: IpAddr, text: &str) -> Result<Flow> {
    let bad = |why: &str| {
        Error::new(format!(
            "PACKET {text:?}: {why}; write tcp/PORT, udp/PORT, sctp/PORT, icmp[/TYPE[/CODE]], \
             icmpv6[/TYPE[/CODE]] or proto/NUMBER"
        ))
    };
    let mut parts = text.split('/');
    let first = parts.next().unwrap_or_default().to_ascii_lowercase();
    let rest: Vec<&str> = parts.collect();
    let number = |s: Option<&&str>, what: &str| -> Result<u16> {
        s.ok_or_else(|| bad(&format!("the {what} is missing")))?
            .parse::<u16>()
            .map_err(|_| bad(&format!("the {what} is not a number")))
    };
    if let Ok(port) = first.parse::<u16>() {
        if rest.is_empty() {
            return Ok(Flow::to_port(src, dst, Protocol::Tcp, port));
        }
    }
    match first.as_str() {
        "tcp" | "udp" | "sctp" => {
            let proto: Protocol = first.parse().map_err(|e: String| bad(&e))?;
            let port = number(rest.first(), "port")?;
            if rest.len() > 1 {
                return Err(bad("one port only"));
            }
            Ok(Flow::to_port(src, dst, proto, port))
        }
        "icmp" | "icmpv6" => {
            let v6 = first == "icmpv6";
            if v6 == src.is_ipv4() {
                return Err(bad(if v6 {
                    "ICMPv6 between IPv4 addresses"
                } else {
                    "ICMP between IPv6 addresses: use icmpv6"
                }));
            }
            let mut f = Flow::ping(src, dst);
            let byte = |s: Option<&&str>, what: &str| -> Result<u8> {
                u8::try_from(number(s, what)?).map_err(|_| bad(&format!("the {what} is over 255")))
            };
            if !rest.is_empty() {
                let t = byte(rest.first(), "type")?;
                let c = if rest.len() > 1 { byte(rest.get(1), "code")? } else { 0 };
                f.icmp = Some((t, c));
            }
            Ok(f)
        }
        "proto" => {
            let n = u8::try_from(number(rest.first(), "protocol number")?)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("a protocol number is 1-255"))?;
            Ok(Flow { src, dst, protocol: n, src_port: None, dst_port: None, icmp: None })
        }
        _ => Err(bad("unknown protocol")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn packets_in_every_form() {
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let f = |t: &str| packet(a, b, t).map(|f| (f.protocol, f.dst_port, f.icmp));
        assert_eq!(f("tcp/80").ok(), Some((6, Some(80), None)));
        assert_eq!(f("443").ok(), Some((6, Some(443), None)));
        assert_eq!(f("UDP/53").ok(), Some((17, Some(53), None)));
        assert_eq!(f("icmp").ok(), Some((1, None, Some((8, 0)))));
        assert_eq!(f("icmp/3/1").ok(), Some((1, None, Some((3, 1)))));
        assert_eq!(f("proto/47").ok(), Some((47, None, None)));
        for bad in ["tcp", "tcp/http", "icmpv6/128", "icmp/300", "gre", "proto/0", "tcp/1/2"] {
            assert!(f(bad).is_err(), "{bad}");
        }
        let v6 = packet(ip("fd00::1"), ip("fd00::2"), "icmpv6/128/0").map(|f| f.protocol);
        assert_eq!(v6.ok(), Some(58));
    }
}
