//! Block IPAM: pools cut into blocks, blocks claimed by hosts, addresses allocated from them
//! under handles. Calico's semantics; the invariants and why each exists are in
//! `ipam/DESIGN.md`.
//!
//! [`Ipam`] owns an in-memory view of every block, affinity and handle, loaded from the store
//! at open. A change is always: copy a block from the view, change the copy ([`block`]), write
//! it with compare-and-swap, and only after the write succeeded install it in the view. A
//! conflict re-reads the block and retries. Handles are derived from the blocks (each
//! allocation names its handle), so the handle index can never disagree with them.
//!
//! On etcd other API servers write too: the view then changes only from the store's watch,
//! in revision order ([`Store::take_changes`], applied whenever the view is taken), a write
//! of ours waits until the watch brought it back, and each request starts with a barrier
//! that makes every write acknowledged anywhere before it visible.

pub mod allocate;
pub mod block;
pub mod check;
pub mod gc;
pub mod release;
pub mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::resources::{IpPoolSpec, IpamConfigSpec, Kind, RawResource, Selector};
use crate::store::{Change, EventType, Lost, Store, StoreError, Versioned};
use crate::time;
use block::Block;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// How often a compare-and-swap is retried before giving up (Calico's `datastoreRetries`).
const CAS_RETRIES: usize = 100;

/// The largest a stored block may grow. etcd refuses requests over 1.5 MiB and keeps every
/// superseded version until compaction, so a block is kept well under that on any backend
/// (a /20 of bare allocations is about 350 KB; attributes are what could pass this).
pub const MAX_BLOCK_BYTES: usize = 1 << 20;

/// Errors of the IPAM layer.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("{0}")]
    Invalid(String),
    /// No enabled pool of the family selects the node.
    #[error("{0}")]
    NoPool(String),
    /// The pools (or the node's block cap) have no address left.
    #[error("{0}")]
    Exhausted(String),
    #[error("{ip} is already allocated to handle {handle:?}")]
    AddressInUse { ip: IpAddr, handle: String },
    #[error("{0}")]
    Refused(String),
    #[error("too many concurrent changes to block {0}; retry")]
    Contended(IpNet),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = IpamError> = std::result::Result<T, E>;

/// A host's claim on a block: pending → confirmed → pending deletion → gone. Only a confirmed
/// affinity makes a block the host's (for allocation and for routing).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    pub node: String,
    pub cidr: IpNet,
    pub state: AffinityState,
    pub updated_at: u64,
}

/// A block affinity is served as the BlockAffinity kind (read-only: the IPAM writes it).
impl crate::resources::Spec for Affinity {
    const KIND: Kind = Kind::BlockAffinity;
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AffinityState {
    Pending,
    Confirmed,
    PendingDeletion,
}

#[derive(Clone, Debug)]
pub(crate) struct Cached {
    pub block: Arc<Block>,
    pub raw: Versioned,
}

#[derive(Debug, Default)]
pub(crate) struct View {
    pub blocks: BTreeMap<IpNet, Cached>,
    pub handles: HashMap<String, BTreeSet<IpAddr>>,
    pub affinities: BTreeMap<(String, IpNet), Affinity>,
}

impl View {
    /// The affinities of one node (the map is ordered by node first).
    pub fn node_affinities<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Affinity> + 'a {
        let first = IpNet::V4(ipnet::Ipv4Net::default());
        self.affinities
            .range((node.to_string(), first)..)
            .take_while(move |((n, _), _)| n == node)
            .map(|(_, a)| a)
    }
}

/// A pool as the IPAM uses it.
#[derive(Clone, Debug)]
pub struct Pool {
    pub name: String,
    pub spec: IpPoolSpec,
    pub selector: Selector,
}

/// The IPAM over an open store.
#[derive(Debug)]
pub struct Ipam {
    pub(crate) store: Arc<Store>,
    pub(crate) view: Mutex<View>,
    /// Single-flights the work of one node (a retried ADD racing the original sees the
    /// first one's addresses under its handle, not a second set).
    node_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Allocation holds it shared; deleting a pool holds it exclusively, so no allocation can
    /// land in a pool while it is being removed.
    pub(crate) pools_lock: RwLock<()>,
    /// Pools and IPAM configuration as parsed at a store revision (re-read when it moves).
    settings: Mutex<Option<Settings>>,
    /// Blocks copied to be changed: the IPAM's cost per write (see `block_copies`).
    copies: AtomicU64,
    /// The largest a stored block may grow ([`MAX_BLOCK_BYTES`] unless lowered).
    block_limit: std::sync::atomic::AtomicUsize,
}

#[derive(Clone, Debug)]
pub(crate) struct Settings {
    revision: u64,
    pub pools: Arc<Vec<Pool>>,
    pub config: IpamConfigSpec,
}

pub(crate) fn block_key(cidr: IpNet) -> String {
    cidr.to_string()
}

pub(crate) fn affinity_key(node: &str, cidr: IpNet) -> String {
    format!("{node}/{cidr}")
}

/// `10.65.0.0/26` → `10-65-0-0-26`, as Calico names block objects.
pub fn cidr_name(cidr: IpNet) -> String {
    cidr.to_string().replace(['.', ':', '/'], "-")
}

fn corrupt(what: impl std::fmt::Display) -> IpamError {
    IpamError::Store(StoreError::Corrupt(what.to_string()))
}

impl Ipam {
    /// Loads every block and affinity into memory and finishes claims a crash interrupted.
    pub fn open(store: Arc<Store>) -> Result<Ipam> {
        let view = load_view(&store)?;
        let shared = store.is_shared();
        let ipam = Ipam {
            store,
            view: Mutex::new(view),
            node_locks: Mutex::new(HashMap::new()),
            pools_lock: RwLock::new(()),
            settings: Mutex::new(None),
            copies: AtomicU64::new(0),
            block_limit: std::sync::atomic::AtomicUsize::new(MAX_BLOCK_BYTES),
        };
        // On etcd a claim and a give-back are single transactions: nothing is ever half done.
        if !shared {
            ipam.recover()?;
        }
        Ok(ipam)
    }

    /// A crash can stop a claim or a give-back half way. The block is the truth: an affinity
    /// whose block is affine to its node is confirmed; any other affinity is removed; a block
    /// affine to a node with no affinity record gets one.
    fn recover(&self) -> Result<()> {
        let (affinities, blocks) = {
            let view = self.view()?;
            let affs: Vec<Affinity> = view.affinities.values().cloned().collect();
            let blocks: Vec<(IpNet, Option<String>)> =
                view.blocks.values().map(|c| (c.block.cidr, c.block.affinity.clone())).collect();
            (affs, blocks)
        };
        for aff in &affinities {
            let owner = blocks.iter().find(|(c, _)| *c == aff.cidr).and_then(|(_, o)| o.as_deref());
            match (owner == Some(aff.node.as_str()), aff.state) {
                (true, AffinityState::Confirmed) => {}
                (true, _) => {
                    tracing::info!(node = %aff.node, block = %aff.cidr, "confirming a claim interrupted by a restart");
                    self.write_affinity(&aff.node, aff.cidr, Some(AffinityState::Confirmed))?;
                }
                (false, _) => {
                    tracing::info!(node = %aff.node, block = %aff.cidr, state = ?aff.state, "removing an affinity without its block");
                    self.write_affinity(&aff.node, aff.cidr, None)?;
                }
            }
        }
        for (cidr, owner) in blocks {
            if let Some(node) = owner {
                if !self.view()?.affinities.contains_key(&(node.clone(), cidr)) {
                    self.write_affinity(&node, cidr, Some(AffinityState::Confirmed))?;
                }
            }
        }
        Ok(())
    }

    /// The view, with every change the store's watch brought applied (etcd).
    pub(crate) fn view(&self) -> Result<MutexGuard<'_, View>> {
        let mut view = self.view.lock().map_err(|_| corrupt("IPAM view lock poisoned"))?;
        if self.store.is_shared() {
            for change in self.store.take_changes() {
                apply_change(&self.store, &mut view, change)?;
            }
        }
        Ok(view)
    }

    /// Makes every write acknowledged by any API server before now visible in the view
    /// (etcd; nothing to do on sled, where this server is the only writer).
    pub(crate) fn sync(&self) -> Result<()> {
        self.store.barrier()?;
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub(crate) fn node_lock(&self, node: &str) -> Result<Arc<Mutex<()>>> {
        let mut locks = self.node_locks.lock().map_err(|_| corrupt("node lock map poisoned"))?;
        Ok(locks.entry(node.to_string()).or_default().clone())
    }

    /// Pools and configuration, parsed once per store revision: allocation needs them on
    /// every request, and they change rarely.
    pub(crate) fn settings(&self) -> Result<Settings> {
        let revision = self.store.revision();
        let mut cache = self.settings.lock().map_err(|_| corrupt("settings cache poisoned"))?;
        if let Some(s) = cache.as_ref().filter(|s| s.revision == revision) {
            return Ok(s.clone());
        }
        let (raws, _) = self.store.list(Kind::IpPool)?;
        let mut pools = Vec::with_capacity(raws.len());
        for raw in raws {
            let r = raw.typed::<IpPoolSpec>().map_err(corrupt)?;
            let selector = Selector::parse(r.spec.selector_text()).map_err(corrupt)?;
            pools.push(Pool { name: r.metadata.name, spec: r.spec, selector });
        }
        let config = match self.store.get(Kind::IpamConfig, "default")? {
            Some(raw) => raw.typed::<IpamConfigSpec>().map_err(corrupt)?.spec,
            None => IpamConfigSpec::default(),
        };
        let fresh = Settings { revision, pools: Arc::new(pools), config };
        *cache = Some(fresh.clone());
        Ok(fresh)
    }

    /// The stored pools, parsed.
    pub fn pools(&self) -> Result<Vec<Pool>> {
        Ok(self.settings()?.pools.as_ref().clone())
    }

    /// The IPAM configuration (defaults when none was applied).
    pub fn config(&self) -> Result<IpamConfigSpec> {
        Ok(self.settings()?.config)
    }

    /// A node's labels, if the node is registered.
    pub fn node_labels(&self, node: &str) -> Result<Option<BTreeMap<String, String>>> {
        Ok(self.store.get(Kind::Node, node)?.map(|n| n.metadata.labels))
    }

    /// Writes an affinity record (or removes it, `state == None`) with its watch event.
    pub(crate) fn write_affinity(
        &self,
        node: &str,
        cidr: IpNet,
        state: Option<AffinityState>,
    ) -> Result<()> {
        let key = affinity_key(node, cidr);
        let aff = Affinity {
            node: node.to_string(),
            cidr,
            state: state.unwrap_or(AffinityState::PendingDeletion),
            updated_at: time::now_unix(),
        };
        let value = match state {
            Some(_) => Some(serde_json::to_vec(&aff).map_err(corrupt)?),
            None => None,
        };
        let event = match (state, self.view()?.affinities.contains_key(&(node.to_string(), cidr))) {
            (None, _) => EventType::Deleted,
            (Some(_), true) => EventType::Modified,
            (Some(_), false) => EventType::Added,
        };
        let revision =
            self.store.write_affinity(&key, value, event, views::affinity_resource(&aff))?;
        if self.store.is_shared() {
            self.store.settle(revision)?;
            return Ok(());
        }
        let mut view = self.view()?;
        match state {
            Some(_) => view.affinities.insert((node.to_string(), cidr), aff),
            None => view.affinities.remove(&(node.to_string(), cidr)),
        };
        Ok(())
    }

    /// Installs a block just written, unless the view already has a newer write of it.
    pub(crate) fn install(&self, view: &mut View, block: Block, raw: Versioned) {
        let newer = view.blocks.get(&block.cidr).is_some_and(|c| c.block.sequence > block.sequence);
        if !newer {
            put_block(view, block, raw);
        }
    }

    /// After a compare-and-swap: sled installs what it wrote or re-reads what won; etcd waits
    /// for the watch to bring either back (the view follows the watch only).
    pub(crate) fn landed(
        &self,
        cidr: IpNet,
        outcome: std::result::Result<(Block, Versioned), Lost>,
    ) -> Result<()> {
        if self.store.is_shared() {
            let revision = match outcome {
                Ok((_, v)) => v.rev,
                Err(lost) => lost.at,
            };
            return Ok(self.store.settle(revision)?);
        }
        match outcome {
            Ok((block, raw)) => {
                let mut view = self.view()?;
                self.install(&mut view, block, raw);
            }
            Err(lost) => {
                let mut view = self.view()?;
                match lost.current {
                    Some(raw) => {
                        let block: Block = serde_json::from_slice(&raw.bytes).map_err(corrupt)?;
                        self.install(&mut view, block, raw);
                    }
                    None => remove_block(&mut view, cidr),
                }
            }
        }
        Ok(())
    }

    /// Changes one block: `change` edits a copy and returns `Some(result)` when it wrote
    /// something worth saving, `None` to leave the block as it is. Retries on conflict. The
    /// handle index follows the change only after the write succeeded.
    pub(crate) fn update_block<T>(
        &self,
        cidr: IpNet,
        mut change: impl FnMut(&mut Block) -> Option<T>,
    ) -> Result<Option<T>> {
        for _ in 0..CAS_RETRIES {
            let Some(cached) = self.view()?.blocks.get(&cidr).cloned() else {
                return Ok(None);
            };
            self.copies.fetch_add(1, Ordering::Relaxed);
            let mut block = (*cached.block).clone();
            let Some(result) = change(&mut block) else {
                return Ok(None);
            };
            let raw = serde_json::to_vec(&block).map_err(corrupt)?;
            let limit = self.block_limit.load(Ordering::Relaxed);
            if raw.len() > limit && raw.len() > cached.raw.bytes.len() {
                return Err(IpamError::Refused(format!(
                    "block {cidr} would grow to {} bytes, over the {limit}-byte limit of a stored \
                     block: allocate with fewer attributes, or use a pool with a smaller blockSize",
                    raw.len()
                )));
            }
            match self.store.cas_block(&block_key(cidr), Some(&cached.raw), Some(raw))? {
                Ok(written) => {
                    self.landed(cidr, Ok((block, written)))?;
                    return Ok(Some(result));
                }
                Err(lost) => self.landed(cidr, Err(lost))?,
            }
        }
        Err(IpamError::Contended(cidr))
    }

    /// Lowers the largest size a stored block may grow to (never above [`MAX_BLOCK_BYTES`]).
    pub fn limit_block_bytes(&self, bytes: usize) {
        self.block_limit.store(bytes.min(MAX_BLOCK_BYTES), Ordering::Relaxed);
    }

    /// How many blocks were copied to be changed since open. A copy costs the whole block, so
    /// allocation must copy only blocks it will write (tests hold it to that).
    pub fn block_copies(&self) -> u64 {
        self.copies.load(Ordering::Relaxed)
    }

    /// The block holding `ip`, from the view.
    pub(crate) fn block_of(&self, ip: IpAddr) -> Result<Option<Arc<Block>>> {
        let view = self.view()?;
        let probe = IpNet::from(ip);
        Ok(view
            .blocks
            .range(..=probe)
            .next_back()
            .filter(|(c, _)| c.contains(&ip))
            .map(|(_, c)| c.block.clone()))
    }

    /// The stored Node specs by name.
    pub fn nodes(&self) -> Result<BTreeMap<String, RawResource>> {
        let (nodes, _) = self.store.list(Kind::Node)?;
        Ok(nodes.into_iter().map(|n| (n.metadata.name.clone(), n)).collect())
    }
}

/// Updates the handle index from a block's old and new allocations (`None`: no block).
fn reindex_handles(view: &mut View, old: Option<&Block>, new: Option<&Block>) {
    if let Some(old) = old {
        for (ord, a) in &old.allocations {
            if new.and_then(|n| n.allocations.get(ord)).is_none_or(|n| n.handle != a.handle) {
                let ip = old.ip(*ord);
                if let Some(set) = view.handles.get_mut(&a.handle) {
                    set.remove(&ip);
                    if set.is_empty() {
                        view.handles.remove(&a.handle);
                    }
                }
            }
        }
    }
    if let Some(new) = new {
        for (ord, a) in &new.allocations {
            if old.and_then(|o| o.allocations.get(ord)).is_none_or(|o| o.handle != a.handle) {
                view.handles.entry(a.handle.clone()).or_default().insert(new.ip(*ord));
            }
        }
    }
}

/// Puts a block in the view, moving the handle index from the block it replaces.
fn put_block(view: &mut View, block: Block, raw: Versioned) {
    let old = view.blocks.get(&block.cidr).map(|c| c.block.clone());
    reindex_handles(view, old.as_deref(), Some(&block));
    view.blocks.insert(block.cidr, Cached { block: Arc::new(block), raw });
}

/// Removes a block from the view with its handles.
fn remove_block(view: &mut View, cidr: IpNet) {
    if let Some(old) = view.blocks.remove(&cidr) {
        reindex_handles(view, Some(&old.block), None);
    }
}

/// The whole view, from the store.
fn load_view(store: &Store) -> Result<View> {
    let mut view = View::default();
    for (_, raw) in store.scan_blocks()? {
        let block: Block = serde_json::from_slice(&raw.bytes).map_err(corrupt)?;
        for (ord, a) in &block.allocations {
            view.handles.entry(a.handle.clone()).or_default().insert(block.ip(*ord));
        }
        view.blocks.insert(block.cidr, Cached { block: Arc::new(block), raw });
    }
    for spec in store.scan_affinities()? {
        let aff: Affinity = serde_json::from_value(spec).map_err(corrupt)?;
        view.affinities.insert((aff.node.clone(), aff.cidr), aff);
    }
    Ok(view)
}

/// Applies one change another server made (etcd), in the watch's order.
fn apply_change(store: &Store, view: &mut View, change: Change) -> Result<()> {
    match change {
        Change::Block { key, value } => {
            let cidr: IpNet = key.parse().map_err(|_| corrupt(format!("block key {key:?}")))?;
            match value {
                Some(raw) => {
                    let block: Block = serde_json::from_slice(&raw.bytes).map_err(corrupt)?;
                    put_block(view, block, raw);
                }
                None => remove_block(view, cidr),
            }
        }
        Change::Affinity { key, spec } => {
            let (node, cidr) =
                key.split_once('/').ok_or_else(|| corrupt(format!("affinity key {key:?}")))?;
            let cidr: IpNet = cidr.parse().map_err(|_| corrupt(format!("affinity key {key:?}")))?;
            match spec {
                Some(spec) => {
                    let aff: Affinity = serde_json::from_value(spec).map_err(corrupt)?;
                    view.affinities.insert((node.to_string(), cidr), aff);
                }
                None => {
                    view.affinities.remove(&(node.to_string(), cidr));
                }
            }
        }
        Change::Reload => *view = load_view(store)?,
    }
    Ok(())
}
