//! The agent's side of the datastore: registering the Node, reading what a sync pass needs
//! (typed, all or nothing: a list that cannot be read fails the pass and the last good state
//! stays, where an empty one would withdraw every route it stood for), and following the
//! change stream. Nothing here touches the kernel or the speaker.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tartan_ipam::client::{Client, ClientError};
use tartan_ipam::ipam::{Affinity, AffinityState};
use tartan_ipam::resources::{
    API_VERSION, BgpConfigurationSpec, BgpPeerSpec, IpPoolSpec, Kind, List, Metadata, NodeSpec,
    Resource, Spec,
};

use super::autodetect;
use super::config::{AddressSource, AgentConfig};
use super::error::{AgentError, api, io};
use super::peerings::NodeInfo;

/// The datastore as one sync pass read it.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub revision: u64,
    pub me: Option<NodeInfo>,
    pub nodes: Vec<NodeInfo>,
    pub config: BgpConfigurationSpec,
    pub peers: Vec<BgpPeerSpec>,
    pub pools: Vec<IpPoolSpec>,
    /// This host's confirmed blocks.
    pub blocks: BTreeSet<IpNet>,
}

/// Every resource of `S`'s kind that `selector` matches; one that cannot be read fails all.
async fn list<S: Spec>(
    client: &Client,
    selector: Option<&str>,
) -> Result<List<Resource<S>>, AgentError> {
    let plural = S::KIND.info().plural;
    client.list::<S>(selector).await.map_err(|e| match e {
        ClientError::Protocol { reason, .. } => AgentError::Config(reason),
        e => api(format!("listing {plural}"))(e),
    })
}

/// The API shows a BGPPeer's inline password as `(redacted)`: read the password itself for
/// a peer under which this node has sessions (either end of a `peerSelector` peering).
async fn reveal_password(
    client: &Client,
    me: Option<&NodeInfo>,
    peer: &mut Resource<BgpPeerSpec>,
) -> Result<(), AgentError> {
    let redacted = peer.spec.password.as_ref().and_then(|p| p.value.as_deref())
        == Some(tartan_ipam::api::secrets::REDACTED);
    let applies = me.is_some_and(|me| super::peerings::involves(&peer.spec, me));
    if !redacted || !applies {
        return Ok(());
    }
    let path =
        format!("/v1/bgppeers/{}/password", tartan_ipam::client::encode(&peer.metadata.name));
    let secret: serde_json::Value = client
        .get_json(&path)
        .await
        .map_err(api(format!("reading the password of BGPPeer {}", peer.metadata.name)))?;
    let value = secret["value"].as_str().ok_or_else(|| {
        AgentError::Config(format!("the password of BGPPeer {} is not text", peer.metadata.name))
    })?;
    if let Some(p) = peer.spec.password.as_mut() {
        p.value = Some(value.to_string());
    }
    Ok(())
}

/// Reads what the agent needs from the API.
pub(crate) async fn snapshot(client: &Client, node: &str) -> Result<Snapshot, AgentError> {
    let nodes = list::<NodeSpec>(client, None).await?;
    let mut snap = Snapshot { revision: nodes.revision, ..Default::default() };
    for n in nodes.items {
        let info = NodeInfo::from_spec(&n.metadata.name, n.metadata.labels, &n.spec);
        if info.name == node {
            snap.me = Some(info.clone());
        }
        snap.nodes.push(info);
    }
    let configs = list::<BgpConfigurationSpec>(client, None).await?;
    if let Some(c) = configs.items.into_iter().find(|c| c.metadata.name == "default") {
        snap.config = c.spec;
    }
    for mut p in list::<BgpPeerSpec>(client, None).await?.items {
        reveal_password(client, snap.me.as_ref(), &mut p).await?;
        snap.peers.push(p.spec);
    }
    snap.pools =
        list::<IpPoolSpec>(client, None).await?.items.into_iter().map(|p| p.spec).collect();
    let mine = format!("node == '{node}'");
    for a in list::<Affinity>(client, Some(&mine)).await?.items {
        if a.spec.node == node && a.spec.state == AffinityState::Confirmed {
            snap.blocks.insert(a.spec.cidr);
        }
    }
    Ok(snap)
}

/// This host's BGP addresses. An address to detect may not be there yet (a lab's exec line,
/// DHCP, a slow interface): IPv4 is waited for, saying so every few seconds; IPv6 is given a few
/// seconds and then left out (the node then routes no IPv6).
async fn detect_addresses(cfg: &AgentConfig) -> Result<(Option<IpNet>, Option<IpNet>), AgentError> {
    const V6_PATIENCE: Duration = Duration::from_secs(5);
    let handle = crate::netns::netlink().map_err(io("opening netlink"))?;
    let started = Instant::now();
    let mut said = None::<Instant>;
    loop {
        let candidates = autodetect::candidates(&handle)
            .await
            .map_err(|e| AgentError::Config(format!("listing addresses: {e}")))?;
        let pick = |source: &AddressSource, v6: bool| match source {
            AddressSource::Explicit(net) => Some(Some(*net)),
            AddressSource::Detect(m) => autodetect::choose(m, &candidates, v6).map(|c| Some(c.net)),
            AddressSource::None => Some(None),
        };
        let v4 = pick(&cfg.ipv4, false);
        let v6 = pick(&cfg.ipv6, true);
        match (v4, v6) {
            (Some(v4), Some(v6)) => return Ok((v4, v6)),
            (Some(v4), None) if started.elapsed() >= V6_PATIENCE => {
                tracing::warn!(
                    "no IPv6 address found ({:?}): IPv6 routing is off on this node",
                    cfg.ipv6
                );
                return Ok((v4, None));
            }
            (None, _) if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) => {
                tracing::warn!(
                    "waiting for an IPv4 address ({:?}); give one with --ip, or another --ip-autodetection-method",
                    cfg.ipv4
                );
                said = Some(Instant::now());
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Registers the Node: its addresses (explicit, detected, or kept) and AS. A Node this agent
/// cannot read is not overwritten with what it could read: that would drop whatever fields it
/// does not know.
pub(crate) async fn register(client: &Client, cfg: &AgentConfig) -> Result<NodeInfo, AgentError> {
    let existing = client.get_optional::<NodeSpec>(&cfg.node_name).await.map_err(|e| match e {
        ClientError::Protocol { reason, .. } => AgentError::Config(reason),
        e => api(format!("reading Node {}", cfg.node_name))(e),
    })?;
    let mut node = existing.unwrap_or_else(|| Resource {
        api_version: API_VERSION.to_string(),
        kind: Kind::Node.info().kind.to_string(),
        metadata: Metadata { name: cfg.node_name.clone(), ..Metadata::default() },
        spec: NodeSpec::default(),
    });
    let mut bgp = node.spec.bgp.clone().unwrap_or_default();
    let (v4, v6) = detect_addresses(cfg).await?;
    if v4.is_some() {
        bgp.ipv4_address = v4;
    }
    if v6.is_some() {
        bgp.ipv6_address = v6;
    }
    if cfg.asn.is_some() {
        bgp.as_number = cfg.asn;
    }
    if cfg.rr_cluster_id.is_some() {
        bgp.route_reflector_cluster_id = cfg.rr_cluster_id;
    }
    node.spec.bgp = Some(bgp);
    node.metadata.labels.extend(cfg.labels.clone());
    let stored =
        client.put(&node).await.map_err(api(format!("registering Node {}", cfg.node_name)))?;
    Ok(NodeInfo::from_spec(&cfg.node_name, stored.metadata.labels, &stored.spec))
}

/// Reads the token file, waiting for the API server to write it.
pub(crate) async fn read_token(path: &Path) -> String {
    let mut said = false;
    loop {
        match std::fs::read_to_string(path) {
            Ok(t) if !t.trim().is_empty() => return t.trim().to_string(),
            Ok(_) | Err(_) if !said => {
                tracing::warn!(
                    "waiting for the API token at {} (the API server writes it on first start)",
                    path.display()
                );
                said = true;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the API answers, saying so every few seconds.
pub(crate) async fn wait_for_api(client: &Client) {
    let started = Instant::now();
    let mut said = Instant::now() - Duration::from_secs(10);
    loop {
        match client.list::<NodeSpec>(None).await {
            Ok(_) => return,
            Err(e) => {
                if said.elapsed() >= Duration::from_secs(5) {
                    tracing::warn!(
                        "waiting for the API server ({:.0?} so far): {e}",
                        started.elapsed()
                    );
                    said = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Follows the API's change stream from revision `since`; each change calls `kick` (asks for a
/// sync pass). Reconnects from the last revision seen, and from a fresh list when that is too
/// old (410).
pub(crate) async fn watch_loop(client: &Client, mut since: u64, kick: impl Fn()) {
    const KINDS: &str = "Node,BGPConfiguration,BGPPeer,IPPool,BlockAffinity";
    loop {
        match client.watch(since, KINDS).await {
            Ok(mut w) => {
                while let Some(ev) = w.next().await {
                    if let Some(rev) = ev["revision"].as_u64() {
                        since = since.max(rev);
                    }
                    if ev.get("object").is_some() {
                        kick();
                    }
                }
            }
            Err(e) if e.status().map(|s| s.as_u16()) == Some(410) => {
                match client.list::<NodeSpec>(None).await {
                    Ok(nodes) => since = nodes.revision,
                    Err(e) => tracing::debug!("listing after a compacted watch: {e}"),
                }
                kick();
            }
            Err(e) => tracing::debug!("watch: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
