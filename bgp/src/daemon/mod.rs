//! `tartan bgp -c FILE`: the speaker alone — a route server, a reflector, an injector — run
//! from a TOML file ([`config`]), with a control socket for `tartan bgp status` and
//! `tartan bgp rib` ([`control`], printed by [`show`]).
//!
//! Signals: SIGHUP re-reads the file and applies the difference (neighbors added, removed or
//! changed, each without touching the others; originated prefixes); SIGTERM and SIGINT stop
//! the speaker — gracefully when graceful restart is enabled (connections close without a
//! NOTIFICATION, so peers keep our routes for the restart time), with an Administrative
//! Shutdown otherwise.

pub mod config;
pub mod control;
pub mod show;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

pub use config::{ConfigError, DaemonConfig};

use crate::config::PeerAddress;
use crate::io::{Speaker, SpeakerError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Speaker(#[from] SpeakerError),
    #[error("control socket {path}: {source}")]
    Control { path: PathBuf, source: std::io::Error },
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(path: &Path, control_override: Option<PathBuf>) -> Result<(), DaemonError> {
    let mut cfg = DaemonConfig::load(path)?;
    if let Some(c) = control_override {
        cfg.control_socket = c;
    }
    let speaker = Speaker::start(cfg.speaker.clone()).await?;
    info!(
        asn = %cfg.speaker.asn,
        router_id = %cfg.speaker.router_id,
        neighbors = cfg.neighbors.len(),
        "BGP speaker started"
    );
    for n in &cfg.neighbors {
        speaker.add_peer(n.clone()).await?;
    }
    for o in &cfg.originate {
        speaker.originate(o.prefix, o.attrs.clone()).await?;
    }
    let socket = cfg.control_socket.clone();
    let control = {
        let speaker = speaker.clone();
        let socket = socket.clone();
        tokio::spawn(async move { control::serve(socket, speaker).await })
    };
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut control = control;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match DaemonConfig::load(path) {
                    Ok(mut new) => {
                        new.control_socket = cfg.control_socket.clone();
                        reload(&speaker, &cfg, &new).await;
                        cfg = new;
                    }
                    Err(e) => error!(error = %e, "configuration not reloaded"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            res = &mut control => {
                let err = match res {
                    Ok(Err(e)) => e,
                    _ => std::io::Error::other("control socket task ended"),
                };
                speaker.shutdown(false).await;
                return Err(DaemonError::Control { path: socket, source: err });
            }
        }
    }
    let graceful = cfg.speaker.graceful_restart.is_some();
    info!(graceful, "stopping");
    speaker.shutdown(graceful).await;
    control.abort();
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Applies a re-read configuration: only what changed is touched.
pub async fn reload(speaker: &Speaker, old: &DaemonConfig, new: &DaemonConfig) {
    if old.speaker != new.speaker {
        warn!(
            "changes to [global] take effect at the next start; neighbors and routes are reloaded"
        );
    }
    let old_n: HashMap<PeerAddress, _> = old.neighbors.iter().map(|n| (n.address, n)).collect();
    let new_n: HashMap<PeerAddress, _> = new.neighbors.iter().map(|n| (n.address, n)).collect();
    for (addr, _) in old_n.iter().filter(|(a, _)| !new_n.contains_key(a)) {
        info!(neighbor = %addr, "neighbor removed");
        if let Err(e) = speaker.remove_peer(*addr).await {
            warn!(neighbor = %addr, error = %e, "not removed");
        }
    }
    for (addr, n) in &new_n {
        let result = match old_n.get(addr) {
            None => {
                info!(neighbor = %addr, "neighbor added");
                speaker.add_peer((*n).clone()).await
            }
            Some(o) if o != n => {
                info!(neighbor = %addr, "neighbor changed");
                speaker.update_peer((*n).clone()).await
            }
            Some(_) => Ok(()),
        };
        if let Err(e) = result {
            warn!(neighbor = %addr, error = %e, "not applied");
        }
    }
    let old_o: HashMap<_, _> = old.originate.iter().map(|o| (o.prefix, &o.attrs)).collect();
    let new_o: HashMap<_, _> = new.originate.iter().map(|o| (o.prefix, &o.attrs)).collect();
    for p in old_o.keys().filter(|p| !new_o.contains_key(p)) {
        let _ = speaker.withdraw(*p).await;
    }
    for (p, a) in &new_o {
        if old_o.get(p) != Some(a) {
            let _ = speaker.originate(*p, (*a).clone()).await;
        }
    }
    info!("configuration reloaded");
}
