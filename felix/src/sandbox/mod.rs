//! `tartan sandbox`: a minimal container runtime that drives CNI plugins exactly as libcni and
//! cnitool do, for debugging and labs. A sandbox is a named network namespace,
//! `/run/netns/<NAME>`, and NAME is also its CNI container ID.
//!
//! - ADD creates the namespace (an existing one is an error), brings `lo` up, runs every
//!   plugin's ADD in order with the previous result as `prevResult`, and caches the final
//!   result. On failure it runs DEL on the plugins it ran, in reverse (what containerd does
//!   with a failed ADD), deletes the namespace, and reports the first error.
//! - DEL runs every plugin's DEL in reverse with the cached result as `prevResult` (none for
//!   configs older than 0.4.0, as libcni), using the cached conflist (exactly what was set
//!   up; the current one when nothing is cached), then removes the cache entry and the
//!   namespace. It is idempotent: nothing to delete is success.
//! - A namespace is a sandbox only if a cache entry names it. Any other (someone's
//!   `ip netns add`, a lab's) is never handed to a plugin nor deleted: a bridge plugin's DEL
//!   would delete its `eth0`.
//! - CHECK runs every plugin's CHECK with the cached result, unless the list says
//!   `disableCheck`; it needs cniVersion 0.4.0 or newer.
//!
//! Files: `conf` loads the network list, `exec` runs one plugin, `cache` owns the result
//! cache, `enter` runs a program inside a sandbox, `validate` checks names and arguments,
//! `error` has the error type. Results are passed between plugins as they were printed: no
//! version conversion.
//!
//! Never touches interfaces of the calling namespace itself: the plugins do that.

pub mod cache;
pub mod conf;
mod enter;
pub mod error;
pub mod exec;
mod validate;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use enter::exec;
pub use error::{CniError, Result, SandboxError};
pub use validate::{MAX_NAME_LEN, parse_args};

use cache::CacheEntry;
use conf::NetworkConfigList;
use exec::Invocation;
use validate::{id_problem, ifname_problem, parse_version};

/// What every sandbox operation needs to know; [`Default`] is libcni's and cnitool's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOptions {
    /// Where network configurations are (`NETCONFPATH`).
    pub conf_dir: PathBuf,
    /// Where plugins are looked up, in order (`CNI_PATH`).
    pub cni_path: Vec<PathBuf>,
    /// The result cache's root (`<cache_dir>/results/...`).
    pub cache_dir: PathBuf,
    /// The network to use; the first in `conf_dir` when `None`.
    pub network: Option<String>,
    /// The interface name inside the sandbox (`CNI_IFNAME`).
    pub ifname: String,
    /// `K=V;K=V` for `CNI_ARGS`.
    pub args: Option<String>,
    /// Labels for the workload, passed to the plugins as `args.cni.labels` (CNI's
    /// conventions), on ADD.
    pub labels: Vec<(String, String)>,
}

impl Default for SandboxOptions {
    fn default() -> SandboxOptions {
        SandboxOptions {
            conf_dir: conf::DEFAULT_CONF_DIR.into(),
            cni_path: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            cache_dir: cache::DEFAULT_CACHE_DIR.into(),
            network: None,
            ifname: "eth0".into(),
            args: None,
            labels: Vec::new(),
        }
    }
}

/// A sandbox, as its result cache entry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub name: String,
    pub network: String,
    pub ifname: String,
    pub netns: PathBuf,
    /// False when the namespace was removed behind our back (`del` still cleans up).
    pub netns_exists: bool,
    /// `ips[].address` of the cached result, CIDR notation.
    pub ips: Vec<String>,
}

fn at_least_0_4(list: &NetworkConfigList) -> bool {
    parse_version(&list.cni_version).is_some_and(|v| v >= (0, 4, 0))
}

/// The validated per-container part of every operation.
struct Target {
    name: String,
    netns: PathBuf,
    args: Vec<[String; 2]>,
    args_env: String,
}

fn target(name: &str, opts: &SandboxOptions) -> Result<Target> {
    if let Some(reason) = id_problem(name) {
        return Err(SandboxError::InvalidName { name: name.to_string(), reason });
    }
    if let Some(reason) = ifname_problem(&opts.ifname) {
        return Err(SandboxError::InvalidIfname { name: opts.ifname.clone(), reason });
    }
    let args = parse_args(opts.args.as_deref().unwrap_or(""))?;
    let args_env = args.iter().map(|[k, v]| format!("{k}={v}")).collect::<Vec<_>>().join(";");
    Ok(Target { name: name.to_string(), netns: crate::netns::path(name), args, args_env })
}

impl Target {
    fn invocation<'a>(
        &'a self,
        command: &'static str,
        netns: &'a str,
        opts: &'a SandboxOptions,
    ) -> Invocation<'a> {
        Invocation {
            command,
            container_id: &self.name,
            netns,
            ifname: &opts.ifname,
            args: &self.args_env,
            labels: if command == "ADD" { &opts.labels } else { &[] },
            cni_path: &opts.cni_path,
            timeout: exec::PLUGIN_TIMEOUT,
        }
    }

    /// The error for a namespace of this name that no cache entry names.
    fn foreign(&self, opts: &SandboxOptions) -> SandboxError {
        SandboxError::Foreign { name: self.name.clone(), dir: opts.cache_dir.join("results") }
    }

    /// This sandbox's cache entries for `opts.ifname` (and `opts.network` if given), or an
    /// error naming the attachment it has instead, if any.
    fn cached(&self, opts: &SandboxOptions) -> Result<Vec<(PathBuf, CacheEntry)>> {
        // libcni names a result `<network>-<containerID>-<ifname>`: only files naming this
        // container are read (the entry itself is checked below).
        let named = format!("-{}-", self.name);
        let (found, others): (Vec<_>, Vec<_>) =
            cache::entries_where(&opts.cache_dir, |file| file.contains(&named))?
                .into_iter()
                .filter(|(_, e)| e.container_id == self.name)
                .partition(|(_, e)| {
                    e.if_name == opts.ifname
                        && opts.network.as_ref().is_none_or(|n| *n == e.network_name)
                });
        match others.into_iter().next() {
            Some((_, other)) if found.is_empty() => Err(SandboxError::OtherAttachment {
                name: self.name.clone(),
                ifname: other.if_name,
                network: other.network_name,
            }),
            _ => Ok(found),
        }
    }
}

/// Creates sandbox `name` and attaches it to the network; the final CNI result.
pub fn add(name: &str, opts: &SandboxOptions) -> Result<Value> {
    let t = target(name, opts)?;
    let list = conf::load(&opts.conf_dir, opts.network.as_deref())?;
    let exists = || SandboxError::Exists { name: t.name.clone() };
    match t.cached(opts) {
        Ok(c) if !c.is_empty() => return Err(exists()),
        Err(SandboxError::OtherAttachment { .. }) => return Err(exists()),
        Err(e) => return Err(e),
        Ok(_) if t.netns.exists() => return Err(t.foreign(opts)),
        Ok(_) => {}
    }
    match crate::netns::create(&t.name) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(t.foreign(opts)),
        Err(e) => return Err(SandboxError::io(format!("creating sandbox {name}"))(e)),
        Ok(_) => {}
    }
    let netns = t.netns.to_string_lossy().into_owned();
    let attached = loopback_up(&t.netns).and_then(|()| add_chain(&t, &list, &netns, opts));
    let result = attached.and_then(|result| {
        let entry = CacheEntry {
            kind: cache::KIND.into(),
            container_id: t.name.clone(),
            config: list.bytes.clone(),
            if_name: opts.ifname.clone(),
            network_name: list.name.clone(),
            netns: netns.clone(),
            cni_args: t.args.clone(),
            capability_args: Default::default(),
            result: result.clone(),
        };
        match cache::write(&opts.cache_dir, &entry) {
            Ok(_) => Ok(result),
            Err(e) => {
                teardown(&t, &list, &netns, opts, list.plugins.len(), Some(&result));
                Err(e)
            }
        }
    });
    if result.is_err() {
        if let Err(e) = crate::netns::delete(&t.name) {
            tracing::warn!("removing sandbox {name} after a failed ADD: {e}");
        }
    }
    result
}

/// Runs the ADD chain; on a failure, DEL on the plugins run so far.
fn add_chain(
    t: &Target,
    list: &NetworkConfigList,
    netns: &str,
    o: &SandboxOptions,
) -> Result<Value> {
    let inv = t.invocation("ADD", netns, o);
    let mut prev: Option<Value> = None;
    for i in 0..list.plugins.len() {
        match exec::run(&inv, list, i, prev.as_ref()) {
            Ok(result) => prev = Some(result),
            Err(e) => {
                // The failed plugin may have done part of its work; one that never ran has not.
                let ran = !matches!(
                    e,
                    SandboxError::PluginNotFound { .. } | SandboxError::PluginStart { .. }
                );
                teardown(t, list, netns, o, i + usize::from(ran), prev.as_ref());
                return Err(e);
            }
        }
    }
    prev.ok_or_else(|| SandboxError::BadConfig {
        file: list.file.clone(),
        what: "no plugins".into(),
    })
}

/// Best-effort DEL of the first `upto` plugins, in reverse, after a failed ADD.
fn teardown(
    t: &Target,
    list: &NetworkConfigList,
    netns: &str,
    o: &SandboxOptions,
    upto: usize,
    prev: Option<&Value>,
) {
    let inv = t.invocation("DEL", netns, o);
    for i in (0..upto).rev() {
        if let Err(e) = exec::run(&inv, list, i, prev) {
            tracing::warn!("cleaning up after the failed ADD: {e}");
        }
    }
}

/// Brings `lo` up in the namespace at `netns` (runtimes do this; plugins expect it).
fn loopback_up(netns: &Path) -> Result<()> {
    let what = format!("bringing lo up in {}", netns.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(SandboxError::io(what.clone()))?;
    rt.block_on(async {
        let handle = crate::netns::netlink_in(netns)?;
        let lo = rtnetlink::LinkUnspec::new_with_name("lo").up().build();
        handle.link().set(lo).execute().await.map_err(std::io::Error::other)
    })
    .map_err(SandboxError::io(what))
}

/// Detaches sandbox `name` from its network and removes it. Nothing to remove is success.
pub fn del(name: &str, opts: &SandboxOptions) -> Result<()> {
    let t = target(name, opts)?;
    let exists = t.netns.exists();
    // CNI spec 1.0 §2: CNI_NETNS is optional on DEL; plugins clean up what they can without it.
    let netns = if exists { t.netns.to_string_lossy().into_owned() } else { String::new() };
    let inv = t.invocation("DEL", &netns, opts);
    let cached = t.cached(opts)?;
    if cached.is_empty() {
        // A namespace no cache entry names is not ours: its interfaces are left alone.
        if exists {
            return Err(t.foreign(opts));
        }
        // Nothing cached (libcni): DEL with the current configuration, without prevResult,
        // so plugins can release what they hold for this container ID.
        return match conf::load(&opts.conf_dir, opts.network.as_deref()) {
            Ok(list) => del_chain(&inv, &list, None),
            Err(SandboxError::NoConfig { .. } | SandboxError::NetworkNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        };
    }
    for (path, entry) in cached {
        let list = match conf::from_bytes(entry.config.clone(), &path) {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!("{e}; using the current configuration of {}", entry.network_name);
                conf::load(&opts.conf_dir, Some(&entry.network_name))?
            }
        };
        let prev = at_least_0_4(&list).then_some(&entry.result).filter(|r| !r.is_null());
        del_chain(&inv, &list, prev)?;
        cache::remove(&path)?;
    }
    crate::netns::delete(name).map_err(SandboxError::io(format!("removing {}", t.netns.display())))
}

fn del_chain(inv: &Invocation<'_>, list: &NetworkConfigList, prev: Option<&Value>) -> Result<()> {
    for i in (0..list.plugins.len()).rev() {
        exec::run(inv, list, i, prev)?;
    }
    Ok(())
}

/// Asks every plugin whether sandbox `name` is still set up as its cached result says.
pub fn check(name: &str, opts: &SandboxOptions) -> Result<()> {
    let t = target(name, opts)?;
    if !t.netns.exists() {
        return Err(SandboxError::NotFound { name: t.name, netns: t.netns });
    }
    let cached = t.cached(opts)?;
    if cached.is_empty() {
        return Err(SandboxError::NoCachedResult {
            name: t.name,
            dir: opts.cache_dir.join("results"),
        });
    }
    let netns = t.netns.to_string_lossy().into_owned();
    let inv = t.invocation("CHECK", &netns, opts);
    for (path, entry) in &cached {
        // Checked against the configuration as it is now; the cached one if it is gone.
        let list = match conf::load(&opts.conf_dir, Some(&entry.network_name)) {
            Ok(list) => list,
            Err(SandboxError::NoConfig { .. } | SandboxError::NetworkNotFound { .. }) => {
                conf::from_bytes(entry.config.clone(), path)?
            }
            Err(e) => return Err(e),
        };
        if !at_least_0_4(&list) {
            return Err(SandboxError::CheckUnsupported {
                network: list.name,
                version: list.cni_version,
            });
        }
        if list.disable_check {
            continue;
        }
        for i in 0..list.plugins.len() {
            exec::run(&inv, &list, i, Some(&entry.result))?;
        }
    }
    Ok(())
}

/// The sandboxes made by `tartan sandbox add` with this cache directory, by name: cache
/// entries whose namespace is `/run/netns/<container ID>` (other runtimes' are left out).
pub fn list(opts: &SandboxOptions) -> Result<Vec<SandboxInfo>> {
    let mut out: Vec<SandboxInfo> = cache::entries(&opts.cache_dir)?
        .into_iter()
        .filter(|(_, e)| Path::new(&e.netns) == crate::netns::path(&e.container_id))
        .map(|(_, e)| {
            let ips = e.result["ips"].as_array().map(Vec::as_slice).unwrap_or_default();
            SandboxInfo {
                netns_exists: Path::new(&e.netns).exists(),
                netns: e.netns.into(),
                ips: ips.iter().filter_map(|ip| ip["address"].as_str().map(String::from)).collect(),
                name: e.container_id,
                network: e.network_name,
                ifname: e.if_name,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.network).cmp(&(&b.name, &b.network)));
    Ok(out)
}
