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

use crate::config::{PeerAddress, PeerConfig};
use crate::io::{Speaker, SpeakerError};
use crate::rib::Origination;
use crate::types::Prefix;

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
    // Signals first: a SIGHUP or SIGTERM during start-up must not kill the process outright.
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
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
    let mut control = control;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match DaemonConfig::load(path) {
                    Ok(mut new) => {
                        new.control_socket = cfg.control_socket.clone();
                        cfg = reload(&speaker, &cfg, &new).await;
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

/// Applies a re-read configuration: only what changed is touched. Returns the configuration now
/// in effect — a neighbor or route that could not be applied keeps its old state there, so the
/// next reload tries it again.
pub async fn reload(speaker: &Speaker, old: &DaemonConfig, new: &DaemonConfig) -> DaemonConfig {
    if old.speaker != new.speaker {
        warn!(
            "changes to [global] take effect at the next start; neighbors and routes are reloaded"
        );
    }
    let mut neighbors: HashMap<PeerAddress, PeerConfig> =
        old.neighbors.iter().map(|n| (n.address, n.clone())).collect();
    let wanted: HashMap<PeerAddress, &PeerConfig> =
        new.neighbors.iter().map(|n| (n.address, n)).collect();
    let gone: Vec<PeerAddress> =
        neighbors.keys().filter(|a| !wanted.contains_key(a)).copied().collect();
    for addr in gone {
        info!(neighbor = %addr, "neighbor removed");
        match speaker.remove_peer(addr).await {
            Ok(()) => {
                neighbors.remove(&addr);
            }
            Err(e) => warn!(neighbor = %addr, error = %e, "not removed"),
        }
    }
    for (addr, n) in &wanted {
        let result = match neighbors.get(addr) {
            None => {
                info!(neighbor = %addr, "neighbor added");
                speaker.add_peer((*n).clone()).await
            }
            Some(o) if o != *n => {
                info!(neighbor = %addr, "neighbor changed");
                speaker.update_peer((*n).clone()).await
            }
            Some(_) => continue,
        };
        match result {
            Ok(()) => {
                neighbors.insert(*addr, (*n).clone());
            }
            Err(e) => {
                warn!(neighbor = %addr, error = %e, "not applied; the next reload tries again")
            }
        }
    }
    let mut originate: HashMap<Prefix, Origination> =
        old.originate.iter().map(|o| (o.prefix, o.attrs.clone())).collect();
    let wanted_o: HashMap<Prefix, &Origination> =
        new.originate.iter().map(|o| (o.prefix, &o.attrs)).collect();
    let gone: Vec<Prefix> =
        originate.keys().filter(|p| !wanted_o.contains_key(p)).copied().collect();
    for p in gone {
        if speaker.withdraw(p).await.is_ok() {
            originate.remove(&p);
        }
    }
    for (p, a) in &wanted_o {
        if originate.get(p) != Some(*a) && speaker.originate(*p, (*a).clone()).await.is_ok() {
            originate.insert(*p, (*a).clone());
        }
    }
    info!("configuration reloaded");
    // Keep the file's order where the neighbor was applied; the old entry otherwise.
    let mut effective = new.clone();
    effective.speaker = old.speaker.clone();
    effective.neighbors = new
        .neighbors
        .iter()
        .filter_map(|n| neighbors.get(&n.address).cloned())
        .chain(
            old.neighbors
                .iter()
                .filter(|n| !wanted.contains_key(&n.address) && neighbors.contains_key(&n.address))
                .cloned(),
        )
        .collect();
    effective.originate =
        originate.into_iter().map(|(prefix, attrs)| config::Originate { prefix, attrs }).collect();
    effective
}
