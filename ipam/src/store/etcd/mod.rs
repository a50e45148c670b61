//! The etcd backend: several stateless API servers over one etcd v3 cluster.
//!
//! Keys, under the prefix (default `/tartan/`): `resources/<Kind>/<name>` (the resource JSON
//! without `resourceVersion`), `ipam/blocks/<cidr>`, `ipam/affinities/<node>/<cidr>` (the
//! BlockAffinity resource), and `meta/*` guards. `resourceVersion` is the key's `mod_revision`.
//!
//! - **Every write is one conditional transaction**: create compares `version == 0`, update
//!   and delete the `mod_revision` read, a block write the block's `mod_revision`, a claim
//!   creates block and affinity together only if the block is absent. No lock in this process
//!   is what keeps two servers from handing out one address.
//! - **Reads come from the mirror** ([`mirror`]), fed by one prefix watch; a write returns once
//!   the watch brought it back, so a server reads its own writes; [`EtcdStore::barrier`]
//!   makes it see everyone's (a linearizable read of the revision, then waiting for it).
//! - **Indeterminate outcomes are resolved by reading**: a transaction that got no answer is
//!   sent again (its compares make that safe); if it had been applied, the retry fails and the
//!   value read back is ours, which counts as applied. Never guessed.
//! - A watch cut by a compaction lists the prefix again (once) and tells the IPAM to reload.

mod batch;
pub mod client;
pub mod local;
pub mod mirror;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use client::{Compare, Op, TxnOutcome, WatchMessage};
pub use client::{EtcdClient, EtcdError};
use mirror::Mirror;

use super::{Change, Event, EventType, Lost, StoreError, Versioned, WriteMode};
use crate::resources::{Kind, RawResource};
use crate::time;

/// How long a write waits for its revision to come back on the watch, and a barrier for
/// the mirror to catch up, before the watch is opened again elsewhere.
const SETTLE: Duration = Duration::from_secs(3);
const SETTLE_FIRST: Duration = Duration::from_secs(1);
/// How often the watch is checked against etcd's revision.
const FRESHNESS: Duration = Duration::from_secs(1);
/// How long an indeterminate transaction is retried before the caller is told.
const RESOLVE: Duration = Duration::from_secs(10);
/// Keys per page when listing the prefix.
const PAGE: u64 = 500;

/// Where the datastore is.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    /// Key prefix, ending in `/`.
    pub prefix: String,
    /// For `https://` endpoints: the CA to trust, and the client certificate etcd's
    /// `--client-cert-auth` asks for.
    pub tls: Option<Box<rustls::ClientConfig>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct EtcdMetrics {
    pub txns: AtomicU64,
    pub txn_micros: AtomicU64,
    pub conflicts: AtomicU64,
    pub retries: AtomicU64,
    pub indeterminate: AtomicU64,
    pub relists: AtomicU64,
    pub watch_restarts: AtomicU64,
    /// Unix ms of the last fence write (or listing) that succeeded: the cluster had a quorum.
    pub quorum_seen_ms: AtomicU64,
    /// The largest member database, bytes (refreshed every minute).
    pub db_size: AtomicU64,
    /// 1 while etcd reports a NOSPACE alarm.
    pub no_space: AtomicU64,
    /// The revision history was compacted up to.
    pub compacted: AtomicU64,
}

/// etcd's default backend quota (`--quota-backend-bytes`).
pub const DEFAULT_QUOTA: u64 = 2 << 30;
/// History kept for watchers to resume from (older revisions are compacted).
const RETENTION: Duration = Duration::from_secs(300);
/// How often the database size, the alarms and compaction are looked at.
const MAINTENANCE: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Shared {
    client: EtcdClient,
    prefix: String,
    mirror: Mutex<Mirror>,
    revision_tx: watch::Sender<u64>,
    /// Asks the watch task to open the watch again (it may be stuck on a cut-off member).
    restart: Notify,
    metrics: EtcdMetrics,
    barrier: batch::Barrier,
}

impl Shared {
    /// The key barriers write (see [`batch::Barrier`]).
    fn fence_key(&self) -> Vec<u8> {
        format!("{}{}", self.prefix, mirror::FENCE).into_bytes()
    }
}

/// The etcd datastore as one API server sees it.
#[derive(Debug)]
pub struct EtcdStore {
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    watcher: tokio::task::JoinHandle<()>,
    batcher: tokio::sync::mpsc::UnboundedSender<batch::Request>,
    batch_task: tokio::task::JoinHandle<()>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.watcher.abort();
        self.batch_task.abort();
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn lock(m: &Mutex<Mirror>) -> MutexGuard<'_, Mirror> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EtcdStore {
    /// Connects, lists the prefix and starts the watch.
    pub async fn open(config: EtcdConfig) -> Result<EtcdStore, StoreError> {
        let client = EtcdClient::new(&config.endpoints, config.tls.as_deref().cloned())
            .map_err(StoreError::Corrupt)?;
        let mut prefix = config.prefix.clone();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let page = client.range_all(prefix.as_bytes(), PAGE).await?;
        let mut mirror = Mirror::default();
        mirror.load(&prefix, &page.kvs, page.revision)?;
        let shared = Arc::new(Shared {
            client,
            prefix,
            mirror: Mutex::new(mirror),
            revision_tx: watch::channel(page.revision).0,
            restart: Notify::new(),
            metrics: EtcdMetrics::default(),
            barrier: batch::Barrier::default(),
        });
        // The listing was a linearizable read: the cluster had quorum just now.
        shared.metrics.quorum_seen_ms.store(time::now_millis(), Ordering::Relaxed);
        let watcher = tokio::spawn(watch_loop(shared.clone()));
        tokio::spawn(freshness_loop(Arc::downgrade(&shared)));
        tokio::spawn(maintenance_loop(Arc::downgrade(&shared)));
        let (batcher, requests) = tokio::sync::mpsc::unbounded_channel();
        let batch_task = tokio::spawn(batch::run(shared.clone(), requests));
        Ok(EtcdStore {
            shared,
            rt: tokio::runtime::Handle::current(),
            watcher,
            batcher,
            batch_task,
        })
    }

    pub fn client(&self) -> &EtcdClient {
        &self.shared.client
    }

    pub fn metrics(&self) -> &EtcdMetrics {
        &self.shared.metrics
    }

    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// Whether a linearizable read succeeded within the last few seconds (etcd has quorum and
    /// this server reaches it).
    pub fn has_quorum(&self) -> bool {
        let seen = self.shared.metrics.quorum_seen_ms.load(Ordering::Relaxed);
        time::now_millis().saturating_sub(seen) < 5_000
    }

    fn key(&self, section: &str, rest: &str) -> Vec<u8> {
        format!("{}{section}{rest}", self.shared.prefix).into_bytes()
    }

    fn resource_key(kind: Kind, name: &str) -> String {
        format!("{}/{name}", kind.info().kind)
    }

    pub fn revision(&self) -> u64 {
        *self.shared.revision_tx.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.revision_tx.subscribe()
    }

    /// Runs an etcd call to the end from a blocking thread.
    fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// Waits until the mirror applied `revision`; asks for a new watch if it does not come.
    pub fn wait_for(&self, revision: u64) -> Result<(), StoreError> {
        let mut rx = self.subscribe();
        self.block_on(async {
            // A healthy watch brings a revision back within milliseconds: after a second the
            // member it reads from is likely cut off, so it is opened again elsewhere.
            for (round, patience) in [SETTLE_FIRST, SETTLE].into_iter().enumerate() {
                let reached = tokio::time::timeout(patience, rx.wait_for(|r| *r >= revision)).await;
                match reached {
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err(_)) => break,
                    Err(_) if round == 0 => {
                        tracing::warn!(revision, "the etcd watch is behind; opening it again");
                        self.shared.restart.notify_one();
                    }
                    Err(_) => {}
                }
            }
            Err(StoreError::Etcd(EtcdError::Unavailable {
                tried: self.shared.client.endpoints().join(","),
                last: format!("the watch did not reach revision {revision}"),
            }))
        })
    }

    /// Waits until the mirror holds every write acknowledged before the call.
    pub fn barrier(&self) -> Result<(), StoreError> {
        let fence = self.shared.fence_key();
        let revision = self.block_on(self.shared.barrier.revision(&self.shared.client, &fence))?;
        self.wait_for(revision)
    }

    pub fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut lock(&self.shared.mirror).changes)
    }

    pub fn get(&self, kind: Kind, name: &str) -> Option<RawResource> {
        lock(&self.shared.mirror).resources.get(&Self::resource_key(kind, name)).cloned()
    }

    pub fn list(&self, kind: Kind) -> (Vec<RawResource>, u64) {
        let m = lock(&self.shared.mirror);
        let prefix = format!("{}/", kind.info().kind);
        let items = m
            .resources
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, m.revision)
    }

    pub fn events_since(&self, since: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        lock(&self.shared.mirror).events_since(since, limit)
    }

    /// The events after `since` that happened before this server's mirror started (a watcher
    /// resuming here from another server), read from etcd's history; `Gone` if compacted.
    pub async fn history(&self, since: u64) -> Result<(Vec<Event>, u64), StoreError> {
        let oldest = lock(&self.shared.mirror).oldest;
        if since >= oldest {
            return Ok((Vec::new(), since));
        }
        let prefix = self.shared.prefix.clone();
        let mut stream = self.shared.client.watch(prefix.as_bytes(), since + 1, true).await?;
        let mut out = Vec::new();
        loop {
            // History arrives at once; a pause means it is all here.
            let message = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
            let events = match message {
                Err(_) | Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(
                        EtcdError::Unavailable { tried: stream.url.clone(), last: e }.into()
                    );
                }
                Ok(Some(Ok(WatchMessage::Compacted(at)))) => {
                    return Err(StoreError::Gone { since, oldest: at });
                }
                Ok(Some(Ok(WatchMessage::Canceled(why)))) => {
                    return Err(
                        EtcdError::Unavailable { tried: stream.url.clone(), last: why }.into()
                    );
                }
                Ok(Some(Ok(WatchMessage::Created))) => continue,
                Ok(Some(Ok(WatchMessage::Events { events, .. }))) => events,
            };
            let mut done = false;
            for e in &events {
                if e.kv.mod_revision > oldest {
                    done = true;
                    break;
                }
                if let Some(event) = Mirror::history_event(&prefix, e)? {
                    out.push(event);
                }
            }
            if done {
                break;
            }
        }
        Ok((out, oldest))
    }

    pub fn scan_blocks(&self) -> Vec<(String, Versioned)> {
        lock(&self.shared.mirror).blocks.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn scan_affinities(&self) -> Vec<serde_json::Value> {
        lock(&self.shared.mirror).affinities.values().map(|r| r.spec.clone()).collect()
    }

    /// One transaction, with an indeterminate outcome resolved: the same transaction is sent
    /// again until etcd answers (its compares make a second application impossible); if it
    /// then fails and `probe` (the key the failure branch reads first) holds what we wrote
    /// (`Some(bytes)`) or is gone (`None`, a delete), the first one was applied.
    fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
        written: Option<&[u8]>,
    ) -> Result<TxnOutcome, StoreError> {
        self.txn_from(compare, success, failure, written, false)
    }

    /// [`EtcdStore::txn`], grouped with concurrent writes into one transaction when it can be
    /// ([`batch`]); alone (and resolved as usual) when the group did not apply.
    fn txn_grouped(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
        written: Option<&[u8]>,
    ) -> Result<TxnOutcome, StoreError> {
        let started = Instant::now();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request =
            batch::Request { compare: compare.to_vec(), success: success.to_vec(), reply };
        if self.batcher.send(request).is_ok() {
            match self.block_on(answer) {
                Ok(batch::Reply::Applied(revision)) => {
                    let m = &self.shared.metrics;
                    m.txns.fetch_add(1, Ordering::Relaxed);
                    m.txn_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    return Ok(batch::applied(revision));
                }
                Ok(batch::Reply::Alone { unsure }) => {
                    return self.txn_from(compare, success, failure, written, unsure);
                }
                Err(_) => {}
            }
        }
        self.txn(compare, success, failure, written)
    }

    /// The resolving loop; `unsure`: an earlier try of the same transaction may have been
    /// applied.
    fn txn_from(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
        written: Option<&[u8]>,
        unsure: bool,
    ) -> Result<TxnOutcome, StoreError> {
        let metrics = &self.shared.metrics;
        let started = Instant::now();
        let mut unsure = unsure;
        loop {
            let result = self.block_on(self.shared.client.txn(compare, success, failure));
            match result {
                Ok(o) => {
                    metrics.txns.fetch_add(1, Ordering::Relaxed);
                    metrics
                        .txn_micros
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    if o.succeeded || !unsure {
                        return Ok(o);
                    }
                    let current = o.ranges.first().and_then(|r| r.first());
                    let ours = match (written, current) {
                        (Some(bytes), Some(kv)) => kv.value == bytes,
                        (None, None) => true,
                        _ => false,
                    };
                    if ours {
                        tracing::info!("an etcd transaction without an answer had been applied");
                        let revision = current.map_or(o.revision, |kv| kv.mod_revision);
                        return Ok(TxnOutcome { succeeded: true, revision, ranges: o.ranges });
                    }
                    return Ok(o);
                }
                Err(EtcdError::Indeterminate(why)) => {
                    metrics.indeterminate.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("{why}: sending the transaction again to learn its outcome");
                    unsure = true;
                }
                Err(e @ EtcdError::Unavailable { .. }) if !unsure => return Err(e.into()),
                Err(EtcdError::Unavailable { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            if started.elapsed() > RESOLVE {
                return Err(EtcdError::Indeterminate(format!(
                    "no etcd member answered for {} s; the write may or may not have been applied",
                    RESOLVE.as_secs()
                ))
                .into());
            }
            metrics.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn read_only_guard(&self) -> Compare {
        Compare::Version(self.key(mirror::READ_ONLY, ""), 0)
    }

    /// Explains a failed write whose read-only guard may have been what failed.
    fn refused_if_read_only(&self) -> Result<(), StoreError> {
        let key = self.key(mirror::READ_ONLY, "");
        let page = self.block_on(self.shared.client.range(&key, &[], 1, 0))?;
        if let Some(kv) = page.kvs.first() {
            return Err(StoreError::ReadOnly(String::from_utf8_lossy(&kv.value).into_owned()));
        }
        Ok(())
    }

    pub fn put(
        &self,
        kind: Kind,
        mut res: RawResource,
        mode: WriteMode,
        pools_revision: Option<u64>,
    ) -> Result<(RawResource, EventType), StoreError> {
        let name = res.metadata.name.clone();
        let rkey = Self::resource_key(kind, &name);
        let key = self.key(mirror::RESOURCES, &rkey);
        let expected = res.metadata.resource_version.take();
        for attempt in 0..5 {
            let existing = lock(&self.shared.mirror).resources.get(&rkey).cloned();
            let current_rev = existing.as_ref().and_then(|e| e.metadata.resource_version.clone());
            let event =
                super::check_put(kind, &name, current_rev.as_deref(), expected.as_deref(), mode)?;
            res.metadata.creation_timestamp = existing
                .as_ref()
                .and_then(|e| e.metadata.creation_timestamp.clone())
                .or_else(|| Some(time::rfc3339(time::now_unix())));
            res.metadata.resource_version = None;
            let value = serde_json::to_vec(&res).map_err(corrupt)?;
            let mut compare = vec![
                match &current_rev {
                    Some(rev) => Compare::Mod(key.clone(), rev.parse().map_err(corrupt)?),
                    None => Compare::Version(key.clone(), 0),
                },
                self.read_only_guard(),
            ];
            let mut success = vec![Op::Put(key.clone(), value.clone())];
            if kind == Kind::IpPool {
                let guard = self.key(mirror::POOLS_GUARD, "");
                let seen = pools_revision.unwrap_or_else(|| self.revision());
                compare.push(Compare::ModNotAfter(guard.clone(), seen));
                success.push(Op::Put(guard, Vec::new()));
            }
            let o = self.txn(&compare, &success, &[Op::Get(key.clone())], Some(&value))?;
            if o.succeeded {
                self.wait_for(o.revision)?;
                res.metadata.resource_version = Some(o.revision.to_string());
                return Ok((res, event));
            }
            self.shared.metrics.conflicts.fetch_add(1, Ordering::Relaxed);
            self.refused_if_read_only()?;
            if kind == Kind::IpPool && pools_revision.is_some() && attempt > 0 {
                return Err(StoreError::Raced(
                    "another IP pool was written while this one was checked".into(),
                ));
            }
            // The mirror was behind what we compared against: catch up and decide again.
            self.wait_for(o.revision)?;
        }
        Err(StoreError::Raced(format!("{kind} {name:?} keeps changing")))
    }

    pub fn delete(
        &self,
        kind: Kind,
        name: &str,
        expected: Option<&str>,
        claims_revision: Option<u64>,
    ) -> Result<RawResource, StoreError> {
        let rkey = Self::resource_key(kind, name);
        let key = self.key(mirror::RESOURCES, &rkey);
        for _ in 0..5 {
            let Some(mut existing) = lock(&self.shared.mirror).resources.get(&rkey).cloned() else {
                return Err(StoreError::NotFound { kind, name: name.to_string() });
            };
            let current = existing.metadata.resource_version.clone().unwrap_or_default();
            super::check_delete(kind, name, &current, expected)?;
            let mut compare = vec![
                Compare::Mod(key.clone(), current.parse().map_err(corrupt)?),
                self.read_only_guard(),
            ];
            let mut success = vec![Op::Delete(key.clone())];
            if let Some(seen) = claims_revision {
                compare.push(Compare::ModNotAfter(self.key(mirror::CLAIMS_GUARD, ""), seen));
            }
            if kind == Kind::IpPool {
                success.push(Op::Put(self.key(mirror::POOLS_GUARD, ""), Vec::new()));
            }
            let o = self.txn(&compare, &success, &[Op::Get(key.clone())], None)?;
            if o.succeeded {
                self.wait_for(o.revision)?;
                existing.metadata.resource_version = Some(o.revision.to_string());
                return Ok(existing);
            }
            self.shared.metrics.conflicts.fetch_add(1, Ordering::Relaxed);
            self.refused_if_read_only()?;
            if claims_revision.is_some() {
                return Err(StoreError::Raced(format!(
                    "a block was claimed while {kind} {name:?} was being deleted"
                )));
            }
            self.wait_for(o.revision)?;
        }
        Err(StoreError::Raced(format!("{kind} {name:?} keeps changing")))
    }

    fn lost(o: &TxnOutcome) -> Lost {
        let current = o
            .ranges
            .first()
            .and_then(|r| r.first())
            .map(|kv| Versioned { bytes: kv.value.as_slice().into(), rev: kv.mod_revision });
        Lost { current, at: o.revision }
    }

    pub fn cas_block(
        &self,
        cidr_key: &str,
        old: Option<&Versioned>,
        new: Option<Vec<u8>>,
    ) -> Result<Result<Versioned, Lost>, StoreError> {
        let key = self.key(mirror::BLOCKS, cidr_key);
        let compare = [
            match old {
                Some(o) => Compare::Mod(key.clone(), o.rev),
                None => Compare::Version(key.clone(), 0),
            },
            self.read_only_guard(),
        ];
        let op = match &new {
            Some(v) => Op::Put(key.clone(), v.clone()),
            None => Op::Delete(key.clone()),
        };
        let o = self.txn_grouped(&compare, &[op], &[Op::Get(key)], new.as_deref())?;
        if o.succeeded {
            let bytes = new.unwrap_or_default();
            return Ok(Ok(Versioned { bytes: bytes.as_slice().into(), rev: o.revision }));
        }
        self.shared.metrics.conflicts.fetch_add(1, Ordering::Relaxed);
        self.refused_if_read_only()?;
        Ok(Err(Self::lost(&o)))
    }

    pub fn write_affinity(
        &self,
        key: &str,
        present: bool,
        mut object: RawResource,
    ) -> Result<u64, StoreError> {
        let key = self.key(mirror::AFFINITIES, key);
        object.metadata.resource_version = None;
        let op = if present {
            Op::Put(key, serde_json::to_vec(&object).map_err(corrupt)?)
        } else {
            Op::Delete(key)
        };
        let o = self.txn(&[self.read_only_guard()], &[op], &[], None)?;
        if !o.succeeded {
            self.refused_if_read_only()?;
        }
        Ok(o.revision)
    }

    pub fn claim_block(
        &self,
        cidr_key: &str,
        block: Vec<u8>,
        affinity_key: &str,
        mut affinity: RawResource,
    ) -> Result<Result<Versioned, Lost>, StoreError> {
        let key = self.key(mirror::BLOCKS, cidr_key);
        affinity.metadata.resource_version = None;
        let aff = serde_json::to_vec(&affinity).map_err(corrupt)?;
        let compare = [Compare::Version(key.clone(), 0), self.read_only_guard()];
        let success = [
            Op::Put(key.clone(), block.clone()),
            Op::Put(self.key(mirror::AFFINITIES, affinity_key), aff),
            Op::Put(self.key(mirror::CLAIMS_GUARD, ""), Vec::new()),
        ];
        let o = self.txn(&compare, &success, &[Op::Get(key)], Some(&block))?;
        if o.succeeded {
            return Ok(Ok(Versioned { bytes: block.as_slice().into(), rev: o.revision }));
        }
        self.refused_if_read_only()?;
        Ok(Err(Self::lost(&o)))
    }

    pub fn give_back_block(
        &self,
        cidr_key: &str,
        old: &Versioned,
        affinity_key: Option<&str>,
    ) -> Result<Result<Versioned, Lost>, StoreError> {
        let key = self.key(mirror::BLOCKS, cidr_key);
        let compare = [Compare::Mod(key.clone(), old.rev), self.read_only_guard()];
        let mut success = vec![Op::Delete(key.clone())];
        if let Some(a) = affinity_key {
            success.push(Op::Delete(self.key(mirror::AFFINITIES, a)));
        }
        let o = self.txn(&compare, &success, &[Op::Get(key)], None)?;
        if o.succeeded {
            return Ok(Ok(Versioned { bytes: Default::default(), rev: o.revision }));
        }
        self.refused_if_read_only()?;
        Ok(Err(Self::lost(&o)))
    }
}

/// Keeps the mirror: watches the prefix from the mirror's revision, applies each revision,
/// lists again after a compaction, and opens the watch again (at another member if need be)
/// when the stream ends or the store asks.
async fn watch_loop(shared: Arc<Shared>) {
    let prefix = shared.prefix.clone();
    loop {
        let from = lock(&shared.mirror).revision + 1;
        let mut stream = match shared.client.watch(prefix.as_bytes(), from, false).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot watch etcd: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                m = stream.next() => m,
                () = shared.restart.notified() => {
                    tracing::info!("opening the etcd watch again (was at {})", stream.url);
                    break;
                }
            };
            let applied = match message {
                None => {
                    tracing::info!("the etcd watch at {} ended; opening it again", stream.url);
                    break;
                }
                Some(Err(e)) => {
                    tracing::warn!("the etcd watch failed: {e}; opening it again");
                    break;
                }
                Some(Ok(WatchMessage::Created)) => continue,
                Some(Ok(WatchMessage::Canceled(why))) => {
                    tracing::warn!("etcd cancelled the watch: {why}; opening it again");
                    break;
                }
                Some(Ok(WatchMessage::Compacted(at))) => {
                    tracing::warn!(
                        compacted = at,
                        "etcd compacted the history the watch needed; listing again"
                    );
                    // etcd cancelled this watch: list, then watch again from the listing.
                    if let Ok(rev) = relist(&shared).await {
                        publish(&shared, rev);
                    }
                    break;
                }
                Some(Ok(WatchMessage::Events { events, .. })) => {
                    // The header may name a later revision than the events (while the watch
                    // catches up): only the events' own revisions count as applied.
                    let Some(top) = events.iter().map(|e| e.kv.mod_revision).max() else {
                        continue;
                    };
                    let mut m = lock(&shared.mirror);
                    m.apply(&prefix, top, &events).map(|()| m.revision)
                }
            };
            match applied {
                Ok(rev) => publish(&shared, rev),
                Err(e) => {
                    tracing::error!("cannot apply the etcd watch: {e}; listing again");
                    let _ = relist(&shared).await;
                    break;
                }
            }
        }
        shared.metrics.watch_restarts.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Once a second, checks that the watch keeps up with etcd (a linearizable read of the
/// revision, then the mirror must reach it within a second) and opens it again elsewhere if
/// not: a watch on a member cut off from the cluster stays open and silent.
async fn freshness_loop(shared: std::sync::Weak<Shared>) {
    loop {
        tokio::time::sleep(FRESHNESS).await;
        let Some(shared) = shared.upgrade() else { return };
        let fence = shared.fence_key();
        let Ok(revision) = shared.barrier.revision(&shared.client, &fence).await else { continue };
        shared.metrics.quorum_seen_ms.store(time::now_millis(), Ordering::Relaxed);
        let mut rx = shared.revision_tx.subscribe();
        if tokio::time::timeout(FRESHNESS, rx.wait_for(|r| *r >= revision)).await.is_err() {
            tracing::warn!(revision, "the etcd watch fell behind; opening it again");
            shared.restart.notify_one();
        }
    }
}

/// Every minute: the database size and alarms for health and metrics, and compaction of the
/// history older than [`RETENTION`] (every server does it; compacting twice is harmless).
/// Without compaction etcd keeps every version of every block until its quota is full.
async fn maintenance_loop(shared: std::sync::Weak<Shared>) {
    let mut samples: std::collections::VecDeque<(Instant, u64)> = Default::default();
    loop {
        {
            let Some(shared) = shared.upgrade() else { return };
            let m = &shared.metrics;
            let size = shared.client.statuses().await.iter().flatten().map(|s| s.db_size).max();
            if let Some(size) = size {
                m.db_size.store(size, Ordering::Relaxed);
            }
            if let Ok(alarms) = shared.client.alarms().await {
                let full = alarms.iter().any(|a| a == "NOSPACE");
                if full {
                    tracing::error!(
                        "etcd raised NOSPACE: writes are refused until it is compacted, defragmented \
                         (etcdctl defrag) and the alarm disarmed (etcdctl alarm disarm)"
                    );
                }
                m.no_space.store(u64::from(full), Ordering::Relaxed);
            }
            let now = Instant::now();
            samples.push_back((now, lock(&shared.mirror).revision));
            let mut target = None;
            while let Some((at, rev)) = samples.front().copied() {
                if now.duration_since(at) < RETENTION {
                    break;
                }
                target = Some(rev);
                samples.pop_front();
            }
            if let Some(rev) = target.filter(|r| *r > m.compacted.load(Ordering::Relaxed)) {
                match shared.client.compact(rev).await {
                    Ok(()) => {
                        m.compacted.store(rev, Ordering::Relaxed);
                        tracing::info!(revision = rev, "compacted etcd's history");
                    }
                    Err(e) => tracing::warn!("cannot compact etcd: {e}"),
                }
            }
        }
        tokio::time::sleep(MAINTENANCE).await;
    }
}

/// Tells waiters the mirror reached `rev`.
fn publish(shared: &Shared, rev: u64) {
    shared.revision_tx.send_if_modified(|r| {
        let moved = rev > *r;
        *r = (*r).max(rev);
        moved
    });
}

/// Lists the whole prefix again into the mirror; returns its revision.
async fn relist(shared: &Shared) -> Result<u64, StoreError> {
    loop {
        match shared.client.range_all(shared.prefix.as_bytes(), PAGE).await {
            Ok(page) => {
                let mut m = lock(&shared.mirror);
                m.load(&shared.prefix, &page.kvs, page.revision)?;
                shared.metrics.relists.fetch_add(1, Ordering::Relaxed);
                return Ok(page.revision);
            }
            Err(e) => {
                tracing::warn!("cannot list etcd: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
