//! This host's workload endpoints, persisted one file each under the agent's state directory
//! (written atomically), so a restarted agent knows its workloads before it asks anyone.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One attachment of a container to a network.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// The host end of the veth.
    pub host_if: String,
    pub ips: Vec<IpNet>,
    #[serde(default)]
    pub mac: Option<String>,
    pub handle: String,
}

impl Endpoint {
    /// The CNI state key (network, container, interface) as a file name.
    pub fn key(network: &str, container_id: &str, ifname: &str) -> String {
        format!("{network}-{container_id}-{ifname}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
            .collect()
    }

    pub fn own_key(&self) -> String {
        Endpoint::key(&self.network, &self.container_id, &self.ifname)
    }
}

/// The endpoints on disk and in memory.
#[derive(Debug)]
pub struct Endpoints {
    dir: PathBuf,
    map: BTreeMap<String, Endpoint>,
}

impl Endpoints {
    /// Loads every endpoint file in `dir` (created if missing). An unreadable file is reported
    /// and skipped, never deleted.
    pub fn open(dir: &Path) -> io::Result<Endpoints> {
        fs::create_dir_all(dir)?;
        let mut map = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match fs::read(&path).map(|b| serde_json::from_slice::<Endpoint>(&b)) {
                Ok(Ok(ep)) => {
                    map.insert(ep.own_key(), ep);
                }
                Ok(Err(e)) => tracing::warn!("skipping {}: {e}", path.display()),
                Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
            }
        }
        Ok(Endpoints { dir: dir.to_path_buf(), map })
    }

    pub fn get(&self, key: &str) -> Option<&Endpoint> {
        self.map.get(key)
    }

    pub fn all(&self) -> impl Iterator<Item = &Endpoint> {
        self.map.values()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Writes one endpoint durably (temporary file, fsync, rename).
    pub fn put(&mut self, ep: Endpoint) -> io::Result<()> {
        let key = ep.own_key();
        let path = self.dir.join(format!("{key}.json"));
        let tmp = self.dir.join(format!(".{key}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&ep).map_err(io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        self.map.insert(key, ep);
        Ok(())
    }

    /// Forgets one endpoint; absent is fine.
    pub fn remove(&mut self, key: &str) -> io::Result<Option<Endpoint>> {
        match fs::remove_file(self.dir.join(format!("{key}.json"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(self.map.remove(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_survive_a_reopen_and_removal_is_idempotent() {
        let dir = std::env::temp_dir().join(format!("tartan-ep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut eps = Endpoints::open(&dir).expect("open");
        let ep = Endpoint {
            network: "net".into(),
            container_id: "c/1".into(),
            ifname: "eth0".into(),
            netns: Some("/run/netns/c1".into()),
            host_if: "tart0123456789a".into(),
            ips: vec!["10.65.0.1/32".parse().expect("net")],
            mac: None,
            handle: "net.c/1".into(),
        };
        let key = ep.own_key();
        assert_eq!(key, "net-c_1-eth0");
        eps.put(ep.clone()).expect("put");
        fs::write(dir.join("junk.json"), b"{").expect("junk");
        let again = Endpoints::open(&dir).expect("reopen");
        assert_eq!(again.get(&key), Some(&ep));
        let mut again = again;
        assert!(again.remove(&key).expect("remove").is_some());
        assert!(again.remove(&key).expect("remove twice").is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
