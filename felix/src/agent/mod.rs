//! `tartan node`: the agent on every host. It registers the Node, runs the BGP speaker with the
//! sessions the datastore implies, advertises this host's blocks (and the addresses it borrowed),
//! installs the routes it learns, serves the CNI plugin, and reports its sessions.
//!
//! The loop: a watch on the API marks the datastore view dirty; a sync pass re-reads the
//! Nodes, BGP configuration, peers, pools and this host's block affinities, diffs the sessions
//! and advertisements against the speaker's, and sets the blackholes. Learned routes arrive
//! from the speaker's best-path feed. The route programmer writes nothing before the first
//! sync has succeeded, and resyncs with the kernel periodically.

pub mod autodetect;
mod cni_server;
mod config;
mod datastore;
pub mod endpoints;
mod error;
pub mod labels;
pub mod metrics;
pub mod nat;
pub mod peerings;
mod speaker;
mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tartan_ipam::client::{Client, Method};
use tokio::sync::{Mutex, Notify};

pub use config::{AddressSource, AgentConfig, LogLevelHook};
pub(crate) use datastore::Snapshot;
use datastore::{read_token, register, snapshot, wait_for_api};
pub use error::AgentError;
use error::{api, io};

use crate::routes::Programmer;
use crate::routes::netlink::NetlinkKernel;
use endpoints::Endpoints;

/// What the agent's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: AgentConfig,
    pub client: Client,
    pub host: rtnetlink::Handle,
    pub mtu: u32,
    pub state: Mutex<State>,
    pub metrics: metrics::Metrics,
    /// One lock per CNI attachment (network, container, interface).
    attachments: std::sync::Mutex<std::collections::HashMap<String, Arc<Mutex<()>>>>,
    dirty: Notify,
}

impl Shared {
    /// Asks the sync loop for a pass.
    pub fn kick(&self) {
        self.dirty.notify_one();
    }

    /// The lock that serialises CNI requests for one attachment. Unused locks are dropped as
    /// new ones are made, so the map stays as large as the requests in flight.
    pub fn attachment_lock(&self, key: &str) -> Arc<Mutex<()>> {
        let mut map = match self.attachments.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(key.to_string()).or_default().clone()
    }

    /// Makes the kernel match the desired routes, timed for the metrics.
    pub async fn reconcile(
        &self,
        state: &mut State,
    ) -> Result<crate::routes::ApplyReport, crate::routes::KernelError> {
        let started = Instant::now();
        let report = state.programmer.apply(started).await;
        if let Ok(mut h) = self.metrics.reconcile.lock() {
            h.observe(started.elapsed());
        }
        if let Ok(r) = &report {
            state.kernel_routes = r.kernel_routes;
            let failing: BTreeMap<IpNet, String> = r.failed.iter().cloned().collect();
            for (dst, why) in &failing {
                if state.failing.get(dst) != Some(why) {
                    tracing::warn!("route {dst}: {why}");
                }
            }
            for dst in state.failing.keys().filter(|d| !failing.contains_key(d)) {
                tracing::info!("route {dst}: no longer failing");
            }
            state.failing = failing;
        }
        report
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub programmer: Programmer<NetlinkKernel>,
    pub endpoints: Endpoints,
    /// Our routes in the kernel at the last reconcile.
    pub kernel_routes: usize,
    /// Routes the last reconcile could not write, with why. Each is logged when it starts
    /// failing (or fails differently) and when it stops, not at every pass: a learned route
    /// over a connected subnet fails with EEXIST for as long as it is learned.
    pub failing: BTreeMap<IpNet, String>,
}

/// The prefixes this host advertises: its blocks and the addresses of its workloads outside
/// them (borrowed), except in pools with `disableBGPExport`; and the BGPConfiguration's
/// service ranges, which every host advertises.
pub(crate) fn advertisements(snap: &Snapshot, workloads: &[IpNet]) -> BTreeSet<IpNet> {
    let exported =
        |net: &IpNet| snap.pools.iter().any(|p| p.cidr.contains(net) && !p.disable_bgp_export);
    let mut out: BTreeSet<IpNet> = snap.blocks.iter().filter(|b| exported(b)).copied().collect();
    for w in workloads {
        if !snap.blocks.iter().any(|b| b.contains(w)) && exported(w) {
            out.insert(*w);
        }
    }
    // Calico's service ranges: every node advertises them.
    out.extend(snap.config.service_ranges().map(|n| n.trunc()));
    out
}

/// The MTU of the interface holding `addr`.
async fn mtu_of(handle: &rtnetlink::Handle, addr: Option<IpAddr>) -> Option<u32> {
    use futures::TryStreamExt;
    let addr = addr?;
    let cands = autodetect::candidates(handle).await.ok()?;
    let iface = cands.into_iter().find(|c| c.net.addr() == addr)?.interface;
    let mut links = handle.link().get().match_name(iface).execute();
    let link = links.try_next().await.ok()??;
    link.attributes.iter().find_map(|a| match a {
        rtnetlink::packet_route::link::LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// Installs `10-<network>.conflist` pointing the plugin at our socket.
fn install_cni_config(cfg: &AgentConfig, dir: &std::path::Path) -> Result<(), AgentError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": cfg.network_name,
        "plugins": [{"type": "tartan", "agentSocket": cfg.socket, "mtu": cfg.mtu}],
    });
    let path = dir.join(format!("10-{}.conflist", cfg.network_name));
    let tmp = dir.join(format!(".10-{}.conflist.tmp", cfg.network_name));
    let text = serde_json::to_string_pretty(&conf).unwrap_or_default();
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io(format!("writing {}", path.display())))
}

/// Links `<dir>/tartan` to the running executable (as Calico's installer copies its plugin),
/// unless a `tartan` is already there.
fn install_cni_plugin(dir: &std::path::Path) -> Result<(), AgentError> {
    let target = dir.join("tartan");
    if target.exists() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(io("finding this executable"))?;
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let _ = std::fs::remove_file(&target);
    std::os::unix::fs::symlink(&exe, &target).map_err(io(format!("linking {}", target.display())))
}

/// Runs the agent until SIGTERM or SIGINT. Kernel routes stay in place when it stops.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(io("installing signal handlers"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io("installing signal handlers"))?;

    // One agent per host: a second one would take the socket and fight over the routes.
    let _lock = lock_state_dir(&cfg.state_dir)?;
    // The CNI socket opens first: requests wait for the agent rather than fail to connect.
    let listener =
        cni_server::bind(&cfg.socket).map_err(io(format!("binding {}", cfg.socket.display())))?;
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(None);
    let mut tasks = tokio::task::JoinSet::new();
    {
        let socket = cfg.socket.clone();
        tasks.spawn(async move {
            if let Err(e) = cni_server::serve(listener, ready_rx).await {
                tracing::error!("CNI socket {}: {e}", socket.display());
            }
        });
    }
    tracing::info!("CNI requests on {}", cfg.socket.display());
    // The plugin and its configuration go in at once too (like Calico's installer): a runtime
    // that finds them reaches the socket, which answers when the agent is ready.
    if let Some(dir) = &cfg.cni_bin_dir {
        install_cni_plugin(dir)?;
    }
    if let Some(dir) = &cfg.cni_conf_dir {
        install_cni_config(&cfg, dir)?;
    }

    // Start-up waits for the token, the API and an address: a signal must still stop it.
    let started = tokio::select! {
        r = start(&cfg) => Some(r?),
        _ = term.recv() => None,
        _ = int.recv() => None,
    };
    let Some((shared, bgp, revision, first_ok)) = started else {
        tracing::info!("stopped while starting");
        tasks.abort_all();
        let _ = std::fs::remove_file(&cfg.socket);
        return Ok(());
    };
    let _ = ready_tx.send(Some(shared.clone()));
    tasks.spawn({
        let shared = shared.clone();
        async move { datastore::watch_loop(&shared.client, revision, || shared.kick()).await }
    });
    tasks.spawn(bgp.clone().feed_loop(shared.clone()));
    tasks.spawn(bgp.clone().bfd_loop(shared.clone()));
    tasks.spawn(status::report_loop(shared.clone(), bgp.clone()));
    let sync = tokio::spawn(bgp.clone().sync_loop(shared.clone(), first_ok));
    if let Some(addr) = cfg.metrics_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!("metrics on http://{addr}/metrics");
                let (shared, bgp) = (shared.clone(), bgp.clone());
                tasks.spawn(async move {
                    let render = move || {
                        let (shared, bgp) = (shared.clone(), bgp.clone());
                        async move { metrics_text(&shared, &bgp).await }
                    };
                    if let Err(e) = metrics::serve(listener, render).await {
                        tracing::warn!("metrics: {e}");
                    }
                });
            }
            Err(e) => tracing::warn!("cannot serve metrics on {addr}: {e}"),
        }
    }

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping (routes stay in place)"),
        _ = int.recv() => tracing::info!("SIGINT: stopping (routes stay in place)"),
    }
    sync.abort();
    tasks.abort_all();
    bgp.shutdown().await;
    let _ = std::fs::remove_file(&cfg.socket);
    Ok(())
}

async fn metrics_text(shared: &Shared, bgp: &speaker::Bgp) -> String {
    let sessions = bgp
        .peers()
        .await
        .into_iter()
        .map(|r| {
            let (p, s) = (&r.peering, &r.bgp);
            metrics::SessionSample {
                peer: p.peer.to_string(),
                kind: p.kind.name().to_string(),
                state: s.as_ref().map(|s| s.state.name()).unwrap_or("Idle").to_string(),
                received: s.as_ref().map(|s| s.counters.accepted.iter().sum()).unwrap_or(0),
                advertised: s.as_ref().map(|s| s.counters.advertised.iter().sum()).unwrap_or(0),
                bfd: r.bfd,
            }
        })
        .collect();
    let mut snap = metrics::Snapshot { sessions, ..Default::default() };
    {
        let state = shared.state.lock().await;
        for target in state.programmer.desired().values() {
            let kind = match target {
                crate::routes::Target::Link(_) => "workload",
                crate::routes::Target::Blackhole => "blackhole",
                crate::routes::Target::Via(_) => "learned",
            };
            *snap.routes.entry(kind).or_default() += 1;
        }
        snap.kernel_routes = state.kernel_routes;
        snap.endpoints = state.endpoints.len();
    }
    shared.metrics.render(&snap)
}

/// Endpoints whose veth is gone while the agent was down (a reboot takes every container
/// with it): their addresses go back and their records go, so nothing keeps advertising or
/// holding them. One whose cleanup fails stays for the next start.
async fn prune_endpoints(
    client: &Client,
    cfg: &AgentConfig,
    host: &rtnetlink::Handle,
    endpoints: &mut Endpoints,
) {
    let mut stale = Vec::new();
    for ep in endpoints.all() {
        if let Ok(None) = crate::cni::veth::index_of(host, &ep.host_if).await {
            stale.push(ep.clone());
        }
    }
    for ep in stale {
        let release = serde_json::json!({"handle": ep.handle});
        let released =
            client.post_idempotent::<serde_json::Value>("/v1/ipam/release", &release).await;
        let wep = format!("/v1/workloadendpoints/{}.{}", cfg.node_name, ep.host_if);
        let removed =
            match client.call::<serde_json::Value>(Method::DELETE, &wep, None::<&()>).await {
                Err(e) if e.status().map(|s| s.as_u16()) != Some(404) => Err(e),
                _ => Ok(()),
            };
        match (released, removed) {
            (Ok(_), Ok(())) => {
                tracing::info!(
                    "{} ({}) is gone: its addresses are released",
                    ep.container_id,
                    ep.host_if
                );
                if let Err(e) = endpoints.remove(&ep.own_key()) {
                    tracing::warn!("removing the record of {}: {e}", ep.container_id);
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(
                    "{} ({}) is gone but could not be cleaned up: {e}",
                    ep.container_id,
                    ep.host_if
                )
            }
        }
    }
}

/// Holds an exclusive lock on `<state-dir>/agent.lock` for the agent's life.
fn lock_state_dir(dir: &std::path::Path) -> Result<nix::fcntl::Flock<std::fs::File>, AgentError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let path = dir.join("agent.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        AgentError::Config(format!(
            "another `tartan node` holds {} ({e}): one agent per host; stop it first, or give this one its own --state-dir and --socket",
            path.display()
        ))
    })
}

/// Everything before the agent serves: the API, registration, local state, the speaker and a
/// first sync pass (before which nothing touches the kernel).
async fn start(cfg: &AgentConfig) -> Result<(Arc<Shared>, speaker::Bgp, u64, bool), AgentError> {
    let token = match (&cfg.token, &cfg.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(read_token(f).await),
        (None, None) => None,
    };
    let client =
        Client::with_ca(&cfg.api, token, cfg.ca_file.as_deref()).map_err(api("the API address"))?;
    wait_for_api(&client).await;
    let me = register(&client, cfg).await?;
    tracing::info!(node = %me.name, ipv4 = ?me.ipv4, ipv6 = ?me.ipv6, "registered");

    for (key, value) in [("ipv4/ip_forward", "1"), ("ipv6/conf/all/forwarding", "1")] {
        if let Err(e) = crate::netns::sysctl(key, value) {
            tracing::warn!("{e}");
        }
    }
    let host = crate::netns::netlink().map_err(io("opening netlink"))?;
    let mtu = if cfg.mtu > 0 {
        cfg.mtu
    } else {
        mtu_of(&host, me.ipv4.or(me.ipv6)).await.unwrap_or(1500)
    };
    let mut endpoints = Endpoints::open(&cfg.state_dir.join("endpoints"))
        .map_err(io(format!("opening {}", cfg.state_dir.display())))?;
    prune_endpoints(&client, cfg, &host, &mut endpoints).await;
    let mut kernel = NetlinkKernel::new(None, cfg.route_protocol)
        .map_err(io("opening a netlink socket for routes"))?;
    if !cfg.nexthop_objects {
        kernel = kernel.without_nexthop_objects();
    }
    let mut programmer = Programmer::new(kernel, Duration::from_secs(10));
    for ep in endpoints.all() {
        for ip in &ep.ips {
            programmer.set_workload(*ip, &ep.host_if);
        }
    }
    tracing::info!(endpoints = endpoints.len(), mtu, "restored local endpoints");
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        client,
        host,
        mtu,
        state: Mutex::new(State {
            programmer,
            endpoints,
            kernel_routes: 0,
            failing: BTreeMap::new(),
        }),
        metrics: metrics::Metrics::default(),
        attachments: Default::default(),
        dirty: Notify::new(),
    });

    let snap = snapshot(&shared.client, &cfg.node_name).await?;
    let bgp = speaker::Bgp::start(&shared, &snap).await?;
    let first_ok = bgp.apply(&shared, &snap).await;
    Ok((shared, bgp, snap.revision, first_ok))
}

#[cfg(test)]
pub(crate) mod tests {
    use tartan_ipam::resources::IpPoolSpec;

    use super::*;

    /// A pool spec, exported to BGP or not.
    pub(crate) fn pool(cidr: &str, export: bool) -> IpPoolSpec {
        serde_json::from_value(serde_json::json!({"cidr": cidr, "disableBGPExport": !export}))
            .expect("pool spec")
    }

    #[test]
    fn a_host_advertises_its_blocks_and_borrowed_addresses_and_nothing_unexported() {
        let snap = Snapshot {
            pools: vec![pool("10.65.0.0/16", true), pool("10.70.0.0/16", false)],
            blocks: ["10.65.0.0/26", "10.70.0.0/26"]
                .iter()
                .map(|b| b.parse().expect("net"))
                .collect(),
            ..Default::default()
        };
        let workloads: Vec<IpNet> =
            ["10.65.0.5/32", "10.65.1.7/32", "10.70.9.9/32", "192.0.2.1/32"]
                .iter()
                .map(|w| w.parse().expect("net"))
                .collect();
        let got: Vec<String> =
            advertisements(&snap, &workloads).iter().map(ToString::to_string).collect();
        // Its own exported block, and the address borrowed from another host's block; not the
        // /32 inside its block, nothing of the unexported pool, nothing outside the pools.
        assert_eq!(got, vec!["10.65.0.0/26", "10.65.1.7/32"]);

        // Calico's service ranges: every host advertises them whole.
        let mut snap = snap;
        snap.config.service_cluster_ips = vec![tartan_ipam::resources::ServiceCidr {
            cidr: "10.96.0.0/12".parse().expect("net"),
        }];
        let got: Vec<String> =
            advertisements(&snap, &workloads).iter().map(ToString::to_string).collect();
        assert!(got.contains(&"10.96.0.0/12".to_string()), "{got:?}");
    }

    #[test]
    fn calico_log_severities_become_levels() {
        use tracing::level_filters::LevelFilter;
        assert_eq!(config::calico_level("Warning"), Some(LevelFilter::WARN));
        assert_eq!(config::calico_level("fatal"), Some(LevelFilter::ERROR));
        assert_eq!(config::calico_level("Info"), Some(LevelFilter::INFO));
        assert_eq!(config::calico_level("loud"), None);
    }
}
