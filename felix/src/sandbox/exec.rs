//! Running one CNI plugin as libcni's `invoke` package does: find its `type` in CNI_PATH, build
//! its stdin (the plugin object with the list's `name` and `cniVersion` injected, and
//! `prevResult` when there is one), set the `CNI_*` environment over our own, and read the
//! result from stdout. A failure becomes the plugin's CNI error (spec 1.0 §5 "Error"), read
//! from stdout as libcni and the reference plugins do, or its stderr when it printed none.
//!
//! Owns the child process only: it never touches namespaces, the cache or other plugins.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::conf::NetworkConfigList;
use super::error::{CniError, Result, SandboxError};

/// How long one plugin may run before it is killed.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What stays the same for every plugin of one operation on one container.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// `ADD`, `DEL` or `CHECK`.
    pub command: &'static str,
    pub container_id: &'a str,
    /// The namespace path; empty on a DEL whose namespace is gone (spec 1.0 §2: optional).
    pub netns: &'a str,
    pub ifname: &'a str,
    /// `K=V;K=V`, or empty.
    pub args: &'a str,
    /// `args.cni.labels` for every plugin's configuration (none: the key is left out).
    pub labels: &'a [(String, String)],
    pub cni_path: &'a [PathBuf],
    pub timeout: Duration,
}

/// The plugin executable: the first regular file named `plugin` in `cni_path`
/// (libcni's `FindInPath`).
pub fn find_in_path(plugin: &str, cni_path: &[PathBuf]) -> Result<PathBuf> {
    cni_path.iter().map(|dir| dir.join(plugin)).find(|p| p.is_file()).ok_or_else(|| {
        SandboxError::PluginNotFound { plugin: plugin.to_string(), path: join_path(cni_path) }
    })
}

/// `a:b:c`, as CNI_PATH is written.
pub fn join_path(cni_path: &[PathBuf]) -> String {
    let dirs: Vec<_> = cni_path.iter().map(|d| d.to_string_lossy()).collect();
    dirs.join(":")
}

/// Plugin `i`'s stdin: its object with `name` and `cniVersion` from the list,
/// `prevResult` (libcni's `buildOneConfig`), and `labels` as `args.cni.labels` (CNI's
/// conventions: `[{"key": K, "value": V}]`, beside any other `args` the list has).
pub fn plugin_stdin(
    list: &NetworkConfigList,
    i: usize,
    prev: Option<&Value>,
    labels: &[(String, String)],
) -> Vec<u8> {
    let mut conf: Map<String, Value> = list.plugins.get(i).cloned().unwrap_or_default();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    if !labels.is_empty() {
        let list: Vec<Value> =
            labels.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect();
        let args = conf.entry("args").or_insert_with(|| Value::Object(Map::new()));
        if !args.is_object() {
            *args = Value::Object(Map::new());
        }
        if let Some(args) = args.as_object_mut() {
            let cni = args.entry("cni").or_insert_with(|| Value::Object(Map::new()));
            if !cni.is_object() {
                *cni = Value::Object(Map::new());
            }
            if let Some(cni) = cni.as_object_mut() {
                cni.insert("labels".into(), Value::Array(list));
            }
        }
    }
    serde_json::to_vec(&Value::Object(conf)).unwrap_or_default()
}

/// Runs plugin `i` of `list`. ADD returns the result it printed; DEL and CHECK return `Null`
/// (their output carries nothing, spec 1.0 §2).
pub fn run(
    inv: &Invocation<'_>,
    list: &NetworkConfigList,
    i: usize,
    prev: Option<&Value>,
) -> Result<Value> {
    let plugin = list.plugin_type(i);
    let path = find_in_path(plugin, inv.cni_path)?;
    let stdin = plugin_stdin(list, i, prev, inv.labels);
    tracing::debug!(
        plugin, command = inv.command, container = inv.container_id,
        stdin = %String::from_utf8_lossy(&stdin), "running CNI plugin"
    );
    let out = run_with_timeout(inv, &path, stdin)
        .map_err(|source| SandboxError::PluginStart { path: path.clone(), source })?;
    let Some(out) = out else {
        return Err(SandboxError::PluginTimeout {
            plugin: plugin.to_string(),
            command: inv.command,
            secs: inv.timeout.as_secs(),
        });
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        tracing::debug!(plugin, command = inv.command, "plugin stderr: {}", stderr.trim());
    }
    if !out.status.success() {
        return Err(SandboxError::Plugin(plugin_error(plugin, inv.command, &out)));
    }
    tracing::debug!(plugin, command = inv.command, stdout = %String::from_utf8_lossy(&out.stdout));
    if inv.command != "ADD" {
        return Ok(Value::Null);
    }
    let bad = |what: String| SandboxError::BadResult {
        plugin: plugin.to_string(),
        command: inv.command,
        what,
    };
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(v) => Err(bad(format!("expected a JSON object, got {v}"))),
        Err(_) if out.stdout.iter().all(u8::is_ascii_whitespace) => {
            Err(bad("it printed nothing".into()))
        }
        Err(e) => Err(bad(format!("{e} in {:?}", String::from_utf8_lossy(&out.stdout)))),
    }
}

#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// The CNI error a failed plugin printed, or what we can say without one (libcni's `pluginErr`).
fn plugin_error(plugin: &str, command: &'static str, out: &Output) -> CniError {
    #[derive(serde::Deserialize)]
    struct Wire {
        code: Option<u32>,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    let (code, msg, details) = match serde_json::from_slice::<Wire>(&out.stdout) {
        Ok(w) if w.code.is_some() || !w.msg.is_empty() => (w.code, w.msg, w.details),
        _ if out.stdout.iter().all(u8::is_ascii_whitespace) => {
            (None, format!("{}, no CNI error on stdout", out.status), text(&out.stderr))
        }
        _ => (None, format!("{}, stdout is not a CNI error", out.status), text(&out.stdout)),
    };
    CniError { plugin: plugin.to_string(), command, code, msg, details }
}

/// Runs the plugin; `None` when it overran the timeout (it is killed).
fn run_with_timeout(
    inv: &Invocation<'_>,
    path: &Path,
    stdin: Vec<u8>,
) -> io::Result<Option<Output>> {
    let mut cmd = Command::new(path);
    cmd.env("CNI_COMMAND", inv.command)
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_ARGS", inv.args)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_PATH", join_path(inv.cni_path))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // libcni retries "text file busy": a plugin binary being replaced as we start it.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            other => break other?,
        }
    };
    // Pipes are drained on threads of their own, so a chatty plugin cannot block on a full pipe
    // and a grandchild that keeps one open cannot hang us past the deadline.
    if let Some(mut pipe) = child.stdin.take() {
        std::thread::spawn(move || pipe.write_all(&stdin));
    }
    let stdout = Drained::start(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = Drained::start(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + inv.timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let grace = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
    Ok(Some(Output { status, stdout: stdout.take(grace), stderr: stderr.take(grace) }))
}

/// The most of a plugin's stdout or stderr kept: a CNI result is a few KiB.
const MAX_OUTPUT: usize = 1 << 20;

/// One pipe of the plugin, read on a thread of its own into a shared buffer as bytes arrive,
/// so what was printed is kept even when a grandchild holds the pipe open past the plugin's
/// exit.
struct Drained {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Drained {
    fn start(pipe: Option<Box<dyn Read + Send>>) -> Drained {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        if let Some(mut pipe) = pipe {
            let buf = buf.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    let mut b = buf.lock().unwrap_or_else(PoisonError::into_inner);
                    let room = MAX_OUTPUT.saturating_sub(b.len());
                    b.extend_from_slice(&chunk[..n.min(room)]);
                }
                let _ = tx.send(());
            });
        }
        Drained { buf, done }
    }

    /// What was read, once the pipe closed or `grace` passed.
    fn take(self, grace: Duration) -> Vec<u8> {
        let _ = self.done.recv_timeout(grace);
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn list() -> NetworkConfigList {
        let bytes =
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","name":"x"}]}"#;
        super::super::conf::from_bytes(bytes.to_vec(), Path::new("t")).expect("list")
    }

    #[test]
    fn stdin_injects_name_version_and_prev_result() {
        let prev = serde_json::json!({"cniVersion":"1.0.0","ips":[]});
        let v: Value =
            serde_json::from_slice(&plugin_stdin(&list(), 0, Some(&prev), &[])).expect("json");
        assert_eq!(v["name"], "n");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["type"], "bridge");
        assert_eq!(v["prevResult"], prev);
        let v: Value = serde_json::from_slice(&plugin_stdin(&list(), 0, None, &[])).expect("json");
        assert!(v.get("prevResult").is_none() && v.get("args").is_none());
    }

    #[test]
    fn labels_go_in_args_cni_labels_beside_other_args() {
        let bytes = br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"tartan","args":{"other":1,"cni":{"ips":["10.0.0.1"]}}}]}"#;
        let list = super::super::conf::from_bytes(bytes.to_vec(), Path::new("t")).expect("list");
        let labels = [("app".to_string(), "web".to_string()), ("tier".into(), "".into())];
        let v: Value =
            serde_json::from_slice(&plugin_stdin(&list, 0, None, &labels)).expect("json");
        assert_eq!(v["args"]["other"], 1);
        assert_eq!(v["args"]["cni"]["ips"][0], "10.0.0.1");
        assert_eq!(
            v["args"]["cni"]["labels"],
            serde_json::json!([{"key": "app", "value": "web"}, {"key": "tier", "value": ""}])
        );
    }

    #[test]
    fn cni_error_json_on_stdout_is_parsed() {
        let out = Output {
            status: ExitStatus::from_raw(1 << 8),
            stdout: br#"{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no subnet"}"#
                .to_vec(),
            stderr: b"noise".to_vec(),
        };
        let e = plugin_error("bridge", "ADD", &out);
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (Some(7), "bad config", "no subnet")
        );
        assert_eq!(e.to_string(), "plugin bridge failed on ADD (code 7: bad config): no subnet");
    }

    #[test]
    fn without_a_cni_error_stderr_is_reported() {
        let out = Output {
            status: ExitStatus::from_raw(2 << 8),
            stdout: vec![],
            stderr: b"panic: x\n".to_vec(),
        };
        let e = plugin_error("p", "DEL", &out);
        assert_eq!(e.code, None);
        assert_eq!(e.details, "panic: x");
        assert!(e.to_string().starts_with("plugin p failed on DEL (exit status: 2"), "{e}");
    }

    #[test]
    fn missing_plugin_names_the_search_path() {
        let e = find_in_path("tartan", &["/nonexistent/a".into(), "/nonexistent/b".into()]);
        let e = e.expect_err("missing").to_string();
        assert_eq!(
            e,
            "CNI plugin `tartan` not found in /nonexistent/a:/nonexistent/b: set CNI_PATH or --cni-path"
        );
    }
}
