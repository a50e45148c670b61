//! `node status`: each node's BGP sessions from the NodeStatus its agent last reported, as
//! calicoctl prints them (IPv4 and IPv6 peers in separate tables), with the report's age.

use std::collections::BTreeMap;

use tartan_ipam::resources::{BgpPeerStatus, Kind, List, NodeStatusSpec, RawResource};

use crate::cli::NodeStatusArgs;
use crate::context::{Error, Result, encode};
use crate::output::{age, age_of, bordered, emit};

/// A report older than this is flagged: the agent reports far more often.
const STALE_SECONDS: u64 = 120;

fn not_reported(node: &str) -> String {
    format!("node {node} has not reported (is `tartan node` running there?)")
}

pub async fn status(ctx: &crate::context::Ctx, args: NodeStatusArgs) -> Result<()> {
    let api = ctx.connect()?;
    let statuses = Kind::NodeStatus.info().plural;
    if let Some(node) = &args.node {
        let path = format!("/v1/{statuses}/{}", encode(node));
        let Some(raw) = api.get_optional::<RawResource>(&path).await? else {
            let registered: Option<RawResource> = api
                .get_optional(&format!("/v1/{}/{}", Kind::Node.info().plural, encode(node)))
                .await?;
            return Err(Error::new(match registered {
                Some(_) => not_reported(node),
                None => format!(
                    "{}; no Node {node:?} is registered either (`tartanctl get nodes` lists them)",
                    not_reported(node)
                ),
            }));
        };
        emit(&describe(&raw)?);
        return Ok(());
    }
    let nodes: List<RawResource> = api.get(&format!("/v1/{}", Kind::Node.info().plural)).await?;
    let reports: List<RawResource> = api.get(&format!("/v1/{statuses}")).await?;
    // Every registered node, and any node that reports without being registered.
    let mut by_name: BTreeMap<String, Option<RawResource>> =
        nodes.items.into_iter().map(|n| (n.metadata.name, None)).collect();
    for r in reports.items {
        by_name.insert(r.metadata.name.clone(), Some(r));
    }
    if by_name.is_empty() {
        emit("No nodes: register them with `tartanctl apply -f nodes.yaml`.\n");
        return Ok(());
    }
    let mut out = Vec::new();
    for (name, report) in &by_name {
        out.push(match report {
            Some(r) => describe(r)?,
            None => format!("{}\n", not_reported(name)),
        });
    }
    emit(&out.join("\n"));
    Ok(())
}

fn describe(raw: &RawResource) -> Result<String> {
    let spec = raw
        .typed::<NodeStatusSpec>()
        .map_err(|e| Error::new(format!("NodeStatus {:?} is malformed: {e}", raw.metadata.name)))?
        .spec;
    let when = match age_of(&spec.reported_at) {
        Some(secs) if secs > STALE_SECONDS => format!(
            "reported {} ago at {} — stale: the agent may have stopped",
            age(secs),
            spec.reported_at
        ),
        Some(secs) => format!("reported {} ago at {}", age(secs), spec.reported_at),
        None => format!("reported at {:?}", spec.reported_at),
    };
    let agent = if spec.agent_version.is_empty() {
        String::new()
    } else {
        format!("agent {}, ", spec.agent_version)
    };
    let mut out = format!("Node {}: {agent}{when}\n", raw.metadata.name);
    for (family, v4) in [("IPv4", true), ("IPv6", false)] {
        let peers: Vec<&BgpPeerStatus> =
            spec.peers.iter().filter(|p| p.peer_ip.is_ipv4() == v4).collect();
        out.push_str(&format!("\n{family} BGP status\n"));
        if peers.is_empty() {
            out.push_str(&format!("No {family} peers found.\n"));
            continue;
        }
        let rows: Vec<Vec<String>> = peers.iter().map(|p| row(p)).collect();
        out.push_str(&bordered(&["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"], &rows));
    }
    let bfd: Vec<Vec<String>> = spec
        .peers
        .iter()
        .filter_map(|p| p.bfd.as_ref().map(|b| (p, b)))
        .map(|(p, b)| {
            vec![
                p.peer_ip.to_string(),
                b.state.clone(),
                format!("{}ms", b.transmit_interval_ms),
                b.detection_time_ms.map_or_else(|| "-".into(), |d| format!("{d}ms")),
                b.flaps.to_string(),
                if b.diagnostic == "ok" { String::new() } else { b.diagnostic.clone() },
            ]
        })
        .collect();
    if !bfd.is_empty() {
        out.push_str("\nBFD status\n");
        out.push_str(&bordered(
            &["PEER ADDRESS", "STATE", "TX INTERVAL", "DETECT TIME", "FLAPS", "LAST DIAGNOSTIC"],
            &bfd,
        ));
    }
    Ok(out)
}

/// calicoctl's columns: STATE is up or down, INFO the session state and any detail.
fn row(p: &BgpPeerStatus) -> Vec<String> {
    let up = p.state == "Established";
    let info = match &p.info {
        Some(i) if !i.is_empty() => format!("{} ({i})", p.state),
        _ => p.state.clone(),
    };
    let since = p.since.as_deref().map(short_time).unwrap_or_default();
    vec![
        p.peer_ip.to_string(),
        p.peer_type.clone(),
        if up { "up" } else { "down" }.to_string(),
        since,
        info,
    ]
}

/// `HH:MM:SS` for a time today (UTC), the date for an older one, else the text as given.
fn short_time(text: &str) -> String {
    let Some(then) = tartan_ipam::time::parse_rfc3339(text) else { return text.to_string() };
    let now = tartan_ipam::time::now_unix();
    let (date, time) = text.split_at(10);
    if now / 86_400 == then / 86_400 { time[1..9].to_string() } else { date.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_today_or_a_date() {
        let now = tartan_ipam::time::now_unix();
        let today = tartan_ipam::time::rfc3339(now);
        assert_eq!(short_time(&today), today[11..19]);
        assert_eq!(short_time("2020-01-02T03:04:05Z"), "2020-01-02");
        assert_eq!(short_time("yesterday"), "yesterday");
    }
}
