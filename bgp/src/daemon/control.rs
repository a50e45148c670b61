//! The daemon's control socket: a Unix socket where `tartan bgp status` and `tartan bgp rib`
//! send one JSON request line and read one JSON answer. Only root (the socket is 0600) can ask.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tracing::warn;

use crate::io::{Speaker, SpeakerStatus};
use crate::rib::RouteView;
use crate::types::{Family, Prefix};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    Status,
    Rib { family: Family, within: Option<Prefix> },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Response {
    Status(serde_json::Value),
    Rib(Vec<RouteJson>),
    Error(String),
}

/// A route as the control socket and `tartan bgp rib --json` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteJson {
    pub prefix: String,
    pub paths: Vec<PathJson>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathJson {
    /// The neighbor it came from; absent for a route this speaker originates.
    pub from: Option<String>,
    pub best: bool,
    pub multipath: bool,
    pub stale: bool,
    pub path_id: u32,
    pub next_hop: Option<String>,
    pub as_path: String,
    pub origin: Option<String>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub ext_communities: Vec<String>,
    pub originator_id: Option<String>,
    pub cluster_list: Vec<String>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<String>,
    /// Type codes of attributes Tartan passes on without knowing them.
    pub unknown_attributes: Vec<u8>,
}

impl RouteJson {
    pub fn of(r: &RouteView) -> RouteJson {
        RouteJson {
            prefix: r.prefix.to_string(),
            paths: r
                .paths
                .iter()
                .map(|p| {
                    let a = &p.attrs.attrs;
                    PathJson {
                        from: p.from.map(|a| a.to_string()),
                        best: p.best,
                        multipath: p.multipath,
                        stale: p.stale,
                        path_id: p.path_id,
                        next_hop: p.attrs.next_hop.map(|n| n.to_string()),
                        as_path: a.as_path.as_ref().map(|x| x.to_string()).unwrap_or_default(),
                        origin: a.origin.map(|o| format!("{o:?}").to_lowercase()),
                        med: a.med,
                        local_pref: a.local_pref,
                        communities: a.communities.iter().map(ToString::to_string).collect(),
                        large_communities: a
                            .large_communities
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                        ext_communities: a
                            .ext_communities
                            .iter()
                            .map(|e| e.0.iter().map(|b| format!("{b:02x}")).collect::<String>())
                            .collect(),
                        originator_id: a.originator_id.map(|x| x.to_string()),
                        cluster_list: a.cluster_list.iter().map(ToString::to_string).collect(),
                        atomic_aggregate: a.atomic_aggregate,
                        aggregator: a.aggregator.map(|g| format!("{} {}", g.asn, g.addr)),
                        unknown_attributes: a.unknown.iter().map(|u| u.type_code).collect(),
                    }
                })
                .collect(),
        }
    }
}

/// The longest request line read.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `tartan bgp status` and `rib` wait for the answer (a large RIB takes a while).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Binds the socket. A socket file left by a daemon that did not clean up is replaced; a live
/// one (another daemon answers on it) or anything that is not a socket is refused.
fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a socket: choose another `control-socket`",
                path.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::other(format!(
                "another speaker answers on {}: give this one its own `control-socket`",
                path.display()
            )));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the control socket until the task is dropped.
pub async fn serve(path: PathBuf, speaker: Speaker) -> std::io::Result<()> {
    let listener = bind(&path)?;
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, say: the speaker goes on; so does the socket, later.
                warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let speaker = speaker.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut line = String::new();
            // One request line, of bounded length, within a few seconds.
            let mut rd = tokio::io::BufReader::new(rd.take(MAX_REQUEST));
            match tokio::time::timeout(REQUEST_TIMEOUT, rd.read_line(&mut line)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let response = match serde_json::from_str::<Request>(&line) {
                Ok(req) => answer(&speaker, req).await,
                Err(e) => Response::Error(format!("bad request: {e}")),
            };
            let mut out = serde_json::to_vec(&response).unwrap_or_default();
            out.push(b'\n');
            if let Err(e) = wr.write_all(&out).await {
                warn!(error = %e, "control client went away");
            }
        });
    }
}

async fn answer(speaker: &Speaker, req: Request) -> Response {
    match req {
        Request::Status => match speaker.status().await {
            Ok(s) => Response::Status(serde_json::to_value(s).unwrap_or_default()),
            Err(e) => Response::Error(e.to_string()),
        },
        Request::Rib { family, within } => match speaker.routes(family, within).await {
            Ok(routes) => Response::Rib(routes.iter().map(RouteJson::of).collect()),
            Err(e) => Response::Error(e.to_string()),
        },
    }
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the speaker at {path}: {source} (is `tartan bgp -c FILE` running? `--socket` names another socket)"
    )]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("talking to the speaker at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the speaker's answer did not parse: {0}")]
    Parse(String),
    #[error("the speaker says: {0}")]
    Remote(String),
}

/// Sends one request and reads the answer.
pub fn request(path: &Path, req: &Request) -> Result<Response, ClientError> {
    let io = |source| ClientError::Io { path: path.to_path_buf(), source };
    let mut stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|source| ClientError::Connect { path: path.to_path_buf(), source })?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Parse(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    match serde_json::from_str::<Response>(&answer)
        .map_err(|e| ClientError::Parse(e.to_string()))?
    {
        Response::Error(e) => Err(ClientError::Remote(e)),
        r => Ok(r),
    }
}

/// The speaker's status, through the socket.
pub fn status(path: &Path) -> Result<SpeakerStatus, ClientError> {
    match request(path, &Request::Status)? {
        Response::Status(v) => {
            serde_json::from_value(v).map_err(|e| ClientError::Parse(e.to_string()))
        }
        _ => Err(ClientError::Parse("expected a status".into())),
    }
}

/// The routes of a family, through the socket.
pub fn rib(
    path: &Path,
    family: Family,
    within: Option<Prefix>,
) -> Result<Vec<RouteJson>, ClientError> {
    match request(path, &Request::Rib { family, within })? {
        Response::Rib(r) => Ok(r),
        _ => Err(ClientError::Parse("expected routes".into())),
    }
}
