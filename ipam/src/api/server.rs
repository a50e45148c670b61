//! `tartan apiserver`: opens the datastore (sled in the data directory, or etcd), makes the
//! token on first start, serves the API, runs leak collection periodically, and flushes on
//! SIGTERM / SIGINT. On etcd any number of these run side by side, stateless.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::listen::{self, Limits};
use super::{AppState, app};
use crate::ipam::Ipam;
use crate::store::Store;
use crate::store::etcd::EtcdConfig;
use crate::tls::ReloadingCert;

/// Where the data lives.
#[derive(Clone, Debug, Default)]
pub enum Datastore {
    /// sled in `<data-dir>/db` (one server).
    #[default]
    Sled,
    /// etcd v3 (several servers).
    Etcd(EtcdConfig),
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub datastore: Datastore,
    /// The bearer token's file (default `<data-dir>/token`); replicas may share one.
    pub token_file: Option<PathBuf>,
    pub listen: SocketAddr,
    /// Time between leak-collection rounds.
    pub gc_interval: Duration,
    /// Resources applied (created or replaced, validated as any write) before the server
    /// starts listening, so clients never see it without them.
    pub seed: Vec<serde_json::Value>,
    /// HTTPS with this certificate and key (reloaded on SIGHUP or when the files change);
    /// `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
}

/// The server's certificate (chain) and key, PEM.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The shortest token accepted (the one made on first start has 64 characters).
pub const MIN_TOKEN_LEN: usize = 32;
/// How often the certificate files are looked at for a change.
const CERT_POLL: Duration = Duration::from_secs(2);

/// Applies one seed resource through the API itself (same validation, same events).
async fn apply_seed(
    router: &axum::Router,
    token: &str,
    doc: &serde_json::Value,
) -> Result<(), String> {
    use tower::ServiceExt;
    let kind = doc["kind"].as_str().unwrap_or_default();
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let Some(k) = crate::resources::Kind::lookup(kind).filter(|k| k.is_stored()) else {
        return Err(format!("--apply: {kind:?} is not a kind that can be written"));
    };
    let req = axum::http::Request::builder()
        .method("PUT")
        .uri(format!("/v1/{}/{name}", k.info().plural))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(doc.to_string()))
        .map_err(|e| e.to_string())?;
    let resp = router.clone().oneshot(req).await.map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        return Ok(());
    }
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Err(format!("--apply: {kind} {name:?}: {status}: {}", String::from_utf8_lossy(&body)))
}

/// The file in the data directory that holds the bearer token.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("token")
}

/// Reads the token in `path`, creating a random one (mode 0600) when the file is missing.
/// Created exclusively: two servers starting at once on a shared file agree on one token.
pub fn load_or_create_token(path: &Path) -> Result<String, String> {
    for _ in 0..50 {
        match std::fs::read_to_string(path) {
            Ok(t) if !t.trim().is_empty() => return check_token(path, t.trim()),
            // Another server is between creating and writing it.
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut bytes))
                    .map_err(|e| format!("cannot read /dev/urandom for a token: {e}"))?;
                let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                let created =
                    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
                let mut file = match created {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        return Err(format!("cannot write the token file {}: {e}", path.display()));
                    }
                };
                file.write_all(format!("{token}\n").as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| format!("cannot write the token file {}: {e}", path.display()))?;
                return Ok(token);
            }
            Err(e) => return Err(format!("cannot read the token file {}: {e}", path.display())),
        }
    }
    Err(format!(
        "the token file {} stays empty: remove it or write a token into it",
        path.display()
    ))
}

/// Refuses a token that can be guessed or read by others.
fn check_token(path: &Path, token: &str) -> Result<String, String> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "the token in {} has {} characters; use at least {MIN_TOKEN_LEN}: remove the file and a \
             random one is made, or write one with `(umask 077; openssl rand -hex 32 > {})`",
            path.display(),
            token.chars().count(),
            path.display()
        ));
    }
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "the token file {} is readable by others (mode {:o}): `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(token.to_string())
}

/// Opens the etcd datastore, waiting for etcd while no member answers (servers and etcd
/// often start together); any other failure ends the start.
async fn open_etcd(etcd: &EtcdConfig) -> Result<Store, String> {
    let started = std::time::Instant::now();
    let mut told = None::<std::time::Instant>;
    loop {
        match Store::open_etcd(etcd.clone()).await {
            Ok(store) => return Ok(store),
            Err(crate::store::StoreError::Etcd(crate::store::etcd::EtcdError::Unavailable {
                last,
                ..
            })) => {
                if told.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    eprintln!(
                        "tartan apiserver: waiting for etcd ({}) for {} s: {last}",
                        etcd.endpoints.join(","),
                        started.elapsed().as_secs()
                    );
                    told = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                return Err(format!(
                    "cannot open the datastore in etcd ({}): {e}",
                    etcd.endpoints.join(",")
                ));
            }
        }
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(config: ServerConfig) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!("cannot create the data directory {}: {e}", config.data_dir.display())
    })?;
    let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    let store = match &config.datastore {
        Datastore::Sled => Store::open(&config.data_dir).map_err(|e| {
            format!(
                "{e}\n(is another `tartan apiserver` using --data-dir {}?)",
                config.data_dir.display()
            )
        })?,
        Datastore::Etcd(etcd) => open_etcd(etcd).await?,
    };
    let store = Arc::new(store);
    let ipam = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || Ipam::open(store))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    let token_file = config.token_file.clone().unwrap_or_else(|| token_path(&config.data_dir));
    let token = load_or_create_token(&token_file)?;
    let tls = match &config.tls {
        Some(files) => {
            Some(ReloadingCert::load(&files.cert, &files.key).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let state = AppState::new(store.clone(), ipam, Some(token.clone()));
    let router = app(state.clone());
    for doc in &config.seed {
        apply_seed(&router, &token, doc).await?;
    }
    if !config.seed.is_empty() {
        eprintln!("tartan apiserver: applied {} resource(s) from --apply", config.seed.len());
    }
    eprintln!(
        "tartan apiserver: listening on {}://{} (data in {}, token in {})",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        match &config.datastore {
            Datastore::Sled => config.data_dir.display().to_string(),
            Datastore::Etcd(e) => format!("etcd {} under {}", e.endpoints.join(","), e.prefix),
        },
        token_file.display()
    );
    if let Some(cert) = &tls {
        tokio::spawn(reload_loop(cert.clone()));
    }
    let shared = state.0.clone();
    let interval = config.gc_interval;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let s = shared.clone();
            let round = tokio::task::spawn_blocking(move || super::ipam::collect(&s)).await;
            match round {
                Ok(Ok(r)) if !r.released.is_empty() || !r.blocks_released.is_empty() => {
                    let _ = shared.store.flush().await;
                    tracing::info!(
                        released = r.released.len(),
                        blocks = r.blocks_released.len(),
                        "leak collection"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "leak collection failed"),
                Err(e) => tracing::warn!(error = %e, "leak collection task failed"),
            }
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server =
        listen::serve(listener, router, tls, config.limits, state.0.conns.clone(), stop_rx);
    let signals = async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
        // Watch streams never end by themselves: give other requests a moment, then go.
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    tokio::select! {
        r = server => r.map_err(|e| format!("server failed: {e}"))?,
        () = signals => {}
    }
    store.flush_now().map_err(|e| e.to_string())?;
    eprintln!("tartan apiserver: stopped");
    Ok(())
}

/// Puts a new certificate in use on SIGHUP, or when its files change; a pair that cannot be
/// used is logged and the old one keeps serving.
pub async fn reload_loop(cert: Arc<ReloadingCert>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).ok();
    loop {
        let hup_seen = match hup.as_mut() {
            Some(h) => tokio::select! {
                r = h.recv() => r.is_some(),
                () = tokio::time::sleep(CERT_POLL) => false,
            },
            None => {
                tokio::time::sleep(CERT_POLL).await;
                false
            }
        };
        if !hup_seen && !cert.changed() {
            continue;
        }
        let trigger = if hup_seen { "SIGHUP" } else { "its files changed" };
        match cert.reload() {
            Ok(()) => tracing::info!(
                cert = %cert.cert_path().display(),
                "TLS certificate reloaded ({trigger})"
            ),
            Err(e) => {
                tracing::warn!("TLS certificate not reloaded, the old one keeps serving: {e}")
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
