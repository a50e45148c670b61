//! The embedding API: a running speaker and what its owner (the node agent, the standalone
//! daemon, a test) can do with it — add, change and remove peers without touching the others,
//! originate and withdraw prefixes, follow best-path changes, and read every peer's state.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::peer::{self, Peer, PeerCommand, PeerState};
use super::rib_task::{self, RibCommand, RibSummary};
use super::socket;
use crate::config::{PeerAddress, PeerConfig, SpeakerConfig};
use crate::fsm::State;
use crate::rib::{BestChange, Origination, PeerCounters, PeerIdx, Rib, RouteView};
use crate::types::{Family, Prefix};
use crate::wire::Notification;
use crate::wire::notification::cease;

/// Why the speaker refused something.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("a neighbor {0} is already configured")]
    Duplicate(String),
    #[error("no neighbor {0} is configured")]
    UnknownPeer(String),
    #[error(transparent)]
    Md5(#[from] socket::Md5Error),
    #[error(transparent)]
    Bfd(#[from] tartan_bfd::BfdError),
    #[error("the speaker has stopped")]
    Stopped,
}

/// A peer's state, counters and negotiated session, for status displays.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PeerStatus {
    pub address: String,
    pub description: Option<String>,
    /// The AS the peer announced, or the configured one before that.
    pub remote_as: Option<u32>,
    pub state: State,
    pub dynamic: bool,
    /// Seconds in Established.
    pub uptime_secs: Option<u64>,
    pub last_error: Option<String>,
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    pub families: Vec<Family>,
    /// Capabilities both sides announced, by name.
    pub capabilities: Vec<String>,
    pub remote_id: Option<String>,
    pub stale_families: Vec<Family>,
    pub flaps: u64,
    pub counters: PeerCounters,
}

/// Speaker-wide status.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpeakerStatus {
    pub asn: u32,
    pub router_id: String,
    pub uptime_secs: u64,
    pub rib: RibSummary,
    pub peers: Vec<PeerStatus>,
    /// Ranges dynamic neighbors may connect from.
    #[serde(default)]
    pub ranges: Vec<String>,
    /// BFD sessions, with FRR's field names.
    #[serde(default)]
    pub bfd: Vec<tartan_bfd::SessionStatus>,
    /// Why BFD could not run for some neighbour, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_error: Option<String>,
}

struct PeerEntry {
    idx: PeerIdx,
    cfg: PeerConfig,
    commands: mpsc::Sender<PeerCommand>,
    state: Arc<Mutex<PeerState>>,
    task: JoinHandle<()>,
    dynamic: bool,
}

#[derive(Default)]
struct Registry {
    peers: HashMap<IpAddr, PeerEntry>,
    /// Dynamic neighbours: ranges and their settings.
    ranges: Vec<PeerConfig>,
    /// Listening sockets (owned by their accept tasks) and their addresses.
    listeners: Vec<(RawFd, SocketAddr)>,
}

struct Inner {
    cfg: Arc<SpeakerConfig>,
    rib: mpsc::Sender<RibCommand>,
    registry: Mutex<Registry>,
    started: tokio::time::Instant,
    /// Peers start with the graceful restart R bit (we are a restarting speaker).
    restarting: bool,
    /// BFD, started with the first neighbour that asks for it.
    bfd: tokio::sync::Mutex<BfdLink>,
}

#[derive(Default)]
struct BfdLink {
    bfd: Option<tartan_bfd::Bfd>,
    error: Option<String>,
    /// Who hears of paths BFD found dead (the route programmer's fast path).
    failures: Vec<mpsc::UnboundedSender<tartan_bfd::Event>>,
}

/// A running BGP speaker. Cloning gives another handle to the same speaker.
#[derive(Clone)]
pub struct Speaker {
    inner: Arc<Inner>,
    background: Arc<Mutex<Background>>,
}

#[derive(Default)]
struct Background {
    listeners: Vec<JoinHandle<()>>,
    rib_thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker").field("asn", &self.inner.cfg.asn).finish_non_exhaustive()
    }
}

/// Commands queued from sessions to the RIB. An UPDATE batch is what one socket read held
/// (up to a few thousand routes); a session that gets further ahead waits, and so does its peer.
const RIB_QUEUE: usize = 8;

impl Speaker {
    /// Starts the RIB thread and the listeners; no peers yet. Must run inside a tokio runtime.
    pub async fn start(cfg: SpeakerConfig) -> Result<Speaker, SpeakerError> {
        let mut listeners = Vec::new();
        for addr in &cfg.listen {
            let l = match socket::listen(*addr) {
                Ok(l) => l,
                // A kernel without IPv6 cannot listen on [::]: the IPv4 wildcard does the job.
                Err(e)
                    if addr.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                        && matches!(
                            e.raw_os_error(),
                            Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
                        ) =>
                {
                    let v4 =
                        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), addr.port());
                    warn!(%addr, error = %e, "no IPv6 here: listening on {v4} instead");
                    socket::listen(v4)
                        .map_err(|source| SpeakerError::Listen { addr: v4, source })?
                }
                Err(source) => return Err(SpeakerError::Listen { addr: *addr, source }),
            };
            listeners.push(l);
        }
        let (rib_tx, rib_rx) = mpsc::channel(RIB_QUEUE);
        let rib = Rib::new(cfg.rib());
        let rib_thread = std::thread::Builder::new()
            .name("tartan-rib".into())
            .spawn(move || crate::fatal::or_exit("RIB thread", || rib_task::run(rib, rib_rx)))
            .map_err(|e| SpeakerError::Listen {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source: e,
            })?;
        let inner = Arc::new(Inner {
            restarting: cfg.graceful_restart.is_some(),
            cfg: Arc::new(cfg),
            rib: rib_tx,
            registry: Mutex::new(Registry::default()),
            started: tokio::time::Instant::now(),
            bfd: tokio::sync::Mutex::new(BfdLink::default()),
        });
        let mut background = Background { rib_thread: Some(rib_thread), ..Background::default() };
        for l in listeners {
            let addr = l.local_addr().map_err(|source| SpeakerError::Listen {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })?;
            info!(%addr, "listening");
            inner.registry().listeners.push((l.as_raw_fd(), addr));
            let weak = Arc::downgrade(&inner);
            background.listeners.push(tokio::spawn(accept_loop(l, weak)));
        }
        Ok(Speaker { inner, background: Arc::new(Mutex::new(background)) })
    }

    pub fn config(&self) -> &SpeakerConfig {
        &self.inner.cfg
    }

    /// The addresses the speaker listens on (useful with port 0).
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        self.inner.registry().listeners.iter().map(|(_, a)| *a).collect()
    }

    /// Adds a neighbour (or a range of dynamic ones); other sessions are untouched. A dynamic
    /// session at that address gives way to the configured neighbour.
    pub async fn add_peer(&self, cfg: PeerConfig) -> Result<(), SpeakerError> {
        match cfg.address {
            PeerAddress::Range(range) => {
                if self.inner.registry().ranges.iter().any(|r| r.address == cfg.address) {
                    return Err(SpeakerError::Duplicate(range.to_string()));
                }
                self.set_md5(&cfg, false)?;
                self.inner.registry().ranges.push(cfg);
                Ok(())
            }
            PeerAddress::Single(addr) => {
                let dynamic = {
                    let mut reg = self.inner.registry();
                    match reg.peers.get(&addr) {
                        Some(e) if !e.dynamic => {
                            return Err(SpeakerError::Duplicate(addr.to_string()));
                        }
                        Some(_) => reg.peers.remove(&addr),
                        None => None,
                    }
                };
                if let Some(entry) = dynamic {
                    self.stop_and_remove(entry, cease::OTHER_CONFIG_CHANGE).await?;
                }
                self.set_md5(&cfg, false)?;
                let cfg_bfd = cfg.bfd.map(|i| (i, cfg.local_address));
                let entry = self.inner.spawn_peer(addr, cfg, false).await?;
                {
                    let mut reg = self.inner.registry();
                    if reg.peers.contains_key(&addr) {
                        entry.task.abort();
                        return Err(SpeakerError::Duplicate(addr.to_string()));
                    }
                    reg.peers.insert(addr, entry);
                }
                self.inner.sync_bfd(addr, cfg_bfd).await;
                Ok(())
            }
        }
    }

    /// Changes a neighbour: policy and next-hop changes apply without a reset (an import
    /// policy change asks the peer for its routes again); anything the OPEN carries resets
    /// that session only. A changed range applies to the sessions already up from it.
    pub async fn update_peer(&self, cfg: PeerConfig) -> Result<(), SpeakerError> {
        let addr = match cfg.address {
            PeerAddress::Single(a) => a,
            PeerAddress::Range(_) => {
                let old = {
                    let mut reg = self.inner.registry();
                    let Some(r) = reg.ranges.iter_mut().find(|r| r.address == cfg.address) else {
                        return Err(SpeakerError::UnknownPeer(cfg.address.to_string()));
                    };
                    std::mem::replace(r, cfg.clone())
                };
                if old.password != cfg.password {
                    self.set_md5(&old, true)?;
                    self.set_md5(&cfg, false)?;
                }
                let members: Vec<IpAddr> = {
                    let reg = self.inner.registry();
                    let matching = |(a, e): (&IpAddr, &PeerEntry)| {
                        (e.dynamic && cfg.address.matches(*a)).then_some(*a)
                    };
                    reg.peers.iter().filter_map(matching).collect()
                };
                for a in members {
                    self.update_session(a, cfg.clone()).await?;
                }
                return Ok(());
            }
        };
        self.update_session(addr, cfg).await
    }

    /// Applies a new configuration to the session with the peer at `addr`.
    async fn update_session(&self, addr: IpAddr, cfg: PeerConfig) -> Result<(), SpeakerError> {
        let (idx, commands, old, dynamic) = {
            let reg = self.inner.registry();
            let e =
                reg.peers.get(&addr).ok_or_else(|| SpeakerError::UnknownPeer(addr.to_string()))?;
            (e.idx, e.commands.clone(), e.cfg.clone(), e.dynamic)
        };
        // A dynamic session is signed with its range's key, set with the range.
        if !dynamic && old.password != cfg.password {
            self.set_md5(&old, true)?;
            self.set_md5(&cfg, false)?;
        }
        let (tx, rx) = oneshot::channel();
        self.inner.send(RibCommand::SetPeer(idx, cfg.rib(&self.inner.cfg, addr), tx)).await?;
        let refresh = rx.await.map_err(|_| SpeakerError::Stopped)?;
        let reset = old.needs_reset(&cfg);
        let bfd = cfg.bfd.map(|i| (i, cfg.local_address));
        if let Some(e) = self.inner.registry().peers.get_mut(&addr) {
            e.cfg = cfg.clone();
        }
        commands
            .send(PeerCommand::Reconfigure(Box::new(cfg)))
            .await
            .map_err(|_| SpeakerError::Stopped)?;
        if refresh && !reset {
            commands.send(PeerCommand::RequestRefresh).await.map_err(|_| SpeakerError::Stopped)?;
        }
        if !dynamic {
            self.inner.sync_bfd(addr, bfd).await;
        }
        Ok(())
    }

    /// Removes a neighbour: its session ends with Cease "Peer De-configured" and its routes go.
    /// Removing a range ends the sessions that came from it.
    pub async fn remove_peer(&self, address: PeerAddress) -> Result<(), SpeakerError> {
        match address {
            PeerAddress::Range(_) => {
                let removed = {
                    let mut reg = self.inner.registry();
                    let i = reg.ranges.iter().position(|r| r.address == address);
                    i.map(|i| reg.ranges.remove(i))
                };
                let Some(range) = removed else {
                    return Err(SpeakerError::UnknownPeer(address.to_string()));
                };
                self.set_md5(&range, true)?;
                let members: Vec<PeerEntry> = {
                    let mut reg = self.inner.registry();
                    let addrs: Vec<IpAddr> = reg
                        .peers
                        .iter()
                        .filter(|(a, e)| e.dynamic && address.matches(**a))
                        .map(|(a, _)| *a)
                        .collect();
                    addrs.iter().filter_map(|a| reg.peers.remove(a)).collect()
                };
                for e in members {
                    self.stop_and_remove(e, cease::PEER_DECONFIGURED).await?;
                }
                Ok(())
            }
            PeerAddress::Single(a) => {
                let entry = self.inner.registry().peers.remove(&a);
                let Some(entry) = entry else {
                    return Err(SpeakerError::UnknownPeer(address.to_string()));
                };
                let cfg = entry.cfg.clone();
                let dynamic = entry.dynamic;
                self.stop_and_remove(entry, cease::PEER_DECONFIGURED).await?;
                self.inner.sync_bfd(a, None).await;
                if !dynamic {
                    self.set_md5(&cfg, true)?;
                }
                Ok(())
            }
        }
    }

    /// Ends a session with a Cease of `subcode`, stops its task and forgets its routes.
    async fn stop_and_remove(&self, entry: PeerEntry, subcode: u8) -> Result<(), SpeakerError> {
        let n = Notification::cease(subcode);
        let _ = entry.commands.send(PeerCommand::Stop { notification: n, restart: None }).await;
        let (tx, rx) = oneshot::channel();
        let _ = entry.commands.send(PeerCommand::Shutdown { graceful: false, done: tx }).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        entry.task.abort();
        self.inner.send(RibCommand::RemovePeer(entry.idx)).await
    }

    /// Originates `prefix` with these attributes (replacing an earlier origination of it).
    pub async fn originate(&self, prefix: Prefix, o: Origination) -> Result<(), SpeakerError> {
        self.inner.send(RibCommand::Originate(prefix, o)).await
    }

    /// Stops originating `prefix`.
    pub async fn withdraw(&self, prefix: Prefix) -> Result<(), SpeakerError> {
        self.inner.send(RibCommand::Withdraw(prefix)).await
    }

    /// A stream of best-path changes: first every current route, then each change.
    pub async fn subscribe(
        &self,
    ) -> Result<mpsc::UnboundedReceiver<Vec<BestChange>>, SpeakerError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.send(RibCommand::Subscribe(tx)).await?;
        Ok(rx)
    }

    /// The routes of a family (within `within`, if given), best path first.
    pub async fn routes(
        &self,
        family: Family,
        within: Option<Prefix>,
    ) -> Result<Vec<RouteView>, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.inner.send(RibCommand::Routes(family, within, tx)).await?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Each path BFD finds dead from now on, before its session goes down: the owner may
    /// take the peer's next hop out of the kernel ahead of the withdrawals.
    pub async fn bfd_failures(&self) -> mpsc::UnboundedReceiver<tartan_bfd::Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.bfd.lock().await.failures.push(tx);
        rx
    }

    /// Every peer's state and counters.
    pub async fn status(&self) -> Result<SpeakerStatus, SpeakerError> {
        let ranges: Vec<String> =
            self.inner.registry().ranges.iter().map(|r| r.address.to_string()).collect();
        let peers: Vec<(IpAddr, PeerIdx, PeerConfig, PeerState, bool)> = {
            let reg = self.inner.registry();
            reg.peers
                .iter()
                .map(|(a, e)| {
                    let s =
                        e.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                    (*a, e.idx, e.cfg.clone(), s, e.dynamic)
                })
                .collect()
        };
        let (tx, rx) = oneshot::channel();
        self.inner.send(RibCommand::Counters(peers.iter().map(|p| p.1).collect(), tx)).await?;
        let counters = rx.await.map_err(|_| SpeakerError::Stopped)?;
        let (tx, rx) = oneshot::channel();
        self.inner.send(RibCommand::Summary(tx)).await?;
        let rib = rx.await.map_err(|_| SpeakerError::Stopped)?;
        let mut out: Vec<PeerStatus> = peers
            .into_iter()
            .zip(counters)
            .map(|((addr, _, cfg, s, dynamic), c)| {
                peer_status(addr, &cfg, &s, dynamic, c.unwrap_or_default())
            })
            .collect();
        out.sort_by(|a, b| a.address.cmp(&b.address));
        let (bfd, bfd_error) = {
            let link = self.inner.bfd.lock().await;
            let sessions = match &link.bfd {
                Some(b) => b.sessions().await?,
                None => Vec::new(),
            };
            (sessions, link.error.clone())
        };
        Ok(SpeakerStatus {
            asn: self.inner.cfg.asn.0,
            router_id: self.inner.cfg.router_id.to_string(),
            uptime_secs: self.inner.started.elapsed().as_secs(),
            rib,
            peers: out,
            ranges,
            bfd,
            bfd_error,
        })
    }

    /// Stops every session and the RIB. With `graceful` (and graceful restart configured),
    /// connections close without NOTIFICATION so that peers keep forwarding on our routes
    /// until we are back; otherwise peers get an Administrative Shutdown.
    pub async fn shutdown(&self, graceful: bool) {
        let entries: Vec<PeerEntry> = self.inner.registry().peers.drain().map(|(_, e)| e).collect();
        let mut waits = Vec::new();
        for e in &entries {
            let (tx, rx) = oneshot::channel();
            if e.commands.send(PeerCommand::Shutdown { graceful, done: tx }).await.is_ok() {
                waits.push(rx);
            }
        }
        for w in waits {
            let _ = tokio::time::timeout(Duration::from_secs(2), w).await;
        }
        // Let the writers put the last NOTIFICATIONs on the wire.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for e in entries {
            e.task.abort();
        }
        let thread = {
            let mut bg = self.background.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for l in bg.listeners.drain(..) {
                l.abort();
            }
            bg.rib_thread.take()
        };
        let _ = self.inner.rib.send(RibCommand::Stop).await;
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    /// Sets (or removes) a neighbour's TCP-MD5 key on every listening socket.
    fn set_md5(&self, cfg: &PeerConfig, remove: bool) -> Result<(), SpeakerError> {
        let Some(password) = &cfg.password else { return Ok(()) };
        let key = if remove { &[][..] } else { password.as_bytes() };
        let (addr, len) = match cfg.address {
            PeerAddress::Single(a) => (a, None),
            PeerAddress::Range(Prefix::V4(p)) => (IpAddr::V4(p.addr()), Some(p.prefix_len())),
            PeerAddress::Range(Prefix::V6(p)) => (IpAddr::V6(p.addr()), Some(p.prefix_len())),
        };
        let reg = self.inner.registry();
        for &(fd, listening) in &reg.listeners {
            let v6 = listening.is_ipv6();
            if !v6 && addr.is_ipv6() {
                continue;
            }
            socket::set_md5(fd, v6, addr, len, key)?;
        }
        Ok(())
    }
}

impl Inner {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn send(&self, c: RibCommand) -> Result<(), SpeakerError> {
        self.rib.send(c).await.map_err(|_| SpeakerError::Stopped)
    }

    /// Makes BFD with the neighbour at `addr` match `want` (its timers and our source
    /// address), starting BFD on first use. BFD's own failures (UDP 3784 taken by another
    /// daemon) leave the BGP session running without it and show in the status.
    async fn sync_bfd(
        self: &Arc<Self>,
        addr: IpAddr,
        want: Option<(tartan_bfd::Intervals, Option<IpAddr>)>,
    ) {
        let mut link = self.bfd.lock().await;
        let res = match (want, &link.bfd) {
            (None, None) => Ok(()),
            (None, Some(b)) => b.remove(addr),
            (Some((intervals, local)), _) => match self.bfd_handle(&mut link) {
                Ok(b) => b.add(addr, local, intervals).await,
                Err(e) => Err(e),
            },
        };
        match res {
            // This neighbour's earlier failure is over.
            Ok(()) if link.error.as_ref().is_some_and(|e| e.starts_with(&format!("{addr}: "))) => {
                link.error = None;
            }
            Ok(()) => {}
            Err(e) => {
                warn!(peer = %addr, "BFD: {e}");
                link.error = Some(format!("{addr}: {e}"));
            }
        }
    }

    fn bfd_handle(
        self: &Arc<Self>,
        link: &mut BfdLink,
    ) -> Result<tartan_bfd::Bfd, tartan_bfd::BfdError> {
        if let Some(b) = &link.bfd {
            return Ok(b.clone());
        }
        let b = tartan_bfd::Bfd::start()?;
        let mut events = b.subscribe()?;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if !ev.transition.path_failed() {
                    continue;
                }
                let Some(inner) = weak.upgrade() else { return };
                // The kernel first: the session's own teardown and withdrawals follow.
                inner.bfd.lock().await.failures.retain(|f| f.send(ev).is_ok());
                let commands = inner.registry().peers.get(&ev.peer).map(|e| e.commands.clone());
                if let Some(c) = commands {
                    let _ = c.send(PeerCommand::BfdDown).await;
                }
            }
        });
        link.bfd = Some(b.clone());
        link.error = None;
        Ok(b)
    }

    /// Registers the peer with the RIB and starts its task.
    async fn spawn_peer(
        &self,
        addr: IpAddr,
        cfg: PeerConfig,
        dynamic: bool,
    ) -> Result<PeerEntry, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(RibCommand::AddPeer(cfg.rib(&self.cfg, addr), tx)).await?;
        let idx = rx.await.map_err(|_| SpeakerError::Stopped)?;
        let (commands, commands_rx) = mpsc::channel(16);
        let state = Arc::new(Mutex::new(PeerState::default()));
        let peer = Peer {
            idx,
            address: addr,
            cfg: cfg.clone(),
            speaker: self.cfg.clone(),
            shared: state.clone(),
            self_tx: commands.clone(),
            dynamic,
            restarting: self.restarting,
        };
        let task = tokio::spawn(peer::run(peer, commands_rx, self.rib.clone()));
        Ok(PeerEntry { idx, cfg, commands, state, task, dynamic })
    }
}

/// Accepts connections and hands each to its peer, starting a dynamic peer for an address in
/// a configured range.
async fn accept_loop(l: TcpListener, inner: std::sync::Weak<Inner>) {
    loop {
        let (stream, from) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        let addr = socket::canonical(from.ip());
        let known = {
            let mut reg = inner.registry();
            // A dynamic peer whose task ended is gone.
            if reg.peers.get(&addr).is_some_and(|e| e.dynamic && e.commands.is_closed()) {
                reg.peers.remove(&addr);
            }
            reg.peers.get(&addr).map(|e| e.commands.clone())
        };
        let commands = match known {
            Some(c) => c,
            None => {
                let range =
                    inner.registry().ranges.iter().find(|r| r.address.matches(addr)).cloned();
                let Some(cfg) = range else {
                    info!(%addr, "connection from an address that is not a neighbor: closed");
                    continue;
                };
                match inner.spawn_peer(addr, cfg, true).await {
                    Ok(entry) => {
                        info!(%addr, "dynamic neighbor");
                        let c = entry.commands.clone();
                        inner.registry().peers.insert(addr, entry);
                        c
                    }
                    Err(e) => {
                        warn!(%addr, error = %e, "dynamic neighbor not started");
                        continue;
                    }
                }
            }
        };
        let _ = commands.send(PeerCommand::Inbound(stream)).await;
    }
}

fn peer_status(
    addr: IpAddr,
    cfg: &PeerConfig,
    s: &PeerState,
    dynamic: bool,
    counters: PeerCounters,
) -> PeerStatus {
    let n = s.negotiated.as_deref();
    let mut capabilities = Vec::new();
    if let Some(n) = n {
        let flags = [
            (n.codec.four_octet_as, "four-octet-as"),
            (n.route_refresh, "route-refresh"),
            (n.enhanced_route_refresh, "enhanced-route-refresh"),
            (n.peer_gr.is_some(), "graceful-restart"),
            (!n.codec.add_path_rx.is_empty(), "add-path-receive"),
            (n.codec.extended_message, "extended-message"),
            (n.extended_next_hop, "extended-next-hop"),
        ];
        capabilities =
            flags.iter().filter(|(on, _)| *on).map(|(_, name)| name.to_string()).collect();
    }
    PeerStatus {
        address: addr.to_string(),
        description: cfg.description.clone(),
        remote_as: n.map(|n| n.remote_as.0).or(cfg.remote_as.map(|a| a.0)),
        state: s.state,
        dynamic,
        uptime_secs: s.established_at.map(|t| t.elapsed().as_secs()),
        last_error: s.last_error.clone(),
        hold_time: n.map(|n| n.hold_time),
        keepalive: n.map(|n| n.keepalive),
        families: n.map(|n| n.families.iter().collect()).unwrap_or_default(),
        capabilities,
        remote_id: n.map(|n| n.remote_id.to_string()),
        stale_families: s.stale.iter().collect(),
        flaps: s.flaps,
        counters,
    }
}
