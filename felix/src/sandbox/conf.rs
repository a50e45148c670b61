//! Loading a network configuration as libcni's `LoadConfList` does: the `*.conflist` files of a
//! directory in name order, the first whose `name` matches (or simply the first when no name is
//! asked for); failing that the single-plugin `*.conf`/`*.json` files, upconverted to a list.
//!
//! Owns parsing and validation of the list-level keys only (`cniVersion`, `name`,
//! `disableCheck`, `plugins[].type`); every plugin object is kept as raw JSON and passed on
//! unaltered (CNI spec 1.0 §1: plugin keys are the plugin's business). Never runs anything.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{Result, SandboxError};

/// The default configuration directory (libcni, cnitool's `NETCONFPATH`).
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// One network: a list of plugins run in order (reverse order on DEL).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    pub cni_version: String,
    /// Skip CHECK for this network (CNI spec 1.0 §1; a string "true"/"false" in 0.4.0).
    pub disable_check: bool,
    /// The plugin objects as written, each with a string `type`.
    pub plugins: Vec<Map<String, Value>>,
    /// The list's JSON as loaded (or as built by upconversion): what the result cache stores.
    pub bytes: Vec<u8>,
    /// Where it came from, for messages.
    pub file: PathBuf,
}

impl NetworkConfigList {
    /// The `type` of the plugin at `i` (validated on load).
    pub fn plugin_type(&self, i: usize) -> &str {
        self.plugins.get(i).and_then(|p| p.get("type")).and_then(Value::as_str).unwrap_or("")
    }
}

/// Loads the network `name` (or the first network) from `dir`.
pub fn load(dir: &Path, name: Option<&str>) -> Result<NetworkConfigList> {
    let lists = files(dir, &["conflist"])?;
    let mut found = Vec::new();
    for file in &lists {
        let list = from_file(file, parse_list)?;
        if name.is_none_or(|n| n == list.name) {
            return Ok(list);
        }
        found.push(list.name);
    }
    let singles = files(dir, &["conf", "json"])?;
    for file in &singles {
        let list = from_file(file, parse_single)?;
        if name.is_none_or(|n| n == list.name) {
            return Ok(list);
        }
        found.push(list.name);
    }
    match name {
        Some(name) if !found.is_empty() => Err(SandboxError::NetworkNotFound {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            found,
        }),
        _ => Err(SandboxError::NoConfig { dir: dir.to_path_buf() }),
    }
}

/// Parses a conflist (as stored in the result cache); `file` only names it in messages.
pub fn from_bytes(bytes: Vec<u8>, file: &Path) -> Result<NetworkConfigList> {
    parse_list(bytes, file)
}

/// The regular files directly in `dir` with one of `exts`, sorted by name. A missing directory
/// has none (libcni's `ConfFiles`).
fn files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SandboxError::io(format!("reading {}", dir.display()))(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(SandboxError::io(format!("reading {}", dir.display())))?;
        let path = entry.path();
        let ext_ok = path.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e));
        if ext_ok && !path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn from_file(
    file: &Path,
    parse: fn(Vec<u8>, &Path) -> Result<NetworkConfigList>,
) -> Result<NetworkConfigList> {
    let bytes = fs::read(file).map_err(SandboxError::io(format!("reading {}", file.display())))?;
    parse(bytes, file)
}

fn bad(file: &Path, what: impl Into<String>) -> SandboxError {
    SandboxError::BadConfig { file: file.to_path_buf(), what: what.into() }
}

fn object(bytes: &[u8], file: &Path) -> Result<Map<String, Value>> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad(file, "not a JSON object")),
        Err(e) => Err(bad(file, format!("not valid JSON: {e}"))),
    }
}

fn string_key(m: &Map<String, Value>, key: &str, file: &Path) -> Result<String> {
    match m.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None => Err(bad(file, format!("no `{key}`"))),
        Some(v) => Err(bad(file, format!("`{key}` must be a string, not {v}"))),
    }
}

/// `name` and `cniVersion`, both validated (the name ends up in cache file names).
fn name_and_version(m: &Map<String, Value>, file: &Path) -> Result<(String, String)> {
    let name = string_key(m, "name", file)?;
    if let Some(reason) = super::validate::id_problem(&name) {
        return Err(bad(file, format!("network name {name:?} {reason}")));
    }
    let version = string_key(m, "cniVersion", file)?;
    if super::validate::parse_version(&version).is_none() {
        return Err(bad(file, format!("cniVersion {version:?} is not a version like 1.0.0")));
    }
    Ok((name, version))
}

fn parse_list(bytes: Vec<u8>, file: &Path) -> Result<NetworkConfigList> {
    let m = object(&bytes, file)?;
    let (name, cni_version) = name_and_version(&m, file)?;
    // Go's strconv.ParseBool, as libcni reads the 0.4.0 string form.
    let disable_check = match m.get("disableCheck") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            _ => return Err(bad(file, format!("disableCheck {s:?} is not true or false"))),
        },
        Some(v) => return Err(bad(file, format!("disableCheck must be true or false, not {v}"))),
    };
    let Some(Value::Array(raw)) = m.get("plugins") else {
        return Err(bad(file, "no `plugins` list"));
    };
    if raw.is_empty() {
        return Err(bad(file, "`plugins` is empty"));
    }
    let mut plugins = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let Value::Object(p) = p else {
            return Err(bad(file, format!("plugins[{i}] is not a JSON object")));
        };
        check_type(p, file, &format!("plugins[{i}]"))?;
        plugins.push(p.clone());
    }
    Ok(NetworkConfigList { name, cni_version, disable_check, plugins, bytes, file: file.into() })
}

/// A plugin's `type` names an executable in CNI_PATH, so it must be a plain file name.
fn check_type(p: &Map<String, Value>, file: &Path, at: &str) -> Result<()> {
    match p.get("type") {
        Some(Value::String(t)) if !t.is_empty() && !t.contains('/') && t != "." && t != ".." => {
            Ok(())
        }
        Some(Value::String(t)) if !t.is_empty() => {
            Err(bad(file, format!("{at}: type {t:?} must be a plain file name")))
        }
        _ => Err(bad(file, format!("{at} has no `type`"))),
    }
}

/// A single-plugin config, upconverted to a list as libcni's `ConfListFromConf` does.
fn parse_single(bytes: Vec<u8>, file: &Path) -> Result<NetworkConfigList> {
    let m = object(&bytes, file)?;
    let (name, cni_version) = name_and_version(&m, file)?;
    check_type(&m, file, "the plugin")?;
    let list = serde_json::json!({ "cniVersion": cni_version, "name": name, "plugins": [m] });
    let bytes = serde_json::to_vec(&list).map_err(|e| bad(file, e.to_string()))?;
    parse_list(bytes, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    fn dir(files: &[(&str, &str)]) -> Dir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("tt-conf-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        for (name, text) in files {
            fs::write(d.join(name), text).expect("write");
        }
        Dir(d)
    }
    const A: &str = r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}"#;
    const B: &str = r#"{"cniVersion":"0.4.0","name":"b","disableCheck":"true",
        "plugins":[{"type":"ptp","mtu":1400},{"type":"portmap"}]}"#;

    #[test]
    fn first_conflist_by_file_name_without_a_name() {
        let d = dir(&[("20-b.conflist", B), ("10-a.conflist", A), ("05-c.conf", A)]);
        let l = load(&d.0, None).expect("load");
        assert_eq!((l.name.as_str(), l.cni_version.as_str()), ("a", "1.0.0"));
        assert_eq!(l.bytes, A.as_bytes());
    }

    #[test]
    fn named_conflist_keeps_plugin_objects_and_reads_string_disable_check() {
        let d = dir(&[("20-b.conflist", B), ("10-a.conflist", A)]);
        let l = load(&d.0, Some("b")).expect("load");
        assert!(l.disable_check);
        assert_eq!(l.plugins.len(), 2);
        assert_eq!(l.plugin_type(0), "ptp");
        assert_eq!(l.plugins[0].get("mtu"), Some(&Value::from(1400)));
    }

    #[test]
    fn single_conf_is_upconverted_to_a_list() {
        let d = dir(&[("10-x.conf", r#"{"cniVersion":"0.3.1","name":"x","type":"bridge"}"#)]);
        let l = load(&d.0, Some("x")).expect("load");
        assert_eq!(l.plugin_type(0), "bridge");
        let v: Value = serde_json::from_slice(&l.bytes).expect("json");
        assert_eq!(v["plugins"][0]["type"], "bridge");
        assert_eq!(v["name"], "x");
    }

    #[test]
    fn empty_or_missing_dir_says_how_to_fix_it() {
        let d = dir(&[("README", "hi")]);
        let e = load(&d.0, None).expect_err("empty");
        assert!(e.to_string().contains("install one (tartan node writes 10-tartan.conflist)"));
        let e = load(&d.0.join("nope"), Some("a")).expect_err("missing");
        assert!(matches!(e, SandboxError::NoConfig { .. }));
    }

    #[test]
    fn unknown_name_lists_the_networks_found() {
        let d = dir(&[("10-a.conflist", A), ("20-b.conflist", B)]);
        let e = load(&d.0, Some("zz")).expect_err("unknown").to_string();
        assert!(e.contains("no network named `zz`") && e.contains("found: a, b"), "{e}");
    }

    #[test]
    fn broken_files_are_named_with_the_problem() {
        for (text, want) in [
            ("{", "not valid JSON"),
            (r#"{"name":"a","plugins":[{"type":"x"}]}"#, "no `cniVersion`"),
            (r#"{"cniVersion":"1.0.0","name":"a","plugins":[]}"#, "`plugins` is empty"),
            (r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"ipam":{}}]}"#, "plugins[0] has no"),
            (r#"{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"x"}]}"#, "network name"),
            (r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"../x"}]}"#, "plain file"),
        ] {
            let d = dir(&[("10-a.conflist", text)]);
            let e = load(&d.0, None).expect_err(text).to_string();
            assert!(e.contains("10-a.conflist") && e.contains(want), "{text}: {e}");
        }
    }
}
