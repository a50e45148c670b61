//! `tartanctl datastore migrate`: copies a sled datastore into etcd, as `calicoctl datastore
//! migrate` does for Calico.
//!
//! 1. **Lock the source**: the sled database is opened, which only works while no
//!    `tartan apiserver` holds it — the old server must be stopped, so nothing changes under
//!    the copy. Opening also finishes claims a crash left half done.
//! 2. **Lock the target**: `meta/read-only` is created under the prefix (only if absent, and
//!    only if the prefix holds no data): API servers already started on etcd refuse writes
//!    (503 `read_only`) until the copy is verified.
//! 3. **Copy** resources, blocks and affinities, in transactions of at most 100 keys, each key
//!    created only if absent (nothing is ever overwritten).
//! 4. **Verify**: everything under the prefix is read back and compared byte for byte.
//! 5. **Unlock**: `meta/read-only` is deleted. On any failure it stays, with what went wrong
//!    in it, and the error says how to start again.

use std::path::Path;
use std::sync::Arc;

use crate::ipam::{Affinity, Ipam, views};
use crate::resources::Kind;
use crate::store::etcd::client::{Compare, EtcdClient, Op};
use crate::store::etcd::mirror::{AFFINITIES, BLOCKS, READ_ONLY, RESOURCES};
use crate::store::etcd::{EtcdConfig, EtcdError};
use crate::store::{Store, StoreError};

/// What was copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub resources: usize,
    pub blocks: usize,
    pub affinities: usize,
    /// Keys read back and found identical.
    pub verified: usize,
}

/// Keys per transaction (etcd refuses more than 128 operations).
const CHUNK: usize = 100;

fn err(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Reads everything out of the sled datastore in `data_dir`: (key under the prefix, value).
fn export(data_dir: &Path) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let store = Arc::new(Store::open(data_dir).map_err(|e| {
        StoreError::Corrupt(format!(
            "{e}\n(stop the `tartan apiserver` that uses {}: the copy needs it unchanged)",
            data_dir.display()
        ))
    })?);
    let ipam = Ipam::open(store.clone()).map_err(|e| err(format!("opening the IPAM: {e}")))?;
    let mut out = Vec::new();
    for kind in Kind::all().filter(|k| k.is_stored()) {
        for mut r in store.list(kind)?.0 {
            r.metadata.resource_version = None;
            let key = format!("{RESOURCES}{}/{}", kind.info().kind, r.metadata.name);
            out.push((key, serde_json::to_vec(&r).map_err(err)?));
        }
    }
    for (cidr, raw) in store.scan_blocks()? {
        out.push((format!("{BLOCKS}{cidr}"), raw.bytes.to_vec()));
    }
    for aff in ipam.affinities().map_err(|e| err(e.to_string()))? {
        let aff: Affinity = aff;
        let mut r = views::affinity_resource(&aff);
        r.metadata.resource_version = None;
        let key = format!("{AFFINITIES}{}/{}", aff.node, aff.cidr);
        out.push((key, serde_json::to_vec(&r).map_err(err)?));
    }
    drop(ipam);
    store.flush_now()?;
    Ok(out)
}

/// Copies the sled datastore in `data_dir` into etcd under `target.prefix`; `progress` hears
/// each step.
pub async fn sled_to_etcd(
    data_dir: &Path,
    target: &EtcdConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Migrated, StoreError> {
    let mut prefix = target.prefix.clone();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    let client = EtcdClient::new(&target.endpoints, target.tls.as_deref().cloned())
        .map_err(StoreError::Corrupt)?;
    progress(&format!("reading the sled datastore in {}", data_dir.display()));
    let dir = data_dir.to_path_buf();
    let items = tokio::task::spawn_blocking(move || export(&dir))
        .await
        .map_err(|e| err(format!("export task: {e}")))??;
    let count = |section: &str| items.iter().filter(|(k, _)| k.starts_with(section)).count();
    let mut report = Migrated {
        resources: count(RESOURCES),
        blocks: count(BLOCKS),
        affinities: count(AFFINITIES),
        verified: 0,
    };
    progress(&format!(
        "{} resources, {} blocks, {} affinities to copy",
        report.resources, report.blocks, report.affinities
    ));

    let existing = client.range_all(prefix.as_bytes(), 500).await?;
    if let Some(kv) = existing.kvs.first() {
        return Err(StoreError::Raced(format!(
            "etcd already holds data under {prefix} ({} keys, the first {}): migrate into an empty \
             prefix (--etcd-prefix), or delete it first (etcdctl del --prefix {prefix})",
            existing.kvs.len(),
            String::from_utf8_lossy(&kv.key)
        )));
    }
    let lock_key = format!("{prefix}{READ_ONLY}").into_bytes();
    let note = format!("migration from {} in progress", data_dir.display());
    let locked = client
        .txn(
            &[Compare::Version(lock_key.clone(), 0)],
            &[Op::Put(lock_key.clone(), note.into_bytes())],
            &[],
        )
        .await?;
    if !locked.succeeded {
        return Err(StoreError::ReadOnly(format!(
            "{prefix}{READ_ONLY} exists: another migration is running or one failed; \
             delete the key when sure (etcdctl del {prefix}{READ_ONLY})"
        )));
    }
    let result = copy_and_verify(&client, &prefix, &items, progress).await;
    match result {
        Ok(verified) => {
            report.verified = verified;
            client.txn(&[], &[Op::Delete(lock_key)], &[]).await?;
            progress("verified and unlocked: start `tartan apiserver --datastore etcd` now");
            Ok(report)
        }
        Err(e) => {
            let why =
                format!("migration failed: {e}; delete everything under {prefix} and run it again");
            let _ = client.txn(&[], &[Op::Put(lock_key, why.into_bytes())], &[]).await;
            Err(e)
        }
    }
}

async fn copy_and_verify(
    client: &EtcdClient,
    prefix: &str,
    items: &[(String, Vec<u8>)],
    progress: &mut dyn FnMut(&str),
) -> Result<usize, StoreError> {
    let mut done = 0;
    for chunk in items.chunks(CHUNK) {
        let compare: Vec<Compare> = chunk
            .iter()
            .map(|(k, _)| Compare::Version(format!("{prefix}{k}").into_bytes(), 0))
            .collect();
        let puts: Vec<Op> = chunk
            .iter()
            .map(|(k, v)| Op::Put(format!("{prefix}{k}").into_bytes(), v.clone()))
            .collect();
        let o = match client.txn(&compare, &puts, &[]).await {
            Ok(o) => o,
            // Sent again: if the first was applied the compares now fail, and verification
            // below reads what is there.
            Err(EtcdError::Indeterminate(_)) => client.txn(&compare, &puts, &[]).await?,
            Err(e) => return Err(e.into()),
        };
        if !o.succeeded {
            // Either the first try landed (verification will show) or someone wrote here.
            progress("a chunk was already there; checking it in verification");
        }
        done += chunk.len();
        progress(&format!("copied {done}/{}", items.len()));
    }
    let back = client.range_all(prefix.as_bytes(), 500).await?;
    let mut stored = std::collections::HashMap::new();
    for kv in back.kvs {
        stored.insert(kv.key, kv.value);
    }
    let mut verified = 0;
    for (k, v) in items {
        let key = format!("{prefix}{k}").into_bytes();
        match stored.get(&key) {
            Some(value) if value == v => verified += 1,
            Some(_) => return Err(err(format!("{k} differs in etcd from the sled datastore"))),
            None => return Err(err(format!("{k} is missing in etcd after the copy"))),
        }
    }
    progress(&format!("verified {verified} keys byte for byte"));
    Ok(verified)
}
