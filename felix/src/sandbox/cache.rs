//! libcni's result cache: `<cacheDir>/results/<network>-<containerID>-<ifName>`, one JSON file
//! (`kind: cniCacheV1`) per attachment holding the conflist bytes (base64, as Go encodes a
//! `[]byte`) and the final ADD result. Written once the whole ADD chain has succeeded, read as
//! `prevResult` by CHECK and DEL, removed after a successful DEL.
//!
//! Owns the files only (directory 0700, files 0600, written atomically by rename); it never
//! decides when an entry is written or removed.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tartan_ipam::b64;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::error::{Result, SandboxError};

/// The default cache directory (libcni's `CacheDir`).
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
/// The format tag libcni writes and checks.
pub const KIND: &str = "cniCacheV1";

/// One cached attachment, field for field libcni's `cachedInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    pub kind: String,
    pub container_id: String,
    /// The conflist as loaded.
    #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
    pub config: Vec<u8>,
    pub if_name: String,
    pub network_name: String,
    #[serde(default)]
    pub netns: String,
    #[serde(default)]
    pub cni_args: Vec<[String; 2]>,
    #[serde(default)]
    pub capability_args: Map<String, Value>,
    /// The final result of the ADD chain.
    #[serde(default)]
    pub result: Value,
}

/// Where the entry for (network, container, interface) lives.
pub fn path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    cache_dir.join("results").join(format!("{network}-{container_id}-{ifname}"))
}

/// Writes `entry` atomically: a temporary file (0600) renamed over the entry.
pub fn write(cache_dir: &Path, entry: &CacheEntry) -> Result<PathBuf> {
    let target = path(cache_dir, &entry.network_name, &entry.container_id, &entry.if_name);
    let fail = |what: String| SandboxError::Cache { path: target.clone(), what };
    let dir = cache_dir.join("results");
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
    let bytes = serde_json::to_vec(entry).map_err(|e| fail(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}-{}-{}.tmp{}",
        entry.network_name,
        entry.container_id,
        entry.if_name,
        std::process::id()
    ));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, &target));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail(format!("writing: {e}")));
    }
    Ok(target)
}

/// Reads the entry at `path`; `None` if there is none.
pub fn read(path: &Path) -> Result<Option<CacheEntry>> {
    let fail = |what: String| SandboxError::Cache { path: path.to_path_buf(), what };
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("reading: {e}"))),
    };
    let entry: CacheEntry = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
    if entry.kind != KIND {
        return Err(fail(format!("kind {:?}, expected {KIND:?}", entry.kind)));
    }
    Ok(Some(entry))
}

/// Removes the entry at `path`; an absent one is not an error.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(SandboxError::Cache { path: path.to_path_buf(), what: format!("removing: {e}") })
        }
        _ => Ok(()),
    }
}

/// Every readable entry under `cache_dir`, in file-name order. Files that are not cache
/// entries (other runtimes' leftovers, a half-written temporary) are skipped with a warning.
pub fn entries(cache_dir: &Path) -> Result<Vec<(PathBuf, CacheEntry)>> {
    entries_where(cache_dir, |_| true)
}

/// The entries whose file name `wanted` accepts: only those files are read and parsed, so
/// finding one container's entries costs a directory listing, not every entry of the host.
pub fn entries_where(
    cache_dir: &Path,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(PathBuf, CacheEntry)>> {
    let dir = cache_dir.join("results");
    let listing = match fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SandboxError::io(format!("reading {}", dir.display()))(e)),
    };
    let mut paths = Vec::new();
    for item in listing {
        let item = item.map_err(SandboxError::io(format!("reading {}", dir.display())))?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && wanted(&name) {
            paths.push(item.path());
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        match read(&p) {
            Ok(Some(entry)) => out.push((p, entry)),
            Ok(None) => {}
            Err(e) => tracing::warn!("skipping {e}"),
        }
    }
    Ok(out)
}

fn to_base64<S: Serializer>(bytes: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&b64::encode(bytes))
}

fn from_base64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    b64::decode(&text).ok_or_else(|| serde::de::Error::custom("`config` is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips_with_libcni_field_names_and_modes() {
        let dir = std::env::temp_dir().join(format!("tt-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let entry = CacheEntry {
            kind: KIND.into(),
            container_id: "c1".into(),
            config: br#"{"name":"net"}"#.to_vec(),
            if_name: "eth0".into(),
            network_name: "net".into(),
            netns: "/run/netns/c1".into(),
            cni_args: vec![["K".into(), "V".into()]],
            capability_args: Map::new(),
            result: serde_json::json!({"cniVersion":"1.0.0"}),
        };
        let p = write(&dir, &entry).expect("write");
        assert_eq!(p, dir.join("results/net-c1-eth0"));
        let raw: Value = serde_json::from_slice(&fs::read(&p).expect("read")).expect("json");
        assert_eq!(raw["kind"], "cniCacheV1");
        assert_eq!(raw["containerId"], "c1");
        assert_eq!(raw["config"], "eyJuYW1lIjoibmV0In0=");
        assert_eq!(raw["cniArgs"], serde_json::json!([["K", "V"]]));
        assert_eq!(raw["capabilityArgs"], serde_json::json!({}));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!((mode(&dir.join("results")), mode(&p)), (0o700, 0o600));
        assert_eq!(read(&p).expect("read"), Some(entry.clone()));
        assert_eq!(entries(&dir).expect("entries"), vec![(p.clone(), entry)]);
        remove(&p).expect("remove");
        remove(&p).expect("remove again");
        assert_eq!(read(&p).expect("read"), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
