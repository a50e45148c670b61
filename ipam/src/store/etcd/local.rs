//! Real etcd members on loopback, for tests, benches and labs: started from the `etcd` binary
//! (Debian's `etcd-server`), killed by PID when dropped — and, should the process that started
//! them die without dropping them (a test killed by its timeout), by a watchdog that follows it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    /// The address it listens on (clients and peers).
    pub host: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub dir: PathBuf,
    cluster: String,
    child: Option<Child>,
}

/// A cluster of members on 127.0.0.1; the directory is removed on drop.
#[derive(Debug)]
pub struct LocalCluster {
    pub members: Vec<Member>,
    dir: PathBuf,
}

fn free_port(host: &str) -> std::io::Result<u16> {
    Ok(TcpListener::bind((host, 0))?.local_addr()?.port())
}

/// Whether the `etcd` binary can be run (tests say what to install when not).
pub fn available() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Once the process `parent` is gone, runs `then` (a shell loop, so no thread of ours is
/// needed, and it works however the parent ended).
fn after_exit(parent: u32, then: &str) {
    let script = format!("while kill -0 {parent} 2>/dev/null; do sleep 1; done; {then}; true");
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

impl Member {
    pub fn client_url(&self) -> String {
        format!("http://{}:{}", self.host, self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts (or starts again, on the same data) the member.
    pub fn start(&mut self, state: &str) -> std::io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))?;
        let peer = format!("http://{}:{}", self.host, self.peer_port);
        let child = Command::new("etcd")
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--listen-client-urls", &self.client_url()])
            .args(["--advertise-client-urls", &self.client_url()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", "tartan-local"])
            .arg("--pre-vote=true")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        after_exit(std::process::id(), &format!("kill -9 {} 2>/dev/null", child.id()));
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the member answers `/health` with a leader.
    pub fn healthy(&self) -> bool {
        let Ok(addr) = format!("{}:{}", self.host, self.client_port).parse() else {
            return false;
        };
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\nHost: etcd\r\n\r\n").is_err() {
            return false;
        }
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.contains("\"health\":\"true\"")
    }
}

impl Member {
    /// One small blocking POST to the member (HTTP/1.0, body read to the end).
    pub fn post(&self, path: &str, body: &str) -> Option<String> {
        let addr = format!("{}:{}", self.host, self.client_port).parse().ok()?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let req = format!(
            "POST {path} HTTP/1.0\r\nHost: etcd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

impl LocalCluster {
    /// Starts `n` members on 127.0.0.1 in a new directory `dir` and waits until all are
    /// healthy.
    pub fn start(dir: &Path, n: usize) -> std::io::Result<LocalCluster> {
        LocalCluster::start_on(dir, &vec!["127.0.0.1".to_string(); n])
    }

    /// Starts one member on each address of `hosts` (in the network namespace of the calling
    /// thread: the processes inherit it) and waits until all are healthy.
    pub fn start_on(dir: &Path, hosts: &[String]) -> std::io::Result<LocalCluster> {
        // The ports are free when chosen but may be taken before etcd binds them (other test
        // processes pick ports too): a cluster that does not come up is started again afresh.
        let mut last = None;
        for _ in 0..3 {
            match LocalCluster::start_once(dir, hosts) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("etcd did not start")))
    }

    fn start_once(dir: &Path, hosts: &[String]) -> std::io::Result<LocalCluster> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut members = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            members.push((format!("m{i}"), host.clone(), free_port(host)?, free_port(host)?));
        }
        let cluster = members
            .iter()
            .map(|(name, host, _, peer)| format!("{name}=http://{host}:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut out = LocalCluster { members: Vec::new(), dir: dir.to_path_buf() };
        for (name, host, client_port, peer_port) in members {
            let mut m = Member {
                dir: dir.join(&name),
                name,
                host,
                client_port,
                peer_port,
                cluster: cluster.clone(),
                child: None,
            };
            m.start("new")?;
            out.members.push(m);
        }
        // A cluster kept for the life of a test process (a static) is never dropped: its
        // directory goes once the process is gone and the members with it.
        let quoted = dir.display().to_string().replace('\'', "'\\''");
        after_exit(std::process::id(), &format!("sleep 2; rm -rf '{quoted}'"));
        out.wait_healthy(Duration::from_secs(30))?;
        Ok(out)
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// The member that leads, by asking each running one (`/v3/maintenance/status`).
    pub fn leader(&self) -> Option<usize> {
        for m in self.members.iter().filter(|m| m.is_running()) {
            let Some(status) = m.post("/v3/maintenance/status", "{}") else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&status) else { continue };
            let leader = v["leader"].as_str().unwrap_or_default();
            if leader.is_empty() || leader == "0" {
                continue;
            }
            for (i, other) in self.members.iter().enumerate().filter(|(_, m)| m.is_running()) {
                let Some(s) = other.post("/v3/maintenance/status", "{}") else { continue };
                let Ok(o) = serde_json::from_str::<serde_json::Value>(&s) else { continue };
                if o["header"]["member_id"].as_str() == Some(leader) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Waits until every running member is healthy.
    pub fn wait_healthy(&self, within: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.members.iter().filter(|m| m.is_running()).all(Member::healthy) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(m.dir.with_extension("log")).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                format!("{}: {}", m.name, tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
            })
            .collect();
        Err(std::io::Error::other(format!(
            "etcd did not become healthy within {within:?}: {}",
            logs.join("; ")
        )))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
