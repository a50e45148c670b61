//! A `tartan apiserver` process for benchmarks and tests: started on a free loopback port with
//! its own data directory, ready once it answers `/healthz`, killed (SIGKILL) when dropped —
//! also when the test that made it panics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tartan_ipam::client::Client;

use crate::error::LabError;

/// The `tartan` binary: `TARTAN_BIN`, else beside the running binary (`target/<profile>/tartan`
/// for `tartanlab` or for a test in `target/<profile>/deps/`).
pub fn tartan_binary() -> Result<PathBuf, LabError> {
    if let Some(p) = std::env::var_os("TARTAN_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(LabError::io("finding the running binary"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("tartan");
    if !bin.exists() {
        return Err(LabError::Usage {
            message: format!(
                "{} is not built: run `cargo build -p tartan-cli` (or set TARTAN_BIN)",
                bin.display()
            ),
        });
    }
    Ok(bin)
}

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub url: String,
    pub token: String,
    log: PathBuf,
}

fn free_port(host: &str) -> Result<u16, LabError> {
    let l = TcpListener::bind((host, 0)).map_err(LabError::io("finding a free port"))?;
    Ok(l.local_addr().map_err(LabError::io("finding a free port"))?.port())
}

impl ApiServer {
    /// Starts a server on `data_dir` (kept as is: a restart on the same directory is how
    /// crash tests recover) and waits until it answers.
    pub fn start(tartan: &Path, data_dir: &Path) -> Result<ApiServer, LabError> {
        ApiServer::start_with(tartan, data_dir, "127.0.0.1", &[])
    }

    /// A server on etcd (`endpoints`, under `prefix`) sharing `token_file` with its peers.
    pub fn start_on_etcd(
        tartan: &Path,
        data_dir: &Path,
        host: &str,
        endpoints: &[String],
        prefix: &str,
        token_file: &Path,
    ) -> Result<ApiServer, LabError> {
        let args = [
            "--datastore".to_string(),
            "etcd".into(),
            "--etcd-endpoints".into(),
            endpoints.join(","),
            "--etcd-prefix".into(),
            prefix.into(),
            "--token-file".into(),
            token_file.display().to_string(),
        ];
        ApiServer::start_with(tartan, data_dir, host, &args)
    }

    /// Starts `tartan apiserver` listening on `host` (in the network namespace of the calling
    /// thread) with extra arguments.
    pub fn start_with(
        tartan: &Path,
        data_dir: &Path,
        host: &str,
        extra: &[String],
    ) -> Result<ApiServer, LabError> {
        std::fs::create_dir_all(data_dir).map_err(LabError::io("creating the data directory"))?;
        let port = free_port(host)?;
        let token_file = extra
            .iter()
            .position(|a| a == "--token-file")
            .and_then(|i| extra.get(i + 1))
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("token"));
        let log = data_dir.with_extension("log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(LabError::io("opening the server log"))?;
        let err = out.try_clone().map_err(LabError::io("opening the server log"))?;
        let child = Command::new(tartan)
            .args(["apiserver", "--log-level", "warn", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", &format!("{host}:{port}")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(LabError::io("starting tartan apiserver"))?;
        let mut server = ApiServer {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            url: format!("http://{host}:{port}"),
            token: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(c) = server.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let tail = std::fs::read_to_string(&server.log).unwrap_or_default();
                    return Err(LabError::Usage {
                        message: format!("tartan apiserver exited ({status}):\n{tail}"),
                    });
                }
            }
            let token = std::fs::read_to_string(&token_file).unwrap_or_default();
            if !token.trim().is_empty() && std::net::TcpStream::connect((host, port)).is_ok() {
                server.token = token.trim().to_string();
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout {
                    what: "tartan apiserver to answer".into(),
                    secs: 20,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client with the server's token.
    pub fn client(&self) -> Result<Client, LabError> {
        Client::new(&self.url, Some(self.token.clone()))
            .map_err(|e| LabError::Usage { message: e.to_string() })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, no chance to flush: what a crash looks like.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's resident memory (kB) from /proc, while it runs.
    pub fn rss_kb(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.kill();
    }
}
